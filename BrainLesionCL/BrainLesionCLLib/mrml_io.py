"""MRML volume and segmentation nodes <-> SimpleITK images, with the RAS/LPS bookkeeping done once, here.

MRML stores geometry as IJK-to-RAS; ITK uses LPS. ``LPS = diag(-1, -1, 1) RAS``. Voxel arrays are in the same
``[k, j, i]`` order on both sides, so only the geometry needs converting. A linear parent transform is folded into
the geometry (the engine sees world coordinates); a non-linear one must be hardened first.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import slicer
import vtk

from brainlesioncl.errors import GeometryError, InvalidImageError

__all__ = ["ijk_to_ras_of_image", "label_into_segment", "segment_to_image", "transform_problem", "volume_to_image"]

_FLIP = np.diag([-1.0, -1.0, 1.0])


def transform_problem(node) -> str | None:
    """Why a volume's placement cannot be read as a linear geometry (None: it can). A DICOM series with irregular
    slice spacing or a tilted gantry is loaded by Slicer under a non-linear "acquisition" (grid) transform."""
    parent = node.GetParentTransformNode()
    if parent is None or parent.IsTransformToWorldLinear():
        return None
    return (f"volume '{node.GetName()}' is under a non-linear transform ('{parent.GetName()}', e.g. the acquisition "
            "transform of a DICOM series with irregular slices). Harden it (Data module: right-click the volume > "
            "Harden transform), or load the series again with Slicer's DICOM setting 'Acquisition geometry "
            "regularization' set to 'apply regularization transform' and harden that.")


def _world_ijk_to_ras(node) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    ijk_to_ras = slicer.util.arrayFromVTKMatrix(matrix)
    if (problem := transform_problem(node)) is not None:
        raise GeometryError(problem[0].upper() + problem[1:])
    parent = node.GetParentTransformNode()
    if parent is not None:
        to_world = vtk.vtkMatrix4x4()
        parent.GetMatrixTransformToWorld(to_world)
        ijk_to_ras = slicer.util.arrayFromVTKMatrix(to_world) @ ijk_to_ras
    return ijk_to_ras


def volume_to_image(node) -> sitk.Image:
    """A scalar volume node as a SimpleITK image in world (LPS) geometry.

    Raises:
        InvalidImageError: no image data, a vector/4-D volume.
    """
    if node is None or node.GetImageData() is None:
        raise InvalidImageError(f"Volume '{node.GetName() if node else None}' has no image data; load it again.")
    if node.GetImageData().GetNumberOfScalarComponents() != 1:
        raise InvalidImageError(
            f"Volume '{node.GetName()}' has {node.GetImageData().GetNumberOfScalarComponents()} components; "
            "BrainLesionCL needs one scalar 3-D volume per channel (split 4-D or colour volumes first)."
        )
    array = slicer.util.arrayFromVolume(node)
    ijk_to_ras = _world_ijk_to_ras(node)
    spacing = np.linalg.norm(ijk_to_ras[:3, :3], axis=0)
    image = sitk.GetImageFromArray(np.array(array, copy=True))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple((_FLIP @ (ijk_to_ras[:3, :3] / spacing)).flatten().tolist()))
    image.SetOrigin(tuple((_FLIP @ ijk_to_ras[:3, 3]).tolist()))
    return image


def ijk_to_ras_of_image(image: sitk.Image) -> np.ndarray:
    """The IJK-to-RAS matrix of a SimpleITK image (the inverse of :func:`volume_to_image`'s conversion)."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    matrix = np.eye(4)
    matrix[:3, :3] = _FLIP @ direction @ np.diag(image.GetSpacing())
    matrix[:3, 3] = _FLIP @ np.array(image.GetOrigin())
    return matrix


def segment_to_image(segmentation_node, segment_id: str, reference_node) -> sitk.Image:
    """One segment as a 0/1 SimpleITK label on the reference volume's grid (e.g. a clinician's annotation)."""
    array = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation_node, segment_id, reference_node)
    reference = volume_to_image(reference_node)
    label = sitk.GetImageFromArray((np.asarray(array) > 0).astype(np.uint8))
    label.CopyInformation(reference)
    return label


def label_into_segment(
    label: sitk.Image, reference_node, segmentation_node, *, name: str, color: tuple[float, float, float],
    terminology: str | None = None,
) -> str:
    """Add a 0/1 label (on the reference volume's grid) to the segmentation as one new segment; returns its id."""
    array = sitk.GetArrayFromImage(label)
    if array.shape != tuple(reversed(reference_node.GetImageData().GetDimensions())):
        raise GeometryError("The result is not on the reference volume's grid; this is a bug, please report it.")
    segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(reference_node)
    segment_id = segmentation_node.GetSegmentation().AddEmptySegment("", name, color)
    segment = segmentation_node.GetSegmentation().GetSegment(segment_id)
    if terminology:
        segment.SetTag(segment.GetTerminologyEntryTagName(), terminology)
    slicer.util.updateSegmentBinaryLabelmapFromArray((array > 0).astype(np.uint8), segmentation_node, segment_id,
                                                     reference_node)
    return segment_id
