"""The MoE U-Net and the residual U-Net match the published architectures and key layouts."""

from __future__ import annotations

import re

import pytest
import torch

from brainlesioncl.errors import IncompatibleWeightsError
from brainlesioncl.models import (
    MoEUNet,
    MoEUNetConfig,
    ResidualUNet,
    ResidualUNetConfig,
    infer_moe_config,
    infer_residual_config,
    load_strict,
)

from conftest import TINY_CHANNELS, shared_path

# The published BrainCL network, described without any shared file: 141 tensors, 18,380,347 parameters.
BRAINCL_PARAMETERS = 18_380_347
MULTIUNET_PARAMETERS = 8_900_930


def _expected_braincl_keys() -> list[str]:
    keys = []
    for n in range(5):
        keys += [f"encoder.{n}.conv.unit0.conv.weight", f"encoder.{n}.conv.unit0.conv.bias",
                 f"encoder.{n}.conv.unit0.adn.A.weight"]
        for k in range(4):
            keys += [f"encoder.{n}.conv.unit1.experts.{k}.{p}" for p in ("conv.weight", "conv.bias", "adn.A.weight")]
        keys += [f"encoder.{n}.conv.unit1.gating_network.weight", f"encoder.{n}.conv.unit1.gating_network.bias"]
    for j in range(3):
        keys += [f"decoder.{j}.1.conv.weight", f"decoder.{j}.1.conv.bias", f"decoder.{j}.1.adn.A.weight"]
        for k in range(4):
            keys += [f"decoder.{j}.2.experts.{k}.{p}" for p in ("conv.weight", "conv.bias", "adn.A.weight")]
        keys += [f"decoder.{j}.2.gating_network.weight", f"decoder.{j}.2.gating_network.bias"]
    keys += ["decoder.3.1.conv.weight", "decoder.3.1.conv.bias", "decoder.3.1.adn.A.weight",
             "decoder.3.2.conv.weight", "decoder.3.2.conv.bias"]
    return keys


def _parse_key_listing(path) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^(\S+\.\S+) \(([\d, ]*)\)$", line.strip())
        if match:
            shapes[match[1]] = tuple(int(v) for v in match[2].split(",") if v.strip())
    return shapes


def test_moe_unet_key_layout_and_parameter_count() -> None:
    model = MoEUNet()
    assert list(model.state_dict()) == _expected_braincl_keys()
    assert len(model.state_dict()) == 141
    assert sum(p.numel() for p in model.parameters()) == BRAINCL_PARAMETERS
    assert len(model.moe_layers()) == 8
    assert all(layer.num_experts == 4 and layer.gating_network.in_features == 10 for layer in model.moe_layers())


def test_residual_unet_parameter_count() -> None:
    model = ResidualUNet()
    assert len(model.state_dict()) == 53
    assert sum(p.numel() for p in model.parameters()) == MULTIUNET_PARAMETERS


@pytest.mark.parametrize(
    ("listing", "factory"),
    [("braincl_checkpoint_keys.txt", MoEUNet), ("multiunet_checkpoint_keys.txt", ResidualUNet)],
)
def test_reference_key_listing_loads_strictly(listing: str, factory) -> None:
    shapes = _parse_key_listing(shared_path("reference", listing))
    state = {key: torch.randn(shape) for key, shape in shapes.items()}
    model = factory()
    model.load_state_dict(state, strict=True)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key])


def test_forward_shapes_and_bottleneck() -> None:
    model = MoEUNet(MoEUNetConfig(channels=TINY_CHANNELS)).eval()
    x, ctx = torch.randn(2, 6, 32, 48, 32), torch.rand(2, 10)
    logits, feature = model(x, ctx, give_feature=True)
    assert logits.shape == (2, 2, 32, 48, 32)
    assert feature.shape == (2, TINY_CHANNELS[-1], 2, 3, 2)


def test_fused_experts_equal_the_expert_loop() -> None:
    model = MoEUNet(MoEUNetConfig(channels=TINY_CHANNELS)).eval()
    x, ctx = torch.randn(1, 6, 32, 32, 32), torch.rand(1, 10)
    with torch.no_grad():
        fused = model(x, ctx)
        for layer in model.moe_layers():
            layer.fused = False
        looped = model(x, ctx)
    assert torch.allclose(fused, looped, atol=1e-4)


def test_fused_experts_gradients_match_loop() -> None:
    torch.manual_seed(1)
    model = MoEUNet(MoEUNetConfig(channels=TINY_CHANNELS)).eval()  # eval: no dropout randomness
    x, ctx = torch.randn(1, 6, 32, 32, 32), torch.rand(1, 10)
    model(x, ctx).sum().backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    for layer in model.moe_layers():
        layer.fused = False
    model(x, ctx).sum().backward()
    for name, p in model.named_parameters():
        if name.endswith("conv.bias") and name != "decoder.3.2.conv.bias":
            # InstanceNorm removes a conv bias, so its true gradient is 0 and both paths give only rounding noise.
            continue
        relative = (grads[name] - p.grad).norm() / p.grad.norm().clamp_min(1e-12)
        assert relative < 1e-3, name


def test_context_changes_the_output() -> None:
    model = MoEUNet(MoEUNetConfig(channels=TINY_CHANNELS)).eval()
    x = torch.randn(1, 6, 32, 32, 32)
    a = torch.tensor([[0, 1, 0, 1, 1, 1, 1, 0, 0, 0]], dtype=torch.float32)
    b = torch.tensor([[0, 1, 0, 1, 1, 1, 0, 0, 0, 1]], dtype=torch.float32)
    with torch.no_grad():
        assert not torch.allclose(model(x, a), model(x, b))


def test_residual_shortcut_is_added_to_first_input_channels() -> None:
    """The parameter-free shortcut: zeroing every conv leaves exactly the pooled input in channels 0..C_in-1."""
    model = MoEUNet(MoEUNetConfig(channels=TINY_CHANNELS)).eval()
    unit = model.encoder[0]
    for p in unit.parameters():
        torch.nn.init.zeros_(p)
    x = torch.randn(1, 6, 16, 16, 16)
    out = unit(x, torch.zeros(1, 10))
    pooled = torch.nn.functional.avg_pool3d(x, 3, 2, 1)
    assert torch.allclose(out[:, :6], pooled, atol=1e-6)
    assert torch.count_nonzero(out[:, 6:]) == 0


@pytest.mark.parametrize(
    "config",
    [
        MoEUNetConfig(channels=(8, 16, 32, 64, 128), num_experts=2),
        MoEUNetConfig(channels=(16, 32, 64, 128, 256), num_experts=6, num_disease_slots=6),
        MoEUNetConfig(in_channels=8, channels=(8, 8, 16, 16, 32), num_experts=3, num_disease_slots=5),
    ],
)
def test_configurable_variants_round_trip_through_inference(config: MoEUNetConfig) -> None:
    state = MoEUNet(config).state_dict()
    inferred = infer_moe_config(state)
    assert inferred == config
    rebuilt = MoEUNet(inferred)
    load_strict(rebuilt, state)


def test_residual_config_inferred() -> None:
    config = ResidualUNetConfig(channels=(8, 8, 16, 16, 32))
    assert infer_residual_config(ResidualUNet(config).state_dict()) == config


def test_load_strict_names_the_problem() -> None:
    model = MoEUNet(MoEUNetConfig(channels=TINY_CHANNELS))
    state = dict(model.state_dict())
    state.pop("decoder.3.2.conv.bias")
    state["encoder.0.conv.unit0.conv.weight"] = torch.zeros(3, 3, 3, 3, 3)
    state["extra.weight"] = torch.zeros(1)
    expected = r"1 missing: decoder\.3\.2\.conv\.bias.*1 unexpected.*wrong shape"
    with pytest.raises(IncompatibleWeightsError, match=expected):
        load_strict(model, state)


@pytest.mark.parametrize(
    "kwargs",
    [dict(channels=(8, 8, 16)), dict(channels=(16, 8, 16, 32, 64)), dict(upsample_mode="cubic"), dict(in_channels=0)],
)
def test_invalid_configs_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        MoEUNetConfig(**kwargs)


def test_spatial_size_must_be_multiple_of_16() -> None:
    model = MoEUNet(MoEUNetConfig(channels=TINY_CHANNELS))
    with pytest.raises(ValueError, match="multiple of 16"):
        model(torch.zeros(1, 6, 30, 32, 32), torch.zeros(1, 10))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_forward_matches_cpu() -> None:
    model = MoEUNet(MoEUNetConfig(channels=TINY_CHANNELS)).eval()
    x, ctx = torch.randn(1, 6, 32, 32, 32), torch.rand(1, 10)
    with torch.no_grad():
        cpu = model(x, ctx)
        gpu = model.cuda()(x.cuda(), ctx.cuda()).cpu()
    assert torch.allclose(cpu, gpu, atol=1e-3)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.123456789])
def test_dropout_mask_has_dropouts_distribution_and_scaling(p: float) -> None:
    """The cheaper CPU mask keeps each value with probability 1 - p (for p = k/n exactly; other p use F.dropout),
    scales kept values by 1 / (1 - p) as F.dropout does, lets gradients through only where it keeps, and does
    nothing outside training."""
    from brainlesioncl.models.blocks import Dropout, dropout

    torch.manual_seed(0)
    x = torch.rand(400_000) + 0.5
    x.requires_grad_(True)
    y = dropout(x, p, training=True)
    kept = y != 0
    assert abs(float(kept.float().mean()) - (1 - p)) < 0.005
    assert torch.allclose(y[kept], x[kept] / (1 - p))
    y.sum().backward()
    assert torch.equal(x.grad != 0, kept)
    assert dropout(x, p, training=False) is x
    module = Dropout(p).eval()
    assert module(x) is x and not list(module.parameters())
