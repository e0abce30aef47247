"""Which inputs matter: a model's Dice with every non-empty subset of the modalities each case has.

This is the robustness table of MultiUnet and the modality study of the metastasis work, for any model and any
labelled cases: for every case and subset, the absent channels are zeroed and the gate context says so (exactly what
inference does when a sequence was not acquired). Reported per subset: mean Dice over the cases that have all of
the subset's modalities, the drop from the case's full set, and which subset is best. In the Slicer module the same
runs on the loaded case, to show which sequences matter for this patient.
"""

from __future__ import annotations

import csv
import itertools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .inference.predictor import InferenceConfig, Predictor, build_context
from .training.data import TrainingCase
from .training.trainer import dice_score

__all__ = ["SubsetScore", "modality_study", "plot_study", "write_study"]


@dataclass(frozen=True)
class SubsetScore:
    modalities: tuple[str, ...]
    dice: float  # mean over the cases that have these modalities
    drop_from_all: float  # mean over those cases of (Dice with all of the case's modalities - Dice with this subset)
    cases: int


def modality_study(network, cases: Sequence[TrainingCase], channels: Sequence[str], disease_slots: Sequence[str], *,
                   device: str = "cpu", progress: Callable[[float, str], None] | None = None) -> list[SubsetScore]:
    """Scores of every non-empty modality subset, best first (ties: fewer modalities first)."""
    predictor = Predictor(network, device=device, config=InferenceConfig(precision="fp32"))
    per_subset: dict[tuple[str, ...], list[tuple[float, float]]] = {}
    jobs = [(case, subset) for case in cases for subset in _subsets(case, channels)]
    full_scores: dict[int, float] = {}
    for done, (case, subset) in enumerate(jobs, 1):
        present = [c in subset for c in channels]
        image = case.image * np.asarray(present, np.float32)[:, None, None, None]
        probability = predictor.predict(image, build_context(present, case.disease, disease_slots))
        score = dice_score(probability >= 0.5, case.label)
        if len(subset) == case.modalities_present:
            full_scores[id(case)] = score
        per_subset.setdefault(subset, []).append((score, id(case)))
        if progress is not None:
            progress(done / len(jobs), f"{case.name}: {'+'.join(subset)}")
    results = [
        SubsetScore(subset, float(np.mean([s for s, _ in rows])),
                    float(np.mean([full_scores[c] - s for s, c in rows])), len(rows))
        for subset, rows in per_subset.items()
    ]
    return sorted(results, key=lambda r: (-r.dice, len(r.modalities), r.modalities))


def _subsets(case: TrainingCase, channels: Sequence[str]) -> list[tuple[str, ...]]:
    have = [c for c, p in zip(channels, case.present, strict=True) if p]
    return [tuple(s) for k in range(1, len(have) + 1) for s in itertools.combinations(have, k)]


def write_study(results: Sequence[SubsetScore], output_dir: str | os.PathLike) -> dict[str, Path]:
    """``modality_study.csv``, ``modality_study.md`` and ``modality_study.png`` in ``output_dir``."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / "modality_study.csv", out / "modality_study.md"
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["modalities", "dice", "drop_from_all", "cases"])
        for r in results:
            writer.writerow(["+".join(r.modalities), f"{r.dice:.4f}", f"{r.drop_from_all:.4f}", r.cases])
    lines = ["| modalities | Dice | drop from all | cases |", "|---|---:|---:|---:|"]
    lines += [f"| {'+'.join(r.modalities)} | {r.dice:.3f} | {r.drop_from_all:+.3f} | {r.cases} |" for r in results]
    if results:
        lines.append(f"\nBest subset: **{'+'.join(results[0].modalities)}** (Dice {results[0].dice:.3f}).")
    md_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"csv": csv_path, "markdown": md_path, "plot": plot_study(results, out / "modality_study.png")}


def plot_study(results: Sequence[SubsetScore], path: str | os.PathLike) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ordered = sorted(results, key=lambda r: (len(r.modalities), -r.dice))
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(ordered) + 2), 4))
    colours = plt.get_cmap("viridis")(np.linspace(0.15, 0.85, max(len(r.modalities) for r in ordered) + 1))
    ax.bar(range(len(ordered)), [100 * r.dice for r in ordered], color=[colours[len(r.modalities)] for r in ordered])
    ax.set_xticks(range(len(ordered)), ["+".join(r.modalities) for r in ordered], rotation=75, fontsize=7)
    ax.set_ylabel("Dice (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Dice by available modalities (colour: number of modalities)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
