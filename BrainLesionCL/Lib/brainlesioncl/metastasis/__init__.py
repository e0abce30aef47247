"""Brain metastases: the two-stage detector + segmentor pipeline (Met-Seg) and its training."""

from .labels import classes_to_regions, regions_to_classes
from .networks import (
    DetectorConfig,
    SegmentorConfig,
    build_detector,
    build_segmentor,
    load_segmentor_state,
    segmentor_state,
)
from .pipeline import MetastasisPipeline
from .training import MetCase, MetTrainConfig, load_met_case, metastasis_metadata, train_detector, train_segmentor

__all__ = [
    "DetectorConfig",
    "MetCase",
    "MetTrainConfig",
    "MetastasisPipeline",
    "SegmentorConfig",
    "build_detector",
    "build_segmentor",
    "classes_to_regions",
    "load_met_case",
    "load_segmentor_state",
    "metastasis_metadata",
    "regions_to_classes",
    "segmentor_state",
    "train_detector",
    "train_segmentor",
]
