"""From mapped input volumes to a network-ready array, and from a probability map back to the user's grid.

Steps (each invertible where it has to be):

1. choose the **reference volume** (the user's choice, else the first mapped channel in the order given);
2. build the **working grid**: 1 mm isotropic RAS over the reference's field of view (what the weights were trained
   on), or the reference volume's own grid;
3. **resample** every channel physically onto the working grid (linear, zero outside its field of view);
4. **z-score** each channel over its nonzero voxels, background 0 (a background that is a nonzero constant, as in
   images exported already z-scored, is recognised at the border and set to 0 first);
5. **crop** to the bounding box of the nonzero voxels (+ margin) and **pad** to a multiple of 16;
6. after inference, :meth:`PreparedCase.restore` un-pads, un-crops and resamples the lesion probability onto the
   reference volume's **original** grid (size, spacing, origin, direction), where it is thresholded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import Enum

import numpy as np
import SimpleITK as sitk

from ..errors import GeometryError, InvalidImageError
from ..io.image_io import from_xyz, to_xyz
from ..modalities import ByChannel, Modality, resolve_modality
from .geometry import check_field_of_view, check_overlap, ras_grid, resample_onto, same_geometry
from .intensity import constant_background_value, zscore_nonzero

__all__ = ["GridMode", "PreprocessConfig", "PreparedCase", "prepare_case"]

logger = logging.getLogger(__name__)


class GridMode(str, Enum):
    """Where the network runs: on a 1 mm RAS grid (as trained) or on the reference volume's own grid."""

    RAS_1MM = "ras1mm"
    REFERENCE = "reference"


@dataclass(frozen=True)
class PreprocessConfig:
    """Preprocessing settings; stored in model bundles so inference matches training.

    Args:
        grid: :class:`GridMode` value.
        spacing: working-grid spacing in mm when ``grid`` is ``ras1mm``.
        crop_foreground: crop to the nonzero bounding box before inference (the fast path; the reference protocol
            runs on the whole grid).
        margin: voxels kept around the foreground box. Background is exactly 0 after normalisation, which is also
            what the convolutions pad with, so a small margin loses nothing and saves compute.
        divisible: pad the cropped box to a multiple of this (16 for four stride-2 stages).
        min_size: pad every axis to at least this (the shortcut pooling of the 4th unit needs >= 32 voxels).
        zero_background: keep background voxels at 0 after z-scoring (BrainCL); False shifts them too (MultiUnet).
    """

    grid: GridMode | str = GridMode.RAS_1MM
    spacing: float = 1.0
    crop_foreground: bool = True
    margin: int = 2
    divisible: int = 16
    min_size: int = 32
    zero_background: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "grid", GridMode(self.grid))
        if self.spacing <= 0 or self.margin < 0 or self.divisible < 1:
            raise ValueError(f"invalid preprocessing config: {self}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["grid"] = GridMode(self.grid).value
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> PreprocessConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass
class PreparedCase:
    """A case ready for the network, plus what is needed to put the result back.

    Attributes:
        array: (C, X, Y, Z) float32 in the model's channel order; absent channels are zeros.
        present: per channel, whether the user supplied it (the modality flags of the context vector).
        reference: the reference volume as given (its geometry is the output geometry).
        grid: the working grid (geometry only).
        box: (start, stop) voxel indices of the cropped box inside the working grid.
        pad: (before, after) zero padding per axis applied after cropping.
    """

    array: np.ndarray
    present: list[bool]
    reference: sitk.Image
    grid: sitk.Image
    box: tuple[tuple[int, int, int], tuple[int, int, int]]
    pad: tuple[tuple[int, int], ...]
    #: The (dilated) brain mask on the prepared array's voxels when a raw exam was brain-extracted, else None.
    brain: np.ndarray | None = None

    def restore(self, probability: np.ndarray) -> sitk.Image:
        """Map a lesion probability (X, Y, Z) on the padded crop back onto the reference's original grid.

        Returns a float32 image with exactly the reference volume's size, spacing, origin and direction. Outside
        the cropped box the probability is 0.
        """
        expected = self.array.shape[1:]
        if tuple(probability.shape) != tuple(expected):
            raise ValueError(f"probability shape {probability.shape} != prepared shape {expected}")
        inner = probability[tuple(slice(b, s - a) for (b, a), s in zip(self.pad, probability.shape, strict=True))]
        full = np.zeros(self.grid.GetSize(), dtype=np.float32)
        (x0, y0, z0), (x1, y1, z1) = self.box
        full[x0:x1, y0:y1, z0:z1] = inner
        on_grid = from_xyz(full, self.grid)
        return resample_onto(on_grid, self.reference, interpolator=sitk.sitkLinear)

    def project_label(self, label: sitk.Image) -> np.ndarray:
        """A label image moved onto the prepared array's voxels (nearest neighbour, cropped and padded alike).

        Used to train on a case: the label follows exactly the same resampling, crop and padding as the images.
        """
        on_grid = to_xyz(resample_onto(label, self.grid, interpolator=sitk.sitkNearestNeighbor))
        (x0, y0, z0), (x1, y1, z1) = self.box
        cropped = on_grid[x0:x1, y0:y1, z0:z1]
        return np.pad(cropped, self.pad).astype(np.uint8)


def prepare_case(
    images: ByChannel[sitk.Image],
    channel_order: Sequence[Modality | str],
    *,
    reference: Modality | str | None = None,
    config: PreprocessConfig | None = None,
    transforms: Mapping[Modality, sitk.Transform] | None = None,
    brain_mask: sitk.Image | None = None,
    mask_transform: sitk.Transform | None = None,
) -> PreparedCase:
    """Resample, normalise and crop mapped volumes into one network input.

    Args:
        images: ``{modality: image}``, already validated and mapped
            (see :func:`~brainlesioncl.modalities.map_channels`).
        channel_order: the model's channel order.
        reference: which input defines the output geometry; defaults to the first entry of ``images``.
        config: preprocessing settings.
        transforms: per modality, the rigid transform from the reference into that sequence (co-registration);
            composed with the resampling onto the working grid, so each sequence is interpolated once.
        brain_mask: a brain mask (on its own grid, reached through ``mask_transform``): channels are zeroed outside
            it (dilated by 3 mm) and :attr:`PreparedCase.brain` keeps it for the output.

    Raises:
        GeometryError: a channel does not overlap the reference in physical space.
        InvalidImageError: nothing is left after resampling (e.g. the reference is all background).
    """
    config = config or PreprocessConfig()
    if not images:
        raise InvalidImageError("No image to preprocess.")
    order = [resolve_modality(c) for c in channel_order]
    by_modality = {resolve_modality(k): v for k, v in images.items()}
    ref_modality = resolve_modality(reference) if reference is not None else next(iter(by_modality))
    if ref_modality not in by_modality:
        raise GeometryError(
            f"The reference volume {ref_modality.value} is not among the inputs "
            f"({', '.join(m.value for m in by_modality)}); pick one of those."
        )
    reference_image = by_modality[ref_modality]
    for modality, image in by_modality.items():  # before any grid is allocated
        check_field_of_view(image, modality.value, config.spacing)
    if config.grid is GridMode.RAS_1MM:
        grid = ras_grid(reference_image, config.spacing)
    else:
        grid = sitk.Image(reference_image.GetSize(), sitk.sitkUInt8)
        grid.CopyInformation(reference_image)

    brain = None
    if brain_mask is not None:
        on_grid = sitk.Resample(sitk.Cast(brain_mask > 0, sitk.sitkUInt8), grid,
                                mask_transform or sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        radius = max(1, int(round(3.0 / config.spacing))) if config.grid is GridMode.RAS_1MM else 2
        brain = to_xyz(sitk.BinaryDilate(on_grid, (radius,) * 3)).astype(bool)
    channels = np.zeros((len(order), *grid.GetSize()), dtype=np.float32)
    foreground = np.zeros(grid.GetSize(), dtype=bool)
    present = [False] * len(order)
    for modality, image in by_modality.items():
        if modality not in order:
            raise GeometryError(f"{modality.value} is not a channel of this model ({[m.value for m in order]}).")
        if not same_geometry(image, reference_image):
            coverage = check_overlap(image, reference_image, modality.value, f"the reference ({ref_modality.value})")
            if coverage < 0.5:
                logger.warning(
                    "%s covers only %.0f%% of the reference volume's field of view; the rest is treated as missing.",
                    modality.value, 100 * coverage,
                )
        background = constant_background_value(sitk.GetArrayViewFromImage(image))
        if background is not None:
            logger.info("%s: background is the constant %g; treating it as 0", modality.value, background)
            image = sitk.Mask(image, sitk.Cast(image != background, sitk.sitkUInt8))
        transform = (transforms or {}).get(modality)
        resampled = to_xyz(resample_onto(image, grid, interpolator=sitk.sitkLinear) if transform is None else
                           sitk.Resample(image, grid, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32))
        if brain is not None:
            resampled = resampled * brain
        if not np.any(resampled):
            raise GeometryError(
                f"{modality.value} has no signal inside the reference volume's field of view after resampling. "
                "Check that the volumes belong to the same study."
            )
        index = order.index(modality)
        foreground |= resampled != 0
        channels[index] = zscore_nonzero(resampled, zero_background=config.zero_background)
        present[index] = True

    start, stop = _foreground_box(foreground, config)
    cropped = channels[:, start[0] : stop[0], start[1] : stop[1], start[2] : stop[2]]
    pad = tuple(_pad_amounts(n, config.divisible, config.min_size) for n in cropped.shape[1:])
    padded = np.pad(cropped, ((0, 0), *pad)) if any(sum(p) for p in pad) else cropped
    brain_box = None
    if brain is not None:
        brain_box = np.pad(brain[start[0] : stop[0], start[1] : stop[1], start[2] : stop[2]], pad)
    return PreparedCase(
        array=np.ascontiguousarray(padded, dtype=np.float32),
        present=present,
        reference=reference_image,
        grid=grid,
        box=((int(start[0]), int(start[1]), int(start[2])), (int(stop[0]), int(stop[1]), int(stop[2]))),
        pad=pad,
        brain=brain_box,
    )


def _foreground_box(foreground: np.ndarray, config: PreprocessConfig) -> tuple[list[int], list[int]]:
    shape = foreground.shape
    if not config.crop_foreground:
        return [0, 0, 0], list(shape)
    if not foreground.any():
        raise InvalidImageError("All channels are empty after resampling; there is nothing to segment.")
    start, stop = [], []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        idx = np.flatnonzero(foreground.any(axis=other))
        start.append(max(0, int(idx[0]) - config.margin))
        stop.append(min(shape[axis], int(idx[-1]) + 1 + config.margin))
    return start, stop


def _pad_amounts(length: int, divisible: int, min_size: int) -> tuple[int, int]:
    target = max(int(np.ceil(length / divisible) * divisible), min_size)
    extra = target - length
    return extra // 2, extra - extra // 2
