"""Inference benchmark: the published sliding-window protocol against BrainLesionCL's default fast path.

Both paths segment the same 240 x 240 x 155, four-channel (FLAIR, T1, T1c, T2), 1 mm case on the CPU with the same
full-width MoE U-Net weights. Each path runs in its own child process so its peak resident memory (RSS) is its own.
The table reports wall time, peak RSS, the speed-up ratio and the Dice agreement of the two labelmaps.

Usage (from the repository root)::

    python benchmarks/inference_speed.py                       # shipped/active model, or random weights
    python benchmarks/inference_speed.py --model braincl-v1    # a registry version (e.g. imported published weights)
    python benchmarks/inference_speed.py --bundle path/to/bundle --threads 2

Random weights give meaningful timings and memory but not a meaningful agreement (their outputs hover around 0.5);
the agreement target (>= 0.98) refers to trained weights, so pass a trained full-width model for that number.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import SimpleITK as sitk

from brainlesioncl.evaluation.segmentation import dice


def make_case(folder: Path, seed: int = 0) -> dict[str, str]:
    """A BraTS-sized case (240 x 240 x 155 at 1 mm, RAS): brain ellipsoid with a glioma-like lesion per contrast."""
    from brainlesioncl.phantoms import PhantomConfig, generate_case

    case = generate_case(PhantomConfig(disease="tumour", size=(240, 240, 155), seed=seed))
    paths = {}
    for modality in ("FLAIR", "T1", "T1c", "T2"):
        path = folder / f"{modality}.nii.gz"
        sitk.WriteImage(case.images[modality], str(path))
        paths[modality] = str(path)
    sitk.WriteImage(case.label, str(folder / "label.nii.gz"))
    return paths


def run_one(args: argparse.Namespace) -> None:
    """Child process: segment once with one protocol, print a JSON line with time and peak RSS."""
    import torch

    torch.set_num_threads(args.threads)
    from brainlesioncl.inference import InferenceConfig, Segmenter
    from brainlesioncl.modalities import BRAINCL_CHANNEL_ORDER, BRAINCL_DISEASE_SLOTS
    from brainlesioncl.models import ModelKind, MoEUNet, MoEUNetConfig
    from brainlesioncl.registry import ModelBundle, ModelMetadata, ModelRegistry

    if args.bundle:
        bundle = ModelBundle(args.bundle)
        network, metadata = bundle.build(), bundle.metadata
    elif args.model:
        bundle = ModelRegistry().get(args.model)
        network, metadata = bundle.build(), bundle.metadata
    else:
        torch.manual_seed(0)
        config = MoEUNetConfig()
        network = MoEUNet(config)
        metadata = ModelMetadata(
            name="random", kind=ModelKind.MOE_UNET, channels=[m.value for m in BRAINCL_CHANNEL_ORDER],
            disease_slots=[d.value for d in BRAINCL_DISEASE_SLOTS], architecture={"network": config.to_dict()},
        )
    if args.run_one == "reference":
        inference = InferenceConfig(mode="reference", roi_size=128, overlap=0.5, sw_batch_size=8, precision="fp32")
    else:
        inference = InferenceConfig(precision=args.precision)
    segmenter = Segmenter(network, metadata, device="cpu", inference=inference)
    inputs = json.loads(args.inputs)
    start = time.perf_counter()
    result = segmenter.segment(inputs, "tumour")
    seconds = time.perf_counter() - start
    sitk.WriteImage(result.label, args.output)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: KiB
    print(json.dumps({"seconds": seconds, "peak_rss_gb": peak_gb, "timings": result.timings,
                      "width": list(network.config.channels)}))



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="registry version to benchmark (default: random full-width weights)")
    parser.add_argument("--bundle", help="bundle folder to benchmark")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="auto", help="precision of the fast path (auto, fp32, bf16)")
    parser.add_argument("--skip-reference", action="store_true", help="time only the fast path")
    parser.add_argument("--run-one", choices=["reference", "fast"], help=argparse.SUPPRESS)
    parser.add_argument("--inputs", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_one:
        run_one(args)
        return

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        inputs = make_case(folder)
        truth = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "label.nii.gz")))
        results = {}
        paths = ["fast"] if args.skip_reference else ["reference", "fast"]
        for path in paths:
            output = folder / f"{path}.nii.gz"
            command = [sys.executable, __file__, "--run-one", path, "--inputs", json.dumps(inputs),
                       "--output", str(output), "--threads", str(args.threads), "--precision", args.precision]
            if args.model:
                command += ["--model", args.model]
            if args.bundle:
                command += ["--bundle", args.bundle]
            env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
            completed = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
            if completed.returncode != 0:
                sys.exit(f"{path} run failed:\n{completed.stderr}")
            results[path] = json.loads(completed.stdout.strip().splitlines()[-1])
            results[path]["label"] = sitk.GetArrayFromImage(sitk.ReadImage(str(output)))

    weights = args.model or args.bundle or "random full-width weights"
    print(f"\nInference on a 240x240x155 four-channel case, CPU, {args.threads} threads, weights: {weights}")
    print(f"{'path':<34} {'seconds':>9} {'peak RSS GB':>12} {'speed-up':>9} {'Dice vs truth':>14}")
    base = results.get("reference")
    for path in paths:
        r = results[path]
        ratio = base["seconds"] / r["seconds"] if base else float("nan")
        name = "reference (SW 128^3, 0.5, sw8, fp32)" if path == "reference" else f"fast (brain box, {args.precision})"
        print(f"{name:<34} {r['seconds']:>9.1f} {r['peak_rss_gb']:>12.2f} {ratio:>8.1f}x "
              f"{dice(r['label'], truth):>14.3f}")
    if base:
        print(f"Labelmap agreement (Dice, fast vs reference): {dice(results['fast']['label'], base['label']):.4f}")
    print("fast-path stage timings (s): " + json.dumps({k: round(v, 2) for k, v in results["fast"]["timings"].items()}))


if __name__ == "__main__":
    main()
