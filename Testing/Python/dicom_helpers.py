"""Writing DICOM MR series from volumes for tests: what a PACS export looks like, made from synthetic images (never from
a patient's DICOM), with the awkward cases a real export has (missing or repeated slices, uneven spacing, tilt)."""

from __future__ import annotations

import itertools
import locale
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
#: Identifying values the tests check never leave the program.
PATIENT_ID, PATIENT_NAME, BIRTH_DATE, ACCESSION = "PID-7731-SECRET", "Doe^Jane", "19610203", "ACC99817"
_counter = itertools.count(1)

#: Acquisition tags by contrast (the timing rules of brainlesioncl.identification.dicom recognise them).
SEQUENCES: dict[str, dict[str, str]] = {
    "FLAIR": {"0008|103e": "AX T2 FLAIR", "0018|0080": "9000", "0018|0081": "90", "0018|0082": "2500"},
    "T1": {"0008|103e": "AX T1 SE", "0018|0080": "500", "0018|0081": "10"},
    "T1c": {"0008|103e": "AX T1 SE", "0018|0080": "500", "0018|0081": "10", "0018|0010": "Gadobutrol"},
    "T2": {"0008|103e": "AX T2 TSE", "0018|0080": "4000", "0018|0081": "100"},
}


def new_uid() -> str:
    return f"1.2.826.0.1.3680043.10.1148.{next(_counter)}.{np.random.randint(1, 10**9)}"


def write_series(image: sitk.Image, folder: Path, *, study: str, series_number: int, tags: Mapping[str, str],
                 patient_id: str = PATIENT_ID, skip: Sequence[int] = (), repeat: Sequence[int] = (),
                 shift: Sequence[tuple[int, float]] = (), tilt_mm_per_slice: float = 0.0) -> Path:
    """One MR series of ``image`` (int16 slices along its third axis) in ``folder``, in the study's one Frame of
    Reference. ``skip``: slice indices left
    out; ``repeat``: slices written twice; ``shift``: (index, mm) moves of a slice along the normal; a tilt moves
    each slice sideways by ``tilt_mm_per_slice`` times its index."""
    folder.mkdir(parents=True, exist_ok=True)
    volume = sitk.Cast(sitk.RescaleIntensity(image, 0, 2000), sitk.sitkInt16)
    direction = np.array(volume.GetDirection()).reshape(3, 3)
    series_uid = new_uid()
    writer = sitk.ImageFileWriter()
    writer.SetImageIO("GDCMImageIO")
    writer.KeepOriginalImageUIDOn()
    moved = dict(shift)
    copies = [z for z in range(volume.GetDepth()) if z not in skip] + list(repeat)
    saved = locale.setlocale(locale.LC_ALL)  # GDCM's writer switches the process to the C locale: put it back
    try:
        for instance, z in enumerate(copies, start=1):
            position = np.array(volume.TransformIndexToPhysicalPoint((0, 0, z)), float)
            position += direction[:, 2] * moved.get(z, 0.0) + direction[:, 0] * tilt_mm_per_slice * z
            piece = volume[:, :, z]
            values = {
                "0008|0060": "MR", "0008|0016": MR_IMAGE_STORAGE, "0008|0018": new_uid(), "0020|000e": series_uid,
                "0020|000d": study, "0020|0052": f"{study}.1", "0010|0020": patient_id, "0010|0010": PATIENT_NAME,
                "0010|0030": BIRTH_DATE, "0008|0050": ACCESSION, "0020|0011": str(series_number),
                "0020|0013": str(instance), "0008|0008": "ORIGINAL\\PRIMARY\\M\\ND",
                "0018|0050": str(volume.GetSpacing()[2]), "0018|0088": str(volume.GetSpacing()[2]),
                "0020|0032": "\\".join(f"{v:.4f}" for v in position),
                "0020|0037": "\\".join(f"{v:.6f}" for v in (*direction[:, 0], *direction[:, 1])),
                **tags,
            }
            for key, value in values.items():
                piece.SetMetaData(key, value)
            writer.SetFileName(str(folder / f"IM{series_number:03d}_{instance:04d}"))  # PACS files: often no suffix
            writer.Execute(piece)
    finally:
        locale.setlocale(locale.LC_ALL, saved)
    return folder
