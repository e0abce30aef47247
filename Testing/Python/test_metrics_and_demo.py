"""Metrics against hand-computed values, and the demo end to end on a tiny model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from brainlesioncl.demo import run_demo
from brainlesioncl.evaluation.segmentation import case_metrics, dice


def test_overlap_metrics_by_hand() -> None:
    truth = np.zeros((10, 10, 10), bool)
    truth[2:6, 2:6, 2:6] = True  # 64 voxels
    prediction = np.zeros_like(truth)
    prediction[4:8, 2:6, 2:6] = True  # 64 voxels, 32 overlapping
    m = case_metrics(prediction, truth, (1.0, 1.0, 1.0))
    assert m.dice == pytest.approx(0.5)
    assert m.sensitivity == pytest.approx(0.5) and m.precision == pytest.approx(0.5)
    assert m.truth_ml == pytest.approx(0.064)


def test_surface_distances_by_hand() -> None:
    truth = np.zeros((12, 5, 5), bool)
    prediction = np.zeros_like(truth)
    truth[2, 2, 2] = True
    prediction[6, 2, 2] = True  # 4 voxels apart along an axis of 2 mm spacing
    m = case_metrics(prediction, truth, (2.0, 1.0, 1.0))
    assert m.hd95_mm == pytest.approx(8.0)
    assert m.assd_mm == pytest.approx(8.0)
    assert m.dice == 0.0


def test_empty_conventions() -> None:
    empty = np.zeros((4, 4, 4), bool)
    m = case_metrics(empty, empty, (1, 1, 1))
    assert m.dice == 1.0 and math.isnan(m.sensitivity) and math.isnan(m.hd95_mm)
    assert m.to_dict()["sensitivity"] is None
    assert dice(empty, empty) == 1.0


def test_demo_writes_segmentations_overlays_and_summary(registry, tiny_version, tmp_path: Path) -> None:
    lines: list[str] = []
    results = run_demo(tmp_path / "demo", registry=registry, device="cpu", size=(72, 84, 64), say=lines.append)
    assert [r.disease for r in results] == ["tumour", "stroke", "MS", "WMH"]
    for r in results:
        assert r.segmentation.is_file() and r.overlay.is_file()
        assert 0.0 <= r.metrics["dice"] <= 1.0
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["model"] == tiny_version and len(summary["cases"]) == 4
    assert any("Dice" in line for line in lines)
