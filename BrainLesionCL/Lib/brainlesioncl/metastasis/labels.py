"""BraTS-METS label classes <-> the segmentor's three overlapping regions.

Classes: 1 non-enhancing core/necrosis, 2 oedema, 3 enhancing. Regions (sigmoid channels, in this order): whole
tumour = 1|2|3, tumour core = 1|3, enhancing = 3.
"""

from __future__ import annotations

import numpy as np

__all__ = ["classes_to_regions", "regions_to_classes"]


def classes_to_regions(classes: np.ndarray) -> np.ndarray:
    """(..., X, Y, Z) class map -> (3, X, Y, Z) float32 region masks [WT, TC, ET]."""
    c = np.asarray(classes)
    return np.stack([c > 0, (c == 1) | (c == 3), c == 3]).astype(np.float32)


def regions_to_classes(regions: np.ndarray) -> np.ndarray:
    """Binary (3, X, Y, Z) regions -> class map: ET -> 3, TC without ET -> 1, WT without TC -> 2."""
    wt, tc, et = (np.asarray(regions[i]) > 0 for i in range(3))
    out = np.zeros(wt.shape, np.uint8)
    out[wt] = 2
    out[tc] = 1
    out[et] = 3
    return out
