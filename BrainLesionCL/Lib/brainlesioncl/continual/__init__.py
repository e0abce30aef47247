"""Continual learning: episodes, strategies and the metrics of forgetting."""

from .metrics import CLMetrics, cl_metrics

__all__ = ["CLMetrics", "cl_metrics"]
