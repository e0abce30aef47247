"""Does the uncertainty map tell a clinician where the model is wrong? Calibration and error detection of the shipped
model's test-time-flip uncertainty, on held-out phantoms of every pathology and on the real labelled cases.

Reported: expected calibration error (ECE, 10 bins, brain voxels), AUROC of the voxel uncertainty for detecting wrong
voxels, and per lesion: the share of false-positive lesion volume and of true-positive lesion volume flagged unsure at
``UNSURE_LESION_BITS`` (and the threshold that would meet the target, for information), plus the time cost of the
four views against one pass. Writes a reliability diagram PNG.

Usage (from the repository root)::

    python benchmarks/uncertainty.py --cases 2 --output-dir uncertainty_benchmark
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
PATHOLOGIES = {"tumour": ("FLAIR", "T1", "T1c", "T2"), "MS": ("FLAIR", "T1", "T2"), "stroke": ("FLAIR", "DWI"),
               "WMH": ("FLAIR", "T1"), "metastasis": ("FLAIR", "T1", "T1c", "T2")}
REAL = {"glioma_brats2013_deepmedic": ("tumour", {"FLAIR": "flair", "T1c": "t1c"}),
        "glioma_brats2018_deepvoxnet2": ("tumour", {"FLAIR": "flair", "T1": "t1"}),
        "wmh_vbnet_simonsf": ("WMH", {"FLAIR": "flair"}),
        "ms_ljubljana3d_open_ms_data": ("MS", {"FLAIR": "flair", "T1": "t1", "T1c": "t1c", "T2": "t2"})}


def auroc(scores: np.ndarray, positives: np.ndarray) -> float:
    """Area under the ROC curve by ranks (ties averaged)."""
    from scipy.stats import rankdata

    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=2, help="held-out phantoms per pathology")
    parser.add_argument("--model", default="braincl-demo-v2")
    parser.add_argument("--output-dir", default="uncertainty_benchmark")
    args = parser.parse_args()

    import SimpleITK as sitk
    from scipy import ndimage

    from brainlesioncl.inference import Segmenter
    from brainlesioncl.lesion_report import UNSURE_LESION_BITS
    from brainlesioncl.phantoms import PhantomConfig, generate_case
    from brainlesioncl.registry import ModelRegistry

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    segmenter = Segmenter.from_registry(ModelRegistry(), args.model, device="cpu")

    cases = []
    for disease, modalities in PATHOLOGIES.items():
        for i in range(args.cases):
            case = generate_case(PhantomConfig(disease=disease, modalities=modalities, size=(112, 136, 104),
                                               spacing=1.5, seed=77000 + 100 * list(PATHOLOGIES).index(disease) + i))
            cases.append(("phantom", disease, case.images, case.label))
    if DATA.is_dir():
        for dataset, (disease, files) in REAL.items():
            for folder in sorted((DATA / dataset).iterdir()):
                if (folder / "label.nii.gz").is_file():
                    images = {m: sitk.ReadImage(str(folder / f"{stem}.nii.gz")) for m, stem in files.items()}
                    label = sitk.ReadImage(str(folder / "label.nii.gz")) > 0
                    cases.append(("real", disease, images, label))

    rows, bins = [], {"phantom": np.zeros((10, 3)), "real": np.zeros((10, 3))}
    lesion_volumes = {"phantom": {"fp": [], "tp": []}, "real": {"fp": [], "tp": []}}
    times = []
    for kind, disease, images, truth_image in cases:
        t0 = time.perf_counter()
        single = segmenter.segment(images, disease)
        t1 = time.perf_counter()
        result = segmenter.segment(images, disease, uncertainty=True)
        t2 = time.perf_counter()
        times.append((single.timings["inference"], result.timings["inference"], t1 - t0, t2 - t1))
        probability = sitk.GetArrayFromImage(result.probability)
        entropy = sitk.GetArrayFromImage(result.uncertainty)
        truth = sitk.GetArrayFromImage(truth_image) > 0
        predicted = sitk.GetArrayFromImage(result.label) > 0
        brain = np.ones_like(truth) if kind == "phantom" else np.zeros_like(truth)
        if kind == "real":
            reference = next(iter(images.values()))
            brain = sitk.GetArrayFromImage(reference) != sitk.GetArrayFromImage(reference)[0, 0, 0]
        inside = brain | truth | predicted
        p, t, e = probability[inside], truth[inside], entropy[inside]
        index = np.minimum((p * 10).astype(int), 9)
        for b in range(10):
            chosen = index == b
            bins[kind][b] += (chosen.sum(), p[chosen].sum(), t[chosen].sum())
        wrong = (p >= 0.5) != t
        sample = np.random.default_rng(0).choice(len(p), size=min(len(p), 400_000), replace=False)
        rows.append({"kind": kind, "disease": disease, "auroc": auroc(e[sample], wrong[sample])})
        components, count = ndimage.label(predicted, structure=np.ones((3, 3, 3)))
        for value in range(1, count + 1):
            lesion = components == value
            voxels = int(lesion.sum())
            unsure = float(entropy[lesion].mean())
            kind_of_lesion = "tp" if (lesion & truth).any() else "fp"
            lesion_volumes[kind][kind_of_lesion].append((voxels, unsure))

    summary = {}
    for kind in ("phantom", "real"):
        counts = bins[kind]
        if counts[:, 0].sum() == 0:
            continue
        ece = float(np.sum(np.abs(counts[:, 1] - counts[:, 2])) / counts[:, 0].sum())

        def flagged(items, threshold):
            total = sum(v for v, _u in items)
            return sum(v for v, u in items if u > threshold) / total if total else float("nan")

        fp, tp = lesion_volumes[kind]["fp"], lesion_volumes[kind]["tp"]
        summary[kind] = {
            "cases": sum(1 for r in rows if r["kind"] == kind),
            "ece": ece,
            "auroc_error": float(np.nanmean([r["auroc"] for r in rows if r["kind"] == kind])),
            "fp_lesions": len(fp), "tp_lesions": len(tp),
            "fp_volume_flagged": flagged(fp, UNSURE_LESION_BITS), "tp_volume_flagged": flagged(tp, UNSURE_LESION_BITS),
            "sweep": {f"{th:.2f}": (flagged(fp, th), flagged(tp, th)) for th in np.arange(0.1, 0.95, 0.1)},
        }
    inference = np.array(times)
    summary["cost"] = {"network_ratio": float(np.median(inference[:, 1] / inference[:, 0])),
                       "whole_run_ratio": float(np.median(inference[:, 3] / inference[:, 2]))}
    (out / "results.json").write_text(json.dumps({"summary": summary, "cases": rows}, indent=2))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for kind, colour in (("phantom", "tab:blue"), ("real", "tab:red")):
        counts = bins[kind]
        keep = counts[:, 0] > 0
        if keep.any():
            ax.plot(counts[keep, 1] / counts[keep, 0], counts[keep, 2] / counts[keep, 0], "o-", color=colour,
                    label=f"{kind} (ECE {summary[kind]['ece']:.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed lesion fraction")
    ax.set_title("Reliability of the shipped model (4 flipped views)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "reliability.png", dpi=110)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
