"""Continual-learning episodes: new versions with honest metadata, every strategy, forgetting, resume, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cl_helpers import blob_cases
from torch import nn

from brainlesioncl.continual import STRATEGIES, EpisodeConfig, make_strategy, train_episode
from brainlesioncl.continual.strategies.distillation import feature_cosine_loss, kl_batchmean_sum, kl_voxel_mean
from brainlesioncl.errors import CancelledError, DiseaseNotSupportedError, SettingsError
from brainlesioncl.registry import ModelRegistry
from brainlesioncl.training import evaluate

from conftest import TINY_CHANNELS

SLOTS = ["tumour", "stroke", "MS", "WMH"]


def quick(strategy: str = "naive", **kw) -> EpisodeConfig:
    settings = dict(strategy=strategy, epochs=1, steps_per_epoch=2, crop_size=32, validation_fraction=0.0, seed=0,
                    keep="last", precision="fp32", scratch_channels=TINY_CHANNELS)
    settings.update(kw)
    return EpisodeConfig(**settings)


@pytest.fixture(scope="module")
def tumour_parent(tmp_path_factory) -> tuple[ModelRegistry, str]:
    """A tiny model that has learnt 'bright sphere = tumour' (first episode, from scratch)."""
    registry = ModelRegistry(tmp_path_factory.mktemp("cl") / "registry", builtin_dirs=[])
    result = train_episode(blob_cases(6, seed=1), "tumour", parent="scratch", registry=registry, device="cpu",
                           config=quick(epochs=12, steps_per_epoch=6))
    return registry, result.version


def _dice(registry: ModelRegistry, version: str, cases) -> float:
    return float(np.mean(evaluate(registry.get(version).build(), cases, SLOTS)))


# -- distillation terms -----------------------------------------------------------------------------------------------
def test_kl_terms_match_torch_definitions() -> None:
    s, t = torch.randn(2, 2, 5, 6, 7), torch.randn(2, 2, 5, 6, 7)
    reference = nn.KLDivLoss(reduction="batchmean")(torch.log_softmax(s / 2, 1), torch.softmax(t / 2, 1))
    assert torch.allclose(kl_batchmean_sum(s, t, 2.0), reference, rtol=1e-5)
    assert torch.allclose(kl_voxel_mean(s, t, 2.0), reference / (5 * 6 * 7) * 4, rtol=1e-5)
    assert float(kl_voxel_mean(s, s, 2.0)) == pytest.approx(0.0, abs=1e-6)


def test_feature_cosine_matches_cosine_embedding_loss() -> None:
    a, b = torch.randn(3, 4, 2, 2, 2), torch.randn(3, 4, 2, 2, 2)
    reference = nn.CosineEmbeddingLoss()(a.flatten(1), b.flatten(1), torch.ones(3))
    assert torch.allclose(feature_cosine_loss(a, b), reference, atol=1e-6)
    assert float(feature_cosine_loss(a, a)) == pytest.approx(0.0, abs=1e-6)


def test_strategy_names_and_options() -> None:
    assert set(STRATEGIES) == {"naive", "lwf", "ewc", "si", "braincl-dd", "ours", "joint"}
    assert make_strategy("DD").name == "braincl-dd"
    assert make_strategy("ours").hyperparameters["beta"] == 0.8
    with pytest.raises(SettingsError, match="Unknown strategy"):
        make_strategy("replay")
    with pytest.raises(SettingsError, match=r"no option \['beta'\]; its options are \['fisher_batches', 'lambda'\]"):
        make_strategy("ewc", beta=1.0)
    # typed options: the command-line name 'lambda' (a Python keyword) is the field 'weight'
    ewc = make_strategy("ewc", **{"lambda": 3.0})
    assert ewc.options.weight == 3.0 and ewc.hyperparameters == {"lambda": 3.0, "fisher_batches": 8}
    assert make_strategy("si").options.weight == 2.0 and make_strategy("ours").options.gamma == 10.0
    with pytest.raises(SettingsError, match="fisher_batches must be a whole number"):
        make_strategy("ewc", fisher_batches=2.5)
    with pytest.raises(SettingsError, match="'lwf': option alpha must be a non-negative number"):
        make_strategy("lwf", alpha=-1.0)


def _setup(student: nn.Module, teacher: nn.Module):
    from brainlesioncl.continual.strategies.base import EpisodeSetup
    from brainlesioncl.training import TrainConfig

    return EpisodeSetup(network=student, teacher=teacher.eval(), cases=[], disease="stroke", disease_slots=SLOTS,
                        channel_count=6, seen_diseases=["tumour"], config=TrainConfig(), device=torch.device("cpu"))


def test_lwf_term_is_zero_for_the_parent_and_grows_as_the_student_drifts() -> None:
    """LwF's extra loss is alpha * KL(parent || student): zero when the student is the parent, positive and growing
    with the drift, and scaled by alpha. Naive fine-tuning adds nothing."""
    import copy

    from brainlesioncl.models import MoEUNet, MoEUNetConfig

    torch.manual_seed(0)
    teacher = MoEUNet(MoEUNetConfig(channels=TINY_CHANNELS))
    x, context = torch.randn(1, 6, 32, 32, 32), torch.zeros(1, 10)
    context[0, :6], context[0, 7] = 1.0, 1.0  # every channel present, stroke

    def term(strategy: str, drift: float, **options) -> float:
        student = copy.deepcopy(teacher).eval()
        noise = torch.Generator().manual_seed(1)  # the same drift direction in every call
        with torch.no_grad():
            for parameter in student.parameters():
                parameter.add_(drift * torch.randn(parameter.shape, generator=noise))
        rule = make_strategy(strategy, **options)
        rule.begin(_setup(student, teacher))
        with torch.no_grad():
            logits, features = student(x, context, give_feature=True)
            return float(rule.loss(student, x, context, logits, features))

    assert term("lwf", 0.0) == pytest.approx(0.0, abs=1e-7)
    small, large = term("lwf", 0.01), term("lwf", 0.1)
    assert 0.0 < small < large
    assert term("lwf", 0.1, alpha=2.0) == pytest.approx(2.0 * large, rel=1e-4)
    assert term("naive", 0.1) == 0.0


@pytest.mark.parametrize("fill_missing", [0.0, 1.0])
def test_old_routes_see_channels_the_episode_lacks_only_when_filled(fill_missing: float) -> None:
    """A FLAIR-only episode: without filling, the old-route pass only ever turns FLAIR on; with fill_missing=1 it
    also turns on channels the cases lack, filled with a rescaled (possibly inverted) copy of FLAIR, and keeps the
    channels it leaves out at zero. The route is always an old disease."""
    from brainlesioncl.models import MoEUNet, MoEUNetConfig

    torch.manual_seed(0)
    teacher = MoEUNet(MoEUNetConfig(channels=TINY_CHANNELS))
    rule = make_strategy("ours", fill_missing=fill_missing, alpha=0.0)
    rule.begin(_setup(teacher, teacher))  # a parent that knew tumour; the episode learns stroke
    x = torch.zeros(2, 6, 8, 8, 8)
    x[:, 0] = torch.randn(2, 8, 8, 8)  # FLAIR only
    context = torch.zeros(2, 10)
    context[:, 0], context[:, 7] = 1.0, 1.0
    seen: set[int] = set()
    for _ in range(40):
        old_x, old_context = rule._old_route_batch(x, context)
        assert old_context[:, 6:].tolist() == [[1.0, 0.0, 0.0, 0.0]] * 2  # tumour: the parent's only old disease
        for b in range(2):
            on = torch.nonzero(old_context[b, :6]).flatten().tolist()
            seen.update(on)
            for channel in range(6):
                if channel not in on:
                    assert not old_x[b, channel].any()
                elif channel == 0:
                    assert torch.equal(old_x[b, 0], x[b, 0])
                else:  # a surrogate: FLAIR times a factor of magnitude 0.8-1.2
                    ratio = (old_x[b, channel] / x[b, 0]).flatten()
                    assert torch.allclose(ratio, ratio[0]) and 0.79 < abs(float(ratio[0])) < 1.21
    assert seen == ({0} if fill_missing == 0 else set(range(6)))
    with pytest.raises(SettingsError, match="probability"):
        make_strategy("ours", fill_missing=1.5)


def test_old_route_pass_runs_on_a_random_sub_crop_of_the_whole_old_route_input() -> None:
    """The old-route pass (student and teacher) sees a ``old_route_crop`` cube of the sample, cut from the same
    place in every sample of the batch and from a different place at each step; 0 keeps the whole crop."""
    from brainlesioncl.models import MoEUNet, MoEUNetConfig

    torch.manual_seed(0)
    teacher = MoEUNet(MoEUNetConfig(channels=TINY_CHANNELS))
    x = torch.zeros(2, 6, 48, 48, 48)
    x[:, 0] = torch.arange(48**3, dtype=torch.float32).reshape(48, 48, 48)  # a voxel's value tells where it is
    context = torch.zeros(2, 10)
    context[:, 0], context[:, 7] = 1.0, 1.0
    rule = make_strategy("ours", fill_missing=0.0, alpha=0.0, old_route_crop=32)
    rule.begin(_setup(teacher, teacher))
    corners = set()
    for _ in range(12):
        old_x, _ = rule._old_route_batch(x, context)
        assert old_x.shape == (2, 6, 32, 32, 32)
        first = int(old_x[0, 0, 0, 0, 0])
        z, y, w = first // 48**2, first // 48 % 48, first % 48
        assert torch.equal(old_x[:, 0], x[:, 0, z:z + 32, y:y + 32, w:w + 32])
        corners.add((z, y, w))
    assert len(corners) > 6
    whole = make_strategy("ours", fill_missing=0.0, alpha=0.0, old_route_crop=0)
    whole.begin(_setup(teacher, teacher))
    assert torch.equal(whole._old_route_batch(x, context)[0][:, 0], x[:, 0])
    with pytest.raises(SettingsError, match="old_route_crop"):
        make_strategy("ours", old_route_crop=40)


# -- episodes --------------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["naive", "lwf", "ewc", "si", "braincl-dd", "ours"])
def test_every_strategy_writes_a_child_version(tumour_parent, strategy: str) -> None:
    registry, parent = tumour_parent
    parent_files = {f.name: f.read_bytes() for f in registry.path_of(parent).iterdir()}
    result = train_episode(blob_cases(3, seed=2, disease="stroke"), "stroke", parent=parent, registry=registry,
                           config=quick(strategy), device="cpu")
    meta = registry.get(result.version).metadata
    assert meta.parent == parent and result.version != parent
    assert meta.training["strategy"]["name"] == strategy
    assert meta.training["disease"] == "stroke" and meta.training["diseases_seen"] == ["stroke", "tumour"]
    assert meta.training["cases"] == 3 and meta.training["modalities"] == ["FLAIR", "T1"]
    assert meta.training["episode"] == 2
    text = json.dumps(meta.to_json())
    assert "stroke2-0" not in text  # no case name (a patient identifier) in the version
    assert {f.name: f.read_bytes() for f in registry.path_of(parent).iterdir()} == parent_files  # parent intact
    if strategy in ("ewc", "si"):
        state = registry.get(result.version).state_dict("strategy_state")
        assert state and all(torch.isfinite(v).all() and (v >= 0).all() for v in state.values())
        assert any(float(v.sum()) > 0 for v in state.values())
    if strategy in ("braincl-dd", "ours"):
        d = meta.training["strategy"]["parent_dice_on_new_cases"]
        assert meta.training["strategy"]["alpha"] == pytest.approx((1 - d) * 0.6e-5, rel=1e-3)


@pytest.mark.slow
def test_ours_forgets_less_than_naive_fine_tuning(tumour_parent) -> None:
    """Stroke here teaches 'a bright sphere is background', the opposite of tumour: naive fine-tuning forgets."""
    registry, parent = tumour_parent
    tumour_test, stroke_test = blob_cases(3, seed=9), blob_cases(3, seed=10, disease="stroke")
    before = _dice(registry, parent, tumour_test)
    stroke_before = _dice(registry, parent, stroke_test)
    assert before > 0.8
    stroke_train = blob_cases(6, seed=2, disease="stroke")
    outcomes = {}
    for strategy in ("naive", "ours"):
        version = train_episode(stroke_train, "stroke", parent=parent, registry=registry, device="cpu",
                                config=quick(strategy, epochs=6, steps_per_epoch=6)).version
        outcomes[strategy] = (_dice(registry, version, tumour_test), _dice(registry, version, stroke_test))
    assert outcomes["naive"][0] < 0.5 * before  # the conflict really makes naive fine-tuning forget
    assert outcomes["ours"][0] > 0.85 * before  # ours keeps the tumour route
    assert outcomes["ours"][1] > max(0.4, stroke_before + 0.2)  # and the new disease's Dice rises


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["naive", "lwf", "ewc", "si", "braincl-dd", "ours"])
def test_cancel_writes_nothing_and_resume_matches_an_uninterrupted_run(tumour_parent, strategy: str) -> None:
    """Every strategy's running state (e.g. the path integral of SI, the route sampler of ours) goes into the epoch
    checkpoint, so a resumed episode ends with exactly the weights of an uninterrupted one."""
    registry, parent = tumour_parent
    cases = blob_cases(3, seed=3, disease="stroke")
    config = quick(strategy, epochs=3, steps_per_epoch=2)
    before = set(registry.version_ids())
    steps = {"n": 0}

    def cancel_in_epoch_three() -> bool:
        steps["n"] += 1
        return steps["n"] > 5  # two epochs of two steps finish, then cancel

    with pytest.raises(CancelledError):
        train_episode(cases, "stroke", parent=parent, registry=registry, config=config, device="cpu",
                      cancel=cancel_in_epoch_three)
    assert set(registry.version_ids()) == before
    assert list((registry.root / "work").glob("*/checkpoint.pt"))
    epochs_run = []
    resumed = train_episode(cases, "stroke", parent=parent, registry=registry, config=config, device="cpu",
                            progress=lambda r: epochs_run.append(r["epoch"]) if "epoch" in r else None)
    assert epochs_run == [3]
    assert not list((registry.root / "work").glob("*/checkpoint.pt"))
    straight = train_episode(cases, "stroke", parent=parent, registry=registry, config=config, device="cpu",
                             resume=False)
    a, b = registry.get(resumed.version), registry.get(straight.version)
    for key, value in a.state_dict().items():
        assert torch.allclose(value, b.state_dict()[key], rtol=0, atol=1e-6), key
    if "strategy_state" not in a.metadata.architecture:
        return
    for key, value in a.state_dict("strategy_state").items():
        assert torch.allclose(value, b.state_dict("strategy_state")[key], rtol=1e-4, atol=1e-8), key


def test_validation_split_and_best_epoch_are_recorded(tumour_parent) -> None:
    registry, parent = tumour_parent
    result = train_episode(blob_cases(5, seed=4, disease="stroke"), "stroke", parent=parent, registry=registry,
                           config=quick(validation_fraction=0.4, epochs=2, keep="best"), device="cpu")
    meta = result.metadata
    assert meta.training["cases"] == 3 and meta.training["validation_cases"] == 2
    scores = [record["val_dice"] for record in meta.training["history"]]
    assert len(scores) == 2 and meta.training["best_epoch"] == 1 + int(np.argmax(scores))  # the best one is kept
    assert set(meta.metrics["validation"]) >= {"dice", "sensitivity", "precision", "hd95_mm"}


def test_bad_episode_input(tumour_parent) -> None:
    registry, parent = tumour_parent
    cases = blob_cases(2, seed=5, disease="stroke")
    with pytest.raises(DiseaseNotSupportedError, match="needs the cases' disease"):
        train_episode(cases, "unknown", parent=parent, registry=registry, config=quick(), device="cpu")
    with pytest.raises(SettingsError, match="never replay"):
        train_episode(cases, "stroke", parent=parent, registry=registry, config=quick(), device="cpu",
                      replay_databases=[blob_cases(1, seed=6)])
    with pytest.raises(SettingsError, match="Unknown strategy"):
        train_episode(cases, "stroke", parent=parent, registry=registry, config=quick("replay"), device="cpu")
