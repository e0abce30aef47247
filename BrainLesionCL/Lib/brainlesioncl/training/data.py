"""Training data: validated labelled cases, random crops, and random modality drop.

A :class:`TrainingCase` is preprocessed exactly as inference preprocesses (same working grid, z-scoring, crop), and
its label follows the same resampling, so what the network learns is what it will see. Nothing about the patient
(names, paths, images) leaves this object: episodes record only counts and metrics.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..errors import GeometryError, InvalidImageError
from ..io.image_io import read_image
from ..modalities import ByChannel, Disease, Modality, map_channels, resolve_disease
from ..preparation import prepare_inputs
from ..preprocessing.geometry import same_geometry
from ..preprocessing.pipeline import PreprocessConfig

__all__ = [
    "TrainingCase",
    "case_from_arrays",
    "drop_modalities",
    "load_training_case",
    "make_batch",
    "random_crop",
]


@dataclass
class TrainingCase:
    """One labelled case, ready for training."""

    name: str
    image: np.ndarray  # (C, X, Y, Z) float32, model channel order, absent channels zero
    label: np.ndarray  # (X, Y, Z) uint8: {0, 1}, or the classes of ``label_values`` (tumour sub-regions)
    present: list[bool]
    disease: Disease

    @property
    def modalities_present(self) -> int:
        return int(sum(self.present))


def _as_image(source: sitk.Image | str | os.PathLike, name: str) -> sitk.Image:
    return source if isinstance(source, sitk.Image) else read_image(source, name=name)


def load_training_case(
    name: str,
    images: ByChannel[sitk.Image | str | os.PathLike],
    label: sitk.Image | str | os.PathLike,
    disease: Disease | str,
    channel_order: Sequence[Modality | str],
    *,
    preprocessing: PreprocessConfig | None = None,
    label_mapping: str = "strict",
    prepare: str = "auto",
    extract_brain: Callable[[sitk.Image], sitk.Image] | None = None,
    bias_correction: bool = False,
    label_values: Mapping[int, int] | None = None,
) -> TrainingCase:
    """Validate and preprocess one labelled case.

    Args:
        name: case name (for messages only).
        images: ``{modality: image or path}``.
        label: the lesion mask, on the grid of one of the case's images.
        disease: the case's disease tag.
        channel_order: the model's channels.
        label_mapping: ``strict`` (values must be 0/1) or ``nonzero`` (every value > 0 is lesion, e.g. a BraTS
            multi-class label merged to whole tumour, as the reference preprocessing does).
        prepare: the preparation stage of segmentation (:mod:`brainlesioncl.preparation`): ``auto`` co-registers
            and brain-extracts a raw annotated exam onto the sequence the label was drawn on, so the network learns
            from what it will see at Segment time; curated inputs are used as given. ``on`` / ``off`` as for
            ``segment``. ``extract_brain`` replaces deepbet (tests). ``bias_correction``: N4 first, as
            ``segment --bias-correction`` (train as you will segment).
        label_values: instead of a lesion mask, keep classes: each label value is mapped to a class by this table
            (e.g. :data:`brainlesioncl.subregions.LABEL_CONVENTIONS`); a value it does not list is refused.

    Raises:
        InvalidImageError: unreadable/invalid image or label, label values other than 0/1 under ``strict``.
            A label without lesion voxels is accepted (a lesion-free case is a valid negative example); an episode
            whose labels are *all* empty is refused by :func:`~brainlesioncl.continual.train_episode`.
        GeometryError: the label's grid matches none of the case's images.
    """
    tag = resolve_disease(disease)
    mapped = map_channels(images, channel_order)
    loaded = {m: _as_image(src, f"{name}/{m.value}") for m, src in mapped.items()}
    label_image = label if isinstance(label, sitk.Image) else _read_label(label, name, list(loaded.values()))
    values = np.unique(sitk.GetArrayViewFromImage(label_image))
    if label_values is not None:
        unknown = sorted(set(values.tolist()) - set(label_values))
        if unknown:
            raise InvalidImageError(
                f"{name}: label values {unknown} are not in the class table {dict(label_values)}; check which "
                "annotation protocol the label follows (e.g. BraTS 2013 has 1-4, BraTS 2018 has 1, 2 and 4).")
    elif label_mapping == "strict":
        extra = [v for v in values.tolist() if v not in (0, 1)]
        if extra:
            raise InvalidImageError(
                f"{name}: label has values {sorted(values.tolist())[:8]}; a lesion mask must contain only 0 and 1. "
                "If it is a multi-class label (e.g. BraTS 1/2/4), add --label-mapping nonzero to use every nonzero "
                "value as lesion (label_mapping='nonzero' in Python)."
            )
    elif label_mapping != "nonzero":
        raise ValueError(f"label_mapping must be 'strict' or 'nonzero', not {label_mapping!r}")
    matching = [m for m, img in loaded.items() if same_geometry(img, label_image, tol=1e-3)]
    if not matching:
        first = next(iter(loaded.values()))
        raise GeometryError(
            f"{name}: the label's grid (size {label_image.GetSize()}, spacing "
            f"{tuple(round(s, 3) for s in label_image.GetSpacing())}) matches none of the case's images (e.g. size "
            f"{first.GetSize()}, spacing {tuple(round(s, 3) for s in first.GetSpacing())}). Save the label on the "
            "grid of the image it was drawn on."
        )
    reference = matching[0]
    ordered = {reference: loaded[reference], **{m: img for m, img in loaded.items() if m is not reference}}
    # The label stays on the reference grid: the stage only moves the other sequences onto it and masks the brain.
    preparation = prepare_inputs(ordered, reference, mode=prepare, extract_brain=extract_brain,
                                 bias_correction=bias_correction)
    prepared = preparation.network_input(channel_order, preprocessing or PreprocessConfig())
    if label_values is not None:
        lookup = np.zeros(int(max(label_values)) + 1, np.uint8)
        for value, klass in label_values.items():
            lookup[int(value)] = klass
        target = sitk.GetImageFromArray(lookup[sitk.GetArrayFromImage(label_image).astype(np.int64)])
    else:
        target = sitk.Cast(label_image > 0, sitk.sitkUInt8)
    target.CopyInformation(label_image)
    return TrainingCase(
        name=name,
        image=prepared.array,
        label=prepared.project_label(target),
        present=prepared.present,
        disease=tag,
    )


def _read_label(path: str | os.PathLike, name: str, images: Sequence[sitk.Image] = ()) -> sitk.Image:
    """A label file, or a DICOM SEG placed on the grid of the case's image whose slices it annotates."""
    from ..io.dicom import dicom_seg_on_grid, is_dicom_seg

    if is_dicom_seg(path):
        for image in images:
            placed = dicom_seg_on_grid(path, image)
            if placed is not None:
                return placed
        raise GeometryError(f"{name}: the DICOM SEG {path} annotates none of the case's series (its frames lie on "
                            "no slice of them); give the series it was drawn on.")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise InvalidImageError(f"{name}: cannot read the label {path}: {err}") from err
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InvalidImageError(f"{name}: the label must be a 3-D scalar image, got {image.GetDimension()}-D.")
    array = sitk.GetArrayViewFromImage(image)
    if not np.all(np.isfinite(array)):
        raise InvalidImageError(f"{name}: the label contains NaN/Inf values.")
    rounded = sitk.Cast(sitk.Round(sitk.Cast(image, sitk.sitkFloat32)), sitk.sitkInt16)
    rounded.CopyInformation(image)
    return rounded


def random_crop(
    case: TrainingCase, size: int, rng: np.random.Generator, foreground_probability: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """A random cube crop (zero-padded if the case is smaller); centred on a lesion voxel with the given probability.

    Kept ours rather than MONAI's ``RandCropByPosNegLabel``: the reference training jitters the centre by up to a
    quarter crop around the lesion voxel (so lesions are not always in the middle) and pads small cases symmetrically,
    neither of which that transform does; one crop per call also keeps the modality drop per crop."""
    image, label = case.image, case.label
    shape = np.array(label.shape)
    pad = np.maximum(size - shape, 0)
    if pad.any():
        before = pad // 2
        widths = [(int(b), int(p - b)) for b, p in zip(before, pad, strict=True)]
        image = np.pad(image, [(0, 0), *widths])
        label = np.pad(label, widths)
        shape = np.array(label.shape)
    if rng.random() < foreground_probability and label.any():
        foreground = np.flatnonzero(label)
        centre = np.array(np.unravel_index(int(rng.choice(foreground)), label.shape))
        start = np.clip(centre - size // 2 + rng.integers(-size // 4, size // 4 + 1, 3), 0, shape - size)
    else:
        start = np.array([rng.integers(0, s - size + 1) for s in shape])
    sl = tuple(slice(int(a), int(a) + size) for a in start)
    return image[(slice(None), *sl)], label[sl]


def drop_modalities(
    image: np.ndarray, present: Sequence[bool], rng: np.random.Generator, keep: Sequence[int] = ()
) -> tuple[np.ndarray, list[bool]]:
    """Zero k of the n present channels, k ~ U{0..n-1} (at least one survives), as in the reference training.
    Channels in ``keep`` are never dropped (T1c for the tumour sub-regions, which cannot be read without it)."""
    droppable = [i for i, p in enumerate(present) if p and i not in keep]
    # k ranges over 0..n-1 (one channel survives), or over 0..n when a kept channel is there to survive
    choices = len(droppable) + (1 if any(present[i] for i in keep) else 0)
    k = int(rng.integers(0, choices)) if choices > 1 else 0
    dropped = set(rng.choice(droppable, size=k, replace=False).tolist()) if k else set()
    if not dropped:
        return image, list(present)
    out = image.copy()
    for i in dropped:
        out[i] = 0.0
    return out, [p and i not in dropped for i, p in enumerate(present)]


def make_batch(
    cases: Sequence[TrainingCase],
    crop_size: int,
    rng: np.random.Generator,
    disease_slots: Sequence[str],
    *,
    modality_drop: bool = True,
    foreground_probability: float = 0.5,
    flip: bool = True,
    keep_channels: Sequence[int] = (),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images (B, C, s, s, s), labels (B, 1, s, s, s) and contexts (B, C + S) for a list of cases."""
    from ..modalities import disease_context

    images, labels, contexts = [], [], []
    for case in cases:
        image, label = random_crop(case, crop_size, rng, foreground_probability)
        present = list(case.present)
        if modality_drop:
            image, present = drop_modalities(image, present, rng, keep_channels)
        if flip and rng.random() < 0.5:  # left-right mirror: brains are roughly symmetric
            image, label = image[:, ::-1], label[::-1]
        # Presence is read off the (dropped) crop, as the reference does.
        flags = [1.0 if p and np.any(image[i]) else 0.0 for i, p in enumerate(present)]
        disease_part = disease_context(case.disease, disease_slots) if disease_slots else []
        images.append(np.ascontiguousarray(image))
        labels.append(np.ascontiguousarray(label)[None])
        contexts.append(flags + disease_part)
    return np.stack(images).astype(np.float32), np.stack(labels).astype(np.int64), np.asarray(contexts, np.float32)


def case_from_arrays(
    name: str, image: np.ndarray, label: np.ndarray, present: Sequence[bool], disease: Disease | str
) -> TrainingCase:
    """A training case from arrays already in model channel order (tests, synthetic data)."""
    if image.ndim != 4 or label.shape != image.shape[1:]:
        raise InvalidImageError(f"{name}: image {image.shape} and label {label.shape} do not match")
    return TrainingCase(name, image.astype(np.float32), (label > 0).astype(np.uint8), list(present),
                        resolve_disease(disease))
