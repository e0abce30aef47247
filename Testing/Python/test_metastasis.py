"""The two-stage metastasis pipeline: patch stitching, label conversion, tiny training of both stages, the CLI
route for --disease metastasis, and importing the published checkpoints without running their pickled code."""

from __future__ import annotations

import json
import pickle
import sys
import types

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from torch import nn

from brainlesioncl.cli.main import main
from brainlesioncl.errors import UnsafeCheckpointError
from brainlesioncl.metastasis import (
    DetectorConfig,
    MetastasisPipeline,
    MetTrainConfig,
    SegmentorConfig,
    build_detector,
    build_segmentor,
    classes_to_regions,
    load_met_case,
    metastasis_metadata,
    regions_to_classes,
    segmentor_state,
    train_detector,
    train_segmentor,
)
from brainlesioncl.metastasis.importer import import_metseg
from brainlesioncl.metastasis.patches import patch_starts, stitch
from brainlesioncl.metastasis.training import MetCase, centred_windows, sample_crops, segmentor_loss
from brainlesioncl.phantoms import PhantomConfig, generate_case
from brainlesioncl.preprocessing import PreprocessConfig


def test_labels_round_trip() -> None:
    classes = np.array([0, 1, 2, 3], np.uint8).reshape(4, 1, 1)
    regions = classes_to_regions(classes)
    assert regions[:, :, 0, 0].T.tolist() == [[0, 0, 0], [1, 1, 0], [1, 0, 0], [1, 1, 1]]
    assert regions_to_classes(regions).ravel().tolist() == [0, 1, 2, 3]


def test_patches_cover_the_volume_and_stitching_averages_accepted_patches_only() -> None:
    starts = patch_starts((40, 32, 70), 32, 0.5)
    covered = np.zeros((40, 32, 70), bool)
    for x, y, z in starts:
        covered[x:x + 32, y:y + 32, z:z + 32] = True
    assert covered.all() and all(x + 32 <= 40 and z + 32 <= 70 for x, _, z in starts)
    ones = np.ones((1, 32, 32, 32), np.float32)
    out = stitch((48, 32, 32), 32, 1, [((0, 0, 0), ones * 2.0), ((16, 0, 0), ones * 4.0)])
    assert out[0, 5, 0, 0] == 2.0 and out[0, 20, 0, 0] == 3.0 and out[0, 40, 0, 0] == 4.0
    lone = stitch((64, 32, 32), 32, 1, [((0, 0, 0), ones)])
    assert lone[0, 40, 0, 0] < -100  # never covered by an accepted patch: background


class _Bright(nn.Module):  # a 'detector' accepting patches that contain bright voxels
    def forward(self, x):
        return (x.amax(dim=(1, 2, 3, 4)) > 2.0).float()[:, None] * 2 - 1


class _Threshold(nn.Module):  # a 'segmentor' whose three regions are the bright voxels
    def forward(self, x):
        return (x[:, :1] > 2.0).float().repeat(1, 3, 1, 1, 1) * 20 - 10


def _met_cases(n: int, seed: int, spacing: float = 2.0) -> list:
    cases = []
    for i in range(n):
        phantom = generate_case(PhantomConfig(disease="metastasis", modalities=("FLAIR", "T1c", "T1"),
                                              size=(72, 84, 64), spacing=spacing, seed=seed + i))
        cases.append((phantom, load_met_case(f"met{i}", phantom.images, phantom.classes,
                                             preprocessing=PreprocessConfig(spacing=spacing))))
    return cases


def test_pipeline_with_known_stages_finds_the_bright_lesion() -> None:
    config = DetectorConfig.cpu()
    metadata = metastasis_metadata("known", config, SegmentorConfig.cpu(),
                                   preprocessing=PreprocessConfig(spacing=2.0))
    pipeline = MetastasisPipeline(_Bright(), _Threshold(), metadata, device="cpu", patch_size=32)
    array = np.zeros((3, 48, 48, 48), np.float32)
    array[:, 10:14, 30:34, 20:24] = 3.0
    regions, counts = pipeline.predict_regions(array)
    assert counts["accepted"] < counts["patches"]
    assert (regions[2] >= 0.5).sum() == 64 and regions[0][10:14, 30:34, 20:24].min() > 0.99
    # the whole segment path, on images: its result is checked for plausibility like every other result
    images = {}
    for index, channel in enumerate(metadata.channels):
        image = sitk.GetImageFromArray(np.ascontiguousarray(array[index].transpose(2, 1, 0)) + 1.0 + 0.01 * index
                                       + np.random.default_rng(index).normal(0, 0.05, (48, 48, 48)).astype(np.float32))
        image.SetSpacing((2.0, 2.0, 2.0))
        images[channel] = image
    result = pipeline.segment(images, prepare="off")
    assert result.lesion_count >= 1 and result.quality["plausibility"] == [w.to_dict() for w in result.warnings]


def test_lesion_balanced_crops_reach_small_lesions() -> None:
    classes = np.zeros((80, 80, 80), np.uint8)
    classes[10:30, 10:30, 10:30] = 2  # 8,000 voxels
    classes[60:62, 60:62, 60:62] = 3  # 8 voxels: a 3 mm metastasis
    case = MetCase("two", np.ones((3, 80, 80, 80), np.float32), classes)

    def share_on_small(balanced: bool) -> float:
        crops = sample_crops(case, 16, 300, 1.0, np.random.default_rng(0), lesion_balanced=balanced)
        return float(np.mean([c[4:12, 4:12, 4:12].max() == 3 for _, c in crops]))

    assert share_on_small(True) > 0.35
    assert share_on_small(False) < 0.05


def test_segmentor_window_keeps_the_crop_centre() -> None:
    x = torch.zeros(6, 1, 64, 64, 64)
    x[:, :, 32, 32, 32] = 1.0
    windows, targets = centred_windows(x, x.clone(), 48, np.random.default_rng(1))
    assert windows.shape == (6, 1, 48, 48, 48) and torch.equal(windows, targets)
    assert (windows.flatten(1).sum(1) == 1).all()


def test_batch_dice_penalises_false_positives_in_lesion_free_crops() -> None:
    target = torch.zeros(2, 3, 8, 8, 8)
    target[0, :, 2:6, 2:6, 2:6] = 1  # crop 0 holds a lesion, crop 1 none
    clean = target * 20 - 10  # confident and right everywhere
    speckled = clean.clone()
    speckled[1, :, ::2, ::2, ::2] = 10  # false positives in the lesion-free crop

    def cost(batch_dice: bool) -> float:
        return float(segmentor_loss(speckled, target, batch_dice) - segmentor_loss(clean, target, batch_dice))

    assert cost(True) > cost(False) + 0.1


@pytest.fixture(scope="module")
def tiny_pair():
    torch.manual_seed(0)
    cases = [c for _, c in _met_cases(3, seed=70)]
    config = MetTrainConfig(epochs=4, patch_size=32, crops_per_case=4, cases_per_step=1, segmentor_lr=1e-3,
                            segmentor_optimizer="adam")
    detector, segmentor = build_detector(DetectorConfig.cpu()), build_segmentor(SegmentorConfig.cpu())
    detector_result = train_detector(detector, cases, config)
    segmentor_result = train_segmentor(segmentor, detector, cases, config)
    return detector, segmentor, detector_result, segmentor_result


@pytest.mark.slow
def test_both_stages_train(tiny_pair) -> None:
    _, _, detector_result, segmentor_result = tiny_pair
    assert detector_result.losses[-1] < detector_result.losses[0]
    finite = [v for v in segmentor_result.losses if np.isfinite(v)]
    assert len(finite) >= 2 and finite[-1] < finite[0]


def test_metastasis_disease_routes_to_the_two_stage_model(tiny_pair, registry, tiny_version, tmp_path, capsys):
    detector, segmentor, _, _ = tiny_pair
    metadata = metastasis_metadata("met_tiny", DetectorConfig.cpu(), SegmentorConfig.cpu(),
                                   preprocessing=PreprocessConfig(spacing=2.0))
    version = registry.add(metadata, {"detector": detector.state_dict(), "segmentor": segmentor_state(segmentor)})
    registry.activate(version)
    assert registry.active("segmentation") == tiny_version  # the two roles are separate
    phantom, _ = _met_cases(1, seed=90)[0]
    inputs = []
    for modality in ("FLAIR", "T1c", "T1"):
        path = tmp_path / f"{modality}.nii.gz"
        sitk.WriteImage(phantom.images[modality], str(path))
        inputs += ["--input", f"{modality}={path}"]
    out = tmp_path / "seg.nii.gz"
    code = main(["--registry", str(registry.root), "segment", *inputs, "--disease", "metastasis", "-o", str(out),
                 "--progress", "json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["model"] == version and summary["disease"] == "metastasis"
    label = sitk.ReadImage(str(out))
    assert label.GetSize() == phantom.images["FLAIR"].GetSize()
    assert set(np.unique(sitk.GetArrayViewFromImage(label)).tolist()) <= {0, 1, 2, 3}


def test_published_checkpoint_layout_imports_and_pickled_code_is_refused(tmp_path, monkeypatch) -> None:
    easydict = types.ModuleType("easydict")

    class EasyDict(dict):
        pass

    EasyDict.__module__, EasyDict.__qualname__ = "easydict", "EasyDict"
    easydict.EasyDict = EasyDict
    monkeypatch.setitem(sys.modules, "easydict", easydict)
    detector = build_detector(DetectorConfig())  # the reference DenseNet121: 11,287,553 parameters
    segmentor = build_segmentor(SegmentorConfig())  # the reference DynUNet: 16,673,868 parameters
    assert sum(p.numel() for p in detector.parameters()) == 11_287_553
    assert sum(p.numel() for p in segmentor.parameters()) == 16_673_868
    hyper = EasyDict(model="densenet121", lr=4e-4)
    torch.save({"state_dict": {f"model.{k}": v for k, v in detector.state_dict().items()},
                "hyper_parameters": hyper, "epoch": 399}, tmp_path / "detector.ckpt")
    torch.save({"state_dict": {**{f"model.{k}": v for k, v in segmentor.state_dict().items()},
                               **{f"detector.{k}": v for k, v in detector.state_dict().items()}},
                "hyper_parameters": hyper}, tmp_path / "segmentor.ckpt")
    monkeypatch.delitem(sys.modules, "easydict")  # the importer must not need easydict installed
    metadata, states = import_metseg(tmp_path / "detector.ckpt", tmp_path / "segmentor.ckpt")
    assert metadata.channels == ["FLAIR", "T1c", "T1"]
    assert len(segmentor.state_dict()) == 168 and len(states["segmentor"]) == 85  # aliases stored once
    assert torch.equal(states["detector"]["class_layers.out.weight"], detector.state_dict()["class_layers.out.weight"])

    class Exploit:
        def __reduce__(self):
            return (print, ("this must never run",))

    with open(tmp_path / "evil.ckpt", "wb") as fh:
        torch.save({"state_dict": {"model.x": torch.zeros(1)}, "payload": Exploit()}, fh, pickle_module=pickle)
    with pytest.raises(UnsafeCheckpointError, match="refused"):
        import_metseg(tmp_path / "evil.ckpt", tmp_path / "segmentor.ckpt")
