"""Which inputs matter on real cases: the modality study of the active model on ../shared/data.

Labelled sets are scored against their annotations (every subset of the modalities each case has; Dice on the
model's working grid). The unlabelled four-sequence BraTS cases are scored against their own all-inputs
segmentation, as the Slicer module does for a patient without annotation: how much the result depends on each
sequence. Nothing here was used to train or tune the shipped model.

Usage (from the repository root)::

    python benchmarks/modality_study_real.py --output-dir modality_study_real
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evaluate_real import DATA, DATASETS

#: labelled datasets studied (several modalities per case)
LABELLED = ("glioma_brats2013_deepmedic", "glioma_brats2018_deepvoxnet2", "ms_ljubljana3d_open_ms_data",
            "stroke_isles22")
#: unlabelled cases: folder -> disease tag
UNLABELLED = {"unlabeled/glioma_brats_gli_tutorials/BraTS-GLI-00001-000": "tumour",
              "unlabeled/metastasis_brats_met_aurora/BraTS-MET-00110-000": "tumour"}
FILES = {"FLAIR": "flair", "T1": "t1", "T1c": "t1c", "T2": "t2"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="registry version (default: the active model)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--output-dir", default="modality_study_real")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"{DATA} is not available; this study needs ../shared/data beside the project.")
        return 0

    from brainlesioncl.modality_study import input_importance, modality_study, unannotated_case, write_study
    from brainlesioncl.registry import ModelRegistry
    from brainlesioncl.training import load_training_case

    bundle = ModelRegistry().get(args.model)
    meta = bundle.metadata
    network = bundle.build()
    out = Path(args.output_dir)
    print(f"Model {meta.version}\n")

    def study(name: str, cases: list, against: str) -> None:
        results = modality_study(network, cases, meta.channels, meta.disease_slots, device=args.device,
                                 against=against, output=meta.output)
        files = write_study(results, out / name)
        print(f"### {name} ({len(cases)} case(s), against {'the annotation' if against == 'label' else 'all inputs'})"
              f"\n\n{files['markdown'].read_text()}")
        importance = input_importance(results)
        if importance:
            print("Dice drop when only one input is missing: "
                  + ", ".join(f"{m} {d:+.3f}" for m, d in importance) + "\n")

    for dataset in LABELLED:
        disease, files, _ = DATASETS[dataset]
        cases = []
        for case_dir in sorted(p for p in (DATA / dataset).iterdir() if p.is_dir()):
            inputs = {m: case_dir / f"{stem}.nii.gz" for m, stem in files.items()}
            cases.append(load_training_case(case_dir.name, {m: p for m, p in inputs.items() if p.exists()},
                                            case_dir / "label.nii.gz", disease, meta.channels,
                                            preprocessing=meta.preprocess_config, label_mapping="nonzero"))
        study(dataset, cases, "label")

    for folder, disease in UNLABELLED.items():
        case_dir = DATA / folder
        images = {m: case_dir / f"{stem}.nii.gz" for m, stem in FILES.items()}
        study(case_dir.name, [unannotated_case(case_dir.name, images, meta.channels, disease,
                                               meta.preprocess_config)], "full")
    return 0


if __name__ == "__main__":
    sys.exit(main())
