"""Bundles, the versioned registry and the safe importers of published checkpoints."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from brainlesioncl.errors import (
    CorruptModelError,
    IncompatibleWeightsError,
    ModelError,
    ModelNotFoundError,
    UnsafeCheckpointError,
    VersionExistsError,
)
from brainlesioncl.models import ModelKind, MoEUNet, MoEUNetConfig, ResidualUNet, ResidualUNetConfig
from brainlesioncl.registry import ModelBundle, ModelRegistry, import_checkpoint, write_bundle

from conftest import TINY_CHANNELS, tiny_metadata


class _Evil:
    """Unpickling this would run code (os.system); a safe loader must refuse it."""

    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/brainlesioncl_pwned",))


def _braincl_checkpoint(path: Path, channels=TINY_CHANNELS) -> dict:
    model = MoEUNet(MoEUNetConfig(channels=channels))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(1, 6, 32, 32, 32), torch.rand(1, 10)).mean().backward()
    optimizer.step()
    state = {f"_orig_mod.{k}": v for k, v in model.state_dict().items()}  # as saved from a compiled model
    checkpoint = {"model": state, "teacher": None, "optimizer": optimizer.state_dict(), "episode_idx": 5,
                  "epoch": None, "grad_scaler": None}
    torch.save(checkpoint, path)
    return model.state_dict()


def test_bundle_round_trip_and_sha256(tmp_path: Path) -> None:
    network = MoEUNet(MoEUNetConfig(channels=TINY_CHANNELS))
    bundle = write_bundle(tmp_path / "tiny-v1", tiny_metadata(), {"network": network.state_dict()})
    meta = json.loads((tmp_path / "tiny-v1" / "bundle.json").read_text())
    assert meta["kind"] == "moe_unet" and len(meta["components"]["network"]["sha256"]) == 64
    assert meta["channels"] == ["DWI", "FLAIR", "PD", "T1", "T1c", "T2"]
    rebuilt = ModelBundle(tmp_path / "tiny-v1").build()
    for key, value in network.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value)
    assert not rebuilt.training
    assert bundle.metadata.sha256["network"] == meta["components"]["network"]["sha256"]


def test_truncated_or_modified_weights_are_detected(tmp_path: Path) -> None:
    network = MoEUNet(MoEUNetConfig(channels=TINY_CHANNELS))
    write_bundle(tmp_path / "tiny-v1", tiny_metadata(), {"network": network.state_dict()})
    weights = tmp_path / "tiny-v1" / "network.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CorruptModelError, match="truncated or was modified"):
        ModelBundle(tmp_path / "tiny-v1").build()


def test_truncated_safetensors_import_is_refused(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file(MoEUNet(MoEUNetConfig(channels=TINY_CHANNELS)).state_dict(), str(path))
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CorruptModelError, match="not a readable safetensors"):
        import_checkpoint(path)


def test_versions_are_never_overwritten(registry: ModelRegistry) -> None:
    state = {"network": MoEUNet(MoEUNetConfig(channels=TINY_CHANNELS)).state_dict()}
    first = registry.add(tiny_metadata(), state)
    second = registry.add(tiny_metadata(), state)
    assert (first, second) == ("tiny-v1", "tiny-v2")
    before = (registry.path_of(first) / "network.safetensors").read_bytes()
    with pytest.raises(VersionExistsError):
        registry.add(tiny_metadata(), state, version=first)
    assert (registry.path_of(first) / "network.safetensors").read_bytes() == before


def test_interrupted_write_leaves_registry_unchanged(registry: ModelRegistry, monkeypatch) -> None:
    state = {"network": MoEUNet(MoEUNetConfig(channels=TINY_CHANNELS)).state_dict()}
    first = registry.add(tiny_metadata(), state)
    import brainlesioncl.registry.bundle as bundle_module

    def full_disk(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bundle_module, "save_file", full_disk)
    with pytest.raises(OSError, match="disk is full"):
        registry.add(tiny_metadata(), state)
    assert registry.version_ids() == [first]
    assert [p.name for p in registry.versions_dir.iterdir()] == [first]  # no partial folder left behind
    registry.get(first).build()


def test_import_braincl_checkpoint_safely(registry: ModelRegistry, tmp_path: Path) -> None:
    original = _braincl_checkpoint(tmp_path / "exprience_4.pt")
    version = registry.import_checkpoint(tmp_path / "exprience_4.pt")
    assert version == "braincl-v1"
    bundle = registry.get(version)
    assert bundle.metadata.kind is ModelKind.MOE_UNET
    assert bundle.metadata.channels == ["DWI", "FLAIR", "PD", "T1", "T1c", "T2"]
    assert bundle.metadata.disease_slots == ["tumour", "stroke", "MS", "WMH"]
    assert bundle.metadata.provenance["episode"] == 5
    network = bundle.build()
    for key, value in original.items():
        assert torch.equal(network.state_dict()[key], value)


def test_import_multiunet_state_dict(registry: ModelRegistry, tmp_path: Path) -> None:
    model = ResidualUNet(ResidualUNetConfig(channels=TINY_CHANNELS))
    torch.save(model.state_dict(), tmp_path / "Train_BRATS_TBI_ATLAS_MSSEG_WMH.pth")
    version = registry.import_checkpoint(tmp_path / "Train_BRATS_TBI_ATLAS_MSSEG_WMH.pth")
    bundle = registry.get(version)
    assert bundle.metadata.kind is ModelKind.RESIDUAL_UNET
    assert bundle.metadata.channels == ["PD", "FLAIR", "SWI", "T1", "T1c", "T2"]
    assert bundle.metadata.output == {"activation": "sigmoid", "lesion_channel": 0}
    assert bundle.metadata.preprocessing["zero_background"] is False
    assert bundle.build().config.upsample_mode == "nearest"


def test_pickled_code_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = Path("/tmp/brainlesioncl_pwned")
    marker.unlink(missing_ok=True)
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"model": _Evil()}, fh)
    torch.save({"model": {"w": torch.zeros(1)}, "payload": _Evil()}, tmp_path / "evil_zip.pt")
    for candidate in (path, tmp_path / "evil_zip.pt"):
        with pytest.raises(UnsafeCheckpointError, match="never does"):
            import_checkpoint(candidate)
    assert not marker.exists()


def test_foreign_and_mismatched_checkpoints(tmp_path: Path) -> None:
    torch.save({"state": {"fc.weight": torch.zeros(2, 2)}}, tmp_path / "foreign.pt")
    with pytest.raises(IncompatibleWeightsError, match="Not a BrainCL or MultiUnet checkpoint"):
        import_checkpoint(tmp_path / "foreign.pt")
    state = MoEUNet(MoEUNetConfig(channels=TINY_CHANNELS)).state_dict()
    state["decoder.0.1.conv.weight"] = torch.zeros(3, 3, 3, 3, 3)
    torch.save({"model": state}, tmp_path / "broken.pt")
    with pytest.raises(IncompatibleWeightsError, match="wrong shape"):
        import_checkpoint(tmp_path / "broken.pt")
    (tmp_path / "truncated.pt").write_bytes((tmp_path / "foreign.pt").read_bytes()[:100])
    with pytest.raises(CorruptModelError, match="truncated"):
        import_checkpoint(tmp_path / "truncated.pt")


def test_activate_rollback_export(registry: ModelRegistry, tmp_path: Path) -> None:
    state = {"network": MoEUNet(MoEUNetConfig(channels=TINY_CHANNELS)).state_dict()}
    with pytest.raises(ModelNotFoundError, match="No segmentation model"):
        registry.active()
    v1 = registry.add(tiny_metadata(), state)
    v2 = registry.add(tiny_metadata(), state)
    registry.activate(v1)
    registry.activate(v2)
    assert registry.active() == v2
    assert [i.version for i in registry.list() if i.active] == [v2]
    assert registry.rollback() == v1
    assert registry.active() == v1
    with pytest.raises(ModelError, match="Nothing to roll back"):
        registry.rollback()
    exported = registry.export(v2, tmp_path / "export")
    ModelBundle(exported).verify()
    with pytest.raises(ModelNotFoundError, match="known: tiny-v1, tiny-v2"):
        registry.get("tiny-v9")


def test_builtin_models_are_listed_read_only_and_default_active(tmp_path: Path) -> None:
    shipped = tmp_path / "shipped"
    write_bundle(shipped / "demo-v1", tiny_metadata("demo"),
                 {"network": MoEUNet(MoEUNetConfig(channels=TINY_CHANNELS)).state_dict()})
    registry = ModelRegistry(tmp_path / "user", builtin_dirs=[shipped])
    assert registry.active() == "demo-v1"
    assert registry.is_builtin("demo-v1")
    with pytest.raises(VersionExistsError):
        registry.add(tiny_metadata("demo"), {"network": MoEUNet(MoEUNetConfig(channels=TINY_CHANNELS)).state_dict()},
                     version="demo-v1")
    assert registry.next_version_id("demo") == "demo-v2"
