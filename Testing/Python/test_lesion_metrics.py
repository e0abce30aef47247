"""BraTS-METS lesion-wise metrics against values worked out by hand on tiny label maps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from brainlesioncl.evaluation.lesions import FP_HD95_MM, lesion_scores, lesion_wise_metrics


def _box(shape, lo, hi) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))] = True
    return mask


SHAPE = (40, 40, 40)
SPACING = (1.0, 1.0, 1.0)


def test_one_found_one_missed_one_false_positive() -> None:
    a = _box(SHAPE, (2, 2, 2), (6, 6, 6))  # 64 voxels, predicted exactly
    b = _box(SHAPE, (20, 20, 20), (23, 23, 23))  # 27 voxels, missed
    fp = _box(SHAPE, (30, 30, 30), (32, 32, 32))  # 8 voxels, not in the truth
    truth, prediction = a | b, a | fp
    scores = lesion_scores(prediction, truth, SPACING)
    # Lesions: a (Dice 1, HD95 0), b (Dice 0, HD95 374), fp (Dice 0, HD95 374): three terms.
    assert scores.true_lesions == 2 and scores.detected_lesions == 1 and scores.false_positives == 1
    assert scores.lesion_dice == pytest.approx(1 / 3)
    assert scores.lesion_hd95_mm == pytest.approx(2 * FP_HD95_MM / 3)
    assert scores.lesion_sensitivity == pytest.approx(0.5)
    assert scores.volume_dice == pytest.approx(2 * 64 / (72 + 91))


def test_lesions_one_voxel_apart_merge_and_tiny_ones_are_ignored() -> None:
    left = _box(SHAPE, (10, 10, 10), (14, 14, 14))
    right = _box(SHAPE, (15, 10, 10), (19, 14, 14))  # one empty voxel between: merged by the dilation
    speck = _box(SHAPE, (30, 30, 30), (31, 31, 32))  # 2 voxels: ignored on both sides
    scores = lesion_scores(left | speck, left | right | speck, SPACING)
    assert scores.true_lesions == 1 and scores.false_positives == 0
    assert scores.lesion_dice == pytest.approx(2 * 64 / (64 + 128))  # the half found counts against the merged lesion


def test_half_overlap_dice_and_a_touching_prediction_counts_as_a_match() -> None:
    truth = _box(SHAPE, (10, 10, 10), (20, 14, 14))  # 160 voxels
    prediction = _box(SHAPE, (15, 10, 10), (25, 14, 14))  # 160 voxels, 80 shared
    assert lesion_scores(prediction, truth, SPACING).lesion_dice == pytest.approx(0.5)
    adjacent = _box(SHAPE, (20, 10, 10), (24, 14, 14))  # touches the truth's face: matched (Dice 0), not an FP
    scores = lesion_scores(adjacent, truth, SPACING)
    assert scores.false_positives == 0 and scores.detected_lesions == 1 and scores.lesion_dice == 0.0


def test_empty_cases() -> None:
    empty = np.zeros(SHAPE, bool)
    both = lesion_scores(empty, empty, SPACING)
    assert both.lesion_dice == 1.0 and both.lesion_hd95_mm == 0.0 and math.isnan(both.lesion_sensitivity)
    only_fp = lesion_scores(_box(SHAPE, (1, 1, 1), (4, 4, 4)), empty, SPACING)
    assert only_fp.lesion_dice == 0.0 and only_fp.lesion_hd95_mm == FP_HD95_MM and only_fp.false_positives == 1


def test_regions_of_a_multiclass_label() -> None:
    truth = np.zeros(SHAPE, np.uint8)
    truth[5:15, 5:15, 5:15] = 2  # oedema
    truth[8:12, 8:12, 8:12] = 3  # enhancing inside
    prediction = truth.copy()
    prediction[prediction == 3] = 1  # enhancing called core: ET missed, TC and WT perfect
    scores = lesion_wise_metrics(prediction, truth, SPACING)
    assert scores["WT"].lesion_dice == pytest.approx(1.0) and scores["TC"].lesion_dice == pytest.approx(1.0)
    assert scores["ET"].lesion_dice == 0.0 and scores["ET"].detected_lesions == 0


# -- the official BraTS 2023 rules, one hand-worked case each ---------------------------------------------------------
def test_dilation_is_the_18_neighbourhood_not_the_full_cube() -> None:
    """A [10, 14)^3 and B [16, 18)^3: a full 3x3x3 dilation merges them (corner to corner), the 18-neighbourhood does
    not (the coordinate sums of the two dilated corners differ by 5 > 3)."""
    a = _box(SHAPE, (10, 10, 10), (14, 14, 14))
    b = _box(SHAPE, (16, 16, 16), (18, 18, 18))
    scores = lesion_scores(a, a | b, SPACING)
    assert scores.true_lesions == 2 and scores.detected_lesions == 1
    assert scores.lesion_dice == pytest.approx(0.5)  # a full-cube dilation would give 2*64/(64+72) = 0.94


def test_a_one_voxel_false_positive_counts() -> None:
    a = _box(SHAPE, (5, 5, 5), (9, 9, 9))
    speck = _box(SHAPE, (30, 30, 30), (31, 31, 31))
    scores = lesion_scores(a | speck, a, SPACING)
    assert scores.false_positives == 1
    assert scores.lesion_dice == pytest.approx(0.5) and scores.lesion_hd95_mm == pytest.approx(FP_HD95_MM / 2)


def test_a_small_ground_truth_lesion_is_left_out_but_its_match_is_no_false_positive() -> None:
    a = _box(SHAPE, (5, 5, 5), (9, 9, 9))
    small = _box(SHAPE, (30, 30, 30), (31, 31, 32))  # 2 voxels = 2 mm^3 <= 2: left out under MET
    matched = lesion_scores(a | small, a | small, SPACING)
    assert matched.true_lesions == 1 and matched.false_positives == 0 and matched.lesion_dice == 1.0
    missed = lesion_scores(a, a | small, SPACING)
    assert missed.lesion_dice == 1.0 and missed.lesion_sensitivity == 1.0


def test_the_size_threshold_is_in_cubic_millimetres() -> None:
    a = _box(SHAPE, (5, 5, 5), (10, 10, 10))  # 125 voxels
    lesion = _box(SHAPE, (25, 25, 25), (28, 28, 28))  # 27 voxels, missed
    at_1mm = lesion_scores(a, a | lesion, (1.0, 1.0, 1.0), variant="GLI")  # 27 mm^3 <= 50: left out
    at_2mm = lesion_scores(a, a | lesion, (2.0, 2.0, 2.0), variant="GLI")  # 216 mm^3: counted, missed
    assert at_1mm.true_lesions == 1 and at_1mm.lesion_dice == 1.0
    assert at_2mm.true_lesions == 2 and at_2mm.lesion_dice == pytest.approx(0.5)


def test_lesions_that_touch_after_dilation_merge_per_variant() -> None:
    """A face gap of 6 voxels: three 18-dilations from each side close it (GLI), one does not (MET)."""
    left = _box(SHAPE, (5, 10, 10), (10, 14, 14))
    right = _box(SHAPE, (16, 10, 10), (21, 14, 14))
    met = lesion_scores(left, left | right, SPACING, variant="MET")
    gli = lesion_scores(left, left | right, SPACING, variant="GLI")
    assert met.true_lesions == 2 and met.lesion_dice == pytest.approx(0.5)
    assert gli.true_lesions == 1 and gli.lesion_dice == pytest.approx(2 * 80 / (80 + 160))


def test_a_match_takes_the_whole_predicted_component() -> None:
    """A prediction that reaches into the dilated lesion is matched as a whole, including its part far away."""
    truth = _box(SHAPE, (10, 10, 10), (14, 14, 14))  # 64
    prediction = _box(SHAPE, (13, 10, 10), (30, 14, 14))  # 17 x 4 x 4 = 272, 16 shared
    scores = lesion_scores(prediction, truth, SPACING)
    assert scores.false_positives == 0 and scores.lesion_dice == pytest.approx(2 * 16 / (64 + 272))


def test_variants_and_region_metrics() -> None:
    from brainlesioncl.errors import SettingsError
    from brainlesioncl.evaluation.lesions import VARIANTS

    assert {k: (v.dilation_iterations, v.min_lesion_mm3) for k, v in VARIANTS.items()} == {
        "MET": (1, 2.0), "MEN": (1, 50.0), "GLI": (3, 50.0), "PED": (3, 50.0), "SSA": (3, 50.0)}
    with pytest.raises(SettingsError, match="Unknown challenge variant"):
        lesion_scores(np.zeros(SHAPE), np.zeros(SHAPE), SPACING, variant="LIVER")
    truth = np.zeros(SHAPE, np.uint8)
    truth[_box(SHAPE, (5, 5, 5), (15, 15, 15))] = 2
    truth[_box(SHAPE, (8, 8, 8), (12, 12, 12))] = 3
    scores = lesion_wise_metrics(truth, truth, SPACING)
    assert scores["WT"].lesion_dice == scores["ET"].lesion_dice == 1.0 and scores["TC"].true_lesions == 1


def test_whole_volume_dice_and_hd95_agree_with_monai() -> None:
    import torch
    from monai.metrics import compute_dice, compute_hausdorff_distance

    from brainlesioncl.evaluation.segmentation import dice, hd95_mm

    rng = np.random.default_rng(7)
    spacing = (1.2, 0.9, 2.5)
    for _ in range(3):
        truth = _box(SHAPE, rng.integers(2, 12, 3), rng.integers(20, 38, 3))
        prediction = _box(SHAPE, rng.integers(2, 12, 3), rng.integers(20, 38, 3)) | (rng.random(SHAPE) > 0.995)
        p, t = (torch.from_numpy(m[None, None].astype(np.float32)) for m in (prediction, truth))
        assert dice(prediction, truth) == pytest.approx(float(compute_dice(p, t)[0, 0]), rel=1e-6)
        assert hd95_mm(prediction, truth, spacing) == pytest.approx(
            float(compute_hausdorff_distance(p, t, percentile=95, spacing=list(spacing))[0, 0]), rel=1e-6)


def test_panoptica_instance_scores() -> None:
    pytest.importorskip("panoptica", reason="panoptica is optional: pip install 'brainlesioncl[challenge]'")
    from brainlesioncl.evaluation.lesions import panoptica_scores

    a = _box(SHAPE, (2, 2, 2), (6, 6, 6))
    b = _box(SHAPE, (20, 20, 20), (23, 23, 23))
    fp = _box(SHAPE, (30, 30, 30), (32, 32, 32))
    scores = panoptica_scores((a | fp).astype(np.uint8), (a | b).astype(np.uint8), SPACING, {"WT": (1,)})["WT"]
    assert (scores["tp"], scores["fp"], scores["fn"]) == (1, 1, 1)
    assert scores["rq"] == pytest.approx(0.5) and scores["sq_dsc"] == pytest.approx(1.0)
    assert scores["global_bin_dsc"] == pytest.approx(2 * 64 / (72 + 91))
