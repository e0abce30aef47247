"""Learning without Forgetting (Li & Hoiem): keep the new model's outputs close to the parent's on the new data."""

from __future__ import annotations

import torch
from torch import nn

from .base import Strategy
from .distillation import kl_voxel_mean

__all__ = ["LearningWithoutForgetting"]


class LearningWithoutForgetting(Strategy):
    """Loss += alpha * T^2 * KL(parent || student) per voxel. alpha = 1 as in the BrainCL baselines."""

    name = "lwf"
    defaults = {"alpha": 1.0, "temperature": 2.0}
    needs_teacher = True

    def loss(
        self, network: nn.Module, x: torch.Tensor, context: torch.Tensor, logits: torch.Tensor, features: torch.Tensor
    ) -> torch.Tensor | float:
        if self.setup is None or self.setup.teacher is None:
            return 0.0
        teacher_logits, _ = self.teacher_outputs(x, context)
        hp = self.hyperparameters
        return hp["alpha"] * kl_voxel_mean(logits, teacher_logits, hp["temperature"])
