"""Tiny learnable cases for continual-learning tests: two diseases whose rules conflict, so forgetting shows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from brainlesioncl.training import case_from_arrays

PRESENT = [False, True, False, True, False, False]  # FLAIR and T1 of the six BrainCL channels


def blob_cases(n: int, seed: int, *, disease: str = "tumour", size: int = 40) -> list:
    """Spheres on a noisy background in FLAIR and T1.

    ``tumour``: the lesion is a bright sphere. ``stroke``: the lesion is a dark sphere, and a bright sphere that is
    *not* a lesion sits beside it, so learning stroke naively teaches "bright is background", the opposite of tumour.
    """
    rng = np.random.default_rng(seed)
    grid = np.indices((size,) * 3).astype(np.float32)
    cases = []
    for i in range(n):
        image = np.zeros((6, size, size, size), np.float32)
        centre = rng.uniform(12, size - 12, 3)
        radius = rng.uniform(5, 8)
        lesion = ((grid - centre[:, None, None, None]) ** 2).sum(0) < radius**2
        signal = 2.0 * lesion
        if disease == "stroke":
            decoy_centre = np.where(centre < size / 2, centre + 14, centre - 14)
            decoy = ((grid - decoy_centre[:, None, None, None]) ** 2).sum(0) < 36
            signal = -1.5 * lesion + 2.0 * (decoy & ~lesion)
        for channel in (1, 3):
            image[channel] = 0.3 + 0.1 * rng.standard_normal((size,) * 3) + signal
        cases.append(case_from_arrays(f"{disease}{seed}-{i}", image, lesion.astype(np.uint8), PRESENT, disease))
    return cases


def write_image(array: np.ndarray, path: Path) -> None:
    """An (X, Y, Z) array as a 1 mm image file."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    image.SetSpacing((1.0, 1.0, 1.0))
    sitk.WriteImage(image, str(path))


def write_cases(root: Path, n: int, disease: str = "stroke", labels: bool = True,
                extra: dict[str, int] | None = None) -> Path:
    """``n`` blob cases as case folders (flair, t1, label); ``extra`` adds {file stem: image channel to copy}."""
    for case in blob_cases(n, seed=11, disease=disease):
        folder = root / case.name
        folder.mkdir(parents=True)
        write_image(case.image[1], folder / "flair.nii.gz")
        write_image(case.image[3], folder / "t1.nii.gz")
        for stem, channel in (extra or {}).items():
            write_image(case.image[channel], folder / f"{stem}.nii.gz")
        if labels:
            write_image(case.label.astype(np.uint8), folder / "label.nii.gz")
    return root
