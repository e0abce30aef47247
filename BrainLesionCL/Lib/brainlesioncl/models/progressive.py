"""Progressive-network fine-tuning of MultiUnet's residual U-Net (the MultiUnet paper's appendix).

A pretrained column is frozen; a new column of the same architecture (initialised from it) learns the new database,
and **lateral connections** carry the frozen column's features into the new one **before every down-sampling**
(the inputs of encoder units 2-5, each of which starts with a stride-2 convolution) **and every up-sampling** (the
inputs of the four decoder stages, each of which starts with a x2 upsample). Laterals are 1x1x1 convolutions
initialised to zero, so at the start the progressive network computes exactly what the new column alone computes;
the frozen column's weights never change, so what it knew is kept and inference runs both columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from .config import JsonConfig
from .residual_unet import ResidualUNet, ResidualUNetConfig

__all__ = ["ProgressiveUNet", "ProgressiveUNetConfig"]


@dataclass(frozen=True)
class ProgressiveUNetConfig(JsonConfig):
    column: dict  # ResidualUNetConfig of both columns, as a dict

    @property
    def column_config(self) -> ResidualUNetConfig:
        return ResidualUNetConfig.from_dict(dict(self.column))


def _lateral(channels: int) -> nn.Conv3d:
    conv = nn.Conv3d(channels, channels, kernel_size=1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(cast(torch.Tensor, conv.bias))  # a Conv3d built with bias=True (the default) has one
    return conv


class ProgressiveUNet(nn.Module):
    """Frozen column + trainable column + zero-initialised laterals. ``context`` is accepted and ignored."""

    def __init__(self, config: ProgressiveUNetConfig) -> None:
        super().__init__()
        self.config = config
        column = config.column_config
        self.frozen = ResidualUNet(column)
        self.column = ResidualUNet(column)
        ch = column.channels
        self.encoder_laterals = nn.ModuleList([_lateral(ch[i]) for i in range(4)])
        decoder_inputs = [ch[4] + ch[3], 2 * ch[2], 2 * ch[1], 2 * ch[0]]
        self.decoder_laterals = nn.ModuleList([_lateral(c) for c in decoder_inputs])
        self.freeze()

    @classmethod
    def from_pretrained(cls, pretrained: ResidualUNet) -> ProgressiveUNet:
        """Both columns start as copies of ``pretrained``; only the new column and the laterals will train."""
        network = cls(ProgressiveUNetConfig(column=pretrained.config.to_dict()))
        network.frozen.load_state_dict(pretrained.state_dict())
        network.column.load_state_dict(pretrained.state_dict())
        network.freeze()
        return network

    def freeze(self) -> None:
        for p in self.frozen.parameters():
            p.requires_grad_(False)
        self.frozen.eval()

    def train(self, mode: bool = True) -> ProgressiveUNet:
        super().train(mode)
        self.frozen.eval()  # the frozen column never changes behaviour (no dropout/normalisation updates)
        return self

    @staticmethod
    def _stages(net: ResidualUNet, x: torch.Tensor, laterals_from: list[torch.Tensor] | None,
                encoder_laterals, decoder_laterals) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """Run one column; return (output, the tensors entering each down-/up-sampling, bottleneck)."""
        taps: list[torch.Tensor] = []
        skips = []
        h = x
        for i in range(1, 6):
            if i >= 2:  # entering a stride-2 unit
                if laterals_from is not None:
                    h = h + encoder_laterals[i - 2](laterals_from[len(taps)])
                taps.append(h)
            h = getattr(net, f"conv_{i}")(h)
            skips.append(h)
        bottleneck = h
        for j in range(4):
            h = torch.cat([h, skips[3 - j]], dim=1)
            if laterals_from is not None:
                h = h + decoder_laterals[j](laterals_from[len(taps)])
            taps.append(h)
            h = getattr(net, f"up_stage_{j + 1}")(h)
        return h, taps, bottleneck

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, give_feature: bool = False):
        del context
        with torch.no_grad():
            _, frozen_taps, _ = self._stages(self.frozen, x, None, None, None)
        out, _, bottleneck = self._stages(self.column, x, frozen_taps, self.encoder_laterals, self.decoder_laterals)
        return (out, bottleneck) if give_feature else out
