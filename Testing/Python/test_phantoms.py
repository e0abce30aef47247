"""The phantom generator: physics-shaped contrasts, labels where the lesions are, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from brainlesioncl.cli.main import main
from brainlesioncl.errors import UnknownModalityError
from brainlesioncl.phantoms import PhantomConfig, generate_case
from brainlesioncl.phantoms.generator import DATASET_PRESETS

SMALL = dict(size=(72, 84, 64), spacing=2.0)
ALL = ("FLAIR", "T1", "T1c", "T2", "PD", "DWI", "SWI", "ADC")


def _xyz(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image).transpose(2, 1, 0)


@pytest.fixture(scope="module")
def cases() -> dict[str, object]:
    out = {}
    for disease in ("tumour", "MS", "WMH", "metastasis", "TBI", "none"):
        out[disease] = generate_case(PhantomConfig(disease=disease, modalities=ALL, seed=11, **SMALL))
    for stage in ("acute", "chronic"):
        config = PhantomConfig(disease="stroke", stroke_stage=stage, modalities=ALL, seed=5, **SMALL)
        out[f"stroke_{stage}"] = generate_case(config)
    return out


def _means(case, modality: str) -> dict[str, float]:
    """Median intensity per tissue (pure voxels) and inside the lesion classes.

    Tissue medians are taken near the lesion (within 12 voxels) when there is one, so the smooth bias field, which
    is part of the realism, does not decide the comparison.
    """
    from scipy import ndimage

    image = _xyz(case.images[modality])
    tissue, classes = _xyz(case.tissue), _xyz(case.classes)
    near = ndimage.binary_dilation(classes > 0, iterations=12) if classes.any() else np.ones(classes.shape, bool)
    out = {}
    for name, value in (("csf", 1), ("gm", 2), ("wm", 3), ("vessel", 4)):
        mask = (tissue == value) & (classes == 0)
        local = mask & near
        out[name] = float(np.median(image[local if local.sum() > 20 else mask]))
    for name, value in (("core", 1), ("oedema", 2), ("enhancing", 3)):
        if (classes == value).sum() > 10:
            out[name] = float(np.median(image[classes == value]))
    return out


def test_tissue_contrast_follows_mri_physics(cases) -> None:
    healthy = cases["none"]
    t1, t2, flair = _means(healthy, "T1"), _means(healthy, "T2"), _means(healthy, "FLAIR")
    assert t1["wm"] > t1["gm"] > t1["csf"]  # T1: white matter brightest
    assert t2["csf"] > t2["gm"] > t2["wm"]  # T2: CSF brightest
    assert flair["gm"] > flair["wm"] > flair["csf"]  # FLAIR: CSF suppressed
    assert _xyz(healthy.label).sum() == 0


def test_vessels_enhance_on_t1c_and_veins_are_dark_on_swi(cases) -> None:
    t1c, swi = _means(cases["none"], "T1c"), _means(cases["none"], "SWI")
    assert t1c["vessel"] > 1.2 * t1c["wm"]
    assert swi["vessel"] < 0.6 * swi["wm"]


def test_glioma_signal(cases) -> None:
    case = cases["tumour"]
    t1c, flair, t1 = _means(case, "T1c"), _means(case, "FLAIR"), _means(case, "T1")
    assert "oedema" in t1c
    if "enhancing" in t1c:
        assert t1c["enhancing"] > 1.3 * t1c["wm"]  # enhancing rim brighter than WM on T1c
    assert flair["oedema"] > 1.3 * flair["wm"]  # oedema bright on FLAIR
    assert t1["oedema"] < t1["wm"]  # and darker than WM on T1


def test_stroke_stages(cases) -> None:
    acute, chronic = cases["stroke_acute"], cases["stroke_chronic"]
    assert _means(acute, "DWI")["core"] > 1.8 * _means(acute, "DWI")["wm"]  # restricted diffusion
    assert _means(acute, "ADC")["core"] < _means(acute, "ADC")["wm"]
    assert _means(chronic, "T1")["core"] < 0.6 * _means(chronic, "T1")["wm"]  # tissue loss dark on T1


def test_white_matter_lesions_bright_on_flair(cases) -> None:
    for disease in ("MS", "WMH"):
        m = _means(cases[disease], "FLAIR")
        assert m["core"] > 1.3 * m["wm"], disease
        assert cases[disease].info["lesion_count"] >= 2


def test_metastases_enhance_and_contusions_are_dark_on_swi(cases) -> None:
    mets = cases["metastasis"]
    assert _means(mets, "T1c")["enhancing"] > 1.3 * _means(mets, "T1c")["wm"]
    assert len(mets.info["radii_mm"]) == mets.info["lesion_count"] >= 1
    assert _means(cases["TBI"], "SWI")["core"] < 0.5 * _means(cases["TBI"], "SWI")["wm"]


def test_labels_are_where_the_lesion_signal_is(cases) -> None:
    case = cases["tumour"]
    label = _xyz(case.label) > 0
    flair = _xyz(case.images["FLAIR"])
    brain = _xyz(case.tissue) > 0
    assert label.any() and not (label & ~brain).any()
    assert np.median(flair[label]) > np.percentile(flair[brain & ~label], 95)


def test_background_is_zero_and_geometry_is_ras(cases) -> None:
    case = cases["MS"]
    image = case.images["FLAIR"]
    assert image.GetDirection() == (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
    assert image.GetSpacing() == (2.0, 2.0, 2.0)
    array = _xyz(image)
    assert array[0, 0, 0] == 0 and (array == 0).mean() > 0.2


def test_deterministic_by_seed_and_seeds_differ() -> None:
    a = generate_case(PhantomConfig(disease="MS", modalities=("FLAIR",), seed=3, **SMALL))
    b = generate_case(PhantomConfig(disease="MS", modalities=("FLAIR",), seed=3, **SMALL))
    c = generate_case(PhantomConfig(disease="MS", modalities=("FLAIR",), seed=4, **SMALL))
    assert np.array_equal(_xyz(a.images["FLAIR"]), _xyz(b.images["FLAIR"]))
    assert np.array_equal(_xyz(a.label), _xyz(b.label))
    assert not np.array_equal(_xyz(a.label), _xyz(c.label))
    tissue_a, tissue_c = _xyz(a.tissue), _xyz(c.tissue)
    assert (tissue_a != tissue_c).mean() > 0.05  # different anatomy, not only different lesions


def test_bad_configs() -> None:
    with pytest.raises(ValueError):
        PhantomConfig(disease="flu")
    with pytest.raises(UnknownModalityError):
        PhantomConfig(modalities=("CT",))
    with pytest.raises(ValueError):
        PhantomConfig(disease="stroke", stroke_stage="subacute")


def test_cli_writes_dataset_with_manifest(tmp_path: Path) -> None:
    code = main(["phantoms", str(tmp_path / "isles"), "--preset", "ISLES", "--count", "2", "--size", "48", "56",
                 "40", "--spacing", "3", "--seed", "7", "--preview"])
    assert code == 0
    manifest = json.loads((tmp_path / "isles" / "manifest.json").read_text())
    assert [r["modalities"] for r in manifest] == [list(DATASET_PRESETS["ISLES"][1])] * 2
    assert all(r["disease"] == "stroke" for r in manifest)
    case = tmp_path / "isles" / manifest[0]["case"]
    assert sorted(p.name for p in case.iterdir()) == sorted(
        ["FLAIR.nii.gz", "T1.nii.gz", "T2.nii.gz", "DWI.nii.gz", "label.nii.gz", "classes.nii.gz", "case.json",
         "preview.png"])
    assert (tmp_path / "isles" / "cases.csv").read_text().startswith("case,FLAIR,T1,T2,DWI,label,disease")
