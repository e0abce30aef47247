"""Ours: dual distillation plus rehearsal of the old diseases' routes, without old data.

Why the reference still forgets: its distillation only asks the student to match the parent *under the new
disease's context*. The MoE gates and the shared experts are free to change what the network does under the old
contexts (tumour, MS, ...), and that is exactly what inference on an old disease uses. Two data-free additions close
that gap:

1. **Old-route distillation.** Each step, every sample is also passed with the context of a disease the parent had
   already learnt (picked at random, with a random subset of the sample's present modalities). The student must
   reproduce the parent's softened output there (per-voxel KL, T^2-scaled, weight ``gamma``). The images are the new
   ones: brain anatomy is shared, so keeping the old routes' behaviour on new brains keeps it on old brains too.
   With probability ``fill_missing`` the subset is drawn from *every* channel instead, and a channel the episode's
   cases lack is filled with a surrogate: a present channel of the same brain, rescaled and possibly inverted. Why:
   a FLAIR-only episode otherwise never shows the student an old route with DWI switched on, and the measured
   result was a stroke route that still worked on DWI alone but collapsed on FLAIR + DWI (Dice 0.89 -> 0.01 on a
   stroke phantom after a FLAIR-only WMH episode). What the parent does on a surrogate need not be realistic; the
   student only has to keep doing the same.
   The old-route pass runs on a random ``old_route_crop``-voxel sub-crop of each sample (32^3 of a 64^3 crop by
   default): the divergence is averaged per voxel, so its size does not depend on the crop, and the pass then costs
   an eighth of the student's main pass instead of as much again. Measured with the cheaper dropout mask: 2.06x the
   steps per minute, Dice equal within seed noise (docs/BENCHMARKS.md, "Faster episodes").
2. **Gate anchoring.** The gate of every MoE layer is a function of the context alone, so its outputs for every old
   (disease, modality set) context can be compared with the parent's for free: a squared-error penalty (weight
   ``eta``) keeps the old routing where it was while the new disease's routing moves.

Plus the reference's two terms (bottleneck cosine, beta = 0.8; output KL with the dynamic alpha), so with
``gamma = eta = 0`` this strategy is BrainCL dual distillation.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ...errors import SettingsError
from ...modalities import disease_context
from ...models.blocks import NETWORK_STRIDE
from ...models.moe_unet import MoEUNet
from .base import EpisodeSetup
from .distillation import kl_voxel_mean
from .dual_distillation import DualDistillation, DualDistillationOptions

__all__ = ["ConsolidatedDistillation"]


def _moe(network: nn.Module) -> MoEUNet:
    """The episode's network as the MoE U-Net it is (episodes give distillation strategies only MoE parents)."""
    assert isinstance(network, MoEUNet), type(network)
    return network


@dataclass(frozen=True)
class ConsolidatedOptions(DualDistillationOptions):
    gamma: float = 10.0  # weight of old-route distillation
    eta: float = 10.0  # weight of gate anchoring
    fill_missing: float = 0.5  # probability that an old route also sees channels the episode lacks (surrogates)
    seed: int = 0  # of the old-route sampler
    old_route_crop: int = 32  # edge (voxels) of the old-route pass's sub-crop; 0 = the whole training crop

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.old_route_crop and (self.old_route_crop % NETWORK_STRIDE or self.old_route_crop < 2 * NETWORK_STRIDE):
            raise SettingsError(
                f"old_route_crop must be 0 (the whole crop) or a multiple of {NETWORK_STRIDE} of at least "
                f"{2 * NETWORK_STRIDE}, got {self.old_route_crop!r}; e.g. --option old_route_crop=32"
            )
        if not 0.0 <= self.fill_missing <= 1.0:
            raise SettingsError(f"fill_missing is a probability between 0 and 1, got {self.fill_missing!r}; e.g. "
                                "--option fill_missing=0.5")


class ConsolidatedDistillation(DualDistillation):
    name = "ours"
    options_class = ConsolidatedOptions
    options: ConsolidatedOptions

    def begin(self, setup: EpisodeSetup) -> None:
        super().begin(setup)
        self.old_diseases = [d for d in setup.seen_diseases if d != setup.disease and d in setup.disease_slots]
        self.rng = np.random.default_rng(self.options.seed + 104729)
        self.runtime["old_routes"] = list(self.old_diseases)
        self.gate_contexts = self._old_contexts(setup) if self.old_diseases else None
        if self.gate_contexts is not None and setup.teacher is not None:
            with torch.no_grad():
                self.teacher_gates = [layer.gate(self.gate_contexts) for layer in _moe(setup.teacher).moe_layers()]

    def state_dict(self) -> dict[str, Any]:
        """The old-route sampler's generator, so a resumed episode draws the same routes as an uninterrupted one."""
        return {"rng": json.dumps(self.rng.bit_generator.state)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if "rng" in state:
            self.rng.bit_generator.state = json.loads(state["rng"])

    def _old_contexts(self, setup: EpisodeSetup) -> torch.Tensor:
        """Every old disease with every non-empty modality subset (all 63 for six channels)."""
        rows = []
        n = setup.channel_count
        for disease in self.old_diseases:
            disease_part = disease_context(disease, setup.disease_slots)
            for flags in itertools.product((0.0, 1.0), repeat=n):
                if any(flags):
                    rows.append(list(flags) + disease_part)
        return torch.tensor(rows, dtype=torch.float32, device=setup.device)

    def _old_route_batch(self, x: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(input, context)`` of one old-route distillation pass: an old disease, a modality subset, and the
        channels outside the subset zeroed as inference with that modality set would see them."""
        assert self.setup is not None
        n = self.setup.channel_count
        fill = self.options.fill_missing
        contexts, inputs = [], []
        for b, row in enumerate(context.detach().cpu().numpy()):
            present = np.flatnonzero(row[:n] > 0)
            pool = np.arange(n) if present.size and self.rng.random() < fill else present
            keep = pool if pool.size <= 1 else self.rng.choice(
                pool, size=int(self.rng.integers(1, pool.size + 1)), replace=False)
            flags = np.zeros(n, np.float32)
            flags[keep] = 1.0
            sample = torch.zeros_like(x[b])
            for channel in keep:
                sample[channel] = x[b, channel] if channel in present else self._surrogate(x[b], present)
            disease = self.old_diseases[int(self.rng.integers(len(self.old_diseases)))]
            contexts.append(np.concatenate([flags, np.asarray(disease_context(disease, self.setup.disease_slots),
                                                              np.float32)]))
            inputs.append(sample)
        return self._sub_crop(torch.stack(inputs)), torch.from_numpy(np.stack(contexts)).to(context.device)

    def _sub_crop(self, batch: torch.Tensor) -> torch.Tensor:
        """One random ``old_route_crop``-voxel cube of the batch (the same place in every sample, so they stack);
        the batch itself when the option is 0 or the crop is not larger."""
        edge = self.options.old_route_crop
        if not edge or max(batch.shape[2:]) <= edge:
            return batch
        z, y, x = (int(self.rng.integers(0, max(size - edge, 0) + 1)) for size in batch.shape[2:])
        return batch[..., z:z + edge, y:y + edge, x:x + edge]

    def _surrogate(self, sample: torch.Tensor, present: np.ndarray) -> torch.Tensor:
        """A stand-in for a channel the case lacks: one of its present channels, scaled by 0.8-1.2 and inverted
        half the time (a z-scored image's brain keeps its shape, its background stays zero)."""
        source = sample[int(present[int(self.rng.integers(present.size))])]
        scale = float(self.rng.uniform(0.8, 1.2)) * (-1.0 if self.rng.random() < 0.5 else 1.0)
        return source * scale

    def loss(
        self, network: nn.Module, x: torch.Tensor, context: torch.Tensor, logits: torch.Tensor, features: torch.Tensor
    ) -> torch.Tensor | float:
        total = super().loss(network, x, context, logits, features)
        if self.setup is None or self.setup.teacher is None or not self.old_diseases:
            return total
        hp = self.options
        if hp.gamma > 0:
            old_x, old_context = self._old_route_batch(x, context)
            teacher_logits, _ = self.teacher_outputs(old_x, old_context)
            student_logits = network(old_x, old_context)
            total = total + hp.gamma * kl_voxel_mean(student_logits, teacher_logits, hp.temperature)
        if hp.eta > 0 and self.gate_contexts is not None:  # set in begin() whenever there are old diseases
            penalties = [((layer.gate(self.gate_contexts) - old) ** 2).sum(dim=1).mean()
                         for layer, old in zip(_moe(network).moe_layers(), self.teacher_gates, strict=True)]
            total = total + hp.eta * torch.stack(penalties).sum()
        return total
