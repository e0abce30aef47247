"""Build a network from a model kind and its JSON architecture config, and infer configs from state dicts.

Bundles store ``kind`` + ``architecture``; this module is the one place that turns them into ``nn.Module`` s, so a new
model kind is added here and nowhere else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import Enum

import torch
from torch import nn

from ..errors import IncompatibleWeightsError
from .moe_unet import MoEUNet, MoEUNetConfig
from .residual_unet import ResidualUNet, ResidualUNetConfig

__all__ = ["ModelKind", "build_network", "infer_moe_config", "infer_residual_config", "load_strict"]


class ModelKind(str, Enum):
    """Model families the registry can hold."""

    MOE_UNET = "moe_unet"  #: BrainCL mixture-of-experts residual U-Net (softmax, 2 classes)
    RESIDUAL_UNET = "residual_unet"  #: MultiUnet plain residual U-Net (sigmoid, 1 channel)
    METASTASIS_TWO_STAGE = "metastasis_two_stage"  #: patch detector + patch segmentor (Met-Seg)
    PROGRESSIVE_UNET = "progressive_unet"  #: frozen MultiUnet column + new column with laterals

    def __str__(self) -> str:
        return self.value


def build_network(kind: ModelKind | str, architecture: Mapping) -> nn.Module:
    """Instantiate the network of a single-network kind from its architecture dict."""
    kind = ModelKind(kind)
    if kind is ModelKind.MOE_UNET:
        return MoEUNet(MoEUNetConfig.from_dict(dict(architecture)))
    if kind is ModelKind.RESIDUAL_UNET:
        return ResidualUNet(ResidualUNetConfig.from_dict(dict(architecture)))
    if kind is ModelKind.PROGRESSIVE_UNET:
        from .progressive import ProgressiveUNet, ProgressiveUNetConfig

        return ProgressiveUNet(ProgressiveUNetConfig.from_dict(dict(architecture)))
    raise NotImplementedError(
        f"Model kind {kind.value!r} has no single network; it is served by its own pipeline module."
    )


def _shape(state: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in state:
        raise IncompatibleWeightsError(f"the state dict has no tensor {key!r}; it is not a checkpoint of this model")
    return tuple(state[key].shape)


def infer_moe_config(state: Mapping[str, torch.Tensor]) -> MoEUNetConfig:
    """The :class:`MoEUNetConfig` that a BrainCL-layout state dict was saved from."""
    channels = tuple(_shape(state, f"encoder.{i}.conv.unit0.conv.weight")[0] for i in range(5))
    in_channels = _shape(state, "encoder.0.conv.unit0.conv.weight")[1]
    experts = {int(m.group(1)) for k in state if (m := re.match(r"encoder\.0\.conv\.unit1\.experts\.(\d+)\.", k))}
    gate = _shape(state, "encoder.0.conv.unit1.gating_network.weight")
    out_channels = _shape(state, "decoder.3.2.conv.weight")[0]
    if not experts:
        raise IncompatibleWeightsError("no experts found under encoder.0.conv.unit1.experts.*")
    try:
        return MoEUNetConfig(
            in_channels=in_channels,
            out_channels=out_channels,
            channels=channels,
            num_experts=len(experts),
            num_disease_slots=gate[1] - in_channels,
        )
    except ValueError as err:
        raise IncompatibleWeightsError(f"the tensors describe no valid MoE U-Net: {err}") from err


def infer_residual_config(state: Mapping[str, torch.Tensor], upsample_mode: str = "nearest") -> ResidualUNetConfig:
    """The :class:`ResidualUNetConfig` that a MultiUnet-layout state dict was saved from."""
    channels = tuple(_shape(state, f"conv_{i}.conv.unit0.conv.weight")[0] for i in range(1, 6))
    in_channels = _shape(state, "conv_1.conv.unit0.conv.weight")[1]
    out_channels = _shape(state, "up_stage_4.2.conv.weight")[0]
    return ResidualUNetConfig(
        in_channels=in_channels, out_channels=out_channels, channels=channels, upsample_mode=upsample_mode
    )


def load_strict(network: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """``load_state_dict(strict=True)`` with an error that lists what differs instead of PyTorch's wall of text."""
    own = network.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        for title, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
            if items:
                more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
                parts.append(f"{len(items)} {title}: {', '.join(items[:5])}{more}")
        raise IncompatibleWeightsError(
            "The weights do not fit the architecture: " + "; ".join(parts) + ". Check that the file is a checkpoint "
            "of this model kind, and that the architecture settings (width, experts, disease slots) match."
        )
    network.load_state_dict(dict(state), strict=True)
