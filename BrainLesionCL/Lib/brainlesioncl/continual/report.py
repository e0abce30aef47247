"""Plots of a continual-learning run: the R matrix as a heatmap per strategy, and a radar of Acc/ILM/BWT/FWT.

Input is the JSON the benchmark writes (and anyone can write by hand)::

    {"datasets": ["tumour", "stroke-T1", ...],
     "strategies": {"ours": {"matrix": [[...], ...]}, "naive": {"matrix": ...}}}

Values are Dice in [0, 1]; plots show percentages, as the BrainCL figures do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import InvalidImageError
from ..evaluation.continual import cl_metrics

__all__ = ["load_results", "plot_heatmap", "plot_radar", "write_report"]


def load_results(path: str | os.PathLike) -> dict:
    """Read and check a results JSON (square matrices of the dataset count)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise InvalidImageError(f"{path} is not a readable results JSON: {err}") from err
    datasets = data.get("datasets")
    strategies = data.get("strategies")
    if not isinstance(datasets, list) or not isinstance(strategies, dict) or not strategies:
        raise InvalidImageError(f'{path}: expected {{"datasets": [...], "strategies": {{name: {{"matrix": ...}}}}}}.')
    for name, entry in strategies.items():
        matrix = np.asarray(entry.get("matrix"), dtype=float)
        if matrix.shape != (len(datasets), len(datasets)):
            raise InvalidImageError(
                f"{path}: strategy {name!r} has a {matrix.shape} matrix; expected {len(datasets)}x{len(datasets)}."
            )
    return data


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_heatmap(matrix: np.ndarray, datasets: Sequence[str], title: str, path: str | os.PathLike) -> Path:
    """Rows: trained up to episode i; columns: tested on dataset j; the CL metrics under the title."""
    plt = _pyplot()
    r = np.asarray(matrix, dtype=float) * 100
    metrics = cl_metrics(r / 100).to_dict(scale=100)
    fig, ax = plt.subplots(figsize=(1.3 * len(datasets) + 2.5, 1.1 * len(datasets) + 1.8))
    image = ax.imshow(r, cmap="viridis", vmin=0, vmax=100)
    ax.set_xticks(range(len(datasets)), datasets, rotation=30, ha="right")
    ax.set_yticks(range(len(datasets)), [f"after {d}" for d in datasets])
    for i in range(r.shape[0]):
        for j in range(r.shape[1]):
            ax.text(j, i, f"{r[i, j]:.1f}", ha="center", va="center", color="white" if r[i, j] < 60 else "black")
    ax.set_xlabel("tested on")
    ax.set_title(f"{title}\nAcc {metrics['acc']:.1f}  ILM {metrics['ilm']:.1f}  BWT {metrics['bwt']:.1f}  "
                 f"FWT {metrics['fwt']:.1f}")
    fig.colorbar(image, ax=ax, label="Dice (%)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_radar(summary: Mapping[str, Mapping[str, float]], path: str | os.PathLike) -> Path:
    """One polygon per strategy on the Acc, ILM, BWT, FWT axes (percent; BWT is negative when forgetting).

    Each axis is scaled to the range of the values on it, so strategies are comparable per axis, as in the BrainCL
    radar chart.
    """
    plt = _pyplot()
    axes = ["acc", "ilm", "bwt", "fwt"]
    labels = ["Acc.", "ILM", "BWT", "FWT"]
    values = np.array([[summary[s][a] for a in axes] for s in summary], dtype=float)
    low, high = values.min(axis=0), values.max(axis=0)
    span = np.where(high - low > 1e-9, high - low, 1.0)
    scaled = 0.2 + 0.8 * (values - low) / span
    angles = np.linspace(0, 2 * np.pi, len(axes), endpoint=False)
    fig = plt.figure(figsize=(6, 6))
    ax = fig.add_subplot(polar=True)
    for name, row, raw in zip(summary, scaled, values, strict=True):
        closed = np.append(row, row[0])
        ax.plot(np.append(angles, angles[0]), closed, label=f"{name} (Acc {raw[0]:.1f}, BWT {raw[2]:.1f})")
        ax.fill(np.append(angles, angles[0]), closed, alpha=0.08)
    ax.set_xticks(angles, [f"{lab}\n[{lo:.0f}, {hi:.0f}]" for lab, lo, hi in zip(labels, low, high, strict=True)])
    ax.set_yticklabels([])
    ax.set_ylim(0, 1.05)
    ax.legend(loc="upper right", bbox_to_anchor=(1.35, 1.12), fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def write_report(results: Mapping, output_dir: str | os.PathLike) -> dict[str, Path]:
    """Heatmap per strategy, the radar chart, and ``summary.md`` (metrics table) in ``output_dir``."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    datasets = list(results["datasets"])
    summary: dict[str, dict[str, float]] = {}
    files: dict[str, Path] = {}
    for name, entry in results["strategies"].items():
        matrix = np.asarray(entry["matrix"], dtype=float)
        summary[name] = cl_metrics(matrix).to_dict(scale=100)
        files[f"heatmap_{name}"] = plot_heatmap(matrix, datasets, name, out / f"heatmap_{name}.png")
    files["radar"] = plot_radar(summary, out / "radar.png")
    lines = ["| strategy | Acc | ILM | BWT | FWT | overall |", "|---|---:|---:|---:|---:|---:|"]
    for name, m in summary.items():
        lines.append(f"| {name} | {m['acc']:.2f} | {m['ilm']:.2f} | {m['bwt']:.2f} | {m['fwt']:.2f} | "
                     f"{m['overall']:.2f} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    files["summary"] = out / "summary.md"
    return files
