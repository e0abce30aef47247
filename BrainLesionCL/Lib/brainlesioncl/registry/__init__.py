"""Model bundles (safetensors + JSON), the versioned registry, and importers for the published checkpoints."""

from .bundle import ModelBundle, ModelMetadata, write_bundle
from .importers import import_checkpoint, read_checkpoint
from .registry import ModelRegistry, VersionInfo, builtin_models_dir, default_registry_root, validate_model_name

__all__ = [
    "ModelBundle",
    "ModelMetadata",
    "ModelRegistry",
    "VersionInfo",
    "builtin_models_dir",
    "default_registry_root",
    "import_checkpoint",
    "read_checkpoint",
    "validate_model_name",
    "write_bundle",
]
