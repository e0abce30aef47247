"""Stand-ins for the Qt, CTK and qMRML widget classes, the only part of Slicer's GUI that cannot run here.

Everything else the panel touches is real: Slicer's own Python (the parameter-node wrapper, ``slicer.util``,
``ScriptedLoadableModule``, ``SampleData``, loaded by :mod:`slicer_runtime` from ``../shared/reference``), the MRML
scene (``slicer-core``), the logic, the engine and its child process.

Each class keeps the properties, signals and behaviour the Qt and CTK documentation give it, no more: a signal is
connected the two ways PythonQt allows (``widget.valueChanged.connect(slot)`` and
``widget.connect("valueChanged(int)", slot)``) and calls a slot with as many arguments as it accepts; setting a property
to its current value emits nothing; ``blockSignals`` silences a widget. Where a class has documented behaviour a panel
can trip over, it is kept (and named in the class docstring): a combo box selects item 0 when the first item is added
and -1 when cleared; a directory button keeps a ``QDir`` and cannot hold "no folder"; a node combo box lists only its
node types (child types only with ``showChildNodeTypes``), selects None for a node it does not list, and selects None
when its node leaves the scene. ``QUiLoader`` builds a ``.ui`` file's tree with these classes (every class, property,
dynamic property and connection honoured; an unknown class fails the test).

Test-only; never shipped.
"""

from __future__ import annotations

import inspect
import os
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Callable
from typing import Any


# -- signals ----------------------------------------------------------------------------------------------------------
def _accepted_arguments(slot: Callable, offered: int) -> int:
    """PythonQt calls a Python slot with as many of the signal's arguments as it has positional parameters (the Slicer
    template connects ``clicked(bool)`` to ``def onApplyButton(self)``)."""
    try:
        parameters = inspect.signature(slot).parameters.values()
    except (TypeError, ValueError):
        return offered
    if any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return offered
    return min(offered, sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters))


class BoundSignal:
    def __init__(self, owner: QObject, name: str) -> None:
        self._owner, self._name = owner, name

    def connect(self, slot: Callable) -> None:
        self._owner._slots[self._name].append(slot)

    def disconnect(self, slot: Callable | None = None) -> None:
        slots = self._owner._slots[self._name]
        if slot is None:
            slots.clear()
        elif slot in slots:
            slots.remove(slot)

    def emit(self, *args: Any) -> None:
        self._owner._emit(self._name, *args)


class Signal:
    """A Qt signal declared on a class: ``widget.name`` is the bound signal."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type) -> Any:
        return self if obj is None else BoundSignal(obj, self.name)


# -- QObject and QWidget ----------------------------------------------------------------------------------------------
class QObject:
    destroyed = Signal()

    def __init__(self, parent: Any = None) -> None:
        object.__setattr__(self, "_slots", defaultdict(list))
        self._blocked = False
        self._dynamic: dict[str, Any] = {}
        self._children: list[QObject] = []
        self._parent = None
        self.objectName = ""
        self.setParent(parent)

    # PythonQt exposes objectName also as ``name``
    @property
    def name(self) -> str:
        return self.objectName

    @name.setter
    def name(self, value: str) -> None:
        self.objectName = value

    def className(self) -> str:  # noqa: N802 - Qt's name
        return type(self).__name__

    def setParent(self, parent: Any) -> None:  # noqa: N802
        if self._parent is not None and self in self._parent._children:
            self._parent._children.remove(self)
        self._parent = parent
        if parent is not None:
            parent._children.append(self)

    def parent(self) -> Any:
        return self._parent

    def children(self) -> list[QObject]:
        return list(self._children)

    def findChildren(self, cls: type = None) -> list[QObject]:  # noqa: N802
        found: list[QObject] = []
        for child in self._children:
            if cls is None or isinstance(child, cls):
                found.append(child)
            found.extend(child.findChildren(cls))
        return found

    def connect(self, signal: str, slot: Callable) -> bool:
        """PythonQt's ``obj.connect("signal(args)", slot)``."""
        self._slots[signal.split("(")[0]].append(slot)
        return True

    def disconnect(self, signal: str, slot: Callable | None = None) -> bool:
        getattr(self, signal.split("(")[0]).disconnect(slot)
        return True

    def _emit(self, name: str, *args: Any) -> None:
        if self._blocked:
            return
        for slot in list(self._slots[name]):
            slot(*args[: _accepted_arguments(slot, len(args))])

    def blockSignals(self, blocked: bool) -> bool:  # noqa: N802
        previous, self._blocked = self._blocked, blocked
        return previous

    def setProperty(self, name: str, value: Any) -> bool:  # noqa: N802
        """A dynamic property (``stdset="0"`` in a .ui); a declared one is set as an attribute."""
        if hasattr(type(self), name):
            setattr(self, name, value)
        else:
            self._dynamic[name] = value
        return True

    def property(self, name: str) -> Any:
        if name in self._dynamic:
            return self._dynamic[name]
        return getattr(self, name, None) if hasattr(type(self), name) else None

    def isWidgetType(self) -> bool:  # noqa: N802
        return False

    def deleteLater(self) -> None:  # noqa: N802
        pass


class QWidget(QObject):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.enabled = True
        self.visible = True
        self.toolTip = ""
        self.statusTip = ""
        self.whatsThis = ""
        self._layout = None

    def isWidgetType(self) -> bool:  # noqa: N802
        return True

    def setLayout(self, layout: QLayout) -> None:  # noqa: N802
        self._layout = layout
        layout.setParent(self)

    def layout(self) -> Any:
        return self._layout

    def setToolTip(self, text: str) -> None:  # noqa: N802
        self.toolTip = text

    def setEnabled(self, enabled: bool) -> None:  # noqa: N802
        self.enabled = bool(enabled)

    def setVisible(self, visible: bool) -> None:  # noqa: N802
        self.visible = bool(visible)

    def show(self) -> None:
        self.visible = True

    def hide(self) -> None:
        self.visible = False

    def close(self) -> bool:
        self.visible = False
        return True


# -- layouts ----------------------------------------------------------------------------------------------------------
class QLayout(QObject):
    """Widgets added to a layout become children of the layout's widget (Qt's reparenting)."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(None)
        self.widgets: list[Any] = []
        if isinstance(parent, QWidget):
            parent.setLayout(self)

    def _owner(self) -> Any:
        owner = self._parent
        while owner is not None and not isinstance(owner, QWidget):
            owner = owner._parent
        return owner

    def addWidget(self, widget: Any, *_args: Any) -> None:  # noqa: N802
        self.widgets.append(widget)
        if isinstance(widget, QWidget):
            widget.setParent(self._owner() or self)
        elif isinstance(widget, QLayout):
            widget.setParent(self)

    def addLayout(self, layout: QLayout, *_args: Any) -> None:  # noqa: N802
        layout.setParent(self)
        self.widgets.append(layout)

    def addItem(self, item: Any) -> None:  # noqa: N802
        self.widgets.append(item)

    def addStretch(self, *_args: Any) -> None:  # noqa: N802
        pass

    def count(self) -> int:
        return len(self.widgets)

    def itemAt(self, index: int) -> Any:  # noqa: N802
        return self.widgets[index] if 0 <= index < len(self.widgets) else None

    def removeItem(self, item: Any) -> None:  # noqa: N802
        if item in self.widgets:
            self.widgets.remove(item)


class QVBoxLayout(QLayout):
    pass


class QHBoxLayout(QLayout):
    pass


class QFormLayout(QLayout):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.rows: list[tuple[Any, Any]] = []

    def addRow(self, label: Any, widget: Any = None) -> None:  # noqa: N802
        for item in (label, widget):
            if isinstance(item, QWidget):
                item.setParent(self._owner() or self)
            elif isinstance(item, QLayout):
                item.setParent(self)
        if isinstance(label, str):
            label = QLabel(label)
            label.setParent(self._owner() or self)
        self.rows.append((label, widget))

    def rowCount(self) -> int:  # noqa: N802
        return len(self.rows)

    def removeRow(self, row: int) -> None:  # noqa: N802
        """Qt deletes the row's widgets."""
        for item in self.rows.pop(row):
            if isinstance(item, QObject):
                item.setParent(None)


# -- plain widgets ----------------------------------------------------------------------------------------------------
class QLabel(QWidget):
    def __init__(self, text: Any = "", parent: Any = None) -> None:
        if isinstance(text, QObject):
            text, parent = "", text
        super().__init__(parent)
        self.text = text
        self.wordWrap = False
        self.textInteractionFlags = 0


class QAbstractButton(QWidget):
    clicked = Signal()
    toggled = Signal()
    pressed = Signal()
    released = Signal()

    def __init__(self, text: Any = "", parent: Any = None) -> None:
        if isinstance(text, QObject):
            text, parent = "", text
        super().__init__(parent)
        self.text = text
        self.checkable = False
        self._checked = False

    @property
    def checked(self) -> bool:
        return self._checked

    @checked.setter
    def checked(self, value: bool) -> None:
        value = bool(value) and self.checkable
        if value != self._checked:
            self._checked = value
            self._emit("toggled", value)
            self._stateChanged(value)

    def _stateChanged(self, value: bool) -> None:  # noqa: N802
        pass

    def setChecked(self, value: bool) -> None:  # noqa: N802
        self.checked = value

    def isChecked(self) -> bool:  # noqa: N802
        return self.checked

    def setText(self, text: str) -> None:  # noqa: N802
        self.text = text

    def click(self) -> None:
        """What a user's click does: nothing when disabled; a checkable button toggles first."""
        if not self.enabled:
            return
        if self.checkable:
            self.checked = not self.checked
        self._emit("clicked", self.checked)


class QPushButton(QAbstractButton):
    pass


class QToolButton(QAbstractButton):
    pass


class QCheckBox(QAbstractButton):
    """``stateChanged(int)`` carries 0 or 2 (Qt::Checked), after ``toggled(bool)``."""

    stateChanged = Signal()

    def __init__(self, text: Any = "", parent: Any = None) -> None:
        super().__init__(text, parent)
        self.checkable = True

    def _stateChanged(self, value: bool) -> None:  # noqa: N802
        self._emit("stateChanged", 2 if value else 0)


class QComboBox(QWidget):
    """Qt's rules: adding the first item selects it (index 0), clearing selects -1, each emitting
    ``currentIndexChanged``; setting the current index to itself emits nothing."""

    currentIndexChanged = Signal()
    currentTextChanged = Signal()
    activated = Signal()

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._items: list[tuple[str, Any]] = []
        self._current = -1
        self.editable = False

    @property
    def currentIndex(self) -> int:  # noqa: N802
        return self._current

    @currentIndex.setter
    def currentIndex(self, index: int) -> None:  # noqa: N802
        index = index if -1 <= index < len(self._items) else -1
        if index != self._current:
            self._current = index
            self._emit("currentIndexChanged", index)
            self._emit("currentTextChanged", self.currentText)

    def setCurrentIndex(self, index: int) -> None:  # noqa: N802
        self.currentIndex = index

    @property
    def currentText(self) -> str:  # noqa: N802
        return self._items[self._current][0] if self._current >= 0 else ""

    @property
    def currentData(self) -> Any:  # noqa: N802
        return self._items[self._current][1] if self._current >= 0 else None

    @property
    def count(self) -> int:
        """A Qt property (PythonQt exposes it as a value, not a method)."""
        return len(self._items)

    def addItem(self, text: str, data: Any = None) -> None:  # noqa: N802
        self._items.append((str(text), data))
        if self._current < 0:
            self.currentIndex = 0

    def addItems(self, texts: Any) -> None:  # noqa: N802
        for text in texts:
            self.addItem(text)

    def clear(self) -> None:
        self._items = []
        self.currentIndex = -1

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

    def choose(self, text: str) -> None:
        """What a user's pick in the drop-down does (only listed items can be picked)."""
        index = self.findText(text)
        assert index >= 0, f"{text!r} is not offered: {[t for t, _d in self._items]}"
        self.currentIndex = index
        self._emit("activated", index)


class QAbstractSpinBox(QWidget):
    valueChanged = Signal()

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._minimum, self._maximum = 0, 99
        self.singleStep = 1
        self.decimals = 2
        self._value: Any = 0

    def _clamp(self, value: Any) -> Any:
        return max(self._minimum, min(self._maximum, value))

    @property
    def minimum(self) -> Any:
        return self._minimum

    @minimum.setter
    def minimum(self, value: Any) -> None:
        self._minimum = value
        self._maximum = max(self._maximum, value)
        self.value = self._value

    @property
    def maximum(self) -> Any:
        return self._maximum

    @maximum.setter
    def maximum(self, value: Any) -> None:
        self._maximum = value
        self._minimum = min(self._minimum, value)
        self.value = self._value

    def setMinimum(self, value: Any) -> None:  # noqa: N802
        self.minimum = value

    def setMaximum(self, value: Any) -> None:  # noqa: N802
        self.maximum = value

    def setRange(self, minimum: Any, maximum: Any) -> None:  # noqa: N802
        self._minimum, self._maximum = minimum, max(minimum, maximum)
        self.value = self._value

    @property
    def value(self) -> Any:
        return self._value

    @value.setter
    def value(self, value: Any) -> None:
        value = self._clamp(value)
        if value != self._value:
            self._value = value
            self._emit("valueChanged", value)

    def setValue(self, value: Any) -> None:  # noqa: N802
        self.value = value


class QSpinBox(QAbstractSpinBox):
    @QAbstractSpinBox.value.setter  # type: ignore[attr-defined]
    def value(self, value: Any) -> None:
        QAbstractSpinBox.value.fset(self, int(value))


class QDoubleSpinBox(QAbstractSpinBox):
    @QAbstractSpinBox.value.setter  # type: ignore[attr-defined]
    def value(self, value: Any) -> None:
        QAbstractSpinBox.value.fset(self, float(value))


class QSlider(QSpinBox):
    pass


class QLineEdit(QWidget):
    """``textChanged`` is emitted for every change, programmatic ones included."""

    textChanged = Signal()
    editingFinished = Signal()

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._text = ""
        self.placeholderText = ""
        self.readOnly = False

    @property
    def text(self) -> str:
        return self._text

    @text.setter
    def text(self, value: str) -> None:
        if value != self._text:
            self._text = value
            self._emit("textChanged", value)

    def setText(self, value: str) -> None:  # noqa: N802
        self.text = value

    def clear(self) -> None:
        self.text = ""


class QPlainTextEdit(QWidget):
    textChanged = Signal()

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.lines: list[str] = []
        self.readOnly = False
        self.maximumBlockCount = 0

    def appendPlainText(self, text: str) -> None:  # noqa: N802
        self.lines.append(text)
        self._emit("textChanged")

    def toPlainText(self) -> str:  # noqa: N802
        return "\n".join(self.lines)

    def setPlainText(self, text: str) -> None:  # noqa: N802
        self.lines = text.splitlines()
        self._emit("textChanged")

    def clear(self) -> None:
        self.setPlainText("")


class QTextEdit(QPlainTextEdit):
    pass


class QProgressBar(QWidget):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.value = 0
        self.minimum, self.maximum = 0, 100


class QTableWidgetItem:
    def __init__(self, text: str = "") -> None:
        self._text = text

    def text(self) -> str:
        return self._text


class QAbstractItemView:
    SelectItems, SelectRows, SelectColumns = 0, 1, 2
    NoEditTriggers = 0
    NoSelection, SingleSelection = 0, 1


class QTableWidget(QWidget):
    cellClicked = Signal()
    itemSelectionChanged = Signal()

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

    def setHorizontalHeaderLabels(self, labels: Any) -> None:  # noqa: N802
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
        self._emit("cellClicked", row, 0)
        self._emit("itemSelectionChanged")

    def texts(self) -> list[list[str]]:
        return [[item.text() if item else "" for item in row] for row in self._rows]

    def setSelectionBehavior(self, *_args: Any) -> None:  # noqa: N802
        pass

    def setSelectionMode(self, *_args: Any) -> None:  # noqa: N802
        pass

    def setEditTriggers(self, *_args: Any) -> None:  # noqa: N802
        pass

    def resizeColumnsToContents(self) -> None:  # noqa: N802
        pass


# -- non-widget Qt classes --------------------------------------------------------------------------------------------
class QTimer(QObject):
    timeout = Signal()

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.interval = 0
        self.active = False

    def setInterval(self, ms: int) -> None:  # noqa: N802
        self.interval = ms

    def start(self, *_args: Any) -> None:
        self.active = True

    def stop(self) -> None:
        self.active = False

    def isActive(self) -> bool:  # noqa: N802
        return self.active

    @staticmethod
    def singleShot(_ms: int, callback: Callable) -> None:  # noqa: N802
        callback()


class QFileDialog:
    """A modal file dialog: the test scripts the user's answers (``QFileDialog.answers``, popped in order; none left
    means the user cancelled, which Qt reports as an empty string)."""

    answers: list[str] = []

    @classmethod
    def getOpenFileName(cls, *_args: Any) -> str:  # noqa: N802
        return cls.answers.pop(0) if cls.answers else ""

    @classmethod
    def getExistingDirectory(cls, *_args: Any) -> str:  # noqa: N802
        return cls.answers.pop(0) if cls.answers else ""


class QMessageBox(QWidget):
    NoButton, Ok, Cancel, Yes, No, Retry, Close = 0x0, 0x400, 0x400000, 0x4000, 0x10000, 0x80000, 0x200000
    NoIcon, Information, Warning, Critical, Question = 0, 1, 2, 3, 4


class ctkMessageBox(QMessageBox):  # noqa: N801 - CTK's name
    """A modal message box. ``exec_()`` shows it to the user: the text is recorded in ``ctkMessageBox.shown`` and the
    answer to a question is the next of ``ctkMessageBox.answers`` (True: Ok/Yes, False: Cancel/No); a question with no
    scripted answer fails the test (an unexpected prompt)."""

    shown: list[tuple[str, str]] = []
    answers: list[bool] = []

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.text = ""
        self.icon = QMessageBox.NoIcon
        self.standardButtons = QMessageBox.Ok
        self.detailedText = ""
        self.windowTitle = ""

    def exec_(self) -> int:
        kind = {QMessageBox.Critical: "error", QMessageBox.Warning: "warning", QMessageBox.Question: "question",
                QMessageBox.Information: "info"}.get(self.icon, "info")
        ctkMessageBox.shown.append((kind, self.text))
        buttons = self.standardButtons
        if buttons & (QMessageBox.Cancel | QMessageBox.No):
            if not ctkMessageBox.answers:
                raise AssertionError(f"unexpected question: {self.text}")
            yes = ctkMessageBox.answers.pop(0)
            if buttons & QMessageBox.Yes:
                return QMessageBox.Yes if yes else QMessageBox.No
            return QMessageBox.Ok if yes else QMessageBox.Cancel
        return QMessageBox.Ok

    exec = exec_


class QSettings:
    """Application settings (empty: every default applies)."""

    _values: dict[str, Any] = {}

    def value(self, key: str, default: Any = None) -> Any:
        return self._values.get(key, default)

    def setValue(self, key: str, value: Any) -> None:  # noqa: N802
        self._values[key] = value

    def contains(self, key: str) -> bool:
        return key in self._values


class QIcon:
    def __init__(self, path: str = "") -> None:
        self.path = path


class QColor:
    def __init__(self, *args: Any) -> None:
        self.args = args


class QCursor:
    def __init__(self, shape: int = 0) -> None:
        self._shape = shape

    def shape(self) -> int:
        return self._shape


class QApplication(QObject):
    """The application's override-cursor stack (static in Qt; ``slicer.app`` is the QApplication)."""

    _cursors: list[QCursor] = []

    @staticmethod
    def overrideCursor() -> QCursor | None:  # noqa: N802
        return QApplication._cursors[-1] if QApplication._cursors else None

    @staticmethod
    def setOverrideCursor(cursor: Any) -> None:  # noqa: N802
        QApplication._cursors.append(cursor if isinstance(cursor, QCursor) else QCursor(cursor))

    @staticmethod
    def restoreOverrideCursor() -> None:  # noqa: N802
        if QApplication._cursors:
            QApplication._cursors.pop()


class Qt:
    WaitCursor, ArrowCursor = 16, 0
    TextSelectableByMouse = 1
    ShiftModifier = 0x02000000


class QFile:
    ReadOnly = 1

    def __init__(self, path: str) -> None:
        self.path = str(path)

    def exists(self) -> bool:
        return os.path.isfile(self.path)

    def open(self, _mode: int) -> bool:
        return self.exists()

    def close(self) -> None:
        pass


# -- CTK --------------------------------------------------------------------------------------------------------------
class ctkCollapsibleButton(QAbstractButton):  # noqa: N801
    contentsCollapsed = Signal()

    def __init__(self, text: Any = "", parent: Any = None) -> None:
        super().__init__(text, parent)
        self.collapsed = False


class ctkCheckBox(QCheckBox):  # noqa: N801
    pass


class ctkComboBox(QComboBox):  # noqa: N801
    pass


class ctkCheckablePushButton(QPushButton):  # noqa: N801
    def __init__(self, text: Any = "", parent: Any = None) -> None:
        super().__init__(text, parent)
        self.checkBoxControlsButtonToggleState = False


class ctkMenuButton(QPushButton):  # noqa: N801
    pass


class ctkDoubleSpinBox(QDoubleSpinBox):  # noqa: N801
    pass


class ctkSliderWidget(QDoubleSpinBox):  # noqa: N801
    pass


class ctkDoubleSlider(QDoubleSpinBox):  # noqa: N801
    pass


class ctkRangeWidget(QWidget):  # noqa: N801
    valuesChanged = Signal()


class ctkDoubleRangeSlider(ctkRangeWidget):  # noqa: N801
    pass


class ctkColorPickerButton(QPushButton):  # noqa: N801
    colorChanged = Signal()


class ctkPathLineEdit(QWidget):  # noqa: N801
    """A path typed or browsed; it can be emptied like any line edit. ``filters`` decides the browse dialog: with
    ``Dirs`` only it picks a folder; with ``Files`` a file (CTK opens a file dialog when both are set)."""

    Dirs, Files, Drives, NoDotAndDotDot, AllDirs, Readable, Writable, Executable = (
        0x1, 0x2, 0x4, 0x1000, 0x400, 0x10, 0x20, 0x40)
    currentPathChanged = Signal()
    validInputChanged = Signal()

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._path = ""
        self.filters = self.AllDirs | self.Files | self.Drives | self.NoDotAndDotDot | self.Readable
        self.nameFilters: list[str] = []

    @property
    def currentPath(self) -> str:  # noqa: N802
        return self._path

    @currentPath.setter
    def currentPath(self, path: str) -> None:  # noqa: N802
        path = str(path)
        if path != self._path:
            self._path = path
            self._emit("currentPathChanged", path)

    def setCurrentPath(self, path: str) -> None:  # noqa: N802
        self.currentPath = path


    def browse(self, answer: str) -> None:
        """What the browse button does: a folder dialog with ``Dirs`` alone, else a file dialog; a cancelled dialog
        (empty answer) changes nothing."""
        picks_folders = bool(self.filters & self.Dirs) and not self.filters & self.Files
        if answer:
            assert os.path.isdir(answer) == picks_folders, (
                f"this path field browses for {'folders' if picks_folders else 'files'}, not {answer}")
            self.currentPath = answer


class ctkDirectoryButton(QWidget):  # noqa: N801
    """CTK's directory button holds a ``QDir``: ``directory`` returns ``QDir(path).path()`` ("." for an empty
    string, which Qt reads as the working directory); the button shows and ``directoryChanged`` carries the absolute
    path. A user can pick another folder but never clear it (a cancelled dialog changes nothing)."""

    directoryChanged = Signal()
    directorySelected = Signal()

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._directory = "."
        self.caption = ""

    @staticmethod
    def _qdir_path(path: str) -> str:
        path = os.path.normpath(str(path)) if str(path) else "."
        return path

    @property
    def directory(self) -> str:
        return self._directory

    @directory.setter
    def directory(self, path: str) -> None:
        new = self._qdir_path(path)
        if os.path.abspath(new) == os.path.abspath(self._directory):
            self._emit("directorySelected", os.path.abspath(new))
            return
        self._directory = new
        self._emit("directorySelected", os.path.abspath(new))
        self._emit("directoryChanged", os.path.abspath(new))

    def setDirectory(self, path: str) -> None:  # noqa: N802
        self.directory = path



# -- qMRML ------------------------------------------------------------------------------------------------------------
class qMRMLWidget(QWidget):  # noqa: N801
    mrmlSceneChanged = Signal()

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._scene = None

    def setMRMLScene(self, scene: Any) -> None:  # noqa: N802
        self._scene = scene
        self._emit("mrmlSceneChanged", scene)

    def mrmlScene(self) -> Any:  # noqa: N802
        return self._scene


class _SortFilterProxy:
    def __init__(self) -> None:
        self.hiddenNodeIDs: list[str] = []

    def setHiddenNodeIDs(self, ids: Any) -> None:  # noqa: N802
        self.hiddenNodeIDs = list(ids)


class qMRMLNodeComboBox(qMRMLWidget):  # noqa: N801
    """A node selector over the real scene. It lists nodes of ``nodeTypes`` (subclasses only with
    ``showChildNodeTypes``), not hidden, not in the proxy's hidden ids; ``setCurrentNode`` with a node it does not list
    selects None; when its node leaves the scene (removed, or the scene closed) it selects None, emitting
    ``currentNodeChanged``."""

    currentNodeChanged = Signal()
    currentNodeIDChanged = Signal()
    nodeAdded = Signal()

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.nodeTypes: list[str] = []
        self.noneEnabled = False
        self.addEnabled = True
        self.removeEnabled = True
        self.renameEnabled = False
        self.editEnabled = False
        self.noneDisplay = "None"
        self.showChildNodeTypes = True
        self.showHidden = False
        self.selectNodeUponCreation = True
        self._node = None
        self._observers: list[int] = []
        self._proxy = _SortFilterProxy()

    def sortFilterProxyModel(self) -> _SortFilterProxy:  # noqa: N802
        return self._proxy

    def setMRMLScene(self, scene: Any) -> None:  # noqa: N802
        if self._scene is not None:
            for tag in self._observers:
                self._scene.RemoveObserver(tag)
        self._observers = []
        self._scene = scene
        if scene is not None:
            import vtk  # noqa: F401 - the scene's events

            for event in (scene.NodeRemovedEvent, scene.EndCloseEvent, scene.EndImportEvent):
                self._observers.append(scene.AddObserver(event, lambda *_a: self._check_current()))
        self._check_current()
        self._emit("mrmlSceneChanged", scene)

    def _lists(self, node: Any) -> bool:
        if self._scene is None or not self._scene.IsNodePresent(node):
            return False
        matches = any((node.IsA(t) if self.showChildNodeTypes else node.GetClassName() == t) for t in self.nodeTypes)
        return matches and (self.showHidden or not node.GetHideFromEditors()) and \
            node.GetID() not in self._proxy.hiddenNodeIDs

    def nodes(self) -> list[Any]:
        """What the drop-down offers."""
        if self._scene is None:
            return []
        return [node for node in (self._scene.GetNthNode(i) for i in range(self._scene.GetNumberOfNodes()))
                if self._lists(node)]

    def _check_current(self) -> None:
        if self._node is not None and (self._scene is None or not self._scene.IsNodePresent(self._node)):
            self._select(None)

    def _select(self, node: Any) -> None:
        if node is not self._node:
            self._node = node
            self._emit("currentNodeChanged", node)
            self._emit("currentNodeIDChanged", node.GetID() if node is not None else "")

    def currentNode(self) -> Any:  # noqa: N802
        return self._node

    def currentNodeID(self) -> str:  # noqa: N802
        return self._node.GetID() if self._node is not None else ""

    def setCurrentNode(self, node: Any) -> None:  # noqa: N802
        self._select(node if node is not None and self._lists(node) else None)

    def setCurrentNodeID(self, node_id: str) -> None:  # noqa: N802
        self.setCurrentNode(self._scene.GetNodeByID(node_id) if node_id and self._scene is not None else None)

    def choose(self, node: Any) -> None:
        """What a user's pick in the drop-down does: only nodes the selector offers can be picked."""
        assert node is None or node in self.nodes(), f"{node.GetName()} is not offered by this selector"
        self.setCurrentNode(node)


class qMRMLSegmentationShow3DButton(ctkMenuButton):  # noqa: N801
    def __init__(self, text: Any = "", parent: Any = None) -> None:
        super().__init__(text, parent)
        self.segmentationNode = None

    def setSegmentationNode(self, node: Any) -> None:  # noqa: N802
        self.segmentationNode = node


class qMRMLSliderWidget(ctkSliderWidget):  # noqa: N801
    pass


class qMRMLSpinBox(ctkDoubleSpinBox):  # noqa: N801
    pass


class qMRMLRangeWidget(ctkRangeWidget):  # noqa: N801
    pass


QT_CLASSES = {cls.__name__: cls for cls in (
    QObject, QWidget, QLabel, QPushButton, QToolButton, QCheckBox, QComboBox, QSpinBox, QDoubleSpinBox, QSlider,
    QLineEdit, QPlainTextEdit, QTextEdit, QProgressBar, QTableWidget, QTableWidgetItem, QAbstractItemView, QLayout,
    QVBoxLayout, QHBoxLayout, QFormLayout, QTimer, QFileDialog, QMessageBox, QSettings, QIcon, QColor,
    Qt, QFile, QCursor, QApplication)}
CTK_CLASSES = {cls.__name__: cls for cls in (
    ctkCollapsibleButton, ctkCheckBox, ctkComboBox, ctkCheckablePushButton, ctkMenuButton, ctkDoubleSpinBox,
    ctkSliderWidget, ctkDoubleSlider, ctkRangeWidget, ctkDoubleRangeSlider, ctkColorPickerButton, ctkPathLineEdit,
    ctkDirectoryButton, ctkMessageBox)}
MRML_WIDGET_CLASSES = {cls.__name__: cls for cls in (
    qMRMLWidget, qMRMLNodeComboBox, qMRMLSegmentationShow3DButton, qMRMLSliderWidget, qMRMLSpinBox,
    qMRMLRangeWidget)}
_UI_CLASSES = {**QT_CLASSES, **CTK_CLASSES, **MRML_WIDGET_CLASSES}


# -- QUiLoader --------------------------------------------------------------------------------------------------------
def _property_value(obj: Any, prop: ET.Element) -> Any:
    child = prop[0]
    if child.tag == "string":
        return child.text or ""
    if child.tag == "bool":
        return child.text == "true"
    if child.tag == "number":
        return int(child.text or 0)
    if child.tag == "double":
        return float(child.text or 0)
    if child.tag == "stringlist":
        return [s.text or "" for s in child.findall("string")]
    if child.tag in ("enum", "set"):  # "ctkPathLineEdit::Files|ctkPathLineEdit::Readable" -> the flags' value
        value = 0
        for flag in (child.text or "").split("|"):
            owner, _sep, member = flag.strip().rpartition("::")
            holder = obj if owner == type(obj).__name__ or not owner else _UI_CLASSES.get(owner, obj)
            flag_value = getattr(holder, member, None)
            if not isinstance(flag_value, int):
                return child.text
            value |= flag_value
        return value
    return child.text


class QUiLoader:
    """Builds a Designer file's widget tree with the stand-in classes (Qt's ``QUiLoader.load``): every widget and
    layout class must be known, properties are set (``stdset="0"`` ones as dynamic properties), items are added to
    combo boxes, and ``<connection>`` entries are connected."""

    def load(self, qfile: QFile) -> QWidget:
        root = ET.parse(qfile.path).getroot()
        objects: dict[str, Any] = {}

        def build(element: ET.Element, parent: Any) -> Any:
            cls_name = element.get("class")
            if cls_name not in _UI_CLASSES:
                raise AssertionError(f"the .ui uses {cls_name}, which has no stand-in: add one to qt_standins.py")
            cls = _UI_CLASSES[cls_name]
            if element.tag == "layout":
                obj = cls(parent if isinstance(parent, QWidget) else None)
                if isinstance(parent, QLayout):
                    parent.addLayout(obj)
            else:
                obj = cls()
                if isinstance(parent, QLayout):
                    parent.addWidget(obj)
                elif parent is not None:
                    obj.setParent(parent)
            obj.objectName = element.get("name") or ""
            objects[obj.objectName] = obj
            for prop in element.findall("property"):
                value = _property_value(obj, prop)
                if prop.get("stdset") == "0":
                    obj._dynamic[prop.get("name")] = value
                else:
                    setattr(obj, prop.get("name"), value)
            if isinstance(obj, QComboBox):  # Designer's fixed items
                for item in element.findall("item"):
                    obj.addItem(item.findtext("property/string") or "")
            for child in element:
                if child.tag in ("widget", "layout"):
                    build(child, obj)
                elif child.tag == "item":
                    for grandchild in child:
                        if grandchild.tag in ("widget", "layout"):
                            build(grandchild, obj)
            return obj

        top = build(root.find("widget"), None)
        for connection in root.iter("connection"):
            sender, receiver = objects[connection.findtext("sender")], objects[connection.findtext("receiver")]
            slot = getattr(receiver, connection.findtext("slot").split("(")[0])
            sender.connect(connection.findtext("signal"), slot)
        return top
