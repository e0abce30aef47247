"""How often do the plausibility warnings fire, and on what? Every real case in ../shared/data segmented as a user
would (the case's own sequences, its disease tag, the shipped model, ``prepare=auto``), with the checks of
:mod:`brainlesioncl.plausibility`.

Two groups: the **curated** cases (skull-stripped, co-registered research data, where the shipped model's results
are usable: a warning there is a false alarm unless the result is wrong) and the **raw or unusual** exams (skull-on
thick-slice T1c, a chronic-stroke T2, where the results are implausible and must warn). Writes a JSON record and
prints a Markdown table.

Usage (from the repository root)::

    python benchmarks/plausibility.py --json docs/plausibility/results.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from evaluate_real import DATA, DATASETS, reference_on_label_grid

#: Raw or unusual exams: (folder under ../shared/data, {modality: file stem}, disease tag). The first three are the
#: implausible results of issue 31; the two unlabelled BraTS exams are curated.
OTHER_CASES = [
    ("enhancing_lesion_pyradiomics/brain1", {"T1c": "t1c"}, "tumour", "raw"),
    ("enhancing_lesion_pyradiomics/brain2", {"T1c": "t1c"}, "metastasis", "raw"),
    ("unlabeled/chronic_stroke_arc_t2lesion/M2265", {"T2": "t2"}, "stroke", "raw"),
    ("unlabeled/glioma_brats_gli_tutorials/BraTS-GLI-00001-000",
     {"FLAIR": "flair", "T1": "t1", "T1c": "t1c", "T2": "t2"}, "tumour", "curated"),
    ("unlabeled/metastasis_brats_met_aurora/BraTS-MET-00110-000",
     {"FLAIR": "flair", "T1": "t1", "T1c": "t1c", "T2": "t2"}, "metastasis", "curated"),
]


def cases() -> list[tuple[str, dict, str, str, Path | None]]:
    """(name, {modality: path}, disease, group, label path or None) for every case."""
    found = []
    for dataset, (disease, files, _meaning) in DATASETS.items():
        if dataset == "enhancing_lesion_pyradiomics":
            continue  # raw skull-on exams: listed in OTHER_CASES
        for folder in sorted(p for p in (DATA / dataset).iterdir() if p.is_dir()):
            inputs = {m: folder / f"{stem}.nii.gz" for m, stem in files.items() if (folder / f"{stem}.nii.gz").exists()}
            found.append((f"{dataset}/{folder.name}", inputs, disease, "curated", folder / "label.nii.gz"))
    for relative, files, disease, group in OTHER_CASES:
        folder = DATA / relative
        label = folder / "label.nii.gz"
        found.append((relative, {m: folder / f"{stem}.nii.gz" for m, stem in files.items()}, disease, group,
                      label if label.exists() else None))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="registry version (default: the active model)")
    parser.add_argument("--json", help="write the per-case record here")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"{DATA} is not available; this benchmark needs ../shared/data beside the project.")
        return 0
    from brainlesioncl.inference import Segmenter
    from brainlesioncl.registry import ModelRegistry

    registry = ModelRegistry()
    bundle = registry.get(args.model)
    segmenter = Segmenter.from_bundle(bundle, device="cpu")
    rows = []
    print(f"Model {bundle.metadata.version}\n")
    print("| case | group | disease | sequences | lesion mL | truth mL | warnings |")
    print("|---|---|---|---|---:|---:|---|")
    for name, inputs, disease, group, label_path in cases():
        label_image = sitk.ReadImage(str(label_path)) if label_path is not None else None
        reference = reference_on_label_grid(inputs, label_image) if label_image is not None else next(iter(inputs))
        start = time.perf_counter()
        result = segmenter.segment(inputs, disease, reference=reference)
        truth_ml = None
        if label_image is not None:
            truth_ml = float(np.count_nonzero(sitk.GetArrayViewFromImage(label_image))) * \
                float(np.prod(label_image.GetSpacing())) / 1000.0
        checks = [w.check for w in result.warnings]
        rows.append({"case": name, "group": group, "disease": disease, "sequences": list(inputs),
                     "lesion_ml": round(result.lesion_volume_ml, 2),
                     "truth_ml": None if truth_ml is None else round(truth_ml, 2),
                     "warnings": [w.to_dict() for w in result.warnings],
                     "seconds": round(time.perf_counter() - start, 1)})
        print(f"| {name} | {group} | {disease} | {'+'.join(inputs)} | {result.lesion_volume_ml:.1f} | "
              f"{'' if truth_ml is None else f'{truth_ml:.1f}'} | {', '.join(checks) or '-'} |", flush=True)
    curated = [r for r in rows if r["group"] == "curated"]
    raw = [r for r in rows if r["group"] == "raw"]
    print(f"\ncurated cases with a warning: {sum(bool(r['warnings']) for r in curated)} of {len(curated)}; "
          f"raw/unusual exams warned: {sum(bool(r['warnings']) for r in raw)} of {len(raw)}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"model": bundle.metadata.version, "cases": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
