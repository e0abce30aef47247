"""One row per connected lesion of a segmentation: what a radiologist reads off a result before trusting it.

Volume (mL), largest diameter (mm: the longest distance between two surface points, ITK's Feret diameter), centroid in
RAS millimetres (the coordinates 3D Slicer shows), voxel count and, when the probability map is given, the mean lesion
probability. Lesions are 26-connected components, largest first. The Slicer module shows these rows as a table whose
rows centre the views on a lesion; the CLI can write them as CSV/JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import SimpleITK as sitk

__all__ = ["LesionRow", "lesion_rows"]


@dataclass(frozen=True)
class LesionRow:
    index: int  # 1 = largest
    volume_ml: float
    largest_diameter_mm: float
    centroid_ras: tuple[float, float, float]
    voxels: int
    mean_probability: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def lesion_rows(label: sitk.Image, probability: sitk.Image | None = None) -> list[LesionRow]:
    """The lesions of a 0/1 labelmap, largest first (see the module docstring)."""
    components = sitk.RelabelComponent(sitk.ConnectedComponent(sitk.Cast(label > 0, sitk.sitkUInt8), True))
    shapes = sitk.LabelShapeStatisticsImageFilter()
    shapes.ComputeFeretDiameterOn()
    shapes.Execute(components)
    intensity = None
    if probability is not None:
        intensity = sitk.LabelStatisticsImageFilter()
        intensity.Execute(sitk.Cast(probability, sitk.sitkFloat32), components)
    voxel_ml = float(np.prod(label.GetSpacing())) / 1000.0
    rows = []
    for value in sorted(shapes.GetLabels()):
        x, y, z = shapes.GetCentroid(value)  # physical LPS
        voxels = int(shapes.GetNumberOfPixels(value))
        rows.append(LesionRow(
            index=int(value),
            volume_ml=voxels * voxel_ml,
            largest_diameter_mm=float(shapes.GetFeretDiameter(value)),
            centroid_ras=(-float(x), -float(y), float(z)),
            voxels=voxels,
            mean_probability=float(intensity.GetMean(value)) if intensity is not None else None,
        ))
    return rows
