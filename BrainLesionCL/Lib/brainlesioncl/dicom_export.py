"""DICOM out: a segmentation as DICOM SEG on the reference series, which a PACS stores and a viewer overlays, and its
per-lesion table as a DICOM structured report (TID 1500 measurement report) that references the SEG.

Written with ``highdicom`` (the optional ``dicom`` extra): one segment per label value of the result (the lesion, or a
tumour's sub-regions, or the metastasis classes), coded with the project's SNOMED CT table
(:mod:`brainlesioncl.terminology`), referencing the reference series' instances, in its Frame of Reference, with the
algorithm identified (BrainLesionCL, the model version and its weights' sha256) and a series description naming both.
The segmentation must already lie on the reference series' own grid (``segment --dicom`` makes it so); anything else
is refused rather than resampled, so the SEG's frames are exactly the source slices.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from .errors import OutputPathError, SettingsError
from .inference.segmenter import SegmentationResult
from .io.atomic import StagedOutputs, check_writable_folder
from .io.dicom import DicomSeries, ordered_slices
from .registry.bundle import ModelMetadata
from .terminology import BRAIN, CATEGORY, class_terms, disease_term

__all__ = ["measurement_report", "segmentation_dataset", "source_datasets", "write_dicom"]

#: A private coding scheme for what SNOMED CT and DICOM have no code for (DICOM allows "99"-prefixed designators).
PRIVATE_SCHEME = "99BRAINLESIONCL"

INSTALL_HINT = ("DICOM output needs the optional packages of the 'dicom' extra: pip install -e '.[dicom]' in a clone "
                "of BrainLesionCL (pip install 'brainlesioncl[dicom]' from a package index).")


def _highdicom() -> Any:
    try:
        import highdicom
    except ImportError as err:
        raise SettingsError(INSTALL_HINT) from err
    return highdicom


def _segments(result: SegmentationResult) -> list[tuple[int, Any]]:
    """(label value, term) of every segment: the one lesion, or the classes of a multi-class result."""
    if set(result.classes) - {1}:
        return sorted(class_terms(result.disease), key=lambda item: item[0])
    return [(1, disease_term(result.disease))]


def source_datasets(reference: DicomSeries) -> list:
    """The reference series' datasets (headers only) in slice order: what a SEG's frames and an SR's evidence
    refer to."""
    import pydicom

    return [pydicom.dcmread(str(file), stop_before_pixels=True) for file in ordered_slices(reference)]


def segmentation_dataset(result: SegmentationResult, reference: DicomSeries, model: ModelMetadata,
                         *, sources: list | None = None, series_number: int = 9901) -> Any:
    """The DICOM SEG (a ``highdicom.seg.Segmentation``) of ``result`` on ``reference``'s slices (``sources``: its
    :func:`source_datasets`, when already read).

    Raises:
        SettingsError: highdicom is missing (the message names the install command).
        OutputPathError: the result is not on the reference series' grid.
    """
    hd = _highdicom()
    from pydicom.sr.codedict import codes

    from . import __version__

    sources = sources if sources is not None else source_datasets(reference)
    label = result.label
    expected = (int(sources[0].Columns), int(sources[0].Rows), len(sources))
    if tuple(label.GetSize()) != expected:
        raise OutputPathError(
            f"The segmentation ({label.GetSize()} voxels) is not on {reference.label}'s grid {expected}: DICOM SEG "
            "frames must be the source slices. Segment with that series as the reference (segment --dicom does).")
    origin = np.array([float(v) for v in sources[0].ImagePositionPatient])
    if not np.allclose(label.GetOrigin(), origin, atol=1e-2):
        raise OutputPathError(f"The segmentation's origin {label.GetOrigin()} is not {reference.label}'s first "
                              f"slice position {tuple(origin)}: DICOM SEG frames must be the source slices.")
    array = sitk.GetArrayFromImage(label).astype(np.uint8)  # (slices, rows, columns) in the order of ``sources``
    sha = model.sha256.get("network", "")
    algorithm = hd.AlgorithmIdentificationSequence(
        name="BrainLesionCL", family=codes.cid7162.ArtificialIntelligence, version=model.version or model.name,
        source="BrainLesionCL", parameters={"model": model.version or model.name, "weights_sha256": sha})
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=value, segment_label=term.name,
            segmented_property_category=hd.sr.CodedConcept(CATEGORY.value, CATEGORY.scheme, CATEGORY.meaning),
            segmented_property_type=hd.sr.CodedConcept(term.type.value, term.type.scheme, term.type.meaning),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm,
            tracking_uid=hd.UID(), tracking_id=f"{term.name} {value}",
            anatomic_regions=[hd.sr.CodedConcept(BRAIN.value, BRAIN.scheme, BRAIN.meaning)])
        for value, term in _segments(result)]
    model_name = model.version or model.name
    segmentation = hd.seg.Segmentation(
        source_images=sources, pixel_array=array, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=series_number,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="BrainLesionCL",
        manufacturer_model_name=model_name[:64], software_versions=f"brainlesioncl {__version__}",
        device_serial_number=sha[:16] or "none", series_description=f"BrainLesionCL {model_name} {result.disease}"[:64],
        content_label="LESIONS", content_description=f"BrainLesionCL {result.disease} segmentation"[:64],
        omit_empty_frames=False)
    # highdicom copies Spacing Between Slices from the source images, where it is often missing or wrong (written as
    # 1 by some converters): a reader (dcmqi among them) then rebuilds the volume on that spacing and the frames land
    # between its planes. State the distance the slice positions have.
    measures = segmentation.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    measures.SpacingBetweenSlices = f"{label.GetSpacing()[2]:.6g}"
    return segmentation


def _readable(file: Path) -> None:
    """Read a written DICOM file back (raises when it is not one)."""
    import pydicom

    pydicom.dcmread(str(file))


def _segment_of(row: Any, result: SegmentationResult) -> int:
    """The SEG segment a lesion belongs to: the lesion segment, or for a split tumour the enhancing one when it has
    enhancing tissue (what a radiologist measures first), else the core, else the oedema."""
    if not set(result.classes) - {1}:
        return 1
    if row.enhancing_ml:
        return 3
    return 1 if row.core_ml else 2


def measurement_report(result: SegmentationResult, rows: list, segmentation: Any, sources: list, model: ModelMetadata,
                       *, series_number: int = 9902) -> Any:
    """A TID 1500 measurement report (``highdicom.sr.Comprehensive3DSR``) with one volumetric group per lesion of
    ``rows`` (:func:`brainlesioncl.lesion_report.lesion_rows`): volume (mL) and largest diameter (mm), the enhancing
    and core volumes of a split tumour, whether the model was unsure of it, each referencing its SEG segment.
    ``sources`` are the reference series' datasets the SEG refers to (headers suffice): the report's evidence."""
    hd = _highdicom()
    from pydicom.sr.codedict import codes

    from . import __version__

    concept = hd.sr.CodedConcept
    model_name = model.version or model.name
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=hd.UID(), name="BrainLesionCL", manufacturer_name="BrainLesionCL", model_name=model_name[:64])
    context = hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
        observer_type=codes.DCM.Device, observer_identifying_attributes=device))
    millilitre, millimetre = concept("ml", "UCUM", "milliliter"), concept("mm", "UCUM", "millimeter")
    volume, diameter = concept("118565006", "SCT", "Volume"), concept("81827009", "SCT", "Diameter")
    brain = hd.sr.FindingSite(concept(BRAIN.value, BRAIN.scheme, BRAIN.meaning))
    algorithm = hd.sr.AlgorithmIdentification(name="BrainLesionCL", version=f"{model_name} ({__version__})")
    terms = dict(_segments(result))
    groups = []
    for row in rows:
        segment = _segment_of(row, result)
        term = terms.get(segment, disease_term(result.disease))
        measurements = [hd.sr.Measurement(name=volume, value=round(row.volume_ml, 4), unit=millilitre),
                        hd.sr.Measurement(name=diameter, value=round(row.largest_diameter_mm, 2), unit=millimetre)]
        for name, value in (("Enhancing tumour volume", row.enhancing_ml), ("Tumour core volume", row.core_ml)):
            if value is not None:
                measurements.append(hd.sr.Measurement(
                    name=concept(name.upper().replace(" ", "_")[:16], PRIVATE_SCHEME, name),
                    value=round(value, 4), unit=millilitre))
        evaluations = []
        if row.unsure is not None:
            evaluations.append(hd.sr.QualitativeEvaluation(
                name=concept("UNSURE", PRIVATE_SCHEME, "Model unsure of this lesion"),
                value=concept("373066001", "SCT", "Yes") if row.unsure else concept("373067005", "SCT", "No")))
        groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"Lesion {row.index}"),
            referenced_segment=hd.sr.ReferencedSegment(
                sop_class_uid=segmentation.SOPClassUID, sop_instance_uid=segmentation.SOPInstanceUID,
                segment_number=segment, source_series=hd.sr.SourceSeriesForSegmentation(
                    segmentation.ReferencedSeriesSequence[0].SeriesInstanceUID)),
            finding_type=concept(term.type.value, term.type.scheme, term.type.meaning), algorithm_id=algorithm,
            finding_sites=[brain], measurements=measurements, qualitative_evaluations=evaluations or None))
    report = hd.sr.MeasurementReport(observation_context=context,
                                     procedure_reported=concept("24590-2", "LN", "MR Brain"),
                                     imaging_measurements=groups)
    return hd.sr.Comprehensive3DSR(
        evidence=[segmentation, *sources], content=report, series_instance_uid=hd.UID(), series_number=series_number,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="BrainLesionCL",
        series_description=f"BrainLesionCL {model_name} lesion report"[:64])


def write_dicom(result: SegmentationResult, reference: DicomSeries, model: ModelMetadata,
                seg_path: str | os.PathLike, *, sr_path: str | os.PathLike | None = None, rows: list | None = None,
                overwrite: bool = False) -> list[Path]:
    """Write the DICOM SEG of ``result`` on ``reference`` and, with ``sr_path``, the measurement report of ``rows``
    (:func:`brainlesioncl.lesion_report.lesion_rows`) referencing it: both read back before either is put in place,
    so a failure leaves neither. Returns the paths written."""
    paths = [Path(seg_path).expanduser(), *([Path(sr_path).expanduser()] if sr_path is not None else [])]
    for path in paths:
        check_writable_folder(path.parent)
        if path.exists() and not overwrite:
            raise OutputPathError(f"Output {path} exists already. Choose another name, or add --overwrite.")
    sources = source_datasets(reference)
    datasets = [segmentation_dataset(result, reference, model, sources=sources)]
    if sr_path is not None:
        datasets.append(measurement_report(result, rows or [], datasets[0], sources, model))
    with StagedOutputs() as outputs:
        for path, dataset in zip(paths, datasets, strict=True):
            outputs.add(path, functools.partial(_save, dataset), verify=_readable)
    return paths


def _save(dataset: Any, file: Path) -> None:
    dataset.save_as(str(file))
