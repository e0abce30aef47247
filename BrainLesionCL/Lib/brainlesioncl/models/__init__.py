"""Networks: the BrainCL MoE U-Net, MultiUnet's residual U-Net, and the factory that builds them from bundles."""

from .factory import ModelKind, build_network, infer_moe_config, infer_residual_config, load_strict
from .moe_unet import MoEUNet, MoEUNetConfig
from .residual_unet import ResidualUNet, ResidualUNetConfig

__all__ = [
    "ModelKind",
    "MoEUNet",
    "MoEUNetConfig",
    "ResidualUNet",
    "ResidualUNetConfig",
    "build_network",
    "infer_moe_config",
    "infer_residual_config",
    "load_strict",
]
