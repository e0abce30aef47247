"""Building blocks shared by the residual U-Nets (BrainCL MoE U-Net and MultiUnet).

Both published networks are built from MONAI ``Convolution`` blocks (conv -> InstanceNorm -> Dropout -> PReLU, the
"NDA" order; :class:`ConvBlock` is that block with the same module names) and a residual unit whose shortcut has
**no parameters**: an average pool added to the first ``in`` channels of the output. The module names here mirror
the published ones (``conv.unit0``, ``conv.unit1``, ``experts.k``, ``gating_network``) so their ``state_dict`` loads
with ``strict=True``.
"""

from __future__ import annotations

from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["NETWORK_STRIDE", "ConvBlock", "MoEConvolution", "ParameterFreeResidualUnit", "check_spatial_size",
           "conv_block", "decoder_stages", "upsample_x2"]

#: Both U-Nets halve the volume four times: every spatial size they take is a multiple of this (and at least 32).
NETWORK_STRIDE = 16


def check_spatial_size(shape) -> None:
    """Raise ValueError naming the fix unless every size is a multiple of 16 and at least 32."""
    if any(int(s) % NETWORK_STRIDE or int(s) < 2 * NETWORK_STRIDE for s in shape):
        raise ValueError(
            f"spatial size {tuple(int(s) for s in shape)} must be a multiple of {NETWORK_STRIDE} and at least "
            f"{2 * NETWORK_STRIDE} (four stride-2 stages); pad the input"
        )

_DROPOUT = 0.2


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``F.dropout`` with the same distribution, cheaper on the CPU when ``p`` is a fraction k/n with n < 256.

    Why: drawing PyTorch's float Bernoulli mask was 11 % of a training step of the MoE U-Net on a 2-core CPU (the
    experts' dropout masks are four times the layer's width). Drawing small integers uniform in [0, n) and dropping
    those below k gives exactly the same keep probability 1 - k/n at about a third of the cost; kept values are
    scaled by 1 / (1 - p) as ``F.dropout`` does. Other devices and other ``p`` use ``F.dropout``.
    """
    if not training or p <= 0.0:
        return x
    ratio = Fraction(p).limit_denominator(255)
    if x.device.type != "cpu" or float(ratio) != p or p >= 1.0:
        return F.dropout(x, p=p, training=True)
    draws = torch.empty(x.shape, dtype=torch.uint8, device=x.device).random_(0, ratio.denominator)
    scale = (draws >= ratio.numerator).to(x.dtype).mul_(1.0 / (1.0 - p))
    return x * scale


class Dropout(nn.Dropout):
    """``nn.Dropout`` drawing its mask with :func:`dropout` (no parameters: state dicts are unchanged)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


class ConvBlock(nn.Sequential):
    """MONAI's ``Convolution(spatial_dims=3, kernel_size=3, act="PRELU", norm="INSTANCE", adn_ordering="NDA")``:
    ``conv`` (Conv3d, kernel 3, padding 1, bias), then ``adn`` = ``N`` InstanceNorm3d(affine=False) -> ``D`` Dropout
    -> ``A`` PReLU(1); with ``conv_only`` just ``conv``.

    Why ours and not MONAI's class: the same modules under the same names (so the published state dicts load
    strictly, and ``Testing/Python/test_monai_equivalence.py`` pins outputs and keys to MONAI's block), but importing
    ``monai`` loads every MONAI sub-package (about 3 s of a 2-core machine's start-up, most of a ``segment`` run of
    the shipped model). Segmenting therefore never imports MONAI unless it slides windows; training still uses it.
    """

    def __init__(self, in_channels: int, out_channels: int, *, strides: int = 1, conv_only: bool = False,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.add_module("conv", nn.Conv3d(in_channels, out_channels, kernel_size=3, stride=strides, padding=1))
        if not conv_only:
            adn = nn.Sequential()
            adn.add_module("N", nn.InstanceNorm3d(out_channels))
            adn.add_module("D", Dropout(dropout))
            adn.add_module("A", nn.PReLU())
            self.add_module("adn", adn)


def conv_block(
    in_channels: int, out_channels: int, *, strides: int = 1, conv_only: bool = False, dropout: float = _DROPOUT
) -> ConvBlock:
    """3-D conv (kernel 3, padding 1, bias) followed by InstanceNorm(affine=False) -> Dropout -> PReLU(1)."""
    return ConvBlock(in_channels, out_channels, strides=strides, conv_only=conv_only, dropout=dropout)


def _conv_of(expert: nn.Module) -> nn.Conv3d:
    """The convolution of a conv block (its submodule ``conv``)."""
    conv = expert.get_submodule("conv")
    assert isinstance(conv, nn.Conv3d)
    return conv


def _prelu_of(expert: nn.Module) -> nn.PReLU:
    """The activation of a conv block's ADN (``adn.A``), a PReLU in every expert."""
    prelu = expert.get_submodule("adn.A")
    assert isinstance(prelu, nn.PReLU)
    return prelu


class MoEConvolution(nn.Module):
    """A mixture of ``num_experts`` identical conv blocks mixed by a softmax gate on the context vector.

    The gate sees only the context (modality-present flags + disease one-hot), not the image, so every voxel of a
    volume uses the same expert weights: routing is per case, which is what lets a disease or modality set own its
    experts. All experts are evaluated (dense gating, as in the reference).

    Args:
        in_channels, out_channels: conv channels of each expert.
        num_experts: experts per layer.
        context_dim: length of the context vector.
        fused: evaluate the experts as one convolution with ``num_experts * out_channels`` filters (same result,
            fewer kernel launches and better CPU/GPU utilisation) instead of a Python loop over experts.

    Shapes:
        ``x`` (B, C_in, D, H, W), ``context`` (B or 1, context_dim) -> (B, C_out, D', H', W').
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_experts: int,
        context_dim: int,
        *,
        fused: bool = True,
        dropout: float = _DROPOUT,
    ) -> None:
        super().__init__()
        if num_experts < 1:
            raise ValueError(f"num_experts must be >= 1, got {num_experts}")
        self.experts = nn.ModuleList(
            [conv_block(in_channels, out_channels, dropout=dropout) for _ in range(num_experts)]
        )
        self.gating_network = nn.Linear(context_dim, num_experts)
        self.fused = fused
        self.dropout = dropout

    @property
    def num_experts(self) -> int:
        return len(self.experts)

    def gate(self, context: torch.Tensor) -> torch.Tensor:
        """Softmax mixing weights, shape (B, num_experts)."""
        return torch.softmax(self.gating_network(context), dim=1)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        weights = self.gate(context.to(dtype=self.gating_network.weight.dtype))
        if self.fused:
            return self._forward_fused(x, weights)
        outputs = torch.stack([expert(x) for expert in self.experts], dim=1)  # (B, E, C, D, H, W)
        weights = weights.to(outputs.dtype)
        return (outputs * weights[:, :, None, None, None, None]).sum(dim=1)

    def _forward_fused(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        convs: list[nn.Conv3d] = [_conv_of(expert) for expert in self.experts]
        weight = torch.cat([c.weight for c in convs], dim=0)
        biases = [c.bias for c in convs if c.bias is not None]
        bias = torch.cat(biases, dim=0) if len(biases) == len(convs) else None
        y = F.conv3d(x, weight, bias, stride=1, padding=convs[0].padding)
        # InstanceNorm without affine is per channel, so normalising the concatenation equals normalising each expert.
        y = F.instance_norm(y)
        y = dropout(y, self.dropout, self.training)
        num_experts = len(convs)
        b, _, *spatial = y.shape
        y = y.view(b, num_experts, -1, *spatial)
        slopes = torch.cat([_prelu_of(expert).weight for expert in self.experts]).to(y.dtype)
        slopes = slopes.view(1, num_experts, 1, 1, 1, 1)
        y = torch.where(y >= 0, y, y * slopes)  # per-expert PReLU
        mix = weights.to(y.dtype).expand(b, num_experts)
        return torch.einsum("be,becdhw->bcdhw", mix, y)


class ParameterFreeResidualUnit(nn.Module):
    """Two conv blocks with a parameter-free shortcut (the published ``ResidualUnit_changed``).

    ``conv.unit0`` is a plain block carrying the stride; ``conv.unit1`` is a plain block or a
    :class:`MoEConvolution`. The shortcut is ``AvgPool3d(3, stride 2, padding 1)`` when the unit downsamples or
    changes width (an identity pool otherwise) and is added to the first ``in_channels`` output channels only.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        strides: int,
        second: nn.Module,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.conv = nn.Sequential()
        self.conv.add_module("unit0", conv_block(in_channels, out_channels, strides=strides))
        self.conv.add_module("unit1", second)
        if strides != 1 or in_channels != out_channels:
            if strides == 1:
                self.residual: nn.Module = nn.AvgPool3d(kernel_size=1, stride=1)
            else:
                self.residual = nn.AvgPool3d(kernel_size=3, stride=strides, padding=1)
        else:
            self.residual = nn.Identity()

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        shortcut = self.residual(x)
        y = self.conv[0](x)  # unit0 (indexing keeps the type: attribute access on a Module is untyped)
        second = self.conv[1]  # unit1
        y = second(y, context) if isinstance(second, MoEConvolution) else second(y)
        # Out-of-place to stay autograd-safe with any second block; the copy is small next to the convs.
        return torch.cat([y[:, : self.in_channels] + shortcut, y[:, self.in_channels :]], dim=1)


def upsample_x2(mode: str) -> nn.Upsample:
    """x2 upsampling: "trilinear" (BrainCL) or "nearest" (MultiUnet)."""
    return nn.Upsample(scale_factor=2, mode=mode, **({"align_corners": False} if mode == "trilinear" else {}))


def decoder_stages(
    channels: tuple[int, ...], out_channels: int, upsample_mode: str, *, mixing=None
) -> list[nn.Sequential]:
    """The four decoder stages both U-Nets share. Each takes the concatenation of the deeper features and a skip,
    upsamples x2, applies a conv block, then ``mixing`` (a conv block, or the MoE U-Net's expert convolution) down to
    the next skip's width; the last stage ends in a bare conv to ``out_channels`` (the logits).

    The layer order inside a stage (upsample, conv, mixing) is what the published checkpoints' keys encode."""
    mixing = mixing or conv_block
    stages = []
    stage_in = channels[4] + channels[3]
    for j in range(4):
        upsample, conv_a = upsample_x2(upsample_mode), conv_block(stage_in, stage_in)
        if j < 3:
            out = channels[2 - j]
            stages.append(nn.Sequential(upsample, conv_a, mixing(stage_in, out)))
            stage_in = 2 * out
        else:
            stages.append(nn.Sequential(upsample, conv_a, conv_block(stage_in, out_channels, conv_only=True)))
    return stages
