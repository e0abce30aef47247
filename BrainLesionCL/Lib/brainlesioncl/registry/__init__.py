"""Model bundles (safetensors + JSON), the versioned registry, and importers for the published checkpoints."""

from .bundle import ModelBundle, ModelMetadata, write_bundle
from .importers import import_checkpoint, read_checkpoint
from .registry import ModelRegistry, VersionInfo, builtin_models_dir, default_registry_root

__all__ = [
    "ModelBundle",
    "ModelMetadata",
    "ModelRegistry",
    "VersionInfo",
    "builtin_models_dir",
    "default_registry_root",
    "import_checkpoint",
    "read_checkpoint",
    "write_bundle",
]
