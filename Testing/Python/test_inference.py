"""Prediction protocols, progress, cancellation, device choice and whole-case segmentation."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from synthetic import ellipsoid_fraction, make_grid

from brainlesioncl.errors import BrainLesionCLError, CancelledError, DiseaseNotSupportedError, InvalidImageError
from brainlesioncl.inference import (
    InferenceConfig,
    Predictor,
    Segmenter,
    build_context,
    label_statistics,
    select_device,
)
from brainlesioncl.io import from_xyz, to_xyz
from brainlesioncl.models import MoEUNet, MoEUNetConfig

from conftest import TINY_CHANNELS, ThresholdNet, sphere_case, tiny_metadata


def _prepared_sphere(size=(96, 96, 80)) -> np.ndarray:
    grid = make_grid(size, origin=[-(s - 1) / 2 for s in size])
    flair = to_xyz(sphere_case(grid, radius=14.0))
    array = np.zeros((6, *size), np.float32)
    array[1] = flair / flair.max()
    return array


def test_fast_and_reference_protocols_agree_on_a_known_predictor() -> None:
    array = _prepared_sphere()
    context = build_context([False, True, False, False, False, False], "tumour", ["tumour", "stroke", "MS", "WMH"])
    net = ThresholdNet(channel=1)
    fast = Predictor(net, device="cpu").predict(array, context)
    assert net.calls == 1  # the whole box in one pass
    net.calls = 0
    reference_config = InferenceConfig(mode="reference", roi_size=64, sw_batch_size=1)
    reference = Predictor(net, device="cpu", config=reference_config).predict(
        array, context
    )
    assert net.calls > 1
    a, b = fast >= 0.5, reference >= 0.5
    assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.98


def test_large_boxes_fall_back_to_windows() -> None:
    array = _prepared_sphere((96, 96, 96))
    net = ThresholdNet(channel=1)
    config = InferenceConfig(max_single_pass_voxels=64**3, fast_roi_size=64)
    probability = Predictor(net, device="cpu", config=config).predict(array, torch.zeros(1, 10))
    assert net.calls > 1 and probability.shape == (96, 96, 96)


def test_progress_is_reported_and_cancel_stops() -> None:
    array = _prepared_sphere((64, 64, 64))
    seen: list[float] = []
    predictor = Predictor(ThresholdNet(1), device="cpu", config=InferenceConfig(mode="reference", roi_size=32))
    predictor.predict(array, torch.zeros(1, 10), progress=lambda f, _s: seen.append(f))
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0) and len(seen) > 3
    calls = {"n": 0}

    def cancel_after_two() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    with pytest.raises(CancelledError):
        predictor.predict(array, torch.zeros(1, 10), cancel=cancel_after_two)


def test_device_selection() -> None:
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(BrainLesionCLError, match="CUDA was requested"):
            select_device("cuda")


def test_context_vector_layout() -> None:
    ctx = build_context([True, False, True, False, False, True], "MS", ["tumour", "stroke", "MS", "WMH"])
    assert ctx.tolist() == [[1, 0, 1, 0, 0, 1, 0, 0, 1, 0]]


def test_segment_with_a_real_tiny_network(flair_t1_files) -> None:
    segmenter = Segmenter(MoEUNet(MoEUNetConfig(channels=TINY_CHANNELS)), tiny_metadata(), device="cpu")
    stages: list[str] = []
    result = segmenter.segment(
        {"T1": flair_t1_files["t1"], "FLAIR": flair_t1_files["flair"]},
        "stroke",
        progress=lambda _f, s: stages.append(s),
    )
    t1 = sitk.ReadImage(str(flair_t1_files["t1"]))
    assert result.label.GetSize() == t1.GetSize() and result.label.GetPixelID() == sitk.sitkUInt8
    assert set(np.unique(sitk.GetArrayViewFromImage(result.label))) <= {0, 1}
    probability = sitk.GetArrayViewFromImage(result.probability)
    assert probability.min() >= 0 and probability.max() <= 1
    assert result.channels_used == ["FLAIR", "T1"]
    assert result.context == [0, 1, 0, 1, 0, 0, 0, 1, 0, 0]
    assert stages[0] == "reading images" and stages[-1] == "done"


class _OctantParityNet(torch.nn.Module):
    """Calls lesion the octants of odd parity: each single-axis mirror turns the answer into its complement, so the
    mean of the four views (identity + three flips) disagrees with the plain prediction almost everywhere."""

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        grids = torch.meshgrid(*(torch.arange(n) for n in x.shape[2:]), indexing="ij")
        parity = sum((g < n // 2).long() for g, n in zip(grids, x.shape[2:], strict=True)) % 2
        lesion = (40.0 * parity - 20.0).to(x.dtype)[None, None].expand(x.shape[0], 1, *x.shape[2:])
        return torch.cat([torch.zeros_like(lesion), lesion], dim=1)


def test_the_uncertainty_map_never_changes_the_segmentation_and_tta_is_its_own_choice(flair_t1_files) -> None:
    """Issue 31: ``--uncertainty`` said "also write a map" but segmented the mean of the mirrored views, so the labelmap
    changed with it (a real MS case: Dice 0.307 -> 0.247). The map now explains the one-pass result; averaging the
    views is ``tta``."""
    segmenter = Segmenter(_OctantParityNet(), tiny_metadata(), device="cpu")
    inputs = {"FLAIR": flair_t1_files["flair"]}
    plain = sitk.GetArrayFromImage(segmenter.segment(inputs, "tumour", prepare="off").label)
    explained = segmenter.segment(inputs, "tumour", prepare="off", uncertainty=True)
    assert np.array_equal(sitk.GetArrayFromImage(explained.label), plain) and explained.uncertainty is not None
    averaged = segmenter.segment(inputs, "tumour", prepare="off", tta=True)
    changed = np.mean(sitk.GetArrayFromImage(averaged.label) != plain)
    assert changed > 0.2 and averaged.uncertainty is None


def test_bad_requests_fail_before_heavy_work(flair_t1_files) -> None:
    net = ThresholdNet(1)
    metadata = tiny_metadata()
    metadata.disease_slots = ["tumour", "stroke"]
    segmenter = Segmenter(net, metadata, device="cpu")
    with pytest.raises(DiseaseNotSupportedError, match="no slot for disease 'WMH'"):
        segmenter.segment({"FLAIR": flair_t1_files["flair"]}, "WMH")
    with pytest.raises(InvalidImageError, match="file not found"):
        segmenter.segment({"FLAIR": "/nonexistent/flair.nii.gz"}, "tumour")
    assert net.calls == 0


def test_disjoint_volumes_are_a_geometry_error() -> None:
    from synthetic import two_object_image

    from brainlesioncl.errors import GeometryError

    def case(origin: float) -> sitk.Image:
        grid = make_grid((32, 32, 32), origin=(origin,) * 3)
        centre = (origin + 15.5,) * 3
        return two_object_image(grid, brain_centre=centre, brain_radii=(12,) * 3, lesion_centre=centre, lesion_radius=5)

    segmenter = Segmenter(ThresholdNet(1), tiny_metadata(), device="cpu")
    with pytest.raises(GeometryError, match="does not overlap"):
        segmenter.segment({"T1": case(-16.0), "FLAIR": case(500.0)}, "tumour")


def test_label_statistics_counts_lesions_and_volume() -> None:
    grid = make_grid((40, 40, 40), spacing=(0.5, 0.5, 2.0), origin=(-10.0, -10.0, -40.0))
    a = ellipsoid_fraction(grid, (-5.0, 0.0, 0.0), 3.0)
    b = ellipsoid_fraction(grid, (5.0, 0.0, 0.0), 3.0)
    label = from_xyz(((a + b) > 0.5).astype(np.uint8), grid)
    volume, count = label_statistics(label)
    assert count == 2
    assert volume == pytest.approx(np.count_nonzero((a + b) > 0.5) * 0.5 * 0.5 * 2.0 / 1000)


def test_small_lesion_removal_keeps_real_lesions() -> None:
    from brainlesioncl.inference.segmenter import label_statistics, remove_small_lesions

    array = np.zeros((30, 30, 30), np.uint8)
    array[5:15, 5:15, 5:15] = 1  # 1000 voxels
    array[25, 25, 25:27] = 1  # a 2-voxel speck
    label = sitk.GetImageFromArray(array)
    label.SetSpacing((1.0, 1.0, 2.0))  # 2 mm^3 voxels: the speck is 4 mm^3
    cleaned = remove_small_lesions(label, 5.0)
    assert label_statistics(label)[1] == 2 and label_statistics(cleaned)[1] == 1
    assert sitk.GetArrayViewFromImage(cleaned).sum() == 1000
    assert cleaned.GetSpacing() == label.GetSpacing()
    assert label_statistics(remove_small_lesions(label, 3.9))[1] == 2
    with pytest.raises(ValueError, match="min_lesion_mm3"):
        InferenceConfig(min_lesion_mm3=-1)


class _LeftHalfNet(torch.nn.Module):
    """Calls everything in the left half of the volume lesion: flipping left-right moves its answer, so the four
    views disagree exactly there (a known, maximal uncertainty)."""

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        lesion = torch.full_like(x[:, :1], -20.0)
        lesion[:, :, : x.shape[2] // 2] = 20.0
        return torch.cat([torch.zeros_like(lesion), lesion], dim=1)


def test_test_time_flips_give_mean_probability_and_entropy() -> None:
    from brainlesioncl.inference import Predictor

    array = np.random.default_rng(0).random((2, 32, 32, 32)).astype(np.float32)
    context = torch.zeros(1, 6)
    predictor = Predictor(_LeftHalfNet(), device="cpu")
    views = predictor.predict_mirrored(array, context)
    mean, entropy = views.mean, views.entropy
    assert mean.shape == entropy.shape == views.identity.shape == (32, 32, 32)
    assert np.allclose(views.identity[:16], 1.0, atol=1e-4) and np.allclose(views.identity[16:], 0.0, atol=1e-4)
    # identity + y + z flips agree with the left half; the x flip says right half: mean 0.75 left, 0.25 right
    assert np.allclose(mean[:16], 0.75, atol=1e-4) and np.allclose(mean[16:], 0.25, atol=1e-4)
    assert np.allclose(entropy, -(0.75 * np.log2(0.75) + 0.25 * np.log2(0.25)), atol=1e-3)
    certain = predictor.predict_mirrored(array, context, flips=((), (1,)))
    assert np.allclose(certain.mean[:16], 1.0, atol=1e-4) and certain.entropy.max() < 1e-3
