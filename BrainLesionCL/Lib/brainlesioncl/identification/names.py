"""Which MRI contrast a series description or file name denotes, as scanners and sites write them.

The rules are ordered from the most to the least specific, because a wrong channel is worse than an empty one (an ADC
map fed as DWI inverts the stroke signal): series that must never be mapped are recognised first (localizers, scouts,
surveys; perfusion and ASL; derived maps such as FA, phase, MIP; reformatted copies; T2* gradient echo, which is not
SWI), then ADC before diffusion (``ep2d_diff_3scan_trace_p2_ADC`` is an ADC map), then the T1 family with contrast
markers (``+C``, ``GD``, ``POST``, ``CE``, ``KM``...) before plain T1, then FLAIR, PD, T2. Orientation, 2D/3D,
acceleration and numeric tokens are ignored. A description naming two different contrasts (``PD/T2``) is ambiguous and
returns nothing.

Vendor conventions covered (see the table-driven test): Siemens (``t1_mprage_sag_p2_iso``, ``t2_tirm_tra_dark-fluid``,
``ep2d_diff_3scan_trace_p2_TRACEW``, ``t2_swi_tra_p2_mIP``, ``AAHead_Scout``), GE (``Ax T1 SE +C``, ``SAG 3D BRAVO``,
``AX SWAN``, ``3-Plane Loc``), Philips (``T1W_SE+C``, ``T2W_FLAIR_SENSE``, ``dADC``, ``eADC``, ``SWIp``, ``Survey``),
Canon (``T1_AX_CE``, ``FSBB``, ``Locator``), BraTS/BIDS file names (``t2f``, ``t1n``, ``T2w``).
"""

from __future__ import annotations

import re

from ..modalities import Modality
from .result import Identification

__all__ = ["identify_name"]

_SPLIT = re.compile(r"[\s_\-./\\()\[\],;:=^]+")
_EXTENSION = re.compile(r"\.(nii(\.gz)?|nrrd|nhdr|mha|mhd|dcm|json)$", re.IGNORECASE)

#: Words that mark a file as a label/mask, not an image.
_NOT_IMAGE = {"label", "labels", "seg", "segmentation", "mask", "brainmask", "prediction", "pred", "roi", "classes",
              "lesion", "lesions", "gm", "wm", "csf", "pveseg", "tissue"}
#: Series that must never fill a channel, with the reason shown to the user.
_REFUSED: tuple[tuple[set[str], str], ...] = (
    ({"localizer", "localiser", "loc", "scout", "survey", "smartbrain", "tripilot", "locator", "aahead", "3planeloc",
      "planeloc", "calibration", "cal", "refscan", "autoalign"}, "a localizer/scout, not a diagnostic series"),
    ({"perfusion", "perf", "dsc", "dce", "asl", "pasl", "pcasl", "casl", "cbf", "cbv", "mtt", "ttp", "tmax",
      "ep2dperf"}, "a perfusion series"),
    ({"fa", "colfa", "tensor", "dti", "dtitensor", "md", "exp", "tracea", "b0"},
     "a diffusion-tensor or derived diffusion map"),
    ({"mip", "minip", "mnip", "pha", "phase", "qsm", "r2star", "t2map", "t1map", "sub", "subtraction", "cbfmap",
      "diff_map", "mpr", "mpra", "reformat", "reformatted", "mprtra", "mprcor", "mprsag", "3dmpr", "mip_tra",
      "thickslab", "projection"},
     "a derived or reformatted copy of another series (use the original acquisition)"),
    ({"t2star", "t2*", "t2s", "hemo", "hemosiderin", "fl2d", "gre", "t2gre", "ffe", "t2ffe", "mfe"},
     "a T2*-weighted gradient echo, which is not SWI"),
)
_ADC = {"adc", "dadc", "eadc", "adcmap"}
_DWI = {"dwi", "diff", "diffusion", "trace", "tracew", "b1000", "b800", "b1500", "b2000", "ep2ddiff", "dwib1000",
        "isodwi", "resolve"}
_SWI = {"swi", "swan", "swip", "susceptibility", "fsbb", "venobold"}
_FLAIR = {"flair", "t2f", "t2flair", "darkfluid", "spaceflair", "cubeflair", "3dflair", "flairt2", "t2wflair"}
_T1 = {"t1", "t1w", "t1n", "t1wi", "mprage", "mp2rage", "spgr", "fspgr", "bravo", "tfe", "t1tfe", "t1se", "t1tse",
       "t1ffe", "vibe", "fl3d", "t1flair", "t13d", "3dt1", "t1weighted", "mprange", "t1native", "t1pre", "stfe",
       "st1w", "t1mprage", "t1gre", "t1fse", "t1vibe", "t1space", "t1cube", "t1spgr"}
_T1C = {"t1c", "t1ce", "t1gd", "t1post", "t1postcontrast", "t1contrast", "t1wce", "t1wc", "t1cgd", "t1gad",
        "postgd", "postcontrast", "t1enhanced", "t1wgd", "t1km"}
_CONTRAST = {"gd", "gad", "gado", "gadolinium", "post", "ce", "km", "contrast", "kontrast", "mdc", "enhanced",
             "plusc", "cplus", "postc", "dotarem", "gadovist", "multihance", "prohance"}
_PD = {"pd", "pdw", "pdtse", "protondensity", "dp", "pdfse", "pdwi"}
_T2 = {"t2", "t2w", "t2wi", "t2tse", "t2fse", "t2space", "t2ax", "t2weighted", "t2haste", "t2blade", "t2propeller",
       "t2cube", "t2drive"}
#: Turbo spin echo and friends: T2-weighted unless another word names the contrast.
_T2_TECHNIQUE = {"tse", "fse", "haste", "blade", "propeller"}
#: Gradient-echo words that are T1 when a T1 word is present (T1 FLASH, T1 FFE), T2* otherwise.
_GRADIENT_ECHO = {"gre", "ffe", "fl2d", "mfe"}


def _tokens(description: str) -> list[str]:
    stem = _EXTENSION.sub("", description.strip())
    stem = re.sub(r"(?i)t2\s*\*", " t2star ", stem)  # "T2*", "T2 *" before the * is lost
    stem = re.sub(r"\+\s*c\b", " plusc ", stem, flags=re.IGNORECASE)  # "+C", "+ C"
    stem = re.sub(r"(?i)\bc\s*\+", " cplus ", stem)  # "C+"
    stem = re.sub(r"\+", " plus ", stem)
    stem = re.sub(r"(?i)dark[\s_\-]*fluid", " darkfluid ", stem)
    stem = re.sub(r"(?i)apparent[\s_\-]*diffusion[\s_\-]*coefficient", " adc ", stem)
    stem = re.sub(r"(?i)proton[\s_\-]*density", " pd ", stem)
    stem = re.sub(r"(?i)3[\s_\-]*plane[\s_\-]*loc", " 3planeloc ", stem)
    return [t.lower() for t in _SPLIT.split(stem) if t]


def identify_name(description: str) -> Identification:
    """The contrast a series description or file name denotes (see the module docstring for the rules).

    Example:
        >>> identify_name("ep2d_diff_3scan_trace_p2_ADC").modality
        <Modality.ADC: 'ADC'>
    """
    text = description or ""
    tokens = _tokens(text)
    words = set(tokens)
    if not tokens:
        return Identification(None, 0.0, "name", "no name")
    if words & _NOT_IMAGE or any(t.startswith(("prediction", "lesion")) for t in tokens):
        return Identification(None, 0.95, "name", f"'{text}' names a label or mask, not an image", refused=True)
    t1 = words & (_T1 | _T1C)
    for refused_words, reason in _REFUSED:
        hits = words & refused_words
        if t1 and hits <= _GRADIENT_ECHO:  # T1 FLASH / T1 FFE / T1 3D GRE: a T1-weighted gradient echo
            hits = set()
        if hits == {"sub"} and tokens[0] == "sub":  # BIDS "sub-01": a subject, not a subtraction
            hits = set()
        if hits:
            return Identification(None, 0.9, "name", f"'{text}' is {reason}", refused=True)
    if words & _ADC:
        return Identification(Modality.ADC, 0.95, "name", f"'{text}' names an ADC map")
    if words & _DWI:
        return Identification(Modality.DWI, 0.9, "name", f"'{text}' names a diffusion-weighted (trace) series")
    if words & _SWI:
        return Identification(Modality.SWI, 0.9, "name", f"'{text}' names a susceptibility-weighted series")
    contrast = bool(words & (_CONTRAST | _T1C))
    if words & _FLAIR and not t1:
        return Identification(Modality.FLAIR, 0.9, "name", f"'{text}' names a FLAIR series")
    named = {m for m, vocabulary in ((Modality.T1, _T1 | _T1C), (Modality.T2, _T2), (Modality.PD, _PD))
             if words & vocabulary}
    if len(named) > 1:
        return Identification(None, 0.5, "name", f"'{text}' names several contrasts "
                              f"({', '.join(sorted(m.value for m in named))})")
    if named == {Modality.T1}:
        if contrast:
            return Identification(Modality.T1C, 0.9, "name", f"'{text}' names a T1-weighted series with a contrast "
                                  "marker")
        return Identification(Modality.T1, 0.9, "name", f"'{text}' names a T1-weighted series without a contrast "
                              "marker")
    if named == {Modality.PD}:
        return Identification(Modality.PD, 0.9, "name", f"'{text}' names a proton-density series")
    if named == {Modality.T2}:
        return Identification(Modality.T2, 0.9, "name", f"'{text}' names a T2-weighted series")
    if words & _T2_TECHNIQUE and not contrast:
        return Identification(Modality.T2, 0.7, "name", f"'{text}' names a turbo spin echo without a contrast: "
                              "usually T2-weighted")
    if words & _CONTRAST:
        return Identification(Modality.T1C, 0.6, "name", f"'{text}' carries only a contrast marker (post-contrast "
                              "series are T1-weighted)")
    return Identification(None, 0.0, "name", f"'{text}' names no known contrast")
