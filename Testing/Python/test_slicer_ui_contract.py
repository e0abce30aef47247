"""Binding contract of the Slicer panel, checked without Slicer: every widget of ``BrainLesionCL.ui`` that carries a
``SlicerParameterName`` must be of a class Slicer's parameterNodeWrapper can bind to that parameter's declared type
(exact class, as ``guiConnectors.py`` checks it). A mismatch makes ``connectGui`` raise inside ``setup()``: the panel
would not open. Read from the source files only (AST + XML), so nothing of the module is imported.
"""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET

import pytest
from slicer_gui_rules import accepted_widgets

from conftest import REPO

MODULE = REPO / "BrainLesionCL" / "BrainLesionCL.py"
UI = REPO / "BrainLesionCL" / "Resources" / "UI" / "BrainLesionCL.ui"


def parameter_types() -> dict[str, str]:
    """``{parameter: base type}`` of the ``@parameterNodeWrapper`` class (``node`` for MRML node types)."""
    tree = ast.parse(MODULE.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(
                ast.unparse(d).endswith("parameterNodeWrapper") for d in node.decorator_list):
            types = {}
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    annotation = item.annotation
                    if isinstance(annotation, ast.Subscript) and ast.unparse(annotation.value) == "Annotated":
                        annotation = annotation.slice.elts[0]  # type: ignore[attr-defined]
                    text = ast.unparse(annotation)
                    types[item.target.id] = "node" if re.match(r"(slicer\.)?vtkMRML\w+Node$", text) else text
            return types
    raise AssertionError("no @parameterNodeWrapper class in BrainLesionCL.py")


def ui_bindings() -> list[tuple[str, str, str]]:
    """``(widget name, widget class, parameter name)`` for every widget bound to a parameter."""
    bindings = []
    for widget in ET.parse(UI).getroot().iter("widget"):
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bindings.append((widget.get("name"), widget.get("class"), prop.findtext("string")))
    return bindings


def test_the_rule_table_encodes_slicers_exact_class_check() -> None:
    """The defect that kept the panel from opening: a ``str`` parameter on a ``ctkPathLineEdit``."""
    assert "ctkPathLineEdit" not in accepted_widgets("str")
    assert "ctkPathLineEdit" in accepted_widgets("pathlib.Path")
    assert "QPlainTextEdit" not in accepted_widgets("str") and "QSpinBox" not in accepted_widgets("float")


def test_every_bound_widget_has_a_connector() -> None:
    types = parameter_types()
    bindings = ui_bindings()
    assert len(bindings) >= 6
    for name, cls, parameter in bindings:
        assert parameter in types, f"{name} is bound to {parameter!r}, which the parameter node does not declare"
        accepted = accepted_widgets(types[parameter])
        assert cls in accepted, (f"{name} ({cls}) is bound to {parameter}: {types[parameter]}; Slicer binds that type "
                                 f"only to {sorted(accepted)}: connectGui would raise in setup()")


def test_every_widget_the_module_uses_is_in_the_ui() -> None:
    names = {w.get("name") for w in ET.parse(UI).getroot().iter("widget")}
    names |= {layout.get("name") for layout in ET.parse(UI).getroot().iter("layout")}
    used = set(re.findall(r"self\.ui\.(\w+)", MODULE.read_text(encoding="utf-8")))
    assert used <= names, f"the module uses widgets the .ui does not define: {sorted(used - names)}"


@pytest.mark.parametrize("parameter", ["casesFolder", "casesManifest"])
def test_case_sources_are_paths(parameter: str) -> None:
    """A folder is picked with a directory button, a manifest with a file line edit; both are pathlib.Path."""
    assert parameter_types()[parameter] in ("pathlib.Path", "Path")
