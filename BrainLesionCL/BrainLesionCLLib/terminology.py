"""Segment names, colours and SNOMED CT terminology per disease tag.

The codes live in the module's own terminology context, ``Resources/Terminology/BrainLesionCL.term.json``
("BrainLesionCL brain lesions"), which the logic loads into Slicer's Terminologies module: Slicer's "General Anatomy
list" has no Neoplasm, Infarct, Demyelination or Lesion type, so a segment tagged with that context would carry codes
that do not exist there. The tag string is Slicer's ``TerminologyEntry`` format: context ~ category ~ type ~ type
modifier ~ anatomic context ~ region ~ region modifier, each coded as ``scheme^value^meaning``. SNOMED CT codes:
49755003 Morphologically abnormal structure (category); 108369006 Neoplasm; 14799000 Neoplasm, metastatic; 55641003
Infarct; 32693004 Demyelination; 52988006 Lesion; 6574001 Necrosis; 79654002 Edema; region 12738006 Brain; and, for
a raw exam's brain mask, category 123037004 Anatomical Structure with type 12738006 Brain."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BRAIN_STYLE", "CONTEXT_NAME", "METASTASIS_CLASSES", "TERMINOLOGY_FILE", "TUMOUR_SUBREGION_CLASSES",
           "SegmentStyle", "classes_for", "load_terminology", "style_for"]

TERMINOLOGY_FILE = Path(__file__).resolve().parents[1] / "Resources" / "Terminology" / "BrainLesionCL.term.json"
CONTEXT_NAME = json.loads(TERMINOLOGY_FILE.read_text(encoding="utf-8"))["SegmentationCategoryTypeContextName"]
_CATEGORY = "SCT^49755003^Morphologically Abnormal Structure"
_ANATOMY = "Anatomic codes - DICOM master list"
_BRAIN = "SCT^12738006^Brain"
_ANATOMICAL = "SCT^123037004^Anatomical Structure"


@dataclass(frozen=True)
class SegmentStyle:
    name: str
    color: tuple[float, float, float]
    type_code: str  # scheme^value^meaning
    category: str = _CATEGORY

    @property
    def terminology(self) -> str:
        region = "^^" if self.category == _ANATOMICAL else _BRAIN  # the brain is not located *in* the brain
        return f"{CONTEXT_NAME}~{self.category}~{self.type_code}~^^~{_ANATOMY}~{region}~^^"


_STYLES = {
    "tumour": SegmentStyle("Tumour", (0.86, 0.24, 0.20), "SCT^108369006^Neoplasm"),
    "metastasis": SegmentStyle("Metastasis", (1.00, 0.50, 0.10), "SCT^14799000^Neoplasm, metastatic"),
    "stroke": SegmentStyle("Stroke lesion", (0.95, 0.80, 0.15), "SCT^55641003^Infarct"),
    "MS": SegmentStyle("MS lesion", (0.20, 0.60, 1.00), "SCT^32693004^Demyelination"),
    "WMH": SegmentStyle("White matter hyperintensity", (0.62, 0.35, 0.90), "SCT^52988006^Lesion"),
    "unknown": SegmentStyle("Lesion", (0.95, 0.90, 0.25), "SCT^52988006^Lesion"),
}


#: The brain mask of a raw exam (an anatomical structure, not a lesion).
BRAIN_STYLE = SegmentStyle("Brain", (0.98, 0.82, 0.62), "SCT^12738006^Brain", category=_ANATOMICAL)


def style_for(disease: str) -> SegmentStyle:
    """The segment style of a disease tag (an alias is resolved by the engine first)."""
    from brainlesioncl.modalities import Disease, resolve_disease

    tag = resolve_disease(disease)
    return _STYLES["unknown" if tag is Disease.AUTO else tag.value]  # auto: the caller passes the choice when known


def load_terminology(slicer_module) -> bool:
    """Load the module's terminology context into Slicer's Terminologies module (once); False when that module is
    not there (headless core)."""
    modules = getattr(slicer_module, "modules", None)
    terminologies = getattr(modules, "terminologies", None)
    if terminologies is None:
        return False
    logic = terminologies.logic()
    names = []
    if hasattr(logic, "GetLoadedTerminologyNames"):
        import vtk

        loaded = vtk.vtkStringArray()
        logic.GetLoadedTerminologyNames(loaded)
        names = [loaded.GetValue(i) for i in range(loaded.GetNumberOfValues())]
    if CONTEXT_NAME not in names:
        logic.LoadTerminologyFromFile(str(TERMINOLOGY_FILE))
    return True


#: The two-stage metastasis model's label values -> segments (enhancing first: what a clinician looks at first).
METASTASIS_CLASSES: list[tuple[int, SegmentStyle]] = [
    (3, SegmentStyle("Enhancing metastasis", (1.00, 0.50, 0.10), "SCT^14799000^Neoplasm, metastatic")),
    (1, SegmentStyle("Necrotic core", (0.55, 0.27, 0.07), "SCT^6574001^Necrosis")),
    (2, SegmentStyle("Oedema", (0.45, 0.80, 0.95), "SCT^79654002^Edema")),
]

#: A glioma split into its sub-regions (brainlesioncl.subregions: 3 enhancing, 1 necrotic/non-enhancing core,
#: 2 oedema), in the order a neuro-oncologist reads them.
TUMOUR_SUBREGION_CLASSES: list[tuple[int, SegmentStyle]] = [
    (3, SegmentStyle("Enhancing tumour", (0.86, 0.24, 0.20), "SCT^108369006^Neoplasm")),
    (1, SegmentStyle("Necrotic / non-enhancing core", (0.55, 0.27, 0.07), "SCT^6574001^Necrosis")),
    (2, SegmentStyle("Oedema", (0.45, 0.80, 0.95), "SCT^79654002^Edema")),
]


def classes_for(disease: str) -> list[tuple[int, SegmentStyle]]:
    """The segments of a multi-class result: the metastasis classes, or a tumour's sub-regions."""
    from brainlesioncl.modalities import Disease, resolve_disease

    return METASTASIS_CLASSES if resolve_disease(disease) is Disease.METASTASIS else TUMOUR_SUBREGION_CLASSES
