"""Raw clinical exams: skull detection, co-registration of misaligned thick-slice sequences, brain extraction, and
the whole Segment path, on phantoms with known truth (skull, motion, thick slices)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from brainlesioncl.errors import GeometryError, SettingsError
from brainlesioncl.inference import Segmenter
from brainlesioncl.modalities import BRAINCL_CHANNEL_ORDER, Modality
from brainlesioncl.phantoms import PhantomConfig, generate_case
from brainlesioncl.preparation import is_brain_extracted, prepare_inputs, quality_lines, register_rigid
from brainlesioncl.preparation.bias import n4_correct
from brainlesioncl.preprocessing import PreprocessConfig
from brainlesioncl.training.data import load_training_case

from conftest import ThresholdNet, tiny_metadata

SIZE, SPACING = (112, 128, 104), 1.5


@pytest.fixture(scope="module")
def raw_exam():
    """FLAIR (reference, 1.5 mm) + T1, T2, DWI with skull, each moved ~6 mm / 6° and acquired with 5 mm slices."""
    return generate_case(PhantomConfig(disease="tumour", modalities=("FLAIR", "T1", "T2", "DWI"), size=SIZE,
                                       spacing=SPACING, seed=3, skull=True, misalign=(6.0, 6.0), slice_thickness=5.0))


def _brain_points(case) -> np.ndarray:
    index = np.argwhere(sitk.GetArrayFromImage(case.brain_mask) > 0)[::40][:, ::-1]
    reference = case.images["FLAIR"]
    return np.array([reference.TransformIndexToPhysicalPoint([int(v) for v in i]) for i in index])


def test_phantoms_have_what_clinical_exams_have(raw_exam) -> None:
    assert raw_exam.images["T1"].GetSpacing()[2] == pytest.approx(5.0)
    assert set(raw_exam.info["misalignment"]) == {"T1", "T2", "DWI"}
    brain_ml = float(sitk.GetArrayViewFromImage(raw_exam.brain_mask).sum()) * SPACING**3 / 1000
    assert 900 < brain_ml < 2000
    flair = sitk.GetArrayFromImage(raw_exam.images["FLAIR"])
    assert (flair[sitk.GetArrayFromImage(raw_exam.brain_mask) == 0] > 0).mean() > 0.9  # skull, scalp, noisy air


def test_skull_detection(raw_exam) -> None:
    stripped = generate_case(PhantomConfig(disease="none", modalities=("T1",), size=(64, 72, 60), spacing=3.0, seed=1))
    assert is_brain_extracted(stripped.images["T1"])[0] is True
    assert is_brain_extracted(raw_exam.images["FLAIR"])[0] is False


def test_a_stripped_series_resliced_to_thick_slices_is_still_recognised_as_stripped() -> None:
    """Reslicing or smoothing leaves numerical residue (1e-31) where a stripped series had exact zeros; counting only
    exact zeros took such a brain for a whole head, and auto mode then registered it and ran brain extraction on it."""
    case = generate_case(PhantomConfig(disease="stroke", modalities=("FLAIR", "DWI"), size=(78, 90, 72), spacing=2.0,
                                       seed=201, slice_thickness=4.0))
    dwi = case.images["DWI"]
    assert np.count_nonzero(sitk.GetArrayViewFromImage(dwi) == 0) / np.prod(dwi.GetSize()) > 0.5  # stripped again
    residue = sitk.SmoothingRecursiveGaussian(dwi, (1e-3, 1e-3, 2.0))  # what a reslicing tool leaves
    array = sitk.GetArrayViewFromImage(residue)
    assert np.count_nonzero(array == 0) / array.size < 0.5 and np.count_nonzero(np.abs(array) < 1e-20) > 0
    assert is_brain_extracted(residue)[0] is True
    raw = generate_case(PhantomConfig(disease="none", modalities=("FLAIR", "T1"), size=(78, 90, 72), spacing=2.0,
                                      seed=4, skull=True, slice_thickness=4.0))
    assert is_brain_extracted(sitk.SmoothingRecursiveGaussian(raw.images["T1"], (1e-3, 1e-3, 2.0)))[0] is False
    preparation = prepare_inputs({Modality.FLAIR: case.images["FLAIR"], Modality.DWI: residue}, Modality.FLAIR,
                                 extract_brain=lambda image: pytest.fail("a stripped exam went to brain extraction"))
    assert preparation.qc["decision"].startswith("curated") and not preparation.transforms


@pytest.mark.slow
def test_registration_error_on_misaligned_thick_slices(raw_exam) -> None:
    """Target: mean error over the brain <= 1.5 mm for the exam (T1, T2, DWI onto FLAIR, each from ~7.5 mm of
    motion and 5 mm slices), and each sequence under 2 mm. The registration is seeded, so this is the same number on
    every run and thread count (T2 onto FLAIR, the hardest pair: 1.62 mm)."""
    points = _brain_points(raw_exam)
    errors = {}
    for modality in ("T1", "T2", "DWI"):
        motion = np.array(raw_exam.info["misalignment"][modality]["matrix"])
        truth = points @ motion[:3, :3].T + motion[:3, 3]
        assert np.linalg.norm(points - truth, axis=1).mean() > 4.0  # the motion is real
        result = register_rigid(raw_exam.images["FLAIR"], raw_exam.images[modality], name=modality)
        found = np.array([result.transform.TransformPoint(tuple(p)) for p in points])
        errors[modality] = float(np.linalg.norm(found - truth, axis=1).mean())
    assert max(errors.values()) <= 2.0, errors
    assert np.mean(list(errors.values())) <= 1.5, errors


def test_registration_gives_the_same_transform_on_every_run(raw_exam) -> None:
    """SimpleITK reads a sampling seed of 0 as 'seed from the clock': the same exam then aligned differently on each
    run (T2 onto FLAIR anywhere between 1.2 and 2.0 mm off). The default seed is fixed, and 0 is refused."""
    first, second = (register_rigid(raw_exam.images["FLAIR"], raw_exam.images["T2"], name="T2") for _ in range(2))
    # the threads' summation order still moves the parameters by ~1e-8 (radians, mm); the clock moved them by ~1 mm
    np.testing.assert_allclose(first.transform.GetParameters(), second.transform.GetParameters(), atol=1e-5)
    with pytest.raises(ValueError, match="clock"):
        register_rigid(raw_exam.images["FLAIR"], raw_exam.images["T2"], seed=sitk.sitkWallClock)


def test_an_implausible_motion_is_refused_with_the_sequence_named() -> None:
    case = generate_case(PhantomConfig(disease="none", modalities=("FLAIR", "T2"), size=(96, 110, 90), spacing=1.8,
                                       seed=2, skull=True, misalign=(70.0, 0.0)))
    with pytest.raises(GeometryError, match="T2: co-registration .*--no-register"):
        register_rigid(case.images["FLAIR"], case.images["T2"], name="T2")


@pytest.mark.slow
def test_brain_extraction_on_a_skull_phantom() -> None:
    pytest.importorskip("deepbet", reason="brain extraction is optional: pip install 'brainlesioncl[clinical]'")
    from brainlesioncl.preparation.brain_mask import deepbet_brain_mask

    case = generate_case(PhantomConfig(disease="tumour", modalities=("T1",), size=SIZE, spacing=SPACING, seed=3,
                                       skull=True))
    mask = sitk.GetArrayFromImage(deepbet_brain_mask(case.images["T1"])) > 0
    truth = sitk.GetArrayFromImage(case.brain_mask) > 0
    assert 2 * (mask & truth).sum() / (mask.sum() + truth.sum()) >= 0.95


def test_missing_brain_extraction_names_the_install(monkeypatch, raw_exam) -> None:
    import builtins

    real_import = builtins.__import__

    def no_deepbet(name, *args, **kwargs):
        if name == "deepbet":
            raise ImportError("no deepbet")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_deepbet)
    from brainlesioncl.preparation.brain_mask import deepbet_brain_mask

    with pytest.raises(SettingsError, match=r"brainlesioncl\[clinical\].*--prepare off"):
        deepbet_brain_mask(raw_exam.images["T1"])


def _truth_mask(case):
    """What a perfect brain extraction returns for any sequence of the case: the true mask, moved with the head."""

    def extract(image: sitk.Image) -> sitk.Image:
        name = next(m for m, candidate in case.images.items() if candidate.GetSize() == image.GetSize()
                    and np.allclose(candidate.GetOrigin(), image.GetOrigin()))
        transform = sitk.Transform()
        if name in case.info.get("misalignment", {}):
            motion = np.array(case.info["misalignment"][name]["matrix"])
            inverse = np.linalg.inv(motion)
            transform = sitk.AffineTransform(inverse[:3, :3].flatten().tolist(), inverse[:3, 3].tolist())
        return sitk.Resample(case.brain_mask, image, transform, sitk.sitkNearestNeighbor, 0)

    return extract


@pytest.mark.slow
def test_segment_a_raw_exam_only_inside_the_brain(raw_exam) -> None:
    """The known predictor labels the brightest structure of FLAIR: on a raw exam that is the scalp. Prepared, the
    network sees only the brain, and nothing is labelled outside it; unprepared, the scalp is 'lesion'."""
    segmenter = Segmenter(ThresholdNet(channel=1), tiny_metadata(), device="cpu")
    segmenter.extract_brain = _truth_mask(raw_exam)
    inputs = {m: raw_exam.images[m] for m in ("FLAIR", "T1", "T2")}
    prepared = segmenter.segment(inputs, "tumour")
    brain = sitk.BinaryDilate(sitk.Cast(raw_exam.brain_mask, sitk.sitkUInt8), (3, 3, 3))
    outside = sitk.GetArrayFromImage(prepared.label)[sitk.GetArrayFromImage(brain) == 0]
    assert prepared.label.GetSize() == raw_exam.images["FLAIR"].GetSize() and not outside.any()
    quality = prepared.quality
    assert quality["inputs"]["FLAIR"]["brain_extracted"] is False and quality["inputs"]["T1"]["thick_slices"]
    assert set(k for k, v in quality["inputs"].items() if "registration" in v) == {"T1", "T2"}
    assert 900 < quality["brain_volume_ml"] < 2000
    raw = segmenter.segment(inputs, "tumour", prepare="off")
    assert sitk.GetArrayFromImage(raw.label)[sitk.GetArrayFromImage(brain) == 0].any()
    assert not raw.quality.get("inputs")


@pytest.mark.slow
def test_an_episode_learns_from_a_raw_annotated_exam_as_segment_sees_it() -> None:
    """A raw annotated exam (skull on, T1 moved 6 mm / 6 degrees, 5 mm slices; label drawn on FLAIR): the training
    case is brain-masked and its T1 is brought onto FLAIR, while the label is carried unchanged."""
    settings = dict(disease="tumour", modalities=("FLAIR", "T1"), size=SIZE, spacing=SPACING, seed=3, skull=True,
                    slice_thickness=5.0)
    raw = generate_case(PhantomConfig(misalign=(6.0, 6.0), **settings))
    still = generate_case(PhantomConfig(**settings))  # the same head without motion
    order = list(BRAINCL_CHANNEL_ORDER)
    images = {m: raw.images[m] for m in ("FLAIR", "T1")}
    whole = PreprocessConfig(crop_foreground=False)  # one grid for all three, so their voxels can be compared
    prepared = load_training_case("raw", images, raw.label, "tumour", order, extract_brain=_truth_mask(raw),
                                  preprocessing=whole)
    as_given = load_training_case("raw", images, raw.label, "tumour", order, prepare="off", preprocessing=whole)
    aligned = load_training_case("still", {m: still.images[m] for m in ("FLAIR", "T1")}, still.label, "tumour",
                                 order, prepare="off", preprocessing=whole)
    flair, t1 = order.index(Modality.FLAIR), order.index(Modality.T1)
    assert prepared.label.sum() == as_given.label.sum() > 0
    assert (prepared.image[flair] != 0).mean() < 0.5 < (as_given.image[flair] != 0).mean()  # skull and scalp gone
    brain = prepared.image[flair] != 0

    def agreement(case) -> float:
        return float(np.corrcoef(case.image[t1][brain], aligned.image[t1][brain])[0, 1])

    assert agreement(prepared) > 0.85 and agreement(as_given) < 0.8


def test_bias_correction_flattens_a_known_bias_field() -> None:
    """The same phantom with and without a strong coil field (log amplitude 0.5): N4 removes most of the field's
    spread inside the head and leaves the background exactly as it was."""
    settings = dict(disease="MS", modalities=("FLAIR",), size=(72, 84, 68), spacing=2.4, seed=11)
    flat = sitk.GetArrayFromImage(generate_case(PhantomConfig(bias=0.0, **settings)).images["FLAIR"])
    biased_image = generate_case(PhantomConfig(bias=0.5, **settings)).images["FLAIR"]
    biased = sitk.GetArrayFromImage(biased_image)
    corrected = sitk.GetArrayFromImage(n4_correct(biased_image))
    head = flat > 0

    def field_spread(array: np.ndarray) -> float:
        return float(np.std(np.log(np.maximum(array[head], 1e-3) / flat[head])))

    assert field_spread(corrected) < 0.6 * field_spread(biased)
    assert np.array_equal(corrected[~head], biased[~head])


def test_segment_records_bias_correction() -> None:
    case = generate_case(PhantomConfig(disease="tumour", modalities=("FLAIR",), size=(72, 84, 68), spacing=2.4,
                                       seed=8))
    segmenter = Segmenter(ThresholdNet(channel=1), tiny_metadata(), device="cpu")
    result = segmenter.segment(case.images, "tumour", bias_correction=True)
    assert result.quality["bias_correction"] == "N4" and "bias field corrected (N4)" in quality_lines(result.quality)
    assert "bias_correction" not in segmenter.segment(case.images, "tumour").quality


def test_prepare_auto_changes_nothing_on_curated_inputs() -> None:
    case = generate_case(PhantomConfig(disease="tumour", modalities=("FLAIR", "T1"), size=(72, 84, 68), spacing=2.4,
                                       seed=8))
    segmenter = Segmenter(ThresholdNet(channel=1), tiny_metadata(), device="cpu")
    auto = segmenter.segment(case.images, "tumour")
    off = segmenter.segment(case.images, "tumour", prepare="off")
    assert np.array_equal(sitk.GetArrayFromImage(auto.label), sitk.GetArrayFromImage(off.label))
    assert "curated" in auto.quality["decision"]


def test_quality_control_warns_about_an_implausible_brain(raw_exam) -> None:
    def tiny_mask(image):
        mask = sitk.Image(image.GetSize(), sitk.sitkUInt8)
        mask.CopyInformation(image)
        centre = [s // 2 for s in image.GetSize()]
        mask[centre] = 1
        return mask

    preparation = prepare_inputs({Modality.FLAIR: raw_exam.images["FLAIR"]}, Modality.FLAIR, extract_brain=tiny_mask)
    assert any("outside 800-2200 mL" in w for w in preparation.qc["warnings"])
    assert any("no T1-weighted sequence" in w for w in preparation.qc["warnings"])
    with pytest.raises(SettingsError, match="--prepare 'maybe'"):
        prepare_inputs({Modality.FLAIR: raw_exam.images["FLAIR"]}, Modality.FLAIR, mode="maybe")


@pytest.mark.slow
def test_prepare_command_writes_the_prepared_exam(tmp_path, raw_exam) -> None:
    pytest.importorskip("deepbet", reason="brain extraction is optional: pip install 'brainlesioncl[clinical]'")
    import json

    from brainlesioncl.cli.main import main

    paths = {}
    for name in ("FLAIR", "T1"):
        paths[name] = tmp_path / f"{name}.nii.gz"
        sitk.WriteImage(raw_exam.images[name], str(paths[name]))
    out = tmp_path / "prepared"
    out.mkdir()
    assert main(["prepare", "--input", f"FLAIR={paths['FLAIR']}", "--input", f"T1={paths['T1']}",
                 "--output-dir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["brain_mask.nii.gz", "flair.nii.gz", "quality.json",
                                                     "t1.nii.gz"]
    t1 = sitk.ReadImage(str(out / "t1.nii.gz"))
    assert t1.GetSize() == raw_exam.images["FLAIR"].GetSize()  # on the reference grid, 5 mm slices resampled once
    quality = json.loads((out / "quality.json").read_text())
    assert quality["inputs"]["T1"]["registration"]["translation_mm"] > 1 and 900 < quality["brain_volume_ml"] < 2000
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "brain_mask.nii.gz"))) > 0
    truth = sitk.GetArrayFromImage(raw_exam.brain_mask) > 0
    assert 2 * (mask & truth).sum() / (mask.sum() + truth.sum()) > 0.9
