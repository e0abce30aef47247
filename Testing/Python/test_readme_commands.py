"""The README's commands as a new user types them, against the **shipped** model in a fresh registry.

Tests built on tiny test models cannot catch what only the shipped model has (its name, its size, its channel order);
an episode from ``braincl-demo-v2`` once trained and then crashed on the name. So this file (1) parses every
``brainlesioncl`` line of the README with the real argument parser and (2) runs the main flow end to end through the
installed console script, with ``HOME`` pointing at an empty folder so the registry is the one a fresh install has.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from brainlesioncl.cli.main import build_parser
from brainlesioncl.registry import ModelRegistry

from conftest import REPO

README = REPO / "README.md"
SHIPPED = "braincl-demo-v4"  # the default of a fresh install (default_models/defaults.json)


def readme_commands() -> list[str]:
    """Every ``brainlesioncl`` invocation in the README's bash blocks (continuation lines joined, comments cut)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            for part in re.split(r"&&|;", line):
                part = part.strip()
                if part.startswith("brainlesioncl "):
                    commands.append(part)
                elif "brainlesioncl.cli.main " in part:  # torchrun ... -m brainlesioncl.cli.main episode ...
                    commands.append("brainlesioncl " + part.split("brainlesioncl.cli.main ", 1)[1])
    return commands


def test_every_readme_command_parses() -> None:
    commands = readme_commands()
    assert len(commands) >= 15, commands  # the README documents every sub-command
    parser = build_parser()
    for command in commands:
        try:
            parser.parse_args(shlex.split(command)[1:])
        except SystemExit as err:  # argparse exits on an unknown option or a missing argument
            pytest.fail(f"README command does not parse ({err}): {command}")
    assert {shlex.split(c)[1] for c in commands} >= {"segment", "episode", "models", "adapt", "modality-study",
                                                       "phantoms", "demo", "report"}


def _cli() -> list[str]:
    script = Path(sys.executable).parent / "brainlesioncl"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "brainlesioncl.cli.main"]


@pytest.fixture(scope="module")
def fresh_install(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A working folder and an environment whose HOME is empty: the registry holds only the shipped models."""
    work = tmp_path_factory.mktemp("readme")
    home = work / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "PYTHONUNBUFFERED": "1"}
    return work, env


def run(fresh_install, command: str, *, expect: int = 0) -> str:
    work, env = fresh_install
    done = subprocess.run(_cli() + shlex.split(command)[1:], cwd=work, env=env, capture_output=True, text=True,
                          encoding="utf-8", errors="replace", timeout=600)  # never the locale's codec
    assert done.returncode == expect, f"{command}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.mark.slow
def test_readme_flow_on_the_shipped_model(fresh_install) -> None:
    work, _env = fresh_install
    run(fresh_install, "brainlesioncl phantoms cases --preset ISLES --count 3 --size 64 64 48 --spacing 2 --seed 3 "
                       "--modalities FLAIR,T1,DWI")
    case = work / "cases" / "ISLES_0003"

    # segment: the shipped model is active on a fresh install
    out = run(fresh_install, f"brainlesioncl segment --input FLAIR={case}/FLAIR.nii.gz --input T1={case}/T1.nii.gz "
                             "--disease stroke -o seg.nii.gz --probabilities prob.nii.gz")
    assert SHIPPED in out
    label, flair = sitk.ReadImage(str(work / "seg.nii.gz")), sitk.ReadImage(str(case / "FLAIR.nii.gz"))
    assert label.GetSize() == flair.GetSize() and (work / "prob.nii.gz").stat().st_size > 0

    # the diagnosis read from the image: the shipped model has a disease router and says what it chose
    out = run(fresh_install, f"brainlesioncl segment --input FLAIR={case}/FLAIR.nii.gz --input DWI={case}/DWI.nii.gz "
                             "--disease auto -o auto.nii.gz")
    assert "disease auto: " in out and (work / "auto.nii.gz").is_file()

    # an episode from the shipped model (the README's command, with a CPU-test budget) -> the next version of its name
    out = run(fresh_install, "brainlesioncl episode cases/ --disease stroke --strategy ours --epochs 1 --crop-size 32")
    assert f"New version braincl-demo-v5 (parent {SHIPPED})" in out
    run(fresh_install, "brainlesioncl models activate braincl-demo-v5")
    listing = run(fresh_install, "brainlesioncl models list")
    assert re.search(r"^\*\s+braincl-demo-v5\b", listing, flags=re.M), listing
    assert f"Rolled back to {SHIPPED}" in run(fresh_install, "brainlesioncl models rollback")
    run(fresh_install, "brainlesioncl models export braincl-demo-v5 exported-v5")
    assert json.loads((work / "exported-v5" / "bundle.json").read_text())["parent"] == SHIPPED

    # import published-style weights (a BrainCL exprience_*.pt dict) under a name with dashes, and activate one
    registry = ModelRegistry(work / "home" / ".brainlesioncl" / "models")
    torch.save({"model": registry.get(SHIPPED).state_dict(), "episode_idx": 4}, work / "exprience_4.pt")
    out = run(fresh_install, "brainlesioncl models import exprience_4.pt --name my-site-model")
    assert "as my-site-model-v1" in out
    assert "braincl-v1 is now active" in run(fresh_install, "brainlesioncl models import exprience_4.pt --activate")

    # adapt the shipped model, then the modality study of the active (imported) model on the labelled cases
    out = run(fresh_install, f"brainlesioncl adapt --reassign SWI=PD --parent {SHIPPED}")
    adapted = json.loads(out.splitlines()[0])
    assert adapted["parent"] == SHIPPED and adapted["version"].startswith("braincl-demo-v")
    run(fresh_install, "brainlesioncl modality-study cases/ --disease stroke --output-dir study/")
    assert (work / "study").is_dir() and any((work / "study").iterdir())

    # a federated episode rehearsed on one machine from the shipped model (two "hospitals" of the phantom cases)
    import shutil

    for site, names in (("north", ["ISLES_0003"]), ("south", ["ISLES_0004", "ISLES_0005"])):
        for name in names:
            shutil.copytree(work / "cases" / name, work / site / name)
    out = run(fresh_install, f"brainlesioncl federated simulate --parent {SHIPPED} --disease stroke --rounds 1 "
                             "--local-steps 1 --crop-size 32 --site north=north/ --site south=south/")
    federated = re.search(r"New version (braincl-demo-v\d+) \(parent " + SHIPPED + r"\) from 2 sites", out)
    assert federated, out
    history = ModelRegistry(work / "home" / ".brainlesioncl" / "models").get(federated.group(1)).metadata.training
    assert history["federated"]["cases_per_site"] == {"north": 1, "south": 2}

    # a name that cannot be stored is refused before any training starts, with the rule in the message
    out = run(fresh_install, "brainlesioncl episode cases/ --disease stroke --epochs 1 --crop-size 32 "
                             "--name 'bad name'", expect=2)
    assert "letters, digits, '-', '_' and '.'" in out and "epoch" not in out


@pytest.mark.slow
def test_segment_on_a_phantom_matches_the_truth_with_the_shipped_model(fresh_install) -> None:
    """The README's segment command gives a real result with the shipped model, not just a file."""
    work, _env = fresh_install
    if not (work / "cases").is_dir():
        run(fresh_install, "brainlesioncl phantoms cases --preset ISLES --count 3 --size 64 64 48 --spacing 2 --seed 3 "
                       "--modalities FLAIR,T1,DWI")
    case = work / "cases" / "ISLES_0004"
    run(fresh_install, f"brainlesioncl segment --model {SHIPPED} --input FLAIR={case}/FLAIR.nii.gz --input "
                       f"DWI={case}/DWI.nii.gz --disease stroke -o seg4.nii.gz")
    predicted = sitk.GetArrayFromImage(sitk.ReadImage(str(work / "seg4.nii.gz"))) > 0
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(case / "label.nii.gz"))) > 0
    dice = 2 * np.logical_and(predicted, truth).sum() / (predicted.sum() + truth.sum())
    assert dice > 0.3, dice
