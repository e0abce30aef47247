"""Small stand-ins for the Qt, CTK and Slicer GUI classes the BrainLesionCL panel uses, so its real code
(``BrainLesionCL/BrainLesionCL.py``: ``setup()``, Auto-map, Segment, Cancel, Train, the model table, scene close) runs
in pytest on top of the real MRML scene of the ``slicer-core`` wheel.

What is real: the module file, its ``.ui`` (parsed here; every widget, property, dynamic ``SlicerParameterName`` and
``<connection>`` is honoured), the MRML scene and nodes, ``slicer.util``'s MRML functions, the logic, the engine and
its child process. What is stood in: widgets (properties and signals only), the parameter-node wrapper (which
enforces Slicer's exact-class connector rule from :mod:`slicer_gui_rules`), dialogs (answers scripted by the test)
and the ``ScriptedLoadable*`` base classes (as Slicer's ``ScriptedLoadableModule.py`` defines their behaviour).

Test-only; never shipped.
"""

from __future__ import annotations

import enum
import json
import pathlib
import sys
import types
import typing
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from slicer_gui_rules import accepted_widgets


# -- Qt ---------------------------------------------------------------------------------------------------------------
def _accepted_arguments(slot: Callable, offered: int) -> int:
    import inspect

    try:
        parameters = inspect.signature(slot).parameters.values()
    except (TypeError, ValueError):
        return offered
    if any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return offered
    return min(offered, sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters))


class QObject:
    def __init__(self, parent: Any = None) -> None:
        self._slots: dict[str, list[Callable]] = defaultdict(list)
        self._blocked = False
        self.name = ""
        self._dynamic: dict[str, Any] = {}

    def connect(self, signal: str, slot: Callable) -> None:
        self._slots[signal].append(slot)

    def disconnect(self, signal: str, slot: Callable | None = None) -> None:
        self._slots[signal] = [s for s in self._slots[signal] if slot is not None and s != slot]

    def emit(self, signal: str, *args: Any) -> None:
        """Call the slots as PythonQt does: a Python callable gets only as many arguments as it accepts (the Slicer
        template connects ``clicked(bool)`` to ``def onApplyButton(self)``)."""
        if not self._blocked:
            for slot in list(self._slots[signal]):
                slot(*args[: _accepted_arguments(slot, len(args))])

    def blockSignals(self, blocked: bool) -> bool:  # noqa: N802 - Qt's name
        previous, self._blocked = self._blocked, blocked
        return previous

    def setProperty(self, name: str, value: Any) -> None:  # noqa: N802
        self._dynamic[name] = value

    def property(self, name: str) -> Any:
        return self._dynamic.get(name)


class QWidget(QObject):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.enabled = True
        self.visible = True
        self.toolTip = ""
        self.text = ""

    def setToolTip(self, text: str) -> None:  # noqa: N802
        self.toolTip = text

    def setEnabled(self, enabled: bool) -> None:  # noqa: N802
        self.enabled = enabled

    def setVisible(self, visible: bool) -> None:  # noqa: N802
        self.visible = visible

    def show(self) -> None:
        self.visible = True

    def hide(self) -> None:
        self.visible = False


class QLabel(QWidget):
    pass


class QPushButton(QWidget):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.checkable = False
        self.checked = False

    def click(self) -> None:
        """What a user's click does: nothing when disabled, else the clicked signal."""
        if not self.enabled:
            return
        if self.checkable:
            self.checked = not self.checked
        self.emit("clicked(bool)", self.checked)
        self.emit("clicked()")


class QCheckBox(QPushButton):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.checkable = True

    def __setattr__(self, key: str, value: Any) -> None:
        changed = key == "checked" and getattr(self, "checked", None) is not None and value != self.checked
        object.__setattr__(self, key, value)
        if changed:
            self.emit("toggled(bool)", value)


class ctkCheckBox(QCheckBox):  # noqa: N801 - CTK's name
    pass


class QComboBox(QWidget):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._items: list[tuple[str, Any]] = []
        self._current = -1

    @property
    def currentIndex(self) -> int:  # noqa: N802
        return self._current

    @currentIndex.setter
    def currentIndex(self, index: int) -> None:  # noqa: N802
        if index != self._current:
            self._current = index
            self.emit("currentIndexChanged(int)", index)
            self.emit("currentTextChanged(QString)", self.currentText)

    @property
    def currentText(self) -> str:  # noqa: N802
        return self._items[self._current][0] if 0 <= self._current < len(self._items) else ""

    @property
    def currentData(self) -> Any:  # noqa: N802
        return self._items[self._current][1] if 0 <= self._current < len(self._items) else None

    def addItem(self, text: str, data: Any = None) -> None:  # noqa: N802
        self._items.append((text, data))
        if self._current < 0:
            self.currentIndex = 0

    def addItems(self, texts) -> None:  # noqa: N802
        for text in texts:
            self.addItem(text)

    def clear(self) -> None:
        self._items = []
        self.currentIndex = -1

    @property
    def count(self) -> int:
        """A Qt property (PythonQt exposes it as a value, not a method)."""
        return len(self._items)

    def itemText(self, index: int) -> str:  # noqa: N802
        return self._items[index][0]

    def itemData(self, index: int) -> Any:  # noqa: N802
        return self._items[index][1]

    def findText(self, text: str) -> int:  # noqa: N802
        return next((i for i, (t, _d) in enumerate(self._items) if t == text), -1)

    def findData(self, data: Any) -> int:  # noqa: N802
        return next((i for i, (_t, d) in enumerate(self._items) if d == data), -1)

    def setCurrentText(self, text: str) -> None:  # noqa: N802
        if (index := self.findText(text)) >= 0:
            self.currentIndex = index


class ctkComboBox(QComboBox):  # noqa: N801
    pass


class QSpinBox(QWidget):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.minimum, self.maximum, self.singleStep, self._value = 0, 99, 1, 0

    @property
    def value(self) -> int:
        return self._value

    @value.setter
    def value(self, value: int) -> None:
        value = max(self.minimum, min(self.maximum, value))
        if value != self._value:
            self._value = value
            self.emit("valueChanged(int)", value)


class QDoubleSpinBox(QSpinBox):
    pass


class QLineEdit(QWidget):
    pass


class QPlainTextEdit(QWidget):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.lines: list[str] = []
        self.readOnly = False
        self.maximumBlockCount = 0

    def appendPlainText(self, text: str) -> None:  # noqa: N802
        self.lines.append(text)

    def toPlainText(self) -> str:  # noqa: N802
        return "\n".join(self.lines)

    def clear(self) -> None:
        self.lines = []


class QTextEdit(QPlainTextEdit):
    pass


class QProgressBar(QWidget):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.value = 0


class QTableWidgetItem:
    def __init__(self, text: str = "") -> None:
        self._text = text

    def text(self) -> str:
        return self._text


class QAbstractItemView:
    SelectRows = 1
    NoEditTriggers = 0
    SingleSelection = 1


class QTableWidget(QWidget):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[list[QTableWidgetItem | None]] = []
        self._columns = 0
        self._current = -1
        self.headers: list[str] = []

    def setColumnCount(self, count: int) -> None:  # noqa: N802
        self._columns = count

    def columnCount(self) -> int:  # noqa: N802
        return self._columns

    def setRowCount(self, count: int) -> None:  # noqa: N802
        self._rows = [[None] * self._columns for _ in range(count)]
        self._current = min(self._current, count - 1)

    @property
    def rowCount(self) -> int:  # noqa: N802 - a Qt property (PythonQt exposes it as a value)
        return len(self._rows)

    def setHorizontalHeaderLabels(self, labels) -> None:  # noqa: N802
        self.headers = list(labels)

    def setItem(self, row: int, column: int, item: QTableWidgetItem) -> None:  # noqa: N802
        self._rows[row][column] = item

    def item(self, row: int, column: int) -> QTableWidgetItem | None:
        return self._rows[row][column]

    def currentRow(self) -> int:  # noqa: N802
        return self._current

    def selectRow(self, row: int) -> None:  # noqa: N802
        """What a user's click on a row does."""
        self._current = row
        self.emit("cellClicked(int,int)", row, 0)
        self.emit("itemSelectionChanged()")

    def texts(self) -> list[list[str]]:
        return [[item.text() if item else "" for item in row] for row in self._rows]

    def setSelectionBehavior(self, *_a) -> None:  # noqa: N802
        pass

    def setSelectionMode(self, *_a) -> None:  # noqa: N802
        pass

    def setEditTriggers(self, *_a) -> None:  # noqa: N802
        pass

    def resizeColumnsToContents(self) -> None:  # noqa: N802
        pass


class QLayout(QObject):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.widgets: list[Any] = []

    def addWidget(self, widget: Any, *_a) -> None:  # noqa: N802
        self.widgets.append(widget)


class QVBoxLayout(QLayout):
    pass


class QHBoxLayout(QLayout):
    pass


class QFormLayout(QLayout):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.rows: list[tuple[Any, Any]] = []

    def addRow(self, label: Any, widget: Any = None) -> None:  # noqa: N802
        self.rows.append((label, widget))

    def rowCount(self) -> int:  # noqa: N802
        return len(self.rows)

    def removeRow(self, row: int) -> None:  # noqa: N802
        del self.rows[row]


class QTimer(QObject):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.interval = 0
        self.active = False

    def setInterval(self, ms: int) -> None:  # noqa: N802
        self.interval = ms

    def start(self, *_a) -> None:
        self.active = True

    def stop(self) -> None:
        self.active = False

    def isActive(self) -> bool:  # noqa: N802
        return self.active

    @staticmethod
    def singleShot(_ms: int, callback: Callable) -> None:  # noqa: N802
        callback()


class QFileDialog:
    """Answers come from the test: ``QFileDialog.answers`` is a list popped in order."""

    answers: list[str] = []

    @classmethod
    def getOpenFileName(cls, *_a) -> str:  # noqa: N802
        return cls.answers.pop(0) if cls.answers else ""

    @classmethod
    def getExistingDirectory(cls, *_a) -> str:  # noqa: N802
        return cls.answers.pop(0) if cls.answers else ""


# -- CTK and Slicer widgets -------------------------------------------------------------------------------------------
class ctkCollapsibleButton(QWidget):  # noqa: N801
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.collapsed = False


class ctkPathLineEdit(QWidget):  # noqa: N801
    Dirs, Files, Drives, NoDot, NoDotDot, Readable = 0x1, 0x2, 0x4, 0x2000, 0x4000, 0x10

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._path = ""
        self.filters = self.Files | self.Readable
        self.nameFilters: list[str] = []

    @property
    def currentPath(self) -> str:  # noqa: N802
        return self._path

    @currentPath.setter
    def currentPath(self, path: str) -> None:  # noqa: N802
        if path != self._path:
            self._path = path
            self.emit("currentPathChanged(QString)", path)


class ctkDirectoryButton(QWidget):  # noqa: N801
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._directory = ""
        self.caption = ""

    @property
    def directory(self) -> str:
        return self._directory

    @directory.setter
    def directory(self, path: str) -> None:
        if path != self._directory:
            self._directory = path
            self.emit("directoryChanged(QString)", path)


class ctkMenuButton(QPushButton):  # noqa: N801
    pass


class qMRMLWidget(QWidget):  # noqa: N801
    def setMRMLScene(self, scene: Any) -> None:  # noqa: N802
        self.scene = scene
        self.emit("mrmlSceneChanged(vtkMRMLScene*)", scene)


class _SortFilterProxy:
    def __init__(self) -> None:
        self.hiddenNodeIDs: list[str] = []

    def setHiddenNodeIDs(self, ids) -> None:  # noqa: N802
        self.hiddenNodeIDs = list(ids)


class qMRMLNodeComboBox(QWidget):  # noqa: N801
    """A node selector over the real scene: lists nodes the way Slicer's does (types, child types, hidden ids)."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.nodeTypes: list[str] = []
        self.noneEnabled = False
        self.addEnabled = True
        self.removeEnabled = True
        self.renameEnabled = False
        self.noneDisplay = "None"
        self.showChildNodeTypes = True
        self.showHidden = False
        self._scene = None
        self._node = None
        self._proxy = _SortFilterProxy()

    def sortFilterProxyModel(self) -> _SortFilterProxy:  # noqa: N802
        return self._proxy

    def setMRMLScene(self, scene: Any) -> None:  # noqa: N802
        self._scene = scene

    def mrmlScene(self) -> Any:  # noqa: N802
        return self._scene

    def nodes(self) -> list[Any]:
        """What the drop-down offers."""
        if self._scene is None:
            return []
        found = []
        for index in range(self._scene.GetNumberOfNodes()):
            node = self._scene.GetNthNode(index)
            matches = any((node.IsA(t) if self.showChildNodeTypes else node.GetClassName() == t)
                          for t in self.nodeTypes)
            if matches and (self.showHidden or not node.GetHideFromEditors()) and \
                    node.GetID() not in self._proxy.hiddenNodeIDs:
                found.append(node)
        return found

    def currentNode(self) -> Any:  # noqa: N802
        if self._node is not None and (self._scene is None or self._scene.GetNodeByID(self._node.GetID()) is None):
            self._node = None  # removed from the scene
        return self._node

    def currentNodeID(self) -> str:  # noqa: N802
        node = self.currentNode()
        return node.GetID() if node is not None else ""

    def setCurrentNode(self, node: Any) -> None:  # noqa: N802
        if node is not self._node:
            self._node = node
            self.emit("currentNodeChanged(vtkMRMLNode*)", node)
            self.emit("currentNodeChanged(bool)", node is not None)

    def setCurrentNodeID(self, node_id: str) -> None:  # noqa: N802
        self.setCurrentNode(self._scene.GetNodeByID(node_id) if node_id else None)

    def choose(self, node: Any) -> None:
        """What a user's pick in the drop-down does: only nodes the selector offers can be picked."""
        assert node is None or node in self.nodes(), f"{node.GetName()} is not offered by this selector"
        self.setCurrentNode(node)


class qMRMLSegmentationShow3DButton(ctkMenuButton):  # noqa: N801
    def setSegmentationNode(self, node: Any) -> None:  # noqa: N802
        self.segmentationNode = node


class qMRMLSubjectHierarchyTreeView(QWidget):  # noqa: N801
    pass


WIDGET_CLASSES = {cls.__name__: cls for cls in (
    QWidget, QLabel, QPushButton, QCheckBox, ctkCheckBox, QComboBox, ctkComboBox, QSpinBox, QDoubleSpinBox, QLineEdit,
    QPlainTextEdit, QTextEdit, QProgressBar, QTableWidget, ctkCollapsibleButton, ctkPathLineEdit, ctkDirectoryButton,
    ctkMenuButton, qMRMLWidget, qMRMLNodeComboBox, qMRMLSegmentationShow3DButton, qMRMLSubjectHierarchyTreeView)}
LAYOUT_CLASSES = {cls.__name__: cls for cls in (QVBoxLayout, QHBoxLayout, QFormLayout)}


# -- loading the real .ui ---------------------------------------------------------------------------------------------
def _property_value(prop: ET.Element) -> Any:
    child = prop[0]
    if child.tag == "string":
        return child.text or ""
    if child.tag == "bool":
        return child.text == "true"
    if child.tag in ("number", "double"):
        return float(child.text) if "." in (child.text or "") else int(child.text)
    if child.tag == "stringlist":
        return [s.text or "" for s in child.findall("string")]
    if child.tag in ("enum", "set"):
        return child.text
    return child.text


def load_ui(path: str) -> QWidget:
    """Build the widget tree of a Qt Designer file with the stand-in classes (every class must be known)."""
    root = ET.parse(path).getroot()
    objects: dict[str, Any] = {}

    def build(element: ET.Element) -> Any:
        cls_name = element.get("class")
        table = WIDGET_CLASSES if element.tag == "widget" else LAYOUT_CLASSES
        if cls_name not in table:
            raise AssertionError(f"the .ui uses {cls_name}, which the harness does not know: add a stand-in")
        obj = table[cls_name]()
        obj.name = element.get("name")
        obj.className = cls_name
        objects[obj.name] = obj
        for prop in element.findall("property"):
            value = _property_value(prop)
            if prop.get("stdset") == "0":
                obj.setProperty(prop.get("name"), value)
            elif prop.get("name") == "value" and isinstance(obj, QSpinBox):
                obj._value = value
            else:
                setattr(obj, prop.get("name"), value)
        if isinstance(obj, QComboBox):  # Designer's fixed items (e.g. auto / on / off)
            for item in element.findall("item"):
                obj.addItem(item.findtext("property/string") or "")
        for child in element:
            if child.tag in ("widget", "layout"):
                build(child)
            elif child.tag == "item":
                for grandchild in child:
                    if grandchild.tag in ("widget", "layout"):
                        build(grandchild)
        return obj

    top = build(root.find("widget"))
    top.objects = objects
    for connection in root.iter("connection"):
        sender, receiver = objects[connection.findtext("sender")], objects[connection.findtext("receiver")]
        slot = connection.findtext("slot").split("(")[0]
        sender.connect(connection.findtext("signal"), getattr(receiver, slot))
    return top


def child_widget_variables(widget: QWidget) -> types.SimpleNamespace:
    return types.SimpleNamespace(**widget.objects)


# -- parameterNodeWrapper (with Slicer's exact-class connector rule) --------------------------------------------------
class Choice:
    def __init__(self, choices) -> None:
        self.choices = list(choices)


class WithinRange:
    def __init__(self, low, high) -> None:
        self.low, self.high = low, high


class Default:
    def __init__(self, value) -> None:
        self.value = value


def _base_type(annotation: Any) -> tuple[Any, str]:
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if isinstance(annotation, type) and annotation.__name__.startswith("vtkMRML"):
        return annotation, "node"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return annotation, "enum"
    if isinstance(annotation, type) and issubclass(annotation, pathlib.PurePath):
        return annotation, "pathlib.Path"
    return annotation, getattr(annotation, "__name__", str(annotation))


_WIDGET_SIGNALS = {
    "QCheckBox": "toggled(bool)", "ctkCheckBox": "toggled(bool)", "QComboBox": "currentIndexChanged(int)",
    "ctkComboBox": "currentIndexChanged(int)", "QSpinBox": "valueChanged(int)", "QDoubleSpinBox": "valueChanged(int)",
    "QLineEdit": "textChanged(QString)", "ctkPathLineEdit": "currentPathChanged(QString)",
    "ctkDirectoryButton": "directoryChanged(QString)", "qMRMLNodeComboBox": "currentNodeChanged(vtkMRMLNode*)",
}


def parameterNodeWrapper(cls: type) -> type:  # noqa: N802 - Slicer's name
    """A wrapper class over a ``vtkMRMLScriptedModuleNode`` as Slicer's decorator makes one (storage: parameters as
    JSON text, nodes as node references)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    defaults = {name: getattr(cls, name, None) for name in hints}

    class Wrapper:
        _hints = hints

        def __init__(self, node: Any) -> None:
            object.__setattr__(self, "_node", node)
            object.__setattr__(self, "_guis", {})
            for name, value in defaults.items():
                kind = _base_type(hints[name])[1]
                if kind != "node" and not node.GetParameter(name):
                    self._store(name, value)

        @property
        def parameterNode(self) -> Any:  # noqa: N802
            return self._node

        def _store(self, name: str, value: Any) -> None:
            annotation, kind = _base_type(self._hints[name])
            if kind == "node":
                self._node.SetNodeReferenceID(name, value.GetID() if value is not None else None)
                return
            if kind == "pathlib.Path":
                value = str(value) if value is not None else ""
            elif kind == "enum":
                value = value.value
            self._node.SetParameter(name, json.dumps(value))

        def __getattr__(self, name: str) -> Any:
            if name not in self._hints:
                raise AttributeError(name)
            annotation, kind = _base_type(self._hints[name])
            if kind == "node":
                return self._node.GetNodeReference(name)
            text = self._node.GetParameter(name)
            value = json.loads(text) if text else defaults[name]
            if kind == "pathlib.Path":
                return annotation(value) if value is not None else annotation()
            if kind == "enum":
                return annotation(value)
            return value

        def __setattr__(self, name: str, value: Any) -> None:
            if name not in self._hints:
                raise AttributeError(f"{cls.__name__} has no parameter {name!r}")
            self._store(name, value)
            for widget, setter in self._guis.get(name, []):
                setter(widget, value)

        def connectGui(self, ui: Any) -> int:  # noqa: N802
            tag = id(ui)
            for widget in vars(ui).values():
                parameter = widget.property("SlicerParameterName") if isinstance(widget, QObject) else None
                if not parameter:
                    continue
                if parameter not in self._hints:
                    raise RuntimeError(f"Unable to find parameter {parameter!r} for widget {widget.name}")
                _annotation, kind = _base_type(self._hints[parameter])
                if widget.className not in accepted_widgets(kind):
                    raise RuntimeError(
                        f"Unable to create GUI connector from datatype {self._hints[parameter]} to widget type "
                        f"{widget.className}")
                self._bind(parameter, widget)
            return tag

        def _bind(self, parameter: str, widget: Any) -> None:
            annotation, kind = _base_type(self._hints[parameter])

            def read(w: Any) -> Any:
                if kind == "node":
                    return w.currentNode()
                if kind == "pathlib.Path":
                    return annotation(w.currentPath if hasattr(w, "currentPath") else w.directory)
                if isinstance(w, QComboBox):
                    return w.currentText
                if isinstance(w, QCheckBox):
                    return w.checked
                if isinstance(w, QSpinBox):
                    return w.value
                return w.text

            def write(w: Any, value: Any) -> None:
                previous = w.blockSignals(True)
                try:
                    if kind == "node":
                        w.setCurrentNode(value)
                    elif kind == "pathlib.Path":
                        text = str(value) if value is not None and str(value) != "." else ""
                        if hasattr(w, "currentPath"):
                            w.currentPath = text
                        else:
                            w.directory = text
                    elif isinstance(w, QComboBox):
                        w.setCurrentText(str(value))
                    elif isinstance(w, QCheckBox):
                        w.checked = bool(value)
                    elif isinstance(w, QSpinBox):
                        w.value = value
                    else:
                        w.text = value
                finally:
                    w.blockSignals(previous)

            write(widget, getattr(self, parameter))
            signal = _WIDGET_SIGNALS.get(widget.className)
            if signal:
                widget.connect(signal, lambda *_a, w=widget, p=parameter: self._store(p, read(w)))
            self._guis.setdefault(parameter, []).append((widget, write))

        def disconnectGui(self, tag: int) -> None:  # noqa: N802
            object.__setattr__(self, "_guis", {})

    Wrapper.__name__ = cls.__name__
    Wrapper.__doc__ = cls.__doc__
    Wrapper.__annotations__ = dict(cls.__annotations__)  # Slicer's decorator keeps the class's annotations
    return Wrapper


# -- ScriptedLoadableModule (behaviour as Slicer's ScriptedLoadableModule.py defines it) ------------------------------
class ScriptedLoadableModule:
    def __init__(self, parent: Any) -> None:
        self.parent = parent
        self.moduleName = type(self).__name__


class ScriptedLoadableModuleLogic:
    def __init__(self, parent: Any = None) -> None:
        name = type(self).__name__
        self.moduleName = name[: -len("Logic")] if name.endswith("Logic") else name

    def getParameterNode(self) -> Any:  # noqa: N802
        import slicer

        node = slicer.mrmlScene.GetSingletonNode(self.moduleName, "vtkMRMLScriptedModuleNode")
        if node is None:
            node = slicer.vtkMRMLScriptedModuleNode()
            node.SetName(slicer.mrmlScene.GenerateUniqueName(self.moduleName))
            node.SetSingletonTag(self.moduleName)
            node.SetAttribute("ModuleName", self.moduleName)
            node = slicer.mrmlScene.AddNode(node)
        return node


class ScriptedLoadableModuleWidget:
    def __init__(self, parent: Any = None) -> None:
        self.parent = parent or types.SimpleNamespace(isEntered=True)
        name = type(self).__name__
        self.moduleName = name[: -len("Widget")] if name.endswith("Widget") else name
        self.developerMode = False

    def resourcePath(self, filename: str) -> str:  # noqa: N802
        module = sys.modules[type(self).__module__]
        return str(Path(module.__file__).parent / "Resources" / filename)

    def setup(self) -> None:
        self.layout = QVBoxLayout()

    def onReload(self) -> None:  # noqa: N802
        pass


class ScriptedLoadableModuleTest:
    def delayDisplay(self, *_a, **_k) -> None:  # noqa: N802
        pass


# -- installing the stand-ins -----------------------------------------------------------------------------------------
class Dialogs:
    """Scripted answers for slicer.util's dialogs, and a record of every message shown."""

    def __init__(self) -> None:
        self.answers: list[bool] = []
        self.shown: list[tuple[str, str]] = []

    def confirm(self, kind: str) -> Callable:
        def ask(text: str, *_a, **_k) -> bool:
            self.shown.append((kind, text))
            if not self.answers:
                raise AssertionError(f"unexpected {kind} dialog: {text}")
            return self.answers.pop(0)

        return ask

    def message(self, kind: str) -> Callable:
        def show(text: str, *_a, **_k) -> None:
            self.shown.append((kind, text))

        return show

    def errors(self) -> list[str]:
        return [text for kind, text in self.shown if kind == "error"]


def install(monkeypatch: Any, slicer: Any) -> Dialogs:
    """Put the stand-ins where ``BrainLesionCL.py`` imports them; returns the dialog recorder."""
    import contextlib

    qt = types.ModuleType("qt")
    for name, obj in {**WIDGET_CLASSES, **LAYOUT_CLASSES}.items():
        setattr(qt, name, obj)
    for obj in (QObject, QTimer, QFileDialog, QAbstractItemView, QTableWidgetItem):
        setattr(qt, obj.__name__, obj)
    ctk = types.ModuleType("ctk")
    for name in ("ctkCollapsibleButton", "ctkPathLineEdit", "ctkDirectoryButton", "ctkComboBox", "ctkCheckBox"):
        setattr(ctk, name, WIDGET_CLASSES[name])
    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    i18n.translate = lambda _context, text: text
    wrapper = types.ModuleType("slicer.parameterNodeWrapper")
    wrapper.parameterNodeWrapper, wrapper.Choice, wrapper.WithinRange, wrapper.Default = (
        parameterNodeWrapper, Choice, WithinRange, Default)
    loadable = types.ModuleType("slicer.ScriptedLoadableModule")
    for cls in (ScriptedLoadableModule, ScriptedLoadableModuleLogic, ScriptedLoadableModuleWidget,
                ScriptedLoadableModuleTest):
        setattr(loadable, cls.__name__, cls)
    for name, module in (("qt", qt), ("ctk", ctk), ("slicer.i18n", i18n), ("slicer.parameterNodeWrapper", wrapper),
                         ("slicer.ScriptedLoadableModule", loadable)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(slicer, "qMRMLNodeComboBox", qMRMLNodeComboBox, raising=False)
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(
        processEvents=lambda *a: None, testingEnabled=lambda: True, connect=lambda *a: None,
        applicationVersion="5.12.0"), raising=False)

    dialogs = Dialogs()
    util = slicer.util
    monkeypatch.setattr(util, "loadUI", load_ui)
    monkeypatch.setattr(util, "childWidgetVariables", child_widget_variables)
    monkeypatch.setattr(util, "confirmOkCancelDisplay", dialogs.confirm("ok-cancel"))
    monkeypatch.setattr(util, "confirmYesNoDisplay", dialogs.confirm("yes-no"))
    monkeypatch.setattr(util, "errorDisplay", dialogs.message("error"))
    monkeypatch.setattr(util, "warningDisplay", dialogs.message("warning"))
    monkeypatch.setattr(util, "infoDisplay", dialogs.message("info"))

    @contextlib.contextmanager
    def try_with_error_display(message: str = "", show: bool = True, waitCursor: bool = False):  # noqa: N803
        try:
            yield
        except Exception as err:  # noqa: BLE001 - Slicer shows every exception in a dialog
            dialogs.shown.append(("error", f"{message} {err}"))

    monkeypatch.setattr(util, "tryWithErrorDisplay", try_with_error_display)
    monkeypatch.setattr(util, "setSliceViewerLayers", lambda *a, **k: None)
    monkeypatch.setattr(util, "resetSliceViews", lambda *a, **k: None, raising=False)
    return dialogs
