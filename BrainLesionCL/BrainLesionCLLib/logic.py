"""BrainLesionCL's module logic: what the Segment button and the episode panel do, usable without the GUI.

From Slicer's Python console::

    import BrainLesionCLLib
    logic = BrainLesionCLLogic()
    outcome = logic.segment({"FLAIR": getNode("flair"), "T1": getNode("t1")}, disease="tumour")
    print(outcome.lesionVolumeMl, outcome.lesionCount)

    version = logic.trainEpisode([({"FLAIR": flair, "T1": t1}, annotationNode)], disease="stroke", epochs=10)
    logic.activateModel(version)

    study = logic.modalityStudy({"FLAIR": flair, "T1": t1}, disease="tumour")  # which inputs matter here
    print(study.summary())

The heavy work runs either in this process (``segment``, ``trainEpisode``: simple, blocking, what scripts want) or
in a child process (``startSegmentation``/``startEpisode`` + ``finishSegmentation``: what the widget uses, so the GUI
keeps responding and Cancel kills the work). Both produce the same nodes. No Qt is imported here.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import slicer

from brainlesioncl.errors import BrainLesionCLError, ChannelMappingError, OutputPathError
from brainlesioncl.inference import Segmenter, resolve_disease_model
from brainlesioncl.inference.segmenter import label_statistics
from brainlesioncl.lesion_report import LesionRow, lesion_rows
from brainlesioncl.modalities import map_channels, resolve_disease, resolve_modality
from brainlesioncl.preprocessing.geometry import same_geometry
from brainlesioncl.registry import ModelRegistry

from .mrml_io import label_into_segment, segment_to_image, transform_problem, volume_to_image
from .process import EngineJob, EngineProcess, EngineWorker
from .terminology import BRAIN_STYLE, classes_for, load_terminology, style_for

__all__ = ["BrainLesionCLLogic", "ModalityStudyOutcome", "SegmentOutcome", "PROBABILITY_ROLE", "ROLE_ATTRIBUTE"]

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[float, str], None]
#: Node attribute marking volumes this module created (never offered as inputs).
ROLE_ATTRIBUTE = "BrainLesionCL.Role"
#: The one volume class the channel selectors list (``showChildNodeTypes`` off: no labelmap, vector, DWI or tensor).
INPUT_VOLUME_CLASS = "vtkMRMLScalarVolumeNode"
PROBABILITY_ROLE = "probability"
#: Slicer's PET heat colour table: dark where the model is sure, bright where it is not.
HEAT_COLOR_NODE_ID = "vtkMRMLPETProceduralColorNodePET-Heat"


def _engine_lesion_rows(path: Path) -> list[LesionRow]:
    """The child's per-lesion report (``segment --report``), or [] when it wrote none."""
    if not path.is_file():
        return []
    rows = json.loads(path.read_text(encoding="utf-8"))["lesions"]
    return [LesionRow.from_dict(row) for row in rows]


@dataclass
class SegmentOutcome:
    """What the widget shows after a segmentation."""

    segmentationNode: object
    segmentId: str
    lesionVolumeMl: float
    lesionCount: int
    modelVersion: str
    seconds: float
    probabilityNode: object | None = None
    #: One row per lesion, largest first (brainlesioncl.lesion_report.LesionRow).
    lesions: list = field(default_factory=list)
    #: What the raw-exam preparation decided and measured (brain extraction, registration, brain volume, warnings).
    quality: dict = field(default_factory=dict)
    #: The uncertainty volume (a heat overlay), when asked for.
    uncertaintyNode: object | None = None
    #: The "Brain" segment (raw exams, when asked): the brain mask the model worked in.
    brainSegmentId: str | None = None
    #: What ``disease="auto"`` chose (RoutingDecision.to_json(): disease, confident, probabilities), else None.
    routing: dict | None = None

    @property
    def routingText(self) -> str:
        """One line for the panel: the disease auto chose and how sure it was ("" when the disease was given)."""
        if not self.routing:
            return ""
        from brainlesioncl.inference import RoutingDecision

        return RoutingDecision(self.routing["disease"], dict(self.routing["probabilities"]),
                               bool(self.routing["confident"]), self.routing.get("note", "")).describe()

    @property
    def qualityLines(self) -> list[str]:
        from brainlesioncl.preparation import quality_lines

        return quality_lines(self.quality or {})

    @property
    def warnings(self) -> list[str]:
        """Why the result looks implausible (brainlesioncl.plausibility): what was seen and what to check."""
        return [w["message"] for w in (self.quality or {}).get("plausibility", [])]


@dataclass
class ModalityStudyOutcome:
    """Which inputs matter for the loaded case: every subset's Dice and each input's importance."""

    scores: list  # brainlesioncl.modality_study.SubsetScore, best first
    importance: list[tuple[str, float]]  # (input, Dice drop when only it is missing), largest first
    against: str  # "annotation" or "full-input segmentation"
    modelVersion: str

    def summary(self) -> str:
        lines = [f"Dice against the {self.against} ({self.modelVersion}):"]
        lines += [f"  {'+'.join(s.modalities):<28} {s.dice:.3f}" for s in self.scores]
        if self.importance:
            name, drop = self.importance[0]
            lines.append(f"Most important input: {name} (Dice falls by {drop:.2f} without it); "
                         + ", ".join(f"{m} {d:+.2f}" for m, d in self.importance[1:]))
        return "\n".join(lines)


@contextmanager
def _patientWorkFolder(prefix: str, folder: str | None = None):
    """A temporary folder for copies of the patient's images that a child process reads; removed again when the job
    does not start (the running job's own cleanup removes it otherwise: EngineProcess.discardWork)."""
    work = Path(folder or tempfile.mkdtemp(prefix=prefix))
    try:
        yield work
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


class BrainLesionCLLogic:
    """The module logic. Dependencies are injectable so tests run without a real model or registry.

    Args:
        registry: the model registry (default: the user's, ``~/.brainlesioncl/models`` plus the shipped model).
        segmenterFactory: ``(registry, version, device) -> Segmenter``; tests inject a known predictor.
        networkFactory: ``(registry, version) -> network`` for the modality study; tests inject a known predictor.
        keepEngineLoaded: segment in one engine process kept alive between calls (:class:`EngineWorker`): the first
            Segment pays for starting Python, PyTorch and the model, later ones only for the work. False: a new
            process per segmentation.
    """

    def __init__(
        self,
        registry: ModelRegistry | None = None,
        segmenterFactory: Callable[[ModelRegistry, str, str], Segmenter] | None = None,
        networkFactory: Callable[[ModelRegistry, str], object] | None = None,
        keepEngineLoaded: bool = True,
    ) -> None:
        self.registry = registry or ModelRegistry()
        self.keepEngineLoaded = keepEngineLoaded
        self._worker: EngineWorker | None = None
        self._segmenterFactory = segmenterFactory or (
            lambda registry, version, device: Segmenter.from_bundle(registry.get(version), device=device)
        )
        self._networkFactory = networkFactory or (lambda registry, version: registry.get(version).build())
        load_terminology(slicer)  # the module's SNOMED CT context, where Slicer's Terminologies module exists

    # ------------------------------------------------------------------------------------------ engine process
    def _runEngine(self, arguments: list[str], workDirs: list) -> EngineJob:
        """Run an engine command in the kept-alive worker (started on first use) or in a process of its own."""
        if not self.keepEngineLoaded:
            return EngineProcess(arguments, workDirs=workDirs).start()
        if self._worker is None:
            self._worker = EngineWorker()
        return self._worker.submit(arguments, workDirs)

    def stopEngine(self) -> None:
        """End the kept-alive engine process (module exit, scene close); the next Segment starts a new one."""
        if self._worker is not None:
            self._worker.stop()

    # ------------------------------------------------------------------------------------------------- models
    def activeModel(self) -> str:
        return self.registry.active()

    def modelChannels(self, version: str | None = None) -> list[str]:
        """The channels the model takes, in its order: one volume selector each."""
        return list(self.registry.get(version).metadata.channels)

    def modelDiseases(self, version: str | None = None) -> list[str]:
        """Disease tags the user can pick with this model (its slots, plus metastasis and unknown; auto first when the
        model has a disease router)."""
        metadata = self.registry.get(version).metadata
        slots = list(metadata.disease_slots)
        extra = [d for d in ("metastasis", "unknown") if d not in slots]
        automatic = ["auto"] if metadata.router else []
        return automatic + slots + (extra if "tumour" in slots else ["unknown"])

    @staticmethod
    def strategyNames() -> list[str]:
        """Continual-learning strategies an episode can use (the default first; the benchmark-only joint bound out)."""
        from brainlesioncl.continual import STRATEGIES

        names = [name for name, cls in STRATEGIES.items() if not cls.replays_data]
        return sorted(names, key=lambda name: (name != "ours", names.index(name)))

    def listModels(self):
        return self.registry.list()

    def activateModel(self, version: str) -> None:
        self.registry.activate(version)

    def rollbackModel(self) -> str:
        return self.registry.rollback()

    def importModel(self, path: str, name: str | None = None) -> str:
        """Import a published BrainCL (.pt) or MultiUnet (.pth) checkpoint the user downloaded (never unpickled)."""
        return self.registry.import_checkpoint(path, name=name)

    def exportModel(self, version: str, destination: str) -> Path:
        return self.registry.export(version, destination)

    def environmentReport(self) -> str:
        """Package versions and where models live, for the Advanced panel and bug reports."""
        import sys

        from brainlesioncl import __version__

        versions = [f"BrainLesionCL {__version__}", f"Python {sys.version.split()[0]}"]
        for module in ("torch", "monai", "SimpleITK", "numpy"):
            try:
                versions.append(f"{module} {__import__(module).__version__}")
            except (ImportError, AttributeError):
                versions.append(f"{module} missing")
        return f"{', '.join(versions)}. Model folder: {self.registry.root}"

    @staticmethod
    def detectDevices() -> list[tuple[str, str]]:
        """(value, label) pairs for the device selector, saying what was found."""
        import torch

        devices = []
        if torch.cuda.is_available():
            name = torch.cuda.get_device_name(0)
            devices.append(("auto", f"Auto (CUDA: {name})"))
            devices.append(("cuda", f"CUDA: {name}"))
        else:
            devices.append(("auto", "Auto (no CUDA device found: CPU)"))
        devices.append(("cpu", "CPU"))
        return devices

    # ----------------------------------------------------------------------------------------------- channels
    @staticmethod
    def isInputCandidate(node) -> bool:
        """Whether a volume may be an input: a plain scalar volume (what the channel selectors list: not a labelmap,
        nor a vector, diffusion-weighted or tensor volume, which are scalar-volume subclasses), not one of this
        module's own probability volumes."""
        return (node is not None and node.GetClassName() == INPUT_VOLUME_CLASS
                and node.GetAttribute(ROLE_ATTRIBUTE) != PROBABILITY_ROLE)

    @staticmethod
    def _whyNotInput(node) -> str | None:
        """Why Auto-map skips a volume the user may expect it to use (None: a labelmap or this module's own volume,
        skipped without a word)."""
        if node is None or node.IsA("vtkMRMLLabelMapVolumeNode") or node.GetClassName() == INPUT_VOLUME_CLASS:
            return None
        return (f"a {node.GetClassName().removeprefix('vtkMRML').removesuffix('Node')}, not a scalar volume: the "
                "channel selectors take one scalar 3-D volume per channel (for a DWI series, load or compute the "
                "b-value image or ADC map as a scalar volume)")

    @staticmethod
    def seriesDescription(node) -> str:
        """The DICOM series description the subject hierarchy holds for a volume ('' when not from DICOM)."""
        sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(node.GetScene())
        if sh is None:
            return ""
        item = sh.GetItemByDataNode(node)
        return (sh.GetItemAttribute(item, "DICOM.SeriesDescription") or "") if item else ""

    @staticmethod
    def dicomTags(node) -> dict[str, str]:
        """The DICOM tags of a volume loaded from DICOM (its first instance, through Slicer's DICOM database)."""
        from brainlesioncl.identification import read_dicom_tags

        uids = (node.GetAttribute("DICOM.instanceUIDs") or "").split()
        database = getattr(slicer, "dicomDatabase", None)
        if not uids or database is None:
            return {}
        try:
            path = database.fileForInstance(uids[0])
        except Exception:  # noqa: BLE001 - a database without the instance: no tags
            return {}
        return read_dicom_tags(path) if path else {}

    def identifyVolume(self, node):
        """Which contrast a volume is: DICOM tags, then the series description, then the node name, then (only when
        none of those tells, e.g. a NIfTI loaded as ``img1``) the image's own tissue contrast."""
        from brainlesioncl.identification import decisive_name, identify

        tags = self.dicomTags(node)
        return identify(name=decisive_name([self.seriesDescription(node), node.GetName()]), tags=tags or None,
                        image=lambda: volume_to_image(node))

    def autoMap(self, volumeNodes: Iterable, channels: Sequence[str], manual: Mapping[str, object] | None = None):
        """``({channel: node}, {channel: evidence note}, [(node, why it was left out)])``: never a channel filled
        twice or with another contrast, never a refused series (localizer, perfusion, derived map, T2*...), and the
        user's own choices (``manual``) kept. Labelmaps and this module's probability volumes are not candidates."""
        from brainlesioncl.identification import auto_map

        volumeNodes = list(volumeNodes)
        candidates = [(node, self.identifyVolume(node)) for node in volumeNodes if self.isInputCandidate(node)]
        mapping, left_out = auto_map(candidates, channels, manual=manual)
        left_out = [*((node, why) for node in volumeNodes if (why := self._whyNotInput(node))), *left_out]
        notes = {}
        for channel, mapped in mapping.items():
            found = mapped.identification
            notes[channel] = f"{found.label}: {found.reason}" + "".join(f" Note: {n}" for n in found.notes)
        return {c: m.volume for c, m in mapping.items()}, notes, left_out

    def autoMapChannels(self, volumeNodes: Iterable, channels: Sequence[str]) -> dict[str, object]:
        """``{channel: volume}`` guessed from DICOM tags, series descriptions and names (see :meth:`autoMap`)."""
        return self.autoMap(volumeNodes, channels)[0]

    def validateInputs(self, inputs: Mapping[str, object | None], version: str | None = None) -> list[str]:
        """Problems that stop a segmentation, as sentences for the GUI (empty list: ready)."""
        chosen = {k: v for k, v in inputs.items() if v is not None}
        try:
            map_channels(chosen, self.modelChannels(version))
        except BrainLesionCLError as err:
            return [str(err)]
        problems = []
        for name, node in chosen.items():
            if node.GetImageData() is None:
                problems.append(f"{name}: volume '{node.GetName()}' has no image data.")
            elif (problem := transform_problem(node)) is not None:
                problems.append(f"{name}: {problem}")
        return problems

    @staticmethod
    def geometryNote(inputs: Mapping[str, object | None], referenceChannel: str | None = None) -> str | None:
        """A note when volumes are on different grids (they will be resampled onto the reference volume)."""
        chosen = {k: v for k, v in inputs.items() if v is not None}
        if len(chosen) < 2:
            return None
        reference_name = referenceChannel if referenceChannel in chosen else next(iter(chosen))
        reference = volume_to_image(chosen[reference_name])
        differing = [name for name, node in chosen.items()
                     if name != reference_name and not same_geometry(volume_to_image(node), reference, tol=1e-3)]
        if not differing:
            return None
        return (f"{', '.join(differing)} {'is' if len(differing) == 1 else 'are'} on a different grid than "
                f"{reference_name}; {'it' if len(differing) == 1 else 'they'} will be resampled onto "
                f"{reference_name}'s grid, where the segmentation is created.")

    @staticmethod
    def referenceFor(mapped: Mapping, referenceChannel: str | None):
        """The mapped modality whose grid the result takes: the one asked for, else the first mapped.

        Raises:
            ChannelMappingError: the asked-for reference channel has no volume.
        """
        if not referenceChannel:
            return next(iter(mapped))
        key = resolve_modality(referenceChannel)
        if key not in mapped:
            raise ChannelMappingError(
                f"The reference channel {key.value} has no volume; pick one of the mapped channels "
                f"({', '.join(m.value for m in mapped)}) as reference."
            )
        return key

    # ---------------------------------------------------------------------------------------------- segment
    def _prepareOutput(self, outputSegmentation, reference, overwrite: bool):
        if outputSegmentation is None:
            node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
            node.SetName(slicer.mrmlScene.GenerateUniqueName(f"{reference.GetName()} lesions"))
            node.CreateDefaultDisplayNodes()
            return node
        count = outputSegmentation.GetSegmentation().GetNumberOfSegments()
        if count and not overwrite:
            raise OutputPathError(
                f"Segmentation '{outputSegmentation.GetName()}' already has {count} segment(s). Choose 'Create new "
                "segmentation' or confirm replacing its contents (overwrite=True)."
            )
        outputSegmentation.GetSegmentation().RemoveAllSegments()
        return outputSegmentation

    def _placeWithStudy(self, node, reference) -> None:
        """Put a new node in the reference volume's study in the subject hierarchy (when the items exist)."""
        sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
        if sh is None:
            return
        reference_item = sh.GetItemByDataNode(reference)
        if not reference_item:
            return
        item = sh.GetItemByDataNode(node) or sh.CreateItem(sh.GetSceneItemID(), node)
        sh.SetItemParent(item, sh.GetItemParent(reference_item))

    def _import(self, label: sitk.Image, probability: sitk.Image | None, reference, disease: str, outputSegmentation,
                overwrite: bool) -> tuple[object, str, object | None]:
        segmentation = self._prepareOutput(outputSegmentation, reference, overwrite)
        # Under the reference's transform *before* the import: the label is on the reference's local grid, and the
        # import places it in the segmentation's frame (a later move would shift it by the transform).
        segmentation.SetAndObserveTransformNodeID(reference.GetTransformNodeID())
        values = set(np.unique(sitk.GetArrayViewFromImage(label)).tolist()) - {0}
        if values - {1}:  # a multi-class result (metastasis classes, tumour sub-regions): one segment per class
            segment_ids = []
            for value, style in classes_for(disease):
                binary = sitk.Cast(label == value, sitk.sitkUInt8)
                segment_ids.append(label_into_segment(binary, reference, segmentation, name=style.name,
                                                      color=style.color, terminology=style.terminology))
            segment_id = segment_ids[0]
        else:
            style = style_for(disease)
            segment_id = label_into_segment(label, reference, segmentation, name=style.name, color=style.color,
                                            terminology=style.terminology)
        display = segmentation.GetDisplayNode()
        if display is not None:
            display.SetVisibility(True)
        self._placeWithStudy(segmentation, reference)
        probability_node = self.derivedVolume(probability, reference, "probability") if probability is not None \
            else None
        return segmentation, segment_id, probability_node

    def addBrainSegment(self, mask: sitk.Image, reference, segmentation) -> str:
        """The brain mask of a raw exam as a "Brain" segment (coded SNOMED CT Brain), drawn as an outline only so
        the lesions stay readable: a radiologist checks the extraction at a glance."""
        segment_id = label_into_segment(mask, reference, segmentation, name=BRAIN_STYLE.name, color=BRAIN_STYLE.color,
                                        terminology=BRAIN_STYLE.terminology)
        display = segmentation.GetDisplayNode()
        if display is not None:
            display.SetSegmentOpacity2DFill(segment_id, 0.0)
            display.SetSegmentOpacity3D(segment_id, 0.0)
        return segment_id

    def derivedVolume(self, image: sitk.Image, reference, what: str):
        """A float volume the module made (probability, uncertainty) on the reference's grid: placed with the
        reference (same parent transform, same study) and marked so it is never offered as an input."""
        node = slicer.util.addVolumeFromArray(
            sitk.GetArrayFromImage(image).astype(np.float32), ijkToRAS=self._localIJKToRAS(reference),
            name=slicer.mrmlScene.GenerateUniqueName(f"{reference.GetName()} lesion {what}"))
        node.SetAttribute(ROLE_ATTRIBUTE, PROBABILITY_ROLE)
        node.SetAndObserveTransformNodeID(reference.GetTransformNodeID())
        self._placeWithStudy(node, reference)
        return node

    def heatVolume(self, image: sitk.Image, reference, what: str):
        """A :meth:`derivedVolume` shown with a heat colour table (not a grey volume)."""
        node = self.derivedVolume(image, reference, what)
        node.CreateDefaultDisplayNodes()
        display = node.GetDisplayNode()
        if display is not None and slicer.mrmlScene.GetNodeByID(HEAT_COLOR_NODE_ID) is not None:
            display.SetAndObserveColorNodeID(HEAT_COLOR_NODE_ID)
            display.AutoWindowLevelOff()
            display.SetWindowLevelMinMax(0.0, 1.0)
        return node

    @staticmethod
    def _localIJKToRAS(reference) -> np.ndarray:
        import vtk

        matrix = vtk.vtkMatrix4x4()
        reference.GetIJKToRASMatrix(matrix)
        return slicer.util.arrayFromVTKMatrix(matrix)

    def segment(
        self,
        inputs: Mapping[str, object],
        disease: str = "unknown",
        outputSegmentation=None,
        *,
        referenceChannel: str | None = None,
        model: str | None = None,
        device: str = "auto",
        overwrite: bool = False,
        probabilityVolume: bool = False,
        progress: ProgressCallback | None = None,
        cancel: Callable[[], bool] | None = None,
        prepare: str = "auto",
    ) -> SegmentOutcome:
        """Segment in this process and return the new (or refilled) segmentation node.

        Args:
            inputs: ``{channel name or alias: volume node}``.
            disease: tumour, stroke, MS, WMH, metastasis or unknown (aliases accepted).
            outputSegmentation: a segmentation node to fill; it must be empty unless ``overwrite``. None: a new one.
            referenceChannel: the volume whose grid the segmentation takes (default: the first input).
        """
        start = time.perf_counter()
        chosen = {k: v for k, v in inputs.items() if v is not None}
        version = resolve_disease_model(self.registry, disease, model)
        channel_names = self.modelChannels(version)
        mapped = map_channels(chosen, channel_names)  # raises with the reason before any work
        reference_key = self.referenceFor(mapped, referenceChannel)
        reference = mapped[reference_key]
        if outputSegmentation is not None and outputSegmentation.GetSegmentation().GetNumberOfSegments() and not \
                overwrite:
            self._prepareOutput(outputSegmentation, reference, overwrite)  # raises before the heavy work
        images = {m: volume_to_image(node) for m, node in mapped.items()}
        segmenter = self._segmenterFactory(self.registry, version, device)
        result = segmenter.segment(images, disease, reference=reference_key, progress=progress, cancel=cancel,
                                   prepare=prepare)
        segmentation, segment_id, probability_node = self._import(
            result.label, result.probability if probabilityVolume else None, reference, result.disease,
            outputSegmentation, overwrite)
        return SegmentOutcome(segmentation, segment_id, result.lesion_volume_ml, result.lesion_count,
                              result.model_version, time.perf_counter() - start, probability_node,
                              lesion_rows(result.label, result.probability), result.quality,
                              routing=result.routing.to_json() if result.routing is not None else None)

    def startSegmentation(
        self,
        inputs: Mapping[str, object],
        disease: str = "unknown",
        *,
        referenceChannel: str | None = None,
        model: str | None = None,
        device: str = "auto",
        probabilityVolume: bool = False,
        workDir: str | None = None,
        prepare: str = "auto",
        uncertainty: bool = False,
        brainMask: bool = False,
        biasCorrection: bool = False,
    ) -> EngineProcess:
        """Start the engine in a child process (the widget's path). Finish with :meth:`finishSegmentation`.

        ``brainMask``: a raw exam's brain mask becomes a "Brain" segment too (curated inputs have none).
        ``biasCorrection``: N4 bias-field correction of every input first."""
        chosen = {k: v for k, v in inputs.items() if v is not None}
        version = resolve_disease_model(self.registry, disease, model)
        mapped = map_channels(chosen, self.modelChannels(version))
        reference_key = self.referenceFor(mapped, referenceChannel)  # before anything is written
        with _patientWorkFolder("BrainLesionCL-", workDir) as work:
            arguments = ["--registry", str(self.registry.root), "segment", "--disease",
                         resolve_disease(disease).value, "--model", version, "--device", device, "--progress", "json",
                         "--prepare", prepare, "--output", str(work / "label.nrrd")]
            ordered = [reference_key, *[m for m in mapped if m is not reference_key]]
            for modality in ordered:
                path = work / f"{modality.value}.nrrd"
                sitk.WriteImage(volume_to_image(mapped[modality]), str(path), True)
                arguments += ["--input", f"{modality.value}={path}"]
            arguments += ["--reference", reference_key.value, "--probabilities", str(work / "probability.nrrd"),
                          "--report", str(work / "lesions.json")]  # the engine's rows carry "brightest on"
            if uncertainty:
                arguments += ["--uncertainty", str(work / "uncertainty.nrrd")]
            if brainMask:
                (work / "prepared").mkdir()
                arguments += ["--write-prepared", str(work / "prepared")]
            if biasCorrection:
                arguments.append("--bias-correction")
            process = self._runEngine(arguments, [work])
        process.context = {"work": work, "reference": mapped[reference_key], "disease": disease,  # type: ignore
                           "probability": probabilityVolume, "uncertainty": uncertainty, "brainMask": brainMask}
        return process

    def finishSegmentation(self, process: EngineJob, outputSegmentation=None, *,
                           overwrite: bool = False) -> SegmentOutcome:
        """Import a finished child-process segmentation into the scene, then delete its temporary files."""
        context = process.context  # type: ignore[attr-defined]
        work: Path = context["work"]
        try:
            if process.returncode != 0:
                raise BrainLesionCLError(f"Segmentation failed: {process.error}")
            label = sitk.ReadImage(str(work / "label.nrrd"))
            probability = sitk.ReadImage(str(work / "probability.nrrd"))
            routing = (process.summary or {}).get("routing")
            disease = routing["disease"] if routing else context["disease"]  # auto: name the segment by the choice
            segmentation, segment_id, probability_node = self._import(
                label, probability if context["probability"] else None, context["reference"], disease,
                outputSegmentation, overwrite)
            volume, count = label_statistics(label)
            version = (process.summary or {}).get("model", "")
            uncertainty = sitk.ReadImage(str(work / "uncertainty.nrrd")) if context.get("uncertainty") else None
            outcome = SegmentOutcome(segmentation, segment_id, volume, count, version, process.elapsed,
                                     probability_node, _engine_lesion_rows(work / "lesions.json")
                                     or lesion_rows(label, probability, uncertainty),
                                     (process.summary or {}).get("quality") or {}, routing=routing)
            if uncertainty is not None:
                outcome.uncertaintyNode = self.heatVolume(uncertainty, context["reference"], "uncertainty")
            mask_file = work / "prepared" / "brain_mask.nii.gz"
            if context.get("brainMask") and mask_file.exists():
                outcome.brainSegmentId = self.addBrainSegment(sitk.ReadImage(str(mask_file)), context["reference"],
                                                              segmentation)
            return outcome
        finally:
            process.discardWork()

    # ----------------------------------------------------------------------------------------- modality study
    def modalityStudy(self, inputs: Mapping[str, object], disease: str = "unknown", annotation=None, *,
                      segmentId: str | None = None, model: str | None = None, device: str = "auto",
                      progress: ProgressCallback | None = None,
                      cancel: Callable[[], bool] | None = None) -> ModalityStudyOutcome:
        """Segment the loaded case with every subset of its inputs: which sequences matter for this patient.

        With ``annotation`` (a segmentation node) each subset is scored against it; without, against the
        segmentation from all inputs (how much the result depends on each sequence). Runs in this process: one
        inference per subset (15 for four inputs).
        """
        from brainlesioncl.modality_study import input_importance, modality_study, unannotated_case
        from brainlesioncl.models import ModelKind

        version = model or self.registry.active()
        metadata = self.registry.get(version).metadata
        if metadata.kind is ModelKind.METASTASIS_TWO_STAGE:
            raise ChannelMappingError(f"{version} is a two-stage metastasis model; the modality study runs on U-Net "
                                      "models. Pick the segmentation model instead.")
        if annotation is not None:
            case = self.caseFromScene(inputs, annotation, segmentId, disease=disease, name="loaded case",
                                      version=version)
        else:
            images = {k: volume_to_image(v) for k, v in inputs.items() if v is not None}
            case = unannotated_case("loaded case", images, metadata.channels, disease, metadata.preprocess_config)
        scores = modality_study(self._networkFactory(self.registry, version), [case], metadata.channels,
                                metadata.disease_slots, device=device, output=metadata.output,
                                against="label" if annotation is not None else "full", progress=progress,
                                cancel=cancel)
        return ModalityStudyOutcome(scores, input_importance(scores),
                                    "annotation" if annotation is not None else "full-input segmentation", version)

    def startModalityStudy(self, inputs: Mapping[str, object], disease: str = "unknown", annotation=None, *,
                           model: str | None = None, device: str = "auto") -> EngineProcess:
        """The modality study in a child process (the widget's path: 2^n - 1 inferences must not freeze the GUI).
        Finish with :meth:`finishModalityStudy`; the case is written to a temporary folder removed on every exit."""
        version = model or self.registry.active()
        with _patientWorkFolder("BrainLesionCL-study-") as work:
            self.writeCaseFolder(inputs, annotation, work / "cases" / "case000")
            arguments = ["--registry", str(self.registry.root), "modality-study", str(work / "cases"), "--disease",
                         resolve_disease(disease).value, "--model", version, "--device", device, "--progress", "json",
                         "--output-dir", str(work / "study"),
                         "--against", "label" if annotation is not None else "full"]
            process = EngineProcess(arguments, workDirs=[work]).start()
        process.context = {"work": work, "version": version, "annotated": annotation is not None}  # type: ignore
        return process

    def finishModalityStudy(self, process: EngineProcess) -> ModalityStudyOutcome:
        """Read a finished child-process study, then delete its temporary files."""
        import csv

        from brainlesioncl.modality_study import SubsetScore, input_importance

        context = process.context  # type: ignore[attr-defined]
        try:
            if process.returncode != 0:
                raise BrainLesionCLError(f"Modality study failed: {process.error}")
            with open(context["work"] / "study" / "modality_study.csv", encoding="utf-8") as fh:
                scores = [SubsetScore(tuple(row["modalities"].split("+")), float(row["dice"]),
                                      float(row["drop_from_all"]), int(row["cases"])) for row in csv.DictReader(fh)]
            return ModalityStudyOutcome(scores, input_importance(scores), "annotation" if context["annotated"] else
                                        "full-input segmentation", context["version"])
        finally:
            process.discardWork()

    # ---------------------------------------------------------------------------------------------- episodes
    def caseFromScene(self, inputs: Mapping[str, object], segmentationNode, segmentId: str | None = None,
                      *, disease: str, name: str = "scene case", version: str | None = None):
        """A training case from loaded volumes and the clinician's segmentation (first segment by default)."""
        from brainlesioncl.training import load_training_case

        chosen = {k: v for k, v in inputs.items() if v is not None}
        metadata = self.registry.get(version).metadata
        mapped = map_channels(chosen, metadata.channels)
        reference = next(iter(mapped.values()))
        segment_id = segmentId or segmentationNode.GetSegmentation().GetNthSegmentID(0)
        if not segment_id:
            raise BrainLesionCLError(f"Segmentation '{segmentationNode.GetName()}' has no segment to learn from.")
        label = segment_to_image(segmentationNode, segment_id, reference)
        images = {m: volume_to_image(node) for m, node in mapped.items()}
        return load_training_case(name, images, label, disease, metadata.channels,
                                  preprocessing=metadata.preprocess_config)

    def trainEpisode(self, cases: Sequence, disease: str, *, strategy: str = "ours", epochs: int = 20,
                     cropSize: int = 64, device: str = "auto", parent: str | None = None,
                     progress: Callable[[dict], None] | None = None, cancel: Callable[[], bool] | None = None,
                     **options) -> str:
        """Train an episode in this process; returns the new version (not activated).

        ``cases``: ``(inputs, segmentationNode)`` pairs from the scene, prepared TrainingCase objects, or a folder /
        manifest path.
        """
        from brainlesioncl.continual import EpisodeConfig, train_episode

        if isinstance(cases, (str, Path)):
            prepared = cases
        else:
            prepared = [case if not isinstance(case, tuple) else
                        self.caseFromScene(case[0], case[1], disease=disease, name=f"case{i}", version=parent)
                        for i, case in enumerate(cases)]
        config = EpisodeConfig(strategy=strategy, epochs=epochs, crop_size=cropSize, **options)
        result = train_episode(prepared, disease, parent=parent, registry=self.registry, config=config,
                               device=device, progress=progress, cancel=cancel)
        return result.version

    def startEpisode(self, casesSource: str | None, disease: str, *, strategy: str = "ours", epochs: int = 20,
                     cropSize: int = 64, device: str = "auto", parent: str | None = None,
                     sceneCases: Sequence[tuple[Mapping[str, object], object]] = ()) -> EngineProcess:
        """Train an episode in a child process (the widget's path); the summary names the new version.

        ``casesSource``: a case folder or manifest; or ``sceneCases`` (``(inputs, annotation)`` pairs from the scene),
        written to a temporary folder that is removed when the process is finished, cancelled or fails to start.
        One episode learns from one source: giving both is an error raised before anything is written.
        """
        if casesSource and sceneCases:
            raise BrainLesionCLError("Use either the current case or a case folder/manifest in one episode, not both.")
        if not casesSource and not sceneCases:
            raise BrainLesionCLError("Choose a case folder or manifest, or include the current case.")
        if resolve_disease(disease).value in ("auto", "unknown"):
            raise BrainLesionCLError(
                "An episode learns the disease its annotations show: pick it in the disease selector (Automatic and "
                "unknown are for segmenting).")

        def arguments(source) -> list[str]:
            return ["--registry", str(self.registry.root), "episode", str(source), "--disease",
                    resolve_disease(disease).value, "--strategy", strategy, "--epochs", str(epochs),
                    "--crop-size", str(cropSize), "--device", device, "--progress", "json",
                    *(["--parent", parent] if parent else [])]

        if not sceneCases:
            return EngineProcess(arguments(casesSource)).start()
        with _patientWorkFolder("BrainLesionCL-cases-") as work:
            self.writeSceneCases(sceneCases, str(work))
            return EngineProcess(arguments(work), workDirs=[work]).start()

    def startFederatedSite(self, casesSource: str | None, server: str, *, certificate: str | None = None,
                           site: str | None = None, device: str = "auto") -> EngineProcess:
        """Join a federated episode as a site (``brainlesioncl federated site``: a Flower SuperNode) in a child
        process; its progress is the round the site last answered. Cancelling leaves the federation.

        ``certificate``: the CA certificate that signed the server's (TLS); without it the connection is not
        encrypted, for a test on a trusted network only.
        """
        if not casesSource:
            raise BrainLesionCLError("Choose the case folder or manifest this site trains on.")
        if not Path(casesSource).exists():
            raise BrainLesionCLError(f"The cases {casesSource} do not exist.")
        server = (server or "").strip()
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit():
            raise BrainLesionCLError(f"Server address {server!r} must look like host:port, e.g. "
                                     "federation.example.org:9092 (ask the study's coordinator).")
        arguments = ["--registry", str(self.registry.root), "federated", "site", "--cases", str(casesSource),
                     "--superlink", server, "--device", device, "--progress", "json"]
        arguments += ["--root-certificates", str(certificate)] if certificate else ["--insecure"]
        if site:
            arguments += ["--label", site]
        return EngineProcess(arguments).start()

    def writeSceneCases(self, cases: Sequence[tuple[Mapping[str, object], object]], folder: str) -> Path:
        """Write scene cases as a case folder the child-process episode reads (one sub-folder per case)."""
        root = Path(folder)
        for i, (inputs, segmentation) in enumerate(cases):
            self.writeCaseFolder(inputs, segmentation, root / f"case{i:03d}")
        return root

    def writeCaseFolder(self, inputs: Mapping[str, object], annotation, folder: Path) -> Path:
        """One case as ``<modality>.nrrd`` files (+ ``label.nrrd`` from the annotation's first segment, if given)."""
        chosen = {resolve_modality(k): v for k, v in inputs.items() if v is not None}
        if not chosen:
            raise ChannelMappingError("No volume is mapped to a channel; map the case's volumes first.")
        folder.mkdir(parents=True, exist_ok=False)
        reference = next(iter(chosen.values()))
        for modality, node in chosen.items():
            sitk.WriteImage(volume_to_image(node), str(folder / f"{modality.value.lower()}.nrrd"), True)
        if annotation is not None:
            segment_id = annotation.GetSegmentation().GetNthSegmentID(0)
            if not segment_id:
                raise BrainLesionCLError(f"Segmentation '{annotation.GetName()}' has no segment to learn from.")
            sitk.WriteImage(segment_to_image(annotation, segment_id, reference), str(folder / "label.nrrd"), True)
        return folder

    # --------------------------------------------------------------------------------------------- lesion table
    def exportDicom(self, segmentationNode, referenceVolume, disease: str, folder: str | None = None, *,
                    report: bool = True, version: str | None = None) -> list[Path]:
        """The segmentation as DICOM SEG (and its lesion table as a TID 1500 SR) on the DICOM series the reference
        volume was loaded from, written by the engine's one writer (:mod:`brainlesioncl.dicom_export`) and added to
        Slicer's DICOM database, from where Slicer's DICOM module sends it to a PACS. Segments named as the classes
        of a multi-class result (sub-regions, metastasis classes) keep their label values; any other is the lesion.

        Raises:
            BrainLesionCLError: the reference volume did not come from Slicer's DICOM database (the message says so).
        """
        from brainlesioncl.dicom_export import write_dicom
        from brainlesioncl.inference.segmenter import SegmentationResult
        from brainlesioncl.io.dicom import series_of_files

        uids = (referenceVolume.GetAttribute("DICOM.instanceUIDs") or "").split()
        database = getattr(slicer, "dicomDatabase", None)
        files = [database.fileForInstance(uid) for uid in uids] if uids and database is not None else []
        if not files or not all(files):
            raise BrainLesionCLError(
                f"'{referenceVolume.GetName()}' was not loaded from Slicer's DICOM database, so there is no source "
                "series for a DICOM SEG to refer to. Load the study with the DICOM module, or save the segmentation "
                "as a file instead.")
        series = series_of_files(files)
        named = {style.name: value for value, style in classes_for(disease)}
        segmentation = segmentationNode.GetSegmentation()
        reference = volume_to_image(referenceVolume)
        array = np.zeros(sitk.GetArrayViewFromImage(reference).shape, np.uint8)
        for index in range(segmentation.GetNumberOfSegments()):
            segment = segmentation.GetNthSegment(index)
            if segment.GetName() == BRAIN_STYLE.name:
                continue
            mask = sitk.GetArrayFromImage(segment_to_image(segmentationNode, segmentation.GetNthSegmentID(index),
                                                           referenceVolume)) > 0
            array[mask & (array == 0)] = named.get(segment.GetName(), 1)
        label = sitk.GetImageFromArray(array)
        label.CopyInformation(reference)
        classes = ({value: style.name for value, style in classes_for(disease)} if set(np.unique(array)) - {0, 1}
                   else {1: "lesion"})
        volume, count = label_statistics(label)
        metadata = self.registry.get(version).metadata
        result = SegmentationResult(label, sitk.Cast(label > 0, sitk.sitkFloat32), metadata.version or metadata.name,
                                    resolve_disease(disease).value, [], [], volume, count, classes=classes)
        target = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="brainlesioncl-dicom-"))
        stem = segmentationNode.GetName().replace(" ", "_") or "segmentation"
        written = write_dicom(result, series, metadata, target / f"{stem}_SEG.dcm",
                              sr_path=target / f"{stem}_SR.dcm" if report else None,
                              rows=lesion_rows(label) if report else None)
        if database is not None:
            for path in written:
                database.insert(str(path))
        return written

    @staticmethod
    def lesionTableNode(outcome: SegmentOutcome, tableNode=None):
        """The outcome's lesions as a table node (one row per lesion, largest first), placed beside the result."""
        if tableNode is None:
            tableNode = slicer.mrmlScene.AddNewNodeByClass(
                "vtkMRMLTableNode", slicer.mrmlScene.GenerateUniqueName(f"{outcome.segmentationNode.GetName()} table"))
        table = tableNode.GetTable()
        table.Initialize()
        import vtk

        columns = [("Lesion", vtk.vtkIntArray), ("Volume (mL)", vtk.vtkDoubleArray),
                   ("Largest diameter (mm)", vtk.vtkDoubleArray), ("R", vtk.vtkDoubleArray),
                   ("A", vtk.vtkDoubleArray), ("S", vtk.vtkDoubleArray), ("Mean probability", vtk.vtkDoubleArray),
                   ("Brightest on", vtk.vtkStringArray)]
        for name, cls in columns:
            array = cls()
            array.SetName(name)
            table.AddColumn(array)
        for row in outcome.lesions:
            values = [row.index, row.volume_ml, row.largest_diameter_mm, *row.centroid_ras,
                      float("nan") if row.mean_probability is None else row.mean_probability, row.brightest_on or ""]
            index = table.InsertNextBlankRow()
            for column, value in enumerate(values):
                table.SetValue(index, column, vtk.vtkVariant(value))
        tableNode.Modified()
        return tableNode
