"""The Slicer side of BrainLesionCL, without Qt: MRML conversions, the module logic, and the child-process runner.

Everything here imports only ``slicer`` (the wrapped C++ MRML classes and ``slicer.util``), ``vtk``, numpy and the
engine (:mod:`brainlesioncl`), so it runs from Slicer's Python console, in scripts, and in headless tests on the
``slicer-core`` wheel. The Qt widget lives in ``BrainLesionCL.py`` and only calls into this package.
"""

from __future__ import annotations

import sys
from pathlib import Path

_ENGINE = Path(__file__).resolve().parents[1] / "Lib"


def ensure_engine_on_path() -> None:
    """Inside Slicer the engine package ships beside the module (``BrainLesionCL/Lib``), not in site-packages."""
    try:
        import brainlesioncl  # noqa: F401
    except ImportError:
        if _ENGINE.is_dir() and str(_ENGINE) not in sys.path:
            sys.path.insert(0, str(_ENGINE))


ensure_engine_on_path()

from .logic import BrainLesionCLLogic, ModalityStudyOutcome, SegmentOutcome  # noqa: E402
from .process import EngineProcess, ProcessState  # noqa: E402

__all__ = ["BrainLesionCLLogic", "EngineProcess", "ModalityStudyOutcome", "ProcessState", "SegmentOutcome",
           "ensure_engine_on_path"]
