"""What each segment of a result is, in SNOMED CT: one table for every output that names segments.

DICOM SEG and SR (:mod:`brainlesioncl.dicom_export`) and the Slicer module's segments (``BrainLesionCLLib.terminology``)
read it, so a lesion is coded the same in the PACS and on the screen. Category 49755003 Morphologically abnormal
structure; types 108369006 Neoplasm, 14799000 Neoplasm, metastatic, 55641003 Infarct, 32693004 Demyelination,
52988006 Lesion, 6574001 Necrosis, 79654002 Edema; region 12738006 Brain.
"""

from __future__ import annotations

from dataclasses import dataclass

from .modalities import Disease, resolve_disease

__all__ = ["BRAIN", "CATEGORY", "Code", "SegmentTerm", "class_terms", "disease_term"]


@dataclass(frozen=True)
class Code:
    """A coded concept: value, scheme, meaning (as DICOM and Slicer's terminologies spell them)."""

    value: str
    meaning: str
    scheme: str = "SCT"


@dataclass(frozen=True)
class SegmentTerm:
    """A segment's display name, SNOMED CT type and recommended colour (RGB, 0..1)."""

    name: str
    type: Code
    color: tuple[float, float, float]


CATEGORY = Code("49755003", "Morphologically Abnormal Structure")
BRAIN = Code("12738006", "Brain")
_NEOPLASM = Code("108369006", "Neoplasm")
_METASTATIC = Code("14799000", "Neoplasm, metastatic")
_NECROSIS = Code("6574001", "Necrosis")
_EDEMA = Code("79654002", "Edema")

_BY_DISEASE = {
    Disease.TUMOUR: SegmentTerm("Tumour", _NEOPLASM, (0.86, 0.24, 0.20)),
    Disease.METASTASIS: SegmentTerm("Metastasis", _METASTATIC, (1.00, 0.50, 0.10)),
    Disease.STROKE: SegmentTerm("Stroke lesion", Code("55641003", "Infarct"), (0.95, 0.80, 0.15)),
    Disease.MS: SegmentTerm("MS lesion", Code("32693004", "Demyelination"), (0.20, 0.60, 1.00)),
    Disease.WMH: SegmentTerm("White matter hyperintensity", Code("52988006", "Lesion"), (0.62, 0.35, 0.90)),
    Disease.UNKNOWN: SegmentTerm("Lesion", Code("52988006", "Lesion"), (0.95, 0.90, 0.25)),
}

#: Label value -> segment, for a multi-class result (labels 1 core, 2 oedema, 3 enhancing), enhancing first.
_METASTASIS_CLASSES = [
    (3, SegmentTerm("Enhancing metastasis", _METASTATIC, (1.00, 0.50, 0.10))),
    (1, SegmentTerm("Necrotic core", _NECROSIS, (0.55, 0.27, 0.07))),
    (2, SegmentTerm("Oedema", _EDEMA, (0.45, 0.80, 0.95))),
]
_TUMOUR_CLASSES = [
    (3, SegmentTerm("Enhancing tumour", _NEOPLASM, (0.86, 0.24, 0.20))),
    (1, SegmentTerm("Necrotic / non-enhancing core", _NECROSIS, (0.55, 0.27, 0.07))),
    (2, SegmentTerm("Oedema", _EDEMA, (0.45, 0.80, 0.95))),
]


def disease_term(disease: Disease | str) -> SegmentTerm:
    """The one segment of a one-class result of ``disease`` (``auto`` before the choice is known: a lesion)."""
    tag = resolve_disease(disease)
    return _BY_DISEASE[Disease.UNKNOWN if tag is Disease.AUTO else tag]


def class_terms(disease: Disease | str) -> list[tuple[int, SegmentTerm]]:
    """The segments of a multi-class result: the metastasis classes, or a tumour's sub-regions."""
    return list(_METASTASIS_CLASSES if resolve_disease(disease) is Disease.METASTASIS else _TUMOUR_CLASSES)
