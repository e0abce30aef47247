"""Draw docs/slicer_overlay.png: a phantom segmented through the Slicer module's logic, rendered by Slicer's slice
pipeline (headless, slicer-core), so the picture is exactly what the module puts in the Red view.

Usage (from the repository root, with ``pip install -e ".[slicer-test]"``)::

    python scripts/slicer_overlay.py [--disease tumour] [--output docs/slicer_overlay.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--disease", default="tumour")
    parser.add_argument("--seed", type=int, default=77)
    parser.add_argument("--output", default=str(REPO / "docs" / "slicer_overlay.png"))
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "BrainLesionCL"))
    from BrainLesionCLLib.headless import headless_core

    core = headless_core()  # kept alive for the whole run: the module logics point at it
    slicer = core.slicer
    import SimpleITK as sitk
    from BrainLesionCLLib import BrainLesionCLLogic
    from BrainLesionCLLib.mrml_io import ijk_to_ras_of_image
    from BrainLesionCLLib.snapshot import render_slice_png

    from brainlesioncl.phantoms import DATASET_PRESETS, PhantomConfig, generate_case

    modalities = {"tumour": DATASET_PRESETS["BRATS"][1], "MS": DATASET_PRESETS["MSSEG"][1],
                  "stroke": DATASET_PRESETS["ISLES"][1], "WMH": DATASET_PRESETS["WMH"][1]}[args.disease]
    case = generate_case(PhantomConfig(disease=args.disease, modalities=modalities, seed=args.seed))
    nodes = {m: slicer.util.addVolumeFromArray(sitk.GetArrayFromImage(img), ijkToRAS=ijk_to_ras_of_image(img),
                                               name=f"phantom {m}") for m, img in case.images.items()}
    outcome = BrainLesionCLLogic().segment(nodes, disease=args.disease, referenceChannel="FLAIR")
    path = render_slice_png(nodes["FLAIR"], outcome.segmentationNode, args.output, size=512)
    print(f"{path}: {outcome.modelVersion}, {outcome.lesionVolumeMl:.1f} mL, {outcome.lesionCount} lesion(s), "
          f"{outcome.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
