"""Weight-importance regularisers: EWC and Synaptic Intelligence.

Both add ``lambda * sum_i importance_i * (theta_i - theta_parent_i)^2``; they differ in how importance is measured.
Importance is a tensor per parameter (no image, no label), stored in the new version under ``strategy_state`` so the
next episode, possibly months later, can use it. Importance adds up over episodes (online consolidation).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ...training.data import make_batch
from ...training.trainer import segmentation_loss
from .base import EpisodeSetup, Options, Strategy, named_parameters

__all__ = ["ElasticWeightConsolidation", "SynapticIntelligence"]

_PREFIX = "importance."


def _all_reduce_mean(tensors: dict[str, torch.Tensor]) -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        world = torch.distributed.get_world_size()
        for t in tensors.values():
            torch.distributed.all_reduce(t)
            t /= world


@dataclass(frozen=True)
class RegulariserOptions(Options):
    #: Weight of the importance penalty (``--option lambda=...``).
    weight: float = field(default=1.0, metadata={"option": "lambda"})


@dataclass(frozen=True)
class EWCOptions(RegulariserOptions):
    fisher_batches: int = 8  # training batches the diagonal Fisher is measured on


@dataclass(frozen=True)
class SIOptions(RegulariserOptions):
    weight: float = field(default=2.0, metadata={"option": "lambda"})
    xi: float = 1e-3  # damping of parameters that barely moved


class _ImportanceRegulariser(Strategy):
    options: RegulariserOptions

    def begin(self, setup: EpisodeSetup) -> None:
        super().begin(setup)
        params = named_parameters(setup.network)
        self.anchor = {k: p.detach().clone() for k, p in params.items()}
        self.importance = {
            k: setup.parent_state[_PREFIX + k].to(p.device, torch.float32)
            for k, p in params.items()
            if _PREFIX + k in setup.parent_state
        }
        self.runtime["importance_from_parent"] = bool(self.importance)

    def loss(
        self, network: nn.Module, x: torch.Tensor, context: torch.Tensor, logits: torch.Tensor, features: torch.Tensor
    ) -> torch.Tensor | float:
        if not self.importance:
            return 0.0
        params = named_parameters(network)
        penalty = sum(
            (self.importance[k] * (params[k].float() - self.anchor[k]) ** 2).sum() for k in self.importance
        )
        return self.options.weight * penalty

    def _stored(self, new_importance: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        total = {k: v.detach().float().cpu().clone() for k, v in new_importance.items()}
        for k, v in self.importance.items():
            total[k] = total.get(k, torch.zeros_like(v.cpu())) + v.detach().cpu()
        return {_PREFIX + k: v for k, v in total.items()}


class ElasticWeightConsolidation(_ImportanceRegulariser):
    """EWC (Kirkpatrick et al.): importance = diagonal empirical Fisher (squared loss gradients) on the episode's data.

    lambda = 1 as in the BrainCL baselines; the Fisher is measured on ``fisher_batches`` training batches (same crops
    and modality drop as training) at the end of the episode.
    """

    name = "ewc"
    options_class = EWCOptions
    options: EWCOptions

    def end(self, network: nn.Module) -> dict[str, torch.Tensor]:
        assert self.setup is not None
        setup = self.setup
        params = named_parameters(network)
        fisher = {k: torch.zeros_like(p, dtype=torch.float32) for k, p in params.items()}
        rng = np.random.default_rng(setup.config.seed + 7919)
        loss_fn = segmentation_loss()
        network.train()
        batches = self.options.fisher_batches
        for b in range(batches):
            picks = [setup.cases[(b * setup.config.batch_size + i) % len(setup.cases)]
                     for i in range(setup.config.batch_size)]
            images, labels, contexts = make_batch(picks, setup.config.crop_size, rng, setup.disease_slots,
                                                  modality_drop=setup.config.modality_drop)
            network.zero_grad(set_to_none=True)
            x = torch.from_numpy(images).to(setup.device)
            logits = network(x, torch.from_numpy(contexts).to(setup.device))
            loss_fn(logits.float(), torch.from_numpy(labels).to(setup.device)).backward()
            for k, p in params.items():
                if p.grad is not None:
                    fisher[k] += p.grad.detach().float() ** 2 / batches
        network.zero_grad(set_to_none=True)
        network.eval()
        _all_reduce_mean(fisher)
        return self._stored(fisher)


class SynapticIntelligence(_ImportanceRegulariser):
    """SI (Zenke et al.): importance = path integral of -grad * step over training, normalised by the total change.

    lambda = 2 as in the BrainCL baselines; xi = 1e-3 damps parameters that barely moved.
    """

    name = "si"
    options_class = SIOptions
    options: SIOptions

    def begin(self, setup: EpisodeSetup) -> None:
        super().begin(setup)
        params = named_parameters(setup.network)
        self.path = {k: torch.zeros_like(p, dtype=torch.float32) for k, p in params.items()}
        self.previous = {k: p.detach().float().clone() for k, p in params.items()}

    def after_step(self, network: nn.Module) -> None:
        for k, p in named_parameters(network).items():
            current = p.detach().float()
            if p.grad is not None:
                # The gradient that produced this step (of the segmentation loss plus the penalty).
                self.path[k] -= p.grad.detach().float() * (current - self.previous[k])
            self.previous[k] = current.clone()

    def end(self, network: nn.Module) -> dict[str, torch.Tensor]:
        xi = self.options.xi
        importance = {}
        for k, p in named_parameters(network).items():
            change = p.detach().float() - self.anchor[k]
            importance[k] = torch.clamp(self.path[k], min=0.0) / (change**2 + xi)
        return self._stored(importance)

    def state_dict(self) -> dict[str, Any]:
        return {"path": {k: v.cpu() for k, v in self.path.items()},
                "previous": {k: v.cpu() for k, v in self.previous.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        device = next(iter(self.anchor.values())).device if self.anchor else "cpu"
        self.path = {k: v.to(device) for k, v in state["path"].items()}
        self.previous = {k: v.to(device) for k, v in state["previous"].items()}
