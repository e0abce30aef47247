"""Geometry-safe preprocessing: physical resampling, z-scoring, cropping, and the way back."""

from .geometry import ras_grid, resample_onto, same_geometry
from .intensity import zscore_nonzero
from .pipeline import GridMode, PreparedCase, PreprocessConfig, prepare_case

__all__ = [
    "GridMode",
    "PreparedCase",
    "PreprocessConfig",
    "prepare_case",
    "ras_grid",
    "resample_onto",
    "same_geometry",
    "zscore_nonzero",
]
