"""Reading, validating and atomically writing 3-D images (NIfTI, NRRD, MetaImage) through SimpleITK.

SimpleITK keeps the full physical geometry (spacing, origin, direction in LPS), which is what lets BrainLesionCL put a
labelmap back exactly on the user's grid. Arrays handed to the rest of the library are indexed ``(x, y, z)`` (SimpleITK
returns ``(z, y, x)``; :func:`to_xyz` / :func:`from_xyz` convert).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InvalidImageError, OutputPathError

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "read_image",
    "validate_image",
    "write_image",
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
        path: NIfTI (``.nii``/``.nii.gz``), NRRD or MetaImage file.
        name: how to call the image in error messages (e.g. the modality); defaults to the file name.
        validate: run :func:`validate_image`.

    Raises:
        FileNotFoundError: the file does not exist.
        InvalidImageError: unreadable, not 3-D, or fails validation.
    """
    path = Path(path).expanduser()
    label = name or path.name
    if not path.is_file():
        raise InvalidImageError(f"{label}: file not found: {path}") from FileNotFoundError(str(path))
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise InvalidImageError(
            f"{label}: cannot read {path} as an image ({str(err).strip().splitlines()[-1][:200]}). "
            f"Supported formats: {', '.join(SUPPORTED_EXTENSIONS)}."
        ) from err
    image = _squeeze_to_3d(image, label)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InvalidImageError(
            f"{label}: has {image.GetNumberOfComponentsPerPixel()} components per voxel (a vector/RGB or 4-D image). "
            "Give one scalar 3-D volume per modality (split multi-channel files first)."
        )
    image = sitk.Cast(image, sitk.sitkFloat32)
    if validate:
        _check_nifti_nan(path, label)
        validate_image(image, label)
    return image


def _check_nifti_nan(path: Path, label: str) -> None:
    """ITK's NIfTI reader silently turns NaN voxels into 0, so read the raw voxels once more with nibabel."""
    if _extension(path) not in (".nii", ".nii.gz"):
        return
    import nibabel as nib

    try:
        raw = np.asanyarray(nib.load(str(path)).dataobj)
    except Exception as err:  # nibabel raises many types for odd headers; ITK already read the file
        logger.debug("nibabel could not re-read %s for the NaN check: %s", path, err)
        return
    if raw.dtype.kind == "f" and not np.isfinite(raw).all():
        bad = int(raw.size - np.count_nonzero(np.isfinite(raw)))
        raise InvalidImageError(
            f"{label}: contains {bad} NaN/Inf voxels. Replace them (e.g. with 0) or re-export the image; "
            "BrainLesionCL does not guess values for them."
        )


def _squeeze_to_3d(image: sitk.Image, label: str) -> sitk.Image:
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

    Checks: 3-D, at least 2 voxels along every axis, positive spacing, finite voxels, non-constant content.
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
    if path.exists() and not overwrite:
        raise OutputPathError(
            f"Output {path} exists already. Choose another name, or pass overwrite=True (--overwrite) to replace it."
        )
    return path


def write_image(image: sitk.Image, path: str | os.PathLike, *, overwrite: bool = False, compress: bool = True) -> Path:
    """Write an image atomically: to a temporary file in the same folder, then renamed into place.

    A crash or a full disk can therefore never leave a half-written file under the final name.

    Raises:
        OutputPathError: see :func:`check_output_path`, or the write itself failed (nothing is left behind).
    """
    path = check_output_path(path, overwrite=overwrite)
    ext = _extension(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.partial-", suffix=ext, dir=path.parent)
    os.close(fd)
    try:
        sitk.WriteImage(image, tmp_name, useCompression=compress)
        os.replace(tmp_name, path)
    except (RuntimeError, OSError) as err:
        Path(tmp_name).unlink(missing_ok=True)
        raise OutputPathError(f"Could not write {path}: {err}") from err
    return path
