"""The mixture-of-experts residual U-Net of BrainCL (Sadegheih, Kumari, Merhof, arXiv 2503.20326).

Layout (defaults reproduce the published network: 18,380,347 parameters, 141 state-dict tensors):

* encoder: five :class:`ParameterFreeResidualUnit` s, channels 16/32/64/128/256, strides 2/2/2/2/1; the second conv of
  every unit is a :class:`MoEConvolution`. The output of the last unit is the **bottleneck feature** used for
  feature distillation (256 x N/16 for an N^3 input).
* decoder: four stages; each concatenates (deep, skip) at the lower resolution, upsamples x2 (trilinear), then conv
  ``a`` and conv ``b``. ``b`` is an MoE layer in stages 0-2 and a plain conv to ``out_channels`` logits in stage 3.
* gate input: context vector = [modality-present flags in channel order] + [disease one-hot].

Spatial sizes must be multiples of 16 and at least 32 (four stride-2 stages); :mod:`brainlesioncl.inference` pads
for you.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from .blocks import MoEConvolution, ParameterFreeResidualUnit, check_spatial_size, decoder_stages
from .config import JsonConfig

__all__ = ["MoEUNetConfig", "MoEUNet"]


@dataclass(frozen=True)
class MoEUNetConfig(JsonConfig):
    """Architecture of :class:`MoEUNet`; stored in every model bundle so the network can be rebuilt exactly.

    Args:
        in_channels: number of input channels (= length of the model's channel order).
        out_channels: output logits (2 = background/lesion with softmax, as the reference).
        channels: widths of the five encoder units; scale them down for CPU-sized variants.
        num_experts: experts per MoE layer.
        num_disease_slots: length of the disease one-hot in the context vector.
        upsample_mode: "trilinear" (BrainCL) or "nearest" (MultiUnet).
        fused_experts: evaluate experts as one convolution (numerically the same as the loop).
    """

    in_channels: int = 6
    out_channels: int = 2
    channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    num_experts: int = 4
    num_disease_slots: int = 4
    upsample_mode: str = "trilinear"
    fused_experts: bool = True

    def __post_init__(self) -> None:
        if len(self.channels) != 5:
            raise ValueError(f"channels must have 5 entries (one per encoder unit), got {self.channels}")
        if any(c < 1 for c in self.channels) or self.in_channels < 1 or self.out_channels < 1:
            raise ValueError("channel counts must be positive")
        if any(self.channels[i] < (self.in_channels if i == 0 else self.channels[i - 1]) for i in range(5)):
            raise ValueError(
                "each encoder width must be >= the previous one (the parameter-free shortcut is added to the first "
                f"in_channels outputs); got in_channels={self.in_channels}, channels={self.channels}"
            )
        if self.upsample_mode not in ("trilinear", "nearest"):
            raise ValueError(f"upsample_mode must be 'trilinear' or 'nearest', not {self.upsample_mode!r}")
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))

    @property
    def context_dim(self) -> int:
        return self.in_channels + self.num_disease_slots


class MoEUNet(nn.Module):
    """BrainCL's mixture-of-experts residual U-Net. See the module docstring for the layout.

    Example:
        >>> net = MoEUNet(MoEUNetConfig(channels=(8, 16, 32, 64, 128)))
        >>> x, ctx = torch.zeros(1, 6, 32, 32, 32), torch.zeros(1, 10)
        >>> tuple(net(x, ctx).shape)
        (1, 2, 32, 32, 32)
    """

    def __init__(self, config: MoEUNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or MoEUNetConfig()
        cfg = self.config
        ch = cfg.channels
        strides = (2, 2, 2, 2, 1)

        def moe(cin: int, cout: int) -> MoEConvolution:
            return MoEConvolution(cin, cout, cfg.num_experts, cfg.context_dim, fused=cfg.fused_experts)

        self.encoder = nn.ModuleList()
        previous = cfg.in_channels
        for width, stride in zip(ch, strides, strict=True):
            self.encoder.append(ParameterFreeResidualUnit(previous, width, strides=stride, second=moe(width, width)))
            previous = width

        self.decoder = nn.ModuleList(decoder_stages(ch, cfg.out_channels, cfg.upsample_mode, mixing=moe))
        self._init_weights()

    def _init_weights(self) -> None:
        # Reference: Kaiming normal (a=0.01) on every conv, zero bias; gates keep PyTorch's default init.
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, a=0.01)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def moe_layers(self) -> list[MoEConvolution]:
        """The 8 MoE layers, encoder first (useful for gate inspection and distillation)."""
        return [m for m in self.modules() if isinstance(m, MoEConvolution)]

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, give_feature: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, out_channels, *spatial); with ``give_feature`` also the bottleneck feature."""
        check_spatial_size(x.shape[2:])
        if context.dim() != 2 or context.shape[1] != self.config.context_dim:
            raise ValueError(
                f"context must have shape (B, {self.config.context_dim}), got {tuple(context.shape)}"
            )
        skips = []
        h = x
        for unit in self.encoder:
            h = unit(h, context)
            skips.append(h)
        bottleneck = skips[4]
        h = bottleneck
        for j, stage in enumerate(self.decoder):
            h = torch.cat([h, skips[3 - j]], dim=1)
            upsample, conv_a, conv_b = cast(nn.Sequential, stage)  # each decoder stage is a Sequential of three
            h = conv_a(upsample(h))
            h = conv_b(h, context) if isinstance(conv_b, MoEConvolution) else conv_b(h)
        if give_feature:
            return h, bottleneck
        return h
