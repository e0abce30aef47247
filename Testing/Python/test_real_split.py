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


def test_cross_validation_scores_every_case_once_and_keeps_a_patient_in_one_fold(tmp_path) -> None:
    """The folds of benchmarks/real_crossval.json, dealt on a stand-in data folder with the same case names: each
    labelled case is evaluated by exactly one fold and trained by every other; no fold trains on a case it scores;
    the two scans of one patient always share a fold; the final run trains on everything and scores nothing."""
    crossval = _load_benchmark("real_crossval")
    config = json.loads(crossval.CONFIG.read_text(encoding="utf-8"))
    groups = config["same_patient"]["groups"]
    names = {case for group in groups for case in group}
    names |= {f"{source}/case{i}" for dataset in config["datasets"].values() for source in dataset["sources"]
              for i in range(4)}
    for case in names:
        (tmp_path / case).mkdir(parents=True, exist_ok=True)
        (tmp_path / case / "label.nii.gz").write_bytes(b"")
    (tmp_path / "glioma_brats2018_deepbrainseg" / "unlabelled").mkdir()
    evaluated_by: dict[str, list[int]] = {}
    for fold in range(config["folds"]):
        split = crossval.fold_split(config, fold, tmp_path)
        for dataset in split["datasets"].values():
            train, evaluate = set(dataset["train"]), set(dataset.get("evaluate", []))
            assert not train & evaluate
            for case in evaluate:
                evaluated_by.setdefault(case, []).append(fold)
            for group in groups:
                assert not (set(group) & train and set(group) & evaluate), group
    assert set(evaluated_by) == names and all(len(folds) == 1 for folds in evaluated_by.values())
    for group in groups:
        assert len({evaluated_by[case][0] for case in group}) == 1
    final = crossval.fold_split(config, None, tmp_path)
    assert {case for d in final["datasets"].values() for case in d["train"]} == names
    assert not any("evaluate" in d for d in final["datasets"].values())
