"""BrainLesionCL: brain lesion segmentation in MRI with any set of modalities, which keeps learning locally.

This file is the thin Qt layer. Everything the buttons do lives in ``BrainLesionCLLib`` (Qt-free, usable from the
Python console and tested headless) and in the engine package ``brainlesioncl`` (under ``Lib/``).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from typing import Annotated

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

#: What the engine needs besides Slicer's own Python (torch comes from the PyTorch extension when present).
REQUIREMENTS = ["monai>=1.3", "nibabel", "scikit-image", "safetensors", "scipy"]
#: Modalities the engine knows, in the order the parameter node stores them.
ALL_CHANNELS = ["FLAIR", "T1", "T1c", "T2", "PD", "DWI", "SWI", "ADC"]
STRATEGIES = ["ours", "braincl-dd", "lwf", "ewc", "si", "naive"]


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
            "volume, where the segmentation is created.<br>"
            "<b>Disease tags</b> route the model's experts: <i>tumour</i> (glioma: whole tumour), <i>stroke</i>, "
            "<i>MS</i>, <i>WMH</i> (white matter hyperintensities), <i>metastasis</i> (the metastasis pipeline when "
            "installed, else the tumour experts), <i>unknown</i> (an even mixture of all).<br>"
            "<b>Learning locally:</b> the Advanced panel trains a new <i>episode</i> on your annotated cases and "
            "stores it as a new model version; your data never leaves this computer and nothing old is replayed. "
            "Versions can be activated and rolled back at any time. <i>Which inputs matter for this case?</i> segments "
            "with every subset of the mapped sequences and shows how much the result depends on each.<br>"
            "<b>The shipped model is a demonstration model trained on synthetic phantoms, not a clinical tool.</b>"
        )
        self.parent.acknowledgementText = _(
            "BrainLesionCL builds on three studies: modality-agnostic brain lesion segmentation with privacy-aware "
            "continual learning (BrainCL, mixture-of-experts U-Net with dual distillation, arXiv 2503.20326); joint "
            "learning from MRI databases with different brain diseases and modalities (MultiUnet, MIDL 2024, arXiv "
            "2405.18511); and two-stage brain-metastasis detection and segmentation (MICCAI 2024 PRIME, arXiv "
            "2407.14011)."
        )


@parameterNodeWrapper
class BrainLesionCLParameterNode:
    """GUI state, saved with the scene. Channel volumes are references named input<Channel>."""

    inputFLAIR: vtkMRMLScalarVolumeNode
    inputT1: vtkMRMLScalarVolumeNode
    inputT1c: vtkMRMLScalarVolumeNode
    inputT2: vtkMRMLScalarVolumeNode
    inputPD: vtkMRMLScalarVolumeNode
    inputDWI: vtkMRMLScalarVolumeNode
    inputSWI: vtkMRMLScalarVolumeNode
    inputADC: vtkMRMLScalarVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode
    modelVersion: str = ""
    referenceChannel: str = ""
    disease: Annotated[str, Choice(["tumour", "stroke", "MS", "WMH", "metastasis", "unknown"])] = "unknown"
    device: str = "auto"
    probabilityVolume: bool = False
    strategy: Annotated[str, Choice(STRATEGIES)] = "ours"
    epochs: Annotated[int, WithinRange(1, 2000)] = 20
    cropSize: Annotated[int, WithinRange(32, 256)] = 64
    casesPath: str = ""
    useCurrentCase: bool = False


def ensureDependencies() -> bool:
    """Install what the engine needs, after asking. Never called at import time. Returns True when ready."""
    missing = []
    for module in ("torch", "monai", "nibabel", "skimage", "safetensors", "scipy"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if not missing:
        return True
    if not slicer.util.confirmOkCancelDisplay(
        _("BrainLesionCL needs these Python packages: {packages}. Install them now? This can take several minutes "
          "and needs internet access.").format(packages=", ".join(missing))
    ):
        return False
    if "torch" in missing:
        try:
            import PyTorchUtils
        except ImportError:
            slicer.util.errorDisplay(_("Install the PyTorch extension from the Extensions Manager, restart Slicer "
                                       "and try again."))
            return False
        if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True, torchVersionRequirement=">=2.3") is None:
            return False
    try:
        slicer.packaging.pip_ensure(REQUIREMENTS, requester="BrainLesionCL")
    except AttributeError:  # Slicer before 5.12: no slicer.packaging
        slicer.util.pip_install(" ".join(REQUIREMENTS))
    return True


class BrainLesionCLWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Thin GUI: it reads the widgets, calls the logic, and shows progress. No processing here."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._process = None
        self._processKind = None
        self._timer = qt.QTimer()
        self._timer.setInterval(250)
        self._timer.connect("timeout()", self._onPoll)
        self._selectors = {}

    # ------------------------------------------------------------------------------------------------ setup
    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/BrainLesionCL.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.ui.strategyComboBox.addItems(STRATEGIES)
        self.ui.casesPathLineEdit.filters = 0x1 | 0x2  # ctkPathLineEdit.Dirs | Files
        self.ui.modelTable.setColumnCount(5)
        self.ui.modelTable.setHorizontalHeaderLabels([_("Version"), _("Parent"), _("Diseases"), _("Created"),
                                                      _("Validation Dice")])
        self.ui.modelTable.setSelectionBehavior(qt.QAbstractItemView.SelectRows)
        self.ui.modelTable.setEditTriggers(qt.QAbstractItemView.NoEditTriggers)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.autoMapButton.connect("clicked(bool)", self.onAutoMap)
        self.ui.trainButton.connect("clicked(bool)", self.onTrainButton)
        self.ui.modalityStudyButton.connect("clicked(bool)", self.onModalityStudy)
        self.ui.activateButton.connect("clicked(bool)", self.onActivate)
        self.ui.rollbackButton.connect("clicked(bool)", self.onRollback)
        self.ui.importButton.connect("clicked(bool)", self.onImport)
        self.ui.exportButton.connect("clicked(bool)", self.onExport)
        self.ui.diseaseComboBox.connect("currentIndexChanged(int)", self._onDiseaseChanged)
        self.ui.deviceComboBox.connect("currentIndexChanged(int)", self._onDeviceChanged)
        self.ui.referenceComboBox.connect("currentIndexChanged(int)", self._onReferenceChanged)
        self.ui.outputSegmentationSelector.connect("currentNodeChanged(vtkMRMLNode*)",
                                                   self.ui.show3DButton.setSegmentationNode)
        self.initializeParameterNode()
        self._status(_("Press Segment to load the model (dependencies are installed on first use, after asking)."))

    def _ensureLogic(self) -> bool:
        if self.logic is not None:
            return True
        if not ensureDependencies():
            return False
        import BrainLesionCLLib

        self.logic = BrainLesionCLLib.BrainLesionCLLogic()
        self._buildModelControls()
        return True

    def _buildModelControls(self) -> None:
        """One volume selector per channel of the active model; disease and device choices from the logic."""
        layout = self.ui.channelsFormLayout
        while layout.rowCount():
            layout.removeRow(0)
        self._selectors = {}
        channels = self.logic.modelChannels()
        self.ui.modelNameLabel.text = self.logic.activeModel()
        for channel in channels:
            selector = slicer.qMRMLNodeComboBox()
            selector.nodeTypes = ["vtkMRMLScalarVolumeNode"]
            selector.noneEnabled = True
            selector.addEnabled = False
            selector.removeEnabled = False
            selector.setMRMLScene(slicer.mrmlScene)
            selector.setToolTip(_("Volume for the {channel} channel (leave empty if you do not have it).").format(
                channel=channel))
            if self._parameterNode is not None:
                selector.setCurrentNode(getattr(self._parameterNode, f"input{channel}", None))
            selector.connect("currentNodeChanged(vtkMRMLNode*)", lambda node, c=channel: self._onChannel(c, node))
            layout.addRow(f"{channel}:", selector)
            self._selectors[channel] = selector
        self.ui.referenceComboBox.clear()
        self.ui.referenceComboBox.addItems(channels)
        self.ui.diseaseComboBox.clear()
        self.ui.diseaseComboBox.addItems(self.logic.modelDiseases())
        self.ui.deviceComboBox.clear()
        for value, label in self.logic.detectDevices():
            self.ui.deviceComboBox.addItem(label, value)
        if self._parameterNode is not None:  # restore the saved choices
            for combo, value in ((self.ui.diseaseComboBox, self._parameterNode.disease),
                                 (self.ui.referenceComboBox, self._parameterNode.referenceChannel)):
                if value and combo.findText(value) >= 0:
                    combo.currentIndex = combo.findText(value)
            index = self.ui.deviceComboBox.findData(self._parameterNode.device)
            if index >= 0:
                self.ui.deviceComboBox.currentIndex = index
        self._refreshModelTable()
        self._updateValidation()

    # ---------------------------------------------------------------------------------------- parameter node
    def cleanup(self) -> None:
        self._cancelProcess()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(BrainLesionCLParameterNode(ScriptedLoadableModuleLogic().getParameterNode()))

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # Bound widgets: output selector, probability, strategy, epochs, crop, cases path, current-case box.
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)

    def _inputs(self) -> dict:
        return {c: s.currentNode() for c, s in self._selectors.items() if s.currentNode() is not None}

    def _onChannel(self, channel: str, node) -> None:
        if self._parameterNode is not None and channel in ALL_CHANNELS:
            setattr(self._parameterNode, f"input{channel}", node)
        self._updateValidation()

    def _onDiseaseChanged(self, index: int) -> None:
        if self._parameterNode is not None and index >= 0:
            self._parameterNode.disease = self.ui.diseaseComboBox.currentText

    def _onDeviceChanged(self, index: int) -> None:
        if self._parameterNode is not None and index >= 0:
            self._parameterNode.device = self.ui.deviceComboBox.currentData

    def _onReferenceChanged(self, index: int) -> None:
        if self._parameterNode is not None and index >= 0:
            self._parameterNode.referenceChannel = self.ui.referenceComboBox.currentText
        self._updateValidation()

    def _updateValidation(self) -> None:
        if self.logic is None:
            self.ui.applyButton.enabled = True  # the first press sets things up
            return
        inputs = self._inputs()
        problems = self.logic.validateInputs(inputs)
        note = None if problems else self.logic.geometryNote(inputs, self.ui.referenceComboBox.currentText or None)
        self.ui.validationLabel.text = problems[0] if problems else (note or "")
        self.ui.applyButton.enabled = self._process is not None or not problems
        self.ui.applyButton.toolTip = problems[0] if problems else _("Segment the mapped volumes.")

    # ------------------------------------------------------------------------------------------ actions
    def onAutoMap(self) -> None:
        if not self._ensureLogic():
            return
        volumes = slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")
        mapping = self.logic.autoMapChannels(volumes, list(self._selectors))
        for channel, node in mapping.items():
            self._selectors[channel].setCurrentNode(node)
        self._log(_("Auto-map: {mapping}").format(
            mapping=", ".join(f"{c} = {n.GetName()}" for c, n in mapping.items()) or _("no volume recognised")))

    def onApplyButton(self) -> None:
        if self._process is not None:
            self._cancelProcess()
            return
        if not self._ensureLogic():
            return
        inputs = self._inputs()
        problems = self.logic.validateInputs(inputs)
        if problems:
            slicer.util.errorDisplay(problems[0])
            return
        output = self.ui.outputSegmentationSelector.currentNode()
        self._overwrite = False
        if output is not None and output.GetSegmentation().GetNumberOfSegments():
            if not slicer.util.confirmYesNoDisplay(
                _("Segmentation '{name}' already has segments. Replace its contents?").format(name=output.GetName())
            ):
                return
            self._overwrite = True
        with slicer.util.tryWithErrorDisplay(_("Could not start the segmentation."), waitCursor=True):
            self._process = self.logic.startSegmentation(
                inputs, self.ui.diseaseComboBox.currentText,
                referenceChannel=self.ui.referenceComboBox.currentText or None,
                device=self.ui.deviceComboBox.currentData or "auto",
                probabilityVolume=self.ui.probabilityCheckBox.checked,
            )
            self._processKind = "segment"
            self._running(True, _("Cancel"))

    def onTrainButton(self) -> None:
        if self._process is not None:
            self._cancelProcess()
            return
        if not self._ensureLogic():
            return
        source = self.ui.casesPathLineEdit.currentPath
        with slicer.util.tryWithErrorDisplay(_("Could not start the episode."), waitCursor=True):
            if self.ui.useCurrentCaseCheckBox.checked:
                annotation = self.ui.outputSegmentationSelector.currentNode()
                if annotation is None:
                    raise ValueError(_("Select the annotated segmentation in the Output selector."))
                folder = tempfile.mkdtemp(prefix="BrainLesionCL-cases-")
                self.logic.writeSceneCases([(self._inputs(), annotation)], folder)
                if source:
                    raise ValueError(_("Use either the current case or a case folder, not both, in one episode."))
                source = folder
            if not source:
                raise ValueError(_("Choose a case folder or manifest, or include the current case."))
            self._process = self.logic.startEpisode(
                source, self.ui.diseaseComboBox.currentText, strategy=self.ui.strategyComboBox.currentText,
                epochs=self.ui.epochsSpinBox.value, cropSize=self.ui.cropSpinBox.value,
                device=self.ui.deviceComboBox.currentData or "auto")
            self._processKind = "episode"
            self._running(True, _("Cancel training"), button=self.ui.trainButton)

    def onModalityStudy(self) -> None:
        """Every subset of the mapped inputs, in this process (one inference each); the button cancels."""
        from brainlesioncl.errors import CancelledError

        if getattr(self, "_studyRunning", False):
            self._studyCancelled = True
            return
        if not self._ensureLogic():
            return
        annotation = (self.ui.outputSegmentationSelector.currentNode() if self.ui.useCurrentCaseCheckBox.checked
                      else None)
        self._studyRunning, self._studyCancelled = True, False
        savedText = self.ui.modalityStudyButton.text
        self.ui.modalityStudyButton.text = _("Cancel study")

        def progress(fraction: float, stage: str) -> None:
            self.ui.progressBar.value = int(100 * fraction)
            self._status(stage)
            slicer.app.processEvents()  # keeps the GUI and the Cancel button responsive between inferences

        try:
            with slicer.util.tryWithErrorDisplay(_("Modality study failed."), waitCursor=True):
                try:
                    study = self.logic.modalityStudy(
                        self._inputs(), self.ui.diseaseComboBox.currentText, annotation,
                        device=self.ui.deviceComboBox.currentData or "auto", progress=progress,
                        cancel=lambda: self._studyCancelled)
                except CancelledError:
                    self._status(_("Modality study cancelled."))
                    return
                self._log(study.summary())
                self._status(study.summary().splitlines()[-1])
        finally:
            self._studyRunning = False
            self.ui.modalityStudyButton.text = savedText

    def _running(self, running: bool, text: str | None = None, button=None) -> None:
        button = button or (self.ui.trainButton if self._processKind == "episode" else self.ui.applyButton)
        if running:
            self._savedText = button.text
            button.text = text
            self.ui.progressBar.value = 0
            self._timer.start()
        else:
            self._timer.stop()
            button.text = getattr(self, "_savedText", button.text)

    def _onPoll(self) -> None:
        from BrainLesionCLLib import ProcessState

        process = self._process
        if process is None:
            return
        state = process.poll()
        self.ui.progressBar.value = int(100 * process.fraction)
        self._status(f"{process.stage} ({process.elapsed:.0f} s)")
        for line in process.log[getattr(self, "_logged", 0):]:
            self._log(line)
        self._logged = len(process.log)
        if state is ProcessState.RUNNING:
            return
        self._running(False)
        self._process, self._logged = None, 0
        if state is ProcessState.CANCELLED:
            self._status(_("Cancelled after {s:.0f} s; nothing was written.").format(s=process.elapsed))
        elif self._processKind == "segment":
            with slicer.util.tryWithErrorDisplay(_("Segmentation failed."), waitCursor=True):
                outcome = self.logic.finishSegmentation(
                    process, self.ui.outputSegmentationSelector.currentNode(), overwrite=self._overwrite)
                self.ui.outputSegmentationSelector.setCurrentNode(outcome.segmentationNode)
                slicer.util.setSliceViewerLayers(background=self._inputs().get(
                    self.ui.referenceComboBox.currentText))
                self._status(_("Done in {s:.1f} s with {model}: {ml:.2f} mL in {n} lesion(s).").format(
                    s=outcome.seconds, model=outcome.modelVersion, ml=outcome.lesionVolumeMl, n=outcome.lesionCount))
        else:
            if state is ProcessState.SUCCEEDED:
                version = (process.summary or {}).get("version")
                self._status(_("New model version {v} after {s:.0f} s. Activate it in the table to use it.").format(
                    v=version, s=process.elapsed))
                self._refreshModelTable()
            else:
                slicer.util.errorDisplay(_("Episode failed: {error}").format(error=process.error))
        self._updateValidation()

    def _cancelProcess(self) -> None:
        if self._process is not None:
            self._process.cancel()

    # -------------------------------------------------------------------------------------------- models
    def _refreshModelTable(self) -> None:
        infos = self.logic.listModels()
        self.ui.modelTable.setRowCount(len(infos))
        for row, info in enumerate(infos):
            dice = (info.metrics or {}).get("validation", {}).get("dice") if isinstance(info.metrics, dict) else None
            values = [info.version + (" (active)" if info.active else ""), info.parent or "",
                      ", ".join(info.disease_slots), info.created[:16], "" if dice is None else f"{dice:.3f}"]
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
            with slicer.util.tryWithErrorDisplay(_("Could not activate the version.")):
                self.logic.activateModel(version)
                self._buildModelControls()

    def onRollback(self) -> None:
        if self._ensureLogic():
            with slicer.util.tryWithErrorDisplay(_("Could not roll back.")):
                self._status(_("Rolled back to {v}.").format(v=self.logic.rollbackModel()))
                self._buildModelControls()

    def onImport(self) -> None:
        if not self._ensureLogic():
            return
        path = qt.QFileDialog.getOpenFileName(None, _("Import published weights"), "",
                                              "PyTorch checkpoints (*.pt *.pth);;All files (*)")
        if path:
            with slicer.util.tryWithErrorDisplay(_("Could not import the weights."), waitCursor=True):
                self._status(_("Imported as {v}.").format(v=self.logic.importModel(path)))
                self._refreshModelTable()

    def onExport(self) -> None:
        if self._ensureLogic() and (version := self._selectedVersion()):
            folder = qt.QFileDialog.getExistingDirectory(None, _("Export to folder"))
            if folder:
                with slicer.util.tryWithErrorDisplay(_("Could not export."), waitCursor=True):
                    self._status(str(self.logic.exportModel(version, os.path.join(folder, version))))

    # ------------------------------------------------------------------------------------------ helpers
    def _status(self, text: str) -> None:
        self.ui.statusLabel.text = text

    def _log(self, text: str) -> None:
        self.ui.logTextEdit.appendPlainText(text)
        logging.info(text)


class BrainLesionCLTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer: segments a generated tumour phantom with the shipped model and checks the result."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_segment_phantom()
        self.test_overwrite_needs_confirmation()

    def _phantomNodes(self):
        import BrainLesionCLLib  # noqa: F401  (puts the engine on sys.path)
        import SimpleITK as sitk
        from BrainLesionCLLib.mrml_io import ijk_to_ras_of_image

        from brainlesioncl.phantoms import PhantomConfig, generate_case

        case = generate_case(PhantomConfig(disease="tumour", modalities=("FLAIR", "T1", "T1c", "T2"),
                                           size=(104, 120, 96), spacing=1.5, seed=4242))
        nodes = {}
        for modality, image in case.images.items():
            nodes[modality] = slicer.util.addVolumeFromArray(sitk.GetArrayFromImage(image),
                                                             ijkToRAS=ijk_to_ras_of_image(image),
                                                             name=f"phantom {modality}")
        return nodes, sitk.GetArrayFromImage(case.label) > 0

    def test_segment_phantom(self):
        self.delayDisplay("Segmenting a tumour phantom with the shipped model")
        if not ensureDependencies():
            self.skipTest("dependencies not installed")
        import BrainLesionCLLib

        nodes, truth = self._phantomNodes()
        logic = BrainLesionCLLib.BrainLesionCLLogic()
        started = time.perf_counter()
        outcome = logic.segment(nodes, disease="tumour", referenceChannel="FLAIR")
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(outcome.segmentationNode, outcome.segmentId,
                                                          nodes["FLAIR"]) > 0
        dice = 2 * (mask & truth).sum() / (mask.sum() + truth.sum())
        self.delayDisplay(json.dumps({"dice": round(float(dice), 3), "seconds": round(time.perf_counter() - started,
                                                                                      1)}))
        self.assertGreater(dice, 0.6)
        self.assertEqual(outcome.segmentationNode.GetSegmentation().GetSegment(outcome.segmentId).GetName(), "Tumour")
        self.assertGreater(outcome.lesionVolumeMl, 1.0)

    def test_overwrite_needs_confirmation(self):
        import BrainLesionCLLib

        from brainlesioncl.errors import OutputPathError

        nodes, _truth = self._phantomNodes()
        existing = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "manual")
        existing.GetSegmentation().AddEmptySegment("", "manual", (0, 1, 0))
        with self.assertRaises(OutputPathError):
            BrainLesionCLLib.BrainLesionCLLogic().segment({"FLAIR": nodes["FLAIR"]}, disease="tumour",
                                                          outputSegmentation=existing)
        self.assertEqual(existing.GetSegmentation().GetNthSegment(0).GetName(), "manual")
        self.delayDisplay("Test passed")

