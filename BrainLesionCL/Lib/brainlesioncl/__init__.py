"""BrainLesionCL: brain-lesion segmentation from any set of MRI modalities, with privacy-aware continual learning.

This package is the engine of the BrainLesionCL 3D Slicer extension and a normal Python library with a CLI
(``brainlesioncl``); it never imports ``slicer``.

Most users need::

    from brainlesioncl import Segmenter, ModelRegistry
    result = Segmenter.from_registry().segment({"FLAIR": "flair.nii.gz", "T1": "t1.nii.gz"}, disease="tumour")

Top-level names are imported lazily so that ``import brainlesioncl`` (and ``brainlesioncl --help``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Segmenter": "brainlesioncl.inference",
    "SegmentationResult": "brainlesioncl.inference",
    "InferenceConfig": "brainlesioncl.inference",
    "ModelRegistry": "brainlesioncl.registry",
    "ModelBundle": "brainlesioncl.registry",
    "PreprocessConfig": "brainlesioncl.preprocessing",
    "Modality": "brainlesioncl.modalities",
    "Disease": "brainlesioncl.modalities",
    "read_image": "brainlesioncl.io",
    "write_image": "brainlesioncl.io",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'brainlesioncl' has no attribute {name!r}")
