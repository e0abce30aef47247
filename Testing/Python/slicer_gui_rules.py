"""Which parameter types Slicer's parameterNodeWrapper binds to which widget classes.

Facts read from Slicer's ``Base/Python/slicer/parameterNodeWrapper/guiConnectors.py`` (summarised in
``../shared/reference/SLICER_GUI_CONNECTORS.md``): a connector is chosen on the **exact** widget class, and no match
raises ``RuntimeError("Unable to create GUI connector ...")`` inside ``connectGui``, i.e. in the panel's ``setup()``.
Both the binding contract test and the widget harness use this one table.
"""

from __future__ import annotations

CHOICE_WIDGETS = {"QComboBox", "ctkComboBox"}

#: base parameter type (after stripping ``Annotated``) -> widget classes a connector accepts.
CONNECTORS: dict[str, set[str]] = {
    "bool": {"QCheckBox", "ctkCheckBox", "QPushButton", "ctkCheckablePushButton"},
    "int": {"QSlider", "QSpinBox", "QDoubleSpinBox", "ctkSliderWidget", "qMRMLSliderWidget", "ctkDoubleSlider",
            "ctkDoubleSpinBox", "qMRMLSpinBox"},
    "float": {"QDoubleSpinBox", "ctkSliderWidget", "qMRMLSliderWidget", "ctkDoubleSlider", "ctkDoubleSpinBox",
              "qMRMLSpinBox"},
    "str": {"QLineEdit", "QLabel", "QTextEdit"},
    "pathlib.Path": {"ctkPathLineEdit", "ctkDirectoryButton"},
    "Path": {"ctkPathLineEdit", "ctkDirectoryButton"},
    "FloatRange": {"ctkRangeWidget", "ctkDoubleRangeSlider", "qMRMLRangeWidget"},
    "node": {"qMRMLNodeComboBox"},
    "qt.QColor": {"ctkColorPickerButton"},
}


def accepted_widgets(base_type: str) -> set[str]:
    """Widget classes a parameter of ``base_type`` (``node`` for any vtkMRML*Node, ``enum`` for an Enum subclass)
    may be bound to. A combo box represents int/float/str/bool and enums (its choices come from a ``Choice``
    annotation, otherwise from the combo's items)."""
    accepted = set(CONNECTORS.get(base_type, set()))
    if base_type in ("int", "float", "str", "bool", "enum"):
        accepted |= CHOICE_WIDGETS
    return accepted
