"""Steps per minute of an ``ours`` episode, before and after a speed-up, at equal results.

The same real-data episode is run twice in this run, on the same cases, seed and budget: once with the baseline
setting (the old-route distillation pass on the whole training crop, ``--option old_route_crop=0``, as every episode
did before) and once with the product's default. For each it prints the optimiser steps per minute of the training
loop (case loading excluded) and the Dice of the resulting version on the fixed check of the real sequence
(``benchmarks/real_split.json``: the evaluation cases of every dataset and held-out phantoms), so a faster step that
learns or keeps less shows at once.

The episode: MS on the split's training case, from the phantom model ``braincl-demo-v2`` (MS is where an episode
moves the most, 0.19 -> 0.31 on the held-out MS case; old routes: tumour, stroke, WMH).

Steps per minute of whole episodes depend on what else the machine runs, so a second table times one optimiser step
of each setting alternately in one process (the before/after speed-up that load cannot bias), "before" also with
PyTorch's dropout mask, which the project's cheaper mask (``brainlesioncl.models.blocks.dropout``) replaced.

Usage (from the repository root; ``../shared/data`` beside the project)::

    python benchmarks/episode_throughput.py --steps 30 --epochs 3 --json docs/episode_profile/throughput.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_sequence import (  # noqa: E402
    DATA,
    EvaluationCache,
    episode_budget_parser,
    find_episode,
    load_split,
    run_episode,
    write_manifest,
)

#: (label, strategy options) of the settings compared; the first is the baseline of the ratios.
SETTINGS: list[tuple[str, dict[str, Any]]] = [
    ("baseline: old-route pass on the whole crop", {"old_route_crop": 0}),
    ("default: old-route pass on a 32^3 sub-crop", {}),
]


def step_comparison(parent: str, repeats: int = 5, crop: int = 64, batch: int = 2) -> dict[str, float]:
    """Median seconds of one whole ``ours`` optimiser step (student forward and backward, the teacher's passes, the
    old-route pass, the distillation and gate terms, Adam) of the shipped architecture before and after, alternated
    in this process so that machine load falls on both alike. "Before" is the old-route pass on the whole crop with
    PyTorch's dropout mask; "after" is the product's default with the project's mask."""
    import time

    import torch

    from brainlesioncl.continual import make_strategy
    from brainlesioncl.continual.strategies.base import EpisodeSetup
    from brainlesioncl.modalities import BRAINCL_DISEASE_SLOTS, disease_context
    from brainlesioncl.models import blocks
    from brainlesioncl.registry import ModelRegistry
    from brainlesioncl.training import TrainConfig, segmentation_loss

    bundle = ModelRegistry().get(parent)
    slots = [d.value for d in BRAINCL_DISEASE_SLOTS]
    teacher, student = bundle.build(), bundle.build().train()
    optimiser = torch.optim.Adam(student.parameters(), lr=5e-4)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 6, crop, crop, crop, generator=generator)
    y = (torch.rand(batch, 1, crop, crop, crop, generator=generator) > 0.9).long()
    context = torch.tensor([[0.0, 1.0, 0.0, 1.0, 1.0, 1.0, *disease_context("MS", slots)]] * batch)
    project_mask = blocks.dropout
    settings = {
        "before: whole-crop old-route pass, PyTorch dropout": (
            {"old_route_crop": 0}, lambda t, p, training: torch.nn.functional.dropout(t, p, training)),
        "after: 32^3 old-route sub-crop, project dropout": ({}, project_mask),
    }
    rules = {}
    for name, (options, _mask) in settings.items():
        rules[name] = make_strategy("ours", alpha=5e-6, **options)
        rules[name].begin(EpisodeSetup(network=student, teacher=teacher, cases=[], disease="MS", disease_slots=slots,
                                       channel_count=6, seen_diseases=["tumour", "stroke", "WMH"],
                                       config=TrainConfig(), device=torch.device("cpu")))
    loss_fn = segmentation_loss()
    seconds: dict[str, list[float]] = {name: [] for name in settings}
    try:
        for _ in range(repeats + 1):
            for name, (_options, mask) in settings.items():
                blocks.dropout = mask  # type: ignore[assignment]
                start = time.perf_counter()
                optimiser.zero_grad(set_to_none=True)
                logits, features = student(x, context, give_feature=True)
                loss = loss_fn(logits.float(), y) + rules[name].loss(student, x, context, logits, features)
                loss.backward()
                optimiser.step()
                seconds[name].append(time.perf_counter() - start)
    finally:
        blocks.dropout = project_mask
    return {name: float(np.median(values[1:])) for name, values in seconds.items()}  # the first run warms up


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     parents=[episode_budget_parser()])
    parser.add_argument("--parent", default="braincl-demo-v2", help="the version both episodes start from")
    parser.add_argument("--dataset", default="MS", help="the dataset of real_split.json the episode learns")
    parser.add_argument("--work", type=Path, help="work folder (default: a new temporary one)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1],
                        help="episode seeds; each setting runs once per seed, the table gives the mean")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.set_defaults(epochs=3, steps=30)
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"{DATA} is not available: nothing to measure.")
        return 0
    split = load_split()
    dataset = split["datasets"][args.dataset]
    work = args.work or Path(tempfile.mkdtemp(prefix="episode-throughput-"))
    work.mkdir(parents=True, exist_ok=True)
    manifest = write_manifest(dataset, work / f"{args.dataset}.json")
    cache = EvaluationCache(work, split, args.phantoms)
    from brainlesioncl.registry import ModelRegistry

    runs = []
    for seed in args.seeds:
        for index, (label, options) in enumerate(SETTINGS):
            name = f"setting{index}" + (f"-seed{seed}" if seed else "")  # seed 0 keeps the first run's names
            budget = argparse.Namespace(**{**vars(args), "seed": seed})
            version = find_episode(work / "registry", name, args.parent, dataset["disease"]) or run_episode(
                work / "registry", manifest, dataset, parent=args.parent, strategy="ours", name=name, args=budget,
                log=work / f"{name}.log", options=options)
            history = ModelRegistry(work / "registry").get(version).metadata.training["history"]
            steps = args.epochs * args.steps
            scores = cache.version(version)
            runs.append({"setting": label, "seed": seed, "options": options, "version": version, "steps": steps,
                         "steps_per_minute": steps / (history[-1]["seconds"] / 60.0),
                         "dice": {k: v["dice"] for k, v in scores.items()}})
    datasets = list(runs[0]["dice"])
    rows = []
    for label, _options in SETTINGS:
        mine = [run for run in runs if run["setting"] == label]
        rows.append({"setting": label, "steps_per_minute": float(np.mean([r["steps_per_minute"] for r in mine])),
                     "dice": {d: float(np.mean([r["dice"][d] for r in mine])) for d in datasets}})
    base = rows[0]
    print(f"\n{args.dataset} episode from {args.parent}, {args.epochs} x {args.steps} steps of {args.batch_size} x "
          f"{args.crop_size}^3 crops, mean of seeds {args.seeds}\n")
    print("| setting | steps/min | ratio | " + " | ".join(datasets) + " |")
    print("|---|---:|---:|" + "---:|" * len(datasets))
    for row in rows:
        print(f"| {row['setting']} | {row['steps_per_minute']:.1f} | "
              f"{row['steps_per_minute'] / base['steps_per_minute']:.2f}x | "
              + " | ".join(f"{row['dice'][d]:.3f}" for d in datasets) + " |")
    print("\nper seed:")
    for run in runs:
        print(f"  seed {run['seed']} {run['setting']}: {run['steps_per_minute']:.1f} steps/min, "
              + ", ".join(f"{d} {run['dice'][d]:.3f}" for d in datasets))
    steps = step_comparison(args.parent)
    baseline = next(iter(steps.values()))
    print("\none ours step of 2 x 64^3 (median of alternated runs in one process)\n\n"
          "| step | seconds | speed-up |\n|---|---:|---:|")
    for name, seconds in steps.items():
        print(f"| {name} | {seconds:.2f} | {baseline / seconds:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()}, "rows": rows,
                                         "runs": runs, "step_seconds": steps}, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
