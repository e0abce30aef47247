"""Naive fine-tuning: train on the new cases with no protection at all (the lower bound of forgetting)."""

from __future__ import annotations

from .base import Strategy

__all__ = ["NaiveFineTuning", "JointTraining"]


class NaiveFineTuning(Strategy):
    name = "naive"


class JointTraining(Strategy):
    """The upper bound: plain training on the data of every episode so far.

    It needs old data, which an episode never has, so only benchmarks use it (they pass every earlier episode's cases
    explicitly). It is the same loop as naive fine-tuning; only its data differ.
    """

    name = "joint"
    replays_data = True
