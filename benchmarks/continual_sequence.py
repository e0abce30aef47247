"""Five-episode continual-learning benchmark on phantoms shaped like BrainCL's sequence S1.

Episodes (no data of an earlier episode is ever used, except by the Joint upper bound):

1. tumour, FLAIR+T1+T1c+T2 (BraTS-like)      2. chronic stroke, T1 only (ATLAS-like)
3. MS, FLAIR+T1+T1c+T2+PD (MSSEG-like)       4. acute stroke, FLAIR+T1+T2+DWI (ISLES-like)
5. WMH, FLAIR+T1 (WMH-like)

Every strategy starts episode 1 from the same first model (trained once, from scratch) except EWC and SI, which run
their own first episode because they measure importance while learning it. After every episode the model is tested
on the held-out test set of all five datasets (each with its own modalities and disease tag): that is the matrix R.
It prints R per strategy, Acc/ILM/BWT/FWT, and writes ``results.json``, heatmaps, a radar chart and ``summary.md``.

The model is reduced in width and the phantoms are on a 2 mm grid so that every strategy fits in about an hour on
two CPU cores.

Usage (from the repository root)::

    python benchmarks/continual_sequence.py --output-dir cl_benchmark
    python benchmarks/continual_sequence.py --strategies naive,ours --epochs 4     # a quick look
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: (dataset label, disease tag, modalities, stroke stage)
SEQUENCE = [
    ("BRATS-like", "tumour", ("FLAIR", "T1", "T1c", "T2"), None),
    ("ATLAS-like", "stroke", ("T1",), "chronic"),
    ("MSSEG-like", "MS", ("FLAIR", "T1", "T1c", "T2", "PD"), None),
    ("ISLES-like", "stroke", ("FLAIR", "T1", "T2", "DWI"), "acute"),
    ("WMH-like", "WMH", ("FLAIR", "T1"), None),
]
SPACING = 2.0
SIZE = (78, 90, 72)
CHANNELS = (8, 16, 16, 32, 64)


def make_datasets(n_train: int, n_test: int, seed: int) -> list[tuple[list, list]]:
    from brainlesioncl.modalities import BRAINCL_CHANNEL_ORDER
    from brainlesioncl.phantoms import PhantomConfig, generate_case
    from brainlesioncl.preprocessing import PreprocessConfig
    from brainlesioncl.training import load_training_case

    preprocessing = PreprocessConfig(spacing=SPACING)
    datasets = []
    for d_index, (label, disease, modalities, stage) in enumerate(SEQUENCE):
        split = []
        for part, count in (("train", n_train), ("test", n_test)):
            cases = []
            for i in range(count):
                case_seed = seed + 1000 * d_index + (500 if part == "test" else 0) + i
                phantom = generate_case(PhantomConfig(disease=disease, modalities=modalities, size=SIZE,
                                                      spacing=SPACING, seed=case_seed, stroke_stage=stage))
                cases.append(load_training_case(f"{label}-{part}-{i}", phantom.images, phantom.label, disease,
                                                BRAINCL_CHANNEL_ORDER, preprocessing=preprocessing))
            split.append(cases)
        datasets.append((split[0], split[1]))
        print(f"  {label}: {n_train} train / {n_test} test phantoms", flush=True)
    return datasets


def test_row(registry, version: str, datasets) -> list[float]:
    from brainlesioncl.training import evaluate

    bundle = registry.get(version)
    network = bundle.build()
    return [float(np.mean(evaluate(network, test, bundle.metadata.disease_slots))) for _, test in datasets]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="cl_benchmark")
    parser.add_argument("--strategies", default="naive,lwf,ewc,si,braincl-dd,ours,joint")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=8, help="steps per epoch")
    parser.add_argument("--crop", type=int, default=48)
    parser.add_argument("--train", type=int, default=6, help="training cases per dataset")
    parser.add_argument("--test", type=int, default=3, help="test cases per dataset")
    parser.add_argument("--seed", type=int, default=9000)
    args = parser.parse_args()

    from brainlesioncl.continual import EpisodeConfig, cl_metrics, train_episode
    from brainlesioncl.continual.report import write_report
    from brainlesioncl.registry import ModelRegistry

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    start = time.perf_counter()
    print("Generating phantom datasets", flush=True)
    datasets = make_datasets(args.train, args.test, args.seed)
    registry = ModelRegistry(Path(tempfile.mkdtemp(prefix="cl-benchmark-", dir=out)), builtin_dirs=[])

    def config(strategy: str) -> EpisodeConfig:
        return EpisodeConfig(strategy=strategy, epochs=args.epochs, steps_per_epoch=args.steps, crop_size=args.crop,
                             validation_fraction=0.0, keep="last", seed=args.seed, scratch_channels=CHANNELS,
                             scratch_spacing=SPACING)

    def episode(strategy: str, index: int, parent: str, name: str, replay=()) -> str:
        t0 = time.perf_counter()
        train, _ = datasets[index]
        result = train_episode(train, SEQUENCE[index][1], parent=parent, registry=registry, config=config(strategy),
                               name=name, device="cpu", replay_databases=replay)
        print(f"  {strategy:>10} episode {index + 1} ({SEQUENCE[index][0]}): {time.perf_counter() - t0:5.0f} s",
              flush=True)
        return result.version

    shared_first = None
    results = {"datasets": [s[0] for s in SEQUENCE], "strategies": {}, "settings": vars(args) | {
        "spacing_mm": SPACING, "size": SIZE, "channels": CHANNELS}}
    for strategy in strategies:
        t_strategy = time.perf_counter()
        if strategy in ("ewc", "si"):
            version = episode(strategy, 0, "scratch", strategy)
        else:
            if shared_first is None:
                shared_first = episode("naive", 0, "scratch", "first")
            version = shared_first
        rows = [test_row(registry, version, datasets)]
        for index in range(1, len(SEQUENCE)):
            replay = [train for train, _ in datasets[:index]] if strategy == "joint" else ()
            version = episode(strategy, index, version, strategy.replace("-", "_"), replay)
            rows.append(test_row(registry, version, datasets))
        metrics = cl_metrics(rows).to_dict(scale=100)
        results["strategies"][strategy] = {"matrix": rows, "metrics": metrics,
                                           "minutes": round((time.perf_counter() - t_strategy) / 60, 1)}
        print(f"\n{strategy}: R (rows: after episode i; columns: tested on dataset j)")
        for row in rows:
            print("   " + "  ".join(f"{100 * v:5.1f}" for v in row))
        print(f"   Acc {metrics['acc']:.2f}  ILM {metrics['ilm']:.2f}  BWT {metrics['bwt']:.2f}  "
              f"FWT {metrics['fwt']:.2f}\n", flush=True)
        (out / "results.json").write_text(json.dumps(results, indent=2))
    write_report(results, out)
    print((out / "summary.md").read_text())
    print(f"Total {(time.perf_counter() - start) / 60:.1f} min; results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
