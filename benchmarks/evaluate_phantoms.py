"""Held-out phantom accuracy of a model: Dice, sensitivity, precision and HD95 per pathology.

Cases are generated on the 1 mm default grid with seeds the default-model recipe never uses (it trains on seeds
2026000+ and validates on 2027000+), each with the modality set of the matching public database, so this is a
held-out test of the shipped model on its own domain.

Usage (from the repository root)::

    python benchmarks/evaluate_phantoms.py                    # active model, 4 cases per pathology
    python benchmarks/evaluate_phantoms.py --cases 8 --model braincl-v1
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

#: pathology -> (disease tag, modalities)
PATHOLOGIES = {
    "tumour": ("tumour", ("FLAIR", "T1", "T1c", "T2")),
    "stroke": ("stroke", ("FLAIR", "T1", "T2", "DWI")),
    "stroke (T1 only)": ("stroke", ("T1",)),
    "MS": ("MS", ("FLAIR", "T1", "T1c", "T2", "PD")),
    "WMH": ("WMH", ("FLAIR", "T1")),
    "metastasis": ("metastasis", ("FLAIR", "T1", "T1c", "T2")),
}


def held_out_phantoms(per_pathology: int, seed: int = 500, **settings):
    """``(pathology, disease tag, modalities, case)`` for every pathology, on seeds the shipped recipe never uses
    (``seed + 100 * pathology index + i``); ``settings`` go to PhantomConfig (e.g. ``bias=0.5``)."""
    from brainlesioncl.phantoms import PhantomConfig, generate_case

    for p_index, (name, (disease, modalities)) in enumerate(PATHOLOGIES.items()):
        for i in range(per_pathology):
            yield name, disease, modalities, generate_case(PhantomConfig(
                disease=disease, modalities=modalities, seed=seed + 100 * p_index + i, **settings))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model")
    parser.add_argument("--cases", type=int, default=4, help="cases per pathology")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--min-lesion-mm3", type=float, default=0.0, help="drop lesions smaller than this")
    parser.add_argument("--seed", type=int, default=500)
    args = parser.parse_args()

    from brainlesioncl.evaluation.segmentation import case_metrics
    from brainlesioncl.inference import InferenceConfig, Segmenter
    from brainlesioncl.io import to_xyz
    from brainlesioncl.registry import ModelRegistry

    bundle = ModelRegistry().get(args.model)
    segmenter = Segmenter.from_bundle(bundle, device=args.device,
                                       inference=InferenceConfig(min_lesion_mm3=args.min_lesion_mm3))
    print(f"Model {bundle.metadata.version}; {args.cases} held-out phantom case(s) per pathology, 1 mm grid\n")
    print("| pathology | modalities | Dice mean (min-max) | sensitivity | precision | HD95 mm |")
    print("|---|---|---|---|---|---|")
    by_pathology: dict[str, list] = {}
    for name, disease, _modalities, case in held_out_phantoms(args.cases, args.seed):
        result = segmenter.segment(dict(case.images), disease)
        by_pathology.setdefault(name, []).append(
            case_metrics(to_xyz(result.label), to_xyz(case.label), case.label.GetSpacing()))
    for name, (_disease, modalities) in PATHOLOGIES.items():
        rows = by_pathology[name]

        def mean(values: list[float]) -> str:
            finite = [v for v in values if not np.isnan(v)]
            return f"{np.mean(finite):.3f}" if finite else "n/a"

        dice = [r.dice for r in rows]
        print(f"| {name} | {'+'.join(modalities)} | {np.mean(dice):.3f} ({min(dice):.3f}-{max(dice):.3f}) | "
              f"{mean([r.sensitivity for r in rows])} | {mean([r.precision for r in rows])} | "
              f"{mean([r.hd95_mm for r in rows])} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
