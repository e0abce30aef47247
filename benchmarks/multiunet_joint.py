"""MultiUnet-shaped study on phantoms: joint vs single-database training, robustness to missing modalities with and
without modality drop, and zero-shot on an unseen database.

Databases (phantoms with the public databases' modality sets): BRATS-like (glioma; FLAIR, T1, T1c, T2), ATLAS-like
(chronic stroke; T1), MSSEG-like (MS; FLAIR, T1, T1c, T2, PD), WMH-like (FLAIR, T1); TBI-like (contusions; FLAIR,
T1, T2, SWI) is never trained on. The network is MultiUnet's residual U-Net (one sigmoid output, nearest upsampling,
channel order PD, FLAIR, SWI, T1, T1c, T2) at reduced width on a 2 mm grid, so everything runs on two CPU cores.

* Table 3 shape: one model per database vs one joint model (a batch from every database at every step).
* Table 2 shape: the joint model trained with and without random modality drop, tested with every single modality of
  each test case removed (mean Dice) and with all modalities.
* Table 4 shape: zero-shot Dice of the joint models on the unseen TBI-like database.

Usage (from the repository root)::

    python benchmarks/multiunet_joint.py --epochs 12
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

DATABASES = {
    "BRATS": ("tumour", ("FLAIR", "T1", "T1c", "T2"), None),
    "ATLAS": ("stroke", ("T1",), "chronic"),
    "MSSEG": ("MS", ("FLAIR", "T1", "T1c", "T2", "PD"), None),
    "WMH": ("WMH", ("FLAIR", "T1"), None),
}
UNSEEN = ("TBI", ("FLAIR", "T1", "T2", "SWI"))
SPACING, SIZE, WIDTH = 2.0, (78, 90, 72), (8, 16, 16, 32, 64)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--train", type=int, default=6)
    parser.add_argument("--test", type=int, default=3)
    parser.add_argument("--seed", type=int, default=4400)
    parser.add_argument("--output", default="multiunet_benchmark.json")
    args = parser.parse_args()

    import torch

    from brainlesioncl.modalities import MULTIUNET_CHANNEL_ORDER
    from brainlesioncl.models import ResidualUNet, ResidualUNetConfig
    from brainlesioncl.phantoms import PhantomConfig, generate_case
    from brainlesioncl.preprocessing import PreprocessConfig
    from brainlesioncl.training import JointBatchPlan, TrainConfig, evaluate, load_training_case, train

    order = [m.value for m in MULTIUNET_CHANNEL_ORDER]
    preprocessing = PreprocessConfig(spacing=SPACING)

    def make(name, disease, modalities, stage, count, offset):
        cases = []
        for i in range(count):
            phantom = generate_case(PhantomConfig(disease=disease, modalities=modalities, size=SIZE, spacing=SPACING,
                                                  seed=args.seed + offset + i, stroke_stage=stage))
            cases.append(load_training_case(f"{name}{offset + i}", phantom.images, phantom.label,
                                            disease if disease != "TBI" else "unknown", order,
                                            preprocessing=preprocessing))
        return cases

    start = time.perf_counter()
    data = {}
    for d_index, (name, (disease, modalities, stage)) in enumerate(DATABASES.items()):
        data[name] = (make(name, disease, modalities, stage, args.train, 1000 * d_index),
                      make(name, disease, modalities, stage, args.test, 1000 * d_index + 500))
    unseen = make(UNSEEN[0], "TBI", UNSEEN[1], None, args.test, 9000)
    print(f"phantoms ready in {time.perf_counter() - start:.0f} s", flush=True)

    def fit(databases, drop: bool) -> torch.nn.Module:
        torch.manual_seed(args.seed)
        network = ResidualUNet(ResidualUNetConfig(in_channels=6, channels=WIDTH))
        cases = [c for d in databases for c in d]
        config = TrainConfig(epochs=args.epochs, steps_per_epoch=args.steps, crop_size=48, batch_size=2,
                             modality_drop=drop, activation="sigmoid", seed=args.seed, keep="last")
        # Joint: every step takes a batch of 2 from *each* database (as MultiUnet), so each database gets as many
        # crops as in its single-database run and the joint model sees four times as many in total.
        plan = JointBatchPlan(databases, 2) if len(databases) > 1 else None
        train(network, cases, config, [], device="cpu", plan=plan)
        return network

    def dice(network, cases) -> float:
        return float(np.mean(evaluate(network, cases, [], activation="sigmoid")))

    def without_each_modality(network, cases) -> float:
        scores = []
        for case in cases:
            for channel, present in enumerate(case.present):
                if present and sum(case.present) > 1:
                    image = case.image.copy()
                    image[channel] = 0
                    dropped = type(case)(case.name, image, case.label,
                                         [p and i != channel for i, p in enumerate(case.present)], case.disease)
                    scores.append(dice(network, [dropped]))
        return float(np.mean(scores)) if scores else float("nan")

    results: dict = {"table3": {}, "table2": {}, "table4": {}}
    single = {}
    for name, (train_cases, _) in data.items():
        t0 = time.perf_counter()
        single[name] = fit([train_cases], drop=True)
        print(f"single {name}: {time.perf_counter() - t0:.0f} s", flush=True)
    joint = {}
    for drop in (True, False):
        t0 = time.perf_counter()
        joint[drop] = fit([train for train, _ in data.values()], drop=drop)
        print(f"joint (drop={drop}): {time.perf_counter() - t0:.0f} s", flush=True)
    for name, (_, test) in data.items():
        results["table3"][name] = {"single": dice(single[name], test), "joint": dice(joint[True], test)}
        results["table2"][name] = {
            f"{'drop' if drop else 'no drop'}": {"all": dice(joint[drop], test),
                                                 "one removed": without_each_modality(joint[drop], test)}
            for drop in (True, False)}
    results["table4"] = {"joint drop": dice(joint[True], unseen), "joint no drop": dice(joint[False], unseen),
                         **{f"single {n}": dice(m, unseen) for n, m in single.items()}}

    print("\nTable 3 shape: Dice on each database's test set")
    print("| database | single-database model | joint model |\n|---|---:|---:|")
    for name, row in results["table3"].items():
        print(f"| {name} | {row['single']:.3f} | {row['joint']:.3f} |")
    print("\nTable 2 shape: joint model, all modalities vs one modality removed (mean over removals)")
    print("| database | drop: all | drop: one removed | no drop: all | no drop: one removed |")
    print("|---|---:|---:|---:|---:|")
    for name, row in results["table2"].items():
        print(f"| {name} | {row['drop']['all']:.3f} | {row['drop']['one removed']:.3f} | "
              f"{row['no drop']['all']:.3f} | {row['no drop']['one removed']:.3f} |")
    print("\nTable 4 shape: zero-shot Dice on the unseen TBI-like database (FLAIR, T1, T2, SWI)")
    for name, value in results["table4"].items():
        print(f"  {name}: {value:.3f}")
    results["minutes"] = round((time.perf_counter() - start) / 60, 1)
    Path(args.output).write_text(json.dumps(results, indent=2))
    print(f"\n{results['minutes']} min; {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
