"""Reading, validating and atomically writing 3-D images (NIfTI, NRRD, MetaImage) through SimpleITK.

SimpleITK keeps the full physical geometry (spacing, origin, direction in LPS), which is what lets BrainLesionCL put a
labelmap back exactly on the user's grid. Arrays handed to the rest of the library are indexed ``(x, y, z)`` (SimpleITK
returns ``(z, y, x)``; :func:`to_xyz` / :func:`from_xyz` convert).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InvalidImageError, OutputPathError
from .atomic import StagedOutputs, check_writable_folder

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "read_image",
    "validate_image",
    "write_image",
    "stage_image",
    "squeeze_to_3d",
    "to_xyz",
    "from_xyz",
    "check_output_path",
]

logger = logging.getLogger(__name__)

SUPPORTED_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".seg.nrrd", ".mha")


def _extension(path: Path) -> str:
    name = path.name.lower()
    for ext in sorted(SUPPORTED_EXTENSIONS, key=len, reverse=True):
        if name.endswith(ext):
            return ext
    return ""


def read_image(path: str | os.PathLike, *, name: str | None = None, validate: bool = True) -> sitk.Image:
    """Read a 3-D scalar image as float32 and (by default) check it is usable.

    Args:
        path: NIfTI (``.nii``/``.nii.gz``), NRRD or MetaImage file, or a folder or zip holding one DICOM MR series.
        name: how to call the image in error messages (e.g. the modality); defaults to the file name.
        validate: run :func:`validate_image`.

    Raises:
        FileNotFoundError: the file does not exist.
        InvalidImageError: unreadable, not 3-D, or fails validation.
    """
    path = Path(path).expanduser()
    label = name or path.name
    if path.is_dir() or path.suffix.lower() == ".zip":
        image = _read_dicom_series(path, label)
        if validate:
            validate_image(image, label)
        return image
    if not path.is_file():
        raise InvalidImageError(f"{label}: file not found: {path}") from FileNotFoundError(str(path))
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise InvalidImageError(
            f"{label}: cannot read {path} as an image ({_itk_reason(err)}). The file may be truncated or damaged "
            f"(re-export it); supported formats: {', '.join(SUPPORTED_EXTENSIONS)}."
        ) from err
    if _extension(path) in (".nii", ".nii.gz"):
        _check_nifti_voxels(path, label)
    image = squeeze_to_3d(image, label)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InvalidImageError(
            f"{label}: has {image.GetNumberOfComponentsPerPixel()} components per voxel (a vector/RGB or 4-D image). "
            "Give one scalar 3-D volume per modality (split multi-channel files first)."
        )
    image = sitk.Cast(image, sitk.sitkFloat32)
    if validate:
        validate_image(image, label)
    return image


def _read_dicom_series(path: Path, label: str) -> sitk.Image:
    """The one MR image series of a DICOM folder or zip (:mod:`brainlesioncl.io.dicom`)."""
    from .dicom import dicom_source, find_series, holds_dicom, read_series

    if not path.exists():
        raise InvalidImageError(f"{label}: not found: {path}") from FileNotFoundError(str(path))
    if path.is_dir() and not holds_dicom(path):
        raise InvalidImageError(
            f"{label}: {path} is a folder without DICOM files. Give one image file per modality (e.g. "
            f"{path / 'flair.nii.gz'}) or the folder of one DICOM series.")
    with dicom_source(path) as folder:
        usable, set_aside = find_series(folder)
        if len(usable) == 1:
            return read_series(usable[0])
    if not usable:
        reasons = "; ".join(f"{s.label}: {s.problem}" for s in set_aside)
        raise InvalidImageError(f"{label}: {path} holds no MR image series to segment ({reasons}).")
    raise InvalidImageError(
        f"{label}: {path} holds {len(usable)} MR series ({', '.join(s.label for s in usable)}). Give one series "
        "folder per modality, or the whole study with --dicom so that each series is identified and mapped.")


def _itk_reason(err: BaseException) -> str:
    """The useful part of an ITK exception: its description, not the source location, a stale errno or the last line
    of a matrix printout."""
    text = str(err)
    lowered = text.lower()
    if "bad direction" in lowered or "determinant is 0" in lowered or "singular" in lowered:
        return "the direction matrix is singular: the header's orientation is broken (two axes point the same way)"
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Reason: No such file", "Exception thrown"))
              and ".cxx:" not in line and ".hxx:" not in line] or lines[-1:]
    return " ".join(useful)[-300:]


def _check_nifti_voxels(path: Path, label: str) -> None:
    """Read the raw voxels once more with nibabel: ITK's NIfTI reader fills a truncated file with zeros and turns
    NaN voxels into 0 without a word, and either would be segmented as if it were the patient's image."""
    import gzip
    import zlib

    import nibabel as nib

    try:
        proxy = nib.load(str(path))
    except Exception as err:  # noqa: BLE001 - an odd header nibabel rejects; ITK already read the file
        logger.debug("nibabel could not parse the header of %s: %s", path, err)
        return
    try:
        raw = np.asanyarray(proxy.dataobj)  # type: ignore[attr-defined]  # every image nibabel reads has it
    except (EOFError, zlib.error, gzip.BadGzipFile, OSError, ValueError) as err:
        raise InvalidImageError(
            f"{label}: {path} is truncated or damaged ({str(err).splitlines()[0][:160]}): it holds fewer voxels "
            "than its header declares. Copy or export the file again; BrainLesionCL does not segment a partial image."
        ) from err
    if raw.dtype.kind == "f" and not np.isfinite(raw).all():
        bad = int(raw.size - np.count_nonzero(np.isfinite(raw)))
        raise InvalidImageError(
            f"{label}: contains {bad} NaN/Inf voxels. Replace them (e.g. with 0) or re-export the image; "
            "BrainLesionCL does not guess values for them."
        )


def squeeze_to_3d(image: sitk.Image, label: str) -> sitk.Image:
    dim = image.GetDimension()
    if dim == 3:
        return image
    if dim == 4 and image.GetSize()[3] == 1:
        return image[:, :, :, 0]
    if dim == 4:
        raise InvalidImageError(
            f"{label}: is a 4-D image with {image.GetSize()[3]} volumes. BrainLesionCL needs one 3-D volume per "
            "modality: split the series (e.g. pick one diffusion b-value or one time point) and map each volume "
            "to its channel."
        )
    raise InvalidImageError(
        f"{label}: is a {dim}-D image; a 3-D volume is needed. A 2-D slice cannot be segmented in 3-D: load the "
        "whole series."
    )


def validate_image(image: sitk.Image, name: str = "image") -> None:
    """Refuse images a model cannot use, with the reason and the fix.

    Checks: 3-D, at least 2 voxels along every axis, positive spacing, finite voxels, non-constant content, and not a
    label map or mask (a handful of whole-number values).
    """
    if image.GetDimension() != 3:
        raise InvalidImageError(f"{name}: is {image.GetDimension()}-D; a 3-D volume is needed.")
    size = image.GetSize()
    if min(size) < 2:
        raise InvalidImageError(
            f"{name}: has size {size}; every axis needs at least 2 voxels (a single slice is a 2-D image). "
            "Load the whole 3-D series."
        )
    if min(image.GetSpacing()) <= 0:
        raise InvalidImageError(f"{name}: has non-positive spacing {image.GetSpacing()}; the header is broken.")
    array = sitk.GetArrayViewFromImage(image)
    finite = np.isfinite(array)
    if not finite.all():
        bad = int(array.size - np.count_nonzero(finite))
        raise InvalidImageError(
            f"{name}: contains {bad} NaN/Inf voxels. Replace them (e.g. with 0) or re-export the image; "
            "BrainLesionCL does not guess values for them."
        )
    lo, hi = float(array.min()), float(array.max())
    if lo == hi:
        what = "empty (all zero)" if hi == 0 else f"constant (every voxel {hi:g})"
        raise InvalidImageError(
            f"{name}: is {what}; there is no image content to segment. Check that the right file or series was "
            "mapped to this channel."
        )
    values = label_map_values(array)
    if values is not None:
        raise InvalidImageError(
            f"{name}: holds only the values {', '.join(f'{v:g}' for v in values)}: it is a label map or mask, not an "
            "MR image. Give the sequence itself for this channel (e.g. flair.nii.gz); a label belongs with the "
            "annotated cases of an episode."
        )


#: An image with at most this many distinct values, all whole numbers, is a label map or mask (an MR image has
#: hundreds of grey levels, even when stored as 8-bit).
LABEL_MAP_MAX_VALUES = 10


def label_map_values(array: np.ndarray) -> list[float] | None:
    """The values of a label map or mask given where an image is expected, else None (looked at on every second
    voxel along each axis: enough to see an image's grey levels, eight times cheaper)."""
    sample = np.unique(np.asarray(array)[::2, ::2, ::2])
    if len(sample) > LABEL_MAP_MAX_VALUES or not np.all(sample == np.round(sample)):
        return None
    return [float(v) for v in sample]


def to_xyz(image: sitk.Image) -> np.ndarray:
    """The voxel array indexed (x, y, z) (a copy, float32 for float images)."""
    return np.ascontiguousarray(sitk.GetArrayFromImage(image).transpose(2, 1, 0))


def from_xyz(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """An image with ``array`` (x, y, z) as voxels and ``reference``'s geometry."""
    if tuple(array.shape) != tuple(reference.GetSize()):
        raise ValueError(f"array shape {array.shape} != reference size {reference.GetSize()}")
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    image.CopyInformation(reference)
    return image


def check_output_path(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Check an output can be written there *before* any work is done.

    Raises:
        OutputPathError: the folder does not exist, the extension is not supported, or the file exists and
            ``overwrite`` is False.
    """
    path = Path(path).expanduser()
    if not _extension(path):
        raise OutputPathError(
            f"Output {path} has an unsupported extension; use one of {', '.join(SUPPORTED_EXTENSIONS)}."
        )
    if not path.parent.is_dir():
        raise OutputPathError(
            f"Output folder {path.parent} does not exist. Create it first (BrainLesionCL does not create folders "
            "for outputs, so a typo cannot scatter files)."
        )
    if path.is_dir():
        raise OutputPathError(f"Output {path} is a folder; give a file name such as {path / 'seg.nii.gz'}.")
    if path.exists() and not overwrite:
        raise OutputPathError(
            f"Output {path} exists already. Choose another name, or add --overwrite to replace it "
            "(overwrite=True in Python)."
        )
    check_writable_folder(path.parent)
    return path


def write_image(image: sitk.Image, path: str | os.PathLike, *, overwrite: bool = False, compress: bool = True) -> Path:
    """Write one image atomically and verified (see :mod:`brainlesioncl.io.atomic`).

    A crash or a full disk can therefore never leave a half-written file under the final name, and a write that
    SimpleITK reports as done but that did not reach the disk is an error, not a 0-byte result.

    Raises:
        OutputPathError: see :func:`check_output_path`, or the write failed (nothing is left behind).
    """
    with StagedOutputs() as outputs:
        final = stage_image(outputs, image, path, overwrite=overwrite, compress=compress)
    return final


def stage_image(
    outputs: StagedOutputs, image: sitk.Image, path: str | os.PathLike, *, overwrite: bool = False,
    compress: bool = True,
) -> Path:
    """Add one image to a set of outputs written all-or-nothing; returns its final path."""
    path = check_output_path(path, overwrite=overwrite)
    ext = _extension(path)
    outputs.add(
        path,
        lambda tmp: sitk.WriteImage(image, str(tmp), useCompression=compress),
        verify=lambda tmp: _verify_written(tmp, image, ext),
        suffix=ext,
    )
    return path


def _verify_written(file: Path, expected: sitk.Image, ext: str) -> None:
    """Read a written image back and compare it with what was meant to be written (voxels and geometry)."""
    if ext in (".nii", ".nii.gz"):
        _check_nifti_voxels(file, file.name)  # ITK alone would read a truncated NIfTI as zeros
    back = sitk.ReadImage(str(file))
    same_grid = (back.GetSize() == expected.GetSize()
                 and np.allclose(back.GetSpacing(), expected.GetSpacing(), atol=1e-4)
                 and np.allclose(back.GetOrigin(), expected.GetOrigin(), atol=1e-3))
    if not same_grid or not np.array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(expected)):
        raise OSError(5, "the file read back differs from what was written")
