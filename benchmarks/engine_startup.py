"""Start-up cost of a Segment click: a one-shot ``brainlesioncl segment`` against the kept-alive engine worker.

One phantom case (tumour, FLAIR+T1+T1c+T2, the default 1 mm grid), the shipped model, CPU. Measured in this run:

* ``python -c pass`` and ``import torch``: the floor any child process pays;
* one-shot CLI: ``python -m brainlesioncl.cli.main segment ...`` (what every click cost before the worker), median of
  ``--repeats`` runs, with the network time it reports;
* worker: the first job (starts the worker: Python, PyTorch, the model) and the following ones (only the work), through
  the Slicer module's own :class:`EngineWorker` (its ``process.py`` needs no Slicer).

Targets (issue 16): the CLI run <= 8 s on 2 cores; a second click <= the network time + 1 s.

Usage (from the repository root)::

    python benchmarks/engine_startup.py --repeats 3
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _timed(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, done.stdout


def _summary(stdout: str) -> dict:
    return json.loads(next(line for line in reversed(stdout.splitlines()) if line.startswith("{")))


def _process_module():
    spec = importlib.util.spec_from_file_location("blcl_process", ROOT / "BrainLesionCL" / "BrainLesionCLLib" /
                                                  "process.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["blcl_process"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", help="registry version (default: the active model)")
    args = parser.parse_args()

    import SimpleITK as sitk

    from brainlesioncl.phantoms import PhantomConfig, generate_case

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        case = generate_case(PhantomConfig(disease="tumour", modalities=("FLAIR", "T1", "T1c", "T2"), seed=11))
        inputs = []
        for modality, image in case.images.items():
            sitk.WriteImage(image, str(work / f"{modality}.nii.gz"))
            inputs += ["--input", f"{modality}={work / f'{modality}.nii.gz'}"]
        segment = ["segment", *inputs, "--disease", "tumour", "--device", "cpu", "--progress", "json",
                   "--overwrite", "--output", str(work / "label.nii.gz"), *(["--model", args.model] if args.model
                                                                           else [])]
        rows: list[tuple[str, float, str]] = []
        bare = statistics.median(_timed([sys.executable, "-c", "pass"])[0] for _ in range(args.repeats))
        torch_import = statistics.median(_timed([sys.executable, "-c", "import torch"])[0]
                                         for _ in range(args.repeats))
        rows += [("python -c pass", bare, ""), ("python -c 'import torch'", torch_import, "")]
        one_shot, network = [], []
        for _ in range(args.repeats):
            seconds, stdout = _timed([sys.executable, "-m", "brainlesioncl.cli.main", *segment])
            one_shot.append(seconds)
            network.append(_summary(stdout)["timings"]["inference"])
        cli = statistics.median(one_shot)
        rows.append(("one-shot CLI segment (every click before)", cli, f"network {statistics.median(network):.2f} s"))

        process = _process_module()
        worker = process.EngineWorker()
        try:
            for click in range(1, args.repeats + 2):
                job = worker.submit(segment)
                if job.wait(timeout=600) is not process.ProcessState.SUCCEEDED:
                    raise SystemExit(f"worker job failed: {job.log[-5:]}")
                net = (job.summary or {}).get("timings", {}).get("inference", float("nan"))
                rows.append((f"worker, click {click}" + (" (starts the worker)" if click == 1 else ""), job.elapsed,
                             f"network {net:.2f} s, overhead {job.elapsed - net:.2f} s"))
            assert worker.starts == 1, "the worker was restarted between clicks"
        finally:
            worker.stop()

    print("\n| step | seconds | vs one-shot CLI | note |\n|---|---|---|---|")
    for name, seconds, note in rows:
        print(f"| {name} | {seconds:.2f} | {seconds / cli:.2f} | {note} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
