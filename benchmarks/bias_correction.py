"""Does N4 bias-field correction help the model? Dice with and without ``--bias-correction``, and its cost.

Held-out phantoms of every pathology with the default coil field (log amplitude 0.15) and a strong one (0.5), and
every real labelled case of ``../shared/data`` (skipped when absent). The same model and inputs; only the
correction differs. The answer decides the default (off unless it helps).

Usage (from the repository root)::

    python benchmarks/bias_correction.py --model braincl-demo-v2 --cases 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _score(segmenter, images, disease, truth, reference=None) -> tuple[float, float, float, float]:
    from brainlesioncl.evaluation.segmentation import dice
    from brainlesioncl.io import to_xyz

    scores, seconds = [], []
    for correct in (False, True):
        start = time.perf_counter()
        label = segmenter.segment(images, disease, reference=reference, bias_correction=correct).label
        seconds.append(time.perf_counter() - start)
        scores.append(dice(to_xyz(label) > 0, to_xyz(truth) > 0))
    return scores[0], scores[1], seconds[0], seconds[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model")
    parser.add_argument("--cases", type=int, default=2, help="phantoms per pathology and field strength")
    parser.add_argument("--no-real", action="store_true")
    args = parser.parse_args()

    import SimpleITK as sitk
    from evaluate_phantoms import held_out_phantoms
    from evaluate_real import DATA, DATASETS, reference_on_label_grid

    from brainlesioncl.inference import Segmenter
    from brainlesioncl.registry import ModelRegistry

    bundle = ModelRegistry().get(args.model)
    segmenter = Segmenter.from_bundle(bundle)
    print(f"Model {bundle.metadata.version}\n")
    print("| data | cases | Dice without | Dice with N4 | difference | seconds without | seconds with |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for field in (0.15, 0.5):
        rows = [_score(segmenter, dict(case.images), disease, case.label)
                for _name, disease, _modalities, case in held_out_phantoms(args.cases, bias=field)]
        _print(f"phantoms, coil field {field}", rows)
    if args.no_real or not DATA.is_dir():
        return 0
    for dataset, (disease, files, _meaning) in DATASETS.items():
        rows = []
        for case_dir in sorted(p for p in (DATA / dataset).iterdir() if p.is_dir()):
            label = sitk.ReadImage(str(case_dir / "label.nii.gz"))
            inputs = {m: case_dir / f"{stem}.nii.gz" for m, stem in files.items() if (case_dir / f"{stem}.nii.gz")
                      .exists()}
            rows.append(_score(segmenter, inputs, disease, label, reference_on_label_grid(inputs, label)))
        _print(dataset, rows)
    return 0


def _print(name: str, rows: list[tuple[float, float, float, float]]) -> None:
    without, with_n4, seconds_without, seconds_with = np.asarray(rows).mean(axis=0)
    print(f"| {name} | {len(rows)} | {without:.3f} | {with_n4:.3f} | {with_n4 - without:+.3f} | {seconds_without:.1f} "
          f"| {seconds_with:.1f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
