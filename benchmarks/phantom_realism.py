"""Do phantoms that look like real lesions teach a model more about real lesions?

Two parts, both from the repository root with ``../shared/data`` beside the project:

``python benchmarks/phantom_realism.py appearance``
    How lesions look, measured the same way on real **training** cases of ``benchmarks/real_split.json`` (their
    evaluation cases are never looked at) and on phantoms of each lesion style: lesion median / brain median per
    sequence, number of lesion components, their median volume and the share under 0.1 mL. The clinical style's
    contrasts were set from this table.

``python benchmarks/phantom_realism.py episodes --disease MS``
    The effect on real cases: from the shipped default, one ``brainlesioncl episode`` (strategy ``ours``, the
    budget of ``benchmarks/real_sequence.py``) on phantoms of each style, same count, seeds and budget; then every
    version is scored on the evaluation cases of every real dataset and on the held-out phantoms (Dice, as the real
    sequence scores them) and lesion-wise detection on the MS, WMH and stroke cases (many lesions each, so more to
    count than one Dice). The classic-style episode is the control: the same extra training without the realism.
    ``--styles clinical`` and ``--styles classic`` can run as two processes; ``--evaluate`` scores what is finished.

``python benchmarks/phantom_realism.py chain [--ship braincl-demo]``
    The recipe of the model after v4: clinical-style MS phantoms, then clinical-style acute stroke phantoms (real
    SOOP lesion shapes when ``../shared/data/templates`` is there), one episode each from ``--parent``; every version
    scored as above; ``--ship`` copies the last into the package as the next shipped version.

Everything resumes (finished episodes are found in the work registry, evaluations are cached).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
DATA = ROOT.parent / "shared" / "data"
STYLES = ("classic", "clinical")
#: Per disease: the sequences the phantoms carry (those of the real dataset) and the seeds (apart from every other
#: benchmark's and the shipped recipe's).
EPISODE_PHANTOMS = {"MS": ("FLAIR", "T1", "T1c", "T2"), "stroke": ("FLAIR", "DWI"), "WMH": ("FLAIR", "T1")}
EPISODE_SEED = 2027000
#: Real acute stroke lesion masks in MNI space (SOOP), for the clinical style's acute strokes when present.
STROKE_LIBRARY = DATA / "templates" / "stroke_lesions_soop" / "lesions"
#: Stroke episodes learn acute strokes only, as DWI/FLAIR datasets are acute: with FLAIR and DWI alone a chronic
#: cavity is dark like CSF, and the first stroke runs (half chronic) taught the model to label CSF (docs/BENCHMARKS.md).
EPISODE_STAGE = {"stroke": "acute"}


# ------------------------------------------------------------------------------------------------------ appearance
def appearance(seeds: int) -> dict[str, Any]:
    import SimpleITK as sitk
    from real_sequence import case_inputs, load_split

    from brainlesioncl.phantoms import PhantomConfig, generate_case
    from brainlesioncl.phantoms.appearance import lesion_appearance

    split = load_split()
    rows: dict[str, Any] = {}
    for name in ("MS", "WMH"):
        dataset = split["datasets"][name]
        for case in dataset["train"]:
            files, label_path = case_inputs(dataset, case)
            label = sitk.ReadImage(str(label_path))
            images = {m: sitk.GetArrayFromImage(sitk.ReadImage(str(p), sitk.sitkFloat32)) for m, p in files.items()}
            rows[f"real {name} {case.split('/')[-1]} (train)"] = lesion_appearance(
                images, sitk.GetArrayFromImage(label), float(np.prod(label.GetSpacing())) / 1000)
    for disease, modalities in (("MS", ("FLAIR", "T1", "T1c", "T2")), ("WMH", ("FLAIR",)),
                                ("stroke", ("FLAIR", "DWI", "ADC"))):
        for style in STYLES:
            for seed in range(1, seeds + 1):
                real_shape = disease == "stroke" and style == "clinical" and seed % 2 == 0 and STROKE_LIBRARY.is_dir()
                config = PhantomConfig(disease=disease, modalities=modalities, seed=seed, lesion_style=style,
                                       stroke_stage="acute" if disease == "stroke" else None,
                                       lesion_library=str(STROKE_LIBRARY) if real_shape else None)
                case = generate_case(config)
                images = {m: sitk.GetArrayFromImage(i) for m, i in case.images.items()}
                rows[f"phantom {disease} {style} seed {seed}"] = lesion_appearance(
                    images, sitk.GetArrayFromImage(case.label), 0.001)
    return rows


def print_appearance(rows: dict[str, Any]) -> None:
    sequences = ("FLAIR", "T1", "T1c", "T2", "DWI", "ADC")
    print("| case | " + " | ".join(sequences) + " | components | median mL | < 0.1 mL | largest share |")
    print("|---" + "|---:" * (len(sequences) + 4) + "|")
    for name, row in rows.items():
        cells = [f"{row[s]:.2f}" if s in row else "" for s in sequences]
        print(f"| {name} | " + " | ".join(cells) + f" | {row['components']} | {row['median_ml']:.3f} | "
              f"{row['below_0_1ml']:.0%} | {row['largest_share']:.0%} |")


# -------------------------------------------------------------------------------------------------------- episodes
def phantom_cases(work: Path, style: str, disease: str, count: int) -> Path:
    """The episode's phantoms (generated once): ``count`` cases of ``disease`` in ``style``; returns the CSV."""
    from brainlesioncl.phantoms.generator import generate_dataset

    stage = EPISODE_STAGE.get(disease)
    cases = work / "cases" / "-".join([style, disease, *_stage_parts(disease)])
    real_shapes = style == "clinical" and disease == "stroke" and STROKE_LIBRARY.is_dir()
    if not (cases / "cases.csv").exists():
        generate_dataset(cases, count=count, disease=disease, seed=EPISODE_SEED, modalities=EPISODE_PHANTOMS[disease],
                         lesion_style=style, lesion_library=STROKE_LIBRARY if real_shapes else None,
                         stroke_stage=stage)
    return cases / "cases.csv"


def episode(args: argparse.Namespace, style: str, disease: str, parent: str, name: str) -> str:
    """A finished episode of ``name`` from ``parent`` on the style's phantoms, run (or resumed) when missing."""
    from real_sequence import find_episode, run_episode

    registry_root = args.work / "registry"
    version = find_episode(registry_root, name, parent, disease)
    if version is None:
        version = run_episode(registry_root, phantom_cases(args.work, style, disease, args.cases),
                              {"disease": disease}, parent=parent, strategy="ours", name=name, args=args,
                              log=args.work / f"{name}.log")
    print(f"{name}: {version} (parent {parent})", flush=True)
    return version


def episode_name(style: str, disease: str) -> str:
    """``phantom-<style>-<disease>[-<stage>]``: a change of the episode's data is a new name, never a found one."""
    return "-".join(["phantom", style, disease.lower(), *_stage_parts(disease)])


def _stage_parts(disease: str) -> list[str]:
    """``[stage]`` when the episodes of ``disease`` learn one stage only (:data:`EPISODE_STAGE`), else ``[]``."""
    return [EPISODE_STAGE[disease]] if disease in EPISODE_STAGE else []


def train_episodes(args: argparse.Namespace) -> dict[str, str]:
    """One episode per style from ``args.parent`` on that style's phantoms; returns style -> new version."""
    return {style: episode(args, style, args.disease, args.parent, episode_name(style, args.disease))
            for style in args.styles}


#: The clinical-phantom episodes after the parent, in order: the recipe of the model that follows v4.
CHAIN = ("MS", "stroke")


def run_chain(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Clinical-phantom episodes one after the other (the first is the ``episodes`` part's clinical one, so it is
    found, not trained again); returns the lineage."""
    from real_sequence import lineage_entry

    parent, lineage = args.parent, []
    for step, disease in enumerate(CHAIN):
        name = episode_name("clinical", disease) if step == 0 else "-".join(
            ["phantom-clinical-chain", disease.lower(), *_stage_parts(disease)])
        version = episode(args, "clinical", disease, parent, name)
        lineage.append(lineage_entry(args.work / "registry", version, parent=parent,
                                     dataset=f"clinical-style {disease} phantoms", disease=disease, strategy="ours"))
        parent = version
    return lineage


def evaluate(args: argparse.Namespace, versions: dict[str, str] | None = None, *,
             label: str | None = None) -> dict[str, Any]:
    """Scores of the parent and of the finished episodes (or of ``versions``: row label -> version), cached."""
    from real_sequence import EvaluationCache, find_episode, load_split

    split = load_split()
    registry_root = args.work / "registry"
    cache = EvaluationCache(args.work, split, args.phantoms)
    if versions is None:
        versions = {"parent": args.parent}
        for style in STYLES:
            found = find_episode(registry_root, episode_name(style, args.disease), args.parent, args.disease)
            if found:
                versions[style] = found
    def lesions(version: str) -> dict[str, Any]:
        return cache.get(f"{version}#lesions", lambda: lesion_detection(registry_root, version, split))

    return {"disease": label or args.disease, "parent": args.parent, "versions": versions,
            "scores": {key: cache.version(v) for key, v in versions.items()},
            "lesions": {key: lesions(v) for key, v in versions.items()},
            "settings": {k: str(v) for k, v in vars(args).items() if k not in ("work",)}}


def lesion_detection(registry_root: Path, version: str, split: dict[str, Any]) -> dict[str, Any]:
    """Lesion-wise detection on the evaluation cases of MS, WMH and stroke (many lesions per case, so more to count
    than one Dice): BraTS metastasis rules (1-voxel dilation, lesions over 2 mm^3), sensitivity and false positives."""
    import SimpleITK as sitk
    from evaluate_real import reference_on_label_grid
    from real_sequence import case_inputs

    from brainlesioncl.evaluation.lesions import lesion_scores
    from brainlesioncl.inference import Segmenter
    from brainlesioncl.io import to_xyz
    from brainlesioncl.registry import ModelRegistry

    segmenter = Segmenter.from_bundle(ModelRegistry(registry_root).get(version))
    out: dict[str, Any] = {}
    for name, dataset in {**split["datasets"], **split.get("evaluation_only", {})}.items():
        if dataset.get("disease") not in ("MS", "WMH", "stroke"):
            continue
        for case in dataset["evaluate"]:
            images, label_path = case_inputs(dataset, case)
            label = sitk.ReadImage(str(label_path))
            predicted = segmenter.segment(images, dataset["disease"],
                                          reference=reference_on_label_grid(images, label)).label
            scores = lesion_scores(to_xyz(predicted) > 0, to_xyz(label) > 0, label.GetSpacing(), variant="MET")
            out[f"{name} {case.split('/')[-1]}"] = {
                "true_lesions": scores.true_lesions, "detected": scores.detected_lesions,
                "false_positives": scores.false_positives, "lesion_dice": round(scores.lesion_dice, 4)}
    return out


def _row_label(result: dict[str, Any], key: str) -> str:
    if key == "parent":
        return result["parent"]
    return key if key in result["versions"].values() else f"+ {key} {result['disease']} phantoms"


def print_effect(result: dict[str, Any]) -> None:
    columns = [k for k in next(iter(result["scores"].values())) if isinstance(result["scores"]["parent"][k], dict)]
    print(f"\nDice % on evaluation cases after {result['disease']} phantom episodes from {result['parent']}\n")
    print("| model | " + " | ".join(columns) + " |\n|---" + "|---:" * len(columns) + "|")
    for key, scores in result["scores"].items():
        print(f"| {_row_label(result, key)} | " + " | ".join(f"{100 * scores[c]['dice']:.1f}" for c in columns) + " |")
    print("\nLesion-wise detection (detected / true lesions, false positives)\n")
    cases = list(next(iter(result["lesions"].values())))
    print("| model | " + " | ".join(cases) + " |\n|---" + "|---:" * len(cases) + "|")
    for key, lesions in result["lesions"].items():
        print(f"| {_row_label(result, key)} | " + " | ".join(f"{lesions[c]['detected']}/{lesions[c]['true_lesions']}, "
                                           f"{lesions[c]['false_positives']} FP" for c in cases) + " |")


def ship_chain(args: argparse.Namespace, lineage: list[dict[str, Any]], result: dict[str, Any]) -> Path:
    """The chain's last version into the package as ``<args.ship>-v<next>``, with v4's episodes and the chain's in
    its lineage."""
    from real_sequence import ship

    from brainlesioncl.registry import ModelRegistry

    parent = ModelRegistry(args.work / "registry").get(args.parent).metadata
    earlier = list((parent.provenance or {}).get("episodes", []))
    final = result["scores"][lineage[-1]["version"]]
    table = {name: round(entry["dice"], 4) for name, entry in final.items() if isinstance(entry, dict)}
    return ship(args.work / "registry", lineage[-1]["version"], args.ship, earlier + lineage, table,
                description="Default model: the shipped phantom model, continual-learning episodes (strategy ours) on "
                            "real annotated glioma, WMH and MS cases, then on clinical-style MS and acute stroke "
                            "phantoms. Not a medical device. Not for clinical use.",
                source="benchmarks/real_sequence.py, then benchmarks/phantom_realism.py chain (brainlesioncl episode)",
                data="procedural phantoms (through v2), the real annotated training cases of "
                     "benchmarks/real_split.json (through v4), then clinical-style MS and acute stroke phantoms "
                     "(acute stroke shapes from the SOOP lesion masks, BSD-2 / CC0)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="part", required=True)
    look = sub.add_parser("appearance")
    look.add_argument("--seeds", type=int, default=3, help="phantoms per disease and style")
    look.add_argument("--output", type=Path, default=ROOT / "docs" / "phantom_realism" / "appearance.json")
    from real_sequence import episode_budget_parser

    # what the episodes and their scoring share: the real sequence's budget, the parent, the phantoms, the work folder
    training = argparse.ArgumentParser(add_help=False, parents=[episode_budget_parser()])
    training.add_argument("--parent", default="braincl-demo-v4")
    training.add_argument("--cases", type=int, default=12, help="phantoms per episode")
    training.add_argument("--work", type=Path, default=ROOT / "work" / "phantom_realism")
    ep = sub.add_parser("episodes", parents=[training])
    ep.add_argument("--disease", default="MS", choices=sorted(EPISODE_PHANTOMS))
    ep.add_argument("--styles", nargs="+", default=list(STYLES), choices=STYLES)
    ep.add_argument("--evaluate", action="store_true", help="only score the finished versions")
    ep.add_argument("--output", type=Path, default=None)
    chain = sub.add_parser("chain", parents=[training],
                           help="clinical MS then stroke phantom episodes from --parent; scored; shippable")
    chain.add_argument("--ship", metavar="NAME", help="copy the last version into the package as NAME-v<next>")
    chain.add_argument("--output", type=Path, default=ROOT / "docs" / "phantom_realism" / "chain.json")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"{DATA} is not available; this benchmark needs ../shared/data beside the project.")
        return 0
    if args.part == "appearance":
        rows = appearance(args.seeds)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
        print_appearance(rows)
        return 0
    args.work = args.work.resolve()
    if args.part == "chain":
        lineage = run_chain(args)
        result = evaluate(args, {"parent": args.parent, **{step["version"]: step["version"] for step in lineage}},
                          label="+".join(CHAIN))
        result["lineage"] = lineage
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        print_effect(result)
        if args.ship:
            print(f"shipped {ship_chain(args, lineage, result)}")
        return 0
    if not args.evaluate:
        train_episodes(args)
        return 0
    result = evaluate(args)
    stage = f"_{EPISODE_STAGE[args.disease]}" if args.disease in EPISODE_STAGE else ""
    output = args.output or ROOT / "docs" / "phantom_realism" / f"episodes_{args.disease}{stage}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print_effect(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
