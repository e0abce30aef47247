"""BraTS-METS lesion-wise metrics against values worked out by hand on tiny label maps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from brainlesioncl.lesion_metrics import FP_HD95_MM, lesion_scores, lesion_wise_metrics


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
