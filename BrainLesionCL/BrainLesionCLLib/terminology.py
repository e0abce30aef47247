"""Segment names, colours and SNOMED CT terminology per disease tag.

The terminology string is Slicer's ``TerminologyEntry`` tag format: context ~ category ~ type ~ type modifier ~
anatomic context ~ region ~ region modifier, each coded as ``scheme^value^meaning``. Codes are SNOMED CT:
49755003 Morphologically altered structure (category); 108369006 Neoplasm; 14799000 Neoplasm, metastatic;
55641003 Infarct; 52988006 Lesion; 6574001 Necrosis; 79654002 Edema.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["METASTASIS_CLASSES", "SegmentStyle", "style_for"]

_CATEGORY = "SCT^49755003^Morphologically Altered Structure"
_CONTEXT = "Segmentation category and type - 3D Slicer General Anatomy list"
_ANATOMY = "Anatomic codes - DICOM master list"


@dataclass(frozen=True)
class SegmentStyle:
    name: str
    color: tuple[float, float, float]
    type_code: str  # scheme^value^meaning

    @property
    def terminology(self) -> str:
        return f"{_CONTEXT}~{_CATEGORY}~{self.type_code}~^^~{_ANATOMY}~^^~^^"


_STYLES = {
    "tumour": SegmentStyle("Tumour", (0.86, 0.24, 0.20), "SCT^108369006^Neoplasm"),
    "metastasis": SegmentStyle("Metastasis", (1.00, 0.50, 0.10), "SCT^14799000^Neoplasm, metastatic"),
    "stroke": SegmentStyle("Stroke lesion", (0.95, 0.80, 0.15), "SCT^55641003^Infarct"),
    "MS": SegmentStyle("MS lesion", (0.20, 0.60, 1.00), "SCT^52988006^Lesion"),
    "WMH": SegmentStyle("White matter hyperintensity", (0.62, 0.35, 0.90), "SCT^52988006^Lesion"),
    "unknown": SegmentStyle("Lesion", (0.95, 0.90, 0.25), "SCT^52988006^Lesion"),
}


def style_for(disease: str) -> SegmentStyle:
    """The segment style of a disease tag (an alias is resolved by the engine first)."""
    from brainlesioncl.modalities import resolve_disease

    return _STYLES[resolve_disease(disease).value]


#: The two-stage metastasis model's label values -> segments (enhancing first: what a clinician looks at first).
METASTASIS_CLASSES: list[tuple[int, SegmentStyle]] = [
    (3, SegmentStyle("Enhancing metastasis", (1.00, 0.50, 0.10), "SCT^14799000^Neoplasm, metastatic")),
    (1, SegmentStyle("Necrotic core", (0.55, 0.27, 0.07), "SCT^6574001^Necrosis")),
    (2, SegmentStyle("Oedema", (0.45, 0.80, 0.95), "SCT^79654002^Edema")),
]
