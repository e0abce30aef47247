"""One row per connected lesion of a segmentation: what a radiologist reads off a result before trusting it.

Volume (mL), largest diameter (mm: the longest distance between two surface points, ITK's Feret diameter), centroid in
RAS millimetres (the coordinates 3D Slicer shows), voxel count and, when the probability map is given, the mean lesion
probability. Lesions are 26-connected components, largest first. The Slicer module shows these rows as a table whose
rows centre the views on a lesion; the CLI can write them as CSV/JSON.

**Brightest on**: given the input sequences on the label's grid, each lesion names the sequence where it stands out
most above the rest of the brain (its mean minus the brain's median, in units of the brain's robust spread, so
sequences of any scale compare). It is what a radiologist checks first: a WMH should be brightest on FLAIR, an acute
infarct on DWI, an enhancing lesion on T1c; a lesion brightest on an unexpected sequence deserves a second look.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import SimpleITK as sitk

__all__ = ["UNSURE_LESION_BITS", "LesionRow", "lesion_rows", "write_lesion_report"]


@dataclass(frozen=True)
class LesionRow:
    index: int  # 1 = largest
    volume_ml: float
    largest_diameter_mm: float
    centroid_ras: tuple[float, float, float]
    voxels: int
    mean_probability: float | None
    #: Mean predictive entropy inside the lesion (bits, 0..1) when the uncertainty was computed, else None.
    mean_uncertainty: float | None = None
    #: True when the model is unsure of this lesion (mean uncertainty above :data:`UNSURE_LESION_BITS`).
    unsure: bool | None = None
    #: The sequence on which the lesion stands out most (see the module docstring), when the sequences were given.
    brightest_on: str | None = None
    #: Its contrast there: (lesion mean - brain median) / brain spread.
    brightest_contrast: float | None = None
    #: For a tumour split into sub-regions (labels 1 core, 2 oedema, 3 enhancing; :mod:`brainlesioncl.subregions`):
    #: the lesion's enhancing tumour (ET) and tumour core (TC) in mL; None for a one-class result.
    enhancing_ml: float | None = None
    core_ml: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: Mapping) -> LesionRow:
        """A row of a JSON report (:func:`write_lesion_report`) back as a LesionRow."""
        return cls(**{**row, "centroid_ras": tuple(row["centroid_ras"])})


#: A lesion whose mean voxel uncertainty exceeds this many bits is flagged for the clinician to check.
UNSURE_LESION_BITS = 0.5


def _contrast_by_sequence(components: sitk.Image, sequences: Mapping[str, sitk.Image],
                          count: int) -> dict[str, np.ndarray]:
    """Per sequence, each lesion's (mean - brain median) / brain spread; index 0 is unused."""
    labels = sitk.GetArrayViewFromImage(components)
    out = {}
    for name, image in sequences.items():
        values = sitk.GetArrayViewFromImage(image).astype(np.float32)
        brain = values[(values != 0) & (labels == 0)]  # outside the lesions; skull-stripped background is 0
        if brain.size < 100:
            continue
        low, median, high = np.percentile(brain, [25, 50, 75])
        spread = max(float(high - low) / 1.349, 1e-6)  # the IQR of a normal distribution is 1.349 sigma
        sums = np.bincount(labels.ravel(), weights=values.ravel(), minlength=count + 1)
        sizes = np.maximum(np.bincount(labels.ravel(), minlength=count + 1), 1)
        out[name] = (sums / sizes - median) / spread
    return out


def lesion_rows(label: sitk.Image, probability: sitk.Image | None = None,
                uncertainty: sitk.Image | None = None,
                sequences: Mapping[str, sitk.Image] | None = None) -> list[LesionRow]:
    """The lesions of a labelmap, largest first (see the module docstring). A multi-class label (tumour sub-regions,
    metastasis classes) gives each lesion's enhancing and core volumes too.

    Args:
        sequences: ``{name: image}`` on the label's grid (e.g. ``Preparation.reference_grid``)
            for the "brightest on" column.
    """
    components = sitk.RelabelComponent(sitk.ConnectedComponent(sitk.Cast(label > 0, sitk.sitkUInt8), True))
    shapes = sitk.LabelShapeStatisticsImageFilter()
    shapes.ComputeFeretDiameterOn()
    shapes.Execute(components)
    intensity = None
    if probability is not None:
        intensity = sitk.LabelStatisticsImageFilter()
        intensity.Execute(sitk.Cast(probability, sitk.sitkFloat32), components)
    unsure = None
    if uncertainty is not None:
        unsure = sitk.LabelStatisticsImageFilter()
        unsure.Execute(sitk.Cast(uncertainty, sitk.sitkFloat32), components)
    voxel_ml = float(np.prod(label.GetSpacing())) / 1000.0
    contrast = _contrast_by_sequence(components, sequences, len(shapes.GetLabels())) if sequences else {}
    classes = sitk.GetArrayViewFromImage(label)
    parts: dict[str, np.ndarray] = {}
    if classes.max(initial=0) > 1:
        lesion_of = sitk.GetArrayViewFromImage(components)
        count = len(shapes.GetLabels()) + 1
        parts = {"enhancing_ml": np.bincount(lesion_of[classes == 3], minlength=count) * voxel_ml,
                 "core_ml": np.bincount(lesion_of[np.isin(classes, (1, 3))], minlength=count) * voxel_ml}
    rows = []
    for value in sorted(shapes.GetLabels()):
        brightest = max(contrast, key=lambda name: contrast[name][value]) if contrast else None
        x, y, z = shapes.GetCentroid(value)  # physical LPS
        voxels = int(shapes.GetNumberOfPixels(value))
        rows.append(LesionRow(
            index=int(value),
            volume_ml=voxels * voxel_ml,
            largest_diameter_mm=float(shapes.GetFeretDiameter(value)),
            centroid_ras=(-float(x), -float(y), float(z)),
            voxels=voxels,
            mean_probability=float(intensity.GetMean(value)) if intensity is not None else None,
            mean_uncertainty=float(unsure.GetMean(value)) if unsure is not None else None,
            unsure=bool(unsure.GetMean(value) > UNSURE_LESION_BITS) if unsure is not None else None,
            brightest_on=brightest,
            brightest_contrast=round(float(contrast[brightest][value]), 2) if brightest is not None else None,
            **{name: float(volumes[value]) for name, volumes in parts.items()},
        ))
    return rows


def write_lesion_report(rows: list[LesionRow], path, *, overwrite: bool = False, warnings: Sequence[str] = ()) -> None:
    """The rows as CSV (``.csv``: one line per lesion, a total line, then one ``warning`` line per plausibility
    warning) or JSON (``.json``, the warnings under ``"warnings"``), written atomically. The warnings travel with the
    table so a report read later still says when the result looked implausible (:mod:`brainlesioncl.plausibility`)."""
    import csv
    import io
    import json
    from pathlib import Path

    from .errors import OutputPathError
    from .io.atomic import StagedOutputs, check_writable_folder

    path = Path(path)
    if path.suffix.lower() not in (".csv", ".json"):
        raise OutputPathError(f"--report {path}: give a .csv or .json file name.")
    check_writable_folder(path.parent)
    if path.exists() and not overwrite:
        raise OutputPathError(f"{path} exists already; choose another name or add --overwrite to replace it.")
    total = {"lesions": len(rows), "volume_ml": round(sum(r.volume_ml for r in rows), 4)}
    if path.suffix.lower() == ".json":
        text = json.dumps({"lesions": [r.to_dict() for r in rows], "total": total, "warnings": list(warnings)},
                          indent=2) + "\n"
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["lesion", "volume_ml", "largest_diameter_mm", "centroid_r", "centroid_a", "centroid_s",
                         "voxels", "mean_probability", "mean_uncertainty", "unsure", "brightest_on",
                         "brightest_contrast", "enhancing_ml", "core_ml"])
        for r in rows:
            writer.writerow([r.index, f"{r.volume_ml:.4f}", f"{r.largest_diameter_mm:.2f}",
                             *(f"{v:.2f}" for v in r.centroid_ras), r.voxels,
                             "" if r.mean_probability is None else f"{r.mean_probability:.3f}",
                             "" if r.mean_uncertainty is None else f"{r.mean_uncertainty:.3f}",
                             "" if r.unsure is None else ("yes" if r.unsure else "no"), r.brightest_on or "",
                             "" if r.brightest_contrast is None else f"{r.brightest_contrast:.2f}",
                             *("" if v is None else f"{v:.4f}" for v in (r.enhancing_ml, r.core_ml))])
        split = any(r.enhancing_ml is not None for r in rows)
        writer.writerow(["total", f"{total['volume_ml']:.4f}", "", "", "", "", sum(r.voxels for r in rows), "", "",
                         sum(1 for r in rows if r.unsure), "", "",
                         *((f"{sum(r.enhancing_ml or 0 for r in rows):.4f}", f"{sum(r.core_ml or 0 for r in rows):.4f}")
                           if split else ("", ""))])
        for warning in warnings:
            writer.writerow(["warning", warning])
        text = buffer.getvalue()
    with StagedOutputs() as outputs:
        outputs.add(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
