"""Procedural multi-contrast brain phantoms with lesions of known truth (no external files needed)."""

from .generator import DATASET_PRESETS, PhantomCase, PhantomConfig, generate_case, generate_dataset, write_case
from .preview import save_preview

__all__ = [
    "DATASET_PRESETS",
    "PhantomCase",
    "PhantomConfig",
    "generate_case",
    "generate_dataset",
    "save_preview",
    "write_case",
]
