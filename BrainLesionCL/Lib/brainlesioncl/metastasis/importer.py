"""Import the published Met-Seg Lightning checkpoints (detector and segmentor) without running code from them.

A Lightning ``.ckpt`` is a pickle holding ``state_dict`` (weights under ``model.``; the segmentor's file also carries
its detector under ``detector.``) and ``hyper_parameters``, which the reference stores as an ``easydict.EasyDict``.
Only the tensors are used. The file is read with ``weights_only=True``; the one non-tensor class allowed is the
config container ``easydict.EasyDict``, which is rebuilt as an inert ``OrderedDict`` (its code is never imported).
Any other class, function or reduce call in the file is refused with
:class:`~brainlesioncl.errors.UnsafeCheckpointError`.
"""

from __future__ import annotations

import collections
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import CorruptModelError, IncompatibleWeightsError, UnsafeCheckpointError
from ..models import load_strict
from ..registry.importers import read_checkpoint
from .networks import DetectorConfig, SegmentorConfig, build_detector, build_segmentor, load_segmentor_state
from .networks import segmentor_state as _segmentor_state
from .training import DEFAULT_CHANNELS, metastasis_metadata

__all__ = ["import_metseg", "read_lightning_state"]


class _InertConfig:
    """Stands in for easydict.EasyDict while unpickling: creating one yields an empty OrderedDict (a container the
    weights-only unpickler may fill), so nothing of easydict is imported and no code from the file runs."""

    def __new__(cls, *args, **kwargs):
        return collections.OrderedDict()


_ALLOWED_CONFIG_CLASSES: list[Any] = [(_InertConfig, "easydict.EasyDict")]


def read_lightning_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of a Lightning checkpoint (or a plain state dict), tensors only."""
    try:
        data = read_checkpoint(path)
    except UnsafeCheckpointError as first:
        try:
            with torch.serialization.safe_globals(_ALLOWED_CONFIG_CLASSES):
                data = torch.load(str(Path(path).expanduser()), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            raise UnsafeCheckpointError(
                f"{Path(path).name} was refused: besides its weights it pickles Python objects that would run code "
                f"({str(err).splitlines()[0][:160]}). Only tensors and EasyDict configs are accepted."
            ) from first
    state = data.get("state_dict", data) if isinstance(data, Mapping) else None
    if not isinstance(state, Mapping) or not state:
        raise CorruptModelError(f"{Path(path).name} holds no state_dict.")
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def _part(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def import_metseg(detector_file: str | os.PathLike, segmentor_file: str | os.PathLike, *,
                  channels: tuple[str, ...] = DEFAULT_CHANNELS, name: str = "metseg"):
    """Metadata and state dicts (``detector``, ``segmentor``) of the published pair, loaded strictly.

    ``channels`` is the input order the weights were trained with: (FLAIR, T1c, T1) for the reference's best
    "t1c+t1+flair" model; the full-modality model's order is not published, so it must be given explicitly.

    Raises:
        IncompatibleWeightsError: the tensors do not fit DenseNet121 / the reference DynUNet.
    """
    detector_state = _part(read_lightning_state(detector_file), "model.")
    segmentor_all = read_lightning_state(segmentor_file)
    segmentor_state = _part(segmentor_all, "model.")
    if not detector_state or not segmentor_state:
        raise IncompatibleWeightsError("expected weights under 'model.' (a Met-Seg Lightning checkpoint)")
    in_channels = int(detector_state["features.conv0.weight"].shape[1]) if "features.conv0.weight" in \
        detector_state else len(channels)
    if in_channels != len(channels):
        raise IncompatibleWeightsError(
            f"the detector takes {in_channels} channels but {len(channels)} were named ({channels}); give the "
            "channel order the weights were trained with."
        )
    detector_config = DetectorConfig(in_channels=in_channels)
    segmentor_config = SegmentorConfig(in_channels=in_channels)
    load_strict(build_detector(detector_config), detector_state)
    segmentor = build_segmentor(segmentor_config)
    load_segmentor_state(segmentor, segmentor_state)
    segmentor_state = _segmentor_state(segmentor)
    metadata = metastasis_metadata(
        name, detector_config, segmentor_config, channels=channels,
        description="Published Met-Seg detector + segmentor (BraTS-METS 2023), imported.",
        provenance={"source": "Met-Seg Lightning checkpoints", "detector_file": Path(detector_file).name,
                    "segmentor_file": Path(segmentor_file).name},
    )
    return metadata, {"detector": detector_state, "segmentor": segmentor_state}
