"""The BrainLesionCL panel's own code, run in pytest with Slicer's own Python: ``setup()``, Auto-map, Segment ->
progress -> finish, Cancel, Train, the modality study, the model table, scene close and import, Sample Data and the
module's self-test. Slicer's parameter-node wrapper, ``slicer.util``, ``ScriptedLoadableModule`` and ``SampleData``
are executed from ``../shared/reference/slicer_python`` (:mod:`slicer_runtime`); only Qt/CTK widget classes are stood in
(:mod:`qt_standins`); the MRML scene (slicer-core), the logic, the engine and its child process are real.

Each defect of the Slicer review (issue 29) has a test here that failed before its fix.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import slicer_runtime
from synthetic import make_grid

from conftest import TINY_CHANNELS, sphere_case, tiny_metadata

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _node(slicer, image: sitk.Image, name: str):
    from BrainLesionCLLib.mrml_io import ijk_to_ras_of_image

    return slicer.util.addVolumeFromArray(sitk.GetArrayFromImage(image), ijkToRAS=ijk_to_ras_of_image(image),
                                          name=name)


def _case(slicer) -> dict:
    grid = make_grid((40, 40, 32), (2.0, 2.0, 2.0), origin=(-40.0, -40.0, -32.0))
    other = make_grid((36, 36, 30), (2.2, 2.2, 2.1), origin=(-39.0, -39.0, -31.0))
    return {"flair": _node(slicer, sphere_case(grid, centre=(6.0, -4.0, 3.0), radius=9.0), "AX T2 FLAIR"),
            "t1": _node(slicer, sphere_case(other, centre=(6.0, -4.0, 3.0), radius=9.0), "T1 MPRAGE")}


def _work_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("BrainLesionCL-*")}


class Panel(types.SimpleNamespace):
    def wait(self, timeout: float = 120.0) -> None:
        """Let the widget's timer run until its job ends."""
        deadline = time.perf_counter() + timeout
        while self.widget._job is not None:
            assert time.perf_counter() < deadline, "the job did not finish"
            self.widget._onPoll()
            time.sleep(0.05)

    def map_case(self) -> dict:
        nodes = _case(self.slicer)
        self.ui.autoMapButton.click()
        return nodes


@pytest.fixture
def runtime(slicer_core, mrml_scene, monkeypatch):
    """Slicer's own Python over the stand-ins, as in a user's Slicer (not in testing mode: dialogs are shown)."""
    return slicer_runtime.install(monkeypatch, slicer_core)


@pytest.fixture
def make_panel(runtime, mrml_scene, monkeypatch, registry, tiny_version):
    """A function that opens the panel as Slicer does (module loaded at start-up, ``setup()`` on first show, then
    ``enter()``) over a test registry holding a tiny model."""
    module = slicer_runtime.load_module(monkeypatch, runtime)
    from BrainLesionCLLib import BrainLesionCLLogic

    monkeypatch.setattr(module.BrainLesionCLWidget, "engineFactory",
                        staticmethod(lambda: BrainLesionCLLogic(registry=registry)))

    def open_panel() -> Panel:
        handle = slicer_runtime.ModuleHandle(slicer_runtime.MODULE_FILE, module.BrainLesionCLWidget, mrml_scene)
        runtime.modules.brainlesioncl = handle
        widget = handle.enter()
        return Panel(widget=widget, ui=widget.ui, module=module, dialogs=runtime.dialogs, slicer=runtime.slicer,
                     scene=mrml_scene, registry=registry, version=tiny_version, runtime=runtime, handle=handle)

    yield open_panel
    runtime.app.moduleManager().moduleAboutToBeUnloaded.emit("BrainLesionCL")  # every panel's cleanup()


@pytest.fixture
def panel(make_panel) -> Panel:
    return make_panel()


# -- opening the panel ------------------------------------------------------------------------------------------------
def test_setup_binds_every_parameter_and_tags_the_parameter_node(panel) -> None:
    """Defect 1 (a str parameter on a ctkPathLineEdit made connectGui raise) and defect 13 (the parameter node was
    tagged 'ScriptedLoadableModule')."""
    node = panel.widget._parameterNode.parameterNode
    assert node.GetAttribute("ModuleName") == "BrainLesionCL" and node.GetSingletonTag() == "BrainLesionCL"
    assert list(panel.widget._selectors) == ["DWI", "FLAIR", "PD", "T1", "T1c", "T2"]
    assert panel.ui.modelNameLabel.text == panel.version
    assert "Model folder" in panel.ui.environmentLabel.text and "torch" in panel.ui.environmentLabel.text
    assert panel.ui.strategyComboBox.itemText(0) == "ours" and panel.ui.strategyComboBox.findText("joint") < 0


def test_setup_runs_slicers_own_connectors_for_every_bound_widget(panel) -> None:
    """Issue 29, defect 1: ``prepare: str`` on a QComboBox made Slicer's connector raise "ComboBoxToStringableConnector
    requires the Choice annotation", and as every connector is created before any is connected, ``connectGui`` failed
    whole: no channel selectors, empty lists, Segment disabled."""
    combo = panel.ui.prepareComboBox
    assert [combo.itemText(i) for i in range(combo.count)] == ["auto", "on", "off"]  # refilled by Slicer's connector
    combo.choose("off")
    assert panel.widget._parameterNode.prepare == "off"
    panel.widget._parameterNode.prepare = "on"
    assert combo.currentText == "on"
    # the node types are set by Slicer's connector from the parameter's type
    assert list(panel.ui.outputSegmentationSelector.nodeTypes) == ["vtkMRMLSegmentationNode"]
    panel.ui.epochsSpinBox.value = 7
    assert panel.widget._parameterNode.epochs == 7 and panel.ui.epochsSpinBox.maximum == 2000
    assert panel.widget._selectors and panel.ui.diseaseComboBox.count and panel.ui.applyButton.toolTip


def test_the_parameter_node_has_a_volume_per_engine_modality(panel) -> None:
    from brainlesioncl.modalities import Modality

    assert panel.widget._parameterChannels() == [m.value for m in Modality]


def test_validation_runs_at_the_end_of_setup(make_panel, mrml_scene, slicer_core) -> None:
    """Defect 3: volumes saved in the scene's parameter node are mapped on opening, and Segment is enabled at once."""
    first = make_panel()
    nodes = _case(first.slicer)
    first.widget._parameterNode.inputFLAIR = nodes["flair"]
    first.widget.cleanup()
    reopened = make_panel()
    assert reopened.widget._selectors["FLAIR"].currentNode() is nodes["flair"]
    assert reopened.ui.applyButton.enabled


def test_an_old_slicer_is_told_so(make_panel, monkeypatch) -> None:
    """Defect 4: on Python < 3.10 (Slicer 5.8) the panel says which Slicer is needed and enables nothing."""
    monkeypatch.setattr(sys, "version_info", (3, 9, 18, "final", 0))
    panel = make_panel()
    assert "5.10" in panel.ui.validationLabel.text and not panel.ui.applyButton.enabled
    assert not panel.ui.autoMapButton.enabled and not panel.widget.logic.engineReady


# -- mapping ----------------------------------------------------------------------------------------------------------
def test_reference_offers_only_mapped_channels(panel) -> None:
    """Defect 2: the reference combo offered every channel and defaulted to DWI, which then raised KeyError."""
    panel.map_case()
    combo = panel.ui.referenceComboBox
    assert [combo.itemText(i) for i in range(combo.count)] == ["FLAIR", "T1"]
    assert combo.currentText == "FLAIR" and panel.ui.applyButton.enabled
    assert "FLAIR (name, 90%)" in panel.widget._selectors["FLAIR"].toolTip  # the evidence, next to the selector
    panel.widget._selectors["T1"].choose(None)
    assert [combo.itemText(i) for i in range(combo.count)] == ["FLAIR"]
    from brainlesioncl.errors import ChannelMappingError

    with pytest.raises(ChannelMappingError, match="reference channel DWI has no volume"):
        panel.widget.logic.engine.startSegmentation(panel.widget._inputs(), "tumour", referenceChannel="DWI")
    assert panel.widget.logic.engine.geometryNote(panel.widget._inputs(), "DWI") is None


def test_labelmaps_and_probability_volumes_are_never_inputs(panel) -> None:
    nodes = panel.map_case()
    label = panel.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "FLAIR label")
    probability = panel.slicer.util.addVolumeFromArray(np.zeros((4, 4, 4), np.float32), name="AX FLAIR probability")
    probability.SetAttribute("BrainLesionCL.Role", "probability")
    panel.widget._hideOwnVolumes()
    offered = panel.widget._selectors["FLAIR"].nodes()
    assert nodes["flair"] in offered and label not in offered and probability not in offered
    mapping = panel.widget.logic.engine.autoMapChannels([probability, label], ["FLAIR"])
    assert mapping == {}


def test_auto_map_never_replaces_a_hand_made_choice(panel) -> None:
    nodes = _case(panel.slicer)
    panel.widget._selectors["T1"].choose(nodes["flair"])  # the user's own (odd) choice
    panel.ui.autoMapButton.click()
    assert panel.widget._selectors["T1"].currentNode() is nodes["flair"]
    assert panel.widget._selectors["FLAIR"].currentNode() is None  # the volume is already used by hand


def test_saved_choices_survive_refilling_the_combos(panel) -> None:
    """Defect 12: refilling the combos (model change, scene reload) overwrote the saved disease/device/reference."""
    panel.map_case()
    node = panel.widget._parameterNode
    node.disease, node.device, node.referenceChannel, node.strategy = "MS", "cpu", "T1", "lwf"
    panel.widget._buildModelControls()
    assert panel.ui.diseaseComboBox.currentData == "MS" and panel.ui.deviceComboBox.currentData == "cpu"
    assert panel.ui.referenceComboBox.currentText == "T1" and panel.ui.strategyComboBox.currentData == "lwf"
    assert (node.disease, node.device, node.referenceChannel) == ("MS", "cpu", "T1")


# -- Segment ----------------------------------------------------------------------------------------------------------
def test_segment_keeps_the_output_chosen_at_start(panel) -> None:
    """Defect 7: the output node and the overwrite answer were read at finish; changing the selector mid-run wiped
    another segmentation without asking."""
    panel.map_case()
    mine = panel.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "result here")
    theirs = panel.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "colleague's work")
    theirs.GetSegmentation().AddEmptySegment("", "hand drawn", (0.1, 0.9, 0.1))
    panel.ui.outputSegmentationSelector.setCurrentNode(mine)
    panel.ui.applyButton.click()
    assert panel.widget._job is not None and panel.ui.applyButton.text == "Cancel"
    panel.ui.outputSegmentationSelector.setCurrentNode(theirs)  # mid-run
    panel.wait()
    assert [theirs.GetSegmentation().GetNthSegment(i).GetName()
            for i in range(theirs.GetSegmentation().GetNumberOfSegments())] == ["hand drawn"]
    assert mine.GetSegmentation().GetNumberOfSegments() == 1
    assert panel.ui.outputSegmentationSelector.currentNode() is mine
    assert not panel.dialogs.shown, panel.dialogs.shown
    assert panel.ui.applyButton.text == "Segment" and "lesion(s)" in panel.ui.statusLabel.text
    count = int(panel.ui.statusLabel.text.split(" in ")[-1].split(" lesion")[0])
    assert panel.ui.lesionTable.rowCount == count


def test_automatic_disease_is_offered_and_the_choice_is_shown(panel) -> None:
    """Issue 16: with a model that has a disease router the selector offers "Automatic"; after Segment the panel
    says which disease the model chose and how sure it was, and the segment is named after it."""
    import dataclasses

    import numpy as np

    from brainlesioncl.inference import DiseaseRouter
    from brainlesioncl.inference.routing import INTENSITY_FEATURES
    from brainlesioncl.models import MoEUNet, MoEUNetConfig

    from conftest import TINY_CHANNELS, tiny_metadata

    dim = 2 * sum(TINY_CHANNELS) + 6 * INTENSITY_FEATURES
    router = DiseaseRouter(("tumour", "stroke", "MS", "WMH"), np.zeros(dim), np.ones(dim), np.zeros((dim, 4)),
                           np.array([0.0, 0.0, 0.0, 6.0]))
    version = panel.registry.add(dataclasses.replace(tiny_metadata("routed"), router=router.to_json()),
                                 {"network": MoEUNet(MoEUNetConfig(channels=TINY_CHANNELS)).state_dict()})
    panel.registry.activate(version)
    panel.widget._buildModelControls()
    combo = panel.ui.diseaseComboBox
    combo.currentIndex = combo.findData("auto")
    assert combo.currentText == "Automatic"
    panel.map_case()
    panel.ui.applyButton.click()
    panel.wait()
    assert not panel.dialogs.shown, panel.dialogs.shown
    assert "disease auto: WMH" in panel.ui.logTextEdit.toPlainText()
    output = panel.ui.outputSegmentationSelector.currentNode()
    assert output.GetSegmentation().GetNthSegment(0).GetName() == "White matter hyperintensity"


def test_segment_and_train_never_run_together(panel, tmp_path) -> None:
    """Defect 8: both shared one process slot, and pressing one silently cancelled the other."""
    panel.map_case()
    panel.ui.applyButton.click()
    job = panel.widget._job
    assert not panel.ui.trainButton.enabled and not panel.ui.modalityStudyButton.enabled
    panel.ui.trainButton.click()  # disabled: nothing happens
    assert panel.widget._job is job and job.process.returncode is None
    panel.ui.applyButton.click()  # Cancel
    assert panel.widget._job is None and panel.ui.trainButton.enabled


def test_cancel_and_a_failed_start_leave_no_patient_images(panel, monkeypatch) -> None:
    """Defect 10: the work folder survived a cancel, a failed start or a scene close."""
    panel.map_case()
    before = _work_dirs()
    panel.ui.applyButton.click()
    work = panel.widget._job.process.workDirs[0]
    assert work.is_dir() and any(work.iterdir())
    panel.ui.applyButton.click()
    assert not work.exists() and _work_dirs() == before

    from BrainLesionCLLib import process as process_module

    def cannot_start(*args, **kwargs):
        raise OSError("PythonSlicer not found")

    monkeypatch.setattr(process_module, "_spawn", cannot_start)  # the kept-alive worker and one-off processes
    panel.ui.applyButton.click()
    assert panel.widget._job is None and "PythonSlicer not found" in panel.dialogs.errors()[-1]
    assert _work_dirs() == before


def test_scene_close_cancels_the_job_and_removes_its_files(panel) -> None:
    panel.map_case()
    panel.ui.applyButton.click()
    process = panel.widget._job.process
    work = process.workDirs[0]
    panel.scene.Clear(0)
    assert panel.widget._job is None and process.returncode is not None and not work.exists()


# -- Train and the modality study -------------------------------------------------------------------------------------
def test_episode_from_the_current_case_cleans_up_on_cancel(panel) -> None:
    nodes = panel.map_case()
    annotation = panel.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "annotation")
    annotation.CreateDefaultDisplayNodes()
    segment = annotation.GetSegmentation().AddEmptySegment("", "lesion", (1, 0, 0))
    mask = (panel.slicer.util.arrayFromVolume(nodes["flair"]) > 0.6).astype(np.uint8)
    panel.slicer.util.updateSegmentBinaryLabelmapFromArray(mask, annotation, segment, nodes["flair"])
    panel.ui.outputSegmentationSelector.setCurrentNode(annotation)
    panel.ui.useCurrentCaseCheckBox.checked = True
    panel.ui.diseaseComboBox.currentIndex = panel.ui.diseaseComboBox.findData("stroke")
    before = _work_dirs()

    panel.ui.casesFolderLineEdit.currentPath = str(Path(tempfile.gettempdir()))  # both sources: refused first
    panel.ui.trainButton.click()
    assert panel.widget._job is None and "not both" in panel.dialogs.errors()[-1] and _work_dirs() == before
    assert panel.ui.trainButton.enabled and panel.ui.applyButton.enabled

    panel.ui.casesFolderLineEdit.currentPath = ""  # cleared: the current case alone
    panel.ui.trainButton.click()
    job = panel.widget._job
    assert job is not None and job.kind == "episode" and not panel.ui.applyButton.enabled
    cases = job.process.workDirs[0]
    assert (cases / "case000" / "label.nrrd").is_file()
    panel.ui.trainButton.click()  # Cancel training
    assert not cases.exists() and _work_dirs() == before


def test_joining_a_federated_episode_runs_a_site_in_the_child_process_and_leaves_on_click(panel, tmp_path) -> None:
    """The Advanced panel joins a federation as a site (``brainlesioncl federated site``); a bad address is refused
    before anything starts; the button then leaves (the child process tree is killed)."""
    pytest.importorskip("flwr", reason="Flower is not installed: pip install 'brainlesioncl[federated]'")
    cases = tmp_path / "cases"
    cases.mkdir()
    panel.ui.casesFolderLineEdit.currentPath = str(cases)
    panel.ui.federatedServerLineEdit.text = "no-port-here"
    panel.ui.joinFederationButton.click()
    assert panel.widget._job is None and "host:port" in panel.dialogs.errors()[-1]

    panel.ui.federatedServerLineEdit.text = "127.0.0.1:9"  # nothing listens: the site keeps waiting for the server
    panel.ui.federatedSiteLineEdit.text = "north"
    panel.ui.joinFederationButton.click()
    job = panel.widget._job
    assert job is not None and job.kind == "federated" and job.process.returncode is None
    arguments = job.process.arguments
    assert arguments[arguments.index("--cases") + 1] == str(cases) and "--insecure" in arguments
    assert arguments[arguments.index("--label") + 1] == "north" and arguments[-1] != "--root-certificates"
    assert panel.ui.joinFederationButton.text == "Leave federated episode" and not panel.ui.trainButton.enabled
    assert "not encrypted" in panel.ui.logTextEdit.toPlainText()
    process = job.process
    panel.ui.joinFederationButton.click()
    assert panel.widget._job is None and process.returncode is not None
    assert panel.ui.joinFederationButton.text == "Join federated episode" and panel.ui.trainButton.enabled


@pytest.mark.slow
def test_modality_study_first_thing_runs_in_the_child_process(panel) -> None:
    """Defect 11: pressing it before anything else raised ModuleNotFoundError; it also ran on the GUI thread."""
    panel.map_case()
    before = _work_dirs()
    panel.ui.modalityStudyButton.click()
    job = panel.widget._job
    assert job is not None and job.kind == "study" and job.process.returncode is None  # a child process
    assert panel.ui.modalityStudyButton.text == "Cancel study"
    panel.wait()
    log = panel.ui.logTextEdit.toPlainText()
    assert "Dice against the full-input segmentation" in log and "FLAIR+T1" in log
    assert _work_dirs() == before and not panel.dialogs.errors()


# -- models -----------------------------------------------------------------------------------------------------------
def test_model_table_activate_and_roll_back(panel) -> None:
    from brainlesioncl.models import MoEUNet, MoEUNetConfig

    other = panel.registry.add(tiny_metadata("other"), {"network": MoEUNet(MoEUNetConfig(channels=TINY_CHANNELS))
                                                        .state_dict()})
    panel.widget._refreshModelTable()
    rows = [row[0] for row in panel.ui.modelTable.texts()]
    panel.ui.modelTable.selectRow(rows.index(other))
    panel.ui.activateButton.click()
    assert panel.ui.modelNameLabel.text == other
    assert f"{other} (active)" in [row[0] for row in panel.ui.modelTable.texts()]
    panel.ui.rollbackButton.click()
    assert panel.ui.modelNameLabel.text == panel.version and "Rolled back" in panel.ui.statusLabel.text


def test_lesion_rows_centre_the_views(panel, monkeypatch) -> None:
    from brainlesioncl.lesion_report import LesionRow

    jumps = []
    markups = types.SimpleNamespace(logic=lambda: types.SimpleNamespace(
        JumpSlicesToLocation=lambda r, a, s, centred: jumps.append((r, a, s, centred))))
    monkeypatch.setattr(panel.slicer.modules, "markups", markups, raising=False)
    panel.widget._lesions = [LesionRow(1, 2.0, 20.0, (1.0, 2.0, 3.0), 2000, 0.9)]
    panel.ui.lesionTable.setRowCount(1)
    panel.ui.lesionTable.selectRow(0)
    assert jumps == [(1.0, 2.0, 3.0, True)]


def test_reload_reloads_the_logic_package_and_makes_a_new_panel(panel, monkeypatch, tmp_path) -> None:
    """Slicer's own ``reloadScriptedModule`` (the developer's Reload button): the file is executed again, the old
    panel cleaned up, a new one set up; the Qt-free package is reloaded too, so an edit to the logic takes effect."""
    monkeypatch.setenv("HOME", str(tmp_path))  # the reloaded class has no test engine factory: a fresh registry
    reloaded = []
    real_reload = importlib.reload
    monkeypatch.setattr(importlib, "reload", lambda module: reloaded.append(module.__name__) or real_reload(module))
    old = panel.widget
    panel.widget.onReload()
    assert "BrainLesionCLLib.logic" in reloaded and "BrainLesionCLLib" in reloaded
    new = panel.handle.widgetRepresentation().self()
    assert new is not old and panel.runtime.modules.BrainLesionCLWidget is new
    assert new.ui.prepareComboBox.count == 3 and new._selectors and new.ui.modelNameLabel.text


# -- first-use installation ------------------------------------------------------------------------------------------
def test_first_use_asks_once_and_a_decline_is_handled(make_panel, monkeypatch) -> None:
    """Defect 6: slicer.packaging was never imported, a decline raised, several prompts in a row, testing mode."""
    panel = make_panel()
    module = panel.module
    missing = {"names": ["monai"]}
    monkeypatch.setattr(module, "missingPackages", lambda: list(missing["names"]))
    monkeypatch.setattr(module.slicer.app, "testingEnabled", lambda: False)
    asked = []

    def pip_ensure(requirements, requester):
        asked.append((requirements, requester))
        raise RuntimeError("the user declined")

    packaging = types.ModuleType("slicer.packaging")
    packaging.pip_ensure = pip_ensure
    monkeypatch.setitem(sys.modules, "slicer.packaging", packaging)
    assert module.ensureDependencies() is False
    assert asked == [(["monai>=1.3"], "BrainLesionCL")] and "declined" in panel.dialogs.errors()[-1]

    installed = []
    missing["names"] = ["torch", "monai"]
    torch_logic = types.SimpleNamespace(installTorch=lambda askConfirmation, torchVersionRequirement: installed.append(
        ("torch", askConfirmation)) or "2.5")
    monkeypatch.setitem(sys.modules, "PyTorchUtils", types.SimpleNamespace(PyTorchUtilsLogic=lambda: torch_logic))

    def pip_install(text):
        installed.append(text)
        missing["names"] = []

    monkeypatch.setattr(module.slicer.util, "pip_install", pip_install, raising=False)
    panel.dialogs.answers = [True]
    assert module.ensureDependencies() is True
    assert len(panel.dialogs.questions()) == 1  # one prompt for everything
    assert installed == [("torch", False), "monai>=1.3"]

    missing["names"] = ["monai"]
    monkeypatch.setattr(module.slicer.app, "testingEnabled", lambda: True)
    assert module.ensureDependencies() is False  # a test run never installs (the self-test skips)


def test_terminology_codes_exist_in_the_shipped_context() -> None:
    """Defect 14: the codes were tagged with Slicer's General Anatomy context, which has none of them."""
    import json

    from BrainLesionCLLib.terminology import (
        _STYLES,
        BRAIN_STYLE,
        CONTEXT_NAME,
        METASTASIS_CLASSES,
        TERMINOLOGY_FILE,
        TUMOUR_SUBREGION_CLASSES,
    )

    document = json.loads(TERMINOLOGY_FILE.read_text())
    assert document["SegmentationCategoryTypeContextName"] == CONTEXT_NAME == "BrainLesionCL brain lesions"
    types = {f"SCT^{c['CodeValue']}^{c['CodeMeaning']}": {f"{t['CodingSchemeDesignator']}^{t['CodeValue']}^"
                                                          f"{t['CodeMeaning']}" for t in c["Type"]}
             for c in document["SegmentationCodes"]["Category"]}
    for style in [*_STYLES.values(), *(s for _v, s in [*METASTASIS_CLASSES, *TUMOUR_SUBREGION_CLASSES]), BRAIN_STYLE]:
        fields = style.terminology.split("~")
        assert len(fields) == 7 and fields[0] == CONTEXT_NAME
        assert fields[2] in types[fields[1]]
    assert BRAIN_STYLE.terminology.split("~")[5] == "^^"  # an anatomical structure has no region of its own


def test_child_output_is_utf8_and_the_last_line_is_never_lost(monkeypatch) -> None:
    """Defect 9: the reader decoded with the locale, and the summary could be missed when the process ended first."""
    from BrainLesionCLLib import process as process_module

    script = "import sys; sys.stdout.buffer.write('Läsion ✓\\n{\"model\": \"m\"}\\n'.encode('utf-8'))"
    monkeypatch.setattr(process_module, "engine_command", lambda arguments: [sys.executable, "-c", script])
    engine = process_module.EngineProcess([]).start()
    engine._process.wait()
    assert engine.poll() is process_module.ProcessState.SUCCEEDED
    assert engine.summary == {"model": "m"} and engine.log == ["Läsion ✓"]


def test_sample_data_entry_makes_a_phantom_case_locally(panel) -> None:
    """Issue 29, defect 2: ``SampleDataSource(uris=None)`` raised TypeError in Slicer's ``len(uris)`` at every start-up,
    so the entry never appeared. Registered at ``startupCompleted`` through Slicer's own SampleData module."""
    sources = panel.runtime.modules.sampleDataSources["BrainLesionCL"]
    assert [s.sampleName for s in sources] == ["BrainLesionCL phantom"]
    source = sources[0]
    assert source.uris == [] and Path(source.thumbnailFileName).is_file()  # nothing to download
    nodes = source.customDownloader(source)  # what the Sample Data button does
    assert sorted(nodes) == ["FLAIR", "T1", "T1c", "T2"]
    panel.ui.autoMapButton.click()
    assert [panel.ui.referenceComboBox.itemText(i) for i in range(panel.ui.referenceComboBox.count)] == [
        "FLAIR", "T1", "T1c", "T2"]


# -- issue 29: what the review found the panel doing in a real Slicer ------------------------------------------------
def _failing(message: str):
    def fail(process, *_args, **_kwargs):
        process.discardWork()
        raise OSError(message)

    return fail


def test_a_failed_segmentation_shows_the_error_and_restores_the_buttons(panel, monkeypatch) -> None:
    """Defect 3: ``tryWithErrorDisplay`` shows the dialog and re-raises, so the button state after it was never
    restored: Train and the study stayed disabled, the error escaped into Qt's timer slot."""
    import qt

    panel.map_case()
    monkeypatch.setattr(panel.widget.logic.engine, "finishSegmentation", _failing("disk full while importing"))
    panel.ui.applyButton.click()
    panel.wait()
    assert "disk full while importing" in panel.dialogs.errors()[-1]
    assert "disk full while importing" in panel.ui.statusLabel.text
    assert panel.ui.applyButton.text == "Segment" and panel.ui.applyButton.enabled
    assert panel.ui.trainButton.enabled and panel.ui.modalityStudyButton.enabled
    assert qt.QApplication.overrideCursor() is None  # the wait cursor is gone


def test_a_failed_modality_study_restores_the_buttons(panel, monkeypatch) -> None:
    engine = panel.widget.logic.engine
    panel.map_case()
    monkeypatch.setattr(engine, "startModalityStudy",  # a short real job in the study's place
                        lambda inputs, disease, annotation, device: engine.startSegmentation(inputs, "tumour"))
    monkeypatch.setattr(engine, "finishModalityStudy", _failing("the study's table could not be read"))
    panel.ui.modalityStudyButton.click()
    assert not panel.ui.trainButton.enabled
    panel.wait()
    assert "could not be read" in panel.dialogs.errors()[-1]
    assert panel.ui.trainButton.enabled and panel.ui.applyButton.enabled and panel.ui.modalityStudyButton.enabled
    assert panel.ui.modalityStudyButton.text == "Which inputs matter for this case?"


@pytest.mark.parametrize(("option", "what"), [("uncertaintyCheckBox", "uncertainty"),
                                              ("probabilityCheckBox", "probability")])
def test_the_asked_for_map_is_shown_over_the_reference(panel, option: str, what: str) -> None:
    """Defect 4: the heat overlay was made but never put in the views (``setSliceViewerLayers`` changes only the
    layers it is given). Checked on the slice viewers' composite nodes, through Slicer's own util.py."""
    nodes = panel.map_case()
    getattr(panel.ui, option).checked = True
    panel.ui.applyButton.click()
    panel.wait()
    assert not panel.dialogs.errors(), panel.dialogs.errors()
    overlay = [n for n in panel.slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")
               if n.GetName().endswith(f"lesion {what}")]
    assert len(overlay) == 1
    for view in ("Red", "Yellow", "Green"):
        composite = panel.scene.GetSingletonNode(view, "vtkMRMLSliceCompositeNode")
        assert composite.GetBackgroundVolumeID() == nodes["flair"].GetID()
        assert composite.GetForegroundVolumeID() == overlay[0].GetID()
        assert composite.GetForegroundOpacity() == pytest.approx(0.5)


def test_path_fields_start_empty_and_can_be_cleared(panel, tmp_path) -> None:
    """Defects 6 and 7: Path parameters serialise "no path" as ".": the manifest and certificate fields showed ".",
    and the case-folder directory button could never be cleared (so "not both" was refused for good)."""
    fields = (panel.ui.casesFolderLineEdit, panel.ui.casesManifestLineEdit, panel.ui.federatedCertificateLineEdit)
    assert [f.currentPath for f in fields] == ["", "", ""]
    folder = panel.ui.casesFolderLineEdit
    assert folder.filters & folder.Dirs and not folder.filters & folder.Files  # browses for a folder
    folder.browse(str(tmp_path))
    assert panel.widget._parameterNode.casesFolder == str(tmp_path)
    manifest = tmp_path / "cases.csv"
    manifest.write_text("case,flair,label\n")
    panel.ui.casesManifestLineEdit.currentPath = str(manifest)
    assert panel.widget._caseSource is not None
    with pytest.raises(ValueError, match="not both"):
        panel.widget._caseSource()
    folder.currentPath = ""  # the user empties the field
    assert panel.widget._caseSource() == str(manifest) and panel.widget._parameterNode.casesFolder == ""
    panel.widget._parameterNode.casesManifest = "."  # a scene saved by an older version
    panel.widget.setParameterNode(panel.widget._parameterNode)
    assert panel.ui.casesManifestLineEdit.currentPath == ""


def test_after_a_scene_close_no_case_source_is_left(panel, tmp_path) -> None:
    """Defect 6: after a scene close the case folder turned into Slicer's working directory, which Train and Join
    then used as the case source."""
    panel.ui.casesFolderLineEdit.currentPath = str(tmp_path)
    panel.scene.Clear(0)
    assert panel.ui.casesFolderLineEdit.currentPath == "" and panel.widget._caseSource() is None
    panel.ui.diseaseComboBox.choose("stroke")
    panel.ui.trainButton.click()
    assert panel.widget._job is None and "Choose a case folder or manifest" in panel.dialogs.errors()[-1]
    assert panel.ui.trainButton.enabled


def test_a_failed_package_install_says_what_failed_and_how_to_install(make_panel, monkeypatch) -> None:
    """Defect 8: a failed pip run raises CalledProcessError, which was not caught: an offline hospital PC saw a
    traceback and no dialog."""
    panel = make_panel()
    module = panel.module
    monkeypatch.setattr(module, "missingPackages", lambda: ["monai"])
    packaging = types.ModuleType("slicer.packaging")

    def pip_ensure(requirements, requester):
        raise subprocess.CalledProcessError(1, ["PythonSlicer", "-m", "pip", "install", *requirements])

    packaging.pip_ensure = pip_ensure
    monkeypatch.setitem(sys.modules, "slicer.packaging", packaging)
    assert module.ensureDependencies() is False
    error = panel.dialogs.errors()[-1]
    assert "monai>=1.3" in error and "PyPI" in error and "pip_install('--no-index --find-links=FOLDER monai>=1.3')" \
        in error


def test_auto_map_offers_only_volumes_the_selectors_can_hold(panel) -> None:
    """Defect 9: vector and diffusion-weighted volumes (scalar-volume subclasses) were mapped to a channel whose
    selector (``showChildNodeTypes`` off) cannot list them: the log said "DWI = ...", the selector stayed empty."""
    _case(panel.slicer)
    vector = panel.scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "DWI b1000")
    panel.scene.AddNewNodeByClass("vtkMRMLDiffusionWeightedVolumeNode", "ep2d_diff_3scan_trace")
    panel.ui.autoMapButton.click()
    assert panel.widget._selectors["DWI"].currentNode() is None
    for selector in panel.widget._selectors.values():
        assert selector.currentNode() is None or selector.currentNode() in selector.nodes()
    log = panel.ui.logTextEdit.toPlainText()
    assert f"left out {vector.GetName()}: a VectorVolume, not a scalar volume" in log
    assert "DWI = " not in log and "FLAIR = AX T2 FLAIR" in log


def test_a_volume_under_a_non_linear_transform_is_explained_not_raised(panel) -> None:
    """Defect 10: a DICOM volume under Slicer's acquisition (grid) transform made validation raise GeometryError
    inside the selector's slot; the validation text and the buttons went stale."""
    nodes = panel.map_case()
    grid = panel.scene.AddNewNodeByClass("vtkMRMLGridTransformNode", "Acquisition transform")
    nodes["t1"].SetAndObserveTransformNodeID(grid.GetID())
    panel.widget._selectors["T1"].choose(None)
    panel.widget._selectors["T1"].choose(nodes["t1"])
    text = panel.ui.validationLabel.text
    assert "T1: volume 'T1 MPRAGE' is under a non-linear transform" in text and "Harden" in text
    assert not panel.ui.applyButton.enabled and panel.ui.applyButton.toolTip == text


@pytest.fixture
def scene_files(slicer_core, tmp_path_factory):
    """Scene bundles (.mrb) need the scene's data IO (a remote-IO cache folder), as Slicer's application sets up."""
    if not hasattr(slicer_core, "data_io"):
        slicer = slicer_core.slicer
        remote, data_io = slicer.vtkMRMLRemoteIOLogic(), slicer.vtkDataIOManagerLogic()
        data_io.SetMRMLApplicationLogic(slicer_core.app_logic)
        data_io.SetAndObserveDataIOManager(remote.GetDataIOManager())
        remote.GetCacheManager().SetRemoteCacheDirectory(str(tmp_path_factory.mktemp("remote-cache")))
        slicer_core.app_logic.SetMRMLSceneDataIO(slicer_core.scene, remote, data_io)
        slicer_core.data_io = (remote, data_io)  # kept alive with the scene
    return slicer_core


def test_loading_a_saved_scene_restores_the_panel(panel, scene_files, tmp_path) -> None:
    """Defect 11: channel selectors, disease, device and strategy were rebuilt after a scene close only, so a scene
    loaded from a file showed an empty panel."""
    panel.map_case()
    panel.ui.diseaseComboBox.choose("MS")
    panel.ui.strategyComboBox.choose("lwf")
    bundle = tmp_path / "study.mrb"
    assert panel.scene.WriteToMRB(str(bundle))
    panel.scene.Clear(0)
    assert panel.widget._selectors["FLAIR"].currentNode() is None
    panel.ui.diseaseComboBox.choose("tumour")
    assert panel.scene.ReadFromMRB(str(bundle), False)  # File > Add Data (import into the open scene)
    assert panel.widget._selectors["FLAIR"].currentNode().GetName() == "AX T2 FLAIR"
    assert panel.widget._selectors["T1"].currentNode().GetName() == "T1 MPRAGE"
    assert panel.ui.diseaseComboBox.currentData == "MS" and panel.ui.strategyComboBox.currentData == "lwf"
    assert panel.ui.referenceComboBox.currentText == "FLAIR" and panel.ui.applyButton.enabled


def test_a_segmentation_deleted_during_the_job_gets_the_result_in_a_new_node(panel) -> None:
    """Defect 12: the result went into the deleted node and was lost, while the status said "Done"."""
    panel.map_case()
    chosen = panel.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "result here")
    panel.ui.outputSegmentationSelector.setCurrentNode(chosen)
    panel.ui.applyButton.click()
    panel.scene.RemoveNode(chosen)
    panel.wait()
    output = panel.ui.outputSegmentationSelector.currentNode()
    assert output is not None and output is not chosen and panel.scene.IsNodePresent(output)
    assert output.GetSegmentation().GetNumberOfSegments() == 1
    assert "was deleted; the result goes into a new segmentation" in panel.ui.logTextEdit.toPlainText()
    assert not panel.dialogs.errors()


def test_an_implausible_result_says_so_in_the_status_and_the_log(panel, monkeypatch) -> None:
    """Issue 31: the checks of brainlesioncl.plausibility reach the panel through the engine's summary."""
    engine = panel.widget.logic.engine
    real_finish = engine.finishSegmentation

    def finish(process, *args, **kwargs):
        outcome = real_finish(process, *args, **kwargs)
        assert outcome.quality["plausibility"] == []  # the engine ran the checks (the tiny result passed them)
        outcome.quality["plausibility"] = [{"check": "ventricles", "message": "40% of the lesion volume lies in the "
                                                                              "ventricles"},
                                           {"check": "brain-share", "message": "the lesions cover 20% of the brain"}]
        return outcome

    monkeypatch.setattr(engine, "finishSegmentation", finish)
    panel.map_case()
    panel.ui.applyButton.click()
    panel.wait()
    assert "Check the result: 40% of the lesion volume lies in the ventricles (and 1 more in the log)" in \
        panel.ui.statusLabel.text
    log = panel.ui.logTextEdit.toPlainText()
    assert "Check the result: the lesions cover 20% of the brain" in log


def test_export_to_dicom_is_offered_for_dicom_inputs_and_says_what_it_needs(panel) -> None:
    """The DICOM export button is off (its tooltip says why) until the inputs came from Slicer's DICOM module; pressed
    then without a segmentation, or when the DICOM database no longer has the series, a dialog says what is
    missing, nothing is written and the panel stays free."""
    panel.map_case()
    assert not panel.ui.exportDicomButton.enabled and "DICOM module" in panel.ui.exportDicomButton.toolTip
    for node in panel.widget._inputs().values():
        node.SetAttribute("DICOM.instanceUIDs", "1.2.3.4")
    panel.widget._updateValidation()
    assert panel.ui.exportDicomButton.enabled
    panel.ui.exportDicomButton.click()
    assert "Segment first" in panel.dialogs.errors()[-1]
    panel.ui.applyButton.click()
    panel.wait()
    panel.ui.exportDicomButton.click()
    assert "not loaded from Slicer's DICOM database" in panel.dialogs.errors()[-1]
    assert panel.widget._job is None and panel.ui.applyButton.enabled
