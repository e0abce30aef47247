"""Does a result look like the disease it names? The checks a radiologist makes at a glance, on every result.

A segmentation can be wrong in ways the model cannot see: a T1c mapped as FLAIR, a skull-on thick-slice exam, a
chronic infarct the model was never taught, the ventricles taken for lesion. Such results are usually *implausible*
before they are inaccurate: far larger than the disease makes lesions, a large share of the brain, darker than the
brain on the sequence where the disease is bright, or lying in the ventricles. Each check below gives a specific
warning that says what was seen and what to check; none changes the segmentation.

* ``disease-volume``: the lesion volume above what the disease usually reaches (:data:`USUAL_MAX_ML`, generous upper
  ends of published lesion-volume ranges: glioma whole tumour, large territorial infarcts, MS lesion load, severe WMH,
  multiple metastases; WMH was raised from 120 to 200 mL after a real case with 128 mL of annotated WMH).
* ``brain-share``: the lesions cover more than :data:`MAX_BRAIN_SHARE` of the brain.
* ``darker-than-brain``: the lesions' mean is below the rest of the brain's median on the sequence where the disease
  is bright (:data:`BRIGHT_ON`: FLAIR for MS, WMH, glioma and metastases with their oedema, DWI for acute stroke; T1c
  for a metastasis exam without FLAIR or T2).
* ``ventricles``: more than :data:`VENTRICLE_SHARE` of the lesion volume lies in cerebrospinal fluid at the centre of
  the brain (CSF read as the darkest tenth of the brain on FLAIR/T1/T1c, or the brightest tenth on T2/ADC when that is
  all there is; the ventricles as the CSF components that reach the brain's central box).
* ``raw-single-sequence``: one skull-on sequence: brain extraction and segmentation rest on a single contrast.

The thresholds and their false alarms on the real cases are measured by ``benchmarks/plausibility.py``
(docs/BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import SimpleITK as sitk

__all__ = ["BRIGHT_ON", "MAX_BRAIN_SHARE", "USUAL_MAX_ML", "VENTRICLE_SHARE", "PlausibilityWarning",
           "check_plausibility"]

#: Lesion volume (mL) above which a result is unusual for the disease.
USUAL_MAX_ML = {"tumour": 250.0, "stroke": 300.0, "MS": 60.0, "WMH": 200.0, "metastasis": 100.0}
#: Lesions covering more than this share of the brain are implausible for every disease here.
MAX_BRAIN_SHARE = 0.15
#: Where each disease's lesions are bright, in order of preference (the first one the case has is read).
BRIGHT_ON = {"tumour": ("FLAIR", "T2"), "stroke": ("DWI", "FLAIR", "T2"), "MS": ("FLAIR", "T2"),
             "WMH": ("FLAIR", "T2"), "metastasis": ("FLAIR", "T2", "T1c")}
#: Sequences on which CSF is dark (read first) or bright.
CSF_DARK_ON, CSF_BRIGHT_ON = ("FLAIR", "T1", "T1c"), ("T2", "ADC")
#: Share of the lesion volume in the ventricles above which the result is flagged.
VENTRICLE_SHARE = 0.25
#: Below this much lesion, a share or a mean says little: only the raw-exam check runs.
MIN_LESION_ML = 0.5


@dataclass(frozen=True)
class PlausibilityWarning:
    """One failed check: which (``check``), and the sentence for the user (what was seen, what to check)."""

    check: str
    message: str

    def to_dict(self) -> dict:
        return asdict(self)


def _brain(sequences: Mapping[str, sitk.Image], brain_mask: sitk.Image | None) -> np.ndarray:
    """The brain on the result's grid: the mask of a raw exam, else every voxel that is not background in some
    sequence (a curated exam is brain-extracted)."""
    if brain_mask is not None:
        return sitk.GetArrayFromImage(brain_mask) > 0
    from .preparation.stage import background_value

    inside = None
    for image in sequences.values():
        array = sitk.GetArrayViewFromImage(image)
        value, _share, tolerance = background_value(np.asarray(array))
        foreground = np.abs(array - value) > tolerance
        inside = foreground if inside is None else inside | foreground
    return inside if inside is not None else np.zeros((0,), bool)


def _ventricles(image: sitk.Image, brain: np.ndarray, csf_dark: bool) -> np.ndarray:
    """CSF connected to the centre of the brain: the darkest (or brightest) tenth of the brain, components of at
    least 2 mL that reach the central box of the brain's bounding box (a fifth of its extent around its centre)."""
    from scipy import ndimage

    values = sitk.GetArrayViewFromImage(image)
    cut = np.percentile(values[brain], 10 if csf_dark else 90)
    csf = brain & ((values < cut) if csf_dark else (values > cut))
    csf = ndimage.binary_opening(csf, iterations=1)  # detach the sulci's thin CSF from the ventricles
    components, count = ndimage.label(csf)
    if not count:
        return csf
    corners = np.argwhere(brain)
    low, high = corners.min(axis=0), corners.max(axis=0)
    centre, half = (low + high) / 2.0, (high - low) / 10.0
    box = tuple(slice(int(c - h), int(c + h) + 1) for c, h in zip(centre, half, strict=True))
    central = set(np.unique(components[box]).tolist()) - {0}
    voxel_ml = float(np.prod(image.GetSpacing())) / 1000.0
    sizes = np.bincount(components.ravel(), minlength=count + 1) * voxel_ml
    keep = [c for c in central if sizes[c] >= 2.0]
    return np.isin(components, keep)


def check_plausibility(label: sitk.Image, disease: str, sequences: Mapping[str, sitk.Image], *,
                       brain_mask: sitk.Image | None = None, quality: Mapping | None = None
                       ) -> list[PlausibilityWarning]:
    """The warnings for one result.

    Args:
        label: the 0/1 (or multi-class) result on the reference grid.
        disease: the disease whose routing produced it (for ``auto``, the one chosen; ``unknown`` skips the disease
            checks).
        sequences: ``{modality name: image}`` on the label's grid (``Preparation.reference_grid``).
        brain_mask: the brain mask of a raw exam on that grid, if any.
        quality: the preparation's QC record (for the raw-exam check).
    """
    warnings = []
    quality = quality or {}
    inputs = quality.get("inputs", {})
    raw = [name for name, entry in inputs.items() if not entry.get("brain_extracted", True)]
    if len(inputs) == 1 and raw:
        warnings.append(PlausibilityWarning(
            "raw-single-sequence",
            f"one raw (skull-on) {raw[0]} only: brain extraction and segmentation rest on a single contrast; check the "
            "brain mask (--write-prepared) and add FLAIR (and a T1) if the exam has them"))
    lesion = sitk.GetArrayViewFromImage(label) > 0
    voxel_ml = float(np.prod(label.GetSpacing())) / 1000.0
    lesion_ml = float(np.count_nonzero(lesion)) * voxel_ml
    if lesion_ml < MIN_LESION_ML or not sequences:
        return warnings
    limit = USUAL_MAX_ML.get(disease)
    if limit is not None and lesion_ml > limit:
        warnings.append(PlausibilityWarning(
            "disease-volume",
            f"{lesion_ml:.0f} mL of lesion is more than {disease} lesions usually reach (up to about {limit:.0f} mL): "
            "check the disease tag and that each volume is mapped to its channel"))
    brain = _brain(sequences, brain_mask)
    brain_ml = float(np.count_nonzero(brain)) * voxel_ml
    if brain_ml > 200.0 and lesion_ml > MAX_BRAIN_SHARE * brain_ml:
        warnings.append(PlausibilityWarning(
            "brain-share",
            f"the lesions cover {100 * lesion_ml / brain_ml:.0f}% of the brain ({lesion_ml:.0f} of {brain_ml:.0f} "
            "mL): a result this large usually means a wrong channel mapping, a skull-on exam or a sequence the model "
            "does not know; check the inputs"))
    rest = brain & ~lesion
    if np.count_nonzero(rest) < 1000:
        return warnings
    bright = next((name for name in BRIGHT_ON.get(disease, ()) if name in sequences), None)
    if bright is not None:
        values = sitk.GetArrayViewFromImage(sequences[bright])
        low, median, high = np.percentile(values[rest], [25, 50, 75])
        contrast = (float(values[lesion].mean()) - median) / max(float(high - low) / 1.349, 1e-6)
        if contrast < 0:
            warnings.append(PlausibilityWarning(
                "darker-than-brain",
                f"the lesions are darker than the rest of the brain on {bright} (contrast {contrast:+.1f}), where "
                f"{disease} lesions are bright: check that the volume mapped to {bright} is a {bright}, and the "
                "disease tag"))
    csf_source = next((n for n in CSF_DARK_ON if n in sequences), None) or \
        next((n for n in CSF_BRIGHT_ON if n in sequences), None)
    if csf_source is not None:
        ventricles = _ventricles(sequences[csf_source], brain, csf_source in CSF_DARK_ON)
        share = float(np.count_nonzero(lesion & ventricles)) / float(np.count_nonzero(lesion))
        if share > VENTRICLE_SHARE:
            warnings.append(PlausibilityWarning(
                "ventricles",
                f"{100 * share:.0f}% of the lesion volume lies in the ventricles (CSF at the centre of the brain, read "
                f"on {csf_source}): lesions are tissue, not CSF; check the disease tag and the sequences (a chronic "
                "infarct or an enlarged ventricle is not what this model segments)"))
    return warnings
