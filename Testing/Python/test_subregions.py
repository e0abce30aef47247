"""Tumour sub-regions: the network learns enhancing / core / oedema from annotated cases, a version carries it, Segment
splits the whole tumour with it (never moving the whole tumour's outline), and exams without T1c get the whole
tumour with the reason."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from brainlesioncl.continual import EpisodeConfig, train_episode
from brainlesioncl.errors import InvalidImageError
from brainlesioncl.evaluation.segmentation import dice
from brainlesioncl.inference import Segmenter
from brainlesioncl.inference.predictor import Predictor
from brainlesioncl.io import to_xyz
from brainlesioncl.modalities import BRAINCL_CHANNEL_ORDER, Disease
from brainlesioncl.subregions import COMPONENT, LABEL_CONVENTIONS, region_volumes
from brainlesioncl.training import TrainConfig, TrainingCase
from brainlesioncl.training.subregions import load_subregion_case, train_subregions, with_subregions

from conftest import TINY_CHANNELS, ThresholdNet, tiny_metadata

FLAIR, T1, T1C = (BRAINCL_CHANNEL_ORDER.index(m) for m in ("FLAIR", "T1", "T1c"))


def layered_tumour(rng: np.random.Generator, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """A glioma-like sphere: a necrotic core (dark on T1c), an enhancing ring (bright on T1c), an oedema shell (bright
    on FLAIR only). Returns the (6, X, Y, Z) image and the label (1 core, 2 oedema, 3 enhancing)."""
    grid = np.indices((size,) * 3).astype(np.float32)
    centre = rng.uniform(size / 2 - 4, size / 2 + 4, 3)
    outer = rng.uniform(8, 11)
    radius = np.sqrt(((grid - centre[:, None, None, None]) ** 2).sum(0))
    label = np.zeros((size,) * 3, np.uint8)
    label[radius < outer] = 2
    label[radius < 0.65 * outer] = 3
    label[radius < 0.35 * outer] = 1
    image = np.zeros((6, size, size, size), np.float32)
    for channel in (FLAIR, T1, T1C):
        image[channel] = 0.3 + 0.1 * rng.standard_normal((size,) * 3)
    image[FLAIR] += 1.7 * (label > 0)
    image[T1C] += 2.2 * (label == 3) - 0.8 * (label == 1)
    image[T1] -= 0.4 * (label > 0)
    return image, label


def cases(n: int, seed: int) -> list[TrainingCase]:
    rng = np.random.default_rng(seed)
    present = [i in (FLAIR, T1, T1C) for i in range(6)]
    return [TrainingCase(f"glioma{seed}-{i}", *layered_tumour(rng), present, Disease.TUMOUR) for i in range(n)]


@pytest.fixture(scope="module")
def head():
    torch.manual_seed(0)
    config = TrainConfig(epochs=40, steps_per_epoch=4, crop_size=32, precision="fp32", learning_rate=3e-3)
    network, result = train_subregions(cases(6, seed=1), BRAINCL_CHANNEL_ORDER, config, widths=TINY_CHANNELS,
                                       device="cpu")
    return network, result


def test_the_network_learns_each_sub_region(head) -> None:
    network, result = head
    losses = [r["loss"] for r in result.history]
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])
    predictor = Predictor(network, activation="softmax", lesion_channel=None, device="cpu")
    for case in cases(2, seed=2):
        probabilities = predictor.predict(case.image, torch.zeros(1, 6))
        assert probabilities.shape == (4, *case.label.shape)
        classes = np.where(case.label > 0, np.argmax(probabilities[1:], axis=0) + 1, 0)
        for value in (1, 2, 3):
            assert dice(classes == value, case.label == value) > 0.7, value


def test_training_refuses_cases_without_t1c() -> None:
    case = cases(1, seed=3)[0]
    case.present[T1C] = False
    with pytest.raises(InvalidImageError, match="T1c"):
        train_subregions([case], BRAINCL_CHANNEL_ORDER, TrainConfig(epochs=1, crop_size=32), device="cpu")


def _images(case: TrainingCase, modalities=("FLAIR", "T1", "T1c")) -> dict[str, sitk.Image]:
    out = {}
    for name in modalities:
        image = sitk.GetImageFromArray(np.ascontiguousarray(case.image[BRAINCL_CHANNEL_ORDER.index(name)].T))
        image.SetSpacing((1.5, 1.5, 1.5))
        out[name] = image
    return out


def test_segment_splits_the_whole_tumour_and_never_moves_its_outline(head) -> None:
    """Same lesion network with and without the sub-region network: the same whole tumour, now made of classes 1-3
    in about the right places, with the region volumes recorded; without T1c, the whole tumour and the reason."""
    network, _ = head
    case = cases(1, seed=4)[0]
    lesion_network = ThresholdNet(channel=FLAIR)
    plain = Segmenter(lesion_network, tiny_metadata(), device="cpu").segment(_images(case), "tumour")
    split = Segmenter(lesion_network, tiny_metadata(), device="cpu", subregions=network).segment(
        _images(case), "tumour")
    assert np.array_equal(sitk.GetArrayFromImage(split.label) > 0, sitk.GetArrayFromImage(plain.label) > 0)
    assert split.classes == {1: "necrotic or non-enhancing core", 2: "oedema", 3: "enhancing tumour"}
    assert plain.classes == {1: "lesion"} and "subregions" not in plain.quality
    predicted = to_xyz(split.label)
    assert set(np.unique(predicted).tolist()) == {0, 1, 2, 3}
    assert dice(predicted == 3, case.label == 3) > 0.6
    volumes = region_volumes(split.label)
    assert split.quality["subregions"]["given"] is True
    assert split.quality["subregions"]["WT_ml"] == pytest.approx(volumes["WT"], abs=1e-3)
    assert volumes["ET"] < volumes["TC"] < volumes["WT"] == pytest.approx(split.lesion_volume_ml)
    other = Segmenter(lesion_network, tiny_metadata(), device="cpu", subregions=network).segment(
        _images(case, ("FLAIR", "T1")), "tumour")
    assert set(np.unique(sitk.GetArrayFromImage(other.label)).tolist()) == {0, 1}
    assert "T1c" in other.quality["subregions"]["why"]
    stroke = Segmenter(lesion_network, tiny_metadata(), device="cpu", subregions=network).segment(
        _images(case), "stroke")
    assert stroke.classes == {1: "lesion"} and "subregions" not in stroke.quality


def test_a_version_with_sub_regions_loads_them_and_episodes_keep_them(head, registry, tiny_version) -> None:
    network, _ = head
    version = with_subregions(registry, tiny_version, network, training={"cases": 6})
    bundle = registry.get(version)
    assert bundle.metadata.parent == tiny_version and COMPONENT in bundle.metadata.architecture
    assert COMPONENT not in registry.get(tiny_version).metadata.architecture  # the source is unchanged
    assert Segmenter.from_bundle(bundle, device="cpu").subregions is not None
    assert Segmenter.from_bundle(registry.get(tiny_version), device="cpu").subregions is None
    whole_tumours = [TrainingCase(c.name, c.image, (c.label > 0).astype(np.uint8), c.present, c.disease)
                     for c in cases(2, seed=5)]
    child = train_episode(whole_tumours, "tumour", parent=version, registry=registry, device="cpu",
                          config=EpisodeConfig(strategy="naive", epochs=1, steps_per_epoch=1, crop_size=32,
                                               validation_fraction=0.0, keep="last", precision="fp32",
                                               scratch_channels=TINY_CHANNELS)).version
    kept = registry.get(child).state_dict(COMPONENT)
    assert all(torch.equal(kept[k], v) for k, v in network.state_dict().items())


def test_label_conventions_map_each_protocol_onto_the_three_classes(tmp_path) -> None:
    """BraTS 2013 (1 necrosis, 2 oedema, 3 non-enhancing, 4 enhancing) and BraTS 2018 (1, 2, 4) files load as classes
    1 core, 2 oedema, 3 enhancing; a value the protocol does not have is refused with the fix."""
    image = sitk.GetImageFromArray(np.random.default_rng(0).random((20, 20, 20)).astype(np.float32))
    raw = np.zeros((20, 20, 20), np.uint8)
    raw[2:6], raw[6:10], raw[10:14], raw[14:18] = 1, 2, 3, 4
    label = sitk.GetImageFromArray(raw)
    for name in ("FLAIR", "T1c"):
        sitk.WriteImage(image, str(tmp_path / f"{name}.nii.gz"))
    images = {n: tmp_path / f"{n}.nii.gz" for n in ("FLAIR", "T1c")}
    loaded = load_subregion_case("c", images, label, "brats2013", BRAINCL_CHANNEL_ORDER)
    assert set(np.unique(loaded.label).tolist()) == {0, 1, 2, 3}
    expected = np.vectorize(LABEL_CONVENTIONS["brats2013"].get)(raw)
    assert int((loaded.label == 1).sum()) == int((expected == 1).sum())
    with pytest.raises(InvalidImageError, match="not in the class table"):
        load_subregion_case("c", images, label, "brats2018", BRAINCL_CHANNEL_ORDER)


def test_the_report_gives_each_lesion_its_enhancing_and_core_volume(tmp_path) -> None:
    import csv

    from brainlesioncl.cli.segment import _subregion_lines
    from brainlesioncl.lesion_report import lesion_rows, write_lesion_report

    array = np.zeros((30, 30, 30), np.uint8)
    array[2:12, 2:12, 2:12] = 2  # the larger tumour: oedema around a core around enhancing tissue
    array[4:10, 4:10, 4:10] = 3
    array[6:8, 6:8, 6:8] = 1
    array[20:24, 20:24, 20:24] = 2  # a smaller lesion of oedema only
    label = sitk.GetImageFromArray(array)
    label.SetSpacing((1.0, 1.0, 2.0))
    rows = lesion_rows(label)
    voxel_ml = 2.0 / 1000
    assert rows[0].enhancing_ml == pytest.approx((216 - 8) * voxel_ml)
    assert rows[0].core_ml == pytest.approx(216 * voxel_ml)
    assert rows[1].enhancing_ml == 0.0 and rows[1].core_ml == 0.0
    assert lesion_rows(sitk.Cast(label > 0, sitk.sitkUInt8))[0].enhancing_ml is None
    write_lesion_report(rows, tmp_path / "lesions.csv")
    table = list(csv.reader((tmp_path / "lesions.csv").read_text().splitlines()))
    assert table[0][-2:] == ["enhancing_ml", "core_ml"]
    assert table[-1][0] == "total" and float(table[-1][-2]) == pytest.approx((216 - 8) * voxel_ml, abs=1e-4)
    volumes = region_volumes(label)
    assert volumes == pytest.approx({"ET": 208 * voxel_ml, "TC": 216 * voxel_ml, "WT": (1000 + 64) * voxel_ml})
    line = _subregion_lines({"given": True, **{f"{r}_ml": v for r, v in volumes.items()}})[0]
    assert "enhancing tumour (ET) 0.42 mL" in line and "whole tumour (WT) 2.13 mL" in line
    assert "need T1c" in _subregion_lines({"given": False, "why": "tumour sub-regions need T1c"})[0]
