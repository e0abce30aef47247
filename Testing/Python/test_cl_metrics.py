"""The continual-learning metrics reproduce the published BrainCL S1 numbers from its matrix."""

from __future__ import annotations

import numpy as np
import pytest

from brainlesioncl.continual import cl_metrics

# BrainCL, sequence S1 (BRATS -> ATLAS -> MSSEG -> ISLES -> WMH), rows = after episode i, columns = test set j.
BRAINCL_S1 = [
    [0.9179, 0.2491, 0.2400, 0.7528, 0.0498],
    [0.7743, 0.4788, 0.1054, 0.4436, 0.0025],
    [0.8099, 0.2629, 0.4935, 0.7011, 0.2245],
    [0.8399, 0.2597, 0.1635, 0.7540, 0.3048],
    [0.7822, 0.1803, 0.4237, 0.7065, 0.6226],
]


def test_reference_s1_numbers() -> None:
    m = cl_metrics(BRAINCL_S1).to_dict(scale=100)
    assert m["acc"] == pytest.approx(54.31, abs=0.01)
    assert m["ilm"] == pytest.approx(56.46, abs=0.01)
    assert m["bwt"] == pytest.approx(-16.46, abs=0.01)
    assert m["fwt"] == pytest.approx(30.73, abs=0.01)
    assert m["overall"] == pytest.approx(46.17, abs=0.01)


def test_no_forgetting_and_small_cases() -> None:
    perfect = np.eye(3) * 0 + 0.9
    m = cl_metrics(perfect)
    assert m.bwt == 0 and m.acc == pytest.approx(0.9) and m.fwt == pytest.approx(0.9)
    single = cl_metrics([[0.7]])
    assert single.acc == single.ilm == pytest.approx(0.7) and single.bwt == 0 and single.fwt == 0
    with pytest.raises(ValueError):
        cl_metrics([[1, 2, 3]])
