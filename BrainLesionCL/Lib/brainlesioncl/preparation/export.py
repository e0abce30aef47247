"""Write what the preparation stage made, so a site can inspect it and reuse it for episodes: every sequence on the
reference grid (co-registered, interpolated once, zero outside the brain of a raw exam), the brain mask, and the
quality-control record."""

from __future__ import annotations

import json
import os
from pathlib import Path

import SimpleITK as sitk

from ..io.atomic import StagedOutputs, check_writable_folder
from ..io.image_io import stage_image
from ..modalities import Modality
from .stage import Preparation

__all__ = ["on_reference_grid", "write_prepared"]


def on_reference_grid(preparation: Preparation) -> tuple[dict[Modality, sitk.Image], sitk.Image | None]:
    """Every sequence on the reference grid (through its registration, interpolated once; zero outside the brain of
    a raw exam) and the brain mask there (None for curated inputs): what the result's voxels line up with."""
    images = preparation.images
    if preparation.reference is None:
        raise ValueError("the preparation has no reference sequence; make it with prepare_inputs")
    grid = images[preparation.reference]
    mask = None
    if preparation.brain_mask is not None:
        mask = sitk.Resample(sitk.Cast(preparation.brain_mask > 0, sitk.sitkUInt8), grid,
                             preparation.mask_transform or sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                             sitk.sitkUInt8)
    aligned = {}
    for modality, image in images.items():
        transform = preparation.transforms.get(modality, sitk.Transform())
        on_grid = sitk.Resample(image, grid, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        aligned[modality] = sitk.Mask(on_grid, mask) if mask is not None else on_grid
    return aligned, mask


def write_prepared(preparation: Preparation, folder: str | os.PathLike, *, overwrite: bool = False) -> list[Path]:
    """``<modality>.nii.gz`` per sequence, ``brain_mask.nii.gz`` (raw exams) and ``quality.json`` in ``folder``,
    all-or-nothing."""
    folder = check_writable_folder(folder, "--write-prepared folder")
    aligned, mask = on_reference_grid(preparation)
    text = json.dumps(preparation.qc, indent=2) + "\n"
    with StagedOutputs() as outputs:
        for modality, on_grid in aligned.items():
            stage_image(outputs, on_grid, folder / f"{modality.value.lower()}.nii.gz", overwrite=overwrite)
        if mask is not None:
            stage_image(outputs, mask, folder / "brain_mask.nii.gz", overwrite=overwrite)
        outputs.add(folder / "quality.json", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return sorted(folder.iterdir())
