"""Run the BrainLesionCL module with **Slicer's own Python**, outside Slicer.

Slicer's ``slicer/util.py``, ``slicer/ScriptedLoadableModule.py``, the ``slicer/parameterNodeWrapper`` package and
``SampleData.py`` are executed from ``../shared/reference/slicer_python`` (unmodified files of Slicer's source; they
are read from there at test time and never copied into the project). They run on top of the ``slicer-core`` wheel's
real MRML scene. Stood in, because they cannot run here:

* the Qt, CTK and qMRML widget classes (:mod:`qt_standins`, written from the Qt/CTK documentation);
* ``slicer.i18n`` (identity translation: no translation catalogue exists outside Slicer);
* ``slicer.app`` (the application object: testing mode, the main window for dialogs, the module manager, settings)
  and the module's entry in ``slicer.modules`` (path, ``widgetRepresentation()`` that creates the panel and runs
  ``setup()`` as Slicer's ``qSlicerScriptedLoadableModuleWidget`` does).

So the rules that decide whether the panel opens (which widget a parameter can bind to, what a parameter
serialises to, what ``tryWithErrorDisplay`` does after the dialog, how ``SampleDataSource`` checks its arguments,
what ``setSliceViewerLayers`` changes) are Slicer's code, not a picture of it.

Test-only; never shipped.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import qt_standins as standins

SLICER_PYTHON = Path(__file__).resolve().parents[3] / "shared" / "reference" / "slicer_python"
MODULE_FILE = Path(__file__).resolve().parents[2] / "BrainLesionCL" / "BrainLesionCL.py"


def require_slicer_python() -> Path:
    """The folder of Slicer's own Python, or skip with the reason (a user's fresh clone has no ../shared)."""
    if not (SLICER_PYTHON / "slicer" / "util.py").is_file():
        pytest.skip(f"{SLICER_PYTHON} is not available: Slicer's own Python (util.py, ScriptedLoadableModule.py, "
                    "parameterNodeWrapper, SampleData.py) is only beside the project on the development machines")
    return SLICER_PYTHON


# -- the stood-in modules ---------------------------------------------------------------------------------------------
def _qt_module() -> types.ModuleType:
    qt = types.ModuleType("qt")
    for name, cls in standins.QT_CLASSES.items():
        setattr(qt, name, cls)
    qt.QUiLoader = standins.QUiLoader
    return qt


def _ctk_module() -> types.ModuleType:
    ctk = types.ModuleType("ctk")
    for name, cls in standins.CTK_CLASSES.items():
        setattr(ctk, name, cls)
    return ctk


def _i18n_module() -> types.ModuleType:
    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    i18n.translate = lambda _context, text: text
    return i18n


class MainWindow(standins.QWidget):
    """The application's main window: present, so Slicer's dialogs are shown (through ``ctkMessageBox``)."""

    def __init__(self) -> None:
        super().__init__()
        self.objectName = "qSlicerMainWindow"


class ModuleManager(standins.QObject):
    moduleAboutToBeUnloaded = standins.Signal()


class SlicerApplication(standins.QObject):
    """``slicer.app``: what the module and Slicer's util.py/ScriptedLoadableModule.py/SampleData.py ask of it."""

    startupCompleted = standins.Signal()

    def __init__(self, scene: Any, testing: bool) -> None:
        super().__init__()
        self.testing = testing
        self.applicationName = "3D Slicer"
        self.applicationVersion = "5.12.3"
        self.temporaryPath = ""
        self._scene = scene
        self._main_window = MainWindow()
        self._module_manager = ModuleManager()
        self._settings = standins.QSettings()

    def testingEnabled(self) -> bool:  # noqa: N802
        return self.testing

    def processEvents(self, *_args: Any) -> None:  # noqa: N802
        pass

    setOverrideCursor = staticmethod(standins.QApplication.setOverrideCursor)  # noqa: N815 - Qt's names
    restoreOverrideCursor = staticmethod(standins.QApplication.restoreOverrideCursor)  # noqa: N815
    overrideCursor = staticmethod(standins.QApplication.overrideCursor)  # noqa: N815

    def topLevelWidgets(self) -> list[Any]:  # noqa: N802
        return [self._main_window]

    def moduleManager(self) -> ModuleManager:  # noqa: N802
        return self._module_manager

    def userSettings(self) -> standins.QSettings:  # noqa: N802
        return self._settings

    def settings(self) -> standins.QSettings:
        return self._settings

    def layoutManager(self) -> None:  # noqa: N802
        return None

    def mrmlScene(self) -> Any:  # noqa: N802
        return self._scene


class qSlicerScriptedLoadableModule:  # noqa: N801 - Slicer's name
    """The C++ module object a scripted module's ``__init__`` fills in (title, categories, help, icon, path)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.title = ""
        self.categories: list[str] = []
        self.dependencies: list[str] = []
        self.contributors: list[str] = []
        self.helpText = ""
        self.acknowledgementText = ""
        self.icon = None
        self.hidden = False


class qSlicerScriptedLoadableModuleWidget(standins.qMRMLWidget):  # noqa: N801
    """The panel's Qt parent: Slicer creates it with a vertical layout, calls the Python widget's ``setup()``, and
    ``enter()``/``exit()`` when the module is shown or left."""

    def __init__(self, module_name: str = "BrainLesionCL") -> None:
        super().__init__()
        self.isEntered = False
        self.setLayout(standins.QVBoxLayout())
        self.python = None
        self.module_name = module_name

    def self(self) -> Any:
        return self.python

    def create(self, widget_class: type) -> Any:
        """Instantiate the Python widget with this parent, run its ``setup()`` and publish it as
        ``slicer.modules.<Module>Widget`` (what Slicer's reload looks for)."""
        import slicer

        self.python = widget_class(self)
        self.python.setup()
        setattr(slicer.modules, f"{self.module_name}Widget", self.python)
        return self.python

    def reload(self) -> None:
        """After ``slicer.util.reloadScriptedModule`` re-executed the file: a new widget of the new class."""
        self.create(getattr(sys.modules[self.module_name], f"{self.module_name}Widget"))
        if self.isEntered:
            self.python.enter()


class ModuleHandle:
    """``slicer.modules.brainlesioncl``: its path, and the widget representation created on first use."""

    def __init__(self, path: Path, widget_class: type, scene: Any) -> None:
        self.path = str(path)
        self._widget_class = widget_class
        self._scene = scene
        self._representation: qSlicerScriptedLoadableModuleWidget | None = None

    def widgetRepresentation(self) -> qSlicerScriptedLoadableModuleWidget:  # noqa: N802
        if self._representation is None:
            representation = qSlicerScriptedLoadableModuleWidget()
            representation.setMRMLScene(self._scene)
            self._representation = representation
            representation.create(self._widget_class)
        return self._representation

    def enter(self) -> Any:
        representation = self.widgetRepresentation()
        representation.isEntered = True
        representation.python.enter()
        return representation.python

    def exit(self) -> None:
        if self._representation is not None and self._representation.isEntered:
            self._representation.isEntered = False
            self._representation.python.exit()

    def unload(self) -> None:
        """What Slicer does when the application closes: ``moduleAboutToBeUnloaded`` reaches ``cleanup()``."""
        import slicer

        if self._representation is not None:
            self.exit()
            slicer.app.moduleManager().moduleAboutToBeUnloaded.emit("BrainLesionCL")


# -- Slicer's own Python ----------------------------------------------------------------------------------------------
_LOADED: dict[str, types.ModuleType] = {}
_STOOD_IN: dict[str, types.ModuleType] = {}


def _execute(name: str, path: Path, package: Path | None = None) -> None:
    """Execute one of Slicer's files as module ``name`` (registered in ``sys.modules`` first, as imports do)."""
    spec = importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=[str(package)] if package is not None else None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


def _slicer_python(monkeypatch: Any, slicer: Any) -> dict[str, types.ModuleType]:
    """Slicer's util, ScriptedLoadableModule, parameterNodeWrapper and SampleData, executed once per process and put
    in ``sys.modules`` (and on the ``slicer`` package) for one test."""
    root = require_slicer_python()
    if not _LOADED:
        before, loaded = dict(sys.modules), False
        try:
            _execute("slicer.util", root / "slicer" / "util.py")
            wrapper = root / "slicer" / "parameterNodeWrapper"
            _execute("slicer.parameterNodeWrapper", wrapper / "__init__.py", package=wrapper)
            _execute("slicer.ScriptedLoadableModule", root / "slicer" / "ScriptedLoadableModule.py")
            _execute("SampleData", root / "SampleData.py")
            loaded = True
        finally:  # every test gets them through monkeypatch: outside the tests, sys.modules is as it was
            ours = {name: module for name, module in sys.modules.items()
                    if (name.startswith("slicer.") or name == "SampleData") and before.get(name) is not module}
            for name in ours:
                if name in before:
                    sys.modules[name] = before[name]
                else:
                    del sys.modules[name]
        if loaded:
            _LOADED.update(ours)
    for name, module in _LOADED.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(slicer, "util", _LOADED["slicer.util"])
    monkeypatch.setattr(slicer, "parameterNodeWrapper", _LOADED["slicer.parameterNodeWrapper"], raising=False)
    monkeypatch.setattr(slicer, "ScriptedLoadableModule", _LOADED["slicer.ScriptedLoadableModule"], raising=False)
    return _LOADED


class Dialogs:
    """What Slicer's dialogs showed the user (through ``ctkMessageBox``), and the user's scripted answers."""

    def __init__(self) -> None:
        standins.ctkMessageBox.shown = []
        standins.ctkMessageBox.answers = []

    @property
    def shown(self) -> list[tuple[str, str]]:
        return standins.ctkMessageBox.shown

    @property
    def answers(self) -> list[bool]:
        return standins.ctkMessageBox.answers

    @answers.setter
    def answers(self, values: list[bool]) -> None:
        standins.ctkMessageBox.answers = list(values)

    def errors(self) -> list[str]:
        return [text for kind, text in self.shown if kind == "error"]

    def questions(self) -> list[str]:
        return [text for kind, text in self.shown if kind == "question"]


def install(monkeypatch: Any, slicer_core: Any, testing: bool = False) -> types.SimpleNamespace:
    """Make ``import qt``, ``ctk``, ``slicer.util``, ``slicer.parameterNodeWrapper``, ``slicer.ScriptedLoadableModule``
    and ``SampleData`` give Slicer's code over the stand-ins, for one test. ``testing`` is Slicer's testing mode
    (dialogs only logged, confirmations answered yes): off for a user's session, on for the module's self-test."""
    slicer = slicer_core.slicer
    if not _STOOD_IN:
        _STOOD_IN.update({"qt": _qt_module(), "ctk": _ctk_module(), "slicer.i18n": _i18n_module()})
    for name, module in _STOOD_IN.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(slicer, "i18n", sys.modules["slicer.i18n"], raising=False)
    for name, cls in standins.MRML_WIDGET_CLASSES.items():
        monkeypatch.setattr(slicer, name, cls, raising=False)
    app = SlicerApplication(slicer_core.scene, testing)
    monkeypatch.setattr(slicer, "app", app, raising=False)
    monkeypatch.setattr(standins.QSettings, "_values", {})
    monkeypatch.setattr(standins.QFileDialog, "answers", [])
    monkeypatch.setattr(standins.QApplication, "_cursors", [])
    modules = types.SimpleNamespace(**vars(slicer.modules))
    monkeypatch.setattr(slicer, "modules", modules)
    monkeypatch.delattr(slicer, "selfTests", raising=False)
    _slicer_python(monkeypatch, slicer)
    _add_slice_views(slicer_core.scene)
    return types.SimpleNamespace(slicer=slicer, app=app, dialogs=Dialogs(), modules=modules)


def _add_slice_views(scene: Any) -> None:
    """The three slice viewers' composite nodes of Slicer's default layout (singletons: they survive a scene close),
    so ``setSliceViewerLayers`` has viewers to change."""
    import slicer

    for name in ("Red", "Yellow", "Green"):
        if scene.GetSingletonNode(name, "vtkMRMLSliceCompositeNode") is None:
            node = slicer.vtkMRMLSliceCompositeNode()
            node.SetSingletonTag(name)
            node.SetLayoutName(name)
            scene.AddNode(node)


def load_module(monkeypatch: Any, runtime: types.SimpleNamespace, path: Path = MODULE_FILE) -> types.ModuleType:
    """Load the module file as Slicer does at start-up: import it, create its ``ScriptedLoadableModule`` with the C++
    module object as parent, register ``slicer.modules.brainlesioncl``, then announce ``startupCompleted``."""
    spec = importlib.util.spec_from_file_location("BrainLesionCL", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "BrainLesionCL", module)
    spec.loader.exec_module(module)
    parent = qSlicerScriptedLoadableModule(path)
    module.BrainLesionCL(parent)
    runtime.parent = parent
    runtime.handle = ModuleHandle(path, module.BrainLesionCLWidget, runtime.slicer.mrmlScene)
    runtime.modules.brainlesioncl = runtime.handle
    runtime.app.startupCompleted.emit()
    return module
