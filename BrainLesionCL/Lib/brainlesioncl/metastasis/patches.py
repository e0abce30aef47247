"""Splitting a volume into overlapping cubes and stitching per-patch logits back, as the reference does.

Patches of ``size`` with ``overlap`` (0.5: stride size/2) cover the zero-padded volume; only the patches the detector
accepts are segmented, their logits are summed and divided by how many accepted patches covered each voxel, and
voxels no accepted patch covered are background.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["patch_starts", "pad_to_patches", "stitch"]


def pad_to_patches(shape: Sequence[int], size: int) -> list[tuple[int, int]]:
    """Padding (before, after) per axis so every axis is at least ``size`` long."""
    return [(0, max(0, size - int(s))) for s in shape]


def patch_starts(shape: Sequence[int], size: int, overlap: float = 0.5) -> list[tuple[int, int, int]]:
    """Start corners covering ``shape`` (each axis >= size) with the given overlap; the last patch ends at the edge.

    The same corners as MONAI's ``dense_patch_slices`` (pinned in Testing/Python/test_monai_equivalence.py); kept as
    corners because :func:`stitch` and the detector's accept list index patches by them."""
    step = max(1, int(round(size * (1 - overlap))))
    axes = []
    for s in shape:
        starts = list(range(0, max(int(s) - size, 0) + 1, step))
        if starts[-1] + size < s:
            starts.append(int(s) - size)
        axes.append(starts)
    return [(x, y, z) for x in axes[0] for y in axes[1] for z in axes[2]]


def stitch(shape: Sequence[int], size: int, channels: int,
           accepted: Sequence[tuple[tuple[int, int, int], np.ndarray]]) -> np.ndarray:
    """Mean logits of the accepted patches per voxel; -inf-like (-1e4) where no accepted patch reached."""
    total = np.zeros((channels, *shape), np.float32)
    count = np.zeros(tuple(shape), np.float32)
    for (x, y, z), logits in accepted:
        total[:, x:x + size, y:y + size, z:z + size] += logits
        count[x:x + size, y:y + size, z:z + size] += 1
    covered = count > 0
    out = np.full((channels, *shape), -1e4, np.float32)
    out[:, covered] = total[:, covered] / count[covered]
    return out
