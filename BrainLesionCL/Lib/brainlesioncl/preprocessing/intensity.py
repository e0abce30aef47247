"""Intensity normalisation."""

from __future__ import annotations

import numpy as np

__all__ = ["zscore_nonzero", "constant_background_value"]


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


def border_mode(array: np.ndarray) -> tuple[float, float]:
    """The most common exact value on the six faces of a volume, and the share of the border voxels it covers: a
    skull-stripped image's background is one exact value, a raw exam's air is noise."""
    faces = [array[0], array[-1], array[:, 0], array[:, -1], array[:, :, 0], array[:, :, -1]]
    border = np.concatenate([f.ravel() for f in faces])
    values, counts = np.unique(border, return_counts=True)
    best = int(np.argmax(counts))
    return float(values[best]), float(counts[best]) / border.size


def constant_background_value(array: np.ndarray, min_fraction: float = 0.9) -> float | None:
    """The value that fills the image border when the background is a nonzero constant, else None.

    Some pipelines export skull-stripped images already z-scored, so their background is ``-mean/std`` instead of 0
    (e.g. -3.62). Normalising "over nonzero voxels" would then treat the whole field of view as brain. When at least
    ``min_fraction`` of the border voxels share one exact nonzero value, that value is the background.
    """
    value, share = border_mode(array)
    if value != 0.0 and share >= min_fraction:
        return value
    return None
