"""Geometry round trips: a physically known sphere must land where it physically is, whatever the grids."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from synthetic import ellipsoid_fraction, make_grid, rotation_direction

from brainlesioncl.inference import InferenceConfig, Segmenter
from brainlesioncl.io import to_xyz
from brainlesioncl.preprocessing import GridMode, PreprocessConfig, prepare_case, ras_grid

from conftest import ThresholdNet, sphere_case, tiny_metadata

CENTRE = (6.0, -5.0, 4.0)
RADIUS = 14.0

GRIDS = {
    "iso_1mm": dict(size=(100, 110, 90), spacing=(1.0, 1.0, 1.0), origin=(-50.0, -55.0, -45.0)),
    "anisotropic": dict(size=(110, 120, 30), spacing=(0.9, 0.9, 3.0), origin=(-49.0, -54.0, -44.0)),
    "shifted": dict(size=(64, 64, 64), spacing=(1.6, 1.6, 1.6), origin=(-33.0, -61.0, -47.0)),
    "oblique": dict(
        size=(80, 80, 50), spacing=(1.3, 1.3, 2.0), origin=(-40.0, -62.0, -30.0),
        direction=rotation_direction((20.0, -15.0, 30.0)),
    ),
    "lps_flipped": dict(
        size=(90, 100, 80), spacing=(1.1, 1.1, 1.2), origin=(49.0, 55.0, -48.0),
        direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1),
    ),
}


def _oblique_origin(grid_kwargs: dict) -> dict:
    """Put the grid's centre at the physical origin, so rotated grids still cover the objects."""
    grid = make_grid(**grid_kwargs)
    centre_index = [(s - 1) / 2 for s in grid.GetSize()]
    centre = np.array(grid.TransformContinuousIndexToPhysicalPoint(centre_index))
    return {**grid_kwargs, "origin": tuple(np.array(grid.GetOrigin()) - centre)}


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    from brainlesioncl.evaluation.segmentation import dice

    return dice(a, b)


def _segment(images: dict, reference: str, grid_mode: GridMode) -> sitk.Image:
    metadata = tiny_metadata()
    segmenter = Segmenter(
        ThresholdNet(channel=1),  # FLAIR is channel 1 of the BrainCL order
        metadata,
        device="cpu",
        inference=InferenceConfig(),
        preprocessing=PreprocessConfig(grid=grid_mode),
    )
    return segmenter.segment(images, "tumour", reference=reference).label


@pytest.mark.parametrize("grid_mode", [GridMode.RAS_1MM, GridMode.REFERENCE])
@pytest.mark.parametrize("reference_name", list(GRIDS))
def test_sphere_lands_where_it_physically_is(reference_name: str, grid_mode: GridMode) -> None:
    reference_grid = make_grid(**_oblique_origin(GRIDS[reference_name]))
    # The image the "network" sees comes from a *different* grid (oblique, shifted, anisotropic) than the output.
    other = "oblique" if reference_name != "oblique" else "anisotropic"
    flair_grid = make_grid(**_oblique_origin(GRIDS[other]))
    flair = sphere_case(flair_grid, centre=CENTRE, radius=RADIUS)
    t1 = sphere_case(reference_grid, centre=CENTRE, radius=RADIUS)

    label = _segment({"T1": t1, "FLAIR": flair}, reference="T1", grid_mode=grid_mode)

    # The output has exactly the reference volume's geometry ...
    assert label.GetSize() == reference_grid.GetSize()
    assert np.allclose(label.GetSpacing(), reference_grid.GetSpacing())
    assert np.allclose(label.GetOrigin(), reference_grid.GetOrigin())
    assert np.allclose(label.GetDirection(), reference_grid.GetDirection())
    # ... and the sphere is where it physically is.
    truth = ellipsoid_fraction(reference_grid, CENTRE, RADIUS) > 0.5
    dice = _dice(to_xyz(label) > 0, truth)
    print(f"{reference_name}/{grid_mode.value}: Dice {dice:.4f}")
    assert dice >= 0.95, f"{reference_name}/{grid_mode.value}: Dice {dice:.3f} against the analytic sphere"


def test_index_space_mixup_would_fail() -> None:
    """Guard that the test above can fail: the same arrays without physical resampling miss the sphere."""
    reference_grid = make_grid(**_oblique_origin(GRIDS["anisotropic"]))
    oblique_grid = make_grid(**_oblique_origin(GRIDS["oblique"]))
    naive = to_xyz(sphere_case(oblique_grid, centre=CENTRE, radius=RADIUS)) > 200
    truth = ellipsoid_fraction(reference_grid, CENTRE, RADIUS) > 0.5
    cropped = np.zeros_like(truth)
    sx, sy, sz = (min(a, b) for a, b in zip(naive.shape, truth.shape, strict=True))
    cropped[:sx, :sy, :sz] = naive[:sx, :sy, :sz]
    assert _dice(cropped, truth) < 0.5


def test_ras_grid_covers_reference_and_is_ras() -> None:
    grid_kwargs = _oblique_origin(GRIDS["oblique"])
    reference = make_grid(**grid_kwargs)
    grid = ras_grid(reference, 1.0)
    assert grid.GetDirection() == (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
    assert grid.GetSpacing() == (1.0, 1.0, 1.0)
    # every corner of the reference lies inside the new grid
    from brainlesioncl.preprocessing.geometry import physical_corners

    for corner in physical_corners(reference):
        index = grid.TransformPhysicalPointToContinuousIndex(corner.tolist())
        assert all(-0.51 <= i <= s - 0.49 for i, s in zip(index, grid.GetSize(), strict=True))


def test_prepare_case_crops_and_pads_to_multiple_of_16() -> None:
    grid = make_grid((160, 160, 120), (1.0, 1.0, 1.0), origin=(-80.0, -80.0, -60.0))
    case = prepare_case({"FLAIR": sphere_case(grid)}, ["DWI", "FLAIR", "PD", "T1", "T1c", "T2"])
    assert case.array.shape[0] == 6
    assert all(s % 16 == 0 for s in case.array.shape[1:])
    assert case.present == [False, True, False, False, False, False]
    # absent channels are exactly zero; the present one is z-scored over its nonzero voxels
    assert not case.array[[0, 2, 3, 4, 5]].any()
    values = case.array[1][case.array[1] != 0]
    assert abs(values.mean()) < 1e-3 and abs(values.std() - 1) < 1e-3
    # the crop keeps the whole brain (radius 40/45/35 mm) plus margin, and drops most of the background
    (x0, y0, z0), (x1, y1, z1) = case.box
    assert 84 <= x1 - x0 <= 88 and 94 <= y1 - y0 <= 98 and 74 <= z1 - z0 <= 78  # 80/90/70 mm + 2 x 2 margin
    assert case.array.shape[1:] == (96, 96, 80)


def test_constant_nonzero_background_is_treated_as_zero() -> None:
    """Images exported already z-scored have background -mean/std; it must not count as brain."""
    grid = make_grid((64, 64, 64), (2.0, 2.0, 2.0), origin=(-63.0, -63.0, -63.0))
    image = sphere_case(grid)
    shifted = sitk.Cast(image, sitk.sitkFloat32) - 3.62  # background -3.62, brain 96.38, lesion 296.38
    shifted.CopyInformation(image)
    case = prepare_case({"FLAIR": shifted}, ["DWI", "FLAIR", "PD", "T1", "T1c", "T2"],
                        config=PreprocessConfig(grid=GridMode.REFERENCE))
    reference = prepare_case({"FLAIR": image}, ["DWI", "FLAIR", "PD", "T1", "T1c", "T2"],
                             config=PreprocessConfig(grid=GridMode.REFERENCE))
    assert case.array.shape == reference.array.shape  # cropped to the brain, not the whole field of view
    assert np.allclose(case.array, reference.array, atol=1e-3)
