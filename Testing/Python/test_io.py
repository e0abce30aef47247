"""Bad images get specific errors; writes are atomic and never overwrite silently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from brainlesioncl.errors import InvalidImageError, OutputPathError
from brainlesioncl.io import read_image, to_xyz, write_image


def _write(path: Path, array: np.ndarray, spacing=None) -> Path:
    image = sitk.GetImageFromArray(array)
    if spacing:
        image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))
    return path


def test_reads_3d_image_as_float32_xyz(tmp_path: Path) -> None:
    array = np.arange(4 * 5 * 6, dtype=np.int16).reshape(6, 5, 4)  # (z, y, x) on disk
    image = read_image(_write(tmp_path / "a.nii.gz", array))
    assert image.GetPixelID() == sitk.sitkFloat32
    assert to_xyz(image).shape == (4, 5, 6)
    assert to_xyz(image)[1, 2, 3] == array[3, 2, 1]


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.random.rand(3, 6, 5, 4).astype(np.float32), "4-D image with 3 volumes"),
        (np.random.rand(6, 5).astype(np.float32), "2-D image"),
        (np.zeros((6, 5, 4), np.float32), "empty"),
        (np.full((6, 5, 4), 7.0, np.float32), "constant"),
        (np.where(np.eye(6, 5)[:, :, None] > 0, np.nan, 1.0).repeat(4, 2).astype(np.float32), "NaN/Inf"),
        (np.where(np.eye(6, 5)[:, :, None] > 0, np.inf, 1.0).repeat(4, 2).astype(np.float32), "NaN/Inf"),
        (np.random.rand(1, 5, 4).astype(np.float32), "at least 2 voxels"),
    ],
)
def test_bad_images_are_refused_with_the_reason(tmp_path: Path, array: np.ndarray, message: str) -> None:
    path = tmp_path / "bad.nii.gz"
    if array.ndim == 4:
        sitk.WriteImage(sitk.JoinSeries([sitk.GetImageFromArray(a) for a in array]), str(path))
    else:
        _write(path, array)
    with pytest.raises(InvalidImageError, match=message):
        read_image(path, name="FLAIR")


def test_single_volume_4d_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "one.nii.gz"
    sitk.WriteImage(sitk.JoinSeries([sitk.GetImageFromArray(np.random.rand(6, 5, 4).astype(np.float32))]), str(path))
    assert read_image(path).GetDimension() == 3


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(b"not an image")
    with pytest.raises(InvalidImageError, match="cannot read"):
        read_image(junk)
    with pytest.raises(InvalidImageError, match="file not found"):
        read_image(tmp_path / "missing.nii.gz")


def test_write_refuses_missing_folder_and_existing_file(tmp_path: Path) -> None:
    image = sitk.GetImageFromArray(np.ones((4, 4, 4), np.uint8))
    with pytest.raises(OutputPathError, match="does not exist"):
        write_image(image, tmp_path / "missing" / "seg.nii.gz")
    assert not (tmp_path / "missing").exists()
    target = write_image(image, tmp_path / "seg.nii.gz")
    before = target.read_bytes()
    with pytest.raises(OutputPathError, match="exists already"):
        write_image(sitk.GetImageFromArray(np.zeros((4, 4, 4), np.uint8)), target)
    assert target.read_bytes() == before
    write_image(sitk.GetImageFromArray(np.zeros((4, 4, 4), np.uint8)), target, overwrite=True)
    assert target.read_bytes() != before
    with pytest.raises(OutputPathError, match="unsupported extension"):
        write_image(image, tmp_path / "seg.png")


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(*_args, **_kwargs):
        raise RuntimeError("No space left on device")

    monkeypatch.setattr(sitk, "WriteImage", disk_full)
    with pytest.raises(OutputPathError, match="No space left"):
        write_image(sitk.GetImageFromArray(np.ones((4, 4, 4), np.uint8)), tmp_path / "seg.nii.gz")
    assert list(tmp_path.iterdir()) == []


def test_nrrd_round_trip_keeps_geometry(tmp_path: Path) -> None:
    image = sitk.GetImageFromArray(np.random.rand(6, 5, 4).astype(np.float32))
    image.SetSpacing((0.5, 0.7, 3.0))
    image.SetOrigin((10.0, -20.0, 5.0))
    image.SetDirection((0, 1, 0, 1, 0, 0, 0, 0, -1))
    back = read_image(write_image(image, tmp_path / "x.nrrd"))
    assert np.allclose(back.GetSpacing(), image.GetSpacing())
    assert np.allclose(back.GetOrigin(), image.GetOrigin())
    assert np.allclose(back.GetDirection(), image.GetDirection())
