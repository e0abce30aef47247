"""Analytic test objects in physical space: grids of any geometry and shapes rasterised onto them.

These are the ground truth of the geometry, inference and Slicer tests (test-only, never shipped): a sphere defined in
millimetres is rasterised (with partial volume) onto grids with different sizes, spacings, origins and oblique
directions, so a pipeline that mixes up index and physical space fails measurably. The realistic multi-contrast
phantoms live in :mod:`brainlesioncl.phantoms`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from brainlesioncl.io.image_io import from_xyz

__all__ = ["make_grid", "rotation_direction", "physical_coordinates", "ellipsoid_fraction", "two_object_image"]


def rotation_direction(angles_deg: Sequence[float]) -> tuple[float, ...]:
    """Row-major 3x3 direction matrix of rotations about x, then y, then z (degrees)."""
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return tuple((rz @ ry @ rx).ravel().tolist())


def make_grid(
    size: Sequence[int],
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    direction: Sequence[float] = (1, 0, 0, 0, 1, 0, 0, 0, 1),
) -> sitk.Image:
    """An empty float32 image with the given geometry (LPS mm)."""
    image = sitk.Image([int(s) for s in size], sitk.sitkFloat32)
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin([float(o) for o in origin])
    image.SetDirection([float(d) for d in direction])
    return image


def physical_coordinates(grid: sitk.Image, offset: Sequence[float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """Physical (LPS) coordinates of every voxel, shape (X, Y, Z, 3), float32.

    ``offset`` is a sub-voxel position in index units (0 = voxel centre), for partial-volume supersampling.
    """
    size = grid.GetSize()
    spacing = np.array(grid.GetSpacing())
    matrix = (np.array(grid.GetDirection()).reshape(3, 3) * spacing).astype(np.float32)  # index -> mm
    origin = np.array(grid.GetOrigin(), dtype=np.float32)
    axes = [np.arange(n, dtype=np.float32) + np.float32(o) for n, o in zip(size, offset, strict=True)]
    # Separable sum: point = origin + M[:, 0] i + M[:, 1] j + M[:, 2] k
    return (
        origin
        + axes[0][:, None, None, None] * matrix[:, 0]
        + axes[1][None, :, None, None] * matrix[:, 1]
        + axes[2][None, None, :, None] * matrix[:, 2]
    )


def ellipsoid_fraction(
    grid: sitk.Image, centre: Sequence[float], radii: Sequence[float] | float, supersample: int = 1
) -> np.ndarray:
    """Fraction (0..1) of every voxel inside an axis-aligned (in LPS) ellipsoid, array (X, Y, Z).

    With ``supersample=1`` this is the binary "voxel centre inside" rasterisation used as ground truth.
    """
    radii = np.broadcast_to(np.asarray(radii, dtype=np.float32), (3,))
    centre = np.asarray(centre, dtype=np.float32)
    steps = ((np.arange(supersample) + 0.5) / supersample - 0.5).tolist() if supersample > 1 else [0.0]
    total = np.zeros(grid.GetSize(), dtype=np.float32)
    for ox in steps:
        for oy in steps:
            for oz in steps:
                points = physical_coordinates(grid, (ox, oy, oz))
                total += ((((points - centre) / radii) ** 2).sum(axis=-1) <= 1.0).astype(np.float32)
    return total / len(steps) ** 3


def two_object_image(
    grid: sitk.Image,
    *,
    brain_centre: Sequence[float],
    brain_radii: Sequence[float],
    lesion_centre: Sequence[float],
    lesion_radius: float,
    brain_value: float = 100.0,
    lesion_value: float = 300.0,
    supersample: int = 2,
) -> sitk.Image:
    """A skull-stripped-looking image: a uniform ellipsoidal "brain" containing a brighter spherical "lesion"."""
    brain = ellipsoid_fraction(grid, brain_centre, brain_radii, supersample)
    lesion = ellipsoid_fraction(grid, lesion_centre, lesion_radius, supersample)
    values = brain * brain_value + lesion * (lesion_value - brain_value)
    return from_xyz(values.astype(np.float32), grid)
