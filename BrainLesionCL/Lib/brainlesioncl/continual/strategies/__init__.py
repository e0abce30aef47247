"""Continual-learning strategies, interchangeable by name.

======================  ===================================================================================
name                    what it adds to the segmentation loss
======================  ===================================================================================
``naive``               nothing (plain fine-tuning, the lower bound)
``lwf``                 KL to the parent's outputs (Learning without Forgetting)
``ewc``                 Fisher-weighted distance to the parent's weights (Elastic Weight Consolidation)
``si``                  path-integral-weighted distance to the parent's weights (Synaptic Intelligence)
``braincl-dd``          BrainCL dual distillation: bottleneck cosine + dynamic-alpha output KL (the reference)
``ours``                dual distillation + old-route distillation + gate anchoring (the default)
``joint``               nothing, but trains on every episode's data: the upper bound, benchmarks only
======================  ===================================================================================
"""

from __future__ import annotations

from typing import Any

from ...errors import SettingsError
from .base import EpisodeSetup, Strategy
from .consolidated import ConsolidatedDistillation
from .dual_distillation import DualDistillation
from .lwf import LearningWithoutForgetting
from .naive import JointTraining, NaiveFineTuning
from .regularisers import ElasticWeightConsolidation, SynapticIntelligence

__all__ = ["STRATEGIES", "EpisodeSetup", "Strategy", "make_strategy"]

STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (
        NaiveFineTuning, LearningWithoutForgetting, ElasticWeightConsolidation, SynapticIntelligence,
        DualDistillation, ConsolidatedDistillation, JointTraining,
    )
}


def make_strategy(name: str, **hyperparameters: Any) -> Strategy:
    """A strategy by name (case-insensitive; ``dd``/``braincl`` mean ``braincl-dd``)."""
    key = {"dd": "braincl-dd", "braincl": "braincl-dd", "fine-tuning": "naive"}.get(name.lower(), name.lower())
    if key not in STRATEGIES:
        raise SettingsError(f"Unknown strategy {name!r}. Choose one of: {', '.join(STRATEGIES)}.")
    return STRATEGIES[key](**hyperparameters)
