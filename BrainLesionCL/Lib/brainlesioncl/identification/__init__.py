"""Which MRI contrast each volume is, from the best evidence there is, and auto-mapping a radiologist can trust.

Evidence, strongest first: **DICOM tags** (:mod:`.dicom`; Image Type, b-value, contrast agent, timing), the
**name** (:mod:`.names`; series descriptions of the main vendors, file names), the **image** itself (:mod:`.image`;
only when neither tag nor name tells, and only above a confidence threshold). Tags outrank the name; when they
disagree the tags are used and the disagreement is shown. The volumes of one exam are then read together
(:mod:`.exam`): a T1 and a T1c that the image of each alone could not tell apart are told apart side by side.

Auto-mapping (:func:`auto_map`) never fills a channel twice (the most confident volume wins, the other is left out
with the reason), never maps a refused series (localizer, perfusion, derived map, T2*...), never maps a modality the
model lacks into another channel (an ADC map is left out of a model without an ADC channel, never put into DWI), and
never replaces a mapping the user made by hand.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import BrainLesionCLError
from ..modalities import Modality, resolve_modality
from .dicom import identify_tags, read_dicom_tags, tags_from_sidecar
from .exam import read_together
from .image import identify_image
from .names import identify_name
from .result import Identification, ImageScores

__all__ = ["Identification", "ImageScores", "MappedVolume", "auto_map", "decisive_name", "identify", "identify_file",
           "identify_name", "identify_tags", "identify_image", "read_together"]

#: Below this, a channel is left empty rather than filled.
MIN_CONFIDENCE = 0.6


def identify(*, name: str | None = None, tags: Mapping[str, str] | None = None, image=None,
             image_min_confidence: float = 0.8) -> Identification:
    """Combine the evidence there is (see the module docstring). ``image`` (a SimpleITK image or array, or a
    callable returning one) is only read when neither tags nor name decide."""
    from_tags = identify_tags(tags) if tags else None
    from_name = identify_name(name) if name else None
    decided = [e for e in (from_tags, from_name) if e is not None and (e.modality is not None or e.refused)]
    if from_tags is not None and (from_tags.modality is not None or from_tags.refused):
        notes: tuple[str, ...] = ()
        if from_name is not None and (from_name.modality is not None or from_name.refused) and \
                (from_name.modality, from_name.refused) != (from_tags.modality, from_tags.refused):
            notes = (f"the name says {from_name.label.split(' (')[0]} but the DICOM tags say "
                     f"{from_tags.label.split(' (')[0]}: the tags were used",)
        return replace(from_tags, notes=notes)
    if decided:
        return decided[0]
    if image is not None:
        try:
            loaded = image() if callable(image) else image
        except (BrainLesionCLError, ValueError, RuntimeError) as err:  # a 4-D, colour or unreadable volume
            return Identification(None, 0.0, "image", f"the image could not be read to identify it: {err}")
        return identify_image(loaded, min_confidence=image_min_confidence)
    reasons = [e.reason for e in (from_tags, from_name) if e is not None]
    return Identification(None, 0.0, "name", "; ".join(reasons) or "no evidence")


def decisive_name(names: Sequence[str | None]) -> str | None:
    """Of several names for one series (DICOM series description, node or file name), the first that tells the
    contrast (or that it must never be mapped); else the first name there is."""
    present = [n for n in names if n]
    for name in present:
        found = identify_name(name)
        if found.modality is not None or found.refused:
            return name
    return present[0] if present else None


def identify_file(path: str | os.PathLike, *, use_image: bool = True) -> Identification:
    """Identify an image file (or a DICOM series folder): its DICOM tags or BIDS sidecar, its series description or
    file name, then its voxels."""
    path = Path(path)
    tags = read_dicom_tags(path) if path.is_dir() or path.suffix.lower() in (".dcm", "") else {}
    sidecar = path.with_name(path.name.replace(".nii.gz", ".json").replace(".nii", ".json"))
    if not tags and sidecar != path and sidecar.is_file():
        tags = tags_from_sidecar(sidecar)
    name = decisive_name([tags.get("SeriesDescription"), path.name])

    def voxels():
        import SimpleITK as sitk

        from ..io import read_image

        if path.is_dir():
            return sitk.ReadImage(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path)))
        return read_image(path)

    return identify(name=name, tags=tags or None, image=voxels if use_image else None)


@dataclass(frozen=True)
class MappedVolume:
    volume: object
    identification: Identification


def auto_map(volumes: Sequence[tuple[object, Identification]], channels: Sequence[str | Modality], *,
             manual: Mapping[str, object] | None = None, min_confidence: float = MIN_CONFIDENCE,
             one_exam: bool = True) -> tuple[dict[str, MappedVolume], list[tuple[object, str]]]:
    """``{channel: MappedVolume}`` for a model's channels, and ``(volume, why it was left out)`` for the rest.

    ``manual`` holds the user's own choices (``{channel: volume}``): kept as they are, never replaced, and their
    volumes are not mapped again elsewhere. ``one_exam``: the volumes are one patient's exam, so they are read
    together (:func:`read_together`) before mapping.
    """
    wanted = [resolve_modality(c) for c in channels]
    manual = {resolve_modality(k).value: v for k, v in (manual or {}).items() if v is not None}
    mapping = {c: MappedVolume(v, Identification(resolve_modality(c), 1.0, "hand", "chosen by hand"))
               for c, v in manual.items()}
    left_out: list[tuple[object, str]] = []
    candidates = [item for item in volumes if item[0] not in manual.values()]
    if one_exam:
        together = read_together([found for _, found in candidates], chosen=[Modality(c) for c in manual])
        candidates = [(volume, found) for (volume, _), found in zip(candidates, together, strict=True)]
    ranked = sorted(candidates, key=lambda item: -item[1].confidence)
    for volume, found in ranked:
        if found.refused:
            left_out.append((volume, found.reason))
        elif found.modality is None:
            left_out.append((volume, found.reason))
        elif found.confidence < min_confidence:
            left_out.append((volume, f"{found.reason} (only {found.confidence:.0%} sure)"))
        elif found.modality not in wanted:
            left_out.append((volume, f"{found.modality.value}: the model has no {found.modality.value} channel"))
        elif found.modality.value in mapping:
            holder = mapping[found.modality.value]
            left_out.append((volume, f"{found.modality.value} is already filled "
                                     f"({holder.identification.evidence}, {holder.identification.confidence:.0%})"))
        else:
            mapping[found.modality.value] = MappedVolume(volume, found)
    order = [m.value for m in wanted]
    return {c: mapping[c] for c in order if c in mapping}, left_out
