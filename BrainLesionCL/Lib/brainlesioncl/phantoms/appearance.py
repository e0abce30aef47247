"""How lesions look, measured the same way on real cases and on phantoms, so phantom realism is a number.

Used by ``benchmarks/phantom_realism.py`` (the table the clinical lesion style was set from) and by the tests that
keep the styles apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import ndimage

__all__ = ["lesion_appearance"]


def lesion_appearance(images: Mapping[str, np.ndarray], label: np.ndarray, voxel_ml: float) -> dict[str, Any]:
    """Per sequence the lesion's median over the brain's median (brain: nonzero voxels of the first image, lesions
    and a 2-voxel margin left out), and the lesion components (26-connected): count, total and median volume, the
    share under 0.1 mL and the largest component's share of the load."""
    brain = np.asarray(next(iter(images.values()))) > 0
    lesion = (np.asarray(label) > 0) & brain
    if not lesion.any():
        raise ValueError("the label has no lesion voxel inside the brain")
    away = brain & ~ndimage.binary_dilation(lesion, iterations=2)
    out: dict[str, Any] = {m: round(float(np.median(a[lesion]) / np.median(a[away])), 2) for m, a in images.items()}
    components, count = ndimage.label(lesion, structure=np.ones((3, 3, 3)))
    sizes = np.bincount(components.ravel())[1:] * voxel_ml
    out.update(components=int(count), total_ml=round(float(sizes.sum()), 2),
               median_ml=round(float(np.median(sizes)), 3), below_0_1ml=round(float((sizes < 0.1).mean()), 2),
               largest_share=round(float(sizes.max() / sizes.sum()), 2))
    return out
