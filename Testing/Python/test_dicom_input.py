"""DICOM in: a study folder (or zip) as a PACS exports it becomes the model's channels, series by series; slices that do
not make one volume are refused with the fix; nothing identifying the patient is ever printed."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from dicom_helpers import ACCESSION, BIRTH_DATE, PATIENT_ID, PATIENT_NAME, SEQUENCES, new_uid, write_series
from synthetic import make_grid, rotation_direction

from brainlesioncl.cli.main import main
from brainlesioncl.errors import InvalidImageError
from brainlesioncl.io import read_image
from brainlesioncl.io.dicom import find_series, read_series

from conftest import shared_path, sphere_case

IDENTIFYING = (PATIENT_ID, PATIENT_NAME, BIRTH_DATE, ACCESSION, "Doe", "Jane")


def _volume(oblique: bool = False) -> sitk.Image:
    direction = rotation_direction((12.0, -8.0, 5.0) if oblique else (0.0, 0.0, 0.0))
    grid = make_grid((44, 48, 24), (2.0, 2.0, 3.0), origin=(-44.0, -48.0, -36.0), direction=direction)
    return sphere_case(grid, centre=(6.0, -4.0, 3.0), radius=10.0)


def _study(root: Path, **kinds: dict) -> Path:
    """A study folder with one series per keyword (FLAIR, T1, ...) plus their write_series options."""
    study = new_uid()
    for number, (sequence, options) in enumerate(kinds.items(), start=2):
        write_series(_volume(), root / f"series{number}", study=study, series_number=number,
                     tags=SEQUENCES[sequence.rstrip("_")], **options)
    return root


def test_a_series_folder_reads_with_its_geometry_and_voxels(tmp_path) -> None:
    volume = _volume(oblique=True)
    folder = write_series(volume, tmp_path / "flair", study=new_uid(), series_number=3, tags=SEQUENCES["FLAIR"])
    image = read_image(folder, name="FLAIR")
    assert image.GetSize() == volume.GetSize()
    assert np.allclose(image.GetSpacing(), volume.GetSpacing(), atol=1e-4)
    assert np.allclose(image.GetOrigin(), volume.GetOrigin(), atol=1e-3)
    assert np.allclose(image.GetDirection(), volume.GetDirection(), atol=1e-5)
    written = sitk.RescaleIntensity(volume, 0, 2000)
    assert np.corrcoef(sitk.GetArrayFromImage(image).ravel(), sitk.GetArrayFromImage(written).ravel())[0, 1] > 0.999


def test_a_study_keeps_the_mr_series_and_sets_the_rest_aside_with_the_reason(tmp_path) -> None:
    root = _study(tmp_path, FLAIR={}, T1={})
    study = next(iter(find_series(root)[0])).tags["0020|000d"]
    localizer = {"0008|103e": "3-plane loc", "0008|0008": "ORIGINAL\\PRIMARY\\LOCALIZER"}
    write_series(_volume(), root / "loc", study=study, series_number=1, tags=localizer)
    write_series(_volume(), root / "ct", study=study, series_number=9, tags={"0008|0060": "CT"})
    usable, aside = find_series(root)
    assert [s.label for s in usable] == ["series 2 'AX T2 FLAIR'", "series 3 'AX T1 SE'"]
    reasons = {s.label: s.problem for s in aside}
    assert "localizer" in reasons["series 1 '3-plane loc'"] and "CT series" in reasons["series 9"]
    with pytest.raises(InvalidImageError, match="holds 2 MR series"):
        read_image(root, name="FLAIR")


def test_two_patients_in_one_folder_are_refused_without_naming_them(tmp_path) -> None:
    root = _study(tmp_path, FLAIR={})
    write_series(_volume(), root / "other", study=new_uid(), series_number=2, tags=SEQUENCES["T1"],
                 patient_id="PID-0000-OTHER")
    with pytest.raises(InvalidImageError, match="2 patient") as caught:
        find_series(root)
    assert not any(value in str(caught.value) for value in (*IDENTIFYING, "PID-0000-OTHER"))


@pytest.mark.parametrize(("options", "message"), [
    ({"skip": [10]}, "slice\\(s\\) missing after slice 10"),
    ({"repeat": [5]}, "duplicated slice"),
    ({"repeat": list(range(24))}, "2 images at each of its 24 slice positions, a 4-D series"),
    ({"shift": [(12, 0.6)]}, "slice spacing varies"),
    ({"tilt_mm_per_slice": 0.5}, "gantry tilt of 9.5 degrees"),
])
def test_slices_that_do_not_make_one_volume_are_refused_with_the_fix(tmp_path, options, message) -> None:
    folder = write_series(_volume(), tmp_path / "s", study=new_uid(), series_number=4, tags=SEQUENCES["FLAIR"],
                          **options)
    (series,), _ = find_series(folder)
    with pytest.raises(InvalidImageError, match=message) as caught:
        read_series(series)
    assert "series 4 'AX T2 FLAIR'" in str(caught.value)


def test_segment_a_dicom_study_maps_each_series_and_prints_nothing_identifying(
        capsys, caplog, registry, tiny_version, tmp_path) -> None:
    root = _study(tmp_path / "study", FLAIR={}, T1={}, T1c={})
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for file in root.rglob("*"):
            zipped.write(file, file.relative_to(root))
    caplog.set_level(logging.DEBUG)
    for source, output in ((root, tmp_path / "seg.nii.gz"), (archive, tmp_path / "seg2.nii.gz")):
        code = main(["--registry", str(registry.root), "segment", "--dicom", str(source), "--disease", "tumour",
                     "-o", str(output), "--device", "cpu"])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        assert "series 2 'AX T2 FLAIR' -> FLAIR" in captured.err and "-> T1c" in captured.err
        assert "series 3 'AX T1 SE' -> T1 " in captured.err
        label = sitk.ReadImage(str(output))
        assert label.GetSize() == _volume().GetSize()  # FLAIR's grid
        assert not any(value in captured.out + captured.err + caplog.text for value in IDENTIFYING)
    code = main(["--registry", str(registry.root), "segment", "--dicom", str(root), "--input",
                 f"FLAIR={root / 'series2'}", "-o", str(tmp_path / "x.nii.gz")])
    assert code == 2 and "one way" in capsys.readouterr().err


def test_a_zip_member_that_escapes_its_folder_is_refused(tmp_path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("../../outside.dcm", b"x")
    with pytest.raises(InvalidImageError, match="outside"):
        read_image(archive)
    assert not (tmp_path.parent / "outside.dcm").exists()


def test_an_episode_on_dicom_cases_records_counts_not_identifiers(caplog, registry, tiny_version, tmp_path) -> None:
    """Cases given as DICOM series (each carrying a patient's name, ID, birth date and accession number): the new
    version and the log say how many cases, never whose."""
    import json

    from brainlesioncl.continual import EpisodeConfig, train_episode

    from conftest import TINY_CHANNELS

    entries = []
    for i in range(2):
        volume = _volume()
        study = new_uid()
        folders = {name: write_series(volume, tmp_path / f"case{i}" / name, study=study, series_number=n,
                                      tags=SEQUENCES[name]) for n, name in ((2, "FLAIR"), (3, "T1"))}
        label = sitk.Cast(volume > 0.5 * float(sitk.GetArrayViewFromImage(volume).max()), sitk.sitkUInt8)
        sitk.WriteImage(label, str(tmp_path / f"case{i}" / "label.nii.gz"))
        entries.append({"case": f"case{i}", "images": {k: str(v) for k, v in folders.items()},
                        "label": str(tmp_path / f"case{i}" / "label.nii.gz"), "disease": "stroke"})
    manifest = tmp_path / "cases.json"
    manifest.write_text(json.dumps({"cases": entries}))
    caplog.set_level(logging.DEBUG)
    result = train_episode(manifest, "stroke", parent=tiny_version, registry=registry, device="cpu",
                           config=EpisodeConfig(strategy="naive", epochs=1, steps_per_epoch=1, crop_size=32,
                                                validation_fraction=0, precision="fp32",
                                                scratch_channels=TINY_CHANNELS))
    assert result.metadata.training["cases"] == 2
    stored = (registry.path_of(result.version) / "bundle.json").read_text()
    assert not any(value in stored + caplog.text for value in IDENTIFYING)


def test_an_annotation_given_as_dicom_seg_trains_like_the_same_labelmap(tmp_path) -> None:
    """A reader's annotation as a DICOM SEG on the FLAIR series (written with every frame, or, as some viewers
    write it, without its empty frames) loads as exactly the labelmap it encodes, on the FLAIR's grid."""
    highdicom = pytest.importorskip("highdicom")
    import pydicom

    from brainlesioncl.dicom_export import segmentation_dataset
    from brainlesioncl.inference.segmenter import SegmentationResult
    from brainlesioncl.modalities import BRAINCL_CHANNEL_ORDER
    from brainlesioncl.training import load_training_case

    from conftest import tiny_metadata

    volume = _volume()
    study = new_uid()
    folders = {name: write_series(volume, tmp_path / name, study=study, series_number=n, tags=SEQUENCES[name])
               for n, name in ((2, "FLAIR"), (3, "T1"))}
    (flair,), _ = find_series(folders["FLAIR"])
    label = sitk.Cast(volume > 0.5 * float(sitk.GetArrayViewFromImage(volume).max()), sitk.sitkUInt8)
    reference = read_series(flair)
    label.CopyInformation(reference)
    result = SegmentationResult(label, sitk.Cast(label, sitk.sitkFloat32), "tiny-v1", "stroke", [], [], 1.0, 1)
    full = segmentation_dataset(result, flair, tiny_metadata())
    full.save_as(str(tmp_path / "full.dcm"))
    sources = [pydicom.dcmread(str(f), stop_before_pixels=True) for f in sorted(flair.files)]
    order = np.argsort([float(ds.ImagePositionPatient @ np.cross(*np.array(ds.ImageOrientationPatient,
                                                                           float).reshape(2, 3)))
                        for ds in sources])
    partial = highdicom.seg.Segmentation(
        source_images=[sources[i] for i in order], pixel_array=sitk.GetArrayFromImage(label),
        segmentation_type="BINARY", segment_descriptions=full.SegmentSequence and [
            highdicom.seg.SegmentDescription.from_dataset(full.SegmentSequence[0])],
        series_instance_uid=highdicom.UID(), series_number=99, sop_instance_uid=highdicom.UID(), instance_number=1,
        manufacturer="a viewer", manufacturer_model_name="v", software_versions="1", device_serial_number="1",
        omit_empty_frames=True)
    partial.save_as(str(tmp_path / "partial.dcm"))
    assert len(partial.PerFrameFunctionalGroupsSequence) < len(sources)
    images = {"FLAIR": folders["FLAIR"], "T1": folders["T1"]}
    expected = load_training_case("nifti", images, label, "stroke", BRAINCL_CHANNEL_ORDER)
    for name in ("full.dcm", "partial.dcm"):
        case = load_training_case(name, images, tmp_path / name, "stroke", BRAINCL_CHANNEL_ORDER)
        assert np.array_equal(case.label, expected.label), name


def test_identify_and_prepare_read_a_dicom_study(capsys, tmp_path) -> None:
    root = _study(tmp_path / "study", FLAIR={}, T1c={})
    study = next(iter(find_series(root)[0])).tags["0020|000d"]
    write_series(_volume(), root / "loc", study=study, series_number=1,
                 tags={"0008|103e": "localizer", "0008|0008": "ORIGINAL\\PRIMARY\\LOCALIZER"})
    assert main(["identify", "--dicom", str(root), "--no-image"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("    note:")]
    assert lines[0].startswith("series 2 'AX T2 FLAIR': FLAIR (dicom")
    assert lines[1].startswith("series 3 'AX T1 SE': T1c (dicom")  # the contrast agent tag, whatever the name says
    assert lines[2].startswith("series 1 'localizer': refused") and "localizer" in lines[2]
    out = tmp_path / "prepared"
    out.mkdir()
    assert main(["prepare", "--dicom", str(root), "--output-dir", str(out), "--prepare", "auto"]) == 0
    assert {"flair.nii.gz", "t1c.nii.gz", "quality.json"} <= {p.name for p in out.iterdir()}
    assert main(["identify"]) == 2 and "--dicom" in capsys.readouterr().err


@pytest.mark.slow
def test_a_real_stroke_exam_as_dicom_is_mapped_by_its_tags_and_segmented(capsys, tmp_path) -> None:
    """The real ISLES'22 exam of ../shared/data written as the three series a scanner sends (DWI with its b-value,
    the ADC map the scanner derived, FLAIR with its inversion time, on their own grids): the shipped model's
    channels are filled from the tags, the ADC map is left out with the reason (no ADC channel; never read as DWI),
    and the result lands on FLAIR's grid."""
    from brainlesioncl.registry import ModelRegistry

    case = shared_path("data", "stroke_isles22", "sub-strokecase0009")
    study = new_uid()
    scanner = {
        "DWI": {"0008|103e": "ep2d_diff_3scan_trace", "0018|9087": "1000",
                "0008|0008": "ORIGINAL\\PRIMARY\\DIFFUSION\\TRACEW"},
        "ADC": {"0008|103e": "ep2d_diff_3scan_trace_ADC", "0008|0008": "DERIVED\\PRIMARY\\DIFFUSION\\ADC"},
        "FLAIR": SEQUENCES["FLAIR"],
    }
    for number, (name, tags) in enumerate(scanner.items(), start=2):
        write_series(sitk.ReadImage(str(case / f"{name.lower()}.nii.gz"), sitk.sitkFloat32), tmp_path / "study" / name,
                     study=study, series_number=number, tags=tags)
    registry = ModelRegistry(tmp_path / "registry")  # the shipped models, as a fresh install has them
    code = main(["--registry", str(registry.root), "segment", "--dicom", str(tmp_path / "study"), "-d", "stroke",
                 "-o", str(tmp_path / "seg.nii.gz"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "series 2 'ep2d_diff_3scan_trace' -> DWI" in err and "series 4 'AX T2 FLAIR' -> FLAIR" in err
    assert "series 3 'ep2d_diff_3scan_trace_ADC': not used (ADC" in err
    flair = sitk.ReadImage(str(case / "flair.nii.gz"))
    assert sitk.ReadImage(str(tmp_path / "seg.nii.gz")).GetSize() == flair.GetSize()
