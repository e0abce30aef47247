"""Training: labelled cases, crops and modality drop, and the supervised loop episodes build on."""

from .data import TrainingCase, case_from_arrays, drop_modalities, load_training_case, make_batch, random_crop
from .trainer import (
    BatchPlan,
    JointBatchPlan,
    TrainConfig,
    TrainResult,
    dice_score,
    evaluate,
    segmentation_loss,
    train,
)

__all__ = [
    "BatchPlan",
    "JointBatchPlan",
    "TrainConfig",
    "TrainResult",
    "TrainingCase",
    "case_from_arrays",
    "dice_score",
    "drop_modalities",
    "evaluate",
    "load_training_case",
    "make_batch",
    "random_crop",
    "segmentation_loss",
    "train",
]
