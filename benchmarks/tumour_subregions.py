"""Tumour sub-regions on real glioma: the sub-region network cross-validated, then trained on every annotated case.

The cases: the glioma cases of ``benchmarks/real_crossval.json`` whose source has sub-region labels and T1c
(``subregions.labels`` there names each source's annotation protocol: BraTS 2013 or BraTS 2018). The folds are the
cross-validation's own, so a fold's sub-region network and its lesion model never saw the same held-out patient.

For each fold the network is trained on the fold's training cases and scored on its held-out ones in two ways:

* **given the true whole tumour**: what the sub-region network alone gets right (ET and TC Dice on the working grid);
* **end to end** (with ``--crossval-work``, once ``benchmarks/real_crossval.py`` has trained the folds): Segment with
  the fold's lesion model plus this network, scored on the label's grid with the BraTS lesion-wise rules
  (:func:`brainlesioncl.evaluation.lesions.lesion_wise_metrics`, GLI variant) and whole-volume Dice per region.

Then ``final``: the network trained on every case, saved for ``real_crossval.py --ship`` to add to the final model.
Everything resumes (epoch checkpoints; finished networks are kept in ``<work>``).

Usage (from the repository root; ``../shared/data`` beside the project)::

    python benchmarks/tumour_subregions.py --work /work/runs/subregions --json docs/tumour_subregions/results.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_crossval import CONFIG, fold_split  # noqa: E402
from real_sequence import DATA, case_inputs  # noqa: E402

REGIONS = {"ET": (3,), "TC": (1, 3), "WT": (1, 2, 3)}


def subregion_cases(dataset: dict[str, Any], cases: list[str], labels: dict[str, str]) -> list[str]:
    """The cases whose source has sub-region labels (and T1c among its sequences)."""
    return [case for case in cases if case.split("/", 1)[0] in labels
            and "T1c" in dataset["sources"][case.split("/", 1)[0]]]


def load(dataset: dict[str, Any], case: str, labels: dict[str, str], channels, preprocessing):
    from brainlesioncl.training.subregions import load_subregion_case

    images, label = case_inputs(dataset, case)
    return load_subregion_case(case, images, label, labels[case.split("/", 1)[0]], channels,
                               preprocessing=preprocessing)


def load_network(path: Path):
    """A sub-region network this script saved (the default architecture), in eval mode."""
    from safetensors.torch import load_file

    from brainlesioncl.subregions import new_network

    network = new_network()
    network.load_state_dict(load_file(str(path)))
    return network.eval()


def train_or_load(work: Path, name: str, cases: list, channels, args: argparse.Namespace):
    """The network of run ``name``: read back when it was trained before, else trained (resuming) and saved."""
    import torch
    from safetensors.torch import save_file

    from brainlesioncl.training import TrainConfig
    from brainlesioncl.training.subregions import train_subregions

    done = work / f"{name}.safetensors"
    if done.is_file():
        return load_network(done)
    config = TrainConfig(epochs=args.epochs, steps_per_epoch=args.steps, crop_size=args.crop_size,
                         learning_rate=args.learning_rate, schedule="cosine", seed=args.seed, keep="last")
    torch.manual_seed(args.seed)
    print(f"  training {name} on {len(cases)} cases", flush=True)
    network, result = train_subregions(
        cases, channels, config, device="cpu", checkpoint_path=work / f"{name}.checkpoint.pt",
        progress=lambda r: print(f"    epoch {r['epoch']}/{r['epochs']} loss {r['loss']:.4f}", flush=True))
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(done))
    (work / f"{name}.checkpoint.pt").unlink(missing_ok=True)
    (work / f"{name}.json").write_text(json.dumps({"cases": len(cases), "minutes": round(result.seconds / 60, 1),
                                                   "history": result.history}, indent=1), encoding="utf-8")
    return network


def score_given_whole_tumour(network, cases: list) -> dict[str, dict[str, float]]:
    """Per case, ET and TC Dice on the working grid when the whole tumour is the true one."""
    import torch

    from brainlesioncl.evaluation.segmentation import dice
    from brainlesioncl.inference.predictor import Predictor

    predictor = Predictor(network, activation="softmax", lesion_channel=None, device="cpu")
    out = {}
    for case in cases:
        probabilities = predictor.predict(case.image, torch.zeros(1, case.image.shape[0]))
        classes = np.where(case.label > 0, np.argmax(probabilities[1:], axis=0) + 1, 0)
        out[case.name] = {region: dice(np.isin(classes, values), np.isin(case.label, values))
                          for region, values in REGIONS.items() if region != "WT"}
    return out


def score_end_to_end(registry_root: Path, lesion_version: str, network, dataset: dict[str, Any], cases: list[str],
                     labels: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per case, Segment with the fold's lesion model and this network, on the label's grid: whole-volume Dice and
    BraTS lesion-wise (GLI) Dice per region."""
    import SimpleITK as sitk
    from evaluate_real import reference_on_label_grid

    from brainlesioncl.evaluation.lesions import lesion_wise_metrics
    from brainlesioncl.evaluation.segmentation import dice
    from brainlesioncl.inference import Segmenter
    from brainlesioncl.io import to_xyz
    from brainlesioncl.registry import ModelRegistry
    from brainlesioncl.subregions import LABEL_CONVENTIONS

    segmenter = Segmenter.from_bundle(ModelRegistry(registry_root).get(lesion_version), subregions=network,
                                      device="cpu")
    out = {}
    for case in cases:
        images, label_path = case_inputs(dataset, case)
        label = sitk.ReadImage(str(label_path))
        table = LABEL_CONVENTIONS[labels[case.split("/", 1)[0]]]
        truth = np.vectorize(lambda v, t=table: t.get(int(v), 0))(to_xyz(label))
        result = segmenter.segment(images, "tumour", reference=reference_on_label_grid(images, label))
        predicted = to_xyz(result.label)
        lesion_wise = lesion_wise_metrics(predicted, truth, label.GetSpacing(), variant="GLI")
        out[case] = {region: {"dice": dice(np.isin(predicted, values), np.isin(truth, values)),
                              "lesion_wise_dice": lesion_wise[region].lesion_dice}
                     for region, values in REGIONS.items()}
    return out


def last_version(registry_root: Path, prefix: str) -> str | None:
    """The newest version named ``<prefix>-v<N>`` (a fold's last episode) in a registry, or None."""
    from brainlesioncl.registry import ModelRegistry

    found = [info.version for info in ModelRegistry(registry_root).list() if info.version.startswith(f"{prefix}-v")]
    return max(found, key=lambda v: int(v.rsplit("-v", 1)[1])) if found else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="work folder (networks, checkpoints)")
    parser.add_argument("--crossval-work", type=Path, help="real_crossval.py's work folder: also score end to end")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--crop-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"{DATA} is not available; the sub-region benchmark needs ../shared/data beside the project.")
        return 0
    from brainlesioncl.registry import ModelRegistry

    config = json.loads(CONFIG.read_text(encoding="utf-8"))
    labels = config["subregions"]["labels"]
    base = ModelRegistry().get(config["base_model"]).metadata
    channels, preprocessing = base.channel_order, base.preprocess_config
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"settings": {k: str(v) for k, v in vars(args).items()}, "folds": []}
    for fold in range(config["folds"]):
        dataset = fold_split(config, fold)["datasets"]["glioma"]
        train = subregion_cases(dataset, dataset["train"], labels)
        held_out = subregion_cases(dataset, dataset.get("evaluate", []), labels)
        print(f"fold {fold}: {len(train)} training, {len(held_out)} held-out cases", flush=True)
        network = train_or_load(args.work, f"fold{fold}", [load(dataset, c, labels, channels, preprocessing)
                                                          for c in train], channels, args)
        entry: dict[str, Any] = {"fold": fold, "train": train, "held_out": held_out,
                                 "given_whole_tumour": score_given_whole_tumour(
                                     network, [load(dataset, c, labels, channels, preprocessing) for c in held_out])}
        lesion_version = last_version(args.crossval_work / "registry", f"fold{fold}") if args.crossval_work else None
        if lesion_version is not None:
            entry["end_to_end"] = {"lesion_model": lesion_version, "cases": score_end_to_end(
                args.crossval_work / "registry", lesion_version, network, dataset, held_out, labels)}
        results["folds"].append(entry)
    everything = fold_split(config, None)["datasets"]["glioma"]
    final_cases = subregion_cases(everything, everything["train"], labels)
    print(f"final: {len(final_cases)} cases", flush=True)
    train_or_load(args.work, "final", [load(everything, c, labels, channels, preprocessing) for c in final_cases],
                  channels, args)
    results["final"] = {"cases": len(final_cases), "network": str(args.work / "final.safetensors")}
    summary = {}
    for key in ("given_whole_tumour", "end_to_end"):
        per_case = [scores for fold in results["folds"] for scores in
                    (fold.get(key, {}).get("cases", {}) if key == "end_to_end" else fold.get(key, {})).values()]
        if per_case:
            regions = [r for r in REGIONS if r in per_case[0]]
            summary[key] = {r: float(np.mean([s[r]["dice"] if isinstance(s[r], dict) else s[r] for s in per_case]))
                            for r in regions}
            summary[key]["cases"] = len(per_case)
    results["cross_validated"] = summary
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
