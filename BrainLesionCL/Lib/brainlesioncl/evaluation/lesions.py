"""Lesion-wise metrics that agree with the official BraTS 2023 lesion-wise evaluation code, variant by variant.

Whole-volume Dice hides a missed 3 mm metastasis behind a well-segmented large one; lesion-wise scores do not. Met-Seg's
published lesion-wise Dice was computed with the official BraTS 2023 code, so ours follows its rules exactly
(re-implemented from the rules, not copied):

1. Dilation uses the 18-neighbourhood (``generate_binary_structure(3, 2)``), applied ``dilation_iterations`` times:
   1 for BraTS-MET and -MEN, 3 for BraTS-GLI, -PED and -SSA (:data:`VARIANTS`).
2. Connected components are 26-connected. Ground-truth lesions are the components of the *dilated* ground truth, each
   restricted back to the original ground-truth voxels (lesions that touch after dilation merge).
3. Each ground-truth lesion is dilated the same way; **every** predicted component intersecting that dilated lesion is
   a match, and the lesion's Dice and HD95 are computed against the union of the whole matched components. A lesion
   with no match scores Dice 0 and HD95 374 mm (:data:`FP_HD95_MM`).
4. Predicted components are **not** filtered by size: each one matching no ground-truth lesion is a false positive
   (Dice 0, HD95 374 mm), a single voxel included.
5. Ground-truth lesions of volume <= ``min_lesion_mm3`` (2 mm³ for MET, 50 mm³ for GLI, SSA, MEN and PED) are left out
   of the average, detected or not; predictions that match them are still matches, not false positives.
6. Lesion-wise score = (sum over the remaining ground-truth lesions + 0 Dice / 374 mm per false positive) / (their
   number + false positives); no remaining lesion and no false positive: Dice 1, HD95 0. Regions: WT (labels 1, 2, 3),
   TC (1, 3), ET (3).

Where we differ from the official code: HD95 is MONAI's (95th percentile of each direction's surface-voxel distances,
the larger of the two, in mm), the one implementation used everywhere in BrainLesionCL
(:func:`~brainlesioncl.evaluation.segmentation.hd95_mm`); the official code uses the surface-distance package, whose
surfel-area weighting can differ by a fraction of a voxel. Matching works on bounding boxes
(``scipy.ndimage.find_objects``), so cases with hundreds of metastases stay fast.

The current challenges (BraTS 2025) score with panoptica's instance matching: :func:`panoptica_scores` runs the
maintained ``panoptica`` package (``pip install brainlesioncl[challenge]``), not a re-implementation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from ..errors import SettingsError
from .segmentation import dice, hd95_mm

__all__ = ["FP_HD95_MM", "REGIONS", "VARIANTS", "ChallengeVariant", "LesionScores", "lesion_scores",
           "lesion_wise_metrics", "panoptica_scores"]

#: HD95 assigned to a missed or false-positive lesion (the diagonal of the BraTS volume, as the challenge uses).
FP_HD95_MM = 374.0
#: Region -> labels it contains (enhancing 3, necrotic/non-enhancing core 1, oedema 2).
REGIONS: dict[str, tuple[int, ...]] = {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}
DILATION_STRUCTURE = ndimage.generate_binary_structure(3, 2)  # 18-neighbourhood
COMPONENT_STRUCTURE = ndimage.generate_binary_structure(3, 3)  # 26-connectivity


@dataclass(frozen=True)
class ChallengeVariant:
    name: str
    dilation_iterations: int
    min_lesion_mm3: float


VARIANTS: dict[str, ChallengeVariant] = {
    "MET": ChallengeVariant("MET", 1, 2.0),
    "MEN": ChallengeVariant("MEN", 1, 50.0),
    "GLI": ChallengeVariant("GLI", 3, 50.0),
    "PED": ChallengeVariant("PED", 3, 50.0),
    "SSA": ChallengeVariant("SSA", 3, 50.0),
}


@dataclass(frozen=True)
class LesionScores:
    lesion_dice: float
    lesion_hd95_mm: float
    lesion_sensitivity: float  # NaN without ground-truth lesions (above the size threshold)
    false_positives: int
    true_lesions: int  # ground-truth lesions above the size threshold
    detected_lesions: int
    volume_dice: float
    volume_hd95_mm: float  # NaN when a side is empty

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def _variant(variant: str | ChallengeVariant) -> ChallengeVariant:
    if isinstance(variant, ChallengeVariant):
        return variant
    key = str(variant).upper().replace("BRATS-", "")
    if key not in VARIANTS:
        raise SettingsError(f"Unknown challenge variant {variant!r}; use one of {', '.join(VARIANTS)}.")
    return VARIANTS[key]


def _grown(box: tuple[slice, ...], margin: int, shape: Sequence[int]) -> tuple[slice, ...]:
    return tuple(slice(max(0, s.start - margin), min(n, s.stop + margin)) for s, n in zip(box, shape, strict=True))


def _union(boxes: Sequence[tuple[slice, ...]]) -> tuple[slice, ...]:
    return tuple(slice(min(b[d].start for b in boxes), max(b[d].stop for b in boxes)) for d in range(3))


def lesion_scores(prediction: np.ndarray, truth: np.ndarray, spacing: Sequence[float], *,
                  variant: str | ChallengeVariant = "MET") -> LesionScores:
    """Lesion-wise scores of one binary region under a challenge variant's rules (see the module docstring)."""
    rules = _variant(variant)
    p, t = np.asarray(prediction) > 0, np.asarray(truth) > 0
    if p.shape != t.shape or p.ndim != 3:
        raise ValueError(f"prediction {p.shape} and truth {t.shape} must be 3-D arrays of one shape")
    voxel_mm3 = float(np.prod(spacing))
    predicted, _ = ndimage.label(p, structure=COMPONENT_STRUCTURE)
    predicted_boxes = ndimage.find_objects(predicted)
    merged, _ = ndimage.label(ndimage.binary_dilation(t, DILATION_STRUCTURE, iterations=rules.dilation_iterations),
                              structure=COMPONENT_STRUCTURE)
    lesions = np.where(t, merged, 0)  # each ground-truth voxel labelled by its dilated component
    matched: set[int] = set()
    kept_dice, kept_hd95, detected = [], [], 0
    for index, box in enumerate(ndimage.find_objects(lesions), start=1):
        if box is None:
            continue
        reach_box = _grown(box, rules.dilation_iterations, t.shape)
        lesion_in_reach = lesions[reach_box] == index
        reach = ndimage.binary_dilation(lesion_in_reach, DILATION_STRUCTURE, iterations=rules.dilation_iterations)
        hits = [int(h) for h in np.unique(predicted[reach_box][reach]) if h]
        matched.update(hits)
        if lesion_in_reach.sum() * voxel_mm3 <= rules.min_lesion_mm3:
            continue  # too small to be scored; its matches are still matches
        if hits:
            detected += 1
            crop = _union([box, *(predicted_boxes[h - 1] for h in hits)])
            union = np.isin(predicted[crop], hits)
            lesion = lesions[crop] == index
            kept_dice.append(dice(union, lesion))
            kept_hd95.append(hd95_mm(union, lesion, spacing))
        else:
            kept_dice.append(0.0)
            kept_hd95.append(FP_HD95_MM)
    false_positives = sum(1 for index, box in enumerate(predicted_boxes, start=1)
                          if box is not None and index not in matched)
    total = len(kept_dice) + false_positives
    if total == 0:
        lesion_dice, lesion_hd95 = 1.0, 0.0
    else:
        lesion_dice = float(np.sum(kept_dice) / total)
        lesion_hd95 = float((np.sum(kept_hd95) + FP_HD95_MM * false_positives) / total)
    return LesionScores(
        lesion_dice=lesion_dice,
        lesion_hd95_mm=lesion_hd95,
        lesion_sensitivity=detected / len(kept_dice) if kept_dice else math.nan,
        false_positives=false_positives,
        true_lesions=len(kept_dice),
        detected_lesions=detected,
        volume_dice=dice(p, t),
        volume_hd95_mm=hd95_mm(p, t, spacing),
    )


def lesion_wise_metrics(prediction: np.ndarray, truth: np.ndarray, spacing: Sequence[float],
                        regions: Mapping[str, Sequence[int]] = REGIONS, *,
                        variant: str | ChallengeVariant = "MET") -> dict[str, LesionScores]:
    """Scores per region of two multi-class label maps (enhancing 3, core 1, oedema 2)."""
    prediction, truth = np.asarray(prediction), np.asarray(truth)
    return {name: lesion_scores(np.isin(prediction, labels), np.isin(truth, labels), spacing, variant=variant)
            for name, labels in regions.items()}


def panoptica_scores(prediction: np.ndarray, truth: np.ndarray, spacing: Sequence[float],
                     regions: Mapping[str, Sequence[int]] = REGIONS, *,
                     matching_iou: float = 0.5) -> dict[str, dict[str, float]]:
    """Instance-wise scores per region with the ``panoptica`` package (connected components, one-to-one matching
    at IoU > ``matching_iou``), as the BraTS 2025 challenges report them: panoptic/recognition/segmentation quality,
    instance Dice, true/false positives and negatives, global Dice.

    Raises:
        SettingsError: panoptica is not installed (the message names the install command).
    """
    try:
        import panoptica
        from panoptica import (
            ConnectedComponentsInstanceApproximator,
            InputType,
            NaiveThresholdMatching,
            Panoptica_Evaluator,
        )
        from panoptica.metrics import Metric
    except ImportError as err:
        raise SettingsError(
            "The panoptica metrics need the optional package panoptica: pip install -e '.[challenge]' in a clone of "
            "BrainLesionCL (pip install 'brainlesioncl[challenge]' from a package index)."
        ) from err
    if hasattr(panoptica, "disable_citation_reminder"):
        panoptica.disable_citation_reminder()  # it prints a banner on the first call
    evaluator = Panoptica_Evaluator(
        expected_input=InputType.SEMANTIC, instance_approximator=ConnectedComponentsInstanceApproximator(),
        instance_matcher=NaiveThresholdMatching(matching_metric=Metric.IOU, matching_threshold=matching_iou),
        verbose=False,
    )
    prediction, truth = np.asarray(prediction), np.asarray(truth)
    keys = ("pq", "rq", "sq", "sq_dsc", "pq_dsc", "tp", "fp", "fn", "global_bin_dsc")
    scores = {}
    for name, labels in regions.items():
        result = evaluator.evaluate(np.isin(prediction, labels).astype(np.uint8),
                                    np.isin(truth, labels).astype(np.uint8), voxelspacing=tuple(spacing))["ungrouped"]
        values = result.to_dict()
        scores[name] = {k: float(values[k]) if values.get(k) is not None else math.nan for k in keys}
    return scores
