"""The modality study: every subset, drops from the full set, the best subset, and its files."""

from __future__ import annotations

import numpy as np
import pytest

from brainlesioncl.errors import CancelledError
from brainlesioncl.modality_study import input_importance, modality_study, write_study
from brainlesioncl.training import case_from_arrays

from conftest import ThresholdNet

CHANNELS = ["DWI", "FLAIR", "PD", "T1", "T1c", "T2"]
SLOTS = ["tumour", "stroke", "MS", "WMH"]


def _case(name: str, present: list[bool]) -> object:
    size = 32
    grid = np.indices((size,) * 3)
    lesion = ((grid - 16) ** 2).sum(0) < 36
    image = np.zeros((6, size, size, size), np.float32)
    for channel, has in enumerate(present):
        if has:
            image[channel] = 0.5 + 1.5 * lesion  # every present channel shows the lesion
    return case_from_arrays(name, image, lesion.astype(np.uint8), present, "tumour")


def test_every_subset_is_scored_and_flair_is_what_matters(tmp_path) -> None:
    cases = [_case("a", [False, True, False, True, False, True]), _case("b", [False, True, False, True, False, False])]
    # The known predictor reads the FLAIR channel only: subsets without FLAIR find nothing.
    results = modality_study(ThresholdNet(channel=1), cases, CHANNELS, SLOTS)
    by_subset = {r.modalities: r for r in results}
    assert len(by_subset) == 7  # the union of 7 subsets of {FLAIR, T1, T2} and 3 of {FLAIR, T1}
    assert by_subset[("FLAIR", "T1")].cases == 2 and by_subset[("T2",)].cases == 1
    assert by_subset[("FLAIR",)].dice > 0.9 and by_subset[("T1",)].dice == 0.0
    assert by_subset[("T1",)].drop_from_all == pytest.approx(by_subset[("FLAIR", "T1", "T2")].dice, abs=1e-6)
    assert results[0].modalities == ("FLAIR",)  # best, and the smallest among equals
    files = write_study(results, tmp_path / "study")
    assert files["csv"].read_text().count("\n") == 8
    assert "Best subset: **FLAIR**" in files["markdown"].read_text()
    assert files["plot"].read_bytes()[:4] == b"\x89PNG"


def test_unannotated_case_is_scored_against_its_own_full_input_result() -> None:
    case = _case("patient", [False, True, False, True, False, True])
    case.label[:] = 0  # no annotation: the study must not use it
    results = modality_study(ThresholdNet(channel=1), [case], CHANNELS, SLOTS, against="full")
    by_subset = {r.modalities: r for r in results}
    assert by_subset[("FLAIR", "T1", "T2")].dice == 1.0
    assert by_subset[("FLAIR",)].dice == 1.0 and by_subset[("T1", "T2")].dice == 0.0
    importance = input_importance(results)
    assert importance[0] == ("FLAIR", 1.0)
    assert dict(importance) == {"FLAIR": 1.0, "T1": 0.0, "T2": 0.0}


def test_study_can_be_cancelled_and_refuses_unknown_references() -> None:
    case = _case("patient", [False, True, False, True, False, False])
    with pytest.raises(CancelledError):
        modality_study(ThresholdNet(channel=1), [case], CHANNELS, SLOTS, cancel=lambda: True)
    with pytest.raises(ValueError, match="against"):
        modality_study(ThresholdNet(channel=1), [case], CHANNELS, SLOTS, against="atlas")


def test_cli_studies_unlabelled_cases_against_their_full_input_result(tmp_path, registry, tiny_version, capsys):
    from cl_helpers import write_cases

    from brainlesioncl.cli.main import main

    cases = write_cases(tmp_path / "cases", 2, disease="tumour", labels=False)
    common = ["--registry", str(registry.root), "modality-study", str(cases), "--disease", "tumour",
              "--output-dir", str(tmp_path / "study")]
    assert main(common) == 2  # against the annotations, which these cases do not have
    assert "no label" in capsys.readouterr().err
    assert main([*common, "--against", "full"]) == 0
    table = (tmp_path / "study" / "modality_study.md").read_text()
    assert "| FLAIR+T1 | 1.000 | +0.000 | 2 |" in table and "| T1 |" in table
