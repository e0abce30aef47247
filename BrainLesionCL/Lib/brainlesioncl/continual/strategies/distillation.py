"""Distillation terms shared by LwF, BrainCL dual distillation and ours."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["feature_cosine_loss", "kl_batchmean_sum", "kl_voxel_mean"]


def kl_batchmean_sum(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) of temperature-softened class distributions, summed over voxels, divided by the batch.

    Exactly the reference's ``KLDivLoss(reduction="batchmean")`` on ``log_softmax(s/T)`` vs ``softmax(t/T)``, no T^2
    factor. Its size grows with the crop volume, which is why the reference's weight is tiny (~1e-5).
    """
    log_p = F.log_softmax(student_logits.float() / temperature, dim=1)
    q = F.softmax(teacher_logits.float() / temperature, dim=1)
    return F.kl_div(log_p, q, reduction="sum") / student_logits.shape[0]


def kl_voxel_mean(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """The same divergence averaged over voxels and scaled by T^2 (Hinton's convention): independent of crop size."""
    log_p = F.log_softmax(student_logits.float() / temperature, dim=1)
    q = F.softmax(teacher_logits.float() / temperature, dim=1)
    voxels = student_logits.shape[0] * student_logits[0, 0].numel()
    return F.kl_div(log_p, q, reduction="sum") / voxels * temperature**2


def feature_cosine_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of 1 - cos(student, teacher), features flattened per sample (CosineEmbeddingLoss, y=+1)."""
    s = student.float().flatten(1)
    t = teacher.float().flatten(1)
    return (1.0 - F.cosine_similarity(s, t, dim=1, eps=1e-8)).mean()
