"""Tumour sub-regions: what the whole tumour is made of (enhancing tumour, necrotic/non-enhancing core, oedema).

Neuro-oncology reads a glioma as three nested regions (the BraTS regions): the enhancing tumour ET, the tumour core
TC = enhancing + necrotic/non-enhancing core, and the whole tumour WT = core + oedema. BrainLesionCL answers them in
two steps, as the regions nest:

1. the model's lesion network (the MoE U-Net, unchanged, so published weights load and run exactly as before) says
   **where** the tumour is: the whole tumour;
2. a small sub-region network, an optional component of the bundle (``tumour_subregions``), says **what** each voxel
   of that whole tumour is: the class of highest probability among the three, inside the whole tumour only.

So adding sub-regions never changes the whole-tumour outline or its volume. They are given only for the tumour route
and only when the exam has T1c: enhancement is defined on post-contrast T1, and without it the enhancing part cannot
be told from the rest (the result then says why it has no sub-regions).

Labels follow BraTS 2023 and the metastasis pipeline: 1 necrotic/non-enhancing core, 2 oedema, 3 enhancing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
import torch

from .evaluation.lesions import REGIONS
from .modalities import Modality
from .models.residual_unet import ResidualUNet, ResidualUNetConfig

__all__ = ["CLASS_NAMES", "COMPONENT", "LABEL_CONVENTIONS", "REGION_NAMES", "SubregionModel", "architecture",
           "new_network", "region_volumes", "split_whole_tumour"]

#: The bundle component holding the sub-region network.
COMPONENT = "tumour_subregions"
#: Label value -> what it is.
CLASS_NAMES: dict[int, str] = {1: "necrotic or non-enhancing core", 2: "oedema", 3: "enhancing tumour"}
#: The BraTS regions (each a set of label values) by their usual abbreviation, with their names.
REGION_NAMES: dict[str, str] = {"ET": "enhancing tumour", "TC": "tumour core", "WT": "whole tumour"}
#: How the label files of each annotation protocol map onto the classes above (values not listed are refused).
LABEL_CONVENTIONS: dict[str, dict[int, int]] = {
    # BraTS 2012-2013: 1 necrosis, 2 oedema, 3 non-enhancing tumour, 4 enhancing tumour
    "brats2013": {0: 0, 1: 1, 2: 2, 3: 1, 4: 3},
    # BraTS 2017-2021: 1 necrotic and non-enhancing tumour core, 2 oedema, 4 enhancing tumour
    "brats2018": {0: 0, 1: 1, 2: 2, 4: 3},
    # BraTS 2023 on (and this project's output): 1 core, 2 oedema, 3 enhancing
    "brats2023": {0: 0, 1: 1, 2: 2, 3: 3},
}
#: The sequence sub-regions need.
REQUIRED = Modality.T1C


def architecture(channels: Sequence[int] = (8, 16, 32, 64, 128), in_channels: int = 6) -> dict:
    """The component's architecture as stored in ``bundle.json``: a residual U-Net with one output per class
    (background and the three sub-regions), softmax."""
    config = ResidualUNetConfig(in_channels=in_channels, out_channels=1 + len(CLASS_NAMES), channels=tuple(channels),
                                upsample_mode="trilinear")
    return {"kind": "residual_unet", **config.to_dict()}


def new_network(channels: Sequence[int] = (8, 16, 32, 64, 128), in_channels: int = 6) -> ResidualUNet:
    """An untrained sub-region network of :func:`architecture`."""
    return ResidualUNet(ResidualUNetConfig.from_dict(
        {k: v for k, v in architecture(channels, in_channels).items() if k != "kind"}))


def split_whole_tumour(class_probabilities: Sequence[sitk.Image], whole_tumour: sitk.Image) -> sitk.Image:
    """The sub-region label map: inside the whole tumour (``whole_tumour > 0``) each voxel takes the class (1, 2, 3) of
    highest probability; outside it stays 0. ``class_probabilities`` are the three sub-regions' maps on the whole
    tumour's grid, in label order."""
    stacked = np.stack([sitk.GetArrayFromImage(p) for p in class_probabilities])
    classes = (np.argmax(stacked, axis=0) + 1).astype(np.uint8)
    inside = sitk.GetArrayFromImage(whole_tumour) > 0
    label = sitk.GetImageFromArray(np.where(inside, classes, 0).astype(np.uint8))
    label.CopyInformation(whole_tumour)
    return label


def region_volumes(label: sitk.Image) -> dict[str, float]:
    """Volume (mL) of each BraTS region of a sub-region label map: ET, TC and WT."""
    array = sitk.GetArrayViewFromImage(label)
    voxel_ml = float(np.prod(label.GetSpacing())) / 1000.0
    return {region: float(np.isin(array, values).sum()) * voxel_ml
            for region, values in sorted(REGIONS.items(), key=lambda item: len(item[1]))}


@dataclass
class SubregionModel:
    """The sub-region network of a bundle, run on the same prepared input as the lesion network.

    ``predict`` is :meth:`brainlesioncl.inference.Predictor.predict` of that network with every class's probability
    (the predictor carries the device, precision and memory budget of the segmenter it belongs to).
    """

    predict: Callable[..., np.ndarray]
    channels: Sequence[Modality]

    def can_split(self, present: Sequence[bool]) -> bool:
        """Whether the exam has what sub-regions need (T1c among the channels present)."""
        return REQUIRED in self.channels and bool(present[list(self.channels).index(REQUIRED)])

    def class_probabilities(self, array: np.ndarray, **kwargs) -> np.ndarray:
        """(3, X, Y, Z) probabilities of classes 1, 2, 3 on the prepared grid."""
        context = torch.zeros(1, len(self.channels))  # the residual U-Net takes no context; the predictor passes one
        return self.predict(array, context, **kwargs)[1:]

