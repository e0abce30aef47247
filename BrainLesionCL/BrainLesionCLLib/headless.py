"""Slicer's MRML core without the application (the ``slicer-core`` wheel), for tests and scripts outside Slicer.

Builds what the module logic needs from Slicer: an application logic, a scene, the Colors, Volumes, Segmentations
and SubjectHierarchy logics (in that order), slice orientation presets, and the ``slicer.mrmlScene`` /
``slicer.modules`` entries ``slicer.util`` reads. Inside Slicer none of this is needed.
"""

from __future__ import annotations

import os
import types

__all__ = ["headless_core"]


def headless_core() -> types.SimpleNamespace:
    """A ready scene and its logics; the returned object keeps the C++ objects alive (keep a reference to it)."""
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    import slicer
    import torch  # noqa: F401  - PyTorch must be loaded before VTK/Slicer's libraries, or the process can crash
    import vtk

    output = vtk.vtkOutputWindow()
    output.SetDisplayModeToAlwaysStdErr()
    vtk.vtkOutputWindow.SetInstance(output)
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
        segmentations=types.SimpleNamespace(logic=lambda: logics["Segmentations"]),
    )
    return types.SimpleNamespace(slicer=slicer, scene=scene, app_logic=app_logic, logics=logics)
