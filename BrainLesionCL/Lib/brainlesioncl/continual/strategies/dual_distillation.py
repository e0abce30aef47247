"""BrainCL dual distillation, exactly as the reference code does it.

Loss += beta * (1 - cos(student bottleneck, teacher bottleneck)) + alpha * KL_T(teacher || student), where the KL is
summed over voxels and divided by the batch (no T^2), beta = 0.8, T = 2, and alpha is set once per episode from how
well the parent already segments the new cases: alpha = (1 - d) * alpha_max * 1e-5 with d the parent's Dice on the new
training cases (whole volumes, no modality drop) and alpha_max = 0.6. The teacher is the parent version, frozen, fed
the student's exact (modality-dropped) input and context.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ...training.trainer import evaluate
from .base import EpisodeSetup, Options, Strategy
from .distillation import feature_cosine_loss, kl_batchmean_sum

__all__ = ["DualDistillation", "DualDistillationOptions", "parent_dice_on_new_cases"]


def parent_dice_on_new_cases(setup: EpisodeSetup, limit: int) -> float:
    """Mean Dice of the frozen parent on (up to ``limit`` of) the new training cases."""
    assert setup.teacher is not None
    cases = list(setup.cases)[:limit]
    return float(np.mean(evaluate(setup.teacher, cases, setup.disease_slots, device=setup.device)))


@dataclass(frozen=True)
class DualDistillationOptions(Options):
    beta: float = 0.8  # weight of the bottleneck cosine term
    temperature: float = 2.0
    alpha_max: float = 0.6  # alpha = (1 - parent Dice on the new cases) * alpha_max * 1e-5 ...
    alpha: float | None = None  # ... unless fixed here
    dice_cases: int = 8  # new cases the parent's Dice is measured on


class DualDistillation(Strategy):
    name = "braincl-dd"
    options_class = DualDistillationOptions
    options: DualDistillationOptions
    needs_teacher = True

    def begin(self, setup: EpisodeSetup) -> None:
        super().begin(setup)
        if setup.teacher is None:
            return
        if self.options.alpha is not None:  # a fixed alpha instead of the dynamic one
            self.alpha = float(self.options.alpha)
        else:
            d = parent_dice_on_new_cases(setup, self.options.dice_cases)
            self.alpha = (1.0 - d) * self.options.alpha_max * 1e-5
            self.runtime["parent_dice_on_new_cases"] = round(d, 4)
        self.runtime["alpha"] = self.alpha

    def loss(
        self, network: nn.Module, x: torch.Tensor, context: torch.Tensor, logits: torch.Tensor, features: torch.Tensor
    ) -> torch.Tensor | float:
        if self.setup is None or self.setup.teacher is None:
            return 0.0
        teacher_logits, teacher_features = self.teacher_outputs(x, context)
        return self.options.beta * feature_cosine_loss(features, teacher_features) + self.alpha * kl_batchmean_sum(
            logits, teacher_logits, self.options.temperature
        )
