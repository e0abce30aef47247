"""Lesion-wise metrics as the BraTS-METS 2023 challenge defines them, for many small lesions.

Whole-volume Dice hides a missed 3 mm metastasis behind a well-segmented large one; lesion-wise scores do not.
Per region (whole tumour WT = labels 1, 2, 3; tumour core TC = 1, 3; enhancing tumour ET = 3):

1. Ground-truth lesions are the 26-connected components of the region after **one dilation** (3x3x3), so lesions a
   voxel apart count as one, each then cut back to the original ground truth; lesions of **<= 2 voxels** are ignored.
2. Predicted lesions are the 26-connected components of the prediction (<= 2 voxels ignored as well).
3. Each ground-truth lesion is matched with every predicted lesion that touches it after one dilation; its Dice and
   HD95 are computed against the union of those. A missed lesion scores Dice 0 and HD95 374 mm.
4. Every predicted lesion that matches no ground-truth lesion is a **false positive**: Dice 0, HD95 374 mm.
5. Lesion-wise Dice (HD95) = sum over ground-truth lesions and false positives / their number. With no lesion on
   either side the case scores Dice 1, HD95 0.

Also reported: lesion-wise sensitivity (detected / ground-truth lesions), false positives per case, and whole-volume
Dice and HD95 for every region.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from .metrics import dice, hd95_mm

__all__ = ["FP_HD95_MM", "REGIONS", "LesionScores", "lesion_scores", "lesion_wise_metrics"]

#: HD95 assigned to a missed or false-positive lesion (the diagonal of the BraTS volume, as the challenge uses).
FP_HD95_MM = 374.0
#: Region -> labels it contains (enhancing 3, necrotic/non-enhancing core 1, oedema 2).
REGIONS: dict[str, tuple[int, ...]] = {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}
_CONNECTIVITY = np.ones((3, 3, 3), bool)


@dataclass(frozen=True)
class LesionScores:
    lesion_dice: float
    lesion_hd95_mm: float
    lesion_sensitivity: float  # NaN without ground-truth lesions
    false_positives: int
    true_lesions: int
    detected_lesions: int
    volume_dice: float
    volume_hd95_mm: float  # NaN when a side is empty

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def _components(mask: np.ndarray, min_voxels: int) -> list[np.ndarray]:
    labels, count = ndimage.label(mask, structure=_CONNECTIVITY)
    if count == 0:
        return []
    sizes = np.bincount(labels.ravel())
    return [labels == i for i in range(1, count + 1) if sizes[i] > min_voxels]


def lesion_scores(prediction: np.ndarray, truth: np.ndarray, spacing: Sequence[float], *,
                  ignore_voxels: int = 2) -> LesionScores:
    """Lesion-wise scores of one binary region (see the module docstring)."""
    p, t = np.asarray(prediction) > 0, np.asarray(truth) > 0
    if p.shape != t.shape:
        raise ValueError(f"prediction {p.shape} and truth {t.shape} differ in shape")
    merged = ndimage.binary_dilation(t, structure=_CONNECTIVITY)
    truth_lesions = [c & t for c in _components(merged, 0)]
    truth_lesions = [c for c in truth_lesions if c.sum() > ignore_voxels]
    predicted = _components(p, ignore_voxels)
    matched: set[int] = set()
    dices, distances, detected = [], [], 0
    for lesion in truth_lesions:
        reach = ndimage.binary_dilation(lesion, structure=_CONNECTIVITY)
        hits = [i for i, component in enumerate(predicted) if np.logical_and(component, reach).any()]
        matched.update(hits)
        if hits:
            detected += 1
            union = np.logical_or.reduce([predicted[i] for i in hits])
            dices.append(dice(union, lesion))
            distances.append(hd95_mm(union, lesion, spacing))
        else:
            dices.append(0.0)
            distances.append(FP_HD95_MM)
    false_positives = len(predicted) - len(matched)
    total = len(truth_lesions) + false_positives
    if total == 0:
        lesion_dice, lesion_hd95 = 1.0, 0.0
    else:
        lesion_dice = float(np.sum(dices) / total)
        lesion_hd95 = float((np.sum(distances) + FP_HD95_MM * false_positives) / total)
    return LesionScores(
        lesion_dice=lesion_dice,
        lesion_hd95_mm=lesion_hd95,
        lesion_sensitivity=detected / len(truth_lesions) if truth_lesions else math.nan,
        false_positives=false_positives,
        true_lesions=len(truth_lesions),
        detected_lesions=detected,
        volume_dice=dice(p, t),
        volume_hd95_mm=hd95_mm(p, t, spacing),
    )


def lesion_wise_metrics(prediction: np.ndarray, truth: np.ndarray, spacing: Sequence[float],
                        regions: Mapping[str, Sequence[int]] = REGIONS) -> dict[str, LesionScores]:
    """Scores per region of two multi-class label maps (enhancing 3, core 1, oedema 2)."""
    prediction, truth = np.asarray(prediction), np.asarray(truth)
    return {name: lesion_scores(np.isin(prediction, labels), np.isin(truth, labels), spacing)
            for name, labels in regions.items()}
