"""New modalities: channel reassignment, first-layer expansion, and progressive columns."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cl_helpers import write_cases

from brainlesioncl.adaptation import adapt_version, expand_input_channels, reassign_channel
from brainlesioncl.cli.main import main
from brainlesioncl.errors import ChannelMappingError
from brainlesioncl.modalities import map_channels
from brainlesioncl.models import ModelKind, MoEUNet, MoEUNetConfig, ResidualUNet, ResidualUNetConfig, build_network
from brainlesioncl.models.progressive import ProgressiveUNet
from brainlesioncl.registry import ModelMetadata
from brainlesioncl.training import TrainConfig, case_from_arrays, train

from conftest import TINY_CHANNELS, tiny_metadata

MULTIUNET_CHANNELS = ["PD", "FLAIR", "SWI", "T1", "T1c", "T2"]


def _residual_metadata() -> ModelMetadata:
    return ModelMetadata(name="mu", kind=ModelKind.RESIDUAL_UNET, channels=MULTIUNET_CHANNELS, disease_slots=[],
                         architecture={"network": ResidualUNetConfig(channels=TINY_CHANNELS).to_dict()},
                         output={"activation": "sigmoid", "lesion_channel": 0})


def test_reassigned_channel_routes_the_new_modality_to_the_old_slot() -> None:
    metadata = tiny_metadata()
    assert "SWI" not in metadata.channels
    moved = reassign_channel(metadata, "SWI", "PD")
    assert moved.channels[metadata.channels.index("PD")] == "SWI" and "PD" not in moved.channels
    mapped = map_channels({"swi": "swi.nii.gz", "FLAIR": "flair.nii.gz"}, moved.channels)
    assert list(mapped) == [m for m in moved.channel_order if m.value in ("FLAIR", "SWI")]
    assert metadata.channels[2] == "PD"  # the original is untouched
    with pytest.raises(ChannelMappingError):
        reassign_channel(metadata, "T1", "PD")  # T1 already has a channel
    with pytest.raises(ChannelMappingError):
        reassign_channel(metadata, "SWI", "ADC")


@pytest.mark.parametrize("kind", ["moe", "residual"])
def test_expanded_inputs_leave_old_outputs_unchanged_at_initialisation(kind: str) -> None:
    torch.manual_seed(0)
    if kind == "moe":
        network, metadata = MoEUNet(MoEUNetConfig(channels=TINY_CHANNELS)).eval(), tiny_metadata()
        context = torch.tensor([[0, 1, 0, 1, 0, 0, 1, 0, 0, 0]], dtype=torch.float32)
    else:
        network, metadata = ResidualUNet(ResidualUNetConfig(channels=TINY_CHANNELS)).eval(), _residual_metadata()
        context = None
    x = torch.randn(1, 6, 32, 32, 32)
    grown, new_metadata = expand_input_channels(network, metadata, ["ADC"])
    grown.eval()
    assert new_metadata.channels == [*metadata.channels, "ADC"]
    assert new_metadata.architecture["network"]["in_channels"] == 7
    x7 = torch.cat([x, torch.zeros(1, 1, 32, 32, 32)], dim=1)
    if context is not None:  # the presence flag of the new channel sits between the old flags and the disease
        context7 = torch.cat([context[:, :6], torch.zeros(1, 1), context[:, 6:]], dim=1)
        before, after = network(x, context), grown(x7, context7)
        with_adc = grown(torch.cat([x, torch.randn(1, 1, 32, 32, 32)], 1),
                         torch.cat([context[:, :6], torch.ones(1, 1), context[:, 6:]], 1))
    else:
        before, after = network(x), grown(x7)
        with_adc = grown(torch.cat([x, torch.randn(1, 1, 32, 32, 32)], 1))
    assert torch.allclose(before, after, atol=1e-5)  # the new channel absent: exactly the old network
    assert not torch.allclose(before, with_adc, atol=1e-3)  # present: the new filters are live
    rebuilt = build_network(new_metadata.kind, new_metadata.architecture["network"])
    rebuilt.load_state_dict(grown.state_dict())  # the recorded architecture matches the weights


def test_progressive_columns_start_equal_and_the_frozen_one_never_changes() -> None:
    torch.manual_seed(0)
    pretrained = ResidualUNet(ResidualUNetConfig(channels=TINY_CHANNELS)).eval()
    progressive = ProgressiveUNet.from_pretrained(pretrained)
    x = torch.randn(2, 6, 32, 32, 32)
    with torch.no_grad():
        assert torch.allclose(progressive.eval()(x), pretrained(x), atol=1e-5)
    frozen_before = {k: v.clone() for k, v in progressive.frozen.state_dict().items()}
    column_before = {k: v.clone() for k, v in progressive.column.state_dict().items()}
    rng = np.random.default_rng(0)
    cases = []
    for i in range(2):
        image = np.zeros((6, 32, 32, 32), np.float32)
        lesion = np.zeros((32, 32, 32), np.uint8)
        lesion[8:16, 8:16, 8:16] = 1
        image[2] = rng.standard_normal((32, 32, 32)) * 0.1 + 2 * lesion  # the new modality (SWI slot)
        cases.append(case_from_arrays(f"tbi{i}", image, lesion, [False, False, True, False, False, False], "unknown"))
    train(progressive, cases, TrainConfig(epochs=2, steps_per_epoch=2, crop_size=32, activation="sigmoid",
                                          precision="fp32", modality_drop=False), [], device="cpu")
    assert all(torch.equal(frozen_before[k], v) for k, v in progressive.frozen.state_dict().items())
    assert any(not torch.equal(column_before[k], v) for k, v in progressive.column.state_dict().items())
    assert any(float(lateral.weight.detach().abs().sum()) > 0 for lateral in progressive.encoder_laterals)
    rebuilt = build_network(ModelKind.PROGRESSIVE_UNET, progressive.config.to_dict())
    rebuilt.load_state_dict(progressive.state_dict())


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_adapt_command_reassigns_then_expands_and_an_episode_learns_the_new_input(
        tmp_path, registry, tiny_version, capsys) -> None:
    parent_weights = registry.get(tiny_version).state_dict()
    assert main(["--registry", str(registry.root), "adapt", "--reassign", "SWI=PD"]) == 0
    moved = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    bundle = registry.get(moved["version"])
    assert bundle.metadata.parent == tiny_version and bundle.metadata.channels[2] == "SWI"
    assert _same_weights(bundle.state_dict(), parent_weights)  # reassignment changes no weight
    assert "Not yet fine-tuned" in bundle.metadata.description

    expanded = adapt_version(registry, moved["version"], expand=["ADC"])
    meta = registry.get(expanded).metadata
    assert meta.channels == [*bundle.metadata.channels, "ADC"] and meta.parent == moved["version"]
    cases = write_cases(tmp_path / "cases", 3, disease="tumour", extra={"adc": 1, "swi": 3})
    code = main(["--registry", str(registry.root), "episode", str(cases), "--disease", "tumour", "--parent", expanded,
                 "--strategy", "naive", "--epochs", "1", "--crop-size", "32", "--validation-fraction", "0",
                 "--progress", "json"])
    assert code == 0
    learnt = registry.get(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["version"]).metadata
    assert learnt.channels == meta.channels and {"ADC", "SWI"} <= set(learnt.training["modalities"])
    assert _same_weights(registry.get(tiny_version).state_dict(), parent_weights)  # parents untouched


def test_progressive_version_fine_tunes_its_new_column_only(tmp_path, registry, capsys) -> None:
    torch.manual_seed(0)
    parent = registry.add(_residual_metadata(), {"network": ResidualUNet(ResidualUNetConfig(channels=TINY_CHANNELS))
                                                .state_dict()})
    parent_weights = registry.get(parent).state_dict()
    progressive = adapt_version(registry, parent, progressive=True)
    assert registry.get(progressive).metadata.kind is ModelKind.PROGRESSIVE_UNET
    cases = write_cases(tmp_path / "cases", 3, disease="tumour")
    common = ["--registry", str(registry.root), "episode", str(cases), "--disease", "tumour", "--parent",
              progressive, "--epochs", "1", "--crop-size", "32", "--validation-fraction", "0", "--progress", "json"]
    assert main([*common, "--strategy", "lwf"]) == 2  # distillation needs a MoE model: refused with the fix
    assert "--strategy naive" in capsys.readouterr().err
    assert main([*common, "--strategy", "naive"]) == 0
    version = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["version"]
    learnt = registry.get(version)
    assert learnt.metadata.kind is ModelKind.PROGRESSIVE_UNET and learnt.metadata.parent == progressive
    weights = learnt.state_dict()
    frozen = {k.removeprefix("frozen."): v for k, v in weights.items() if k.startswith("frozen.")}
    column = {k.removeprefix("column."): v for k, v in weights.items() if k.startswith("column.")}
    assert _same_weights(frozen, parent_weights) and not _same_weights(column, parent_weights)


def test_adapt_refuses_what_it_cannot_do(registry, tiny_version) -> None:
    with pytest.raises(ChannelMappingError, match="Nothing to adapt"):
        adapt_version(registry, tiny_version)
    with pytest.raises(ChannelMappingError, match="residual U-Net"):
        adapt_version(registry, tiny_version, progressive=True)
    assert main(["--registry", str(registry.root), "adapt", "--reassign", "SWI"]) == 2
