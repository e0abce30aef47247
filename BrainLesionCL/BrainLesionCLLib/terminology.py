"""Segment names, colours and SNOMED CT terminology per disease tag, as Slicer's segments carry them (the names,
codes and colours come from the engine's one table, :mod:`brainlesioncl.terminology`, which DICOM SEG uses too).

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

from brainlesioncl.modalities import Disease
from brainlesioncl.terminology import SegmentTerm, class_terms, disease_term

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


def _style(term: SegmentTerm) -> SegmentStyle:
    return SegmentStyle(term.name, term.color, f"{term.type.scheme}^{term.type.value}^{term.type.meaning}")


_STYLES = {tag.value: _style(disease_term(tag)) for tag in Disease if tag is not Disease.AUTO}


#: The brain mask of a raw exam (an anatomical structure, not a lesion).
BRAIN_STYLE = SegmentStyle("Brain", (0.98, 0.82, 0.62), "SCT^12738006^Brain", category=_ANATOMICAL)


def style_for(disease: str) -> SegmentStyle:
    """The segment style of a disease tag (an alias is resolved by the engine first; auto: the caller passes the
    choice when known)."""
    return _style(disease_term(disease))


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
METASTASIS_CLASSES: list[tuple[int, SegmentStyle]] = [(v, _style(t)) for v, t in class_terms(Disease.METASTASIS)]
#: A glioma split into its sub-regions (3 enhancing, 1 necrotic/non-enhancing core, 2 oedema).
TUMOUR_SUBREGION_CLASSES: list[tuple[int, SegmentStyle]] = [(v, _style(t)) for v, t in class_terms(Disease.TUMOUR)]


def classes_for(disease: str) -> list[tuple[int, SegmentStyle]]:
    """The segments of a multi-class result: the metastasis classes, or a tumour's sub-regions."""
    return [(value, _style(term)) for value, term in class_terms(disease)]
