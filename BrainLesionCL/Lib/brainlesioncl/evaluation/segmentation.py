"""Per-case segmentation metrics: Dice, sensitivity, precision, HD95 and ASSD (in mm, MONAI's surface metrics).

Conventions (stated because they decide averages): Dice is 1 when prediction and truth are both empty; sensitivity
is undefined (NaN) without a lesion in the truth; precision is undefined without a predicted lesion; HD95/ASSD are
NaN when either side is empty.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

__all__ = ["CaseMetrics", "case_metrics", "dice", "hd95_mm"]


@dataclass
class CaseMetrics:
    dice: float
    sensitivity: float
    precision: float
    hd95_mm: float
    assd_mm: float
    truth_ml: float
    predicted_ml: float

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and math.isnan(v) else round(v, 4)) for k, v in asdict(self).items()}


def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    p, t = np.asarray(prediction) > 0, np.asarray(truth) > 0
    total = p.sum() + t.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(p, t).sum() / total)


def hd95_mm(prediction: np.ndarray, truth: np.ndarray, spacing: Sequence[float]) -> float:
    """95th-percentile symmetric Hausdorff distance in mm (MONAI); NaN when either mask is empty."""
    from monai.metrics import compute_hausdorff_distance

    p, t = np.asarray(prediction) > 0, np.asarray(truth) > 0
    if not (p.any() and t.any()):
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return float(compute_hausdorff_distance(torch.from_numpy(p[None, None].astype(np.float32)),
                                                torch.from_numpy(t[None, None].astype(np.float32)),
                                                percentile=95, spacing=list(spacing))[0, 0])


def case_metrics(prediction: np.ndarray, truth: np.ndarray, spacing: Sequence[float]) -> CaseMetrics:
    """All metrics of one case; arrays share one grid with voxel ``spacing`` (mm, same axis order)."""
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    p, t = np.asarray(prediction) > 0, np.asarray(truth) > 0
    if p.shape != t.shape:
        raise ValueError(f"prediction {p.shape} and truth {t.shape} differ in shape")
    tp = float(np.logical_and(p, t).sum())
    sensitivity = tp / t.sum() if t.any() else math.nan
    precision = tp / p.sum() if p.any() else math.nan
    if p.any() and t.any():
        y_pred = torch.from_numpy(p[None, None].astype(np.float32))
        y = torch.from_numpy(t[None, None].astype(np.float32))
        with warnings.catch_warnings():  # MONAI warns about its own internal use of a deprecated argument
            warnings.simplefilter("ignore", FutureWarning)
            hd95 = float(compute_hausdorff_distance(y_pred, y, percentile=95, spacing=list(spacing))[0, 0])
            assd = float(compute_average_surface_distance(y_pred, y, symmetric=True, spacing=list(spacing))[0, 0])
    else:
        hd95 = assd = math.nan
    voxel_ml = float(np.prod(spacing)) / 1000.0
    return CaseMetrics(
        dice=dice(p, t),
        sensitivity=sensitivity,
        precision=precision,
        hd95_mm=hd95,
        assd_mm=assd,
        truth_ml=float(t.sum()) * voxel_ml,
        predicted_ml=float(p.sum()) * voxel_ml,
    )
