"""Draw docs/slicer_overlay.png: a phantom segmented through the Slicer module's logic, rendered by Slicer's slice
pipeline (headless, slicer-core), so the picture is exactly what the module puts in the Red view.

Usage (from the repository root, with ``pip install -e ".[slicer-test]"``)::

    python scripts/slicer_overlay.py [--disease tumour] [--output docs/slicer_overlay.png]
"""

from __future__ import annotations

import argparse
import os
import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def headless_slicer():
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    import slicer
    import torch  # noqa: F401  - PyTorch must be loaded before VTK/Slicer's libraries, or the process crashes
    import vtk

    app_logic = slicer.vtkSlicerApplicationLogic()
    app_logic.SetSliceLogics(vtk.vtkCollection())
    app_logic.SetViewLogics(vtk.vtkCollection())
    scene = slicer.vtkMRMLScene()
    crosshair = slicer.vtkMRMLCrosshairNode()
    crosshair.SetCrosshairName("default")
    scene.AddNode(crosshair)
    app_logic.SetMRMLScene(scene)
    logics = {}
    for name, cls in (("Colors", slicer.vtkMRMLColorLogic), ("Volumes", slicer.vtkSlicerVolumesLogic),
                      ("Segmentations", slicer.vtkSlicerSegmentationsModuleLogic),
                      ("SubjectHierarchy", slicer.vtkSlicerSubjectHierarchyModuleLogic)):
        logic = cls()
        logic.SetMRMLApplicationLogic(app_logic)
        if name == "Colors":
            app_logic.SetColorLogic(logic)
        logic.SetMRMLScene(scene)
        app_logic.SetModuleLogic(name, logic)
        logics[name] = logic
    slicer.vtkMRMLSliceNode.AddDefaultSliceOrientationPresets(scene, True)
    slicer.mrmlScene = scene
    slicer.modules = types.SimpleNamespace(
        volumes=types.SimpleNamespace(logic=lambda: logics["Volumes"]),
        segmentations=types.SimpleNamespace(logic=lambda: logics["Segmentations"]))
    sys.path.insert(0, str(REPO / "BrainLesionCL"))
    # Keep the C++ application logic and scene alive for the whole run: the module logics point at them.
    slicer._brainlesioncl_keepalive = (app_logic, scene, logics)
    return slicer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--disease", default="tumour")
    parser.add_argument("--seed", type=int, default=77)
    parser.add_argument("--output", default=str(REPO / "docs" / "slicer_overlay.png"))
    args = parser.parse_args()
    slicer = headless_slicer()
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
