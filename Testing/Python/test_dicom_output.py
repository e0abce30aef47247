"""DICOM out: the DICOM SEG BrainLesionCL writes is read back by dcmqi (the converter behind 3D Slicer's DICOM SEG
support) as exactly the labelmap it was made from, on the source series' geometry, with the project's codes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from dicom_helpers import SEQUENCES, new_uid, write_series
from synthetic import make_grid, rotation_direction

from brainlesioncl.cli.main import main
from brainlesioncl.errors import OutputPathError
from brainlesioncl.inference.segmenter import SegmentationResult
from brainlesioncl.io.dicom import find_series, read_series
from brainlesioncl.subregions import CLASS_NAMES

from conftest import sphere_case, tiny_metadata

pytest.importorskip("highdicom", reason="DICOM output needs the 'dicom' extra (pip install -e '.[dicom]')")
pydicom = pytest.importorskip("pydicom")
SEGIMAGE2ITKIMAGE = shutil.which("segimage2itkimage") or str(Path(sys.executable).with_name("segimage2itkimage"))
needs_dcmqi = pytest.mark.skipif(not Path(SEGIMAGE2ITKIMAGE).exists(),
                                 reason="dcmqi's segimage2itkimage is not installed (pip install dcmqi)")


def _series(tmp_path: Path, oblique: bool = True):
    direction = rotation_direction((10.0, -6.0, 4.0) if oblique else (0.0, 0.0, 0.0))
    grid = make_grid((40, 44, 20), (2.0, 2.0, 3.5), origin=(-40.0, -44.0, -35.0), direction=direction)
    # Spacing Between Slices written as 1, as some converters do: the SEG must state the true distance anyway.
    folder = write_series(sphere_case(grid, centre=(4.0, -2.0, 3.0), radius=12.0), tmp_path / "flair",
                          study=new_uid(), series_number=5, tags={**SEQUENCES["FLAIR"], "0018|0088": "1"})
    (series,), _ = find_series(folder)
    return series


def _result(reference: sitk.Image, disease: str, classes: dict[int, str]) -> SegmentationResult:
    array = np.zeros(sitk.GetArrayViewFromImage(reference).shape, np.uint8)
    array[5:15, 10:30, 8:28] = 2
    array[7:13, 14:26, 12:24] = 3 if len(classes) > 1 else 2
    array[9:11, 18:22, 16:20] = 1 if len(classes) > 1 else 2
    if len(classes) == 1:
        array = (array > 0).astype(np.uint8)
    label = sitk.GetImageFromArray(array)
    label.CopyInformation(reference)
    return SegmentationResult(label, sitk.Cast(label > 0, sitk.sitkFloat32), "tiny-v1", disease, ["FLAIR"], [], 1.0,
                              1, classes=classes)


def _dcmqi(seg: Path, out: Path) -> dict[int, sitk.Image]:
    out.mkdir()
    subprocess.run([SEGIMAGE2ITKIMAGE, "--inputDICOM", str(seg), "--outputDirectory", str(out), "-t", "nrrd",
                    "-p", "seg"], check=True, capture_output=True, timeout=120)
    return {int(path.stem.split("-")[-1]): sitk.ReadImage(str(path)) for path in out.glob("seg-*.nrrd")}


@needs_dcmqi
@pytest.mark.parametrize(("disease", "classes"), [("MS", {1: "lesion"}), ("tumour", CLASS_NAMES)])
def test_dcmqi_reads_back_exactly_the_labelmap_on_the_source_geometry(tmp_path, disease, classes) -> None:
    from brainlesioncl.dicom_export import write_dicom

    series = _series(tmp_path)
    reference = read_series(series)
    result = _result(reference, disease, classes)
    metadata = tiny_metadata()
    metadata.version, metadata.sha256 = "tiny-v1", {"network": "ab" * 32}
    (seg,) = write_dicom(result, series, metadata, tmp_path / "seg.dcm")
    segments = _dcmqi(seg, tmp_path / "dcmqi")
    truth = sitk.GetArrayFromImage(result.label)
    assert sorted(segments) == sorted(classes)
    for value, image in segments.items():
        on_reference = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
        assert np.array_equal(sitk.GetArrayFromImage(on_reference) > 0, truth == value), value
        assert np.allclose(image.GetDirection(), reference.GetDirection(), atol=1e-4)
        assert np.allclose(image.GetSpacing()[:2], reference.GetSpacing()[:2], atol=1e-4)
    dataset = pydicom.dcmread(str(seg))
    assert dataset.Modality == "SEG" and "BrainLesionCL tiny-v1" in dataset.SeriesDescription
    assert dataset.FrameOfReferenceUID == pydicom.dcmread(str(series.files[0])).FrameOfReferenceUID
    assert dataset.ReferencedSeriesSequence[0].SeriesInstanceUID == series.uid
    names = {int(s.SegmentNumber): s.SegmentLabel for s in dataset.SegmentSequence}
    codes = {int(s.SegmentNumber): s.SegmentedPropertyTypeCodeSequence[0].CodeValue for s in dataset.SegmentSequence}
    algorithm = dataset.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName == "BrainLesionCL" and algorithm.AlgorithmVersion == "tiny-v1"
    assert "ab" * 32 in str(algorithm.AlgorithmParameters)
    if disease == "MS":
        assert names == {1: "MS lesion"} and codes == {1: "32693004"}
    else:
        assert names == {1: "Necrotic / non-enhancing core", 2: "Oedema", 3: "Enhancing tumour"}
        assert codes == {1: "6574001", 2: "79654002", 3: "108369006"}


def test_a_result_off_the_reference_grid_is_refused(tmp_path) -> None:
    from brainlesioncl.dicom_export import write_dicom

    series = _series(tmp_path, oblique=False)
    reference = read_series(series)
    shifted = sitk.Image(reference)
    shifted.SetOrigin(tuple(v + 1.0 for v in reference.GetOrigin()))
    with pytest.raises(OutputPathError, match="first slice position"):
        write_dicom(_result(shifted, "MS", {1: "lesion"}), series, tiny_metadata(), tmp_path / "seg.dcm")
    assert not (tmp_path / "seg.dcm").exists()


@needs_dcmqi
def test_segment_a_study_to_dicom_seg_from_the_command_line(capsys, registry, tiny_version, tmp_path) -> None:
    study = new_uid()
    grid = make_grid((40, 44, 20), (2.0, 2.0, 3.5), origin=(-40.0, -44.0, -35.0))
    for number, sequence in ((3, "FLAIR"), (4, "T1")):
        write_series(sphere_case(grid, centre=(4.0, -2.0, 3.0), radius=12.0), tmp_path / "study" / sequence,
                     study=study, series_number=number, tags=SEQUENCES[sequence])
    code = main(["--registry", str(registry.root), "segment", "--dicom", str(tmp_path / "study"), "-d", "MS",
                 "-o", str(tmp_path / "seg.dcm"), "--probabilities", str(tmp_path / "prob.nii.gz"), "--report",
                 str(tmp_path / "sr.dcm"), "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    dataset = pydicom.dcmread(str(tmp_path / "seg.dcm"))
    assert dataset.Modality == "SEG" and len(dataset.PerFrameFunctionalGroupsSequence) == 20
    assert (tmp_path / "prob.nii.gz").is_file()
    report = pydicom.dcmread(str(tmp_path / "sr.dcm"))
    assert report.Modality == "SR" and report.CurrentRequestedProcedureEvidenceSequence
    code = main(["--registry", str(registry.root), "segment", "--input", f"FLAIR={tmp_path / 'study' / 'FLAIR'}",
                 "-o", str(tmp_path / "x.dcm")])
    assert code == 2 and "--dicom" in capsys.readouterr().err


TID1500READER = str(Path(SEGIMAGE2ITKIMAGE).with_name("tid1500reader"))


@needs_dcmqi
def test_dcmqi_reads_every_lesions_volume_from_the_structured_report(tmp_path) -> None:
    """Two lesions of a split tumour (one with enhancing tissue, one of oedema only) and their uncertainty: the SR
    dcmqi's tid1500reader reads back has one measurement group per lesion with its volume and diameter, each
    referencing the SEG segment it belongs to, and the unsure flag."""
    import json

    from brainlesioncl.dicom_export import write_dicom
    from brainlesioncl.lesion_report import lesion_rows

    series = _series(tmp_path)
    reference = read_series(series)
    result = _result(reference, "tumour", CLASS_NAMES)
    array = sitk.GetArrayFromImage(result.label)
    array[16:19, 2:6, 2:6] = 2  # a second, small lesion of oedema only
    label = sitk.GetImageFromArray(array)
    label.CopyInformation(reference)
    uncertainty = sitk.Cast(label > 0, sitk.sitkFloat32) * 0.2
    uncertainty[2:6, 2:6, 16:19] = 0.9
    result.label, result.uncertainty = label, uncertainty
    rows = lesion_rows(label, result.probability, uncertainty)
    metadata = tiny_metadata()
    metadata.version = "tiny-v1"
    seg, sr = write_dicom(result, series, metadata, tmp_path / "seg.dcm", sr_path=tmp_path / "sr.dcm", rows=rows)
    subprocess.run([TID1500READER, "--inputDICOM", str(sr), "--outputMetadata", str(tmp_path / "sr.json")],
                   check=True, capture_output=True, timeout=120)
    groups = json.loads((tmp_path / "sr.json").read_text())["Measurements"]
    assert len(groups) == len(rows) == 2
    for group, row in zip(sorted(groups, key=lambda g: g["TrackingIdentifier"]), rows, strict=True):
        assert group["TrackingIdentifier"] == f"Lesion {row.index}"
        values = {item["quantity"]["CodeMeaning"]: float(item["value"]) for item in group["measurementItems"]}
        assert values["Volume"] == pytest.approx(row.volume_ml, abs=1e-3)
        assert values["Diameter"] == pytest.approx(row.largest_diameter_mm, abs=0.01)
        assert group["ReferencedSegment"] == (3 if row.enhancing_ml else 2)
        unsure = [q for q in group.get("qualitativeEvaluations", []) if "unsure" in q["conceptCode"]["CodeMeaning"]]
        assert unsure and unsure[0]["conceptValue"]["CodeMeaning"] == ("Yes" if row.unsure else "No")
    assert [r.unsure for r in rows] == [False, True]
