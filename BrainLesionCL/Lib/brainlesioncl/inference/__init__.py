"""Inference: device selection, context vectors, single-pass and sliding-window prediction, whole-case segmentation."""

from .predictor import InferenceConfig, InferenceMode, Predictor, build_context, select_device
from .routing import DiseaseRouter, RoutingDecision, case_signature, encoder_signature, fit_router
from .segmenter import SegmentationResult, Segmenter, label_statistics, resolve_disease_model

__all__ = [
    "DiseaseRouter",
    "InferenceConfig",
    "InferenceMode",
    "Predictor",
    "RoutingDecision",
    "SegmentationResult",
    "Segmenter",
    "build_context",
    "case_signature",
    "encoder_signature",
    "fit_router",
    "label_statistics",
    "resolve_disease_model",
    "select_device",
]
