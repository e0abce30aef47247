"""The BrainLesionCL model bundle: a folder with ``bundle.json`` and one ``<component>.safetensors`` per network.

Why our own format: safetensors cannot carry code (loading never unpickles anything), and the JSON says everything
needed to rebuild and use the network (kind, architecture, channel order, disease slots, preprocessing, output
activation), where it came from (provenance, parent version) and the sha256 of every weight file, verified on load.

``bundle.json`` fields (schema version 1)::

    schema_version, name, version, kind, description, created,
    components: {component: {"file": "<component>.safetensors", "sha256": "...", "architecture": {...}}},
    channels: ["DWI", "FLAIR", ...], disease_slots: ["tumour", ...],
    output: {"activation": "softmax" | "sigmoid", "lesion_channel": 1},
    preprocessing: {...PreprocessConfig...}, provenance: {...}, parent: "<version>" | null,
    training: {...}, metrics: {...}, router: {...} (optional: the ``--disease auto`` classifier,
    :class:`~brainlesioncl.inference.routing.DiseaseRouter`)

Single-network kinds use the component name ``network``; the two-stage metastasis kind uses ``detector`` and
``segmentor``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import CorruptModelError, ModelNotFoundError, VersionExistsError
from ..io.atomic import default_dir_mode, default_file_mode, storage_error
from ..modalities import Modality, resolve_disease, resolve_modality
from ..models.factory import ModelKind, build_network, load_strict
from ..preprocessing.pipeline import PreprocessConfig

__all__ = ["SCHEMA_VERSION", "ModelMetadata", "ModelBundle", "write_bundle", "sha256_file"]

SCHEMA_VERSION = 1
METADATA_FILE = "bundle.json"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class ModelMetadata:
    """Everything ``bundle.json`` holds; see the module docstring."""

    name: str
    kind: ModelKind
    channels: list[str]
    disease_slots: list[str]
    architecture: dict[str, dict[str, Any]]
    output: dict[str, Any] = field(default_factory=lambda: {"activation": "softmax", "lesion_channel": 1})
    preprocessing: dict[str, Any] = field(default_factory=lambda: PreprocessConfig().to_dict())
    description: str = ""
    version: str | None = None
    parent: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    sha256: dict[str, str] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    #: The fitted ``--disease auto`` router (DiseaseRouter.to_json()), or None when the model has none.
    router: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.kind = ModelKind(self.kind)
        self.channels = [resolve_modality(c).value for c in self.channels]
        self.disease_slots = [resolve_disease(d).value for d in self.disease_slots]
        if len(set(self.channels)) != len(self.channels):
            raise ValueError(f"channel order has duplicates: {self.channels}")

    @property
    def channel_order(self) -> list[Modality]:
        return [resolve_modality(c) for c in self.channels]

    @property
    def preprocess_config(self) -> PreprocessConfig:
        return PreprocessConfig.from_dict(self.preprocessing)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "name": self.name,
            "version": self.version,
            "kind": self.kind.value,
            "description": self.description,
            "created": self.created,
            "parent": self.parent,
            "channels": list(self.channels),
            "disease_slots": list(self.disease_slots),
            "output": self.output,
            "preprocessing": self.preprocessing,
            "components": {
                name: {"file": f"{name}.safetensors", "sha256": self.sha256.get(name), "architecture": arch}
                for name, arch in self.architecture.items()
            },
            "provenance": self.provenance,
            "training": self.training,
            "metrics": self.metrics,
            **({"router": self.router} if self.router is not None else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelMetadata:
        if not isinstance(data, Mapping):
            raise CorruptModelError(
                f"bundle.json holds a {type(data).__name__}, not the object a BrainLesionCL bundle has; re-install or "
                "re-import this version."
            )
        raw_schema = data.get("schema_version", 0)
        if isinstance(raw_schema, bool) or not isinstance(raw_schema, int):
            raise CorruptModelError(
                f"bundle.json has schema_version {raw_schema!r}; it must be a whole number (this BrainLesionCL writes "
                f"{SCHEMA_VERSION}). Re-install or re-import this version."
            )
        schema = raw_schema
        if schema > SCHEMA_VERSION:
            raise CorruptModelError(
                f"bundle schema {schema} is newer than this BrainLesionCL understands ({SCHEMA_VERSION}); "
                "update BrainLesionCL to use this model."
            )
        try:
            components = data["components"]
            return cls(
                name=data["name"],
                kind=data["kind"],
                channels=list(data["channels"]),
                disease_slots=list(data.get("disease_slots", [])),
                architecture={k: dict(v["architecture"]) for k, v in components.items()},
                sha256={k: v["sha256"] for k, v in components.items()},
                output=dict(data.get("output", {})),
                preprocessing=dict(data.get("preprocessing", {})),
                description=data.get("description", ""),
                version=data.get("version"),
                parent=data.get("parent"),
                provenance=dict(data.get("provenance", {})),
                training=dict(data.get("training", {})),
                metrics=dict(data.get("metrics", {})),
                created=data.get("created", ""),
                schema_version=schema,
                router=dict(data["router"]) if data.get("router") is not None else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise CorruptModelError(
                f"bundle.json is malformed ({type(err).__name__}: {err}); re-install or re-import this version."
            ) from err


class ModelBundle:
    """A bundle folder on disk. Reading it verifies every weight file's sha256 before use."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        meta_file = self.path / METADATA_FILE
        if not meta_file.is_file():
            raise ModelNotFoundError(f"{self.path} is not a BrainLesionCL model bundle (no {METADATA_FILE}).")
        try:
            data = json.loads(meta_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise CorruptModelError(f"{meta_file} cannot be read as JSON: {err}") from err
        self.metadata = ModelMetadata.from_json(data)

    def __repr__(self) -> str:
        return f"ModelBundle({self.metadata.version or self.metadata.name!r}, kind={self.metadata.kind.value})"

    def verify(self) -> None:
        """Check every component's file exists and matches its recorded sha256."""
        for component in self.metadata.architecture:
            self._verified_file(component)

    def _verified_file(self, component: str) -> Path:
        file = self.path / f"{component}.safetensors"
        if not file.is_file():
            raise CorruptModelError(f"{self.path.name}: weight file {file.name} is missing.")
        expected = self.metadata.sha256.get(component)
        actual = sha256_file(file)
        if expected != actual:
            raise CorruptModelError(
                f"{self.path.name}: {file.name} does not match its recorded sha256 (expected {expected}, found "
                f"{actual}). The file is truncated or was modified; re-import or re-install this version."
            )
        return file

    def state_dict(self, component: str = "network") -> dict[str, torch.Tensor]:
        """The verified tensors of one component (never unpickles anything)."""
        if component not in self.metadata.architecture:
            raise ModelNotFoundError(
                f"{self.path.name} has no component {component!r} (it has {list(self.metadata.architecture)})."
            )
        file = self._verified_file(component)
        try:
            return load_file(str(file), device="cpu")
        except (SafetensorError, OSError, ValueError) as err:
            raise CorruptModelError(f"{file} is not a readable safetensors file: {err}") from err

    def build(self, component: str = "network") -> nn.Module:
        """The network of a single-network kind with its verified weights loaded (strict), in eval mode.

        The weights' shapes are checked against the architecture on PyTorch's ``meta`` device first (no memory is
        allocated there), so a tampered ``bundle.json`` claiming enormous layers is refused before anything is built.
        """
        state = self.state_dict(component)
        self.check_shapes(component, state)
        network = build_network(*self._network_spec(component))
        load_strict(network, state)
        return network.eval()

    def _network_spec(self, component: str) -> tuple[ModelKind, dict[str, Any]]:
        """(kind, architecture) of a component's network: the bundle's kind, unless the component names its own
        (an auxiliary network such as the tumour sub-region U-Net of a MoE bundle)."""
        spec = dict(self.metadata.architecture[component])
        kind = spec.pop("kind", None)
        return (ModelKind(kind) if kind is not None else self.metadata.kind), spec

    def check_shapes(self, component: str, state: Mapping[str, torch.Tensor]) -> None:
        """Raise :class:`CorruptModelError` when the architecture in ``bundle.json`` does not match the weights."""
        try:
            with torch.device("meta"):
                skeleton = build_network(*self._network_spec(component))
        except (TypeError, ValueError, KeyError, RuntimeError) as err:
            raise CorruptModelError(
                f"{self.path.name}: the architecture in bundle.json cannot be built ({type(err).__name__}: {err})."
            ) from err
        expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
        found = {k: tuple(v.shape) for k, v in state.items()}
        wrong = [k for k in expected if k in found and expected[k] != found[k]]
        if wrong or set(expected) != set(found):
            detail = (f"{wrong[0]}: architecture {expected[wrong[0]]}, weights {found[wrong[0]]}" if wrong else
                      f"{len(set(expected) ^ set(found))} tensor name(s) differ")
            raise CorruptModelError(
                f"{self.path.name}: bundle.json describes another network than its weights ({detail}). The bundle "
                "was modified; re-install or re-import this version."
            )


def write_bundle(
    destination: str | os.PathLike,
    metadata: ModelMetadata,
    state_dicts: Mapping[str, Mapping[str, torch.Tensor]],
) -> ModelBundle:
    """Write a bundle atomically: into a temporary sibling folder, then renamed into place.

    Refuses to replace an existing folder, so a published or shipped version can never be overwritten, and a crash
    or full disk leaves at most a hidden temporary folder, never a half-written bundle under the final name.

    Raises:
        VersionExistsError: ``destination`` exists.
    """
    destination = Path(destination)
    if destination.exists():
        raise VersionExistsError(f"{destination} exists already; model versions are never overwritten.")
    if set(state_dicts) != set(metadata.architecture):
        raise ValueError(f"state dicts {sorted(state_dicts)} != components {sorted(metadata.architecture)}")
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{destination.name}.partial-", dir=destination.parent))
    except OSError as err:
        raise storage_error(destination, err) from err
    try:
        for component, state in state_dicts.items():
            file = tmp / f"{component}.safetensors"
            tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
            save_file(tensors, str(file), metadata={"format": "pt", "component": component})
            os.chmod(file, default_file_mode())
            metadata.sha256[component] = sha256_file(file)
        (tmp / METADATA_FILE).write_text(json.dumps(metadata.to_json(), indent=2) + "\n", encoding="utf-8")
        os.chmod(tmp / METADATA_FILE, default_file_mode())
        _fsync_dir(tmp)
        if destination.exists():  # appeared while we were writing
            raise VersionExistsError(f"{destination} exists already; model versions are never overwritten.")
        os.chmod(tmp, default_dir_mode())
        os.rename(tmp, destination)  # atomic on one file system
    except (OSError, SafetensorError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, VersionExistsError):
            raise
        raise storage_error(destination, err) from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ModelBundle(destination)


def _fsync_dir(folder: Path) -> None:
    for file in folder.iterdir():
        with open(file, "rb") as fh:
            os.fsync(fh.fileno())
