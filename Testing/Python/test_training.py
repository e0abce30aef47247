"""Training data validation, modality drop, and a tiny training run that must actually learn."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from synthetic import ellipsoid_fraction, make_grid

from brainlesioncl.errors import CancelledError, GeometryError, InvalidImageError
from brainlesioncl.modalities import BRAINCL_CHANNEL_ORDER
from brainlesioncl.models import MoEUNet, MoEUNetConfig
from brainlesioncl.training import (
    TrainConfig,
    case_from_arrays,
    drop_modalities,
    evaluate,
    load_training_case,
    make_batch,
    train,
)

from conftest import sphere_case

SLOTS = ["tumour", "stroke", "MS", "WMH"]


def _blob_cases(n: int, seed: int, size: int = 48) -> list:
    """Bright spheres on a dim background in the FLAIR and T1 channels: learnable in a few dozen steps."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        image = np.zeros((6, size, size, size), np.float32)
        grid = np.indices((size,) * 3).astype(np.float32)
        centre = rng.uniform(14, size - 14, 3)
        radius = rng.uniform(5, 9)
        lesion = ((grid - centre[:, None, None, None]) ** 2).sum(0) < radius**2
        for channel in (1, 3):
            image[channel] = 0.2 + 0.1 * rng.standard_normal((size,) * 3) + 2.0 * lesion
        cases.append(case_from_arrays(f"blob{i}", image, lesion.astype(np.uint8),
                                      [False, True, False, True, False, False], "tumour"))
    return cases


def test_modality_drop_keeps_at_least_one_and_reaches_every_k() -> None:
    rng = np.random.default_rng(0)
    present = [True, True, False, True, True, False]
    image = np.ones((6, 4, 4, 4), np.float32) * np.array(present, np.float32)[:, None, None, None]
    kept_counts = set()
    for _ in range(300):
        dropped, flags = drop_modalities(image, present, rng)
        kept = [i for i in range(6) if dropped[i].any()]
        assert kept and set(kept) <= {0, 1, 3, 4}
        assert flags == [dropped[i].any() and present[i] for i in range(6)]
        kept_counts.add(len(kept))
    assert kept_counts == {1, 2, 3, 4}  # k ~ U{0..n-1} dropped


def test_batch_context_reflects_dropped_modalities() -> None:
    cases = _blob_cases(3, seed=1)
    images, labels, contexts = make_batch(cases, 32, np.random.default_rng(0), SLOTS)
    assert images.shape == (3, 6, 32, 32, 32) and labels.shape == (3, 1, 32, 32, 32)
    for image, context in zip(images, contexts, strict=True):
        assert context[:6].tolist() == [1.0 if image[i].any() else 0.0 for i in range(6)]
        assert context[6:].tolist() == [1, 0, 0, 0]


@pytest.mark.slow
def test_tiny_training_learns() -> None:
    torch.manual_seed(0)
    network = MoEUNet(MoEUNetConfig(channels=(8, 8, 16, 16, 32)))
    train_cases, val_cases = _blob_cases(6, seed=2), _blob_cases(2, seed=3)
    before = float(np.mean(evaluate(network, val_cases, SLOTS)))
    config = TrainConfig(epochs=8, steps_per_epoch=6, batch_size=2, crop_size=32, seed=0, keep="last",
                         foreground_probability=0.7, modality_drop=False, precision="fp32")
    result = train(network, train_cases, config, SLOTS, validation=val_cases, device="cpu")
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < 0.7 * losses[0]
    assert result.history[-1]["val_dice"] > 0.6 > before


def test_cancel_restores_the_weights() -> None:
    network = MoEUNet(MoEUNetConfig(channels=(8, 8, 16, 16, 32)))
    before = {k: v.clone() for k, v in network.state_dict().items()}
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    with pytest.raises(CancelledError):
        train(network, _blob_cases(2, seed=4), TrainConfig(epochs=3, crop_size=32, precision="fp32"), SLOTS,
              device="cpu", cancel=cancel)
    assert all(torch.equal(before[k], v) for k, v in network.state_dict().items())


def test_label_validation(tmp_path) -> None:
    grid = make_grid((40, 40, 40), (2.0, 2.0, 2.0), origin=(-39.0, -39.0, -39.0))
    flair = sphere_case(grid)
    truth = ellipsoid_fraction(grid, (0.0, 0.0, 0.0), 12.0) > 0.5
    label = sitk.GetImageFromArray(truth.transpose(2, 1, 0).astype(np.uint8) * 2)
    label.CopyInformation(grid)
    with pytest.raises(InvalidImageError, match="only 0 and 1"):
        load_training_case("c1", {"FLAIR": flair}, label, "tumour", BRAINCL_CHANNEL_ORDER)
    case = load_training_case("c1", {"FLAIR": flair}, label, "tumour", BRAINCL_CHANNEL_ORDER,
                              label_mapping="nonzero")
    assert case.label.max() == 1 and case.label.sum() > 0
    assert case.present == [False, True, False, False, False, False]
    shifted = sitk.Image(label)
    shifted.SetOrigin((0.0, 0.0, 0.0))
    with pytest.raises(GeometryError, match="matches none of the case's images"):
        load_training_case("c1", {"FLAIR": flair}, shifted, "tumour", BRAINCL_CHANNEL_ORDER,
                           label_mapping="nonzero")


def test_joint_plan_draws_every_database_each_step_and_oversamples_the_small_one() -> None:
    from brainlesioncl.training import JointBatchPlan

    big, small = _blob_cases(6, seed=7), _blob_cases(2, seed=8)
    small_ids = {id(c) for c in small}
    plan = JointBatchPlan([big, small], batch_size=2)
    assert plan.steps() == 3  # the largest database (6 cases) in batches of 2
    batches = plan.batches(np.random.default_rng(0), plan.steps())
    assert all(len(b) == 4 and sum(id(c) in small_ids for c in b) == 2 for b in batches)
    drawn_small = [c.name for b in batches for c in b if id(c) in small_ids]
    assert len(drawn_small) == 6 and set(drawn_small) == {c.name for c in small}  # cycled three times
    assert sorted(c.name for b in batches for c in b if id(c) not in small_ids) == sorted(c.name for c in big)


def _single_modality(cases: list, channel: int) -> list:
    for case in cases:
        keep = case.image[channel].copy()
        case.image[:] = 0.0
        case.image[channel] = keep
        case.present = [i == channel for i in range(6)]
    return cases


@pytest.mark.slow
def test_joint_training_learns_both_databases() -> None:
    """One loss over a batch from each database: a FLAIR-only and a T1-only database both end up segmented."""
    from brainlesioncl.training import JointBatchPlan

    torch.manual_seed(0)
    flair_only, t1_only = _single_modality(_blob_cases(4, seed=9), 1), _single_modality(_blob_cases(4, seed=10), 3)
    network = MoEUNet(MoEUNetConfig(channels=(8, 8, 16, 16, 32)))
    config = TrainConfig(epochs=8, steps_per_epoch=5, batch_size=1, crop_size=32, seed=0, keep="last",
                         foreground_probability=0.7, modality_drop=False, precision="fp32")
    train(network, flair_only + t1_only, config, SLOTS, device="cpu", plan=JointBatchPlan([flair_only, t1_only], 1))
    assert np.mean(evaluate(network, _single_modality(_blob_cases(2, seed=11), 1), SLOTS)) > 0.5
    assert np.mean(evaluate(network, _single_modality(_blob_cases(2, seed=12), 3), SLOTS)) > 0.5
