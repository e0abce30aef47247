"""The brainlesioncl command line, in-process: outputs, exit codes and error messages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from brainlesioncl.cli.main import main
from brainlesioncl.models import MoEUNet, MoEUNetConfig
from brainlesioncl.registry import ModelRegistry

from conftest import TINY_CHANNELS


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_segment_writes_label_on_reference_grid(capsys, registry: ModelRegistry, tiny_version, flair_t1_files,
                                                tmp_path: Path) -> None:
    out = tmp_path / "seg.nrrd"
    prob = tmp_path / "prob.nii.gz"
    code, stdout, _ = _run(
        capsys, "--registry", str(registry.root), "segment", "--input", f"t2f={flair_t1_files['flair']}",
        "--input", f"T1={flair_t1_files['t1']}", "--disease", "tumour", "-o", str(out), "--probabilities", str(prob),
        "--device", "cpu", "--progress", "json",
    )
    assert code == 0
    lines = stdout.strip().splitlines()
    assert lines[0].startswith("PROGRESS ") and json.loads(lines[-1])["model"] == tiny_version
    label, flair = sitk.ReadImage(str(out)), sitk.ReadImage(str(flair_t1_files["flair"]))
    assert label.GetSize() == flair.GetSize()  # the first --input is the reference
    assert np.allclose(label.GetOrigin(), flair.GetOrigin())
    assert prob.is_file()


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["--input", "FLAIR=FLAIR_PATH", "--input", "t2f=T1_PATH"], "map to channel FLAIR", 2),
        (["--input", "FLAIR=FLAIR_PATH", "--input", "T1=FLAIR_PATH"], "same volume", 2),
        (["--input", "CT=FLAIR_PATH"], "Unknown modality 'CT'", 2),
        (["--input", "FLAIR"], "must look like MODALITY=FILE", 2),
        (["--input", "FLAIR=FLAIR_PATH", "--disease", "flu"], "Unknown disease tag", 2),
        (["--input", "FLAIR=FLAIR_PATH", "--model", "nope-v1"], "No model version 'nope-v1'", 3),
        (["--input", "FLAIR=FLAIR_PATH", "-o", "MISSING/seg.nii.gz"], "does not exist", 2),
    ],
)
def test_segment_errors(capsys, registry, tiny_version, flair_t1_files, tmp_path, args, message, code) -> None:
    args = [a.replace("FLAIR_PATH", str(flair_t1_files["flair"])).replace("T1_PATH", str(flair_t1_files["t1"]))
            .replace("MISSING", str(tmp_path / "missing")) for a in args]
    if "-o" not in args:
        args += ["-o", str(tmp_path / "seg.nii.gz")]
    result, _, err = _run(capsys, "--registry", str(registry.root), "segment", *args, "--device", "cpu")
    assert result == code
    assert message in err
    assert not (tmp_path / "seg.nii.gz").exists()


def test_existing_output_is_kept_unless_overwrite(capsys, registry, tiny_version, flair_t1_files, tmp_path) -> None:
    out = tmp_path / "seg.nii.gz"
    out.write_bytes(b"user's precious segmentation")
    base = ["--registry", str(registry.root), "segment", "--input", f"FLAIR={flair_t1_files['flair']}",
            "-o", str(out), "--device", "cpu"]
    code, _, err = _run(capsys, *base)
    assert code == 2 and "exists already" in err
    assert out.read_bytes() == b"user's precious segmentation"
    code, _, _ = _run(capsys, *base, "--overwrite")
    assert code == 0 and sitk.ReadImage(str(out)).GetDimension() == 3


def test_batch_over_a_folder(capsys, registry, tiny_version, flair_t1_files, tmp_path) -> None:
    cases = tmp_path / "cases"
    for name in ("case01", "case02"):
        (cases / name).mkdir(parents=True)
        shutil.copy(flair_t1_files["flair"], cases / name / "FLAIR.nii.gz")
        shutil.copy(flair_t1_files["t1"], cases / name / "t1.nii.gz")
    (cases / "case03").mkdir()
    (cases / "case03" / "flair.nii.gz").write_bytes(b"corrupt")
    out = tmp_path / "out"
    out.mkdir()
    code, stdout, err = _run(capsys, "--registry", str(registry.root), "segment", "--cases", str(cases),
                             "--output-dir", str(out), "--disease", "MS", "--device", "cpu")
    assert code == 4  # one case failed, the others were still segmented
    assert "case03: FAILED" in err and "2 of 3 case(s) segmented" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["case01_seg.nii.gz", "case02_seg.nii.gz"]


def test_batch_from_csv(capsys, registry, tiny_version, flair_t1_files, tmp_path) -> None:
    manifest = tmp_path / "cases.csv"
    manifest.write_text(f"case,FLAIR,T1,disease\nA,{flair_t1_files['flair']},{flair_t1_files['t1']},stroke\n"
                        f"B,{flair_t1_files['flair']},,WMH\n")
    out = tmp_path / "out"
    out.mkdir()
    code, stdout, _ = _run(capsys, "--registry", str(registry.root), "segment", "--cases", str(manifest),
                           "--output-dir", str(out), "--device", "cpu")
    assert code == 0, stdout
    assert (out / "A_seg.nii.gz").is_file() and (out / "B_seg.nii.gz").is_file()


def test_models_commands(capsys, registry, tmp_path) -> None:
    model = MoEUNet(MoEUNetConfig(channels=TINY_CHANNELS))
    torch.save({"model": model.state_dict(), "episode_idx": 1}, tmp_path / "exprience_0.pt")
    reg = ["--registry", str(registry.root)]
    code, stdout, _ = _run(capsys, *reg, "models", "import", str(tmp_path / "exprience_0.pt"), "--activate")
    assert code == 0 and "braincl-v1 is now active" in stdout
    _run(capsys, *reg, "models", "import", str(tmp_path / "exprience_0.pt"))
    code, stdout, _ = _run(capsys, *reg, "models", "list")
    assert code == 0 and "* " in stdout and "braincl-v1" in stdout and "braincl-v2" in stdout
    code, stdout, _ = _run(capsys, *reg, "models", "info", "braincl-v2")
    assert json.loads(stdout)["kind"] == "moe_unet"
    assert _run(capsys, *reg, "models", "activate", "braincl-v2")[0] == 0
    code, stdout, _ = _run(capsys, *reg, "models", "rollback")
    assert code == 0 and "braincl-v1" in stdout
    code, _, _ = _run(capsys, *reg, "models", "export", "braincl-v1", str(tmp_path / "exported"))
    assert code == 0 and (tmp_path / "exported" / "bundle.json").is_file()
    code, _, err = _run(capsys, *reg, "models", "import", str(tmp_path / "missing.pt"))
    assert code == 3 and "not found" in err


def test_no_model_installed_names_the_fix(capsys, registry, flair_t1_files, tmp_path, monkeypatch) -> None:
    import brainlesioncl.registry.registry as registry_module

    monkeypatch.setattr(registry_module, "builtin_models_dir", lambda: tmp_path / "no_shipped_models")
    code, _, err = _run(capsys, "--registry", str(registry.root), "segment", "--input",
                        f"FLAIR={flair_t1_files['flair']}", "-o", str(tmp_path / "s.nii.gz"))
    assert code == 3 and "brainlesioncl models import" in err
    assert not (tmp_path / "s.nii.gz").exists()


def test_segment_writes_a_per_lesion_report(capsys, registry, tiny_version, flair_t1_files, tmp_path: Path) -> None:
    import csv

    code, _out, _err = _run(capsys, "--registry", str(registry.root), "segment", "--input",
                            f"FLAIR={flair_t1_files['flair']}", "-o", str(tmp_path / "seg.nii.gz"), "--device", "cpu",
                            "--report", str(tmp_path / "lesions.csv"))
    assert code == 0
    rows = list(csv.DictReader(open(tmp_path / "lesions.csv")))
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "seg.nii.gz")))
    voxel_ml = float(np.prod(sitk.ReadImage(str(tmp_path / "seg.nii.gz")).GetSpacing())) / 1000
    kinds = [r["lesion"] for r in rows]  # the lesions, the total, then the result's plausibility warnings
    total = kinds.index("total")
    assert all(k.isdigit() for k in kinds[:total]) and set(kinds[total + 1:]) <= {"warning"}
    assert float(rows[total]["volume_ml"]) == pytest.approx(label.sum() * voxel_ml, rel=1e-3)
    code, _out, err = _run(capsys, "--registry", str(registry.root), "segment", "--input",
                           f"FLAIR={flair_t1_files['flair']}", "-o", str(tmp_path / "seg2.nii.gz"), "--device", "cpu",
                           "--report", str(tmp_path / "lesions.txt"))
    assert code == 2 and ".csv or .json" in err


def test_each_lesion_names_the_sequence_it_is_brightest_on() -> None:
    """MS lesions are bright on FLAIR and T2 and dark on T1: no lesion of an MS phantom may be 'brightest on T1'."""
    from collections import Counter

    from brainlesioncl.lesion_report import lesion_rows
    from brainlesioncl.phantoms import PhantomConfig, generate_case

    case = generate_case(PhantomConfig(disease="MS", modalities=("FLAIR", "T1", "T2"), size=(96, 112, 88),
                                       spacing=1.8, seed=4))
    rows = lesion_rows(case.label, sequences=dict(case.images))
    found = Counter(row.brightest_on for row in rows)
    assert len(rows) >= 5 and set(found) <= {"FLAIR", "T2"} and found["FLAIR"] > len(rows) / 2
    assert all(row.brightest_contrast > 1.0 for row in rows)  # well above the brain's spread
    assert lesion_rows(case.label)[0].brightest_on is None  # no sequences given: no claim


def test_segment_writes_uncertainty_and_flags_lesions(capsys, registry, tiny_version, flair_t1_files,
                                                      tmp_path: Path) -> None:
    import csv

    code, _out, err = _run(capsys, "--registry", str(registry.root), "segment", "--input",
                           f"FLAIR={flair_t1_files['flair']}", "-o", str(tmp_path / "seg.nii.gz"), "--device", "cpu",
                           "--uncertainty", str(tmp_path / "unc.nii.gz"), "--report", str(tmp_path / "lesions.csv"))
    assert code == 0, err
    uncertainty = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "unc.nii.gz")))
    assert uncertainty.shape == sitk.GetArrayFromImage(sitk.ReadImage(str(flair_t1_files["flair"]))).shape
    assert 0.0 <= uncertainty.min() and uncertainty.max() <= 1.0 + 1e-6
    header = next(csv.reader(open(tmp_path / "lesions.csv")))
    assert "mean_uncertainty" in header and "unsure" in header


def test_an_ascii_terminal_gets_replacement_characters_not_a_crash(tmp_path: Path) -> None:
    """Messages carry '°' and '²'; with an ASCII-only stdout the command must still finish."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONIOENCODING": "ascii", "PYTHONUTF8": "0"}
    sidecar = tmp_path / "dwi.json"
    sidecar.write_text('{"ImageType": ["ORIGINAL", "PRIMARY", "M"], "DiffusionBValue": 1000}')
    image = tmp_path / "dwi.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((4, 4, 4), np.float32)), str(image))
    done = subprocess.run([sys.executable, "-m", "brainlesioncl.cli.main", "identify", "--no-image", str(image)],
                          env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert b"s/mm?" in done.stdout  # '²' replaced
