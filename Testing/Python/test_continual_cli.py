"""The episode and report commands, the JSON manifest, and a data-parallel episode under torchrun (gloo, 2 CPUs)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cl_helpers import write_cases

from brainlesioncl.cli.main import main
from brainlesioncl.continual.report import load_results
from brainlesioncl.errors import InvalidImageError
from brainlesioncl.registry import ModelRegistry

HERE = Path(__file__).parent


def test_episode_command_writes_a_version_and_activates_it(tmp_path, registry, tiny_version, capsys) -> None:
    cases = write_cases(tmp_path / "cases", 3)
    code = main(["--registry", str(registry.root), "episode", str(cases), "--disease", "stroke", "--strategy", "lwf",
                 "--epochs", "1", "--steps-per-epoch", "3", "--schedule", "cosine", "--crop-size", "32",
                 "--validation-fraction", "0", "--activate", "--option", "alpha=0.5", "--progress", "json"])
    assert code == 0
    out = capsys.readouterr().out
    assert "PROGRESS" in out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["parent"] == tiny_version and summary["activated"]
    fresh = ModelRegistry(registry.root, builtin_dirs=[])
    assert fresh.active() == summary["version"]
    meta = fresh.get(summary["version"]).metadata
    assert meta.training["strategy"]["hyperparameters"]["alpha"] == 0.5
    assert meta.training["config"]["steps_per_epoch"] == 3 and meta.training["config"]["schedule"] == "cosine"
    assert fresh.rollback() == tiny_version


def test_episode_command_refuses_unlabelled_cases_and_bad_options(tmp_path, registry, tiny_version, capsys) -> None:
    cases = write_cases(tmp_path / "cases", 2, labels=False)
    assert main(["--registry", str(registry.root), "episode", str(cases), "--disease", "stroke"]) == 2
    assert "no label" in capsys.readouterr().err
    labelled = write_cases(tmp_path / "labelled", 2)
    assert main(["--registry", str(registry.root), "episode", str(labelled), "--disease", "stroke",
                 "--strategy", "ewc", "--option", "gamma=1"]) == 2
    assert "has no option" in capsys.readouterr().err
    assert len(registry.version_ids()) == 1


def test_json_manifest(tmp_path, registry, tiny_version) -> None:
    from brainlesioncl.continual import EpisodeConfig, train_episode

    write_cases(tmp_path / "cases", 2)
    entries = [
        {"case": f"c{i}", "images": {"T2-FLAIR": f"cases/{p.name}/flair.nii.gz", "T1w": f"cases/{p.name}/t1.nii.gz"},
         "label": f"cases/{p.name}/label.nii.gz", "disease": "stroke"}
        for i, p in enumerate(sorted((tmp_path / "cases").iterdir()))
    ]
    manifest = tmp_path / "cases.json"
    manifest.write_text(json.dumps({"cases": entries}))
    result = train_episode(manifest, "stroke", parent=tiny_version, registry=registry, device="cpu",
                           config=EpisodeConfig(strategy="naive", epochs=1, steps_per_epoch=1, crop_size=32,
                                                validation_fraction=0, precision="fp32"))
    assert result.metadata.training["cases"] == 2
    with pytest.raises(InvalidImageError, match="another disease"):
        train_episode(manifest, "MS", parent=tiny_version, registry=registry, device="cpu")


def test_report_command_draws_heatmaps_and_radar(tmp_path, capsys) -> None:
    s1 = [[0.9179, 0.2491, 0.2400, 0.7528, 0.0498], [0.7743, 0.4788, 0.1054, 0.4436, 0.0025],
          [0.8099, 0.2629, 0.4935, 0.7011, 0.2245], [0.8399, 0.2597, 0.1635, 0.7540, 0.3048],
          [0.7822, 0.1803, 0.4237, 0.7065, 0.6226]]
    naive = (np.array(s1) * np.tri(5) * 0.5 + np.array(s1) * (1 - np.tri(5))).tolist()
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"datasets": ["BRATS", "ATLAS", "MSSEG", "ISLES", "WMH"],
                                   "strategies": {"braincl": {"matrix": s1}, "naive": {"matrix": naive}}}))
    out_dir = tmp_path / "report"
    assert main(["report", str(results), "--output-dir", str(out_dir)]) == 0
    printed = capsys.readouterr().out
    assert "| braincl | 54.31 | 56.46 | -16.46 | 30.74 | 46.17 |" in printed
    for name in ("heatmap_braincl.png", "heatmap_naive.png", "radar.png"):
        assert (out_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"datasets": ["a", "b"], "strategies": {"x": {"matrix": [[1, 2, 3]]}}}))
    with pytest.raises(InvalidImageError, match="expected 2x2"):
        load_results(bad)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_data_parallel_episode_two_cpu_processes(tmp_path, registry, tiny_version) -> None:
    out = tmp_path / "ranks"
    out.mkdir()
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
               f"--master_port={_free_port()}", str(HERE / "ddp_episode_worker.py"), str(registry.root), tiny_version,
               str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["hash"] == ranks[1]["hash"]  # gradients were averaged: identical weights on both ranks
    assert ranks[0]["version"] and ranks[1]["version"] is None  # only rank 0 wrote
    fresh = ModelRegistry(registry.root, builtin_dirs=[])
    assert len(fresh.version_ids()) == 2
    assert fresh.get(ranks[0]["version"]).metadata.parent == tiny_version


def test_the_cli_offers_exactly_the_engine_strategies() -> None:
    """``--strategy`` choices are declared without importing torch; they must stay the engine's list."""
    from brainlesioncl.cli.common import STRATEGY_NAMES
    from brainlesioncl.continual import STRATEGIES

    assert sorted(STRATEGY_NAMES) == sorted(STRATEGIES)
