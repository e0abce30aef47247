"""The two networks of the metastasis pipeline, built from MONAI (as the Met-Seg reference does).

* Detector: MONAI ``DenseNet121`` (3-D, 1 output logit: "this 64^3 patch holds a lesion"), dropout 0.2. The reference
  configuration has 11,287,553 parameters; ``DetectorConfig.cpu()`` is a narrow DenseNet for CPU training.
* Segmentor: MONAI ``DynUNet`` with residual blocks and deep supervision (3 heads), 3 sigmoid outputs in the order
  [whole tumour, tumour core, enhancing tumour]; filters 32-320 in the reference (16,673,868 parameters).
"""

from __future__ import annotations

from dataclasses import dataclass

from monai.networks.nets import DenseNet, DynUNet
from torch import nn

from ..models.config import JsonConfig

__all__ = [
    "DetectorConfig", "SegmentorConfig", "build_detector", "build_segmentor", "load_segmentor_state",
    "segmentor_state",
]

#: MONAI's DynUNet registers every block a second time under ``skip_layers.*`` (same tensors); bundles store each
#: tensor once and loading fills the aliases.
_ALIAS_PREFIX = "skip_layers."


@dataclass(frozen=True)
class DetectorConfig(JsonConfig):
    in_channels: int = 3
    init_features: int = 64
    growth_rate: int = 32
    block_config: tuple[int, ...] = (6, 12, 24, 16)
    dropout_prob: float = 0.2

    @classmethod
    def cpu(cls, in_channels: int = 3) -> DetectorConfig:
        return cls(in_channels=in_channels, init_features=16, growth_rate=8, block_config=(2, 3, 4, 3))


@dataclass(frozen=True)
class SegmentorConfig(JsonConfig):
    in_channels: int = 3
    out_channels: int = 3
    filters: tuple[int, ...] = (32, 64, 128, 256, 320)
    deep_supr_num: int = 3

    @classmethod
    def cpu(cls, in_channels: int = 3) -> SegmentorConfig:
        return cls(in_channels=in_channels, filters=(8, 16, 32, 64, 80))


def build_detector(config: DetectorConfig) -> nn.Module:
    return DenseNet(spatial_dims=3, in_channels=config.in_channels, out_channels=1,
                    init_features=config.init_features, growth_rate=config.growth_rate,
                    block_config=tuple(config.block_config), dropout_prob=config.dropout_prob)


def build_segmentor(config: SegmentorConfig) -> nn.Module:
    return DynUNet(spatial_dims=3, in_channels=config.in_channels, out_channels=config.out_channels,
                   kernel_size=[3] * 5, strides=[1, 2, 2, 2, 2], upsample_kernel_size=[2] * 4,
                   filters=list(config.filters), res_block=True, trans_bias=True, deep_supervision=True,
                   deep_supr_num=config.deep_supr_num)


def segmentor_state(network: nn.Module) -> dict:
    """The segmentor's tensors without DynUNet's ``skip_layers`` aliases (each tensor once, as safetensors needs)."""
    return {k: v for k, v in network.state_dict().items() if not k.startswith(_ALIAS_PREFIX)}


def load_segmentor_state(network: nn.Module, state: dict) -> None:
    """Strict load of a segmentor state with or without the ``skip_layers`` aliases (they are filled from the
    tensors they alias)."""
    from ..models import load_strict

    own = network.state_dict()
    canonical = {k: v for k, v in state.items() if not k.startswith(_ALIAS_PREFIX)}
    owner = {v.data_ptr(): k for k, v in own.items() if not k.startswith(_ALIAS_PREFIX)}
    aliases = {k: owner.get(v.data_ptr()) for k, v in own.items() if k.startswith(_ALIAS_PREFIX)}
    load_strict(network, {**canonical, **{k: canonical[o] for k, o in aliases.items() if o in canonical}})
