"""The plain residual U-Net of MultiUnet (Xu et al., MIDL 2024, arXiv 2405.18511).

Same backbone as :class:`~brainlesioncl.models.moe_unet.MoEUNet` without experts: five parameter-free residual units
(16/32/64/128/256, strides 2/2/2/2/1), four decoder stages that concatenate before a x2 upsample, and by default one
sigmoid output channel with nearest-neighbour upsampling, which is the published configuration (8,900,930 parameters,
53 tensors). Module names mirror the published ``res_unet`` (``conv_1..5``, ``up_stage_1..4``) so its released state
dict loads with ``strict=True``.

The network takes a ``context`` argument for interface parity with the MoE model and ignores it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .blocks import ParameterFreeResidualUnit, check_spatial_size, conv_block, decoder_stages
from .config import JsonConfig

__all__ = ["ResidualUNetConfig", "ResidualUNet"]


@dataclass(frozen=True)
class ResidualUNetConfig(JsonConfig):
    """Architecture of :class:`ResidualUNet` (defaults = published MultiUnet)."""

    in_channels: int = 6
    out_channels: int = 1
    channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    upsample_mode: str = "nearest"

    def __post_init__(self) -> None:
        if len(self.channels) != 5:
            raise ValueError(f"channels must have 5 entries, got {self.channels}")
        if self.upsample_mode not in ("trilinear", "nearest"):
            raise ValueError(f"upsample_mode must be 'trilinear' or 'nearest', not {self.upsample_mode!r}")
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))


class ResidualUNet(nn.Module):
    """MultiUnet's residual U-Net. Output: logits, (B, out_channels, *spatial)."""

    def __init__(self, config: ResidualUNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or ResidualUNetConfig()
        cfg = self.config
        ch = cfg.channels
        previous = cfg.in_channels
        for i, (width, stride) in enumerate(zip(ch, (2, 2, 2, 2, 1), strict=True), start=1):
            self.add_module(
                f"conv_{i}", ParameterFreeResidualUnit(previous, width, strides=stride, second=conv_block(width, width))
            )
            previous = width
        for j, stage in enumerate(decoder_stages(ch, cfg.out_channels, cfg.upsample_mode)):
            self.add_module(f"up_stage_{j + 1}", stage)  # the published res_unet's names

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, give_feature: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        del context
        check_spatial_size(x.shape[2:])
        skips = []
        h = x
        for i in range(1, 6):
            h = getattr(self, f"conv_{i}")(h)
            skips.append(h)
        bottleneck = h
        for j in range(4):
            h = getattr(self, f"up_stage_{j + 1}")(torch.cat([h, skips[3 - j]], dim=1))
        return (h, bottleneck) if give_feature else h
