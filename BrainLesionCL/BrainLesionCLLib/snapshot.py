"""A PNG of a slice with the segmentation blended on top, rendered by Slicer's own slice pipeline without OpenGL.

It uses a slice logic on the label layer (what a slice view shows, including the radiological left-right flip), so
the picture is what a clinician would see in the Red view. Useful for reports and documentation; works headless.
"""

from __future__ import annotations

from pathlib import Path

import slicer
import vtk

__all__ = ["render_slice_png"]


def render_slice_png(volume_node, segmentation_node, path: str, *, orientation: str = "Axial",
                     offset_mm: float | None = None, size: int = 512, opacity: float = 0.5) -> Path:
    """Write ``path`` (PNG): ``volume_node`` with the visible segments of ``segmentation_node`` blended at
    ``opacity``, on the slice through ``offset_mm`` (default: the centre of the segmentation's bounds)."""
    scene = volume_node.GetScene()
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__snapshot_labels")
    seg_logic = slicer.modules.segmentations.logic()
    seg_logic.ExportVisibleSegmentsToLabelmapNode(segmentation_node, labelmap, volume_node)
    slice_logic = slicer.vtkMRMLSliceLogic()
    app_logic = slicer.app.applicationLogic() if hasattr(slicer, "app") else None
    if app_logic is not None:
        slice_logic.SetMRMLApplicationLogic(app_logic)
    slice_logic.SetMRMLScene(scene)
    slice_node = slice_logic.AddSliceNode("Snapshot")
    slice_node.SetOrientation(orientation)
    composite = slice_logic.GetSliceCompositeNode()
    try:
        composite.SetBackgroundVolumeID(volume_node.GetID())
        composite.SetLabelVolumeID(labelmap.GetID())
        composite.SetLabelOpacity(opacity)
        slice_logic.UpdatePipeline()
        slice_logic.ResizeSliceNode(size, size)
        slice_node.Modified()
        slice_logic.FitSliceToBackground(size, size)
        if offset_mm is None:
            bounds = [0.0] * 6
            segmentation_node.GetRASBounds(bounds)
            centre = [(bounds[0] + bounds[1]) / 2, (bounds[2] + bounds[3]) / 2, (bounds[4] + bounds[5]) / 2]
            slice_node.JumpSliceByOffsetting(*centre)
        else:
            slice_logic.SetSliceOffset(offset_mm)
        connection = slice_logic.GetImageDataConnection()
        producer = connection.GetProducer()
        producer.Update()
        image = producer.GetOutputDataObject(connection.GetIndex())
        writer = vtk.vtkPNGWriter()
        writer.SetFileName(str(path))
        writer.SetInputData(image)
        writer.Write()
    finally:
        slice_logic.SetMRMLScene(None)
        for node in (slice_node, composite, labelmap):
            if node is not None and node.GetScene() is scene:
                scene.RemoveNode(node)
    return Path(path)
