"""``--disease auto``: fit a model's disease router, then measure identification and Dice against the true tag.

Fitting data (never the evaluation cases):

* procedural phantoms of every disease slot, with scanner variety (noise, bias field, a contrast curve, thick
  slices) and random modality subsets, on seeds no other benchmark or recipe uses (3100000 up);
* the real annotated **training** cases of ``benchmarks/real_split.json`` (those the shipped model's episodes trained
  on), when ``../shared/data`` is present.

Evaluation (held out from the router and from the model): the held-out phantoms of ``benchmarks/evaluate_phantoms.py``
(every pathology, seeds 500 up; metastasis counts as identified when routed to tumour, the slot it uses) and the real
**evaluation** cases of the split. Per case: the disease auto chose, its probability, and Dice with ``auto``, with the
true tag and with ``unknown``; plus the time of the routing step against the network pass.

Usage (from the repository root)::

    python benchmarks/disease_routing.py --fit --install braincl-demo-v4   # fit, write into the shipped bundle
    python benchmarks/disease_routing.py --model braincl-demo-v4 --json docs/disease_routing.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

FIT_SEED = 3_100_000
#: disease slot -> the modalities its phantoms are rendered with (a random subset is kept for half of them)
SLOT_MODALITIES = {
    "tumour": ("FLAIR", "T1", "T1c", "T2"),
    "stroke": ("FLAIR", "T1", "T2", "DWI"),
    "MS": ("FLAIR", "T1", "T1c", "T2", "PD"),
    "WMH": ("FLAIR", "T1"),
}


def fitting_phantoms(per_disease: int):
    """``(disease, {modality: image})`` phantoms with scanner variety and modality subsets."""
    import SimpleITK as sitk

    from brainlesioncl.phantoms import PhantomConfig, generate_case

    rng = np.random.default_rng(FIT_SEED)
    for d_index, (disease, modalities) in enumerate(SLOT_MODALITIES.items()):
        for i in range(per_disease):
            chosen = modalities
            if disease == "stroke" and i % 4 == 3:
                chosen = ("T1",)  # chronic-stroke databases (ATLAS) have T1 only
            elif i % 2:
                k = int(rng.integers(1, len(modalities) + 1))
                chosen = tuple(str(m) for m in rng.choice(modalities, size=k, replace=False))
            settings = {"noise": float(rng.uniform(0.01, 0.08)), "bias": float(rng.uniform(0.05, 0.4))}
            if rng.random() < 0.3:
                settings["slice_thickness"] = float(rng.choice([3.0, 5.0]))
            case = generate_case(PhantomConfig(disease=disease, modalities=chosen, seed=FIT_SEED + 1000 * d_index + i,
                                               **settings))
            gamma = float(rng.uniform(0.75, 1.3))  # the scanner's contrast curve
            images = {}
            for modality, image in case.images.items():
                array = np.clip(sitk.GetArrayFromImage(image), 0, None) ** gamma
                curved = sitk.GetImageFromArray(array.astype(np.float32))
                curved.CopyInformation(image)
                images[modality] = curved
            yield disease, images


def signature_of(segmenter, images: dict) -> np.ndarray:
    """The router's signature of a case, prepared as ``segment`` prepares it (phantoms: aligned by construction, so
    ``prepare="off"``; files: ``auto``)."""
    in_memory = not isinstance(next(iter(images.values())), (str, Path))
    _preparation, prepared = segmenter.prepare(images, prepare="off" if in_memory else "auto")
    return segmenter.signature(prepared)


def fit(segmenter, per_disease: int, use_real: bool) -> Any:
    from real_sequence import DATA, case_inputs, load_split

    from brainlesioncl.inference import fit_router

    signatures, labels, sources = [], [], {"phantoms": 0, "real": 0}
    for disease, images in fitting_phantoms(per_disease):
        signatures.append(signature_of(segmenter, images))
        labels.append(disease)
        sources["phantoms"] += 1
        print(f"  phantom {disease} {'+'.join(images)}", flush=True)
    if use_real and DATA.is_dir():
        split = load_split()
        for name, dataset in split["datasets"].items():
            for case in dataset.get("train", []):
                images, _label = case_inputs(dataset, case)
                signatures.append(signature_of(segmenter, {m: str(p) for m, p in images.items()}))
                labels.append(dataset["disease"])
                sources["real"] += 1
                print(f"  real {name} {case}", flush=True)
    slots = list(segmenter.metadata.disease_slots)
    return fit_router(np.stack(signatures), labels, slots, l2=0.3, fitted_on={
        "version": segmenter.metadata.version, "phantoms": sources["phantoms"], "real_cases": sources["real"],
        "recipe": "benchmarks/disease_routing.py --fit"})


def install(version: str, router) -> Path:
    """Write the router into a shipped bundle's bundle.json (atomically; the weights are untouched)."""
    from brainlesioncl.registry.registry import builtin_models_dir

    path = builtin_models_dir() / version / "bundle.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["router"] = router.to_json()
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".json")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        json.dump(data, stream, indent=2)
        stream.write("\n")
    os.replace(temporary, path)
    return path


def evaluate(segmenter, phantoms_per_pathology: int) -> dict[str, Any]:
    import SimpleITK as sitk
    from evaluate_phantoms import held_out_phantoms
    from evaluate_real import reference_on_label_grid
    from real_sequence import DATA, case_inputs, load_split

    from brainlesioncl.evaluation.segmentation import dice
    from brainlesioncl.io import to_xyz

    rows = []

    def score(kind: str, name: str, truth: str, images: dict, label, reference=None) -> None:
        row: dict[str, Any] = {"kind": kind, "case": name, "true": truth}
        for tag in ("auto", truth, "unknown"):
            start = time.perf_counter()
            result = segmenter.segment(images, tag, reference=reference)
            key = "auto" if tag == "auto" else ("true" if tag == truth else "unknown")
            row[f"dice_{key}"] = float(dice(to_xyz(result.label) > 0, to_xyz(label) > 0))
            if tag == "auto":
                assert result.routing is not None
                row["chosen"], row["confident"] = result.routing.disease, result.routing.confident
                row["probability"] = max(result.routing.probabilities.values())
                row["routing_s"] = result.timings.get("routing", 0.0)
            elif key == "true":
                row["network_s"] = result.timings["inference"]
            row.setdefault("seconds", {})[key] = time.perf_counter() - start
        expected = "tumour" if truth == "metastasis" else truth
        row["identified"] = row["chosen"] == expected
        rows.append(row)
        print(f"  {kind:8s} {name:55s} true {truth:10s} auto {row['chosen']:8s} p={row['probability']:.2f} "
              f"Dice auto {row['dice_auto']:.3f} true {row['dice_true']:.3f} unknown {row['dice_unknown']:.3f}",
              flush=True)

    for pathology, disease, _modalities, case in held_out_phantoms(phantoms_per_pathology):
        score("phantom", f"{pathology} {case.info.get('seed', '')}".strip(), disease, dict(case.images), case.label)
    if DATA.is_dir():
        split = load_split()
        for _name, dataset in {**split["datasets"], **split.get("evaluation_only", {})}.items():
            for case in dataset.get("evaluate", []):
                images, label_path = case_inputs(dataset, case)
                label = sitk.ReadImage(str(label_path))
                score("real", case, dataset["disease"], images, label, reference_on_label_grid(images, label))
    return {"rows": rows, "summary": summarise(rows)}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for kind in ("phantom", "real"):
        part = [r for r in rows if r["kind"] == kind]
        if not part:
            continue
        answered = [r for r in part if r["confident"]]
        out[kind] = {
            "cases": len(part),
            "identified": float(np.mean([r["identified"] for r in part])),
            "answered": len(answered),
            "identified_among_answered": float(np.mean([r["identified"] for r in answered])) if answered else None,
            "dice_auto": float(np.mean([r["dice_auto"] for r in part])),
            "dice_true": float(np.mean([r["dice_true"] for r in part])),
            "dice_unknown": float(np.mean([r["dice_unknown"] for r in part])),
            "routing_over_network": float(np.mean([r["routing_s"] / r["network_s"] for r in part])),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="registry version (default: the active model)")
    parser.add_argument("--fit", action="store_true", help="fit the router first (else use the bundle's)")
    parser.add_argument("--fit-phantoms", type=int, default=8, help="fitting phantoms per disease")
    parser.add_argument("--no-real", action="store_true", help="fit on phantoms only")
    parser.add_argument("--install", metavar="SHIPPED_VERSION",
                        help="write the fitted router into this shipped bundle (package default_models)")
    parser.add_argument("--phantoms", type=int, default=2, help="held-out phantoms per pathology")
    parser.add_argument("--json", type=Path, help="write the per-case results here")
    args = parser.parse_args()

    from brainlesioncl.inference import Segmenter
    from brainlesioncl.registry import ModelRegistry

    version = args.install or args.model
    segmenter = Segmenter.from_bundle(ModelRegistry().get(version))
    if args.fit:
        print(f"Fitting the disease router of {segmenter.metadata.version}", flush=True)
        router = fit(segmenter, args.fit_phantoms, not args.no_real)
        segmenter.router = router
        if args.install:
            print(f"wrote {install(args.install, router)}")
    print(f"Evaluating auto on {segmenter.metadata.version}", flush=True)
    results = evaluate(segmenter, args.phantoms)
    print(json.dumps(results["summary"], indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
