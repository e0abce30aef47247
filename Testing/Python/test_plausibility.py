"""Plausibility warnings (issue 31): each check on a synthetic brain where the truth is known, the checks wired into
every result (API, CLI summary, quality record), and the three implausible real results of the issue through the
CLI as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from brainlesioncl.plausibility import check_plausibility

from conftest import REPO, ThresholdNet, shared_path, tiny_metadata

SHAPE = (80, 80, 80)  # (z, y, x) voxels of 2 mm: 8 uL each, 125 voxels per mL


def _ellipsoid(centre, radii) -> np.ndarray:
    z, y, x = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    return ((z - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + \
        ((x - centre[2]) / radii[2]) ** 2 <= 1.0


BRAIN = _ellipsoid((40, 40, 40), (26, 34, 30))  # about 890 mL
VENTRICLES = _ellipsoid((40, 40, 40), (6, 10, 5))
LESION = _ellipsoid((30, 25, 55), (4, 4, 4))  # about 2 mL, away from the centre


def _image(array: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.SetSpacing((2.0, 2.0, 2.0))
    return image


def _sequence(brain: float, ventricles: float, lesion: float, seed: int = 0) -> sitk.Image:
    values = np.zeros(SHAPE, np.float32)
    values[BRAIN] = brain + np.random.default_rng(seed).normal(0.0, 5.0, int(BRAIN.sum()))
    values[VENTRICLES] = ventricles
    values[LESION] = lesion
    return _image(values)


FLAIR = _sequence(brain=100.0, ventricles=30.0, lesion=180.0)


def _checks(label: np.ndarray, disease: str, sequences: dict, **kwargs) -> list[str]:
    return [w.check for w in check_plausibility(_image(label.astype(np.uint8)), disease, sequences, **kwargs)]


def test_a_bright_lesion_of_usual_size_raises_nothing() -> None:
    assert _checks(LESION, "MS", {"FLAIR": FLAIR}) == []


def test_a_lesion_larger_than_the_disease_and_a_share_of_the_brain_is_flagged() -> None:
    huge = _ellipsoid((40, 40, 40), (22, 28, 24)) & ~VENTRICLES  # about 480 mL
    assert set(_checks(huge, "MS", {"FLAIR": FLAIR})) >= {"disease-volume", "brain-share"}
    assert "disease-volume" not in _checks(_ellipsoid((40, 40, 55), (6, 8, 8)), "tumour", {"FLAIR": FLAIR})


def test_a_lesion_darker_than_the_brain_where_the_disease_is_bright_is_flagged() -> None:
    dark = _sequence(brain=100.0, ventricles=30.0, lesion=60.0)
    warnings = check_plausibility(_image(LESION.astype(np.uint8)), "WMH", {"FLAIR": dark})
    assert [w.check for w in warnings] == ["darker-than-brain"] and "on FLAIR" in warnings[0].message


def test_lesion_in_the_ventricles_is_flagged_on_a_dark_or_a_bright_csf_sequence() -> None:
    assert "ventricles" in _checks(VENTRICLES, "tumour", {"FLAIR": FLAIR})
    t2 = _sequence(brain=100.0, ventricles=250.0, lesion=200.0)  # T2 alone: CSF is the bright tenth
    assert _checks(VENTRICLES, "stroke", {"T2": t2}) == ["ventricles"]
    assert _checks(LESION, "stroke", {"T2": t2}) == []


def test_a_single_raw_sequence_is_flagged() -> None:
    quality = {"inputs": {"T1c": {"brain_extracted": False}}}
    assert _checks(LESION, "tumour", {"FLAIR": FLAIR}, quality=quality) == ["raw-single-sequence"]
    quality["inputs"]["FLAIR"] = {"brain_extracted": False}
    assert _checks(LESION, "tumour", {"FLAIR": FLAIR}, quality=quality) == []


def test_every_result_carries_its_warnings(flair_t1_files) -> None:
    """The API result and the quality record (quality.json, the CLI summary, the Slicer log) carry the checks."""
    from brainlesioncl.inference import Segmenter

    metadata = tiny_metadata()
    bright = sitk.ReadImage(str(flair_t1_files["flair"]))
    segmenter = Segmenter(ThresholdNet(metadata.channels.index("T1")), metadata, device="cpu")
    t1 = sitk.Cast(bright, sitk.sitkFloat32) * 1.1  # another acquisition of the same case
    result = segmenter.segment({"FLAIR": bright, "T1": t1}, "MS", prepare="off")
    assert result.lesion_count and result.warnings == [] and result.quality["plausibility"] == []
    values = sitk.GetArrayFromImage(bright)
    lesion = values > 0.75 * values.max()
    values[lesion] = 0.3 * np.median(values[(values > 0) & ~lesion])  # the same lesion, dark on FLAIR
    dark = sitk.GetImageFromArray(values)
    dark.CopyInformation(bright)
    flagged = segmenter.segment({"FLAIR": dark, "T1": t1}, "MS", prepare="off")
    assert flagged.lesion_count and "darker-than-brain" in [w.check for w in flagged.warnings]
    assert flagged.quality["plausibility"] == [w.to_dict() for w in flagged.warnings]


def test_the_lesion_report_carries_the_warnings(tmp_path) -> None:
    import csv

    from brainlesioncl.lesion_report import lesion_rows, write_lesion_report

    rows = lesion_rows(_image(LESION.astype(np.uint8)))
    write_lesion_report(rows, tmp_path / "r.json", warnings=["the lesions cover 30% of the brain"])
    assert json.loads((tmp_path / "r.json").read_text())["warnings"] == ["the lesions cover 30% of the brain"]
    write_lesion_report(rows, tmp_path / "r.csv", warnings=["the lesions cover 30% of the brain"])
    lines = list(csv.reader(open(tmp_path / "r.csv")))
    assert lines[-1] == ["warning", "the lesions cover 30% of the brain"] and lines[-2][0] == "total"


IMPLAUSIBLE = [  # the three results of issue 31, each with the check that must fire
    ("enhancing_lesion_pyradiomics/brain1/t1c.nii.gz", "T1c", "tumour", {"brain-share", "disease-volume"}),
    ("enhancing_lesion_pyradiomics/brain2/t1c.nii.gz", "T1c", "metastasis", {"disease-volume", "brain-share"}),
    ("unlabeled/chronic_stroke_arc_t2lesion/M2265/t2.nii.gz", "T2", "stroke", {"ventricles"}),
]


@pytest.mark.slow
@pytest.mark.parametrize(("path", "channel", "disease", "expected"), IMPLAUSIBLE,
                         ids=["brain1-tumour", "brain2-metastasis", "chronic-stroke-t2"])
def test_the_implausible_real_results_warn_through_the_cli(tmp_path, path, channel, disease, expected) -> None:
    """As a user runs it: the README's command on the shipped model in a fresh registry."""
    image = shared_path("data", *path.split("/"))
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "brainlesioncl.cli.main", "segment", "--input",
                          f"{channel}={image}", "--disease", disease, "-o", str(tmp_path / "seg.nii.gz"),
                          "--device", "cpu", "--progress", "json"], capture_output=True, text=True, env=env,
                         cwd=REPO, timeout=900)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    checks = {w["check"] for w in summary["quality"]["plausibility"]}
    assert checks & expected, (summary["lesion_volume_ml"], summary["warnings"])
    assert summary["warnings"] == [w["message"] for w in summary["quality"]["plausibility"]]
