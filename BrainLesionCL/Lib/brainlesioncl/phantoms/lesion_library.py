"""Real lesion shapes for phantoms: binary masks in MNI152 space, placed into a phantom's deformed anatomy.

Procedural shapes cannot reproduce where real infarcts fall and how ragged they are; public libraries of real stroke
lesion masks registered to MNI152 can (thousands of acute lesions drawn on DWI exist). A :class:`LesionLibrary`
takes a folder of such masks (NIfTI, any grid, physical coordinates used), picks one per case with the case's random
generator, and samples it at the phantom's template coordinates: the box of the MNI152 cerebrum is mapped onto the
phantom's brain box, so a lesion in the left MCA territory lands in the phantom's left lateral hemisphere and follows
the case's deformation like the anatomy does. The library is read from the user's disk; nothing is shipped or
downloaded.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..errors import SettingsError
from .fields import Coordinates

__all__ = ["LesionLibrary", "open_library", "MNI_CEREBRUM_CENTRE", "MNI_CEREBRUM_HALF_EXTENT",
           "PHANTOM_BRAIN_HALF_EXTENT"]

#: Centre and half extent (RAS, mm) of the MNI152 cerebrum's box (the brainstem below z = -50 left out).
MNI_CEREBRUM_CENTRE = (0.0, -17.0, 15.0)
MNI_CEREBRUM_HALF_EXTENT = (72.0, 90.0, 65.0)
#: Half extent of the phantom's brain (anatomy radii plus the outer CSF), in template mm.
PHANTOM_BRAIN_HALF_EXTENT = (71.0, 87.0, 63.0)
_RAS_TO_LPS = np.array([-1.0, -1.0, 1.0])


class LesionLibrary:
    """A folder of binary lesion masks in MNI152 space (``*.nii`` / ``*.nii.gz``), optionally limited in volume.

    Args:
        folder: where the masks are (searched recursively, sorted, so a seed always picks the same file).
        min_ml, max_ml: keep only masks whose lesion volume lies in this range (checked when a mask is drawn; a
            mask outside it is skipped and another drawn).

    Raises:
        SettingsError: the folder does not exist or holds no mask.
    """

    def __init__(self, folder: str | os.PathLike, *, min_ml: float = 0.2, max_ml: float = 250.0) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise SettingsError(f"lesion library {self.folder} is not a folder of NIfTI masks; give the folder that "
                                "holds the lesion masks (MNI152 space), or leave the library out for procedural "
                                "shapes.")
        self.files = sorted(p for p in self.folder.rglob("*") if p.name.endswith((".nii", ".nii.gz")))
        if not self.files:
            raise SettingsError(f"lesion library {self.folder} holds no .nii/.nii.gz mask; give the folder that holds "
                                "the lesion masks (MNI152 space).")
        self.min_ml, self.max_ml = min_ml, max_ml

    def __len__(self) -> int:
        return len(self.files)

    def sample(self, coords: Coordinates, rng: np.random.Generator, *, attempts: int = 20) -> tuple[np.ndarray, str]:
        """A soft lesion membership on the phantom's grid and the mask's file name (random hemisphere flip)."""
        for _ in range(attempts):
            path = self.files[int(rng.integers(len(self.files)))]
            image = sitk.ReadImage(str(path), sitk.sitkFloat32)
            array = sitk.GetArrayFromImage(image).transpose(2, 1, 0)  # (x, y, z) index order
            volume_ml = float((array > 0.5).sum()) * float(np.prod(image.GetSpacing())) / 1000.0
            if not self.min_ml <= volume_ml <= self.max_ml:
                continue
            membership = self._resample(image, array, coords, flip=bool(rng.random() < 0.5))
            if membership.max() >= 0.5:
                return membership, path.name
        raise SettingsError(f"no mask of {self.min_ml}-{self.max_ml} mL found in {attempts} draws from {self.folder}; "
                            "widen min_ml/max_ml or add masks in that range.")

    @staticmethod
    def _resample(image: sitk.Image, array: np.ndarray, coords: Coordinates, *, flip: bool) -> np.ndarray:
        scale = np.array(MNI_CEREBRUM_HALF_EXTENT) / np.array(PHANTOM_BRAIN_HALF_EXTENT)
        template = np.stack([coords.x, coords.y, coords.z], axis=-1).reshape(-1, 3)
        if flip:
            template = template * np.array([-1.0, 1.0, 1.0])
        lps = (template * scale + np.array(MNI_CEREBRUM_CENTRE)) * _RAS_TO_LPS
        direction = np.array(image.GetDirection()).reshape(3, 3)
        to_index = np.linalg.inv(direction @ np.diag(image.GetSpacing()))
        index = (lps - np.array(image.GetOrigin())) @ to_index.T
        smooth = ndimage.gaussian_filter((array > 0.5).astype(np.float32), 0.6)  # soft edges like the other shapes
        values = ndimage.map_coordinates(smooth, index.T, order=1, mode="constant", cval=0.0)
        return values.reshape(coords.size).astype(np.float32)


@lru_cache(maxsize=8)
def open_library(folder: str) -> LesionLibrary:
    """The library of ``folder``, scanned once per process: a dataset's config check and each of its acute strokes
    share it instead of listing a folder of thousands of masks per case."""
    return LesionLibrary(folder)
