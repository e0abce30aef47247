"""What the Slicer extension ships and how it is published (issue 29, defect 13): only the default model inside the
extension, a CMake minimum Slicer accepts, and an exported tree the Extensions Index's checks and size limit accept."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from conftest import REPO

MODULE_DIR = REPO / "BrainLesionCL"
MODELS = MODULE_DIR / "Lib" / "brainlesioncl" / "default_models"


def _default_version() -> str:
    return json.loads((MODELS / "defaults.json").read_text())["segmentation"]


def _cmake_listing(tmp_path) -> list[str]:
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not installed (apt-get install cmake): the extension's file list is CMake code")
    script = tmp_path / "list.cmake"
    script.write_text(f'include("{MODULE_DIR}/ShippedModels.cmake")\n'
                      f'brainlesioncl_shipped_models("{MODULE_DIR}" files)\nmessage("${{files}}")\n')
    run = subprocess.run([cmake, "-P", str(script)], capture_output=True, text=True, check=True)
    return run.stderr.strip().split(";")


def test_the_extension_installs_only_the_default_model(tmp_path) -> None:
    listed = _cmake_listing(tmp_path)
    default = _default_version()
    expected = ["Lib/brainlesioncl/default_models/defaults.json",
                *sorted(f"Lib/brainlesioncl/default_models/{default}/{p.name}" for p in (MODELS / default).iterdir())]
    assert listed == expected
    assert sum((MODULE_DIR / f).stat().st_size for f in listed) < 25e6


def test_a_registry_holding_only_the_shipped_files_opens_and_segments(tmp_path) -> None:
    """Inside Slicer the default model's parent version is not installed: the registry still lists, activates and
    verifies it."""
    from brainlesioncl.inference import Segmenter
    from brainlesioncl.registry import ModelRegistry

    installed = tmp_path / "default_models"
    for relative in _cmake_listing(tmp_path):
        target = installed / relative.removeprefix("Lib/brainlesioncl/default_models/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(MODULE_DIR / relative)
    registry = ModelRegistry(tmp_path / "user", builtin_dirs=[installed])
    assert registry.version_ids() == [_default_version()] and registry.active() == _default_version()
    from brainlesioncl.phantoms import PhantomConfig, generate_case

    case = generate_case(PhantomConfig(disease="tumour", modalities=("FLAIR",), size=(64, 72, 56), spacing=2.5,
                                       seed=5))
    result = Segmenter.from_bundle(registry.get(registry.active()), device="cpu").segment(
        {"FLAIR": case.images["FLAIR"]}, "tumour", prepare="off")
    assert result.model_version == _default_version() and result.lesion_count >= 1


def test_cmake_minimum_is_what_slicer_requires() -> None:
    text = (REPO / "CMakeLists.txt").read_text()
    match = re.search(r"cmake_minimum_required\(VERSION (\d+)\.(\d+)\.(\d+)", text)
    assert match and tuple(map(int, match.groups())) >= (3, 20, 6)


def test_the_exported_tree_passes_the_index_checks(tmp_path) -> None:
    """The tree ``scripts/export_extension.py`` writes (one commit of the published repository): the catalog entry
    with the required fields, a LICENSE, the default model only, and under the index's 100 MB limit."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the export lists git's tracked files")
    destination = tmp_path / "SlicerBrainLesionCL"
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "export_extension.py"), str(destination)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    entry = json.loads((destination / "BrainLesionCL.json").read_text())
    assert {"$schema", "category", "scm_url"} <= set(entry) and (destination / "LICENSE").is_file()
    models = destination / "BrainLesionCL" / "Lib" / "brainlesioncl" / "default_models"
    assert sorted(p.name for p in models.iterdir()) == sorted(["defaults.json", _default_version()])
    size = sum(p.stat().st_size for p in destination.rglob("*") if p.is_file())
    assert size < 100 * 1024 * 1024
    assert not list(destination.rglob("*.s4ext")) and (destination / "BrainLesionCL" / "ShippedModels.cmake").is_file()
