"""The real-data continual-learning sequence: episodes on real labelled cases, the forgetting table, the shipped model.

The recipe behind the default model, and the benchmark that matters most for the mission. Starting from the shipped
phantom model (the oldest "site"), each dataset of ``benchmarks/real_split.json`` is learnt in turn by one
``brainlesioncl episode`` (the product's own command, run as a child process) for each strategy compared. After
every episode the new version is scored on the **evaluation** cases of every dataset (never trained on) and on
held-out phantoms, which gives the R matrix of the real sequence and Acc/BWT/FWT. Stroke and the enhancing-lesion
cases have no episode (one stroke case; the enhancing labels cover only part of a lesion) and are scored for every
version as extra, evaluation-only columns.

Everything resumes: a finished episode is found in the work registry and not run again, an interrupted one continues
from its last epoch (the episode's own checkpoint), and evaluations are cached in ``<work>/evaluations.json``.

Usage (from the repository root; ``../shared/data`` beside the project)::

    python benchmarks/real_sequence.py                       # ours, naive, braincl-dd; default CPU budget
    python benchmarks/real_sequence.py --strategies ours --steps 150 --epochs 4
    python benchmarks/real_sequence.py --ship braincl-demo    # copy the final `ours` version into the package
    brainlesioncl report docs/real_sequence/results.json --output docs/real_sequence

On a GPU machine raise ``--steps``/``--epochs``/``--crop-size``; the split and the order stay in the JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the shared evaluation helpers beside this script
DATA = ROOT.parent / "shared" / "data"
SPLIT = Path(__file__).with_name("real_split.json")
PHANTOM_SEED = 500  # held-out seeds of benchmarks/evaluate_phantoms.py


# ---------------------------------------------------------------------------------------------------------- split
def load_split(path: Path = SPLIT) -> dict[str, Any]:
    """The split file, checked: no case both trains and evaluates, every case folder exists."""
    split = json.loads(path.read_text(encoding="utf-8"))
    for name, dataset in {**split["datasets"], **split.get("evaluation_only", {})}.items():
        overlap = set(dataset.get("train", [])) & set(dataset.get("evaluate", []))
        if overlap:
            raise SystemExit(f"{path}: {name} cases {sorted(overlap)} both train and evaluate.")
    return split


def case_inputs(dataset: dict[str, Any], case: str, data: Path = DATA) -> tuple[dict[str, Path], Path]:
    """``({modality: file}, label)`` of one case ``<source folder>/<case>`` (modalities the case lacks are left out)."""
    source, _ = case.split("/", 1)
    folder = data / case
    images = {m: folder / f"{stem}.nii.gz" for m, stem in dataset["sources"][source].items()}
    return {m: p for m, p in images.items() if p.exists()}, folder / "label.nii.gz"


def write_manifest(dataset: dict[str, Any], out: Path, data: Path = DATA) -> Path:
    """A JSON case manifest (the episode command's input) of a dataset's training cases."""
    cases = []
    for case in dataset["train"]:
        images, label = case_inputs(dataset, case, data)
        cases.append({"case": case.replace("/", "__"), "images": {m: str(p) for m, p in images.items()},
                      "label": str(label), "disease": dataset["disease"]})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cases": cases}, indent=1), encoding="utf-8")
    return out


# ------------------------------------------------------------------------------------------------------- episodes
def episode_budget_parser() -> argparse.ArgumentParser:
    """The options :func:`run_episode` and the scoring read (an ``add_help=False`` parent parser), shared by every
    benchmark that trains episodes as this one does, so their budgets cannot drift apart."""
    budget = argparse.ArgumentParser(add_help=False)
    budget.add_argument("--epochs", type=int, default=4)
    budget.add_argument("--steps", type=int, default=45, help="batches per epoch")
    budget.add_argument("--crop-size", type=int, default=64)
    budget.add_argument("--batch-size", type=int, default=2)
    budget.add_argument("--learning-rate", type=float, default=5e-4)
    budget.add_argument("--seed", type=int, default=0)
    budget.add_argument("--phantoms", type=int, default=2, help="held-out phantoms per pathology in the scoring")
    return budget


def lineage_entry(registry_root: Path, version: str, *, parent: str, dataset: str, disease: str,
                  strategy: str) -> dict[str, Any]:
    """One episode of a model's lineage, with what the episode itself recorded (cases, modalities, minutes)."""
    from brainlesioncl.registry import ModelRegistry

    training = ModelRegistry(registry_root).get(version).metadata.training
    return {"version": version, "parent": parent, "dataset": dataset, "disease": disease, "strategy": strategy,
            "cases": training.get("cases"), "modalities": training.get("modalities"),
            "minutes": training.get("minutes")}


def find_episode(registry_root: Path, name: str, parent: str, disease: str) -> str | None:
    """A finished episode of ``name`` with this parent and disease, so a rerun does not train it again."""
    from brainlesioncl.registry import ModelRegistry

    registry = ModelRegistry(registry_root)
    for info in registry.list():
        if info.version.startswith(f"{name}-v") and info.parent == parent and not info.builtin:
            training = registry.get(info.version).metadata.training
            if training.get("disease") == disease:
                return info.version
    return None


def run_episode(registry_root: Path, manifest: Path, dataset: dict[str, Any], *, parent: str, strategy: str,
                name: str, args: argparse.Namespace, log: Path, options: dict[str, Any] | None = None) -> str:
    """One ``brainlesioncl episode`` in a child process (resumes from its checkpoint); returns the new version.
    ``options``: strategy hyper-parameters (``--option NAME=VALUE``)."""
    command = [
        sys.executable, "-m", "brainlesioncl.cli.main", "--registry", str(registry_root), "episode", str(manifest),
        "--disease", dataset["disease"], "--parent", parent, "--strategy", strategy, "--name", name,
        "--epochs", str(args.epochs), "--steps-per-epoch", str(args.steps), "--crop-size", str(args.crop_size),
        "--batch-size", str(args.batch_size), "--learning-rate", str(args.learning_rate), "--schedule", "cosine",
        "--validation-fraction", "0", "--keep", "last", "--seed", str(args.seed),
        "--label-mapping", dataset.get("label_mapping", "strict"), "--progress", "json",
    ]
    for key, value in (options or {}).items():
        command += ["--option", f"{key}={json.dumps(value)}"]
    print("  $ " + " ".join(command[1:]), flush=True)
    last = ""
    with log.open("a", encoding="utf-8") as stream:  # progress lines go to the log as they come (tail -f it)
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stream, text=True, encoding="utf-8",
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert child.stdout is not None
        for line in child.stdout:
            stream.write(line)
            stream.flush()
            last = line if line.strip() else last
        returncode = child.wait()
    if returncode != 0:
        raise SystemExit(f"episode failed (exit {returncode}); see {log}")
    return json.loads(last)["version"]


# ----------------------------------------------------------------------------------------------------- evaluation
def _phantoms(per_pathology: int) -> list[tuple[str, dict, Any]]:
    from evaluate_phantoms import held_out_phantoms

    return [(disease, dict(case.images), case.label)
            for _name, disease, _modalities, case in held_out_phantoms(per_pathology, PHANTOM_SEED)]


def evaluate_version(registry_root: Path, version: str, split: dict[str, Any], phantoms: list) -> dict[str, Any]:
    """Dice of one version on every evaluation case of every dataset, and on the held-out phantoms."""
    import SimpleITK as sitk
    from evaluate_real import reference_on_label_grid

    from brainlesioncl.evaluation.segmentation import dice
    from brainlesioncl.inference import Segmenter
    from brainlesioncl.io import to_xyz
    from brainlesioncl.registry import ModelRegistry

    segmenter = Segmenter.from_bundle(ModelRegistry(registry_root).get(version))
    out: dict[str, Any] = {}
    scores = [dice(to_xyz(segmenter.segment(images, disease).label) > 0, to_xyz(label) > 0)
              for disease, images, label in phantoms]
    out["phantoms"] = {"dice": float(np.mean(scores)), "cases": {f"phantom{i}": s for i, s in enumerate(scores)}}
    for name, dataset in {**split["datasets"], **split.get("evaluation_only", {})}.items():
        if "evaluate" not in dataset:
            continue
        per_case = {}
        for case in dataset["evaluate"]:
            images, label_path = case_inputs(dataset, case)
            label = sitk.ReadImage(str(label_path))
            predicted = segmenter.segment(images, dataset["disease"],
                                          reference=reference_on_label_grid(images, label)).label
            per_case[case] = dice(to_xyz(predicted) > 0, to_xyz(label) > 0)
        out[name] = {"dice": float(np.mean(list(per_case.values()))), "cases": per_case}
    return out


class EvaluationCache:
    """Scores of the versions of one work folder's registry, kept in ``<work>/evaluations.json`` so that a rerun
    scores nothing twice; the held-out phantoms are generated only when a version needs scoring."""

    def __init__(self, work: Path, split: dict[str, Any], phantoms_per_pathology: int) -> None:
        self.work, self.split, self.phantoms_per_pathology = work, split, phantoms_per_pathology
        self.path = work / "evaluations.json"
        self.entries: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8")) if self.path.exists() else {}
        self._phantoms: list | None = None

    def get(self, key: str, compute: Callable[[], Any]) -> Any:
        """The cached entry ``key``, computed and written first when missing."""
        if key not in self.entries:
            self.entries[key] = compute()
            self.work.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.entries, indent=1), encoding="utf-8")
        return self.entries[key]

    def version(self, version: str) -> dict[str, Any]:
        """:func:`evaluate_version` of ``version``, cached."""
        def compute() -> dict[str, Any]:
            if self._phantoms is None:
                self._phantoms = _phantoms(self.phantoms_per_pathology)
            print(f"  evaluating {version}", flush=True)
            return evaluate_version(self.work / "registry", version, self.split, self._phantoms)

        return self.get(version, compute)


# ------------------------------------------------------------------------------------------------------- shipping
SEQUENCE_DESCRIPTION = ("Default model: the shipped phantom model, then continual-learning episodes (strategy ours) "
                        "on real annotated glioma, WMH and MS cases. Not a medical device. Not for clinical use.")


def ship(registry_root: Path, version: str, name: str, lineage: list[dict[str, Any]], table: dict[str, Any], *,
         description: str = SEQUENCE_DESCRIPTION,
         source: str = "benchmarks/real_sequence.py (brainlesioncl episode, one per dataset)",
         data: str = "procedural phantoms (through the parent), then the real annotated training cases of "
                     "benchmarks/real_split.json") -> Path:
    """Copy ``version`` into the package's shipped models as ``<name>-v<next>``, its episodes recorded in it."""
    from brainlesioncl.registry.registry import builtin_models_dir

    source = registry_root / "versions" / version
    shipped = sorted(p.name for p in builtin_models_dir().iterdir() if p.name.startswith(f"{name}-v"))
    number = max(int(p.rsplit("-v", 1)[1]) for p in shipped) + 1 if shipped else 1
    target = builtin_models_dir() / f"{name}-v{number}"
    if target.exists():
        raise SystemExit(f"{target} exists; a shipped model is never overwritten.")
    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    bundle = json.loads((staging / "bundle.json").read_text(encoding="utf-8"))
    base = lineage[0]["parent"]
    bundle.update(
        name=name, version=target.name, parent=base, description=description)
    bundle["metrics"] = {"real_evaluation_dice": table,
                         "evaluation": "held-out cases of benchmarks/real_split.json and held-out phantoms"}
    bundle["provenance"] = {
        "source": source,
        "data": data,
        "episodes": lineage,
        "evaluation": table,
    }
    (staging / "bundle.json").write_text(json.dumps(bundle, indent=2) + "\n", encoding="utf-8")
    staging.rename(target)
    return target


# ------------------------------------------------------------------------------------------------------------ main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     parents=[episode_budget_parser()])
    parser.add_argument("--work", type=Path, default=ROOT / "work" / "real_sequence",
                        help="work folder: the registry of the episodes, logs, cached evaluations")
    parser.add_argument("--strategies", nargs="+", default=["ours", "naive", "braincl-dd"])
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "real_sequence" / "results.json")
    parser.add_argument("--ship", metavar="NAME", help="ship the final `ours` version as NAME-v<next> in the package")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"{DATA} is not available; the real-data sequence needs ../shared/data beside the project.")
        return 0

    from brainlesioncl.evaluation.continual import cl_metrics

    split = load_split()
    base = split["base_model"]
    order = split["order"]
    real = [d for d in order if d != "phantoms"]
    work = args.work.resolve()
    registry_root = work / "registry"
    evaluations = EvaluationCache(work, split, args.phantoms)

    results: dict[str, Any] = {"datasets": order, "strategies": {}, "split": str(SPLIT.name),
                               "settings": {k: v for k, v in vars(args).items() if k not in ("work", "output", "ship")}}
    lineages: dict[str, list[dict[str, Any]]] = {}
    for strategy in args.strategies:
        print(f"strategy {strategy}", flush=True)
        name = f"real-{strategy}"
        versions, minutes, lineage = [base], [], []
        for dataset_name in real:
            dataset = split["datasets"][dataset_name]
            parent = versions[-1]
            version = find_episode(registry_root, name, parent, dataset["disease"])
            if version is None:
                manifest = write_manifest(dataset, work / "manifests" / f"{dataset_name}.json")
                version = run_episode(registry_root, manifest, dataset, parent=parent, strategy=strategy,
                                      name=name, args=args, log=work / f"{name}.log")
            lineage.append(lineage_entry(registry_root, version, parent=parent, dataset=dataset_name,
                                         disease=dataset["disease"], strategy=strategy))
            minutes.append(lineage[-1]["minutes"])
            versions.append(version)
            print(f"  {dataset_name}: {version} ({lineage[-1]['minutes']} min)", flush=True)
        rows = [evaluations.version(v) for v in versions]
        matrix = [[row[d]["dice"] for d in order] for row in rows]

        results["strategies"][strategy] = {
            "versions": versions, "matrix": matrix, "metrics": cl_metrics(matrix).to_dict(scale=100),
            "minutes": round(sum(m or 0 for m in minutes), 1), "episode_minutes": minutes,
            "evaluation_only": {extra: [row[extra]["dice"] for row in rows] for extra in split["evaluation_only"]},
            "per_case": rows,
        }
        lineages[strategy] = lineage
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print_table(results, split)
    if args.ship:
        if "ours" not in results["strategies"]:
            raise SystemExit("--ship needs the `ours` strategy in --strategies.")
        ours = results["strategies"]["ours"]
        table = {d: round(ours["matrix"][-1][i], 4) for i, d in enumerate(order)}
        table.update({e: round(v[-1], 4) for e, v in ours["evaluation_only"].items()})
        print(f"shipped {ship(registry_root, ours['versions'][-1], args.ship, lineages['ours'], table)}")
    return 0


def print_table(results: dict[str, Any], split: dict[str, Any]) -> None:
    """The R matrices (Dice %, row = after episode) and the metrics, as Markdown."""
    order = results["datasets"]
    extras = list(split.get("evaluation_only", {}))
    for strategy, entry in results["strategies"].items():
        print(f"\n### {strategy} ({entry['minutes']} min of episodes)\n")
        print("| after | " + " | ".join(order) + " | " + " | ".join(f"{e} (eval only)" for e in extras) + " |")
        print("|---" * (1 + len(order) + len(extras)) + "|")
        labels = ["shipped phantom model", *[f"episode {d}" for d in order[1:]]]
        for i, row in enumerate(entry["matrix"]):
            extra = [entry["evaluation_only"][e][i] for e in extras]
            print(f"| {labels[i]} | " + " | ".join(f"{100 * v:.1f}" for v in [*row, *extra]) + " |")
    print("\n| strategy | Acc | BWT | FWT | ILM | minutes |\n|---|---:|---:|---:|---:|---:|")
    for strategy, entry in results["strategies"].items():
        m = entry["metrics"]
        print(f"| {strategy} | {m['acc']:.1f} | {m['bwt']:.1f} | {m['fwt']:.1f} | {m['ilm']:.1f} "
              f"| {entry['minutes']} |")


if __name__ == "__main__":
    sys.exit(main())
