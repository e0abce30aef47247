"""The real-data sequence's split (benchmarks/real_split.json): evaluation cases never train, every case exists, and
the manifests the episodes read find every training case with its label."""

from __future__ import annotations

import importlib.util
import json

from conftest import REPO, shared_path


def _load_benchmark(name: str):
    """A benchmark script as a module, without putting benchmarks/ on sys.path for the rest of the session."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


real_sequence = _load_benchmark("real_sequence")


def test_no_case_both_trains_and_evaluates() -> None:
    split = real_sequence.load_split()
    seen_training = set()
    for name in split["order"]:
        dataset = split["datasets"][name]
        train, evaluate = set(dataset.get("train", [])), set(dataset.get("evaluate", []))
        assert not train & evaluate, name
        assert name == "phantoms" or (train and evaluate), f"{name} needs training and evaluation cases"
        seen_training |= train
    for extra in split["evaluation_only"].values():
        assert not set(extra["evaluate"]) & seen_training
        assert "train" not in extra


def test_a_split_that_mixes_the_two_is_refused(tmp_path) -> None:
    split = json.loads(real_sequence.SPLIT.read_text(encoding="utf-8"))
    split["datasets"]["MS"]["evaluate"].append(split["datasets"]["MS"]["train"][0])
    bad = tmp_path / "split.json"
    bad.write_text(json.dumps(split))
    try:
        real_sequence.load_split(bad)
    except SystemExit as err:
        assert "both train and evaluate" in str(err)
    else:
        raise AssertionError("an overlapping split was accepted")


def test_manifests_find_every_training_case_with_its_label(tmp_path) -> None:
    data = shared_path("data")
    from brainlesioncl.cases import find_cases

    split = real_sequence.load_split()
    for name in split["order"][1:]:
        dataset = split["datasets"][name]
        for case in dataset["train"] + dataset["evaluate"]:
            images, label = real_sequence.case_inputs(dataset, case, data)
            assert images and label.is_file(), case
        cases = find_cases(real_sequence.write_manifest(dataset, tmp_path / f"{name}.json", data))
        assert len(cases) == len(dataset["train"]) and all(c.label is not None for c in cases)
        assert {c.disease for c in cases} == {dataset["disease"]}
