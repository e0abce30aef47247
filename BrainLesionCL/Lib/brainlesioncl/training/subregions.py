"""Training the tumour sub-region network (:mod:`brainlesioncl.subregions`) and adding it to a model version.

The network learns from cases annotated with sub-regions (BraTS labels of any year, mapped by
:data:`~brainlesioncl.subregions.LABEL_CONVENTIONS`) with the project's one training loop
(:func:`~brainlesioncl.training.trainer.train`: random crops, half on the tumour, DiceCE over the four classes,
random modality drop that never drops T1c, resumable checkpoints, progress and cancel). The lesion network is not
involved: the sub-region network reads only the images, so it can be added to any MoE model version, and episodes
carry it to their children unchanged.
"""

from __future__ import annotations

import copy
import datetime
import os
from collections.abc import Callable, Sequence
from dataclasses import replace

import SimpleITK as sitk
import torch

from ..errors import InvalidImageError, SettingsError
from ..modalities import ByChannel, Disease, Modality, resolve_modality
from ..models.residual_unet import ResidualUNet
from ..preprocessing.pipeline import PreprocessConfig
from ..registry import ModelRegistry
from ..subregions import COMPONENT, LABEL_CONVENTIONS, REQUIRED, architecture, new_network
from .data import TrainingCase, load_training_case
from .trainer import TrainConfig, TrainResult, train

__all__ = ["load_subregion_case", "train_subregions", "with_subregions"]


def load_subregion_case(
    name: str,
    images: ByChannel[sitk.Image | str | os.PathLike],
    label: sitk.Image | str | os.PathLike,
    convention: str,
    channel_order: Sequence[Modality | str],
    *,
    preprocessing: PreprocessConfig | None = None,
) -> TrainingCase:
    """One case annotated with sub-regions, its label mapped to classes 1-3 by ``convention`` (``brats2013``,
    ``brats2018`` or ``brats2023``), prepared as the lesion network's cases are."""
    if convention not in LABEL_CONVENTIONS:
        raise SettingsError(f"unknown sub-region label convention {convention!r}; use one of "
                            f"{sorted(LABEL_CONVENTIONS)}")
    return load_training_case(name, images, label, Disease.TUMOUR, channel_order, preprocessing=preprocessing,
                              label_values=LABEL_CONVENTIONS[convention])


def train_subregions(
    cases: Sequence[TrainingCase],
    channel_order: Sequence[Modality | str],
    config: TrainConfig,
    *,
    widths: Sequence[int] = (8, 16, 32, 64, 128),
    device: str | torch.device = "auto",
    progress: Callable[[dict], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    checkpoint_path: str | os.PathLike | None = None,
) -> tuple[ResidualUNet, TrainResult]:
    """A new sub-region network trained on ``cases`` (every one must have T1c); returns it in eval mode and the
    training history. ``config``'s activation and kept channel are set here (softmax; T1c never dropped)."""
    order = [resolve_modality(c) for c in channel_order]
    if REQUIRED not in order:
        raise SettingsError(f"the channel order {[m.value for m in order]} has no T1c: sub-regions need it")
    t1c = order.index(REQUIRED)
    lacking = [case.name for case in cases if not case.present[t1c]]
    if lacking:
        raise InvalidImageError(f"cases {lacking} have no T1c; tumour sub-regions are learnt only from exams with "
                                "T1c (enhancement is read on post-contrast T1).")
    network = new_network(widths, in_channels=len(order))
    result = train(network, cases, replace(config, activation="softmax", never_drop=(t1c,)), [], device=device,
                   progress=progress, cancel=cancel, checkpoint_path=checkpoint_path)
    return network, result


def with_subregions(registry: ModelRegistry, version: str, network: ResidualUNet, *,
                    training: dict | None = None) -> str:
    """A new version of ``version`` (same name, next number) holding everything it holds plus the sub-region
    network; the source version is never changed. Returns the new version id."""
    bundle = registry.get(version)
    metadata = copy.deepcopy(bundle.metadata)
    if len(metadata.channels) != network.config.in_channels:
        raise SettingsError(f"{version} has {len(metadata.channels)} channels, the sub-region network "
                            f"{network.config.in_channels}: they must read the same channels.")
    state_dicts = {component: bundle.state_dict(component) for component in metadata.architecture}
    state_dicts[COMPONENT] = {k: v.detach().cpu() for k, v in network.state_dict().items()}
    metadata.architecture[COMPONENT] = architecture(network.config.channels, network.config.in_channels)
    metadata.parent, metadata.version, metadata.sha256 = version, None, {}
    metadata.created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    metadata.description = f"{bundle.metadata.description} With tumour sub-regions (ET, TC, WT)."
    metadata.training = {**metadata.training, "tumour_subregions": dict(training or {})}
    return registry.add(metadata, state_dicts)
