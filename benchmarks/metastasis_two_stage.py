"""Two-stage metastasis pipeline vs the single-pass MoE U-Net at an equal CPU training budget, on phantoms.

Phantom metastasis cases (several small enhancing lesions with oedema, some only a few millimetres) are generated
with FLAIR, T1c and T1; both approaches train from scratch for the same wall-clock budget on the same cases and are
scored on held-out phantoms with the BraTS 2023 lesion-wise metrics, BraTS-MET variant (whole tumour for the
single-pass model, which predicts one lesion class; WT/TC/ET for the two-stage model), plus detection sensitivity for
lesions under 10 mm, and panoptica's instance scores when panoptica is installed. The held-out predictions are saved
(``predictions.npz``), so ``--score-only DIR`` re-scores them without training again (e.g. after a metric change).
Optionally segments the unlabelled real metastasis case of ../shared/data and saves a PNG overlay for a visual check.

Usage (from the repository root)::

    python benchmarks/metastasis_two_stage.py --budget-min 10 --train 8 --test 4
    python benchmarks/metastasis_two_stage.py --score-only metastasis_benchmark     # re-score saved predictions

``--recipe cpu`` (default) trains the segmentor with lesion-balanced crops, 48^3 windows and batch Dice
(``MetTrainConfig.cpu``); ``--recipe reference`` keeps the reference's per-crop Dice on whole 64^3 crops.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "unlabeled" / "metastasis_brats_met_aurora" / "BraTS-MET-00110-000"
SPACING = 1.5
SIZE = (104, 120, 96)


def score(saved, small: dict, training: str) -> tuple[str, dict]:
    """The results table of saved predictions: BraTS 2023 lesion-wise (MET variant) and, when installed, panoptica."""
    from brainlesioncl.evaluation.lesions import lesion_scores, lesion_wise_metrics

    spacing = (SPACING,) * 3
    count = len([k for k in saved.files if k.startswith("truth_")])
    rows: dict[str, list] = {"two-stage": [], "single-pass": []}
    instance: dict[str, list] = {"two-stage": [], "single-pass": []}
    try:
        import panoptica  # noqa: F401

        from brainlesioncl.evaluation.lesions import panoptica_scores
    except ImportError:
        panoptica_scores = None
    for index in range(count):
        truth = saved[f"truth_{index}"]
        rows["two-stage"].append(lesion_wise_metrics(saved[f"two-stage_{index}"], truth, spacing, variant="MET"))
        rows["single-pass"].append({"WT": lesion_scores(saved[f"single-pass_{index}"] > 0, truth > 0, spacing,
                                                        variant="MET")})
        if panoptica_scores is not None:
            instance["two-stage"].append(panoptica_scores(saved[f"two-stage_{index}"], truth, spacing))
            instance["single-pass"].append(panoptica_scores(saved[f"single-pass_{index}"], truth > 0, spacing,
                                                            {"WT": (1, 2, 3)}))
    summary = {}
    lines = ["| approach | region | lesion-wise Dice | lesion-wise HD95 mm | lesion sensitivity | FP / case | "
             "volume Dice |" + (" panoptica PQ | panoptica RQ |" if panoptica_scores else ""),
             "|---|---|---:|---:|---:|---:|---:|" + ("---:|---:|" if panoptica_scores else "")]
    for name, per_case in rows.items():
        for region in per_case[0]:
            values = [c[region] for c in per_case]

            def mean(attr: str, values=values) -> float:
                finite = [getattr(v, attr) for v in values if np.isfinite(getattr(v, attr))]
                return float(np.mean(finite)) if finite else float("nan")

            s = {k: mean(k) for k in ("lesion_dice", "lesion_hd95_mm", "lesion_sensitivity", "false_positives",
                                      "volume_dice")}
            line = (f"| {name} | {region} | {s['lesion_dice']:.3f} | {s['lesion_hd95_mm']:.1f} | "
                    f"{s['lesion_sensitivity']:.3f} | {s['false_positives']:.2f} | {s['volume_dice']:.3f} |")
            if panoptica_scores is not None:
                s["panoptica_pq"] = float(np.nanmean([c[region]["pq"] for c in instance[name]]))
                s["panoptica_rq"] = float(np.nanmean([c[region]["rq"] for c in instance[name]]))
                line += f" {s['panoptica_pq']:.3f} | {s['panoptica_rq']:.3f} |"
            summary[f"{name} {region}"] = s
            lines.append(line)
    for name, (total, found) in small.items():
        lines.append(f"\n{name}: lesions < 10 mm detected {found}/{total}"
                     + (f" ({found / total:.2f})" if total else ""))
    lines.append(f"\n{training}")
    return "\n".join(lines), summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget-min", type=float, default=10.0, help="training minutes per approach")
    parser.add_argument("--train", type=int, default=8)
    parser.add_argument("--test", type=int, default=4)
    parser.add_argument("--seed", type=int, default=3100)
    parser.add_argument("--output-dir", default="metastasis_benchmark")
    parser.add_argument("--recipe", choices=("cpu", "reference"), default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--score-only", metavar="DIR", help="re-score the predictions.npz saved in DIR; no training")
    args = parser.parse_args()
    if args.score_only:
        out = Path(args.score_only)
        saved = np.load(out / "predictions.npz")
        meta = json.loads((out / "results.json").read_text())
        table, summary = score(saved, meta["small_lesions"], meta.get("training", ""))
        print(table)
        (out / "results.md").write_text(table + "\n")
        (out / "results.json").write_text(json.dumps({**meta, "summary": summary}, indent=2))
        return 0

    import SimpleITK as sitk
    import torch

    from brainlesioncl.metastasis import (
        DetectorConfig,
        MetastasisPipeline,
        MetTrainConfig,
        SegmentorConfig,
        build_detector,
        build_segmentor,
        load_met_case,
        metastasis_metadata,
        train_detector,
        train_segmentor,
    )
    from brainlesioncl.modalities import BRAINCL_CHANNEL_ORDER, BRAINCL_DISEASE_SLOTS
    from brainlesioncl.models import MoEUNet, MoEUNetConfig
    from brainlesioncl.phantoms import PhantomConfig, generate_case
    from brainlesioncl.preprocessing import PreprocessConfig
    from brainlesioncl.training import TrainConfig, case_from_arrays, train
    from brainlesioncl.training.data import TrainingCase

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    preprocessing = PreprocessConfig(spacing=SPACING)
    modalities = ("FLAIR", "T1c", "T1")
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)

    def cases(count: int, offset: int):
        made = []
        for i in range(count):
            phantom = generate_case(PhantomConfig(disease="metastasis", modalities=modalities, size=SIZE,
                                                  spacing=SPACING, seed=args.seed + offset + i))
            made.append(load_met_case(f"met{offset + i}", phantom.images, phantom.classes,
                                      preprocessing=preprocessing))
        return made

    print("Generating phantoms", flush=True)
    train_cases, test_cases = cases(args.train, 0), cases(args.test, 500)
    budget = args.budget_min * 60

    # -- two-stage -------------------------------------------------------------------------------------------------
    if args.recipe == "cpu":
        config = MetTrainConfig.cpu(epochs=10_000, seed=args.seed)
    else:
        config = MetTrainConfig(epochs=10_000, crops_per_case=4, segmentor_lr=1e-3, segmentor_optimizer="adam",
                                seed=args.seed)
    detector, segmentor = build_detector(DetectorConfig.cpu()), build_segmentor(SegmentorConfig.cpu())
    t0 = time.perf_counter()
    det = train_detector(detector, train_cases, config, time_budget_s=0.2 * budget)
    seg = train_segmentor(segmentor, detector, train_cases, config, time_budget_s=budget - (time.perf_counter() - t0))
    two_stage_minutes = (time.perf_counter() - t0) / 60
    print(f"two-stage ({args.recipe} recipe): detector {len(det.losses)} epochs, segmentor {len(seg.losses)} "
          f"epochs, {two_stage_minutes:.1f} min; segmentor loss {seg.losses[0]:.3f} -> {seg.losses[-1]:.3f}",
          flush=True)
    metadata = metastasis_metadata("metbench", DetectorConfig.cpu(), SegmentorConfig.cpu(), preprocessing=preprocessing)
    pipeline = MetastasisPipeline(detector, segmentor, metadata, device="cpu")

    # -- single pass MoE U-Net on the same cases (whole tumour) ---------------------------------------------------
    order = [m.value for m in BRAINCL_CHANNEL_ORDER]
    slots = [d.value for d in BRAINCL_DISEASE_SLOTS]

    def as_moe_case(case) -> TrainingCase:
        image = np.zeros((6, *case.classes.shape), np.float32)
        for source, name in enumerate(modalities):
            image[order.index(name)] = case.image[source]
        return case_from_arrays(case.name, image, (case.classes > 0).astype(np.uint8),
                                [m in modalities for m in order], "tumour")

    moe = MoEUNet(MoEUNetConfig(channels=(8, 16, 32, 64, 128)))
    moe_cases = [as_moe_case(c) for c in train_cases]
    optimizer = torch.optim.Adam(moe.parameters(), lr=1e-3, weight_decay=1e-5)
    t0, epochs = time.perf_counter(), 0
    while time.perf_counter() - t0 < budget:
        train(moe, moe_cases, TrainConfig(epochs=1, crop_size=64, batch_size=2, seed=args.seed + epochs), slots,
              device="cpu", optimizer=optimizer)
        epochs += 1
    single_minutes = (time.perf_counter() - t0) / 60
    print(f"single-pass MoE: {epochs} epochs, {single_minutes:.1f} min", flush=True)

    # -- scoring ---------------------------------------------------------------------------------------------------
    from brainlesioncl.inference.predictor import InferenceConfig, Predictor, build_context
    from brainlesioncl.metastasis.labels import regions_to_classes

    predictor = Predictor(moe, device="cpu", config=InferenceConfig(precision="fp32"))
    small = {"two-stage": [0, 0], "single-pass": [0, 0]}
    from scipy import ndimage

    saved: dict[str, np.ndarray] = {}
    for index, case in enumerate(test_cases):
        regions, _ = pipeline.predict_regions(case.image)
        two_stage = regions_to_classes(regions >= 0.5)
        moe_case = as_moe_case(case)
        single = predictor.predict(moe_case.image, build_context(moe_case.present, "metastasis", slots)) >= 0.5
        saved[f"truth_{index}"] = case.classes.astype(np.uint8)
        saved[f"two-stage_{index}"] = two_stage.astype(np.uint8)
        saved[f"single-pass_{index}"] = single.astype(np.uint8)
        labels, count = ndimage.label(case.classes > 0, structure=np.ones((3, 3, 3)))
        for lesion_index in range(1, count + 1):
            lesion = labels == lesion_index
            diameter = 2 * (3 * lesion.sum() * SPACING**3 / (4 * np.pi)) ** (1 / 3)
            if diameter < 10:
                for name, prediction in (("two-stage", two_stage > 0), ("single-pass", single)):
                    small[name][0] += 1
                    small[name][1] += int(np.logical_and(prediction, ndimage.binary_dilation(lesion)).any())
    np.savez_compressed(out / "predictions.npz", **saved)
    training = (f"Training: two-stage {two_stage_minutes:.1f} min ({args.recipe} recipe; detector {len(det.losses)}, "
                f"segmentor {len(seg.losses)} epochs), single-pass {single_minutes:.1f} min ({epochs} epochs); "
                f"{args.train} training / {args.test} test phantoms at {SPACING} mm.")
    table, summary = score(np.load(out / "predictions.npz"), small, training)
    print(table)
    (out / "results.md").write_text(table + "\n")
    (out / "results.json").write_text(json.dumps({"summary": summary, "small_lesions": small, "training": training},
                                                 indent=2))

    if DATA.is_dir():
        images = {m: sitk.ReadImage(str(DATA / f"{m.lower()}.nii.gz")) for m in modalities}
        result = pipeline.segment(images, reference="FLAIR")
        sitk.WriteImage(result.label, str(out / "real_metastasis_seg.nii.gz"))
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        t1c = sitk.GetArrayFromImage(images["T1c"])
        label = sitk.GetArrayFromImage(result.label)
        z = int(np.argmax(label.sum(axis=(1, 2)))) if label.any() else t1c.shape[0] // 2
        fig, axes = plt.subplots(1, 2, figsize=(9, 4.6))
        for ax, overlay in zip(axes, (False, True), strict=True):
            ax.imshow(t1c[z], cmap="gray", origin="lower")
            if overlay:
                ax.imshow(np.ma.masked_equal(label[z], 0), cmap="autumn", alpha=0.55, origin="lower",
                          vmin=1, vmax=3)
            ax.axis("off")
        axes[0].set_title("BraTS-MET-00110 T1c (unlabelled, real)")
        axes[1].set_title(f"two-stage pipeline: {result.lesion_count} lesion(s), {result.lesion_volume_ml:.1f} mL")
        fig.tight_layout()
        fig.savefig(out / "real_metastasis_overlay.png", dpi=100)
        print(f"real case: {result.lesion_count} lesions, {result.lesion_volume_ml:.2f} mL -> "
              f"{out / 'real_metastasis_overlay.png'}")
    else:
        print(f"{DATA} not available: the real-case overlay is skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
