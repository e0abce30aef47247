"""An honest estimate, then the model trained on everything: k-fold cross-validation over the real labelled cases.

The recipe behind the default model from ``braincl-demo-v5`` on. ``benchmarks/real_crossval.json`` names the datasets
(glioma, WMH, MS, stroke), their sources, the order of the episodes and each dataset's budget, and fixes the folds by
one rule: the cases of a dataset, sources in order and sorted within each, are dealt to folds 0, 1, ..., k-1, 0, ...
(the cases of one patient, e.g. a BraTS 2013 case annotated again for BraTS 2018, count as one and share a fold).
Then:

* **final**: the phantom model, then one ``brainlesioncl episode --strategy ours`` per dataset on *every* labelled
  case: the model users get (``--ship NAME`` copies it into the package);
* **fold f** (f = 0..k-1): the same sequence on every case outside fold f, scored on fold f's cases only.

Each case is scored once, by the fold model that never saw it: the per-disease means over those scores are the
cross-validated figures of the model card. The final model is scored on what none of its episodes saw: held-out
phantoms (how much of the phantom "site" it keeps) and the evaluation-only enhancing-lesion cases.

Everything resumes, as ``benchmarks/real_sequence.py`` does: finished episodes are found in the work registry, an
interrupted one continues from its epoch checkpoint, evaluations are cached. Run it in the background and rerun the
same command after any interruption::

    nohup python benchmarks/real_crossval.py --work /work/runs/crossval > crossval.out 2>&1 &
    python benchmarks/real_crossval.py --work /work/runs/crossval --ship braincl-demo   # when all runs are done
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_sequence import (  # noqa: E402
    DATA,
    ROOT,
    EvaluationCache,
    _phantoms,
    episode_budget_parser,
    evaluate_version,
    find_episode,
    lineage_entry,
    run_episode,
    ship,
    write_manifest,
)

CONFIG = Path(__file__).with_name("real_crossval.json")


def labelled_cases(dataset: dict[str, Any], data: Path = DATA,
                   same_patient: Sequence[Sequence[str]] = ()) -> list[tuple[str, int]]:
    """``(source/case, unit index)`` of every case of the dataset that has a label: sources in the configuration's
    order, cases sorted by name within each. Folds are dealt by the index, so they mix every source; the cases of one
    patient (a ``same_patient`` group) share the index of the first of them, so they always share a fold."""
    names = []
    for source in dataset["sources"]:
        folder = data / source
        if folder.is_dir():
            names += [f"{source}/{p.name}" for p in sorted(folder.iterdir()) if (p / "label.nii.gz").is_file()]
    group_of = {name: tuple(group) for group in same_patient for name in group}
    units: dict[Any, int] = {}
    for name in names:
        units.setdefault(group_of.get(name, name), len(units))
    return [(name, units[group_of.get(name, name)]) for name in names]


def fold_split(config: dict[str, Any], fold: int | None, data: Path = DATA) -> dict[str, Any]:
    """The split of one run in the format of ``real_split.json``: ``fold=None`` trains on every case and evaluates
    none; fold f trains on the cases outside fold f and evaluates fold f's."""
    split: dict[str, Any] = {"base_model": config["base_model"], "order": ["phantoms", *config["order"]],
                             "datasets": {}, "evaluation_only": {}}
    for name in config["order"]:
        dataset = copy.deepcopy(config["datasets"][name])
        cases = labelled_cases(dataset, data, config.get("same_patient", {}).get("groups", []))
        held_out = [case for case, index in cases if fold is not None and index % config["folds"] == fold]
        dataset["train"] = [case for case, _ in cases if case not in held_out]
        if held_out:
            dataset["evaluate"] = held_out
        split["datasets"][name] = dataset
    for name, dataset in config.get("evaluation_only", {}).items():
        dataset = copy.deepcopy(dataset)
        dataset["evaluate"] = [case for case, _ in labelled_cases(dataset, data)]
        split["evaluation_only"][name] = dataset
    return split


def run_sequence(work: Path, split: dict[str, Any], name: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The episodes of one run, in order, each from the previous version (datasets without a training case are
    skipped); returns the lineage. Finished episodes are reused, an interrupted one resumes."""
    registry_root = work / "registry"
    parent, lineage = split["base_model"], []
    for dataset_name in split["order"][1:]:
        dataset = split["datasets"][dataset_name]
        if not dataset["train"]:
            continue
        version = find_episode(registry_root, name, parent, dataset["disease"])
        if version is None:
            budget = argparse.Namespace(**{**vars(args), "epochs": dataset["epochs"], "steps": dataset["steps"]})
            manifest = write_manifest(dataset, work / "manifests" / f"{name}-{dataset_name}.json")
            version = run_episode(registry_root, manifest, dataset, parent=parent, strategy="ours", name=name,
                                  args=budget, log=work / f"{name}.log")
        lineage.append(lineage_entry(registry_root, version, parent=parent, dataset=dataset_name,
                                     disease=dataset["disease"], strategy="ours"))
        print(f"  {name} {dataset_name}: {version} ({lineage[-1]['minutes']} min)", flush=True)
        parent = version
    return lineage


def score(work: Path, version: str, split: dict[str, Any], phantoms: Callable[[], list]) -> dict[str, Any]:
    """Dice of ``version`` on the evaluation cases of ``split`` and on the held-out phantoms."""
    return evaluate_version(work / "registry", version, split, phantoms())


def summarise(config: dict[str, Any], folds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per dataset: every case's Dice from the fold that held it out, their mean, the worst and the count."""
    summary = {}
    for name in config["order"]:
        per_case = {case: dice for fold in folds
                    for case, dice in fold["scores"].get(name, {}).get("cases", {}).items()}
        if per_case:
            values = list(per_case.values())
            summary[name] = {"mean": float(np.mean(values)), "min": float(np.min(values)), "cases": len(values),
                             "per_case": per_case}
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     parents=[episode_budget_parser()])
    parser.add_argument("--work", type=Path, default=ROOT / "work" / "real_crossval",
                        help="work folder: the registry of the episodes, logs, cached evaluations")
    parser.add_argument("--runs", nargs="+", default=["final", "folds"], choices=["final", "folds"],
                        help="which runs to train and score, in this order")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "real_crossval" / "results.json")
    parser.add_argument("--ship", metavar="NAME", help="ship the final model as NAME-v<next> in the package")
    parser.add_argument("--subregions", type=Path, metavar="FILE",
                        help="with --ship: add this tumour sub-region network (benchmarks/tumour_subregions.py's "
                             "final.safetensors) to the shipped model")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"{DATA} is not available; cross-validation needs ../shared/data beside the project.")
        return 0
    config = json.loads(CONFIG.read_text(encoding="utf-8"))
    work = args.work.resolve()
    results: dict[str, Any] = {"config": CONFIG.name, "folds": [], "settings": {
        k: str(v) for k, v in vars(args).items() if k not in ("work", "output", "ship", "runs")}}
    final_split = fold_split(config, None)
    evaluations = EvaluationCache(work, final_split, args.phantoms)
    base_scores = evaluations.version(config["base_model"])
    phantoms = functools.cache(lambda: _phantoms(args.phantoms))
    final_lineage: list[dict[str, Any]] = []
    for run in args.runs:
        if run == "final":
            print("final: every labelled case", flush=True)
            final_lineage = run_sequence(work, final_split, "all", args)
            final_scores = evaluations.version(final_lineage[-1]["version"])
            results["final"] = {"lineage": final_lineage, "scores": final_scores, "base_scores": base_scores}
            continue
        for fold in range(config["folds"]):
            print(f"fold {fold}", flush=True)
            split = fold_split(config, fold)
            lineage = run_sequence(work, split, f"fold{fold}", args)
            version = lineage[-1]["version"]  # a fold's versions are its own: one cache serves every split
            scores = evaluations.get(version, functools.partial(score, work, version, split, phantoms))
            results["folds"].append({"fold": fold, "lineage": lineage, "scores": scores,
                                     "evaluated": {n: d.get("evaluate", []) for n, d in split["datasets"].items()}})
        results["cross_validated"] = summarise(config, results["folds"])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print_summary(results)
    if args.ship:
        if not final_lineage or "cross_validated" not in results:
            raise SystemExit("--ship needs both runs (--runs final folds) finished in this work folder.")
        table = {name: round(entry["mean"], 4) for name, entry in results["cross_validated"].items()}
        table["phantoms"] = round(results["final"]["scores"]["phantoms"]["dice"], 4)
        table.update({e: round(results["final"]["scores"][e]["dice"], 4) for e in config.get("evaluation_only", {})})
        shipped_version = final_lineage[-1]["version"]
        if args.subregions:
            from tumour_subregions import load_network

            from brainlesioncl.registry import ModelRegistry
            from brainlesioncl.training.subregions import with_subregions

            shipped_version = with_subregions(ModelRegistry(work / "registry"), shipped_version,
                                              load_network(args.subregions),
                                              training={"source": "benchmarks/tumour_subregions.py (every case)"})
        target = ship(work / "registry", shipped_version, args.ship, final_lineage, table,
                      description="Default model: the shipped phantom model, then continual-learning episodes "
                                  "(strategy ours) on every labelled real glioma, WMH, MS and stroke case of the "
                                  "project's collection. Not a medical device. Not for clinical use.",
                      source="benchmarks/real_crossval.py (brainlesioncl episode, one per dataset)",
                      data="procedural phantoms (through the parent), then every labelled real case of "
                           "benchmarks/real_crossval.json; the metrics are cross-validated")
        print(f"shipped {target}")
    return 0


def print_summary(results: dict[str, Any]) -> None:
    """The cross-validated Dice per dataset and the final model's scores, as Markdown."""
    if "cross_validated" in results:
        print("\n| dataset | cases | cross-validated Dice (mean) | worst case |\n|---|---:|---:|---:|")
        for name, entry in results["cross_validated"].items():
            print(f"| {name} | {entry['cases']} | {entry['mean']:.3f} | {entry['min']:.3f} |")
    if "final" in results:
        final, base = results["final"]["scores"], results["final"]["base_scores"]
        print(f"\nfinal model {results['final']['lineage'][-1]['version']}: held-out phantoms "
              f"{final['phantoms']['dice']:.3f} (phantom model {base['phantoms']['dice']:.3f})")
        for name, entry in final.items():
            if name != "phantoms":
                print(f"  {name} (never trained): {entry['dice']:.3f} (phantom model {base[name]['dice']:.3f})")


if __name__ == "__main__":
    sys.exit(main())
