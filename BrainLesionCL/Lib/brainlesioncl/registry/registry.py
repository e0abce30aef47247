"""The model registry: a folder of immutable, versioned bundles plus a record of which one is active.

Layout::

    <root>/
        versions/<name>-v<N>/bundle.json, network.safetensors      (one folder per version, never rewritten)
        active.json                                                (role -> version id, and the activation history)

Shipped models (inside the package, ``brainlesioncl/default_models``) are listed as read-only versions beside the
user's. A version id is ``<name>-v<N>``; N counts up per name and an existing id is never reused or overwritten.

Roles: ``segmentation`` is the model ``segment`` uses for every disease; ``metastasis`` (optional) is the two-stage
pipeline used for the metastasis tag when present. Activating a version sets the role of its kind; rolling back
restores the previously active version of that role.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ModelError, ModelNotFoundError, OutputPathError, SettingsError, VersionExistsError
from ..io.atomic import StagedOutputs, default_dir_mode, default_file_mode, storage_error
from ..models.factory import ModelKind
from .bundle import ModelBundle, ModelMetadata, write_bundle
from .importers import import_checkpoint

__all__ = ["ModelRegistry", "VersionInfo", "default_registry_root", "builtin_models_dir", "validate_model_name"]

_ID = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*?)-v(?P<number>\d+)$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: In a shipped-models folder: ``{"segmentation": "<version>"}``, the default of a fresh install.
DEFAULTS_FILE = "defaults.json"
NAME_RULE = "1-64 characters: letters, digits, '-', '_' and '.', starting with a letter or digit"


def validate_model_name(name: str) -> str:
    """Check a model name (the ``<name>`` of ``<name>-v<N>``) before any work is done, so a long episode or an
    import never fails at the very end on the name.

    Raises:
        SettingsError: the name breaks the rule; the message gives the rule and, for a version id typed as a
            name, the name to use instead.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise SettingsError(f"Model name {name!r} is not allowed: use {NAME_RULE} (e.g. my-site-model).")
    if match := _ID.match(name):
        raise SettingsError(
            f"Model name {name!r} looks like a version id; give the name without the version suffix "
            f"({match['name']!r}): the registry numbers versions itself."
        )
    return name


def default_registry_root() -> Path:
    """``~/.brainlesioncl/models``: where user versions live unless a root is passed explicitly."""
    return Path.home() / ".brainlesioncl" / "models"


def builtin_models_dir() -> Path:
    """Folder of the bundles shipped with the package."""
    return Path(__file__).resolve().parent.parent / "default_models"


def role_of(kind: ModelKind) -> str:
    return "metastasis" if kind is ModelKind.METASTASIS_TWO_STAGE else "segmentation"


@dataclass(frozen=True)
class VersionInfo:
    """One line of ``models list``."""

    version: str
    kind: str
    parent: str | None
    created: str
    channels: tuple[str, ...]
    disease_slots: tuple[str, ...]
    builtin: bool
    active: bool
    description: str
    metrics: Mapping
    #: Why the version cannot be used (a damaged bundle), or None when it is fine.
    problem: str | None = None


class ModelRegistry:
    """Versioned model store. See the module docstring for the layout.

    Args:
        root: registry folder (created on first write); defaults to :func:`default_registry_root`.
        builtin_dirs: folders holding shipped, read-only bundles.

    Example:
        >>> registry = ModelRegistry(tmp_path)                                # doctest: +SKIP
        >>> version = registry.import_checkpoint("exprience_4.pt")           # doctest: +SKIP
        >>> registry.activate(version)                                      # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike | None = None, builtin_dirs: Sequence[os.PathLike] | None = None):
        self.root = Path(root).expanduser() if root is not None else default_registry_root()
        self.builtin_dirs = [Path(d) for d in (builtin_dirs if builtin_dirs is not None else [builtin_models_dir()])]

    # ------------------------------------------------------------------ lookup
    @property
    def versions_dir(self) -> Path:
        return self.root / "versions"

    def _builtin(self) -> dict[str, Path]:
        found = {}
        for folder in self.builtin_dirs:
            if folder.is_dir():
                for child in sorted(folder.iterdir()):
                    if (child / "bundle.json").is_file():
                        found[child.name] = child
        return found

    def _user(self) -> dict[str, Path]:
        if not self.versions_dir.is_dir():
            return {}
        return {
            child.name: child
            for child in sorted(self.versions_dir.iterdir())
            if not child.name.startswith(".") and (child / "bundle.json").is_file()
        }

    def version_ids(self) -> list[str]:
        return sorted({**self._builtin(), **self._user()})

    def path_of(self, version: str) -> Path:
        user, builtin = self._user(), self._builtin()
        if version in user:
            return user[version]
        if version in builtin:
            return builtin[version]
        known = ", ".join(sorted({*user, *builtin})) or "none"
        raise ModelNotFoundError(
            f"No model version {version!r} in the registry (known: {known}). See `brainlesioncl models list`."
        )

    def is_builtin(self, version: str) -> bool:
        return version in self._builtin() and version not in self._user()

    def get(self, version: str | None = None) -> ModelBundle:
        """The bundle of ``version`` (default: the active segmentation model)."""
        return ModelBundle(self.path_of(version or self.active()))

    def list(self) -> list[VersionInfo]:
        active = set(self._active_record().get("roles", {}).values())
        if not active and (fallback := self._fallback_active("segmentation")):
            active = {fallback}
        infos = []
        for version in self.version_ids():
            try:
                meta = ModelBundle(self.path_of(version)).metadata
            except ModelError as err:  # one damaged bundle must not hide the others
                infos.append(VersionInfo(version=version, kind="?", parent=None, created="", channels=(),
                                         disease_slots=(), builtin=self.is_builtin(version), active=version in active,
                                         description="", metrics={}, problem=str(err)))
                continue
            infos.append(
                VersionInfo(
                    version=version,
                    kind=meta.kind.value,
                    parent=meta.parent,
                    created=meta.created,
                    channels=tuple(meta.channels),
                    disease_slots=tuple(meta.disease_slots),
                    builtin=self.is_builtin(version),
                    active=version in active,
                    description=meta.description,
                    metrics=meta.metrics,
                )
            )
        return infos

    # ------------------------------------------------------------------ writing
    def next_version_id(self, name: str) -> str:
        validate_model_name(name)
        numbers = [int(m["number"]) for v in self.version_ids() if (m := _ID.match(v)) and m["name"] == name]
        return f"{name}-v{max(numbers, default=0) + 1}"

    def add(
        self,
        metadata: ModelMetadata,
        state_dicts: Mapping[str, Mapping[str, torch.Tensor]],
        *,
        version: str | None = None,
    ) -> str:
        """Store a new version; returns its id. The metadata's ``version`` is set to that id.

        Raises:
            VersionExistsError: ``version`` is given and exists (built-in or user).
        """
        version = version or self.next_version_id(metadata.name)
        if not _ID.match(version):
            raise SettingsError(f"version id {version!r} must look like <name>-v<N>, the name being {NAME_RULE}")
        if version in self.version_ids():
            raise VersionExistsError(f"Model version {version!r} exists already; versions are never overwritten.")
        metadata.version = version
        write_bundle(self.versions_dir / version, metadata, state_dicts)
        return version

    def import_checkpoint(self, path: str | os.PathLike, *, name: str | None = None, **kwargs) -> str:
        """Import a published BrainCL/MultiUnet checkpoint as a new version (not activated)."""
        if name is not None:
            validate_model_name(name)
        imported = import_checkpoint(path, name=name, **kwargs)
        return self.add(imported.metadata, {"network": imported.state_dict})

    def export(self, version: str, destination: str | os.PathLike) -> Path:
        """Copy a version's bundle folder to ``destination`` (which must not exist)."""
        source = self.path_of(version)
        destination = Path(destination).expanduser()
        if destination.exists():
            raise OutputPathError(f"{destination} exists already; choose a new folder name for the export.")
        if not destination.parent.is_dir():
            raise OutputPathError(f"Folder {destination.parent} does not exist; create it first.")
        ModelBundle(source).verify()
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{destination.name}.partial-", dir=destination.parent))
        except OSError as err:
            raise storage_error(destination, err) from err
        try:
            for file in source.iterdir():
                shutil.copy2(file, tmp / file.name)
                os.chmod(tmp / file.name, default_file_mode())
            os.chmod(tmp, default_dir_mode())
            os.rename(tmp, destination)
        except OSError as err:
            shutil.rmtree(tmp, ignore_errors=True)
            raise storage_error(destination, err) from err
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return destination

    # ------------------------------------------------------------------ activation
    def _active_file(self) -> Path:
        return self.root / "active.json"

    def _active_record(self) -> dict:
        file = self._active_file()
        if not file.is_file():
            return {"roles": {}, "history": {}}
        try:
            record = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise ModelError(f"{file} is unreadable ({err}); delete it to fall back to the default model.") from err
        record.setdefault("roles", {})
        record.setdefault("history", {})
        return record

    def _write_active_record(self, record: dict) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with StagedOutputs() as outputs:
                outputs.add(self._active_file(), lambda tmp: tmp.write_text(json.dumps(record, indent=2),
                                                                            encoding="utf-8"))
        except OSError as err:  # OutputPathError included: the message already says what went wrong
            raise storage_error(self._active_file(), err) from err

    def _fallback_active(self, role: str) -> str | None:
        """With nothing activated, the shipped default of the role is active: the version a shipped folder's
        ``defaults.json`` names (a newer model can ship as a choice before it becomes the default), else the newest
        shipped model of the role."""
        candidates = [
            v for v, p in self._builtin().items() if role_of(ModelBundle(p).metadata.kind) == role
        ]
        for folder in self.builtin_dirs:
            marker = folder / DEFAULTS_FILE
            if marker.is_file():
                try:
                    named = json.loads(marker.read_text(encoding="utf-8")).get(role)
                except (OSError, ValueError, AttributeError):
                    named = None  # a damaged marker never blocks segmentation: the newest model is used
                if named in candidates:
                    return named
        return sorted(candidates)[-1] if candidates else None

    def active(self, role: str = "segmentation") -> str:
        """The active version id of a role.

        Raises:
            ModelNotFoundError: nothing is active and no shipped model exists for the role.
        """
        record = self._active_record()
        version = record["roles"].get(role) or self._fallback_active(role)
        if version is None:
            raise ModelNotFoundError(
                f"No {role} model is installed or active. Import one (`brainlesioncl models import FILE`) and "
                "activate it (`brainlesioncl models activate VERSION`)."
            )
        return version

    def active_or_none(self, role: str) -> str | None:
        try:
            return self.active(role)
        except ModelNotFoundError:
            return None

    def activate(self, version: str) -> None:
        """Make ``version`` the active model of its role (after verifying its weights)."""
        bundle = ModelBundle(self.path_of(version))
        bundle.verify()
        role = role_of(bundle.metadata.kind)
        record = self._active_record()
        previous = record["roles"].get(role) or self._fallback_active(role)
        if previous and previous != version:
            record["history"].setdefault(role, []).append(previous)
        record["roles"][role] = version
        self._write_active_record(record)

    def rollback(self, role: str = "segmentation") -> str:
        """Re-activate the version that was active before the current one; returns it."""
        record = self._active_record()
        history = record["history"].get(role, [])
        while history:
            candidate = history.pop()
            if candidate in self.version_ids():
                record["roles"][role] = candidate
                self._write_active_record(record)
                return candidate
        raise ModelError(f"Nothing to roll back to: no earlier {role} model was active.")
