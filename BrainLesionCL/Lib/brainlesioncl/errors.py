"""Exceptions raised by BrainLesionCL.

Every error a user can cause derives from :class:`BrainLesionCLError` and carries a message that says what was
received, what was expected and how to fix it. Callers (the CLI, the Slicer module) catch the base class, show the
message once and map it to an exit code; anything else is a bug.

The classes also derive from the built-in exception that matches their meaning (``ValueError``,
``FileNotFoundError``, ...), so code that does not know BrainLesionCL can still handle them sensibly.
"""

from __future__ import annotations

__all__ = [
    "BrainLesionCLError",
    "PacsError",
    "InvalidImageError",
    "NoCasesError",
    "UnlabelledCasesError",
    "GeometryError",
    "ChannelMappingError",
    "UnknownModalityError",
    "DuplicateChannelError",
    "NoChannelError",
    "DiseaseNotSupportedError",
    "ModelError",
    "ModelNotFoundError",
    "CorruptModelError",
    "IncompatibleWeightsError",
    "UnsafeCheckpointError",
    "VersionExistsError",
    "ModelStorageError",
    "OutputPathError",
    "CancelledError",
    "SettingsError",
]


class BrainLesionCLError(Exception):
    """Base class of every error BrainLesionCL raises on purpose."""

    exit_code: int = 2


class InvalidImageError(BrainLesionCLError, ValueError):
    """An image cannot be used: wrong dimensionality, empty, constant, NaN/Inf voxels, unreadable."""


class NoCasesError(InvalidImageError):
    """A case folder or manifest holds no case."""


class UnlabelledCasesError(InvalidImageError):
    """Cases that must be annotated (an episode's, a federated site's) have no label."""


class GeometryError(BrainLesionCLError, ValueError):
    """Images (or an image and its label) do not share the geometry an operation needs."""


class ChannelMappingError(BrainLesionCLError, ValueError):
    """The mapping from user volumes to model channels is invalid."""


class UnknownModalityError(ChannelMappingError):
    """A modality name matches no modality or alias in the registry."""


class DuplicateChannelError(ChannelMappingError):
    """Two inputs map to the same model channel, or the same volume is mapped to two channels."""


class NoChannelError(ChannelMappingError):
    """No input maps to any channel of the model."""


class DiseaseNotSupportedError(BrainLesionCLError, ValueError):
    """The disease tag is unknown, or the model has no slot for it."""


class ModelError(BrainLesionCLError):
    """Base class of model-bundle and registry problems."""

    exit_code = 3


class ModelNotFoundError(ModelError, FileNotFoundError):
    """A model version or bundle does not exist."""


class CorruptModelError(ModelError, ValueError):
    """A bundle's files are truncated, unreadable, or do not match their recorded sha256."""


class IncompatibleWeightsError(ModelError, ValueError):
    """A state dict does not match the architecture (missing/unexpected keys or wrong shapes)."""


class UnsafeCheckpointError(ModelError, ValueError):
    """A checkpoint would need arbitrary pickled code to load; it is refused, never executed."""


class VersionExistsError(ModelError, FileExistsError):
    """A registry version with this id exists already; versions are never overwritten."""


class ModelStorageError(ModelError, OSError):
    """A model version or an episode checkpoint could not be stored (disk full, no permission); nothing partial was
    left behind."""


class OutputPathError(BrainLesionCLError, OSError):
    """An output cannot be written where asked (missing folder, existing file, unsupported extension)."""


class SettingsError(BrainLesionCLError, ValueError):
    """An option has a value BrainLesionCL cannot use (unknown strategy, bad hyper-parameter)."""


class PacsError(BrainLesionCLError):
    """A PACS could not be reached, refused the association, or did not store or send what was asked."""

    exit_code = 5


class CancelledError(BrainLesionCLError):
    """The user cancelled a long operation. Nothing partial was written."""

    exit_code = 130
