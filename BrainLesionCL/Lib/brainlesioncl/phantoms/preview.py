"""PNG previews: every modality of a case on the axial slice with the most lesion, with the label outlined."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import SimpleITK as sitk

__all__ = ["save_preview"]


def _xyz(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image).transpose(2, 1, 0)


def save_preview(
    images: Mapping[str, sitk.Image],
    path: str | os.PathLike,
    *,
    label: sitk.Image | None = None,
    prediction: sitk.Image | None = None,
    title: str = "",
) -> Path:
    """Save a row of axial slices (one per modality). Truth is outlined in green, a prediction in magenta.

    Images are shown in radiological convention (patient's right on the left of the picture). All images must share
    one grid (resample first if needed).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arrays = {name: _xyz(img) for name, img in images.items()}
    first = next(iter(arrays.values()))
    truth = _xyz(label) > 0 if label is not None else None
    pred = _xyz(prediction) > 0 if prediction is not None else None
    focus = truth if truth is not None and truth.any() else (pred if pred is not None and pred.any() else None)
    z = int(np.argmax(focus.sum(axis=(0, 1)))) if focus is not None else first.shape[2] // 2
    fig, axes = plt.subplots(1, len(arrays), figsize=(2.6 * len(arrays), 3.0), squeeze=False)
    for ax, (name, array) in zip(axes[0], arrays.items(), strict=True):
        slice_ = array[:, :, z]
        nonzero = slice_[slice_ != 0]
        vmax = np.percentile(nonzero, 99.5) if nonzero.size else 1.0
        vmin = np.percentile(nonzero, 0.5) if nonzero.size else 0.0
        # RAS array: x to the right, y anterior. Radiological display: rows = anterior->posterior, patient right left.
        ax.imshow(np.flipud(slice_.T), cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
        if truth is not None and truth[:, :, z].any():
            ax.contour(np.flipud(truth[:, :, z].T.astype(float)), levels=[0.5], colors="lime", linewidths=0.8)
        if pred is not None and pred[:, :, z].any():
            ax.contour(np.flipud(pred[:, :, z].T.astype(float)), levels=[0.5], colors="magenta", linewidths=0.8)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
