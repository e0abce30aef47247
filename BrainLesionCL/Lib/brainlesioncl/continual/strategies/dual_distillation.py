"""BrainCL dual distillation, exactly as the reference code does it.

Loss += beta * (1 - cos(student bottleneck, teacher bottleneck)) + alpha * KL_T(teacher || student), where the KL is
summed over voxels and divided by the batch (no T^2), beta = 0.8, T = 2, and alpha is set once per episode from how
well the parent already segments the new cases: alpha = (1 - d) * alpha_max * 1e-5 with d the parent's Dice on the new
training cases (whole volumes, no modality drop) and alpha_max = 0.6. The teacher is the parent version, frozen, fed
the student's exact (modality-dropped) input and context.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ...training.trainer import evaluate
from .base import EpisodeSetup, Strategy
from .distillation import feature_cosine_loss, kl_batchmean_sum

__all__ = ["DualDistillation", "parent_dice_on_new_cases"]


def parent_dice_on_new_cases(setup: EpisodeSetup, limit: int) -> float:
    """Mean Dice of the frozen parent on (up to ``limit`` of) the new training cases."""
    assert setup.teacher is not None
    cases = list(setup.cases)[:limit]
    return float(np.mean(evaluate(setup.teacher, cases, setup.disease_slots, device=setup.device)))


class DualDistillation(Strategy):
    name = "braincl-dd"
    defaults = {"beta": 0.8, "temperature": 2.0, "alpha_max": 0.6, "alpha": None, "dice_cases": 8}
    needs_teacher = True

    def begin(self, setup: EpisodeSetup) -> None:
        super().begin(setup)
        if setup.teacher is None:
            return
        if self.hyperparameters["alpha"] is not None:  # a fixed alpha instead of the dynamic one
            self.alpha = float(self.hyperparameters["alpha"])
        else:
            d = parent_dice_on_new_cases(setup, int(self.hyperparameters["dice_cases"]))
            self.alpha = (1.0 - d) * float(self.hyperparameters["alpha_max"]) * 1e-5
            self.runtime["parent_dice_on_new_cases"] = round(d, 4)
        self.runtime["alpha"] = self.alpha

    def loss(
        self, network: nn.Module, x: torch.Tensor, context: torch.Tensor, logits: torch.Tensor, features: torch.Tensor
    ) -> torch.Tensor | float:
        if self.setup is None or self.setup.teacher is None:
            return 0.0
        teacher_logits, teacher_features = self.teacher_outputs(x, context)
        hp = self.hyperparameters
        return hp["beta"] * feature_cosine_loss(features, teacher_features) + self.alpha * kl_batchmean_sum(
            logits, teacher_logits, hp["temperature"]
        )
