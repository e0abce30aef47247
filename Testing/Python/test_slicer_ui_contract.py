"""Binding contract of the Slicer panel, decided by Slicer's own code: every widget of ``BrainLesionCL.ui`` that carries
a ``SlicerParameterName`` must get a GUI connector from Slicer's ``parameterNodeWrapper.createGuiConnector`` (executed
from ``../shared/reference/slicer_python``) for that parameter's declared type. A widget without one makes
``connectGui`` raise inside ``setup()``: the panel would not open in Slicer.
"""

from __future__ import annotations

import re
import typing
import xml.etree.ElementTree as ET

import pytest
import slicer_runtime

from conftest import REPO

MODULE = REPO / "BrainLesionCL" / "BrainLesionCL.py"
UI = REPO / "BrainLesionCL" / "Resources" / "UI" / "BrainLesionCL.ui"


@pytest.fixture
def slicer_python(slicer_core, monkeypatch):
    """Slicer's own Python over the Qt/CTK stand-ins, the module file loaded as Slicer loads it."""
    runtime = slicer_runtime.install(monkeypatch, slicer_core)
    runtime.module = slicer_runtime.load_module(monkeypatch, runtime)
    return runtime


def bound_widgets() -> dict[str, object]:
    """``{parameter name: widget}`` of the .ui, built by the stand-in ``QUiLoader`` (Slicer's ``loadUI``)."""
    import slicer

    top = slicer.util.loadUI(str(UI))
    return {w.property("SlicerParameterName"): w for w in slicer.util.findChildren(top)
            if w.property("SlicerParameterName")}


def test_every_bound_widget_gets_a_connector_from_slicers_own_code(slicer_python) -> None:
    """Issue 29, defect 1: ``prepare: str`` on a QComboBox: Slicer's ``QComboBoxToStringableConnector`` requires a
    ``Choice`` annotation and raised. Every binding is checked here, not only that one."""
    from slicer.parameterNodeWrapper import createGuiConnector

    parameters = slicer_python.module.BrainLesionCLParameterNode
    widgets = bound_widgets()
    assert len(widgets) >= 10
    for name, widget in widgets.items():
        assert name in parameters.allParameters, f"{widget.objectName} is bound to {name!r}, which is not declared"
        createGuiConnector(widget, parameters.dataType(name))  # raises as in Slicer's setup()


def test_a_combo_bound_without_choice_is_refused_by_slicers_code(slicer_python) -> None:
    """The rule that broke the panel, shown on Slicer's own code: a plain ``str`` on a combo box has no connector."""
    import qt
    from slicer.parameterNodeWrapper import createGuiConnector

    with pytest.raises(RuntimeError, match="requires the Choice annotation"):
        createGuiConnector(qt.QComboBox(), str)


def test_choices_of_every_bound_combo_are_what_the_engine_accepts(slicer_python) -> None:
    """A bound combo shows exactly its ``Choice`` values (Slicer's connector replaces the .ui's items)."""
    from slicer.parameterNodeWrapper import createGuiConnector
    from slicer.parameterNodeWrapper.validators import Choice

    from brainlesioncl.preparation.stage import PREPARE_MODES

    parameters = slicer_python.module.BrainLesionCLParameterNode
    combos = {name: w for name, w in bound_widgets().items() if type(w).__name__ in ("QComboBox", "ctkComboBox")}
    assert "prepare" in combos
    for name, combo in combos.items():
        createGuiConnector(combo, parameters.dataType(name))
        choices = next(a.choices for a in typing.get_args(parameters.dataType(name))[1:] if isinstance(a, Choice))
        assert [combo.itemText(i) for i in range(combo.count)] == [str(c) for c in choices]
    assert tuple(next(a.choices for a in typing.get_args(parameters.dataType("prepare"))[1:]
                      if isinstance(a, Choice))) == tuple(PREPARE_MODES)


def test_every_widget_the_module_uses_is_in_the_ui() -> None:
    names = {w.get("name") for w in ET.parse(UI).getroot().iter("widget")}
    names |= {layout.get("name") for layout in ET.parse(UI).getroot().iter("layout")}
    used = set(re.findall(r"self\.ui\.(\w+)", MODULE.read_text(encoding="utf-8")))
    assert used <= names, f"the module uses widgets the .ui does not define: {sorted(used - names)}"
