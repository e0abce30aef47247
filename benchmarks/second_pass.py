"""Is plasticity what holds the weak real datasets back? A second ``ours`` episode from the shipped default on one
dataset's real training cases, with the old-route distillation weight ``gamma`` at its default (10) and at 1.

The default's glioma (0.674) and MS (0.307) are short of their targets. If the old-route distillation kept the model
from learning, a smaller ``gamma`` would raise the dataset it trains on; if data is the limit (5 glioma and 1 MS
training case), it would not, and would cost the other datasets more. Each version is scored exactly as
``benchmarks/real_sequence.py`` scores its episodes (every evaluation case of ``benchmarks/real_split.json`` and the
held-out phantoms); episodes resume and evaluations are cached, as there.

Usage (from the repository root; ``../shared/data`` beside the project)::

    python benchmarks/second_pass.py                                  # glioma and MS, gamma 10 and 1
    python benchmarks/second_pass.py --datasets glioma --gammas 10 3 1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from real_sequence import (
    DATA,
    ROOT,
    EvaluationCache,
    episode_budget_parser,
    find_episode,
    load_split,
    run_episode,
    write_manifest,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     parents=[episode_budget_parser()])
    parser.add_argument("--work", type=Path, default=ROOT / "work" / "plasticity")
    parser.add_argument("--parent", default="braincl-demo-v4")
    parser.add_argument("--datasets", nargs="+", default=["glioma", "MS"])
    parser.add_argument("--gammas", nargs="+", type=float, default=[10.0, 1.0])
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "second_pass" / "results.json")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"{DATA} is not available; the second pass trains on the real cases of ../shared/data.")
        return 0

    from brainlesioncl.registry import ModelRegistry

    split = load_split()
    registry_root = args.work / "registry"
    evaluations = EvaluationCache(args.work, split, args.phantoms)
    rows = [{"version": args.parent, "dataset": None, "gamma": None, "minutes": None,
             "dice": evaluations.version(args.parent)}]
    for dataset_name in args.datasets:
        dataset = split["datasets"][dataset_name]
        for gamma in args.gammas:
            name = f"plast-{dataset_name.lower()}-g{gamma:g}"
            version = find_episode(registry_root, name, args.parent, dataset["disease"])
            if version is None:
                manifest = write_manifest(dataset, args.work / "manifests" / f"{dataset_name}.json")
                version = run_episode(registry_root, manifest, dataset, parent=args.parent, strategy="ours", name=name,
                                      args=args, log=args.work / f"{name}.log", options={"gamma": gamma})
            minutes = ModelRegistry(registry_root).get(version).metadata.training.get("minutes")
            rows.append({"version": version, "dataset": dataset_name, "gamma": gamma, "minutes": minutes,
                         "dice": evaluations.version(version)})

    columns = list(rows[0]["dice"])
    print("| version | second pass on | gamma | " + " | ".join(columns) + " | minutes |")
    print("|---|---|---:|" + "---:|" * len(columns) + "---:|")
    for row in rows:
        print(f"| {row['version']} | {row['dataset'] or '-'} | {row['gamma'] if row['gamma'] is not None else '-'} | "
              + " | ".join(f"{100 * row['dice'][c]['dice']:.1f}" for c in columns) + f" | {row['minutes'] or '-'} |")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"parent": args.parent, "budget": {k: getattr(args, k) for k in (
        "epochs", "steps", "crop_size", "batch_size", "learning_rate", "seed")}, "rows": rows}, indent=1) + "\n",
        encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
