"""Where does an episode's time go? One short ``ours`` episode on real annotated cases, under cProfile, broken down
into the parts of a training step (crop sampling, the student's forward and backward, the teacher's forwards, the
old-route distillation batch, the optimiser) and the one-off parts (loading and preparing the cases, validation,
checkpoints, writing the version).

The baseline for speeding training up (issue 30: at least 2x more steps per minute at equal results): run it before
and after a change, on the same cases and steps, on a quiet machine.

Usage (from the repository root)::

    python benchmarks/episode_profile.py --cases ../shared/data/ms_ljubljana3d_open_ms_data --disease MS --steps 6
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path

#: (part of the work, function names whose cumulative time it is), read from the profile.
PARTS = [
    ("load and prepare the cases", ("load_episode_cases",)),
    ("crop sampling (make_batch)", ("make_batch",)),
    ("network forwards (student and teacher)", ("forward",)),
    ("teacher forwards (no grad)", ("teacher_outputs",)),
    ("old-route distillation batch (inputs)", ("_old_route_batch",)),
    ("strategy loss terms (all)", ("loss",)),
    ("backward", ("backward",)),
    ("optimiser step", ("step",)),
    ("validation", ("evaluate", "validation_metrics")),
    ("epoch checkpoint", ("_save_checkpoint",)),
    ("writing the version", ("write_episode_version",)),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", required=True, help="a folder or manifest of annotated cases")
    parser.add_argument("--disease", required=True, help="the cases' disease")
    parser.add_argument("--parent", default="braincl-demo-v4", help="the version the episode starts from")
    parser.add_argument("--strategy", default="ours", help="continual-learning strategy")
    parser.add_argument("--steps", type=int, default=6, help="optimiser steps (one epoch)")
    parser.add_argument("--crop-size", type=int, default=64, help="crop edge in voxels")
    parser.add_argument("--batch-size", type=int, default=2, help="crops per step")
    parser.add_argument("--json", help="also write the breakdown here")
    args = parser.parse_args()
    if not Path(args.cases).exists():
        print(f"{args.cases} is not available.")
        return 0
    import torch

    from brainlesioncl.continual import EpisodeConfig, train_episode
    from brainlesioncl.registry import ModelRegistry

    registry = ModelRegistry(Path(tempfile.mkdtemp(prefix="episode-profile-")))  # the shipped parents, a fresh root
    config = EpisodeConfig(strategy=args.strategy, epochs=1, steps_per_epoch=args.steps, crop_size=args.crop_size,
                           batch_size=args.batch_size)
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    train_episode(args.cases, args.disease, parent=args.parent, registry=registry, config=config, device="cpu")
    profile.disable()
    total = time.perf_counter() - start
    stats = pstats.Stats(profile)
    cumulative: dict[str, float] = {}
    for (_file, _line, name), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        cumulative[name] = max(cumulative.get(name, 0.0), ct)
    rows = [(part, max((cumulative.get(n, 0.0) for n in names), default=0.0)) for part, names in PARTS]
    print(f"{args.strategy} episode, {args.steps} steps of {args.batch_size} x {args.crop_size}^3 crops, "
          f"{torch.get_num_threads()} threads: {total:.1f} s in all\n")
    print("| part | seconds | per step |")
    print("|---|---:|---:|")
    for part, seconds in rows:
        print(f"| {part} | {seconds:.1f} | {seconds / args.steps:.2f} |")
    print("\n(cumulative times overlap: a loss term includes the forwards it runs; 'network forwards' is the largest "
          "cumulative forward, i.e. the outermost one)")
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": vars(args), "seconds": total,
                                               "parts": dict(rows)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
