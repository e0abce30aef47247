"""Importers for the published reference checkpoints, without ever executing pickled code.

* **BrainCL** ``exprience_*.pt``: a ``torch.save`` dict whose ``"model"`` entry is the MoE U-Net state dict (other
  entries: optimizer, episode/epoch counters, grad scaler; ignored).
* **MultiUnet** ``*.pth``: a plain state dict of ``res_unet`` (keys ``conv_1...``, ``up_stage_1...``).
* a ``.safetensors`` file with either layout.

``torch.load`` is always called with ``weights_only=True``: tensors, dicts, lists and numbers load; anything that
would need to import and run a class (a pickled model object, custom code) is refused with
:class:`~brainlesioncl.errors.UnsafeCheckpointError` and never executed.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..errors import CorruptModelError, IncompatibleWeightsError, UnsafeCheckpointError
from ..modalities import BRAINCL_CHANNEL_ORDER, BRAINCL_DISEASE_SLOTS, MULTIUNET_CHANNEL_ORDER, Disease, Modality
from ..models.factory import ModelKind, build_network, infer_moe_config, infer_residual_config, load_strict
from ..models.moe_unet import MoEUNetConfig
from ..models.residual_unet import ResidualUNetConfig
from ..preprocessing.pipeline import PreprocessConfig
from .bundle import ModelMetadata

__all__ = ["CheckpointFormat", "ImportedModel", "read_checkpoint", "detect_format", "import_checkpoint"]

_PREFIXES = ("_orig_mod.", "module.")


class CheckpointFormat:
    BRAINCL = "braincl"
    MULTIUNET = "multiunet"
    AUTO = "auto"


@dataclass
class ImportedModel:
    """A validated network state dict and the metadata to register it with."""

    metadata: ModelMetadata
    state_dict: dict[str, torch.Tensor]


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint file's tensors safely.

    Raises:
        FileNotFoundError: no such file.
        UnsafeCheckpointError: the pickle needs arbitrary classes/code.
        CorruptModelError: truncated or not a checkpoint at all.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CorruptModelError(f"checkpoint not found: {path}") from FileNotFoundError(str(path))
    if path.suffix == ".safetensors":
        try:
            return dict(load_file(str(path), device="cpu"))
        except (SafetensorError, OSError, ValueError) as err:
            raise CorruptModelError(f"{path} is not a readable safetensors file: {err}") from err
    if not _looks_like_torch_file(path):
        raise CorruptModelError(
            f"{path.name} is not a PyTorch checkpoint (neither the zip container torch.save writes nor a legacy "
            "pickle). Check that you downloaded the weight file itself (a .pt/.pth, or a .safetensors export), not a "
            "web page or an archive; a truncated download also looks like this."
        )
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # PyTorch's safe unpickler refuses a class it does not know and a damaged stream alike; both are refused.
        raise UnsafeCheckpointError(
            f"{path.name} was refused: it contains pickled Python objects other than tensors and plain containers "
            f"({_refused_global(err)}). Loading it would execute code from the file, which BrainLesionCL never does. "
            "Ask for a plain state dict or a .safetensors export of the weights (if the file is damaged, download it "
            "again)."
        ) from err
    except Exception as err:  # noqa: BLE001 - torch raises many types for damaged files; none is a bug of ours
        raise CorruptModelError(
            f"{path.name} cannot be read as a PyTorch checkpoint ({type(err).__name__}: {str(err)[:200]}). The file "
            "may be truncated (re-download it) or not be a checkpoint."
        ) from err
    if not isinstance(data, Mapping):
        raise CorruptModelError(f"{path.name} holds a {type(data).__name__}, not a state dict or checkpoint dict.")
    return dict(data)


def _looks_like_torch_file(path: Path) -> bool:
    """True for the zip container of ``torch.save`` and for legacy pickles (protocol marker 0x80 first)."""
    if zipfile.is_zipfile(path):
        return True
    with open(path, "rb") as fh:
        return fh.read(1) == b"\x80"


def _refused_global(err: BaseException) -> str:
    """What PyTorch's safe unpickler refused (a class or an operation), from its message."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for line in lines:
        if line.lower().startswith(("unsupported", "global")) or "global" in line.lower():
            return line[:160]
    return lines[0][:160] if lines else type(err).__name__


def _strip_prefixes(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def _tensor_dict(state: object, where: str) -> dict[str, torch.Tensor]:
    if not isinstance(state, Mapping) or not state:
        raise IncompatibleWeightsError(f"{where} is not a non-empty state dict")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise IncompatibleWeightsError(f"{where} has non-tensor entries: {bad[:5]}")
    return _strip_prefixes(state)


def detect_format(data: Mapping) -> tuple[str, dict[str, torch.Tensor]]:
    """Tell which published layout ``data`` follows and return its network state dict."""
    if "model" in data and isinstance(data["model"], Mapping):
        return CheckpointFormat.BRAINCL, _tensor_dict(data["model"], "checkpoint['model']")
    if all(isinstance(v, torch.Tensor) for v in data.values()):
        state = _strip_prefixes(data)
        if any(k.startswith("encoder.0.conv.unit1.experts.") for k in state):
            return CheckpointFormat.BRAINCL, state
        if any(k.startswith("conv_1.conv.") for k in state):
            return CheckpointFormat.MULTIUNET, state
    keys = ", ".join(list(data)[:6])
    raise IncompatibleWeightsError(
        f"Not a BrainCL or MultiUnet checkpoint (top-level keys: {keys}). Expected a BrainCL exprience_*.pt dict "
        "with a 'model' entry, or a MultiUnet plain state dict (conv_1.*, up_stage_*)."
    )


def import_checkpoint(
    path: str | os.PathLike,
    *,
    fmt: str = CheckpointFormat.AUTO,
    name: str | None = None,
    channels: Sequence[Modality | str] | None = None,
    disease_slots: Sequence[Disease | str] | None = None,
) -> ImportedModel:
    """Read a reference checkpoint, check it loads strictly into our network, and describe it.

    Args:
        path: the downloaded checkpoint.
        fmt: ``"braincl"``, ``"multiunet"`` or ``"auto"`` (detect from the keys).
        name: registry name; defaults to ``braincl`` / ``multiunet``.
        channels: the channel order; defaults to the published order of that model.
        disease_slots: the MoE disease one-hot order; defaults to BrainCL's (tumour, stroke, MS, WMH).

    Raises:
        UnsafeCheckpointError, CorruptModelError, IncompatibleWeightsError.
    """
    path = Path(path)
    data = read_checkpoint(path)
    detected, state = detect_format(data)
    if fmt != CheckpointFormat.AUTO and fmt != detected:
        raise IncompatibleWeightsError(f"{path.name} looks like a {detected} checkpoint, not {fmt}.")

    config: MoEUNetConfig | ResidualUNetConfig
    if detected == CheckpointFormat.BRAINCL:
        config = infer_moe_config(state)
        kind = ModelKind.MOE_UNET
        default_channels: Sequence = BRAINCL_CHANNEL_ORDER
        slots = list(disease_slots) if disease_slots is not None else list(BRAINCL_DISEASE_SLOTS)
        if len(slots) != config.num_disease_slots:
            raise IncompatibleWeightsError(
                f"the gates take {config.num_disease_slots} disease slots but {len(slots)} names were given"
            )
        output = {"activation": "softmax", "lesion_channel": 1}
        preprocessing = PreprocessConfig().to_dict()
        description = "BrainCL mixture-of-experts U-Net imported from a published checkpoint"
    else:
        config = infer_residual_config(state)
        kind = ModelKind.RESIDUAL_UNET
        default_channels = MULTIUNET_CHANNEL_ORDER
        slots = []
        output = {"activation": "sigmoid", "lesion_channel": 0}
        preprocessing = PreprocessConfig(zero_background=False).to_dict()
        description = "MultiUnet residual U-Net imported from a published checkpoint"

    order = list(channels) if channels is not None else list(default_channels)
    if len(order) != config.in_channels:
        raise IncompatibleWeightsError(
            f"the network has {config.in_channels} input channels but the channel order has {len(order)} entries"
        )
    network = build_network(kind, config.to_dict())
    load_strict(network, state)  # proves the layout before anything is registered
    metadata = ModelMetadata(
        name=name or detected,
        kind=kind,
        channels=[str(c) for c in order],
        disease_slots=[str(s) for s in slots],
        architecture={"network": config.to_dict()},
        output=output,
        preprocessing=preprocessing,
        description=description,
        provenance={
            "source": "import",
            "format": detected,
            "file_name": path.name,
            "episode": data.get("episode_idx") if isinstance(data.get("episode_idx"), int) else None,
        },
    )
    return ImportedModel(metadata=metadata, state_dict=network.state_dict())
