"""Learning without Forgetting (Li & Hoiem): keep the new model's outputs close to the parent's on the new data."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import Options, Strategy
from .distillation import kl_voxel_mean

__all__ = ["LearningWithoutForgetting"]


@dataclass(frozen=True)
class LwFOptions(Options):
    alpha: float = 1.0  # weight of the distillation term, as in the BrainCL baselines
    temperature: float = 2.0


class LearningWithoutForgetting(Strategy):
    """Loss += alpha * T^2 * KL(parent || student) per voxel. alpha = 1 as in the BrainCL baselines."""

    name = "lwf"
    options_class = LwFOptions
    options: LwFOptions
    needs_teacher = True

    def loss(
        self, network: nn.Module, x: torch.Tensor, context: torch.Tensor, logits: torch.Tensor, features: torch.Tensor
    ) -> torch.Tensor | float:
        if self.setup is None or self.setup.teacher is None:
            return 0.0
        teacher_logits, _ = self.teacher_outputs(x, context)
        return self.options.alpha * kl_voxel_mean(logits, teacher_logits, self.options.temperature)
