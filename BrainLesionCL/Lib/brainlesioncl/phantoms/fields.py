"""Smooth random fields and soft shapes: the raw material of the procedural phantoms.

All shapes are *soft*: a membership in [0, 1] that falls from 1 to 0 over about one voxel across the surface, which
is what partial volume looks like once the membership weights the tissue intensities.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = ["Coordinates", "smooth_noise", "soft_inside", "ellipsoid_distance"]


class Coordinates:
    """Physical coordinates (mm) of every voxel of a RAS grid centred on the brain: x right, y anterior, z up.

    ``x, y, z`` are the (possibly deformed) coordinates at which anatomy is evaluated; ``spacing`` is the voxel size.
    """

    def __init__(self, size: Sequence[int], spacing: float) -> None:
        self.size = tuple(int(s) for s in size)
        self.spacing = float(spacing)
        axes = [(np.arange(n, dtype=np.float32) - (n - 1) / 2) * spacing for n in self.size]
        self.x, self.y, self.z = np.meshgrid(*axes, indexing="ij", copy=True)

    def deform(
        self, rng: np.random.Generator, *, scale: Sequence[float], rotation_deg: Sequence[float], elastic_mm: float
    ) -> None:
        """Scale, rotate and elastically warp the coordinates, so no two cases share anatomy.

        A point of the *template* anatomy at ``p`` appears in the image where ``R S p + d`` is; we evaluate the
        anatomy at the inverse, ``p = S^-1 R^T (q - d(q))``, which is good enough for smooth small ``d``.
        """
        dx, dy, dz = (elastic_mm * smooth_noise(self.size, rng, 18.0, self.spacing) for _ in range(3))
        x, y, z = self.x - dx, self.y - dy, self.z - dz
        ax, ay, az = np.deg2rad(rotation_deg)
        rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
        ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
        rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
        inverse = (rz @ ry @ rx).T.astype(np.float32)
        self.x = (inverse[0, 0] * x + inverse[0, 1] * y + inverse[0, 2] * z) / np.float32(scale[0])
        self.y = (inverse[1, 0] * x + inverse[1, 1] * y + inverse[1, 2] * z) / np.float32(scale[1])
        self.z = (inverse[2, 0] * x + inverse[2, 1] * y + inverse[2, 2] * z) / np.float32(scale[2])


def smooth_noise(size: Sequence[int], rng: np.random.Generator, feature_mm: float, spacing: float) -> np.ndarray:
    """Gaussian random field with features of about ``feature_mm``, zero mean and unit standard deviation.

    White noise on a coarse grid (a quarter of the feature size per cell) is Gaussian-smoothed there and then
    upsampled trilinearly: the field is already smooth at the coarse scale, so the upsampling adds no visible
    creases, and it costs milliseconds instead of the seconds of a full-resolution filter.
    """
    import torch

    size = tuple(int(s) for s in size)
    cell = feature_mm / (4.0 * spacing)  # in voxels
    step = max(cell, 1.0)
    sigma = 2.0 * cell / step  # 2 cells = feature_mm / 2
    coarse_shape = tuple(int(np.ceil((n - 1) / step)) + 1 for n in size)
    coarse = ndimage.gaussian_filter(rng.standard_normal(coarse_shape).astype(np.float32), sigma=sigma, mode="wrap")
    if step > 1.0:
        target = tuple(int(round((c - 1) * step)) + 1 for c in coarse_shape)
        fine = torch.nn.functional.interpolate(
            torch.from_numpy(coarse)[None, None], size=target, mode="trilinear", align_corners=True
        )[0, 0].numpy()
        fine = fine[: size[0], : size[1], : size[2]]
    else:
        fine = coarse
    fine = fine - fine.mean()
    std = fine.std()
    return np.ascontiguousarray(fine / std if std > 0 else fine, dtype=np.float32)


def soft_inside(signed_distance_mm: np.ndarray, spacing: float) -> np.ndarray:
    """Membership from a signed distance (negative inside): 1 deep inside, 0 outside, ~1 voxel transition."""
    width = max(spacing * 0.5, 0.3)
    return (1.0 / (1.0 + np.exp(np.clip(signed_distance_mm / width, -30, 30)))).astype(np.float32)


def ellipsoid_distance(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, centre: Sequence[float], radii: Sequence[float],
    axes: np.ndarray | None = None,
) -> np.ndarray:
    """Approximate signed distance (mm) to an ellipsoid; ``axes`` (3x3, rows = unit axes) orients it."""
    px, py, pz = x - np.float32(centre[0]), y - np.float32(centre[1]), z - np.float32(centre[2])
    if axes is not None:
        a = np.asarray(axes, dtype=np.float32)
        px, py, pz = (a[0, 0] * px + a[0, 1] * py + a[0, 2] * pz,
                      a[1, 0] * px + a[1, 1] * py + a[1, 2] * pz,
                      a[2, 0] * px + a[2, 1] * py + a[2, 2] * pz)
    rx, ry, rz = (np.float32(r) for r in radii)
    rho = np.sqrt((px / rx) ** 2 + (py / ry) ** 2 + (pz / rz) ** 2)
    return (rho - 1.0) * np.float32(min(radii))
