"""Continual-learning metrics on the accuracy matrix R, as BrainCL reports them.

``R[i, j]`` is the score (e.g. Dice) on test set ``j`` after training episode ``i`` (episodes and test sets in the
same sequence order). For N episodes:

* **Acc**: mean of the last row, what the final model achieves on every dataset;
* **ILM** (incremental learning metric): mean of the lower triangle including the diagonal, i.e. every score on a
  dataset already seen, over the whole sequence;
* **BWT** (backward transfer, Rodriguez/Gonzalez): mean over every seen dataset ``j < N-1`` and every later episode
  ``k > j`` of ``R[k, j] - R[j, j]``; negative means forgetting. Every later row counts, not only the last;
* **FWT** (forward transfer): mean of the strict upper triangle, the zero-shot score on datasets not yet trained on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["CLMetrics", "cl_metrics"]


@dataclass(frozen=True)
class CLMetrics:
    acc: float
    ilm: float
    bwt: float
    fwt: float
    overall: float

    def to_dict(self, scale: float = 1.0) -> dict[str, float]:
        return {k: round(v * scale, 4) for k, v in asdict(self).items()}


def cl_metrics(matrix: np.ndarray | list[list[float]]) -> CLMetrics:
    """Acc, ILM, BWT, FWT (and the mean of all entries) of a square accuracy matrix."""
    r = np.asarray(matrix, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] != r.shape[1] or r.shape[0] < 1:
        raise ValueError(f"R must be a non-empty square matrix, got shape {r.shape}")
    n = r.shape[0]
    ilm = float(r[np.tril_indices(n)].mean())
    backward = [r[k, j] - r[j, j] for j in range(n - 1) for k in range(j + 1, n)]
    forward = r[np.triu_indices(n, k=1)]
    return CLMetrics(
        acc=float(r[-1].mean()),
        ilm=ilm,
        bwt=float(np.mean(backward)) if backward else 0.0,
        fwt=float(forward.mean()) if forward.size else 0.0,
        overall=float(r.mean()),
    )
