"""Brain extraction with deepbet (MIT licence; its trained weights ship inside its wheel, CPU and CUDA), an optional
dependency: ``pip install 'brainlesioncl[clinical]'``. Nothing is downloaded at run time.

deepbet works on NIfTI images in their closest canonical orientation; the mask comes back on the input's own grid.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..errors import InvalidImageError, SettingsError

__all__ = ["deepbet_brain_mask"]

_EXTRACTOR = None


def _sitk_to_nifti(image: sitk.Image):
    import nibabel as nib

    array = sitk.GetArrayFromImage(image).transpose(2, 1, 0).astype(np.float32)  # (x, y, z)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    affine = np.eye(4)
    flip = np.diag([-1.0, -1.0, 1.0])  # LPS (ITK) -> RAS (NIfTI)
    affine[:3, :3] = flip @ direction @ np.diag(image.GetSpacing())
    affine[:3, 3] = flip @ np.array(image.GetOrigin())
    return nib.Nifti1Image(array, affine)


def deepbet_brain_mask(image: sitk.Image) -> sitk.Image:
    """A binary brain mask of ``image`` on its own grid.

    Raises:
        SettingsError: deepbet is not installed (the message names the install command and the alternative).
        InvalidImageError: no brain was found.
    """
    global _EXTRACTOR
    try:
        import torch
        from deepbet import BrainExtraction
    except ImportError as err:
        raise SettingsError(
            "This exam is not skull-stripped and brain extraction needs the optional package deepbet: "
            "pip install -e '.[clinical]' in a clone of BrainLesionCL (pip install 'brainlesioncl[clinical]' from a "
            "package index). Or skull-strip the images yourself, or give --prepare off to segment them as they are, "
            "which gives poor results on raw exams."
        ) from err
    if _EXTRACTOR is None:
        _EXTRACTOR = BrainExtraction(no_gpu=not torch.cuda.is_available())
    _brain, mask, _tiv = _EXTRACTOR.run(_sitk_to_nifti(image))
    array = np.asanyarray(mask.dataobj).astype(np.uint8).transpose(2, 1, 0)  # (z, y, x)
    if not array.any():
        raise InvalidImageError("Brain extraction found no brain in this image; check that it is a head MRI.")
    result = sitk.GetImageFromArray(array)
    result.CopyInformation(image)
    return result
