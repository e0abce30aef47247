"""The Slicer module's logic on real MRML nodes (slicer-core wheel, no Qt): geometry, Segment, outputs, episodes.

Skipped with the reason when slicer-core is not installed.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import SimpleITK as sitk
from synthetic import ellipsoid_fraction, make_grid

from brainlesioncl.errors import ChannelMappingError, DuplicateChannelError, OutputPathError
from brainlesioncl.inference import Segmenter

from conftest import ThresholdNet, sphere_case, tiny_metadata

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _oblique_grid(size=(40, 44, 30), spacing=(2.2, 2.0, 3.0)) -> sitk.Image:
    grid = make_grid(size, spacing, origin=(-44.0, -46.0, -40.0))
    angle = np.deg2rad(12.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    direction = rotation @ np.diag([1.0, -1.0, 1.0])
    grid.SetDirection(tuple(direction.flatten()))
    half_extent = (np.array(size) - 1) * np.array(spacing) / 2
    grid.SetOrigin(tuple(-(direction @ half_extent)))  # centred on the physical origin, like the brain phantom
    return grid


def _node_from_image(slicer, image: sitk.Image, name: str):
    from BrainLesionCLLib.mrml_io import ijk_to_ras_of_image

    return slicer.util.addVolumeFromArray(sitk.GetArrayFromImage(image), ijkToRAS=ijk_to_ras_of_image(image),
                                          name=name)


def _logic(registry, net=None):
    from BrainLesionCLLib import BrainLesionCLLogic

    def factory(registry, version, device):
        return Segmenter(net or ThresholdNet(channel=1), tiny_metadata(), device="cpu")

    return BrainLesionCLLogic(registry=registry, segmenterFactory=factory)


def test_volume_geometry_survives_the_ras_lps_conversion(slicer_core, mrml_scene) -> None:
    from BrainLesionCLLib.mrml_io import volume_to_image

    slicer = slicer_core.slicer
    grid = _oblique_grid()
    # A linear function of RAS: any orientation or sign mistake shows up as a large error.
    index = np.indices(grid.GetSize()).reshape(3, -1).T
    points_lps = np.array([grid.TransformIndexToPhysicalPoint(tuple(int(v) for v in i)) for i in index[::97]])
    image = sitk.Image(grid)
    values = np.zeros(grid.GetSize()[::-1], np.float32)
    ras_all = np.array([grid.TransformIndexToPhysicalPoint(tuple(int(v) for v in i)) for i in index]) * [-1, -1, 1]
    values[index[:, 2], index[:, 1], index[:, 0]] = 3 * ras_all[:, 0] - 2 * ras_all[:, 1] + 0.5 * ras_all[:, 2]
    image = sitk.GetImageFromArray(values)
    image.CopyInformation(grid)
    node = _node_from_image(slicer, image, "oblique")
    back = volume_to_image(node)
    assert np.allclose(back.GetOrigin(), grid.GetOrigin()) and np.allclose(back.GetDirection(), grid.GetDirection())
    for i, lps in zip(index[::97], points_lps, strict=True):
        r, a, s = -lps[0], -lps[1], lps[2]
        assert back[tuple(int(v) for v in i)] == pytest.approx(3 * r - 2 * a + 0.5 * s, abs=1e-2)
    # A linear parent transform is folded in: the engine sees world coordinates.
    transform = mrml_scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    matrix = np.eye(4)
    matrix[:3, 3] = (10.0, -5.0, 2.0)
    transform.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(matrix))
    node.SetAndObserveTransformNodeID(transform.GetID())
    moved = volume_to_image(node)
    assert np.allclose(np.array(moved.GetOrigin()) - np.array(grid.GetOrigin()), (-10.0, 5.0, 2.0))


def test_segment_creates_a_named_segment_on_the_reference_grid(slicer_core, mrml_scene, registry, tiny_version):
    slicer = slicer_core.slicer
    flair_grid = _oblique_grid()
    t1_grid = make_grid((48, 52, 40), (2.0, 2.0, 2.0), origin=(-48.0, -52.0, -40.0))
    centre, radius = (6.0, -4.0, 3.0), 11.0
    flair = _node_from_image(slicer, sphere_case(flair_grid, centre=centre, radius=radius), "AX T2 FLAIR")
    t1 = _node_from_image(slicer, sphere_case(t1_grid, centre=centre, radius=radius), "T1 MPRAGE")
    logic = _logic(registry)
    assert logic.geometryNote({"FLAIR": flair, "T1": t1}) is not None
    outcome = logic.segment({"FLAIR": flair, "T1": t1}, disease="tumour")
    segmentation = outcome.segmentationNode
    segment = segmentation.GetSegmentation().GetSegment(outcome.segmentId)
    assert segment.GetName() == "Tumour"
    import vtk

    tag = vtk.reference("")
    segment.GetTag(segment.GetTerminologyEntryTagName(), tag)
    assert "SCT^108369006^Neoplasm" in str(tag)
    mask = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation, outcome.segmentId, flair)
    truth = (ellipsoid_fraction(flair_grid, centre, (radius,) * 3) >= 0.5).transpose(2, 1, 0)  # xyz -> kji
    dice = 2 * np.logical_and(mask > 0, truth).sum() / ((mask > 0).sum() + truth.sum())
    assert dice > 0.85
    expected_ml = 4 / 3 * np.pi * radius**3 / 1000
    assert outcome.lesionVolumeMl == pytest.approx(expected_ml, rel=0.2) and outcome.lesionCount == 1


def test_an_existing_segmentation_is_never_overwritten_silently(slicer_core, mrml_scene, registry, tiny_version):
    slicer = slicer_core.slicer
    grid = make_grid((40, 40, 32), (2.0, 2.0, 2.0), origin=(-40.0, -40.0, -32.0))
    flair = _node_from_image(slicer, sphere_case(grid), "flair")
    existing = mrml_scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "my work")
    existing.GetSegmentation().AddEmptySegment("", "hand drawn", (0.1, 0.9, 0.1))
    logic = _logic(registry)
    with pytest.raises(OutputPathError, match="already has 1 segment"):
        logic.segment({"FLAIR": flair}, disease="MS", outputSegmentation=existing)
    assert existing.GetSegmentation().GetNthSegment(0).GetName() == "hand drawn"
    outcome = logic.segment({"FLAIR": flair}, disease="MS", outputSegmentation=existing, overwrite=True)
    assert outcome.segmentationNode is existing
    assert [existing.GetSegmentation().GetNthSegment(i).GetName()
            for i in range(existing.GetSegmentation().GetNumberOfSegments())] == ["MS lesion"]


def test_auto_map_and_validation_messages(slicer_core, mrml_scene, registry, tiny_version) -> None:
    slicer = slicer_core.slicer
    grid = make_grid((32, 32, 32), (2.0, 2.0, 2.0))
    names = ["AX T2 FLAIR", "Sag T1 MPRAGE", "T1 post Gd", "dwi_b1000", "localizer"]
    nodes = [_node_from_image(slicer, sphere_case(grid, brain=(20.0, 20.0, 20.0), radius=5.0), n) for n in names]
    logic = _logic(registry)
    mapping = logic.autoMapChannels(nodes, logic.modelChannels())
    assert {k: v.GetName() for k, v in mapping.items()} == {
        "DWI": "dwi_b1000", "FLAIR": "AX T2 FLAIR", "T1": "Sag T1 MPRAGE", "T1c": "T1 post Gd"}
    assert logic.validateInputs(mapping) == []
    assert "No input volume" in logic.validateInputs({"FLAIR": None})[0]
    same_twice = logic.validateInputs({"FLAIR": nodes[0], "T2": nodes[0]})
    assert same_twice and "same" in same_twice[0].lower()
    with pytest.raises(DuplicateChannelError):
        logic.segment({"FLAIR": nodes[0], "T2": nodes[0]}, disease="tumour")
    with pytest.raises(ChannelMappingError):
        logic.segment({"SWI": nodes[0]}, disease="tumour")


def test_segmentation_joins_the_reference_study_and_can_add_probabilities(slicer_core, mrml_scene, registry,
                                                                          tiny_version) -> None:
    slicer = slicer_core.slicer
    grid = make_grid((40, 40, 32), (2.0, 2.0, 2.0), origin=(-40.0, -40.0, -32.0))
    flair = _node_from_image(slicer, sphere_case(grid), "flair")
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(mrml_scene)
    patient = sh.CreateSubjectItem(sh.GetSceneItemID(), "patient")
    study = sh.CreateStudyItem(patient, "study")
    sh.CreateItem(study, flair)
    outcome = _logic(registry).segment({"FLAIR": flair}, disease="stroke", probabilityVolume=True)
    assert sh.GetItemParent(sh.GetItemByDataNode(outcome.segmentationNode)) == study
    probability = slicer.util.arrayFromVolume(outcome.probabilityNode)
    assert probability.shape == slicer.util.arrayFromVolume(flair).shape
    assert 0.0 <= probability.min() and probability.max() <= 1.0


def test_child_process_segmentation_with_the_real_engine(slicer_core, mrml_scene, registry, tiny_version) -> None:
    """The widget's path: inputs written, the engine CLI run as a child, progress parsed, the label imported."""
    from BrainLesionCLLib import BrainLesionCLLogic, ProcessState

    slicer = slicer_core.slicer
    grid = make_grid((40, 40, 32), (2.0, 2.0, 2.0), origin=(-40.0, -40.0, -32.0))
    flair = _node_from_image(slicer, sphere_case(grid), "flair")
    logic = BrainLesionCLLogic(registry=registry)
    process = logic.startSegmentation({"FLAIR": flair}, disease="WMH", device="cpu", uncertainty=True)
    fractions = []
    while process.poll() is ProcessState.RUNNING:
        fractions.append(process.fraction)
        time.sleep(0.05)
    assert process.state is ProcessState.SUCCEEDED, process.log[-10:]
    assert process.summary["model"] == tiny_version
    assert fractions == sorted(fractions) and 0.0 < max(fractions) <= 1.0  # progress moved forward only
    outcome = logic.finishSegmentation(process)
    heat = outcome.uncertaintyNode
    assert heat is not None and heat.GetDisplayNode().GetColorNodeID() == "vtkMRMLPETProceduralColorNodePET-Heat"
    assert heat.GetAttribute("BrainLesionCL.Role") == "probability" and not logic.isInputCandidate(heat)
    assert all(row.unsure is not None for row in outcome.lesions)
    assert outcome.lesions and all(row.brightest_on == "FLAIR" for row in outcome.lesions)  # the engine's report
    assert not process.context["work"].exists()  # temporary files removed
    assert outcome.segmentationNode.GetSegmentation().GetNthSegment(0).GetName() == "White matter hyperintensity"
    mask = slicer.util.arrayFromSegmentBinaryLabelmap(outcome.segmentationNode, outcome.segmentId, flair)
    assert mask.shape == slicer.util.arrayFromVolume(flair).shape


def test_automatic_disease_in_the_child_process_names_the_segment_by_the_choice(slicer_core, mrml_scene, registry,
                                                                                tmp_path) -> None:
    """A model with a disease router offers "auto" first; the child reports its choice, the panel's outcome carries
    it and the segment is named after the chosen disease (a router whose only preference is stroke: a known answer)."""
    import dataclasses

    from BrainLesionCLLib import BrainLesionCLLogic, ProcessState

    from brainlesioncl.inference import DiseaseRouter
    from brainlesioncl.inference.routing import INTENSITY_FEATURES
    from brainlesioncl.models import MoEUNet, MoEUNetConfig

    from conftest import TINY_CHANNELS

    dim = 2 * sum(TINY_CHANNELS) + 6 * INTENSITY_FEATURES
    router = DiseaseRouter(("tumour", "stroke", "MS", "WMH"), np.zeros(dim), np.ones(dim), np.zeros((dim, 4)),
                           np.array([0.0, 6.0, 0.0, 0.0]))
    metadata = dataclasses.replace(tiny_metadata("routed"), router=router.to_json())
    version = registry.add(metadata, {"network": MoEUNet(MoEUNetConfig(channels=TINY_CHANNELS)).state_dict()})
    logic = BrainLesionCLLogic(registry=registry)
    assert logic.modelDiseases(version)[0] == "auto"
    slicer = slicer_core.slicer
    grid = make_grid((40, 40, 32), (2.0, 2.0, 2.0), origin=(-40.0, -40.0, -32.0))
    flair = _node_from_image(slicer, sphere_case(grid), "flair")
    process = logic.startSegmentation({"FLAIR": flair}, disease="auto", model=version, device="cpu")
    assert process.wait(timeout=120) is ProcessState.SUCCEEDED, process.log[-10:]
    outcome = logic.finishSegmentation(process)
    assert outcome.routing["disease"] == "stroke" and outcome.routing["confident"]
    assert outcome.routingText.startswith("disease auto: stroke")
    assert outcome.segmentationNode.GetSegmentation().GetNthSegment(0).GetName() == "Stroke lesion"


def test_brain_mask_segment_and_bias_correction_reach_the_engine(slicer_core, mrml_scene, registry,
                                                                 tiny_version) -> None:
    """A curated case has no brain mask to show (the segment is not invented); the N4 choice reaches the child; a
    raw exam's mask becomes a "Brain" segment drawn as an outline, coded as an anatomical structure."""
    from BrainLesionCLLib import BrainLesionCLLogic, ProcessState

    slicer = slicer_core.slicer
    grid = make_grid((40, 40, 32), (2.0, 2.0, 2.0), origin=(-40.0, -40.0, -32.0))
    flair = _node_from_image(slicer, sphere_case(grid), "flair")
    logic = BrainLesionCLLogic(registry=registry)
    process = logic.startSegmentation({"FLAIR": flair}, disease="WMH", device="cpu", brainMask=True,
                                      biasCorrection=True)
    assert process.wait(timeout=120) is ProcessState.SUCCEEDED, process.log[-10:]
    outcome = logic.finishSegmentation(process)
    assert outcome.brainSegmentId is None and outcome.quality["bias_correction"] == "N4"
    assert outcome.segmentationNode.GetSegmentation().GetNumberOfSegments() == 1

    brain = sitk.Cast(sitk.GetImageFromArray((slicer.util.arrayFromVolume(flair) > 0).astype(np.uint8)),
                      sitk.sitkUInt8)
    segment_id = logic.addBrainSegment(brain, flair, outcome.segmentationNode)
    segment = outcome.segmentationNode.GetSegmentation().GetSegment(segment_id)
    assert segment.GetName() == "Brain"
    assert segment.HasTag(segment.GetTerminologyEntryTagName())  # the code itself: test_slicer_widget
    display = outcome.segmentationNode.GetDisplayNode()
    assert display.GetSegmentOpacity2DFill(segment_id) == 0.0 and display.GetSegmentOpacity2DOutline(segment_id) > 0
    stored = slicer.util.arrayFromSegmentBinaryLabelmap(outcome.segmentationNode, segment_id, flair)
    assert stored.sum() == sitk.GetArrayFromImage(brain).sum()


def test_cancel_kills_the_child_process(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(__import__("conftest").REPO / "BrainLesionCL"))  # restored after the test
    from BrainLesionCLLib.process import EngineProcess, ProcessState

    process = EngineProcess(["phantoms", "/nonexistent-dir-that-will-not-matter", "--count", "500"])
    process.start()
    time.sleep(0.5)
    started = time.perf_counter()
    process.cancel()
    assert process.wait(timeout=10) is ProcessState.CANCELLED
    assert time.perf_counter() - started < 5


@pytest.mark.slow
def test_the_engine_stays_loaded_between_segmentations(slicer_core, mrml_scene, registry, tiny_version) -> None:
    """Issue 16: the second Segment reuses the engine process (no new Python, PyTorch or model load); a bad request
    fails alone and the worker goes on; Cancel ends the worker and the next Segment starts a fresh one; stopEngine
    (module exit, scene close) leaves no process behind."""
    from BrainLesionCLLib import BrainLesionCLLogic, ProcessState

    slicer = slicer_core.slicer
    grid = make_grid((40, 40, 32), (2.0, 2.0, 2.0), origin=(-40.0, -40.0, -32.0))
    flair = _node_from_image(slicer, sphere_case(grid), "flair")
    logic = BrainLesionCLLogic(registry=registry)
    seconds = []
    for _ in range(2):
        job = logic.startSegmentation({"FLAIR": flair}, disease="WMH", device="cpu")
        assert job.wait(timeout=120) is ProcessState.SUCCEEDED, job.log[-10:]
        seconds.append(job.elapsed)
        outcome = logic.finishSegmentation(job)
        assert outcome.modelVersion == tiny_version and outcome.segmentationNode is not None
        assert not job.context["work"].exists()
    worker = logic._worker
    assert worker is not None and worker.starts == 1 and worker.alive  # one process served both
    assert seconds[1] < seconds[0]  # the first paid for starting Python and PyTorch

    refused = worker.submit(["--registry", str(registry.root), "segment", "--input", "FLAIR=/no/such/file.nii.gz",
                             "--output", "/tmp/never-written.nii.gz"])
    assert refused.wait(timeout=60) is ProcessState.FAILED and "/no/such/file" in refused.error
    assert worker.alive and worker.starts == 1

    job = logic.startSegmentation({"FLAIR": flair}, disease="WMH", device="cpu")
    work = job.context["work"]
    job.cancel()
    assert job.state is ProcessState.CANCELLED and not worker.alive and not work.exists()
    again = logic.startSegmentation({"FLAIR": flair}, disease="WMH", device="cpu")
    assert again.wait(timeout=120) is ProcessState.SUCCEEDED and worker.starts == 2
    logic.finishSegmentation(again)
    logic.stopEngine()
    assert not worker.alive


def test_an_episode_needs_the_disease_the_annotations_show(slicer_core, registry, tmp_path) -> None:
    """Automatic and unknown are for segmenting: the panel says so before writing or starting anything."""
    from BrainLesionCLLib import BrainLesionCLLogic

    from brainlesioncl.errors import BrainLesionCLError

    logic = BrainLesionCLLogic(registry=registry)
    for tag in ("auto", "unknown"):
        with pytest.raises(BrainLesionCLError, match="pick it in the disease selector"):
            logic.startEpisode(str(tmp_path), tag)


def test_the_worker_refuses_commands_that_need_a_process_of_their_own(capsys) -> None:
    from brainlesioncl.cli.worker import serve

    serve(['{"id": 1, "arguments": ["episode", "cases/", "--disease", "MS"]}\n', "not json\n",
           '{"id": 2, "arguments": ["--help-me"]}\n'])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("READY ")
    assert any("start `brainlesioncl episode` as a process of its own" in line for line in out)
    assert any("could not read the request" in line for line in out)
    done = [json.loads(line[5:]) for line in out if line.startswith("DONE ")]
    assert done == [{"id": 1, "returncode": 2}, {"id": 2, "returncode": 2}]


def test_federated_site_command_with_tls_and_its_refusals(slicer_core, registry, tmp_path) -> None:
    """Joining a federation runs ``federated site`` against this registry, with TLS when a CA certificate is given;
    missing cases and an address without a port are refused before any process starts."""
    from BrainLesionCLLib import BrainLesionCLLogic
    from BrainLesionCLLib.process import ProcessState

    from brainlesioncl.errors import BrainLesionCLError

    logic = BrainLesionCLLogic(registry=registry)
    with pytest.raises(BrainLesionCLError, match="case folder or manifest"):
        logic.startFederatedSite(None, "host:9092")
    with pytest.raises(BrainLesionCLError, match="do not exist"):
        logic.startFederatedSite(str(tmp_path / "missing"), "host:9092")
    with pytest.raises(BrainLesionCLError, match="host:port"):
        logic.startFederatedSite(str(tmp_path), "host")
    certificate = tmp_path / "ca.crt"
    certificate.write_text("not a real certificate")
    process = logic.startFederatedSite(str(tmp_path), " 127.0.0.1:9 ", certificate=str(certificate), site="north")
    try:
        arguments = process.arguments
        assert arguments[:4] == ["--registry", str(registry.root), "federated", "site"]
        assert arguments[arguments.index("--root-certificates") + 1] == str(certificate)
        assert "--insecure" not in arguments and arguments[arguments.index("--superlink") + 1] == "127.0.0.1:9"
    finally:
        process.cancel()
    assert process.wait(timeout=20) in (ProcessState.CANCELLED, ProcessState.FAILED)


def test_episode_from_scene_annotations(slicer_core, mrml_scene, registry, tiny_version) -> None:
    from BrainLesionCLLib import BrainLesionCLLogic

    slicer = slicer_core.slicer
    logic = BrainLesionCLLogic(registry=registry)
    cases = []
    for i in range(3):
        grid = make_grid((40, 40, 36), (2.0, 2.0, 2.0), origin=(-40.0, -40.0, -36.0))
        centre = (4.0 * i - 4.0, 2.0, 0.0)
        flair = _node_from_image(slicer, sphere_case(grid, centre=centre, radius=9.0), f"flair{i}")
        segmentation = mrml_scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"annotation{i}")
        segmentation.SetReferenceImageGeometryParameterFromVolumeNode(flair)
        segment_id = segmentation.GetSegmentation().AddEmptySegment("", "lesion", (1, 0, 0))
        truth = (ellipsoid_fraction(grid, centre, (9.0,) * 3) >= 0.5).astype(np.uint8).transpose(2, 1, 0)
        slicer.util.updateSegmentBinaryLabelmapFromArray(truth, segmentation, segment_id, flair)
        cases.append(({"FLAIR": flair}, segmentation))
    records = []
    version = logic.trainEpisode(cases, "stroke", strategy="naive", epochs=1, cropSize=32, validation_fraction=0.0,
                                 precision="fp32", device="cpu", progress=records.append)
    meta = registry.get(version).metadata
    assert meta.parent == tiny_version and meta.training["cases"] == 3 and meta.training["modalities"] == ["FLAIR"]
    assert any("epoch" in r for r in records)
    assert "flair0" not in json.dumps(meta.to_json())
    folder = logic.writeSceneCases(cases[:2], str(registry.root.parent / "scene_cases"))
    assert sorted(p.name for p in (folder / "case000").iterdir()) == ["flair.nrrd", "label.nrrd"]


def test_snapshot_png_shows_the_lesion_where_it_is(slicer_core, mrml_scene, registry, tiny_version, tmp_path):
    from BrainLesionCLLib.snapshot import render_slice_png

    slicer = slicer_core.slicer
    grid = make_grid((48, 48, 40), (2.0, 2.0, 2.0), origin=(-48.0, -48.0, -40.0))
    flair = _node_from_image(slicer, sphere_case(grid, centre=(20.0, 0.0, 0.0), radius=10.0), "flair")
    outcome = _logic(registry).segment({"FLAIR": flair}, disease="tumour")
    path = render_slice_png(flair, outcome.segmentationNode, str(tmp_path / "overlay.png"), size=128)
    reader = __import__("vtk").vtkPNGReader()
    reader.SetFileName(str(path))
    reader.Update()
    from vtk.util.numpy_support import vtk_to_numpy

    image = reader.GetOutput()
    rgb = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(128, 128, -1)[..., :3].astype(int)
    tinted = (rgb[..., 0] - rgb[..., 2]) > 40  # the tumour colour is red: red well above blue
    assert tinted.sum() > 20
    columns = np.nonzero(tinted.any(axis=0))[0]
    # LPS x = +20 mm is patient left; RAS R = -20: the radiological view shows patient left on the screen right.
    assert columns.mean() > 64
    assert mrml_scene.GetFirstNodeByName("__snapshot_labels") is None  # temporary nodes removed


@pytest.mark.parametrize(("disease", "names"), [
    ("metastasis", ["Enhancing metastasis", "Necrotic core", "Oedema"]),
    ("tumour", ["Enhancing tumour", "Necrotic / non-enhancing core", "Oedema"]),
])
def test_a_multi_class_result_becomes_three_named_segments(slicer_core, mrml_scene, registry, tiny_version,
                                                            disease: str, names: list[str]) -> None:
    """The metastasis classes and a glioma's sub-regions (labels 1 core, 2 oedema, 3 enhancing) each become a named
    segment, the enhancing one first."""
    from BrainLesionCLLib import BrainLesionCLLogic

    from brainlesioncl.inference.segmenter import SegmentationResult

    slicer = slicer_core.slicer
    grid = make_grid((40, 40, 32), (2.0, 2.0, 2.0), origin=(-40.0, -40.0, -32.0))
    flair = _node_from_image(slicer, sphere_case(grid), "flair")

    class MultiClassStub:  # returns a BraTS label map: oedema around a core around enhancing tissue
        def segment(self, images, disease, **kwargs):
            reference = next(iter(images.values()))
            array = np.zeros(sitk.GetArrayViewFromImage(reference).shape, np.uint8)
            array[10:20, 10:30, 10:30] = 2
            array[12:18, 15:25, 15:25] = 1
            array[14:16, 18:22, 18:22] = 3
            label = sitk.GetImageFromArray(array)
            label.CopyInformation(reference)
            return SegmentationResult(label, sitk.Cast(label > 0, sitk.sitkFloat32), "m-v1", disease, ["FLAIR"],
                                      [], 1.0, 1)

    logic = BrainLesionCLLogic(registry=registry, segmenterFactory=lambda *_: MultiClassStub())
    outcome = logic.segment({"FLAIR": flair}, disease=disease)
    segmentation = outcome.segmentationNode.GetSegmentation()
    assert [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())] == names
    enhancing = slicer.util.arrayFromSegmentBinaryLabelmap(outcome.segmentationNode, outcome.segmentId, flair)
    assert enhancing.sum() == 2 * 4 * 4


def test_modality_study_on_the_loaded_case(slicer_core, mrml_scene, registry, tiny_version) -> None:
    from BrainLesionCLLib import BrainLesionCLLogic

    slicer = slicer_core.slicer
    grid = make_grid((40, 40, 32), (2.0, 2.0, 2.0), origin=(-40.0, -40.0, -32.0))
    centre = (4.0, 2.0, 0.0)
    flair = _node_from_image(slicer, sphere_case(grid, centre=centre, radius=9.0), "flair")
    t1 = _node_from_image(slicer, sphere_case(grid, centre=centre, radius=9.0), "t1")
    # The known predictor reads only the FLAIR channel: without FLAIR it finds nothing.
    logic = BrainLesionCLLogic(registry=registry, networkFactory=lambda registry, version: ThresholdNet(channel=1))
    fractions = []
    study = logic.modalityStudy({"FLAIR": flair, "T1": t1}, "tumour", progress=lambda f, _s: fractions.append(f))
    by_subset = {s.modalities: s.dice for s in study.scores}
    assert by_subset == {("FLAIR", "T1"): 1.0, ("FLAIR",): 1.0, ("T1",): 0.0}
    assert study.importance[0] == ("FLAIR", 1.0) and study.against == "full-input segmentation"
    assert fractions[-1] == 1.0 and "Most important input: FLAIR" in study.summary()

    annotation = mrml_scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "annotation")
    annotation.SetReferenceImageGeometryParameterFromVolumeNode(flair)
    segment_id = annotation.GetSegmentation().AddEmptySegment("", "lesion", (1, 0, 0))
    truth = (ellipsoid_fraction(grid, centre, (9.0,) * 3) >= 0.5).astype(np.uint8).transpose(2, 1, 0)
    slicer.util.updateSegmentBinaryLabelmapFromArray(truth, annotation, segment_id, flair)
    labelled = logic.modalityStudy({"FLAIR": flair, "T1": t1}, "tumour", annotation)
    scores = {s.modalities: s.dice for s in labelled.scores}
    assert labelled.against == "annotation" and scores[("FLAIR",)] > 0.8 and scores[("T1",)] == 0.0


def test_segments_land_in_place_under_a_rotated_and_translated_transform(slicer_core, mrml_scene, registry,
                                                                          tiny_version) -> None:
    """Defect 5: the segmentation was put under the reference's transform only after import (21 mm off here)."""
    slicer = slicer_core.slicer
    grid = make_grid((40, 40, 32), (2.0, 2.0, 2.0), origin=(-40.0, -40.0, -32.0))
    centre_lps = (8.0, -6.0, 4.0)
    flair = _node_from_image(slicer, sphere_case(grid, centre=centre_lps, radius=9.0), "flair")
    transform = mrml_scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    angle = np.deg2rad(25.0)
    matrix = np.eye(4)
    matrix[:3, :3] = [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    matrix[:3, 3] = (7.0, -5.0, 3.0)
    transform.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(matrix))
    flair.SetAndObserveTransformNodeID(transform.GetID())
    outcome = _logic(registry).segment({"FLAIR": flair}, disease="tumour")
    centre_world = np.array(outcome.segmentationNode.GetSegmentCenterRAS(outcome.segmentId))
    expected = (matrix @ np.array([-centre_lps[0], -centre_lps[1], centre_lps[2], 1.0]))[:3]
    assert np.linalg.norm(centre_world - expected) < 2.0
    assert outcome.segmentationNode.GetTransformNodeID() == transform.GetID()


def test_lesion_rows_and_table_node(slicer_core, mrml_scene, registry, tiny_version) -> None:
    slicer = slicer_core.slicer
    grid = make_grid((48, 48, 40), (2.0, 2.0, 2.0), origin=(-48.0, -48.0, -40.0))
    centre_lps, radius = (10.0, -8.0, 4.0), 10.0
    flair = _node_from_image(slicer, sphere_case(grid, centre=centre_lps, radius=radius), "flair")
    logic = _logic(registry)
    outcome = logic.segment({"FLAIR": flair}, disease="tumour")
    assert len(outcome.lesions) == outcome.lesionCount == 1
    lesion = outcome.lesions[0]
    assert lesion.volume_ml == pytest.approx(4 / 3 * np.pi * radius**3 / 1000, rel=0.2)
    assert lesion.largest_diameter_mm == pytest.approx(2 * radius, abs=3.0)
    assert np.allclose(lesion.centroid_ras, (-centre_lps[0], -centre_lps[1], centre_lps[2]), atol=1.5)
    assert 0.5 < lesion.mean_probability <= 1.0
    table = logic.lesionTableNode(outcome)
    assert table.GetNumberOfRows() == 1 and table.GetColumnName(2) == "Largest diameter (mm)"
    assert float(table.GetCellText(0, 1)) == pytest.approx(lesion.volume_ml, rel=1e-3)


def test_auto_map_reads_dicom_tags_through_the_dicom_database(slicer_core, mrml_scene, registry, tiny_version,
                                                              monkeypatch, tmp_path) -> None:
    """A volume named like DWI whose DICOM Image Type says ADC is never mapped into the DWI channel."""
    import types

    slicer = slicer_core.slicer
    grid = make_grid((20, 20, 8), (2.0, 2.0, 4.0), origin=(-20.0, -20.0, -16.0))
    adc = _node_from_image(slicer, sphere_case(grid), "ep2d_diff_3scan_trace_p2")
    flair = _node_from_image(slicer, sphere_case(grid), "AX T2 FLAIR")
    dcm = tmp_path / "adc.dcm"
    slice_ = sitk.GetImageFromArray(np.ones((8, 8), np.int16))
    for key, value in {"0008|0060": "MR", "0008|0008": "DERIVED\\PRIMARY\\DIFFUSION\\ADC",
                       "0008|103e": "ep2d_diff_3scan_trace_p2"}.items():
        slice_.SetMetaData(key, value)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetFileName(str(dcm))
    writer.Execute(slice_)
    adc.SetAttribute("DICOM.instanceUIDs", "1.2.3.4.5")
    monkeypatch.setattr(slicer, "dicomDatabase", types.SimpleNamespace(
        fileForInstance=lambda uid: str(dcm) if uid == "1.2.3.4.5" else ""), raising=False)
    logic = _logic(registry)
    mapping, notes, left_out = logic.autoMap([adc, flair], logic.modelChannels())
    assert mapping == {"FLAIR": flair}
    assert any(node is adc and "no ADC channel" in why for node, why in left_out)
    assert "name" in notes["FLAIR"]


def test_auto_map_reads_an_unnamed_volume_from_its_image(slicer_core, mrml_scene, registry, tiny_version,
                                                         two_contrast_classifier) -> None:
    """Volumes loaded as ``img1``/``img2`` (no telling name, no DICOM) are identified from their voxels, read from
    the MRML nodes, and the channel note says the evidence was the image."""
    slicer = slicer_core.slicer
    flair = _node_from_image(slicer, two_contrast_classifier["FLAIR"], "img1")
    t1 = _node_from_image(slicer, two_contrast_classifier["T1"], "img2")
    logic = _logic(registry)
    mapping, notes, left_out = logic.autoMap([flair, t1], logic.modelChannels())
    assert mapping == {"FLAIR": flair, "T1": t1} and not left_out, [why for _, why in left_out]
    assert notes["FLAIR"].startswith("FLAIR (image,") and "white matter" in notes["FLAIR"]


def test_auto_map_tells_an_unnamed_t1_from_its_t1c_by_reading_the_scene_as_one_exam(slicer_core, mrml_scene,
                                                                                    registry, tiny_version) -> None:
    """A real MS exam loaded as ``img1``/``img2``/``img3`` (FLAIR, T1c, T1; no telling name, no DICOM): neither T1
    volume alone rules out its partner, read side by side the post-contrast one is found, and the panel's note says
    so. The shipped classifier has seen this patient; its held-out measure is the benchmark's."""
    from brainlesioncl.io import read_image

    from conftest import shared_path

    patient = shared_path("data", "ms_ljubljana3d_open_ms_data", "patient07")
    slicer = slicer_core.slicer
    flair, t1c, t1 = (_node_from_image(slicer, read_image(patient / f"{source}.nii.gz"), name)
                      for source, name in (("flair", "img1"), ("t1c", "img2"), ("t1", "img3")))
    logic = _logic(registry)
    mapping, notes, left_out = logic.autoMap([flair, t1c, t1], logic.modelChannels())
    assert mapping.get("T1c") is t1c and mapping.get("T1") is t1, [why for _, why in left_out]
    assert "read with this exam" in notes["T1c"] and "after contrast" in notes["T1c"]
    assert all(node is not t1c and node is not t1 for node, _ in left_out)


class DicomDatabaseStandIn:
    """What the module uses of CTK's ctkDICOMDatabase (documented API): ``fileForInstance(uid)`` gives the file of a
    stored instance ('' when unknown), ``insert(path)`` stores a DICOM file."""

    def __init__(self, files_by_uid: dict[str, str]) -> None:
        self.files_by_uid, self.inserted = files_by_uid, []

    def fileForInstance(self, uid: str) -> str:  # noqa: N802 - CTK's name
        return self.files_by_uid.get(uid, "")

    def insert(self, path: str, *_args) -> None:
        self.inserted.append(path)


def test_a_segmentation_exports_to_dicom_seg_and_sr_into_slicers_database(slicer_core, mrml_scene, registry,
                                                                         tiny_version, monkeypatch, tmp_path) -> None:
    """The tumour's three sub-region segments of a volume loaded from DICOM become a DICOM SEG with three coded
    segments on that series, and an SR, both added to Slicer's DICOM database; a volume not from DICOM is refused
    with the reason."""
    pydicom = pytest.importorskip("pydicom")
    pytest.importorskip("highdicom")
    from BrainLesionCLLib import BrainLesionCLLogic
    from BrainLesionCLLib.mrml_io import label_into_segment
    from BrainLesionCLLib.terminology import TUMOUR_SUBREGION_CLASSES
    from dicom_helpers import SEQUENCES, new_uid, write_series

    from brainlesioncl.errors import BrainLesionCLError
    from brainlesioncl.io import read_image

    slicer = slicer_core.slicer
    grid = make_grid((40, 44, 20), (2.0, 2.0, 3.5), origin=(-40.0, -44.0, -35.0))
    folder = write_series(sphere_case(grid, radius=12.0), tmp_path / "t1c", study=new_uid(), series_number=7,
                          tags=SEQUENCES["T1c"])
    files = sorted(folder.iterdir())
    uids = {str(pydicom.dcmread(str(f), stop_before_pixels=True).SOPInstanceUID): str(f) for f in files}
    volume = _node_from_image(slicer, read_image(folder), "t1c")
    volume.SetAttribute("DICOM.instanceUIDs", " ".join(uids))
    database = DicomDatabaseStandIn(uids)
    monkeypatch.setattr(slicer, "dicomDatabase", database, raising=False)
    segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "tumour result")
    segmentation.CreateDefaultDisplayNodes()
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    array = np.zeros(sitk.GetArrayViewFromImage(grid).shape, np.uint8)
    array[6:14, 12:30, 10:30] = 2
    array[8:12, 16:26, 14:26] = 3
    array[9:11, 19:23, 18:22] = 1
    for value, style in TUMOUR_SUBREGION_CLASSES:
        part = sitk.GetImageFromArray((array == value).astype(np.uint8))
        part.CopyInformation(grid)
        label_into_segment(part, volume, segmentation, name=style.name, color=style.color,
                           terminology=style.terminology)
    logic = BrainLesionCLLogic(registry=registry)
    written = logic.exportDicom(segmentation, volume, "tumour", str(tmp_path))
    assert [p.name for p in written] == ["tumour_result_SEG.dcm", "tumour_result_SR.dcm"]
    assert database.inserted == [str(p) for p in written]
    seg = pydicom.dcmread(str(written[0]))
    assert {int(s.SegmentNumber): s.SegmentLabel for s in seg.SegmentSequence} == {
        1: "Necrotic / non-enhancing core", 2: "Oedema", 3: "Enhancing tumour"}
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == pydicom.dcmread(str(files[0])).SeriesInstanceUID
    assert pydicom.dcmread(str(written[1])).Modality == "SR"
    plain = _node_from_image(slicer, read_image(folder), "not from DICOM")
    with pytest.raises(BrainLesionCLError, match="not loaded from Slicer's DICOM database"):
        logic.exportDicom(segmentation, plain, "tumour", str(tmp_path))
