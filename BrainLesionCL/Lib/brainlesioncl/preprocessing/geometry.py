"""Physical-space geometry: working grids and resampling with SimpleITK.

Everything here works in physical coordinates (ITK's LPS millimetres), so volumes with different sizes, spacings,
origins and (oblique) directions line up where the anatomy is, not where the array indices happen to be.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import SimpleITK as sitk

from ..errors import GeometryError, InvalidImageError

__all__ = [
    "physical_corners",
    "ras_grid",
    "resample_onto",
    "same_geometry",
    "field_of_view_coverage",
    "check_overlap",
]

#: Direction matrix of an image whose array axes point to Right, Anterior, Superior (ITK's world is LPS).
RAS_DIRECTION = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)


def physical_corners(image: sitk.Image) -> np.ndarray:
    """The 8 corners of the image's field of view (outer voxel edges), shape (8, 3), LPS mm."""
    size = image.GetSize()
    corners = []
    for idx in itertools.product(*[(-0.5, s - 0.5) for s in size]):
        corners.append(image.TransformContinuousIndexToPhysicalPoint([float(i) for i in idx]))
    return np.asarray(corners)


#: Largest field of view accepted along any axis, in mm: a whole adult head with neck is about 300 mm; 600 mm leaves
#: room for any MRI field of view while refusing headers whose spacing is in the wrong unit (cm, µm) long before a
#: resampled grid would need tens of GiB.
MAX_FIELD_OF_VIEW_MM = 600.0
#: Largest working grid (voxels) a case may need: 512^3 at 1 mm, i.e. 0.5 GiB per float32 channel.
MAX_GRID_VOXELS = 512**3


def check_field_of_view(image: sitk.Image, name: str, spacing: float = 1.0) -> None:
    """Refuse a volume whose physical size is implausible for a head, before any grid is allocated.

    Raises:
        InvalidImageError: with the extent found, the spacing that causes it and the fix.
    """
    corners = physical_corners(image)
    extent = corners.max(axis=0) - corners.min(axis=0)
    voxels = float(np.prod(np.ceil(extent / spacing)))
    if extent.max() > MAX_FIELD_OF_VIEW_MM or voxels > MAX_GRID_VOXELS:
        size = " x ".join(f"{e:.0f}" for e in extent)
        raise InvalidImageError(
            f"{name}: its field of view is {size} mm (spacing {', '.join(f'{s:g}' for s in image.GetSpacing())} mm), "
            f"larger than any head scan (at most {MAX_FIELD_OF_VIEW_MM:.0f} mm per axis); resampling it would need "
            f"about {voxels * 4 / 2**30:.1f} GiB per channel. The header's voxel spacing is probably wrong (e.g. in cm "
            "or µm instead of mm): fix the spacing and load it again."
        )


def ras_grid(reference: sitk.Image, spacing: float = 1.0) -> sitk.Image:
    """An empty isotropic grid in RAS orientation covering ``reference``'s whole field of view.

    This is the grid the published models were trained on (MONAI ``Orientationd("RAS")`` + ``Spacingd(1 mm)``),
    built from the reference volume's physical extent so that oblique and anisotropic acquisitions are covered.
    """
    if spacing <= 0:
        raise ValueError(f"spacing must be positive, got {spacing}")
    corners = physical_corners(reference)
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    size = [max(2, int(math.ceil((hi[d] - lo[d]) / spacing - 1e-6))) for d in range(3)]
    # Axis 0 runs towards Right = decreasing LPS x, axis 1 towards Anterior = decreasing LPS y, axis 2 up.
    extent = [s * spacing for s in size]
    centre = (lo + hi) / 2
    origin = (
        centre[0] + extent[0] / 2 - spacing / 2,
        centre[1] + extent[1] / 2 - spacing / 2,
        centre[2] - extent[2] / 2 + spacing / 2,
    )
    grid = sitk.Image(size, sitk.sitkUInt8)
    grid.SetSpacing((spacing,) * 3)
    grid.SetDirection(RAS_DIRECTION)
    grid.SetOrigin(origin)
    return grid


def same_geometry(a: sitk.Image, b: sitk.Image, tol: float = 1e-4) -> bool:
    """True when both images have the same size, and spacing/origin/direction within ``tol``."""
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tol)
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tol * max(1.0, max(a.GetSpacing())))
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=tol)
    )


def resample_onto(
    image: sitk.Image, grid: sitk.Image, *, interpolator: int = sitk.sitkLinear, default: float = 0.0
) -> sitk.Image:
    """Resample ``image`` onto ``grid``'s geometry (physical identity transform), float32 output.

    Same-geometry inputs are returned as a float32 copy without interpolation (no blurring on a no-op).
    """
    if same_geometry(image, grid):
        out = sitk.Cast(image, sitk.sitkFloat32)
        out.CopyInformation(grid)
        return out
    return sitk.Resample(image, grid, sitk.Transform(), interpolator, default, sitk.sitkFloat32)


def field_of_view_coverage(image: sitk.Image, grid: sitk.Image) -> float:
    """Fraction of ``grid``'s voxels that fall inside ``image``'s field of view (0..1)."""
    ones = sitk.Image(image.GetSize(), sitk.sitkUInt8) + 1
    ones.CopyInformation(image)
    covered = sitk.Resample(ones, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return float(sitk.GetArrayViewFromImage(covered).mean())


def check_overlap(image: sitk.Image, grid: sitk.Image, name: str, reference_name: str) -> float:
    """Raise if ``image`` does not physically overlap ``grid``; return the covered fraction."""
    coverage = field_of_view_coverage(image, grid)
    if coverage == 0.0:
        raise GeometryError(
            f"{name} does not overlap {reference_name} in physical space at all: they are probably from different "
            "studies, or one header (origin/direction) is wrong. Map volumes of the same study, or fix the header "
            "(e.g. register the images) before segmenting."
        )
    return coverage
