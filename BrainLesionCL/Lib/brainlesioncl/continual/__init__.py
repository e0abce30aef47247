"""Continual learning: episodes, strategies and the metrics of forgetting."""

from ..evaluation.continual import CLMetrics, cl_metrics
from .episode import EpisodeConfig, EpisodeResult, load_episode_cases, train_episode
from .strategies import STRATEGIES, Strategy, make_strategy

__all__ = [
    "STRATEGIES",
    "CLMetrics",
    "EpisodeConfig",
    "EpisodeResult",
    "Strategy",
    "cl_metrics",
    "load_episode_cases",
    "make_strategy",
    "train_episode",
]
