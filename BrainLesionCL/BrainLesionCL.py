"""BrainLesionCL: brain lesion segmentation in MRI with any set of modalities, which keeps learning locally.

This file is the thin Qt layer: it reads widgets and calls logic. Everything the buttons do lives in
``BrainLesionCLLib`` (Qt-free, usable from the Python console and tested headless) and in the engine package
``brainlesioncl`` (under ``Lib/``). Long work (Segment, Train, the modality study) runs in a child process; the widget
keeps each running job's choices (output node, overwrite answer, temporary folders) with the job itself.

Needs Slicer 5.10 or later (Python 3.10+): on an older Slicer the panel says so instead of failing.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Annotated, Any

import qt
import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

#: The engine uses Python 3.10 syntax and APIs (``zip(strict=True)``, ``X | Y`` types): Slicer 5.10 or later.
MIN_PYTHON = (3, 10)
MIN_SLICER = "5.10"
#: Python packages the engine imports, and what to install for each (torch comes from the PyTorch extension).
PACKAGES = {"torch": "torch", "monai": "monai>=1.3", "nibabel": "nibabel", "skimage": "scikit-image",
            "safetensors": "safetensors", "scipy": "scipy", "SimpleITK": "SimpleITK"}


def unsupportedSlicerMessage() -> str | None:
    """Why this Slicer cannot run BrainLesionCL, or None."""
    if sys.version_info >= MIN_PYTHON:
        return None
    return _("BrainLesionCL needs 3D Slicer {minimum} or later (Python {python}+); this Slicer has Python {found}. "
             "Install the current stable Slicer from download.slicer.org.").format(
        minimum=MIN_SLICER, python=".".join(map(str, MIN_PYTHON)), found=sys.version.split()[0])


def missingPackages() -> list[str]:
    """Engine packages that are not installed (checked without importing them, so opening the panel is fast)."""
    return [module for module in PACKAGES if importlib.util.find_spec(module) is None]


def _packagingModule():
    """Slicer's package helper (``slicer.packaging`` from 5.12, ``slicer.pydeps`` in 5.11), or None."""
    for name in ("slicer.packaging", "slicer.pydeps"):
        try:
            return importlib.import_module(name)  # not imported by ``import slicer``: import it explicitly
        except ImportError:
            continue
    return None


def ensureDependencies() -> bool:
    """Install what the engine needs after asking once; True when everything is there. Never called at import time.

    In testing mode nothing is installed (a self-test run must not change the installation): returns False.
    """
    missing = missingPackages()
    if not missing:
        return True
    if slicer.app.testingEnabled():
        return False
    packaging = _packagingModule()
    requirements = [PACKAGES[m] for m in missing if m != "torch"]
    try:
        if "torch" not in missing and packaging is not None and hasattr(packaging, "pip_ensure"):
            packaging.pip_ensure(requirements, requester="BrainLesionCL")  # asks the user itself, once
        else:
            if not slicer.util.confirmOkCancelDisplay(
                _("BrainLesionCL needs these Python packages: {packages}. Install them now? This can take several "
                  "minutes and needs internet access.").format(packages=", ".join(PACKAGES[m] for m in missing))):
                return False
            if "torch" in missing and not _installTorch():
                return False
            if requirements:
                slicer.util.pip_install(" ".join(requirements))
    except RuntimeError as err:  # the user declined in Slicer's own prompt
        slicer.util.errorDisplay(_("The Python packages were not installed: {error}").format(error=err))
        return False
    except (subprocess.CalledProcessError, OSError) as err:  # pip ran and failed: offline, a proxy, a full disk...
        slicer.util.errorDisplay(installFailedMessage(missingPackages() or missing, err))
        return False
    return not missingPackages()


def installFailedMessage(missing: list[str], error: Exception) -> str:
    """What failed and how to install by hand (a hospital PC often has no internet access)."""
    requirements = " ".join(PACKAGES[m] for m in missing if m != "torch")
    return _("Installing {packages} failed ({error}). pip needs access to the Python package index (PyPI); ask your IT "
             "for a proxy or an internet connection and try again. On a computer that stays offline, download the "
             "wheels elsewhere and install them from Slicer's Python console: "
             "slicer.util.pip_install('--no-index --find-links=FOLDER {requirements}'). PyTorch itself comes from the "
             "PyTorch extension (Extensions Manager).").format(
        packages=", ".join(PACKAGES[m] for m in missing), error=error, requirements=requirements or "monai")


def _installTorch() -> bool:
    try:
        import PyTorchUtils
    except ImportError:
        slicer.util.errorDisplay(_("Install the PyTorch extension from the Extensions Manager, restart Slicer and "
                                   "try again."))
        return False
    return PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False, torchVersionRequirement=">=2.3") \
        is not None


class BrainLesionCL(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("BrainLesionCL")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["BrainLesionCL developers"]
        self.parent.helpText = _(
            "Segments brain lesions in MRI from whatever sequences you have (FLAIR, T1, T1c, T2, PD, DWI...).<br>"
            "<b>Use:</b> load the patient's volumes, press <i>Auto-map</i> (or pick each channel's volume), choose the "
            "disease tag and press <i>Segment</i>. Volumes on different grids are resampled onto the reference "
            "volume, where the segmentation is created. The lesion table lists every lesion; click a row to centre "
            "the views on it.<br>"
            "<b>Disease tags</b> route the model's experts: <i>tumour</i> (glioma: whole tumour), <i>stroke</i>, "
            "<i>MS</i>, <i>WMH</i> (white matter hyperintensities), <i>metastasis</i> (the metastasis pipeline when "
            "installed, else the tumour experts), <i>unknown</i> (an even mixture of all).<br>"
            "<b>Learning locally:</b> the Advanced panel trains a new <i>episode</i> on your annotated cases and "
            "stores it as a new model version; your data never leaves this computer and nothing old is replayed. "
            "Versions can be activated and rolled back at any time. <i>Which inputs matter for this case?</i> segments "
            "with every subset of the mapped sequences and shows how much the result depends on each.<br>"
            "Try it without data: <i>Sample Data > BrainLesionCL phantom</i> makes a synthetic case locally.<br>"
            "<b>The shipped model is a demonstration model trained on synthetic phantoms, not a clinical tool.</b> "
            "Needs Slicer {minimum} or later."
        ).format(minimum=MIN_SLICER)
        self.parent.acknowledgementText = _(
            "BrainLesionCL builds on three studies: modality-agnostic brain lesion segmentation with privacy-aware "
            "continual learning (BrainCL, mixture-of-experts U-Net with dual distillation, arXiv 2503.20326); joint "
            "learning from MRI databases with different brain diseases and modalities (MultiUnet, MIDL 2024, arXiv "
            "2405.18511); and two-stage brain-metastasis detection and segmentation (MICCAI 2024 PRIME, arXiv "
            "2407.14011)."
        )
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData() -> None:
    """A "BrainLesionCL phantom" entry in Sample Data: a four-sequence tumour case generated here, no download."""
    try:
        import SampleData
    except ImportError:
        return
    if unsupportedSlicerMessage() or missingPackages():
        return
    iconsPath = os.path.join(os.path.dirname(__file__), "Resources", "Icons")
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="BrainLesionCL", sampleName="BrainLesionCL phantom",
        uris=[], fileNames=[], nodeNames=[],  # nothing to download (SampleDataSource calls len() on each)
        thumbnailFileName=os.path.join(iconsPath, "BrainLesionCL.png"),
        customDownloader=lambda *_args: loadPhantomCase())


def loadPhantomCase(disease: str = "tumour", seed: int = 4242) -> dict:
    """Generate a synthetic multi-sequence case (known truth) and load its volumes; returns {modality: node}."""
    import SimpleITK as sitk
    from BrainLesionCLLib.mrml_io import ijk_to_ras_of_image  # importing the package puts the engine on sys.path

    from brainlesioncl.phantoms import PhantomConfig, generate_case

    case = generate_case(PhantomConfig(disease=disease, modalities=("FLAIR", "T1", "T1c", "T2"),
                                       size=(104, 120, 96), spacing=1.5, seed=seed))
    return {modality: slicer.util.addVolumeFromArray(sitk.GetArrayFromImage(image),
                                                     ijkToRAS=ijk_to_ras_of_image(image),
                                                     name=f"phantom {modality}")
            for modality, image in case.images.items()}


@parameterNodeWrapper
class BrainLesionCLParameterNode:
    """GUI state, saved with the scene. Channel volumes are references named input<Channel> (one per engine
    modality; a test pins the list to the engine's)."""

    inputFLAIR: vtkMRMLScalarVolumeNode
    inputT1: vtkMRMLScalarVolumeNode
    inputT1c: vtkMRMLScalarVolumeNode
    inputT2: vtkMRMLScalarVolumeNode
    inputPD: vtkMRMLScalarVolumeNode
    inputDWI: vtkMRMLScalarVolumeNode
    inputSWI: vtkMRMLScalarVolumeNode
    inputADC: vtkMRMLScalarVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode
    referenceChannel: str = ""
    disease: str = "unknown"
    device: str = "auto"
    prepare: Annotated[str, Choice(["auto", "on", "off"])] = "auto"
    probabilityVolume: bool = False
    uncertaintyVolume: bool = False
    showBrainMask: bool = False
    biasCorrection: bool = False
    show3D: bool = True
    strategy: str = "ours"
    epochs: Annotated[int, WithinRange(1, 2000)] = 20
    cropSize: Annotated[int, WithinRange(32, 256)] = 64
    # Paths are plain text, kept by the panel (not bound): a Path parameter serialises "no path" as "." (shown as
    # "." in a path field, and read by a directory button as the working directory).
    casesFolder: str = ""
    casesManifest: str = ""
    useCurrentCase: bool = False
    federatedServer: str = ""
    federatedCertificate: str = ""
    federatedSite: str = ""


class BrainLesionCLLogic(ScriptedLoadableModuleLogic):
    """The module logic Slicer expects (it owns the parameter node, tagged "BrainLesionCL"). The engine work is done by
    the Qt-free :class:`BrainLesionCLLib.BrainLesionCLLogic`, created on first use (it imports PyTorch)."""

    def __init__(self, engineFactory=None) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self._engineFactory = engineFactory
        self._engine = None

    def getParameterNode(self):
        return BrainLesionCLParameterNode(super().getParameterNode())

    @property
    def engine(self):
        if self._engine is None:
            if self._engineFactory is None:
                import BrainLesionCLLib

                self._engineFactory = BrainLesionCLLib.BrainLesionCLLogic
            self._engine = self._engineFactory()
        return self._engine

    @property
    def engineReady(self) -> bool:
        return self._engine is not None


@dataclass
class Job:
    """A running child process and the choices made when it was started (never re-read from widgets later)."""

    kind: str  # "segment", "episode", "study" or "federated"
    process: Any
    button: Any
    idleText: str
    outputNode: Any = None
    overwrite: bool = False
    referenceNode: Any = None
    logged: int = 0
    extra: dict = field(default_factory=dict)


class BrainLesionCLWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Thin GUI: it reads the widgets, calls the logic, and shows progress. No processing here.

    ``engineFactory`` (class attribute) is injectable: tests give a logic on a test registry.
    """

    engineFactory = None

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._job: Job | None = None
        self._timer = qt.QTimer()
        self._timer.setInterval(250)
        self._timer.connect("timeout()", self._onPoll)
        self._selectors = {}
        self._filling = False

    # ------------------------------------------------------------------------------------------------ setup
    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/BrainLesionCL.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = BrainLesionCLLogic(engineFactory=self.engineFactory)

        unsupported = unsupportedSlicerMessage()
        if unsupported:  # an old Slicer: say so, and keep every action off
            self.ui.validationLabel.text = unsupported
            for button in (self.ui.applyButton, self.ui.autoMapButton, self.ui.trainButton,
                           self.ui.modalityStudyButton):
                button.enabled = False
            return

        self.ui.modelTable.setColumnCount(5)
        self.ui.modelTable.setHorizontalHeaderLabels([_("Version"), _("Parent"), _("Diseases"), _("Created"),
                                                      _("Validation Dice")])
        self.ui.modelTable.setSelectionBehavior(qt.QAbstractItemView.SelectRows)
        self.ui.modelTable.setEditTriggers(qt.QAbstractItemView.NoEditTriggers)
        self.ui.lesionTable.setColumnCount(7)
        self.ui.lesionTable.setHorizontalHeaderLabels([_("Lesion"), _("Volume (mL)"), _("Largest diameter (mm)"),
                                                       _("Centre (RAS)"), _("Mean probability"), _("Unsure?"),
                                                       _("Brightest on")])
        self.ui.lesionTable.setSelectionBehavior(qt.QAbstractItemView.SelectRows)
        self.ui.lesionTable.setEditTriggers(qt.QAbstractItemView.NoEditTriggers)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndImportEvent, self.onSceneEndImport)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.autoMapButton.connect("clicked(bool)", self.onAutoMap)
        self.ui.trainButton.connect("clicked(bool)", self.onTrainButton)
        self.ui.joinFederationButton.connect("clicked(bool)", self.onJoinFederation)
        self.ui.modalityStudyButton.connect("clicked(bool)", self.onModalityStudy)
        self.ui.activateButton.connect("clicked(bool)", self.onActivate)
        self.ui.rollbackButton.connect("clicked(bool)", self.onRollback)
        self.ui.importButton.connect("clicked(bool)", self.onImport)
        self.ui.exportButton.connect("clicked(bool)", self.onExport)
        self.ui.exportDicomButton.connect("clicked(bool)", self.onExportDicom)
        self.ui.lesionTable.connect("cellClicked(int,int)", self.onLesionClicked)
        self.ui.diseaseComboBox.connect("currentIndexChanged(int)", self._storeChoices)
        self.ui.deviceComboBox.connect("currentIndexChanged(int)", self._storeChoices)
        self.ui.strategyComboBox.connect("currentIndexChanged(int)", self._storeChoices)
        self.ui.referenceComboBox.connect("currentIndexChanged(int)", self._onReferenceChanged)
        for pathField in self._pathFields():
            pathField.connect("currentPathChanged(QString)", self._storePaths)
        self.ui.outputSegmentationSelector.connect("currentNodeChanged(vtkMRMLNode*)",
                                                   self.ui.show3DButton.setSegmentationNode)
        self.initializeParameterNode()
        if not missingPackages():  # ready: show the channel selectors at once (the engine loads here)
            self._ensureLogic()
        else:
            self._status(_("Press Segment to install the Python packages BrainLesionCL needs (you are asked "
                           "first)."))
        self._updateValidation()

    def _ensureLogic(self) -> bool:
        if self.logic.engineReady:
            return True
        if not ensureDependencies():
            return False
        with self._reportErrors(_("BrainLesionCL could not load its model.")):
            self.logic.engine  # noqa: B018 - builds the engine logic (imports PyTorch, reads the registry)
            self._buildModelControls()
            self.ui.environmentLabel.text = self.logic.engine.environmentReport()
        return self.logic.engineReady

    @contextlib.contextmanager
    def _reportErrors(self, message: str):
        """Run one user action: an error is shown the way Slicer shows it (``tryWithErrorDisplay``: a dialog, then it
        re-raises), written in the status line, and never escapes into Qt; the buttons are restored in every case."""
        try:
            with slicer.util.tryWithErrorDisplay(message, waitCursor=True):
                yield
        except Exception as error:  # noqa: BLE001 - already shown to the user; a Qt slot must not raise
            logging.debug("BrainLesionCL action failed", exc_info=True)
            self._status(f"{message} {error}")
        finally:
            self._updateValidation()

    def _buildModelControls(self) -> None:
        """One volume selector per channel of the active model; disease, device and strategy choices from the
        logic. Saved choices are read before the combos are refilled, and restored after."""
        engine = self.logic.engine
        saved = self._savedChoices()
        self._filling = True
        try:
            layout = self.ui.channelsFormLayout
            while layout.rowCount():
                layout.removeRow(0)
            self._selectors = {}
            self.ui.modelNameLabel.text = engine.activeModel()
            for channel in engine.modelChannels():
                selector = slicer.qMRMLNodeComboBox()
                selector.nodeTypes = ["vtkMRMLScalarVolumeNode"]
                selector.showChildNodeTypes = False  # no labelmaps
                selector.noneEnabled = True
                selector.addEnabled = False
                selector.removeEnabled = False
                selector.setMRMLScene(slicer.mrmlScene)
                selector.setToolTip(_("Volume for the {channel} channel (leave empty if you do not have it).").format(
                    channel=channel))
                selector.setCurrentNode(saved["inputs"].get(channel))
                selector.connect("currentNodeChanged(vtkMRMLNode*)", lambda node, c=channel: self._onChannel(c, node))
                layout.addRow(f"{channel}:", selector)
                self._selectors[channel] = selector
            self._hideOwnVolumes()
            self._refill(self.ui.diseaseComboBox,
                         [(d, _("Automatic") if d == "auto" else d) for d in engine.modelDiseases()], saved["disease"])
            self._refill(self.ui.deviceComboBox, engine.detectDevices(), saved["device"])
            self._refill(self.ui.strategyComboBox, [(s, s) for s in engine.strategyNames()], saved["strategy"])
        finally:
            self._filling = False
        self._fillReferenceChoices(saved["reference"])
        self._storeChoices()
        self._refreshModelTable()
        self._updateValidation()

    def _savedChoices(self) -> dict:
        node = self._parameterNode
        if node is None:
            return {"inputs": {}, "disease": None, "device": None, "strategy": None, "reference": None}
        inputs = {c: getattr(node, f"input{c}", None) for c in self._parameterChannels()}
        return {"inputs": inputs, "disease": node.disease, "device": node.device, "strategy": node.strategy,
                "reference": node.referenceChannel}

    @staticmethod
    def _parameterChannels() -> list[str]:
        return [name[len("input"):] for name in BrainLesionCLParameterNode.__annotations__ if name.startswith("input")]

    @staticmethod
    def _refill(combo, items, saved) -> None:
        """Refill a combo with (data, label) items and select the saved data, else the first item."""
        combo.clear()
        for data, label in items:
            combo.addItem(label, data)
        index = combo.findData(saved) if saved is not None else -1
        combo.currentIndex = index if index >= 0 else (0 if combo.count else -1)  # count: a Qt property

    def _storeChoices(self) -> None:
        if self._parameterNode is None or self._filling:
            return
        if self.ui.diseaseComboBox.currentIndex >= 0:
            self._parameterNode.disease = self.ui.diseaseComboBox.currentData
        if self.ui.deviceComboBox.currentIndex >= 0:
            self._parameterNode.device = self.ui.deviceComboBox.currentData
        if self.ui.strategyComboBox.currentIndex >= 0:
            self._parameterNode.strategy = self.ui.strategyComboBox.currentData
        if self.ui.referenceComboBox.currentIndex >= 0:
            self._parameterNode.referenceChannel = self.ui.referenceComboBox.currentText

    def _fillReferenceChoices(self, preferred: str | None = None) -> None:
        """The reference offers only mapped channels; it keeps the current (or saved) choice while still mapped."""
        preferred = preferred or self.ui.referenceComboBox.currentText
        mapped = list(self._inputs())
        self._filling = True
        try:
            self._refill(self.ui.referenceComboBox, [(c, c) for c in mapped], preferred if preferred in mapped else
                         None)
        finally:
            self._filling = False
        self._storeChoices()

    def _hideOwnVolumes(self) -> None:
        """The module's probability volumes are never offered as inputs."""
        engine = self.logic.engine
        hidden = [node.GetID() for node in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")
                  if not engine.isInputCandidate(node)]
        for selector in self._selectors.values():
            selector.sortFilterProxyModel().setHiddenNodeIDs(hidden)

    # ---------------------------------------------------------------------------------------- parameter node
    def cleanup(self) -> None:
        self._cancelJob()
        self._stopEngine()
        self.removeObservers()

    def _stopEngine(self) -> None:
        """End the engine process kept alive between Segment clicks (it holds PyTorch and the model in memory)."""
        if self.logic is not None and self.logic.engineReady:
            self.logic.engine.stopEngine()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._job is None:  # a running segmentation finishes in the background; an idle engine is released
            self._stopEngine()
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None

    def onSceneStartClose(self, caller, event) -> None:
        self._cancelJob()  # its nodes are going away; its temporary patient images too
        self._stopEngine()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()
            if self.logic.engineReady:
                self._buildModelControls()

    def onSceneEndImport(self, caller, event) -> None:
        """A loaded scene brings its own parameter node values (channels, disease, device, strategy, paths): show
        them, as after opening the panel."""
        self.initializeParameterNode()
        if self.logic.engineReady:
            self._buildModelControls()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # Bound widgets (SlicerParameterName in the .ui): output selector, raw-scan preparation, the check boxes,
            # epochs, crop size, federated server and site. The path fields are kept here (see _pathFields).
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
        self._showPaths()

    def _pathFields(self) -> list:
        return [self.ui.casesFolderLineEdit, self.ui.casesManifestLineEdit, self.ui.federatedCertificateLineEdit]

    def _showPaths(self) -> None:
        """Write the parameter node's paths into the path fields ("" when unset; an old scene's "." counts as
        unset)."""
        node = self._parameterNode
        values = (node.casesFolder, node.casesManifest, node.federatedCertificate) if node else ("", "", "")
        for pathField, value in zip(self._pathFields(), values, strict=True):
            pathField.currentPath = self._pathText(value)

    def _storePaths(self, *_args) -> None:
        if self._parameterNode is not None:
            self._parameterNode.casesFolder = self._pathText(self.ui.casesFolderLineEdit.currentPath)
            self._parameterNode.casesManifest = self._pathText(self.ui.casesManifestLineEdit.currentPath)
            self._parameterNode.federatedCertificate = self._pathText(
                self.ui.federatedCertificateLineEdit.currentPath)

    def _inputs(self) -> dict:
        return {c: s.currentNode() for c, s in self._selectors.items() if s.currentNode() is not None}

    def _onChannel(self, channel: str, node) -> None:
        if self._parameterNode is not None and not self._filling and channel in self._parameterChannels():
            setattr(self._parameterNode, f"input{channel}", node)
        if not self._filling:
            self._fillReferenceChoices()
            self._updateValidation()

    def _onReferenceChanged(self, index: int) -> None:
        self._storeChoices()
        if not self._filling:
            self._updateValidation()

    def _updateValidation(self) -> None:
        busy = self._job is not None
        if not self.logic.engineReady:
            self.ui.applyButton.enabled = not busy  # the first press installs the packages (after asking)
            self.ui.applyButton.toolTip = _("Installs the Python packages BrainLesionCL needs, after asking.")
            return
        inputs = self._inputs()
        problems = self.logic.engine.validateInputs(inputs)
        note = None
        if not problems:
            try:
                note = self.logic.engine.geometryNote(inputs, self.ui.referenceComboBox.currentText or None)
            except Exception as error:  # noqa: BLE001 - a volume the engine cannot read: say why, keep the panel live
                problems = [str(error)]
        self.ui.validationLabel.text = problems[0] if problems else (note or "")
        running = {"segment": self.ui.applyButton, "episode": self.ui.trainButton,
                   "study": self.ui.modalityStudyButton,
                   "federated": self.ui.joinFederationButton}.get(self._job.kind if busy else "")
        # One job at a time: the running job's button is its Cancel button, the others wait.
        self.ui.applyButton.enabled = running is self.ui.applyButton or (not busy and not problems)
        self.ui.trainButton.enabled = running is self.ui.trainButton or not busy
        self.ui.joinFederationButton.enabled = running is self.ui.joinFederationButton or not busy
        self.ui.modalityStudyButton.enabled = running is self.ui.modalityStudyButton or (not busy and not problems)
        self.ui.applyButton.toolTip = problems[0] if problems else _("Segment the mapped volumes.")
        fromDicom = any(node.GetAttribute("DICOM.instanceUIDs") for node in inputs.values())
        self.ui.exportDicomButton.enabled = fromDicom and not busy
        self.ui.exportDicomButton.toolTip = _(
            "Write the output segmentation as DICOM SEG (and its lesion table as a DICOM SR) on the reference "
            "volume's DICOM series, and add them to Slicer's DICOM database.") if fromDicom else _(
            "Available when the input volumes were loaded with Slicer's DICOM module: a DICOM SEG refers to them.")

    # ------------------------------------------------------------------------------------------ actions
    def onAutoMap(self) -> None:
        if not self._ensureLogic():
            return
        volumes = slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")
        manual = self._inputs()  # a mapping the user made by hand is never replaced
        mapping, notes, leftOut = self.logic.engine.autoMap(volumes, list(self._selectors), manual=manual)
        self._filling = True
        try:
            for channel, node in mapping.items():
                if channel in manual:
                    continue
                self._selectors[channel].setCurrentNode(node)
                if self._parameterNode is not None:
                    setattr(self._parameterNode, f"input{channel}", node)
        finally:
            self._filling = False
        for channel, selector in self._selectors.items():  # the evidence, next to each selector
            note = notes.get(channel, "") if channel not in manual else _("chosen by hand")
            selector.setToolTip(note or _("Volume for the {channel} channel (leave empty if you do not have it)."
                                          ).format(channel=channel))
        self._fillReferenceChoices()
        self._updateValidation()
        self._log(_("Auto-map: {mapping}").format(
            mapping="; ".join(f"{c} = {n.GetName()} ({notes.get(c, '')})" for c, n in mapping.items()
                              if c not in manual) or _("no volume recognised")))
        for node, why in leftOut:
            self._log(_("Auto-map left out {name}: {why}").format(name=node.GetName(), why=why))

    def onApplyButton(self) -> None:
        if self._job is not None:
            if self._job.kind == "segment":
                self._cancelJob()
            return
        if not self._ensureLogic():
            return
        inputs = self._inputs()
        problems = self.logic.engine.validateInputs(inputs)
        if problems:
            slicer.util.errorDisplay(problems[0])
            return
        output = self.ui.outputSegmentationSelector.currentNode()
        overwrite = False
        if output is not None and output.GetSegmentation().GetNumberOfSegments():
            if not slicer.util.confirmYesNoDisplay(
                _("Segmentation '{name}' already has segments. Replace its contents?").format(name=output.GetName())
            ):
                return
            overwrite = True
        reference = self.ui.referenceComboBox.currentText or None
        with self._reportErrors(_("Could not start the segmentation.")):
            process = self.logic.engine.startSegmentation(
                inputs, self.ui.diseaseComboBox.currentData or "unknown", referenceChannel=reference,
                device=self.ui.deviceComboBox.currentData or "auto",
                probabilityVolume=self.ui.probabilityCheckBox.checked,
                prepare=self.ui.prepareComboBox.currentText or "auto",
                uncertainty=self.ui.uncertaintyCheckBox.checked, brainMask=self.ui.brainMaskCheckBox.checked,
                biasCorrection=self.ui.biasCorrectionCheckBox.checked)
            self._startJob(Job("segment", process, self.ui.applyButton, self.ui.applyButton.text, outputNode=output,
                               overwrite=overwrite, referenceNode=inputs.get(reference) if reference else None),
                           _("Cancel"))

    def onTrainButton(self) -> None:
        if self._job is not None:
            if self._job.kind == "episode":
                self._cancelJob()
            return
        if not self._ensureLogic():
            return
        with self._reportErrors(_("Could not start the episode.")):
            source = self._caseSource()
            sceneCases = []
            if self.ui.useCurrentCaseCheckBox.checked:
                annotation = self.ui.outputSegmentationSelector.currentNode()
                if annotation is None:
                    raise ValueError(_("Select the annotated segmentation in the Output selector."))
                sceneCases = [(self._inputs(), annotation)]
            process = self.logic.engine.startEpisode(
                source, self.ui.diseaseComboBox.currentData or "unknown",
                strategy=self.ui.strategyComboBox.currentData or "ours", epochs=self.ui.epochsSpinBox.value,
                cropSize=self.ui.cropSpinBox.value, device=self.ui.deviceComboBox.currentData or "auto",
                sceneCases=sceneCases)
            self._startJob(Job("episode", process, self.ui.trainButton, self.ui.trainButton.text),
                           _("Cancel training"))

    def onJoinFederation(self) -> None:
        """Join a federated episode as a site with the case folder or manifest above, in the engine's child process
        (a Flower SuperNode); the button then leaves the federation."""
        if self._job is not None:
            if self._job.kind == "federated":
                self._cancelJob()
            return
        if not self._ensureLogic():
            return
        certificate = self._pathText(self.ui.federatedCertificateLineEdit.currentPath)
        with self._reportErrors(_("Could not join the federated episode.")):
            process = self.logic.engine.startFederatedSite(
                self._caseSource(), self.ui.federatedServerLineEdit.text, certificate=certificate or None,
                site=self.ui.federatedSiteLineEdit.text.strip() or None,
                device=self.ui.deviceComboBox.currentData or "auto")
            if not certificate:
                self._log(_("No CA certificate: the connection to the server is not encrypted (use this only for a "
                            "test on a trusted network)."))
            self._startJob(Job("federated", process, self.ui.joinFederationButton,
                               self.ui.joinFederationButton.text), _("Leave federated episode"))

    def _caseSource(self) -> str | None:
        """The case folder or the manifest of the Advanced panel (None when neither is given); both is an error."""
        folder = self._pathText(self.ui.casesFolderLineEdit.currentPath)
        manifest = self._pathText(self.ui.casesManifestLineEdit.currentPath)
        if folder and manifest:
            raise ValueError(_("Give a case folder or a manifest, not both: clear one of the two fields."))
        return folder or manifest or None

    @staticmethod
    def _pathText(value) -> str:
        text = str(value or "").strip()
        return "" if text in ("", ".") else text

    def onModalityStudy(self) -> None:
        """Every subset of the mapped inputs, in the engine's child process; the button cancels."""
        if self._job is not None:
            if self._job.kind == "study":
                self._cancelJob()
            return
        if not self._ensureLogic():
            return
        annotation = (self.ui.outputSegmentationSelector.currentNode() if self.ui.useCurrentCaseCheckBox.checked
                      else None)
        with self._reportErrors(_("Could not start the modality study.")):
            process = self.logic.engine.startModalityStudy(
                self._inputs(), self.ui.diseaseComboBox.currentData or "unknown", annotation,
                device=self.ui.deviceComboBox.currentData or "auto")
            self._startJob(Job("study", process, self.ui.modalityStudyButton, self.ui.modalityStudyButton.text),
                           _("Cancel study"))

    def _startJob(self, job: Job, cancelText: str) -> None:
        self._job = job
        job.button.text = cancelText
        self.ui.progressBar.value = 0
        self._timer.start()
        self._updateValidation()

    def _endJob(self) -> Job:
        job, self._job = self._job, None
        self._timer.stop()
        job.button.text = job.idleText
        return job

    def _onPoll(self) -> None:
        from BrainLesionCLLib import ProcessState

        job = self._job
        if job is None:
            return
        process = job.process
        state = process.poll()
        self.ui.progressBar.value = int(100 * process.fraction)
        self._status(f"{process.stage} ({process.elapsed:.0f} s)")
        for line in process.log[job.logged:]:
            self._log(line)
        job.logged = len(process.log)
        if state is ProcessState.RUNNING:
            return
        self._endJob()
        try:
            self._finishJob(job, state)
        finally:  # a failed import must not leave the buttons as they were during the job
            self._updateValidation()

    def _finishJob(self, job: Job, state) -> None:
        from BrainLesionCLLib import ProcessState

        process = job.process
        if state is ProcessState.CANCELLED:
            process.discardWork()
            self._status(_("Cancelled after {s:.0f} s; nothing was written.").format(s=process.elapsed))
        elif job.kind == "segment":
            self._finishSegmentation(job)
        elif job.kind == "study":
            with self._reportErrors(_("Modality study failed.")):
                study = self.logic.engine.finishModalityStudy(process)
                self._log(study.summary())
                self._status(study.summary().splitlines()[-1])
        elif job.kind == "federated":
            if state is ProcessState.SUCCEEDED:
                self._status(_("This site left the federated episode after {s:.0f} s; the coordinator writes the "
                               "new version.").format(s=process.elapsed))
            else:
                slicer.util.errorDisplay(_("Federated episode failed: {error}").format(error=process.error))
        else:
            process.discardWork()
            if state is ProcessState.SUCCEEDED:
                version = (process.summary or {}).get("version")
                self._status(_("New model version {v} after {s:.0f} s. Activate it in the table to use it.").format(
                    v=version, s=process.elapsed))
                self._refreshModelTable()
            else:
                slicer.util.errorDisplay(_("Episode failed: {error}").format(error=process.error))

    def _finishSegmentation(self, job: Job) -> None:
        """Import the result into the output chosen when Segment was pressed (not the selector's current node)."""
        output, overwrite = job.outputNode, job.overwrite
        if output is not None and not slicer.mrmlScene.IsNodePresent(output):  # deleted while the job ran
            self._log(_("The segmentation chosen when Segment was pressed was deleted; the result goes into a new "
                        "segmentation."))
            output, overwrite = None, False
        with self._reportErrors(_("Segmentation failed.")):
            outcome = self.logic.engine.finishSegmentation(job.process, output, overwrite=overwrite)
            self.ui.outputSegmentationSelector.setCurrentNode(outcome.segmentationNode)
            self._showVolumes(job.referenceNode, outcome.uncertaintyNode or outcome.probabilityNode)
            if self.ui.show3DCheckBox.checked and outcome.segmentationNode.GetSegmentation().GetNumberOfSegments():
                outcome.segmentationNode.CreateClosedSurfaceRepresentation()
            self._showLesions(outcome)
            self._hideOwnVolumes()
            for line in outcome.qualityLines:
                self._log(_("Preparation: {line}").format(line=line))
            if outcome.routingText:  # "Automatic": say which disease routing was used and how sure the model was
                self._log(outcome.routingText)
            done = _("Done in {s:.1f} s with {model}: {ml:.2f} mL in {n} lesion(s).").format(
                s=outcome.seconds, model=outcome.modelVersion, ml=outcome.lesionVolumeMl, n=outcome.lesionCount)
            for warning in outcome.warnings:  # an implausible result says so where the user looks
                self._log(_("Check the result: {warning}").format(warning=warning))
            if outcome.warnings:
                done += " " + _("Check the result: {warning}{more}").format(
                    warning=outcome.warnings[0], more=_(" (and {n} more in the log)").format(
                        n=len(outcome.warnings) - 1) if len(outcome.warnings) > 1 else "")
            self._status(done)

    @staticmethod
    def _showVolumes(reference, overlay) -> None:
        """The reference volume under the result; the uncertainty map (else the probability volume), when asked for,
        over it at half opacity (``setSliceViewerLayers`` changes only the layers it is given)."""
        layers = {} if reference is None else {"background": reference}
        if overlay is not None:
            layers.update(foreground=overlay, foregroundOpacity=0.5)
        if layers:
            slicer.util.setSliceViewerLayers(**layers)

    def _showLesions(self, outcome) -> None:
        self._lesions = list(outcome.lesions)
        self.logic.engine.lesionTableNode(outcome)
        self.ui.lesionTable.setRowCount(len(self._lesions))
        for row, lesion in enumerate(self._lesions):
            probability = "" if lesion.mean_probability is None else f"{lesion.mean_probability:.2f}"
            unsure = "" if lesion.unsure is None else (_("check") if lesion.unsure else _("no"))
            values = [str(lesion.index), f"{lesion.volume_ml:.3f}", f"{lesion.largest_diameter_mm:.1f}",
                      ", ".join(f"{v:.1f}" for v in lesion.centroid_ras), probability, unsure,
                      lesion.brightest_on or ""]
            for column, value in enumerate(values):
                self.ui.lesionTable.setItem(row, column, qt.QTableWidgetItem(value))
        self.ui.lesionTable.resizeColumnsToContents()

    def onLesionClicked(self, row: int, _column: int = 0) -> None:
        """Centre every slice view on the clicked lesion."""
        lesions = getattr(self, "_lesions", [])
        if 0 <= row < len(lesions):
            r, a, s = lesions[row].centroid_ras
            slicer.modules.markups.logic().JumpSlicesToLocation(r, a, s, True)

    def _cancelJob(self) -> None:
        if self._job is not None:
            job = self._endJob()
            job.process.cancel()  # kills the process tree and removes its temporary folders
            self._status(_("Cancelled; nothing was written."))
            self._updateValidation()

    # -------------------------------------------------------------------------------------------- models
    def _refreshModelTable(self) -> None:
        infos = self.logic.engine.listModels()
        self.ui.modelTable.setRowCount(len(infos))
        for row, info in enumerate(infos):
            dice = (info.metrics or {}).get("validation", {}).get("dice") if isinstance(info.metrics, dict) else None
            values = [info.version + (" (active)" if info.active else ""), info.parent or "",
                      ", ".join(info.disease_slots), info.created[:16],
                      _("damaged: {why}").format(why=info.problem) if getattr(info, "problem", None) else
                      ("" if dice is None else f"{dice:.3f}")]
            for column, value in enumerate(values):
                self.ui.modelTable.setItem(row, column, qt.QTableWidgetItem(value))
        self.ui.modelTable.resizeColumnsToContents()

    def _selectedVersion(self) -> str | None:
        row = self.ui.modelTable.currentRow()
        if row < 0:
            slicer.util.errorDisplay(_("Select a model version in the table first."))
            return None
        return self.ui.modelTable.item(row, 0).text().replace(" (active)", "")

    def onActivate(self) -> None:
        if self._ensureLogic() and (version := self._selectedVersion()):
            with self._reportErrors(_("Could not activate the version.")):
                self.logic.engine.activateModel(version)
                self._buildModelControls()

    def onRollback(self) -> None:
        if self._ensureLogic():
            with self._reportErrors(_("Could not roll back.")):
                self._status(_("Rolled back to {v}.").format(v=self.logic.engine.rollbackModel()))
                self._buildModelControls()

    def onImport(self) -> None:
        if not self._ensureLogic():
            return
        path = qt.QFileDialog.getOpenFileName(None, _("Import published weights"), "",
                                              "PyTorch checkpoints (*.pt *.pth *.safetensors);;All files (*)")
        if path:
            with self._reportErrors(_("Could not import the weights.")):
                self._status(_("Imported as {v}.").format(v=self.logic.engine.importModel(path)))
                self._refreshModelTable()

    def onExport(self) -> None:
        if self._ensureLogic() and (version := self._selectedVersion()):
            folder = qt.QFileDialog.getExistingDirectory(None, _("Export to folder"))
            if folder:
                with self._reportErrors(_("Could not export.")):
                    self._status(str(self.logic.engine.exportModel(version, os.path.join(folder, version))))

    def onExportDicom(self) -> None:
        """The output segmentation as DICOM SEG and SR on the reference volume's DICOM series (engine's writer)."""
        if not self._ensureLogic():
            return
        output = self.ui.outputSegmentationSelector.currentNode()
        inputs = self._inputs()
        if output is None or not output.GetSegmentation().GetNumberOfSegments() or not inputs:
            slicer.util.errorDisplay(_("Segment first: the output segmentation and its input volumes are what is "
                                       "exported."))
            return
        with self._reportErrors(_("Could not export to DICOM.")):
            reference = inputs.get(self.ui.referenceComboBox.currentText) or next(iter(inputs.values()))
            written = self.logic.engine.exportDicom(output, reference, self.ui.diseaseComboBox.currentData or
                                                    "unknown")
            self._status(_("Exported to DICOM and added to the DICOM database: {files}").format(
                files=", ".join(str(path) for path in written)))

    def onReload(self) -> None:
        """Reload the Qt-free package too, so a developer's edit to the logic takes effect."""
        for name in sorted((n for n in sys.modules if n == "BrainLesionCLLib" or n.startswith("BrainLesionCLLib.")),
                           reverse=True):
            importlib.reload(sys.modules[name])
        ScriptedLoadableModuleWidget.onReload(self)

    # ------------------------------------------------------------------------------------------ helpers
    def _status(self, text: str) -> None:
        self.ui.statusLabel.text = text

    def _log(self, text: str) -> None:
        self.ui.logTextEdit.appendPlainText(text)
        logging.info(text)


def diceScore(mask, truth) -> float:
    from brainlesioncl.evaluation.segmentation import dice

    return dice(mask, truth)


class BrainLesionCLTest(ScriptedLoadableModuleTest):
    """What a clinician does, through the panel, then the console API. Slicer runs it two ways: "Reload and Test"
    calls :meth:`runTest`; ctest (``slicer.testing.runUnitTest``) loads the ``test_*`` methods directly, each between
    :meth:`setUp` and :meth:`tearDown`. Both skip, not fail, where this Slicer cannot run the engine; both leave an
    empty scene (the user's panel back at its defaults) and remove the files they wrote."""

    @staticmethod
    def _unavailable() -> str | None:
        missing = missingPackages()
        return unsupportedSlicerMessage() or (
            f"the engine's Python packages are missing ({', '.join(missing)})" if missing else None)

    def setUp(self):
        if why := self._unavailable():
            self.skipTest(why)
        slicer.mrmlScene.Clear()

    def tearDown(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        if why := self._unavailable():  # a skip is not a failure of "Reload and Test"
            self.delayDisplay(f"BrainLesionCL self-test skipped: {why}")
            return
        for test in (self.test_widget_segments_a_phantom, self.test_widget_automatic_disease_reuses_the_engine,
                     self.test_segment_phantom, self.test_overwrite_needs_confirmation,
                     self.test_widget_joins_and_leaves_a_federation):
            self.setUp()
            try:
                test()
            finally:
                self.tearDown()

    def _phantomNodes(self):
        return loadPhantomCase()

    def _truth(self):
        import SimpleITK as sitk

        from brainlesioncl.phantoms import PhantomConfig, generate_case

        case = generate_case(PhantomConfig(disease="tumour", modalities=("FLAIR", "T1", "T1c", "T2"),
                                           size=(104, 120, 96), spacing=1.5, seed=4242))
        return sitk.GetArrayFromImage(case.label) > 0

    @staticmethod
    def _waitForJob(widget, timeout: float = 600.0) -> None:
        """Run the panel's poll loop (the QTimer's job) until its job ends."""
        deadline = time.time() + timeout
        while widget._job is not None and time.time() < deadline:
            widget._onPoll()
            slicer.app.processEvents()
            time.sleep(0.2)

    def test_widget_segments_a_phantom(self):
        """The panel's own flow: setup, Auto-map, Segment in the child process, poll to the end, the result."""
        self.delayDisplay("Segmenting a phantom through the panel")
        nodes = self._phantomNodes()
        widget = slicer.modules.brainlesioncl.widgetRepresentation().self()
        widget.ui.autoMapButton.click()
        self.assertEqual(widget.ui.referenceComboBox.currentText, widget.ui.referenceComboBox.itemText(0))
        widget.ui.diseaseComboBox.currentIndex = widget.ui.diseaseComboBox.findData("tumour")
        widget.ui.outputSegmentationSelector.setCurrentNode(None)
        widget.ui.applyButton.click()
        self._waitForJob(widget)
        output = widget.ui.outputSegmentationSelector.currentNode()
        self.assertIsNotNone(output)
        segmentId = output.GetSegmentation().GetNthSegmentID(0)
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(output, segmentId, nodes["FLAIR"]) > 0
        truth = self._truth()
        dice = diceScore(mask, truth)
        self.assertGreater(dice, 0.6)
        self.assertGreater(widget.ui.lesionTable.rowCount, 0)

    def test_widget_automatic_disease_reuses_the_engine(self):
        """Two Segment clicks with "Automatic": the panel says which disease was chosen, and the second click runs
        in the engine process the first one started."""
        self.delayDisplay("Segmenting twice with the disease chosen automatically")
        self._phantomNodes()
        widget = slicer.modules.brainlesioncl.widgetRepresentation().self()
        widget.ui.autoMapButton.click()
        index = widget.ui.diseaseComboBox.findData("auto")
        if index < 0:
            self.delayDisplay("The active model has no disease router: Automatic not tested")
            return
        widget.ui.diseaseComboBox.currentIndex = index
        engine = widget.logic.engine
        startsBefore = engine._worker.starts if engine._worker is not None else 0  # earlier tests' scenes closed it
        for _click in range(2):
            widget.ui.outputSegmentationSelector.setCurrentNode(None)
            widget.ui.applyButton.click()
            self._waitForJob(widget)
        self.assertIn("disease auto:", widget.ui.logTextEdit.toPlainText())
        self.assertIsNotNone(engine._worker)
        self.assertEqual(engine._worker.starts - startsBefore, 1)

    def test_widget_joins_and_leaves_a_federation(self):
        """The federated panel: a site process starts (waiting for a server nobody runs) and the button leaves."""
        if importlib.util.find_spec("flwr") is None:
            self.delayDisplay("Flower is not installed: federated panel not tested")
            return
        import tempfile

        self.delayDisplay("Joining and leaving a federated episode")
        widget = slicer.modules.brainlesioncl.widgetRepresentation().self()
        with tempfile.TemporaryDirectory(prefix="BrainLesionCL-federated-test-") as cases:
            widget.ui.casesFolderLineEdit.currentPath = cases
            widget.ui.casesManifestLineEdit.currentPath = ""
            widget.ui.federatedServerLineEdit.text = "127.0.0.1:9"
            widget.ui.joinFederationButton.click()
            self.assertIsNotNone(widget._job)
            self.assertEqual(widget._job.kind, "federated")
            process = widget._job.process
            widget.ui.joinFederationButton.click()
            self.assertIsNone(widget._job)
            self.assertIsNotNone(process.returncode)

    def test_segment_phantom(self):
        self.delayDisplay("Segmenting a tumour phantom with the shipped model (console API)")
        import BrainLesionCLLib

        nodes = self._phantomNodes()
        logic = BrainLesionCLLib.BrainLesionCLLogic()
        started = time.perf_counter()
        outcome = logic.segment(nodes, disease="tumour", referenceChannel="FLAIR")
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(outcome.segmentationNode, outcome.segmentId,
                                                          nodes["FLAIR"]) > 0
        truth = self._truth()
        dice = diceScore(mask, truth)
        self.delayDisplay(f"Dice {dice:.3f} in {time.perf_counter() - started:.1f} s")
        self.assertGreater(dice, 0.6)
        self.assertEqual(outcome.segmentationNode.GetSegmentation().GetSegment(outcome.segmentId).GetName(), "Tumour")
        self.assertGreater(outcome.lesionVolumeMl, 1.0)

    def test_overwrite_needs_confirmation(self):
        import BrainLesionCLLib

        from brainlesioncl.errors import OutputPathError

        nodes = self._phantomNodes()
        existing = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "manual")
        existing.GetSegmentation().AddEmptySegment("", "manual", (0, 1, 0))
        with self.assertRaises(OutputPathError):
            BrainLesionCLLib.BrainLesionCLLogic().segment({"FLAIR": nodes["FLAIR"]}, disease="tumour",
                                                          outputSegmentation=existing)
        self.assertEqual(existing.GetSegmentation().GetNthSegment(0).GetName(), "manual")
        self.delayDisplay("Test passed")
