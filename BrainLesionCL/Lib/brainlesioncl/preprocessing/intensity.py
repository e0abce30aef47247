"""Intensity normalisation."""

from __future__ import annotations

import numpy as np

__all__ = ["zscore_nonzero"]


def zscore_nonzero(array: np.ndarray, *, zero_background: bool = True) -> np.ndarray:
    """Z-score with the mean/std of the nonzero voxels (the brain of a skull-stripped image).

    With ``zero_background`` (default) zero voxels stay exactly 0: MONAI's ``NormalizeIntensity(nonzero=True)`` per
    channel, what the BrainCL weights were trained with. Without it the whole array is shifted and scaled, so the
    background becomes -mean/std: MultiUnet's preprocessing. Returns a new float32 array.
    """
    out = np.asarray(array, dtype=np.float32).copy()
    mask = out != 0
    if not mask.any():
        return out
    values = out[mask]
    mean = float(values.mean(dtype=np.float64))
    std = float(values.std(dtype=np.float64))
    scale = std if std > 1e-8 else 1.0
    if zero_background:
        out[mask] = (values - mean) / scale
    else:
        out = (out - mean) / scale
    return out
