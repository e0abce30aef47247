"""Modality and disease vocabularies, and the validated mapping of user volumes onto model channels.

Real files and DICOM series name the same MRI contrast in many ways (``t2f``, ``T2-FLAIR``, ``AX FLAIR``...). Every
part of BrainLesionCL (CLI, batch mode, Slicer auto-map, training manifests) resolves names through this one registry,
so a name that works in one place works everywhere.

A model declares its own channel order (``BRAINCL_CHANNEL_ORDER``, ``MULTIUNET_CHANNEL_ORDER``, or the order stored
in a bundle). :func:`map_channels` turns ``{user name: volume}`` into ``{model channel: volume}`` and refuses, with a
specific error, unknown names, two names for one channel, one volume for two channels, modalities the model lacks,
and an empty mapping.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Hashable, Mapping, Sequence
from enum import Enum
from typing import TypeVar

from .errors import (
    ChannelMappingError,
    DiseaseNotSupportedError,
    DuplicateChannelError,
    NoChannelError,
    UnknownModalityError,
)

__all__ = [
    "Modality",
    "Disease",
    "BRAINCL_CHANNEL_ORDER",
    "MULTIUNET_CHANNEL_ORDER",
    "BRAINCL_DISEASE_SLOTS",
    "resolve_modality",
    "guess_modality",
    "resolve_disease",
    "disease_context",
    "map_channels",
]


class Modality(str, Enum):
    """MRI contrasts BrainLesionCL knows. The value is the canonical display name."""

    FLAIR = "FLAIR"
    T1 = "T1"
    T1C = "T1c"
    T2 = "T2"
    PD = "PD"
    DWI = "DWI"
    SWI = "SWI"
    ADC = "ADC"

    def __str__(self) -> str:
        return self.value


def _norm(text: str) -> str:
    """Lower-case and drop everything but letters and digits: ``'T2-FLAIR'`` -> ``'t2flair'``."""
    return re.sub(r"[^a-z0-9+]", "", text.lower()).replace("+", "plus")


# Aliases are matched after normalisation (see _norm). Order inside a list does not matter.
_ALIASES: dict[Modality, tuple[str, ...]] = {
    Modality.FLAIR: (
        "flair", "t2f", "t2flair", "t2wflair", "flairt2", "darkfluid", "t2fluid", "fluidattenuated",
        "fluidattenuatedinversionrecovery", "tirmflair", "spaceflair", "cubeflair", "3dflair",
    ),
    Modality.T1: (
        "t1", "t1n", "t1w", "t1native", "t1pre", "t1precontrast", "mprage", "mprange", "spgr", "fspgr", "bravo",
        "tfe", "t1tfe", "t13d", "3dt1", "t1weighted", "t1mprage", "t1se", "t1tse", "t1flair",
    ),
    Modality.T1C: (
        "t1c", "t1ce", "t1gd", "t1post", "t1postcontrast", "t1contrast", "t1plusc", "t1pluscontrast", "t1wce", "t1wc",
        "t1cgd", "t1gad", "t1plusgd", "postgd", "postcontrast", "gd", "gad", "t1wpost", "mpragepost", "mpragegd",
        "t1cplus", "t1enhanced", "ce", "t1wgd",
    ),
    Modality.T2: ("t2", "t2w", "t2weighted", "t2tse", "t2fse", "tse", "fse", "t2space", "t2wi", "t2ax"),
    Modality.PD: ("pd", "pdw", "dp", "protondensity", "pdweighted", "pdtse"),
    Modality.DWI: ("dwi", "b1000", "diffusion", "dwib1000", "trace", "dwitrace", "diffusionweighted", "ep2ddiff"),
    Modality.SWI: ("swi", "swan", "susceptibility", "susceptibilityweighted", "t2star", "t2s", "gre", "t2gre", "swip"),
    Modality.ADC: ("adc", "apparentdiffusion", "apparentdiffusioncoefficient", "adcmap", "dwiadc"),
}

_ALIAS_TO_MODALITY: dict[str, Modality] = {}
for _modality, _names in _ALIASES.items():
    for _name in (*_names, _norm(_modality.value)):
        if _ALIAS_TO_MODALITY.get(_name, _modality) is not _modality:
            raise RuntimeError(f"alias {_name!r} is claimed by two modalities")  # guards the table above
        _ALIAS_TO_MODALITY[_name] = _modality

#: Channel order of the published BrainCL MoE model: sorted union of its training modalities.
BRAINCL_CHANNEL_ORDER: tuple[Modality, ...] = (
    Modality.DWI, Modality.FLAIR, Modality.PD, Modality.T1, Modality.T1C, Modality.T2,
)
#: Channel order of the published MultiUnet model (PD was named "DP" when it was trained, hence first).
MULTIUNET_CHANNEL_ORDER: tuple[Modality, ...] = (
    Modality.PD, Modality.FLAIR, Modality.SWI, Modality.T1, Modality.T1C, Modality.T2,
)


def resolve_modality(name: str | Modality) -> Modality:
    """Return the modality a name or alias denotes.

    Args:
        name: a canonical name (``"T1c"``), an alias (``"t1ce"``, ``"T1Gd"``, ``"MPRAGE"``) or a :class:`Modality`.

    Raises:
        UnknownModalityError: nothing matches; the message lists the closest known names.

    Example:
        >>> resolve_modality("T2-FLAIR")
        <Modality.FLAIR: 'FLAIR'>
    """
    if isinstance(name, Modality):
        return name
    key = _norm(str(name))
    if key in _ALIAS_TO_MODALITY:
        return _ALIAS_TO_MODALITY[key]
    close = difflib.get_close_matches(key, list(_ALIAS_TO_MODALITY), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownModalityError(
        f"Unknown modality {name!r}.{hint} Known modalities: {', '.join(m.value for m in Modality)} "
        "(aliases such as t2f, T2-FLAIR, t1ce, T1Gd, MPRAGE, t1n, t2w, b1000 are accepted)."
    )


def guess_modality(description: str) -> Modality | None:
    """Guess the modality from a file name, volume name or DICOM series description.

    Used by case folders and auto-mapping; it never raises. The rules live in
    :func:`brainlesioncl.identification.identify_name` (vendor series descriptions, contrast markers, series that must
    never be mapped); this returns its answer when it is confident enough, else None.

    Example:
        >>> guess_modality("BraTS-GLI-00001-000-t2f.nii.gz")
        <Modality.FLAIR: 'FLAIR'>
    """
    from .identification.names import identify_name

    found = identify_name(description)
    return found.modality if found.confidence >= 0.6 else None


class Disease(str, Enum):
    """Disease tags a user can pick. Routing is documented in :func:`disease_context`."""

    TUMOUR = "tumour"
    STROKE = "stroke"
    MS = "MS"
    WMH = "WMH"
    METASTASIS = "metastasis"
    UNKNOWN = "unknown"
    #: Decided per case from the image by the model's disease router (:mod:`brainlesioncl.inference.routing`).
    AUTO = "auto"

    def __str__(self) -> str:
        return self.value


_DISEASE_ALIASES: dict[str, Disease] = {
    "tumour": Disease.TUMOUR, "tumor": Disease.TUMOUR, "glioma": Disease.TUMOUR, "brats": Disease.TUMOUR,
    "stroke": Disease.STROKE, "ischemia": Disease.STROKE, "ischaemia": Disease.STROKE, "infarct": Disease.STROKE,
    "atlas": Disease.STROKE, "isles": Disease.STROKE,
    "ms": Disease.MS, "multiplesclerosis": Disease.MS, "msseg": Disease.MS,
    "wmh": Disease.WMH, "whitematterhyperintensities": Disease.WMH, "whitematterhyperintensity": Disease.WMH,
    "metastasis": Disease.METASTASIS, "metastases": Disease.METASTASIS, "mets": Disease.METASTASIS,
    "met": Disease.METASTASIS,
    "unknown": Disease.UNKNOWN, "other": Disease.UNKNOWN, "none": Disease.UNKNOWN,
    "auto": Disease.AUTO, "automatic": Disease.AUTO,
}

#: Disease slots (one-hot order) of the published BrainCL model.
BRAINCL_DISEASE_SLOTS: tuple[Disease, ...] = (Disease.TUMOUR, Disease.STROKE, Disease.MS, Disease.WMH)


def resolve_disease(name: str | Disease) -> Disease:
    """Return the disease tag a name denotes (``"tumor"``, ``"glioma"`` -> tumour, ``"multiple sclerosis"`` -> MS)."""
    if isinstance(name, Disease):
        return name
    key = _norm(str(name))
    if key in _DISEASE_ALIASES:
        return _DISEASE_ALIASES[key]
    raise DiseaseNotSupportedError(
        f"Unknown disease tag {name!r}. Use one of: {', '.join(d.value for d in Disease)}."
    )


def disease_context(disease: str | Disease, slots: Sequence[str | Disease]) -> list[float]:
    """The disease part of the MoE context vector for a model with the given disease slots.

    Routing:
        * a tag the model has a slot for: one-hot on that slot (the reference behaviour);
        * ``metastasis`` without its own slot: the ``tumour`` slot (enhancing lesions with oedema are what the tumour
          experts saw). When a two-stage metastasis model is installed, the segmentation front end routes metastasis
          there instead; this function only serves the MoE U-Net;
        * ``unknown``: a uniform vector (1/n on every slot). The gates are linear in the context, so this averages the
          gate logits of all diseases: a neutral mixture rather than a guess.

    Raises:
        DiseaseNotSupportedError: the model has no slot for the tag and no fallback applies.
    """
    tag = resolve_disease(disease)
    if tag is Disease.AUTO:
        raise DiseaseNotSupportedError(
            "'auto' is decided per case from the image (Segmenter.segment does it); a context vector needs the "
            "chosen disease or 'unknown'.")
    resolved = [resolve_disease(s) for s in slots]
    if not resolved:
        raise DiseaseNotSupportedError("The model declares no disease slots; it cannot take a disease tag.")
    if tag is Disease.UNKNOWN:
        return [1.0 / len(resolved)] * len(resolved)
    if tag not in resolved and tag is Disease.METASTASIS and Disease.TUMOUR in resolved:
        tag = Disease.TUMOUR
    if tag not in resolved:
        raise DiseaseNotSupportedError(
            f"This model has no slot for disease {tag.value!r}; it knows {', '.join(s.value for s in resolved)} "
            "(or 'unknown'). Pick one of those, or train an episode for the new disease to add it."
        )
    return [1.0 if s is tag else 0.0 for s in resolved]


V = TypeVar("V")


#: ``{channel: value}`` keyed by :class:`Modality`, by name or alias, or by both (mappings are invariant in the key).
ByChannel = Mapping[Modality, V] | Mapping[str, V] | Mapping[str | Modality, V]


def map_channels(
    inputs: ByChannel[V],
    channel_order: Sequence[str | Modality],
) -> dict[Modality, V]:
    """Validate and resolve ``{user name: volume}`` into ``{model channel: volume}``.

    Args:
        inputs: user-facing names (aliases allowed) mapped to volumes (paths, images, MRML nodes...).
        channel_order: the model's channels. Volumes are the same when they are the same object, or paths to the
            same resolved file.

    Returns:
        The mapping keyed by canonical modality, ordered like ``channel_order``.

    Raises:
        NoChannelError: ``inputs`` is empty.
        UnknownModalityError: a name matches no modality.
        DuplicateChannelError: two names resolve to one modality, or one volume is given for two modalities.
        ChannelMappingError: a modality is not among the model's channels.
    """
    if not inputs:
        raise NoChannelError(
            "No input volume was given. Map at least one volume to a channel, e.g. --input FLAIR=flair.nii.gz."
        )
    order = [resolve_modality(c) for c in channel_order]
    resolved: dict[Modality, V] = {}
    given_as: dict[Modality, str] = {}
    seen_volumes: dict[Hashable, Modality] = {}
    for name, volume in inputs.items():
        modality = resolve_modality(name)
        if modality in resolved:
            raise DuplicateChannelError(
                f"Both {given_as[modality]!r} and {str(name)!r} map to channel {modality.value}. "
                "Give each modality once."
            )
        identity = _volume_identity(volume)
        if identity in seen_volumes:
            raise DuplicateChannelError(
                f"The same volume is mapped to both {seen_volumes[identity].value} and {modality.value}. "
                "Each channel needs its own acquisition; remove one of the two mappings."
            )
        if modality not in order:
            raise ChannelMappingError(
                f"The model has no {modality.value} channel; its channels are "
                f"{', '.join(m.value for m in order)}. Leave {modality.value} out, or make a version that takes it: "
                f"brainlesioncl adapt --reassign {modality.value}=SLOT (carry it in an unused channel, e.g. "
                f"{modality.value}=PD) or adapt --expand {modality.value}, then train an episode on cases that have it."
            )
        resolved[modality] = volume
        given_as[modality] = str(name)
        seen_volumes[identity] = modality
    return {m: resolved[m] for m in order if m in resolved}


def _volume_identity(volume: object) -> Hashable:
    """Paths compare by their resolved location, everything else by object identity."""
    import os
    from pathlib import Path

    if isinstance(volume, (str, os.PathLike)):
        return ("path", str(Path(volume).expanduser().resolve()))
    return ("object", id(volume))
