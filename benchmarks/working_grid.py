"""Does a finer working grid find more small lesions? The same model run on a 1.5 mm and a 1 mm grid.

MS and WMH lesions are a few millimetres across, and the shipped models work on a 1.5 mm grid. This runs one model on
the real MS and WMH cases of ``../shared/data`` at its own spacing and at the finer ones given, and reports per case
the whole-volume Dice, the lesion-wise sensitivity (BraTS lesion-wise rules, MET variant: every lesion counts, one
dilation) and false positives, and the seconds. Inference only: the network was trained at its own spacing, so this
measures what the grid alone changes; training at 1 mm would cost (1.5 / 1)^3 = 3.4x the voxels per crop of the
same anatomy.

Usage (from the repository root; ``../shared/data`` beside the project)::

    python benchmarks/working_grid.py --model braincl-demo-v4 --spacings 1.5 1.0 --json docs/working_grid.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_crossval import CONFIG, fold_split  # noqa: E402
from real_sequence import DATA, case_inputs  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="braincl-demo-v4")
    parser.add_argument("--spacings", type=float, nargs="+", default=[1.5, 1.0])
    parser.add_argument("--datasets", nargs="+", default=["MS", "WMH"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"{DATA} is not available; nothing to measure.")
        return 0
    import SimpleITK as sitk
    from evaluate_real import reference_on_label_grid

    from brainlesioncl.evaluation.lesions import lesion_scores
    from brainlesioncl.evaluation.segmentation import dice
    from brainlesioncl.inference import Segmenter
    from brainlesioncl.io import to_xyz
    from brainlesioncl.preprocessing import PreprocessConfig
    from brainlesioncl.registry import ModelRegistry

    bundle = ModelRegistry().get(args.model)
    trained = bundle.metadata.preprocess_config
    split = fold_split(json.loads(CONFIG.read_text(encoding="utf-8")), None)
    rows = []
    for spacing in args.spacings:
        config = PreprocessConfig.from_dict({**trained.to_dict(), "spacing": spacing})
        segmenter = Segmenter.from_bundle(bundle, device="cpu", preprocessing=config)
        for name in args.datasets:
            dataset = split["datasets"][name]
            for case in dataset["train"]:  # the final split lists every labelled case under "train"
                images, label_path = case_inputs(dataset, case)
                label = sitk.ReadImage(str(label_path))
                start = time.perf_counter()
                result = segmenter.segment(images, dataset["disease"], reference=reference_on_label_grid(images, label))
                seconds = time.perf_counter() - start
                predicted, truth = to_xyz(result.label) > 0, to_xyz(label) > 0
                lesions = lesion_scores(predicted, truth, label.GetSpacing(), variant="MET")
                rows.append({"spacing": spacing, "dataset": name, "case": case, "dice": dice(predicted, truth),
                             "lesion_sensitivity": lesions.lesion_sensitivity, "detected": lesions.detected_lesions,
                             "true_lesions": lesions.true_lesions, "false_positives": lesions.false_positives,
                             "seconds": seconds})
                print(json.dumps(rows[-1]), flush=True)
    print(f"\n{args.model} (trained at {trained.spacing} mm)\n")
    print("| dataset | grid (mm) | cases | Dice | lesions found | false positives | seconds per case |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in args.datasets:
        for spacing in args.spacings:
            mine = [r for r in rows if r["dataset"] == name and r["spacing"] == spacing]
            print(f"| {name} | {spacing} | {len(mine)} | {np.mean([r['dice'] for r in mine]):.3f} | "
                  f"{sum(r['detected'] for r in mine)}/{sum(r['true_lesions'] for r in mine)} | "
                  f"{sum(r['false_positives'] for r in mine)} | {np.mean([r['seconds'] for r in mine]):.1f} |")
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "trained_spacing": trained.spacing, "rows": rows},
                                        indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
