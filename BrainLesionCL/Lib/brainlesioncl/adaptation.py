"""Teaching a trained model a modality it never saw, the two ways the MultiUnet paper describes.

* :func:`reassign_channel`: put the new modality in a channel the target data never uses (the reference's way, e.g.
  SWI into the PD slot for a TBI database). No weight changes; the new version's channel order records it, so
  inference maps ``SWI`` to that slot from then on.
* :func:`expand_input_channels`: add new input channels with freshly initialised first-layer filters (the paper's
  alternative). Old channels keep their filters; the MoE gates get zero weights for the new presence flags, so with
  the new modality absent the network computes exactly what it computed before (tested).

Either is followed by ordinary fine-tuning (an episode, or :func:`~brainlesioncl.training.train`), or by
progressive-network fine-tuning (:class:`~brainlesioncl.models.progressive.ProgressiveUNet`).

:func:`adapt_version` does any of the three on a registry version and stores the result as a new version (the parent
is untouched), ready for ``brainlesioncl episode CASES --parent <new version>``; ``brainlesioncl adapt`` is its CLI.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from datetime import datetime, timezone

import torch
from torch import nn

from .errors import ChannelMappingError
from .modalities import resolve_modality
from .models import ModelKind, MoEUNet, ResidualUNet
from .registry import ModelMetadata, ModelRegistry, validate_model_name

__all__ = ["adapt_version", "expand_input_channels", "make_progressive", "reassign_channel"]

#: The first convolution's weight of each network kind (the only tensor that sees the input channels).
_FIRST_LAYER = {MoEUNet: "encoder.0.conv.unit0.conv.weight", ResidualUNet: "conv_1.conv.unit0.conv.weight"}


def reassign_channel(metadata: ModelMetadata, modality: str, slot: str) -> ModelMetadata:
    """A copy of ``metadata`` whose channel ``slot`` now carries ``modality`` (weights unchanged).

    Raises:
        ChannelMappingError: ``slot`` is not a channel of the model, or ``modality`` already has a channel.
    """
    new, old = resolve_modality(modality), resolve_modality(slot)
    channels = [resolve_modality(c) for c in metadata.channels]
    if old not in channels:
        raise ChannelMappingError(f"The model has no {old.value} channel to reassign (it has {metadata.channels}).")
    if new in channels:
        raise ChannelMappingError(f"The model already has a {new.value} channel; nothing to reassign.")
    result = copy.deepcopy(metadata)
    result.channels = [new.value if c is old else c.value for c in channels]
    result.provenance = {**result.provenance, "channel_reassigned": {"slot": old.value, "now": new.value}}
    result.version = None
    return result


def expand_input_channels(network: nn.Module, metadata: ModelMetadata,
                          modalities: Sequence[str]) -> tuple[nn.Module, ModelMetadata]:
    """A new network with ``modalities`` appended to the inputs, and its metadata (channel order extended).

    New first-layer filters are randomly initialised (PyTorch's default for a fresh convolution); for the MoE model,
    the gates' weights for the new presence flags start at zero.
    """
    new = [resolve_modality(m) for m in modalities]
    existing = [resolve_modality(c) for c in metadata.channels]
    if not new or any(m in existing for m in new) or len(set(new)) != len(new):
        raise ChannelMappingError(f"Give modalities the model does not have yet (it has {metadata.channels}).")
    extra = len(new)
    kind = type(network)
    if not isinstance(network, (MoEUNet, ResidualUNet)) or kind not in _FIRST_LAYER:
        raise TypeError(f"cannot expand the inputs of a {kind.__name__}")
    c = network.config.in_channels
    config = dataclasses.replace(network.config, in_channels=c + extra)
    grown = kind(config)
    state = {k: v.clone() for k, v in network.state_dict().items()}
    first = _FIRST_LAYER[kind]
    with torch.no_grad():
        weight = grown.state_dict()[first].clone()  # fresh random filters for the new channels
        weight[:, :c] = state[first]
        state[first] = weight
        for key, value in list(state.items()):
            if key.endswith("gating_network.weight"):  # MoE context = [presence flags (C), disease one-hot]
                zeros = torch.zeros(value.shape[0], extra, dtype=value.dtype)
                state[key] = torch.cat([value[:, :c], zeros, value[:, c:]], dim=1)
    grown.load_state_dict(state)
    architecture = config.to_dict()
    result = copy.deepcopy(metadata)
    result.channels = [m.value for m in existing + new]
    result.architecture = {**result.architecture, "network": architecture}
    result.provenance = {**result.provenance, "inputs_expanded": [m.value for m in new]}
    result.version = None
    return grown, result


def make_progressive(network: nn.Module, metadata: ModelMetadata) -> tuple[nn.Module, ModelMetadata]:
    """A progressive network whose frozen column and new column both start as ``network`` (a residual U-Net)."""
    from .models.progressive import ProgressiveUNet

    if not isinstance(network, ResidualUNet):
        raise ChannelMappingError(
            f"Progressive columns are built from a residual U-Net (MultiUnet); {metadata.version or metadata.name} "
            f"is a {metadata.kind.value} model. Import or train a MultiUnet model first."
        )
    progressive = ProgressiveUNet.from_pretrained(network)
    result = copy.deepcopy(metadata)
    result.kind = ModelKind.PROGRESSIVE_UNET
    result.architecture = {"network": progressive.config.to_dict()}
    result.provenance = {**result.provenance, "progressive": True}
    result.version = None
    return progressive, result


def adapt_version(registry: ModelRegistry, parent: str | None = None, *, reassign: tuple[str, str] | None = None,
                  expand: Sequence[str] = (), progressive: bool = False, name: str | None = None) -> str:
    """Store ``parent`` (default: the active model) adapted to new inputs as a new version; returns its id.

    The steps run in this order, any combination: ``reassign=(new modality, slot)``, ``expand=[new modalities]``,
    ``progressive``. The new version records its parent and what was done; it has learnt nothing yet, so its
    description says to fine-tune it with an episode on cases that have the new modality.
    """
    if reassign is None and not expand and not progressive:
        raise ChannelMappingError("Nothing to adapt: give --reassign NEW=SLOT, --expand MODALITY or --progressive.")
    if name is not None:
        validate_model_name(name)
    bundle = registry.get(parent)
    metadata = copy.deepcopy(bundle.metadata)
    parent_id = metadata.version or bundle.path.name
    if metadata.kind not in (ModelKind.MOE_UNET, ModelKind.RESIDUAL_UNET):
        raise ChannelMappingError(
            f"{parent_id} is a {metadata.kind.value} model; adaptation works on MoE U-Net and residual U-Net versions."
        )
    network = bundle.build()
    metadata.architecture = {"network": dict(metadata.architecture["network"])}  # strategy state does not carry over
    steps = []
    if reassign is not None:
        metadata = reassign_channel(metadata, *reassign)
        steps.append(f"{resolve_modality(reassign[0]).value} in the {resolve_modality(reassign[1]).value} channel")
    if expand:
        network, metadata = expand_input_channels(network, metadata, expand)
        steps.append("new input channels " + ", ".join(resolve_modality(m).value for m in expand))
    if progressive:
        network, metadata = make_progressive(network, metadata)
        steps.append("a frozen column plus a new column with lateral connections")
    metadata.name = name or metadata.name
    metadata.parent = parent_id
    metadata.metrics, metadata.sha256 = {}, {}
    metadata.created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    metadata.description = (f"{parent_id} adapted: {'; '.join(steps)}. Not yet fine-tuned: run `brainlesioncl "
                            "episode CASES --disease D --parent <this version>` on cases with the new input.")
    return registry.add(metadata, {"network": network.state_dict()})
