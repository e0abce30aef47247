"""Which inputs matter: a model's Dice with every non-empty subset of the modalities each case has.

This is the robustness table of MultiUnet and the modality study of the metastasis work, for any model and any
labelled cases: for every case and subset, the absent channels are zeroed and the gate context says so (exactly what
inference does when a sequence was not acquired). Reported per subset: mean Dice over the cases that have all of
the subset's modalities, the drop from the case's full set, and which subset is best. In the Slicer module the same
runs on the loaded case, to show which sequences matter for this patient.

Without an annotation (the usual clinical case) the study scores ``against="full"``: each subset's segmentation is
compared with the segmentation from all of the case's inputs, so the Dice says how much the result depends on each
sequence. :func:`input_importance` turns either kind of study into one number per input: how much the Dice falls when
only that input is missing.
"""

from __future__ import annotations

import csv
import itertools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import CancelledError, SettingsError
from .inference.predictor import InferenceConfig, Predictor, build_context
from .modalities import map_channels, resolve_disease
from .preprocessing import PreprocessConfig, prepare_case
from .training.data import TrainingCase
from .training.trainer import dice_score

__all__ = ["SubsetScore", "input_importance", "modality_study", "plot_study", "unannotated_case", "unannotated_cases",
           "write_study"]


@dataclass(frozen=True)
class SubsetScore:
    modalities: tuple[str, ...]
    dice: float  # mean over the cases that have these modalities
    drop_from_all: float  # mean over those cases of (Dice with all of the case's modalities - Dice with this subset)
    cases: int


def modality_study(network, cases: Sequence[TrainingCase], channels: Sequence[str], disease_slots: Sequence[str], *,
                   device: str = "cpu", against: str = "label", output: Mapping | None = None,
                   progress: Callable[[float, str], None] | None = None,
                   cancel: Callable[[], bool] | None = None) -> list[SubsetScore]:
    """Scores of every non-empty modality subset, best first (ties: fewer modalities first).

    Args:
        against: ``"label"`` (the cases' annotations) or ``"full"`` (each case's own all-inputs segmentation; the
            cases' labels are not used, so unannotated cases can be studied).
        output: the model's ``metadata.output`` (activation and lesion channel); default: the MoE U-Net's softmax.
    """
    if against not in ("label", "full"):
        raise SettingsError(f"against must be 'label' or 'full', not {against!r}")
    output = output or {}
    predictor = Predictor(network, device=device, config=InferenceConfig(precision="fp32"),
                          activation=output.get("activation", "softmax"),
                          lesion_channel=int(output.get("lesion_channel", 1)))
    per_subset: dict[tuple[str, ...], list[tuple[float, int]]] = {}  # subset -> (Dice, case id)
    # the full subset first, so that it can be the reference of the others
    jobs = [(case, subset) for case in cases for subset in _subsets(case, channels)[::-1]]
    full_scores: dict[int, float] = {}
    references: dict[int, np.ndarray] = {}
    for done, (case, subset) in enumerate(jobs, 1):
        if cancel is not None and cancel():
            raise CancelledError("Modality study cancelled.")
        present = [c in subset for c in channels]
        image = case.image * np.asarray(present, np.float32)[:, None, None, None]
        mask = predictor.predict(image, build_context(present, case.disease, disease_slots)) >= 0.5
        if against == "full" and len(subset) == case.modalities_present:
            references[id(case)] = mask
        score = dice_score(mask, references[id(case)] if against == "full" else case.label)
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


def unannotated_case(name: str, images: Mapping, channel_order: Sequence[str], disease: str,
                     preprocessing: PreprocessConfig | None = None) -> TrainingCase:
    """A case without annotation (images or paths by modality name), preprocessed as the model preprocesses, for a
    study ``against="full"``; its label is empty and unused."""
    from .inference.segmenter import read_inputs

    mapped = map_channels(images, channel_order)
    prepared = prepare_case(read_inputs(mapped), channel_order, config=preprocessing)
    return TrainingCase(name, prepared.array, np.zeros(prepared.array.shape[1:], np.uint8), list(prepared.present),
                        resolve_disease(disease))


def unannotated_cases(source: str | os.PathLike, disease: str, channel_order: Sequence[str],
                      preprocessing: PreprocessConfig | None = None) -> list[TrainingCase]:
    """Every case of a folder or CSV manifest, label files or not (see :func:`unannotated_case`)."""
    from .cases import find_cases

    return [unannotated_case(spec.name, spec.images, channel_order, disease, preprocessing)
            for spec in find_cases(source)]


def input_importance(results: Sequence[SubsetScore]) -> list[tuple[str, float]]:
    """Per input, the Dice drop when only that input is missing (largest first): which sequences matter.

    Uses the subsets with exactly one modality fewer than the largest subset studied (one case, or cases sharing a
    modality set). Empty when the largest subset has a single modality.
    """
    if not results:
        return []
    full = max(results, key=lambda r: len(r.modalities)).modalities
    scores = {r.modalities: r for r in results}
    rows = []
    for modality in full:
        rest = tuple(m for m in full if m != modality)
        if rest in scores:
            rows.append((modality, scores[rest].drop_from_all))
    return sorted(rows, key=lambda row: -row[1])


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
