"""Nothing lost, nothing silent: full disks, truncated files, bad settings and damaged bundles, through the CLI and
the Python API. Each test reproduces a fault a user or an unlucky site met; docs/RELIABILITY.md lists them.

Full disks are real where the test can make one (a 64 KiB tmpfs, as root, as on CI) and simulated otherwise.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

import brainlesioncl.io.image_io as image_io
from brainlesioncl.cli.main import main
from brainlesioncl.errors import CorruptModelError, InvalidImageError, OutputPathError
from brainlesioncl.inference import Segmenter
from brainlesioncl.io import read_image, write_image
from brainlesioncl.registry import ModelBundle, ModelRegistry

from conftest import ThresholdNet, tiny_metadata


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@contextmanager
def small_disk(path: Path, size: str = "64k", *, readonly: bool = False) -> Iterator[Path]:
    """A real, tiny file system at ``path`` (tmpfs); skips the test where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if readonly else "")
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(folder: Path) -> None:
    """Fill the file system until the kernel says it is full."""
    with open(folder / "ballast", "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError:
            pass


# -- outputs: verified, all-or-nothing, with the user's permissions ----------------------------------------------------
def test_full_disk_on_segment_exits_non_zero_and_leaves_no_file(capsys, registry, tiny_version, flair_t1_files,
                                                                tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", "64k") as disk:
        _fill(disk)
        code, text = _run(capsys, "--registry", registry.root, "segment", "--input",
                          f"FLAIR={flair_t1_files['flair']}", "-o", disk / "seg.nii.gz", "--device", "cpu")
        assert code == 2 and "disk is full" in text and "Wrote" not in text
        assert sorted(p.name for p in disk.iterdir()) == ["ballast"]  # no 0-byte result, no temporary file


def test_a_write_that_silently_fails_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SimpleITK reports a full disk only on stderr: an empty or truncated file must never be put in place."""
    image = sitk.GetImageFromArray(np.random.default_rng(0).random((8, 9, 10)).astype(np.float32))
    real_write = sitk.WriteImage

    def truncating_write(img, name, useCompression=True):  # noqa: N803 - SimpleITK's keyword
        real_write(img, name, useCompression=useCompression)
        data = Path(name).read_bytes()
        Path(name).write_bytes(data[: len(data) // 2])

    for behaviour in (lambda img, name, useCompression=True: Path(name).write_bytes(b""), truncating_write):  # noqa: N803
        monkeypatch.setattr(image_io.sitk, "WriteImage", behaviour)
        for ext in (".nii.gz", ".nii", ".nrrd"):
            with pytest.raises(OutputPathError, match="Could not write"):
                write_image(image, tmp_path / f"out{ext}")
    assert list(tmp_path.iterdir()) == []


def test_two_outputs_are_all_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    segmenter = Segmenter(ThresholdNet(1), tiny_metadata(), device="cpu")
    from synthetic import make_grid

    from conftest import sphere_case

    flair = sphere_case(make_grid((40, 40, 32), (2.0, 2.0, 2.0), origin=(-39.0, -39.0, -31.0)))
    result = segmenter.segment({"FLAIR": flair}, "tumour")
    label_path, prob_path = tmp_path / "seg.nii.gz", tmp_path / "prob.nii.gz"
    label_path.write_bytes(b"previous result")  # an existing result must survive a failed overwrite
    real_write = sitk.WriteImage

    def fail_on_probability(img, name, useCompression=True):  # noqa: N803
        if "prob" in Path(name).name:
            Path(name).write_bytes(b"\0" * 10)  # a truncated write that "succeeds"
        else:
            real_write(img, name, useCompression=useCompression)

    monkeypatch.setattr(image_io.sitk, "WriteImage", fail_on_probability)
    with pytest.raises(OutputPathError, match=r"prob\.nii\.gz"):
        result.write(label_path, probabilities=prob_path, overwrite=True)
    assert label_path.read_bytes() == b"previous result" and not prob_path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg.nii.gz"]
    monkeypatch.setattr(image_io.sitk, "WriteImage", real_write)
    result.write(label_path, probabilities=prob_path, overwrite=True)
    assert sitk.ReadImage(str(label_path)).GetSize() == flair.GetSize() and prob_path.is_file()


def test_outputs_follow_the_umask(tmp_path: Path) -> None:
    image = sitk.GetImageFromArray(np.ones((4, 4, 4), np.float32))
    previous = os.umask(0o022)
    try:
        write_image(image, tmp_path / "shared.nii.gz")
    finally:
        os.umask(previous)
    assert (tmp_path / "shared.nii.gz").stat().st_mode & 0o777 == 0o644


def test_read_only_output_folder_is_refused_before_any_work(capsys, registry, tiny_version, flair_t1_files,
                                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Segmenter, "segment", lambda *a, **k: pytest.fail("segmented before checking the output"))
    folder = tmp_path / "readonly"
    folder.mkdir()
    if os.geteuid() == 0:  # root writes through permission bits: use a read-only file system instead
        context = small_disk(folder, readonly=True)
    else:
        folder.chmod(0o500)
        context = contextmanager(lambda: iter([folder]))()
    with context:
        code, text = _run(capsys, "--registry", registry.root, "segment", "--input",
                          f"FLAIR={flair_t1_files['flair']}", "-o", folder / "seg.nii.gz", "--device", "cpu")
    assert code == 2 and "cannot be written" in text


# -- inputs -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ext", [".nii.gz", ".nii"])
def test_truncated_nifti_input_is_an_error_naming_the_file(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"flair{ext}"
    sitk.WriteImage(sitk.GetImageFromArray(np.random.default_rng(1).random((30, 30, 30)).astype(np.float32)),
                    str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidImageError, match=rf"flair{ext.replace('.', '[.]')} is truncated"):
        read_image(path)


def test_folder_given_as_image_and_singular_direction(tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError, match="is a folder without DICOM files. Give one image file per modality"):
        read_image(tmp_path)
    header = tmp_path / "bad.mhd"
    (tmp_path / "bad.raw").write_bytes(np.ones((4, 4, 4), np.float32).tobytes())
    header.write_text("ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementType = MET_FLOAT\n"
                      "TransformMatrix = 1 0 0 1 0 0 0 0 1\nElementSpacing = 1 1 1\nElementDataFile = bad.raw\n")
    with pytest.raises(InvalidImageError, match="direction matrix is singular"):
        read_image(header)


def test_implausible_spacing_is_refused_before_allocating(capsys, registry, tiny_version, tmp_path: Path) -> None:
    image = sitk.GetImageFromArray(np.random.default_rng(2).random((176, 256, 256)).astype(np.float32))
    image.SetSpacing((50.0, 50.0, 50.0))
    sitk.WriteImage(image, str(tmp_path / "flair.nii.gz"))
    code, text = _run(capsys, "--registry", registry.root, "segment", "--input", f"FLAIR={tmp_path / 'flair.nii.gz'}",
                      "-o", tmp_path / "seg.nii.gz", "--device", "cpu")
    assert code == 2 and "field of view" in text and "spacing" in text


def test_numpy_arrays_and_vector_images_get_the_fix() -> None:
    segmenter = Segmenter(ThresholdNet(1), tiny_metadata(), device="cpu")
    with pytest.raises(InvalidImageError, match="numpy array.*GetImageFromArray"):
        segmenter.segment({"FLAIR": np.zeros((20, 20, 20), np.float32)}, "tumour")
    scalar = sitk.GetImageFromArray(np.random.default_rng(3).random((20, 20, 20)).astype(np.float32))
    vector = sitk.Compose([scalar] * 3)
    with pytest.raises(InvalidImageError, match="VectorIndexSelectionCast"):
        segmenter.segment({"FLAIR": vector}, "tumour")


# -- settings ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "0"], "--epochs must be a whole number >= 1"),
        (["--epochs", "-3"], "--epochs must be a whole number >= 1"),
        (["--batch-size", "0"], "--batch-size must be"),
        (["--crop-size", "40"], "--crop-size must be a multiple of 16"),
        (["--validation-fraction", "1.5"], "--validation-fraction must be"),
        (["--option", "beta=abc"], "is not a value"),
        (["--option", 'beta="abc"'], "option beta must be a non-negative number"),
        (["--option", "betta=1"], "has no option"),
        (["--device", "bogus"], "--device 'bogus'"),
        (["--name", "bad/name"], "is not allowed"),
    ],
)
def test_bad_episode_settings_fail_before_reading_cases(capsys, registry, tiny_version, tmp_path, args, message):
    code, text = _run(capsys, "--registry", registry.root, "episode", tmp_path / "no-such-folder", "--disease",
                      "stroke", *args)
    assert code == 2 and message in text, text


def test_episode_with_only_empty_labels_is_refused(capsys, registry, tiny_version, tmp_path: Path) -> None:
    from cl_helpers import write_image as write_xyz

    for i in range(3):
        folder = tmp_path / "cases" / f"case{i}"
        folder.mkdir(parents=True)
        write_xyz(np.random.default_rng(i).random((40, 40, 40)).astype(np.float32) + 0.1, folder / "flair.nii.gz")
        write_xyz(np.zeros((40, 40, 40), np.uint8), folder / "label.nii.gz")
    versions = set(registry.version_ids())
    code, text = _run(capsys, "--registry", registry.root, "episode", tmp_path / "cases", "--disease", "stroke",
                      "--epochs", "1", "--crop-size", "32", "--device", "cpu")
    assert code == 2 and "Every label of the 3 case(s) is empty" in text
    assert set(registry.version_ids()) == versions


def test_segment_device_bogus(capsys, registry, tiny_version, flair_t1_files, tmp_path: Path) -> None:
    code, text = _run(capsys, "--registry", registry.root, "segment", "--input", f"FLAIR={flair_t1_files['flair']}",
                      "-o", tmp_path / "seg.nii.gz", "--device", "bogus")
    assert code == 2 and "auto (CUDA when present), cpu, cuda or cuda:N" in text


# -- models -----------------------------------------------------------------------------------------------------------
def _user_bundle(registry: ModelRegistry, tiny_version: str) -> Path:
    return registry.path_of(tiny_version)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda meta: [meta], "holds a list"),
        (lambda meta: {**meta, "schema_version": "one"}, "schema_version 'one'"),
    ],
)
def test_malformed_bundle_json_is_a_clear_model_error(registry, tiny_version, edit, message) -> None:
    meta_file = _user_bundle(registry, tiny_version) / "bundle.json"
    meta_file.write_text(json.dumps(edit(json.loads(meta_file.read_text()))))
    with pytest.raises(CorruptModelError, match=message):
        ModelBundle(meta_file.parent)


def test_tampered_architecture_is_refused_before_building(registry, tiny_version, monkeypatch) -> None:
    meta_file = _user_bundle(registry, tiny_version) / "bundle.json"
    meta = json.loads(meta_file.read_text())
    meta["components"]["network"]["architecture"]["channels"] = [65536] * 5
    meta_file.write_text(json.dumps(meta))
    import brainlesioncl.registry.bundle as bundle_module

    real_build = bundle_module.build_network

    def build_only_on_meta(*args, **kwargs):
        assert torch.empty(0).device.type == "meta", "a network was allocated before its shapes were checked"
        return real_build(*args, **kwargs)

    monkeypatch.setattr(bundle_module, "build_network", build_only_on_meta)
    with pytest.raises(CorruptModelError, match="describes another network than its weights"):
        ModelBundle(meta_file.parent).build()


def test_one_damaged_bundle_does_not_hide_the_others(capsys, registry, tiny_version) -> None:
    from brainlesioncl.models import MoEUNet, MoEUNetConfig

    from conftest import TINY_CHANNELS
    from conftest import tiny_metadata as meta

    good = registry.add(meta("good"), {"network": MoEUNet(MoEUNetConfig(channels=TINY_CHANNELS)).state_dict()})
    (_user_bundle(registry, tiny_version) / "bundle.json").write_text("[]")
    code, text = _run(capsys, "--registry", registry.root, "models", "list")
    assert code == 0 and good in text and f"{tiny_version}" in text and "DAMAGED" in text


def test_random_bytes_are_not_called_pickled_code(capsys, registry, tmp_path: Path) -> None:
    (tmp_path / "weights.pt").write_bytes(np.random.default_rng(5).bytes(5000))
    code, text = _run(capsys, "--registry", registry.root, "models", "import", tmp_path / "weights.pt")
    assert code == 3 and "is not a PyTorch checkpoint" in text and "execute code" not in text


def test_full_disk_during_import_and_episode_checkpoint(capsys, registry, tiny_version, tmp_path: Path) -> None:
    torch.save({"model": registry.get(tiny_version).state_dict()}, tmp_path / "exprience_1.pt")
    with small_disk(tmp_path / "full-registry", "64k") as disk:
        code, text = _run(capsys, "--registry", disk, "models", "import", tmp_path / "exprience_1.pt")
        assert code == 3 and "disk is full" in text
        assert not [p for p in disk.rglob("*") if p.is_file()]  # nothing partial left behind
        from brainlesioncl.errors import ModelStorageError
        from brainlesioncl.training.trainer import _save_checkpoint

        with pytest.raises(ModelStorageError, match="disk is full"):
            _save_checkpoint(disk / "checkpoint.pt", {"network": registry.get(tiny_version).state_dict()})
        assert not [p for p in disk.rglob("*") if p.is_file()]


def test_gzip_check_sees_a_complete_output(tmp_path: Path) -> None:
    """The verified write leaves a complete gzip stream (read to the end without error)."""
    path = write_image(sitk.GetImageFromArray(np.arange(1000, dtype=np.float32).reshape(10, 10, 10)),
                       tmp_path / "full.nii.gz")
    with gzip.open(path, "rb") as fh:
        assert len(fh.read()) > 4000
