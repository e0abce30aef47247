"""The preparation stage between reading and the network: raw clinical exams in, what the models were trained on out.

Curated challenge data is skull-stripped and co-registered; a PACS exam is not (skull on, each sequence on its own
grid, head motion between sequences, thick slices). The stage:

1. **detects** per input whether it is already brain-extracted (a background of one exact value over most of the
   border, as skull stripping leaves; a raw exam's air is noise) and records the decision;
2. **co-registers** every other sequence to the reference, rigidly (:mod:`.registration`), when the exam is raw (or
   ``mode="on"``); curated inputs are taken as aligned, as they are. Only transforms are kept: the pipeline composes
   them with the one resampling onto the model's grid, so nothing is interpolated twice;
3. **extracts the brain** of a raw exam with deepbet (:mod:`.brain_mask`) on the most T1-like sequence with thin
   slices (deepbet was trained on T1) and carries the mask to the others through the registration; the network then
   sees only the brain and the output is zero outside the (dilated) mask;
4. records **quality control**: per sequence the decision, slice thickness and registration metric/motion; the brain
   volume (warned outside 800-2200 mL for adults).

``mode``: ``auto`` (default: prepare raw exams, leave curated inputs untouched), ``on`` (always register; extract the
brain of raw inputs), ``off`` (the inputs are used as given).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import SimpleITK as sitk

from ..errors import SettingsError
from ..modalities import Modality
from ..preprocessing.pipeline import PreparedCase, PreprocessConfig, prepare_case
from .registration import register_rigid

__all__ = ["PREPARE_MODES", "Preparation", "is_brain_extracted", "prepare_inputs", "quality_lines"]

PREPARE_MODES = ("auto", "on", "off")
#: Adult brain volumes outside this range (mL) are flagged: a failed extraction or a child's scan.
BRAIN_VOLUME_RANGE_ML = (800.0, 2200.0)
#: Slices thicker than this (mm) are reported: the model sees them resampled.
THICK_SLICE_MM = 3.0
#: Preference for running brain extraction (deepbet was trained on T1-weighted images).
_EXTRACTION_ORDER = (Modality.T1, Modality.T1C, Modality.FLAIR, Modality.T2, Modality.PD, Modality.SWI, Modality.DWI,
                     Modality.ADC)


@dataclass
class Preparation:
    """What the stage decided and measured; ``transforms`` map reference points into each sequence. The prepared
    ``images`` are kept (the same objects, no copy) so the result can be written out without reading them again."""

    transforms: dict[Modality, sitk.Transform] = field(default_factory=dict)
    brain_mask: sitk.Image | None = None  # on the grid of ``mask_source``
    mask_source: Modality | None = None
    qc: dict = field(default_factory=dict)
    images: dict[Modality, sitk.Image] = field(default_factory=dict)
    reference: Modality | None = None

    @property
    def mask_transform(self) -> sitk.Transform | None:
        """The transform that carries the brain mask from its own sequence to the reference (None: no mask or the
        mask was made on the reference)."""
        return self.transforms.get(self.mask_source) if self.mask_source is not None else None

    def lines(self) -> list[str]:
        return quality_lines(self.qc)

    @cached_property
    def reference_grid(self) -> tuple[dict[Modality, sitk.Image], sitk.Image | None]:
        """Every sequence on the reference grid (through its registration, interpolated once; zero outside the brain
        of a raw exam) and the brain mask there (None for curated inputs): what a result's voxels line up with.
        Computed once, for ``--write-prepared`` and the per-lesion report alike."""
        if self.reference is None:
            raise ValueError("the preparation has no reference sequence; make it with prepare_inputs")
        grid = self.images[self.reference]
        mask = None
        if self.brain_mask is not None:
            mask = sitk.Resample(sitk.Cast(self.brain_mask > 0, sitk.sitkUInt8), grid,
                                 self.mask_transform or sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        aligned = {}
        for modality, image in self.images.items():
            on_grid = sitk.Resample(image, grid, self.transforms.get(modality, sitk.Transform()), sitk.sitkLinear,
                                    0.0, sitk.sitkFloat32)
            aligned[modality] = sitk.Mask(on_grid, mask) if mask is not None else on_grid
        return aligned, mask

    def network_input(self, channel_order: Sequence[Modality | str], config: PreprocessConfig) -> PreparedCase:
        """The network's input: every prepared sequence resampled once onto the model's grid through its
        registration, zero outside the (dilated) brain of a raw exam. Segment and training both come through here,
        so a model learns from exactly what it will see."""
        return prepare_case(self.images, channel_order, reference=self.reference, config=config,
                            transforms=self.transforms, brain_mask=self.brain_mask, mask_transform=self.mask_transform)


def quality_lines(qc: Mapping) -> list[str]:
    """The QC record (``Preparation.qc``, or the ``quality`` of a result or CLI summary) as sentences."""
    out = []
    for name, entry in qc.get("inputs", {}).items():
        state = "already brain-extracted (used as given)" if entry["brain_extracted"] else "raw (skull on)"
        text = f"{name}: {state}, slices {entry['slice_thickness_mm']:.1f} mm"
        if entry.get("registration"):
            r = entry["registration"]
            text += (f", registered (moved {r['translation_mm']:.1f} mm / {r['rotation_deg']:.1f}°, "
                     f"MI {r['metric']:.2f})")
        out.append(text)
    if qc.get("bias_correction"):
        out.append(f"bias field corrected ({qc['bias_correction']})")
    if qc.get("brain_volume_ml") is not None:
        out.append(f"brain volume {qc['brain_volume_ml']:.0f} mL")
    return out + [f"warning: {w}" for w in qc.get("warnings", [])]


#: Above this, what is not background is a whole head (scalp, skull, neck), not a brain.
MAX_BRAIN_EXTRACTED_ML = 2300.0
#: Background values within this fraction of the 99th percentile count as the background value.
BACKGROUND_TOLERANCE = 1e-4


def background_value(array: np.ndarray) -> tuple[float, float, float]:
    """``(value, share of the volume, tolerance)`` of an image's background: 0 or its most common value (the
    constant an intensity normalisation left), whichever covers more of the volume, counting values within
    ``tolerance`` (:data:`BACKGROUND_TOLERANCE` of the 99th percentile) as that value."""
    values, counts = np.unique(array, return_counts=True)
    mode_value = float(values[int(np.argmax(counts))])
    tolerance = BACKGROUND_TOLERANCE * float(np.percentile(np.abs(array), 99))
    background, share = mode_value, 0.0
    for candidate in {mode_value, 0.0}:
        candidate_share = float(np.count_nonzero(np.abs(array - candidate) <= tolerance)) / array.size
        if candidate_share > share:
            background, share = candidate, candidate_share
    return background, share, tolerance


def is_brain_extracted(image: sitk.Image, *,
                       background: tuple[float, float, float] | None = None) -> tuple[bool, str]:
    """Whether an image is already skull-stripped: a large part of the volume is one value (0, or the constant an
    intensity normalisation left) and what remains is brain-sized. A raw exam's air is noise (no value dominates),
    or, where a scanner zeroed the air, what remains is a whole head (more than 2.3 L).

    "One value" allows numerical residue (:data:`BACKGROUND_TOLERANCE` of the bright end): a stripped series that a
    tool resliced or smoothed (thick slices, Gaussian or sinc interpolation) keeps a background of values like 1e-31
    around the exact zero, and counting only exact zeros took such a brain for a raw head and sent it to brain
    extraction. Rician air noise sits percents above zero, orders of magnitude above the tolerance.

    ``background``: :func:`background_value` of the image when the caller has it already."""
    array = sitk.GetArrayViewFromImage(image)
    value, share, _ = background if background is not None else background_value(array)
    remaining_ml = (1.0 - share) * array.size * float(np.prod(image.GetSpacing())) / 1000.0
    if share < 0.2:
        faces = [array[0], array[-1], array[:, 0], array[:, -1], array[:, :, 0], array[:, :, -1]]
        border = float(np.median(np.concatenate([f.ravel() for f in faces])))
        if border > 0.15 * float(np.percentile(array, 90)):  # the border is tissue: a crop inside the brain, no air
            return True, "no background at all (the field of view lies inside the brain): used as given"
        return False, f"the background is noise (no value covers more than {share:.0%} of the volume)"
    if remaining_ml > MAX_BRAIN_EXTRACTED_ML:
        return False, (f"{share:.0%} of the volume is {value:g}, but the rest is {remaining_ml:.0f} mL: a whole "
                       "head, not a brain")
    return True, f"{share:.0%} of the volume is {value:g} and the rest is {remaining_ml:.0f} mL"


def prepare_inputs(images: Mapping[Modality, sitk.Image], reference: Modality, *, mode: str = "auto",
                   register: bool = True, extract_brain=None, bias_correction: bool = False) -> Preparation:
    """Run the stage (see the module docstring) on validated images keyed by modality.

    Args:
        extract_brain: ``image -> binary mask`` (default: deepbet, see :mod:`.brain_mask`); injectable for tests.
        bias_correction: divide every input by its N4 bias field first (:mod:`.bias`; about 5-10 s per sequence
            on a CPU). Off by default: see docs/BENCHMARKS.md for its measured effect. Applies in every mode except
            ``off`` (asked for explicitly, it corrects curated inputs too).

    Raises:
        SettingsError: unknown mode; GeometryError: a registration failed (names the sequence and the fix);
        InvalidImageError: brain extraction found no brain.
    """
    if mode not in PREPARE_MODES:
        raise SettingsError(f"--prepare {mode!r}: use one of {', '.join(PREPARE_MODES)}.")
    preparation = Preparation(qc={"mode": mode, "inputs": {}, "warnings": [], "seconds": {}}, images=dict(images),
                              reference=reference)
    if mode == "off":
        return preparation
    if bias_correction:
        from .bias import n4_correct

        start = time.perf_counter()
        preparation.images = {m: n4_correct(image) for m, image in images.items()}
        images = preparation.images
        preparation.qc["bias_correction"] = "N4"
        preparation.qc["seconds"]["bias_correction"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    raw = {}
    for modality, image in images.items():
        extracted, reason = is_brain_extracted(image)
        raw[modality] = not extracted
        thickness = float(max(image.GetSpacing()))
        preparation.qc["inputs"][modality.value] = {
            "brain_extracted": extracted, "decision": reason, "slice_thickness_mm": round(thickness, 2),
            "thick_slices": thickness > THICK_SLICE_MM,  # resampled onto the model's grid like every input
        }
    preparation.qc["seconds"]["detect"] = round(time.perf_counter() - start, 2)
    exam_is_raw = any(raw.values())
    if mode == "auto" and not exam_is_raw:
        preparation.qc["decision"] = "curated inputs (brain-extracted): used as given"
        return preparation

    start = time.perf_counter()
    if register:
        for modality, image in images.items():
            if modality is reference:
                continue
            result = register_rigid(images[reference], image, name=modality.value)
            preparation.transforms[modality] = result.transform
            preparation.qc["inputs"][modality.value]["registration"] = result.to_dict()
    preparation.qc["seconds"]["register"] = round(time.perf_counter() - start, 2)

    if exam_is_raw:
        start = time.perf_counter()
        if extract_brain is None:
            from .brain_mask import deepbet_brain_mask as extract_brain
        # The most T1-like sequence among those with thin slices (a 5 mm mask carried to a 1 mm grid is coarse).
        source = min((m for m in _EXTRACTION_ORDER if m in images),
                     key=lambda m: (max(images[m].GetSpacing()) > THICK_SLICE_MM, _EXTRACTION_ORDER.index(m)))
        mask = extract_brain(images[source])
        voxel_ml = float(np.prod(mask.GetSpacing())) / 1000.0
        volume = float(np.count_nonzero(sitk.GetArrayViewFromImage(mask))) * voxel_ml
        preparation.brain_mask, preparation.mask_source = mask, source
        preparation.qc.update({"brain_extraction": {"tool": getattr(extract_brain, "__name__", "custom"),
                                                    "sequence": source.value},
                               "brain_volume_ml": round(volume, 1)})
        low, high = BRAIN_VOLUME_RANGE_ML
        if not low <= volume <= high:
            preparation.qc["warnings"].append(
                f"brain volume {volume:.0f} mL is outside {low:.0f}-{high:.0f} mL (adults): check the brain mask "
                "(write it with --write-prepared) before trusting the result")
        if source not in (Modality.T1, Modality.T1C):
            preparation.qc["warnings"].append(
                f"no T1-weighted sequence: the brain was extracted on {source.value}; check the mask")
        preparation.qc["seconds"]["brain_extraction"] = round(time.perf_counter() - start, 2)
    return preparation
