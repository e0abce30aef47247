"""``--disease auto``: the router's classifier, its storage and refusals, and the shipped model choosing a disease."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brainlesioncl.errors import DiseaseNotSupportedError, ModelError
from brainlesioncl.evaluation.segmentation import dice
from brainlesioncl.inference import DiseaseRouter, RoutingDecision, Segmenter, build_context, fit_router
from brainlesioncl.inference.routing import INTENSITY_FEATURES, case_signature, encoder_signature
from brainlesioncl.io import to_xyz
from brainlesioncl.modalities import Disease, disease_context, resolve_disease
from brainlesioncl.models import MoEUNet, MoEUNetConfig
from brainlesioncl.phantoms import PhantomConfig, generate_case
from brainlesioncl.registry import ModelRegistry, builtin_models_dir

SLOTS = ("tumour", "stroke", "MS", "WMH")


def _clusters(seed: int, per_class: int = 12, dim: int = 20) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Four Gaussian clusters (one per disease) in a 20-d feature space, and their centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (len(SLOTS), dim))
    x = np.concatenate([c + rng.normal(0, 0.5, (per_class, dim)) for c in centres])
    return x, [d for d in SLOTS for _ in range(per_class)], centres


def test_fitted_router_identifies_held_out_examples_and_round_trips() -> None:
    x, labels, centres = _clusters(0)
    router = fit_router(x, labels, SLOTS, fitted_on={"version": "m-v1"})
    rng = np.random.default_rng(1)
    for k, disease in enumerate(SLOTS):
        decision = router.decide(centres[k] + rng.normal(0, 0.5, centres.shape[1]))
        assert decision.disease == disease and decision.confident
        assert sum(decision.probabilities.values()) == pytest.approx(1.0)
        assert decision.disease_vector(list(SLOTS)) == [1.0 if s == disease else 0.0 for s in SLOTS]
    again = DiseaseRouter.from_json(router.to_json())
    probe = centres[2] * 0.5 + centres[3] * 0.5
    np.testing.assert_allclose(again.probabilities(probe), router.probabilities(probe), rtol=1e-12)
    assert again.fitted_on["version"] == "m-v1" and again.fitted_on["cases_per_disease"]["MS"] == 12


def test_an_unsure_case_mixes_the_routings_in_proportion() -> None:
    decision = RoutingDecision("unknown", {"tumour": 0.45, "stroke": 0.05, "MS": 0.1, "WMH": 0.4}, confident=False)
    assert decision.disease_vector(["tumour", "stroke", "MS", "WMH"]) == pytest.approx([0.45, 0.05, 0.1, 0.4])
    assert "unsure" in decision.describe() and "tumour 45%" in decision.describe()
    x, labels, centres = _clusters(3)
    router = fit_router(x, labels, SLOTS, threshold=0.99)
    between = fit_router(x, labels, SLOTS).decide((centres[0] + centres[1]) / 2)  # halfway: no clear winner
    strict = router.decide((centres[0] + centres[1]) / 2)
    assert not strict.confident and strict.disease == "unknown"
    assert max(between.probabilities.values()) < 0.99


def test_router_refuses_what_it_cannot_use() -> None:
    x, labels, _ = _clusters(0)
    with pytest.raises(ValueError, match="no example of"):
        fit_router(x[: 12 * 3], labels[: 12 * 3], SLOTS)  # WMH never seen
    stored = fit_router(x, labels, SLOTS).to_json()
    with pytest.raises(ModelError, match="fitted on 20"):
        DiseaseRouter.from_json(stored).probabilities(np.zeros(7))
    for damage in ({"features": "other-signature-v9"}, {"bias": [0.0, 1.0]}, {"scale": [float("nan")] * 20},
                   {"classes": ["tumour"]}):
        with pytest.raises(ModelError):
            DiseaseRouter.from_json({**stored, **damage})
    with pytest.raises(ModelError, match="malformed"):
        DiseaseRouter.from_json({k: v for k, v in stored.items() if k != "weights"})


def test_auto_is_a_tag_for_segmenting_only() -> None:
    assert resolve_disease("Automatic") is Disease.AUTO
    with pytest.raises(DiseaseNotSupportedError, match="decided per case"):
        disease_context("auto", SLOTS)


def _tiny_segmenter(router: dict | None = None) -> Segmenter:
    from brainlesioncl.registry import ModelMetadata

    torch.manual_seed(0)
    config = MoEUNetConfig(channels=(8, 8, 8, 8, 8))
    metadata = ModelMetadata(name="tiny", kind="moe_unet", channels=["DWI", "FLAIR", "PD", "T1", "T1c", "T2"],
                             disease_slots=list(SLOTS), architecture={"network": config.to_dict()},
                             preprocessing={"spacing": 4.0}, version="tiny-v1", router=router)
    return Segmenter(MoEUNet(config), metadata, device="cpu")


def _phantom(disease: str, seed: int):
    return generate_case(PhantomConfig(disease=disease, modalities=("FLAIR", "T1", "T2", "DWI"), size=(64, 72, 60),
                                       spacing=2.5, seed=seed))


def test_auto_without_a_router_names_the_fix() -> None:
    segmenter = _tiny_segmenter()
    case = _phantom("tumour", 1)
    with pytest.raises(DiseaseNotSupportedError, match="no disease router"):
        segmenter.segment(dict(case.images), "auto")


def test_segment_auto_routes_with_the_decision_and_reports_it() -> None:
    """The context the network gets is the decision's, and the result says what was chosen (here a router whose
    only preference is the stroke slot, so the answer is known whatever the untrained encoder computes)."""
    segmenter = _tiny_segmenter()
    dim = 2 * 5 * 8 + 6 * INTENSITY_FEATURES
    weights = np.zeros((dim, 4))
    router = DiseaseRouter(SLOTS, np.zeros(dim), np.ones(dim), weights, np.array([0.0, 5.0, 0.0, 0.0]),
                           fitted_on={"version": "tiny-v0"})
    segmenter.router = router
    seen = []
    network_forward = segmenter.predictor.network.forward

    def spy(x, context, **kwargs):
        seen.append(context.detach().cpu().numpy().ravel().tolist())
        return network_forward(x, context, **kwargs)

    segmenter.predictor.network.forward = spy  # type: ignore[method-assign]
    case = _phantom("stroke", 2)
    result = segmenter.segment(dict(case.images), "auto")
    assert result.routing is not None and result.routing.disease == "stroke" and result.disease == "stroke"
    assert seen[-1][-4:] == [0.0, 1.0, 0.0, 0.0]  # the gates saw the stroke one-hot
    assert "fitted on tiny-v0" in result.routing.note  # the router predates this version: said, not hidden
    assert result.timings["routing"] > 0
    assert result.routing.to_json()["probabilities"]["stroke"] > 0.9


def test_encoder_signature_is_the_pooled_encoder_of_the_neutral_context() -> None:
    segmenter = _tiny_segmenter()
    array = np.random.default_rng(0).normal(size=(6, 40, 36, 32)).astype(np.float32)
    context = build_context([True] * 6, "unknown", SLOTS)
    signature = encoder_signature(segmenter.predictor.network, array, context)
    assert signature.shape == (2 * 5 * 8,) and np.isfinite(signature).all()
    other = encoder_signature(segmenter.predictor.network, array * 2, context)
    assert not np.allclose(signature, other)  # it reads the image
    present = [True, True, False, True, False, False]
    array[[2, 4, 5]] = 0
    full = case_signature(segmenter.predictor.network, array, present, context)
    assert full.shape == (2 * 5 * 8 + 6 * INTENSITY_FEATURES,)
    intensity = full[2 * 5 * 8:].reshape(6, INTENSITY_FEATURES)
    assert (intensity[[2, 4, 5]] == 0).all() and (intensity[[0, 1, 3], 0] == 1).all()
    assert 0.01 < intensity[0, -4] < 0.05  # share above 2 SD of a standard normal: 2.3 %


@pytest.mark.slow
def test_the_shipped_model_chooses_the_disease_of_held_out_phantoms(tmp_path) -> None:
    """The shipped default has a router; on held-out phantoms it picks the true disease and segments as well as
    the true tag does (the issue's target: within 2 Dice points)."""
    version = "braincl-demo-v4"
    bundle = ModelRegistry(tmp_path, builtin_dirs=[builtin_models_dir()]).get(version)
    assert bundle.metadata.router is not None, "the shipped default must carry its disease router"
    segmenter = Segmenter.from_bundle(bundle, device="cpu")
    for disease, modalities in (("tumour", ("FLAIR", "T1", "T1c", "T2")), ("stroke", ("FLAIR", "T1", "T2", "DWI"))):
        case = generate_case(PhantomConfig(disease=disease, modalities=modalities, size=(112, 128, 104), spacing=1.4,
                                           seed=78))
        auto = segmenter.segment(dict(case.images), "auto")
        true = segmenter.segment(dict(case.images), disease)
        assert auto.routing is not None and auto.routing.disease == disease, auto.routing
        auto_dice = dice(to_xyz(auto.label), to_xyz(case.label))
        true_dice = dice(to_xyz(true.label), to_xyz(case.label))
        assert auto_dice >= true_dice - 0.02, (disease, auto_dice, true_dice)
