"""Write what the preparation stage made, so a site can inspect it and reuse it for episodes: every sequence on the
reference grid (co-registered, interpolated once, zero outside the brain of a raw exam), the brain mask, and the
quality-control record."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..io.atomic import StagedOutputs, check_writable_folder
from ..io.image_io import stage_image
from .stage import Preparation

__all__ = ["write_prepared"]


def write_prepared(preparation: Preparation, folder: str | os.PathLike, *, overwrite: bool = False) -> list[Path]:
    """``<modality>.nii.gz`` per sequence, ``brain_mask.nii.gz`` (raw exams) and ``quality.json`` in ``folder``,
    all-or-nothing."""
    folder = check_writable_folder(folder, "--write-prepared folder")
    aligned, mask = preparation.reference_grid
    text = json.dumps(preparation.qc, indent=2) + "\n"
    with StagedOutputs() as outputs:
        for modality, on_grid in aligned.items():
            stage_image(outputs, on_grid, folder / f"{modality.value.lower()}.nii.gz", overwrite=overwrite)
        if mask is not None:
            stage_image(outputs, mask, folder / "brain_mask.nii.gz", overwrite=overwrite)
        outputs.add(folder / "quality.json", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return sorted(folder.iterdir())
