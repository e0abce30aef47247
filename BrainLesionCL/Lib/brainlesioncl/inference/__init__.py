"""Inference: device selection, context vectors, single-pass and sliding-window prediction, whole-case segmentation."""

from .predictor import InferenceConfig, InferenceMode, Predictor, build_context, select_device
from .segmenter import SegmentationResult, Segmenter, label_statistics, resolve_disease_model

__all__ = [
    "InferenceConfig",
    "InferenceMode",
    "Predictor",
    "SegmentationResult",
    "Segmenter",
    "build_context",
    "label_statistics",
    "resolve_disease_model",
    "select_device",
]
