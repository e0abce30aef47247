"""The clinical lesion style and real lesion shapes: phantoms that look like the real cases they were set from."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from brainlesioncl.errors import SettingsError
from brainlesioncl.phantoms import PhantomConfig, generate_case
from brainlesioncl.phantoms.appearance import lesion_appearance
from brainlesioncl.phantoms.fields import Coordinates
from brainlesioncl.phantoms.lesion_library import (
    MNI_CEREBRUM_CENTRE,
    MNI_CEREBRUM_HALF_EXTENT,
    PHANTOM_BRAIN_HALF_EXTENT,
    LesionLibrary,
)

from conftest import shared_path

SPACING = 1.25
SIZE = (128, 154, 116)  # the whole brain at 1.25 mm: MS lesions of 0.02 mL stay several voxels
VOXEL_ML = SPACING**3 / 1000


def _appearance(disease: str, style: str, modalities: tuple[str, ...], seed: int, **extra) -> dict:
    case = generate_case(PhantomConfig(disease=disease, modalities=modalities, size=SIZE, spacing=SPACING, seed=seed,
                                       lesion_style=style, **extra))
    images = {m: sitk.GetArrayFromImage(image) for m, image in case.images.items()}
    return lesion_appearance(images, sitk.GetArrayFromImage(case.label), VOXEL_ML)


def test_clinical_ms_lesions_are_many_small_and_subtle_where_classic_ones_are_few_large_and_bright() -> None:
    """The real MS training case: FLAIR 1.32 x brain, T2 1.38, median lesion 0.017 mL, 89 % under 0.1 mL."""
    clinical = [_appearance("MS", "clinical", ("FLAIR", "T2"), seed) for seed in (1, 2)]
    classic = [_appearance("MS", "classic", ("FLAIR", "T2"), seed) for seed in (1, 2)]
    for row in clinical:
        assert 1.15 <= row["FLAIR"] <= 1.5 and 1.15 <= row["T2"] <= 1.6, row
        assert row["median_ml"] < 0.1 and row["below_0_1ml"] >= 0.6 and row["components"] >= 8, row
    for row in classic:
        assert row["FLAIR"] > 1.5 and row["median_ml"] > 0.1, row


def test_clinical_wmh_is_patchy_and_subtle() -> None:
    """The real WMH training cases: FLAIR 1.29-1.34 x brain, 53-77 components of median 0.02 mL."""
    clinical = _appearance("WMH", "clinical", ("FLAIR",), 2)
    classic = _appearance("WMH", "classic", ("FLAIR",), 2)
    assert 1.15 <= clinical["FLAIR"] <= 1.5 < classic["FLAIR"], (clinical, classic)
    assert clinical["components"] > 2 * classic["components"] and clinical["median_ml"] < 0.1, (clinical, classic)


@pytest.mark.parametrize("seed", [1, 3])
def test_clinical_acute_stroke_is_bright_on_dwi_dark_on_adc_and_only_slightly_bright_on_flair(seed: int) -> None:
    row = _appearance("stroke", "clinical", ("DWI", "ADC", "FLAIR"), seed, stroke_stage="acute")
    assert 1.4 <= row["DWI"] <= 3.0 and row["ADC"] <= 0.8 and row["FLAIR"] <= 1.7, row


def test_the_clinical_style_is_deterministic_and_the_classic_default_is_unchanged() -> None:
    config = PhantomConfig(disease="MS", modalities=("FLAIR",), size=(64, 78, 58), spacing=2.5, seed=7,
                           lesion_style="clinical")
    first, second = generate_case(config), generate_case(config)
    assert np.array_equal(sitk.GetArrayViewFromImage(first.images["FLAIR"]),
                          sitk.GetArrayViewFromImage(second.images["FLAIR"]))
    assert first.info["style"] == "clinical" and sum(first.info["regions"].values()) == first.info["lesion_count"]
    assert PhantomConfig().lesion_style == "classic"
    with pytest.raises(ValueError, match="lesion_style"):
        PhantomConfig(lesion_style="photorealistic")


def _mni_sphere(folder, centre_ras: tuple[float, float, float], radius: float, name: str) -> None:
    """A binary sphere on a 2 mm MNI-like grid (LPS origin, identity direction), as a lesion library file."""
    image = sitk.Image([90, 110, 90], sitk.sitkUInt8)
    image.SetSpacing((2.0, 2.0, 2.0))
    image.SetOrigin((-90.0, -126.0, -72.0))
    index = np.indices((90, 110, 90)).reshape(3, -1).T  # x, y, z index order
    lps = index * 2.0 + np.array(image.GetOrigin())
    centre_lps = np.array(centre_ras) * np.array([-1.0, -1.0, 1.0])
    inside = (np.linalg.norm(lps - centre_lps, axis=1) <= radius).reshape(90, 110, 90)
    array = sitk.GetImageFromArray(inside.transpose(2, 1, 0).astype(np.uint8))
    array.CopyInformation(image)
    sitk.WriteImage(array, str(folder / name))


def test_a_library_lesion_lands_where_it_lies_in_mni_space(tmp_path) -> None:
    """A sphere in the left lateral MCA territory (MNI RAS -40, -10, 20) lands in the phantom's left lateral
    hemisphere (or, flipped, the right): real places, not only real shapes."""
    _mni_sphere(tmp_path, (-40.0, -10.0, 20.0), 12.0, "left_mca.nii.gz")
    library = LesionLibrary(tmp_path)
    assert len(library) == 1
    centre_mni = MNI_CEREBRUM_CENTRE
    scale = np.array(PHANTOM_BRAIN_HALF_EXTENT) / np.array(MNI_CEREBRUM_HALF_EXTENT)
    sides = set()
    for seed in range(6):
        case = generate_case(PhantomConfig(disease="stroke", modalities=("DWI",), size=(64, 78, 58), spacing=2.5,
                                           seed=seed, stroke_stage="acute", lesion_style="clinical",
                                           lesion_library=str(tmp_path), elastic_mm=0.0))
        assert case.info["pattern"] == "library" and case.info["source"] == "left_mca.nii.gz"
        label = sitk.GetArrayFromImage(case.label)
        assert 2.0 < case.info["lesion_volume_ml"] < 12.0, case.info  # the 7.2 mL sphere, scaled and masked to brain
        centre = np.array(case.label.TransformContinuousIndexToPhysicalPoint(
            [float(v) for v in np.argwhere(label > 0).mean(axis=0)[::-1]]))  # LPS
        expected = [abs(-40.0 * scale[0]), (-10.0 - centre_mni[1]) * scale[1], (20.0 - centre_mni[2]) * scale[2]]
        found = [abs(centre[0]), -centre[1], centre[2]]  # RAS; the case's own scale and tilt move it a little
        assert np.allclose(found, expected, atol=10.0), (found, expected)
        sides.add(bool(centre[0] > 0))
    assert sides == {True, False}  # both hemispheres drawn


def test_a_library_refuses_a_folder_without_masks_and_masks_outside_the_volume_range(tmp_path) -> None:
    with pytest.raises(SettingsError, match="no .nii"):
        LesionLibrary(tmp_path)
    _mni_sphere(tmp_path, (-40.0, -10.0, 20.0), 3.0, "tiny.nii.gz")  # 0.1 mL
    library = LesionLibrary(tmp_path, min_ml=1.0)
    with pytest.raises(SettingsError, match="no mask of 1.0-250.0 mL"):
        library.sample(Coordinates((40, 48, 36), 4.0), np.random.default_rng(0), attempts=3)


def test_real_acute_stroke_masks_make_acute_stroke_phantoms() -> None:
    folder = shared_path("data", "templates", "stroke_lesions_soop", "lesions")
    case = generate_case(PhantomConfig(disease="stroke", modalities=("DWI", "ADC"), size=(80, 96, 72), spacing=2.0,
                                       seed=0, stroke_stage="acute", lesion_style="clinical",
                                       lesion_library=str(folder)))
    assert case.info["source"].endswith(".nii.gz") and case.info["lesion_volume_ml"] > 0.1
    row = lesion_appearance({m: sitk.GetArrayFromImage(i) for m, i in case.images.items()},
                            sitk.GetArrayFromImage(case.label), 0.008)
    assert row["DWI"] > 1.3 and row["ADC"] < 0.85, row


def test_the_phantoms_command_writes_clinical_cases_and_names_a_missing_library(tmp_path, capsys) -> None:
    from brainlesioncl.cli.main import main

    assert main(["phantoms", str(tmp_path / "ms"), "--preset", "MSSEG", "--count", "1", "--size", "64", "78", "58",
                 "--spacing", "2.5", "--lesion-style", "clinical"]) == 0
    info = json.loads((tmp_path / "ms" / "MSSEG_0000" / "case.json").read_text())
    assert info["style"] == "clinical" and info["config"]["lesion_style"] == "clinical"
    assert main(["phantoms", str(tmp_path / "acute"), "--disease", "stroke", "--count", "3", "--size", "40", "48", "36",
                 "--spacing", "4", "--stroke-stage", "acute"]) == 0
    stages = {json.loads((tmp_path / "acute" / f"stroke_{i:04d}" / "case.json").read_text())["stage"] for i in range(3)}
    assert stages == {"acute"}  # a DWI/FLAIR study's strokes: without T1 a chronic cavity looks like CSF
    assert main(["phantoms", str(tmp_path / "stroke"), "--disease", "stroke", "--count", "2",
                 "--size", "40", "48", "36", "--spacing", "4", "--lesion-style", "clinical",
                 "--lesion-library", str(tmp_path / "absent")]) == 2
    assert "not a folder of NIfTI masks" in capsys.readouterr().err
