"""Evaluate a model on every real labelled case in ../shared/data, with only the modalities each case has.

Per case: Dice, sensitivity, precision and HD95 (mm) of the lesion mask on the case's own label grid (whole tumour for
glioma, lesion mask for MS, WMH, stroke, enhancing lesion for the T1c cases). The shipped default model learnt from
some of these cases in its episodes (docs/MODEL_CARD.md lists which): only the others are held out for it.

Usage (from the repository root)::

    python benchmarks/evaluate_real.py                      # the active (shipped) model
    python benchmarks/evaluate_real.py --model braincl-v1 --json results.json
    python benchmarks/evaluate_real.py --tta                # the mean of 4 mirrored views instead of one pass

The data is not part of the repository (licences differ); the script exits with a message when it is absent.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

#: dataset folder -> (disease tag, {model modality: file stem}, what the label means)
DATASETS: dict[str, tuple[str, dict[str, str], str]] = {
    "glioma_brats2013_deepmedic": ("tumour", {"FLAIR": "flair", "T1c": "t1c"}, "whole tumour (labels 1-4 merged)"),
    "glioma_brats2018_deepvoxnet2": ("tumour", {"FLAIR": "flair", "T1": "t1"}, "whole tumour"),
    "glioma_brats2018_deepbrainseg": ("tumour", {"FLAIR": "flair", "T1": "t1", "T1c": "t1c", "T2": "t2"},
                                      "whole tumour (labels 1, 2, 4 merged)"),
    "ms_ljubljana3d_open_ms_data": ("MS", {"FLAIR": "flair", "T1": "t1", "T1c": "t1c", "T2": "t2"}, "WM lesions"),
    "stroke_isles22": ("stroke", {"DWI": "dwi", "FLAIR": "flair"}, "acute infarcts"),
    "wmh_vbnet_simonsf": ("WMH", {"FLAIR": "flair"}, "WMH"),
    "enhancing_lesion_pyradiomics": ("tumour", {"T1c": "t1c"}, "enhancing lesion"),
}


def reference_on_label_grid(inputs: dict, label_image) -> str:
    """The input acquired on the label's grid (so the output lands on it), else the first input."""
    from brainlesioncl.preprocessing.geometry import same_geometry

    return next((m for m, p in inputs.items() if same_geometry(sitk.ReadImage(str(p)), label_image, 1e-3)),
                next(iter(inputs)))


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="registry version (default: the active model)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--min-lesion-mm3", type=float, default=0.0, help="drop lesions smaller than this")
    parser.add_argument("--json", help="also write the per-case results here")
    parser.add_argument("--tta", action="store_true", help="segment the mean of 4 mirrored views (segment --tta)")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"{DATA} is not available; the real-data evaluation needs ../shared/data beside the project.")
        return 0

    from brainlesioncl.evaluation.segmentation import case_metrics
    from brainlesioncl.inference import InferenceConfig, Segmenter
    from brainlesioncl.io import to_xyz
    from brainlesioncl.registry import ModelRegistry

    registry = ModelRegistry()
    bundle = registry.get(args.model)
    segmenter = Segmenter.from_bundle(bundle, device=args.device,
                                       inference=InferenceConfig(min_lesion_mm3=args.min_lesion_mm3))
    print(f"Model {bundle.metadata.version} on {segmenter.device}\n")
    print("| dataset | case | disease | modalities | Dice | sensitivity | precision | HD95 mm | truth mL "
          "| predicted mL |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for dataset, (disease, files, _meaning) in DATASETS.items():
        for case_dir in sorted(p for p in (DATA / dataset).iterdir() if p.is_dir()):
            label_image = sitk.ReadImage(str(case_dir / "label.nii.gz"))
            inputs = {m: case_dir / f"{stem}.nii.gz" for m, stem in files.items()}
            inputs = {m: path for m, path in inputs.items() if path.exists()}
            reference = reference_on_label_grid(inputs, label_image)
            start = time.perf_counter()
            result = segmenter.segment(inputs, disease, reference=reference, tta=args.tta)
            seconds = time.perf_counter() - start
            truth = to_xyz(label_image) > 0
            predicted = to_xyz(result.label) > 0
            if predicted.shape != truth.shape:
                print(f"{case_dir.name}: label grid differs from every input; skipped", file=sys.stderr)
                continue
            m = case_metrics(predicted, truth, label_image.GetSpacing()).to_dict()
            rows.append({"dataset": dataset, "case": case_dir.name, "disease": disease,
                         "modalities": list(inputs), "seconds": round(seconds, 1), **m})
            print(f"| {dataset} | {case_dir.name} | {disease} | {'+'.join(inputs)} | {_fmt(m['dice'])} | "
                  f"{_fmt(m['sensitivity'])} | {_fmt(m['precision'])} | {_fmt(m['hd95_mm'], 1)} | "
                  f"{m['truth_ml']:.1f} | {m['predicted_ml']:.1f} |")
    for disease in sorted({r["disease"] for r in rows}):
        values = [r["dice"] for r in rows if r["disease"] == disease]
        print(f"\nmean Dice {disease}: {np.mean(values):.3f} over {len(values)} case(s)", end="")
    print()
    if args.json:
        Path(args.json).write_text(json.dumps({"model": bundle.metadata.version, "tta": args.tta, "cases": rows},
                                              indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
