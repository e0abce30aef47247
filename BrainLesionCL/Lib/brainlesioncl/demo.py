"""``brainlesioncl demo``: the main job end to end on data made on the spot, with no download.

Generates one phantom case per disease the active model knows (each with the modality set of the matching public
database, on a 1 mm grid), segments them with the active model on the CPU (or CUDA when present), and reports Dice,
sensitivity and precision against the phantoms' known truth. Writes per case the segmentation (NIfTI) and a PNG
overlay (truth green, prediction magenta), plus ``summary.json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import OutputPathError
from .evaluation.segmentation import case_metrics
from .inference import Segmenter
from .io import to_xyz, write_image
from .phantoms import PhantomConfig, generate_case, save_preview
from .registry import ModelRegistry

__all__ = ["DEMO_CASES", "DemoResult", "run_demo"]

#: disease -> modalities of its demo case (BraTS-, ISLES-, MSSEG- and WMH-like sets)
DEMO_CASES: dict[str, tuple[str, ...]] = {
    "tumour": ("FLAIR", "T1", "T1c", "T2"),
    "stroke": ("FLAIR", "T1", "T2", "DWI"),
    "MS": ("FLAIR", "T1", "T1c", "T2", "PD"),
    "WMH": ("FLAIR", "T1"),
}


@dataclass
class DemoResult:
    case: str
    disease: str
    modalities: list[str]
    metrics: dict
    seconds: float
    segmentation: Path
    overlay: Path


def run_demo(
    out_dir: str | Path,
    *,
    registry: ModelRegistry | None = None,
    version: str | None = None,
    device: str = "auto",
    seed: int = 1,
    size: tuple[int, int, int] = (160, 192, 144),
    say: Callable[[str], None] = print,
    overwrite: bool = False,
) -> list[DemoResult]:
    """Run the demo into ``out_dir`` (created if missing).

    Raises:
        OutputPathError: ``out_dir`` holds an earlier demo's results and ``overwrite`` is False (nothing is
            replaced silently).
    """
    out = Path(out_dir)
    earlier = sorted(p.name for p in out.glob("*") if p.name == "summary.json" or p.name.startswith("demo_")) \
        if out.is_dir() else []
    if earlier and not overwrite:
        raise OutputPathError(
            f"{out} holds an earlier demo's results ({', '.join(earlier[:3])}{', ...' if len(earlier) > 3 else ''}). "
            "Add --overwrite to replace them, or give another --output-dir.")
    out.mkdir(parents=True, exist_ok=True)
    registry = registry or ModelRegistry()
    bundle = registry.get(version)
    segmenter = Segmenter.from_bundle(bundle, device=device)
    say(f"Model {bundle.metadata.version} ({bundle.metadata.description}) on {segmenter.device}")
    results = []
    diseases = [d for d in DEMO_CASES if d in bundle.metadata.disease_slots] or list(DEMO_CASES)
    for index, disease in enumerate(diseases):
        name = f"demo_{disease}"
        phantom = generate_case(PhantomConfig(disease=disease, modalities=DEMO_CASES[disease], size=size,
                                              seed=seed + index))
        start = time.perf_counter()
        result = segmenter.segment(dict(phantom.images), disease)
        seconds = time.perf_counter() - start
        metrics = case_metrics(to_xyz(result.label), to_xyz(phantom.label), phantom.label.GetSpacing()).to_dict()
        segmentation = write_image(result.label, out / f"{name}_seg.nii.gz", overwrite=True)
        overlay = save_preview(phantom.images, out / f"{name}.png", label=phantom.label, prediction=result.label,
                               title=f"{name}: Dice {metrics['dice']:.3f} (green truth, magenta prediction)")
        results.append(DemoResult(name, disease, list(DEMO_CASES[disease]), metrics, seconds, segmentation, overlay))
        say(f"{name:<14} {'+'.join(DEMO_CASES[disease]):<20} Dice {metrics['dice']:.3f}  sensitivity "
            f"{_fmt(metrics['sensitivity'])}  precision {_fmt(metrics['precision'])}  lesion {metrics['truth_ml']:.1f}"
            f" mL (predicted {metrics['predicted_ml']:.1f} mL)  {seconds:.1f} s")
    summary = [{**r.__dict__, "segmentation": str(r.segmentation), "overlay": str(r.overlay)} for r in results]
    (out / "summary.json").write_text(json.dumps({"model": bundle.metadata.version, "cases": summary}, indent=2))
    say(f"Wrote segmentations, overlays and summary.json to {out}")
    return results


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
