"""DICOM in: find the MR image series of a study (a folder or a zip), check each, and read it into a volume.

A PACS export is a folder of files in any order and nesting, often several series (and sometimes several studies or
patients) mixed. This module groups the files by Series Instance UID, keeps the MR image series and sets the rest
aside with the reason (other modalities, secondary captures, segmentations and reports, localizers, single images),
and reads a series only when its slices make a volume: one orientation, no duplicated or missing slice, uniform
spacing, no gantry tilt, one volume per slice position. Each refusal names the fix.

Reading uses SimpleITK's GDCM, which also decodes the compressed transfer syntaxes a PACS sends (JPEG lossless and
baseline, JPEG 2000, JPEG-LS, RLE). Nothing identifying is kept: a series is described by its number and
description, never by the patient's name, ID or birth date, and a study mix is reported as counts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InvalidImageError

__all__ = ["DicomSeries", "SLICE_SPACING_TOLERANCE", "dicom_seg_on_grid", "dicom_source", "find_series", "holds_dicom",
           "is_dicom_seg", "ordered_slices", "read_series", "series_of_files"]

#: Allowed relative spread of the distances between neighbouring slices before a series is refused as non-uniform.
SLICE_SPACING_TOLERANCE = 0.05
#: Largest angle (degrees) between the slice normal and the direction the slices advance in (gantry tilt).
MAX_TILT_DEGREES = 0.5

_SERIES_UID, _STUDY_UID, _PATIENT_ID = "0020|000e", "0020|000d", "0010|0020"
_MODALITY, _SOP_CLASS, _IMAGE_TYPE = "0008|0060", "0008|0016", "0008|0008"
_DESCRIPTION, _NUMBER, _FRAMES = "0008|103e", "0020|0011", "0028|0008"
_POSITION, _ORIENTATION, _TILT = "0020|0032", "0020|0037", "0018|1120"
#: SOP classes that are not images to segment, by UID prefix -> what they are.
_NOT_IMAGES = {
    "1.2.840.10008.5.1.4.1.1.7": "a secondary capture (a screenshot or scanned page)",
    "1.2.840.10008.5.1.4.1.1.66": "a segmentation or registration object",
    "1.2.840.10008.5.1.4.1.1.88": "a structured report",
    "1.2.840.10008.5.1.4.1.1.104": "an encapsulated document",
    "1.2.840.10008.5.1.4.1.1.11": "a presentation state",
    "1.2.840.10008.5.1.4.1.1.481": "a radiotherapy object",
}
_ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"


@dataclass(frozen=True)
class DicomSeries:
    """One series of a study: its files, what it is, and why it is set aside (``None`` when it is an MR image series
    to use). ``tags`` holds the first file's metadata (GDCM keys such as ``0008|103e``), for identification."""

    uid: str
    files: tuple[Path, ...]
    tags: dict[str, str] = field(repr=False, compare=False)
    problem: str | None = None

    @property
    def description(self) -> str:
        return self.tags.get(_DESCRIPTION, "").strip()

    @property
    def number(self) -> str:
        return self.tags.get(_NUMBER, "").strip()

    @property
    def label(self) -> str:
        """How messages name the series (its number and description; never anything about the patient)."""
        number = f"series {self.number}" if self.number else "a series"
        return f"{number} '{self.description}'" if self.description else number


def holds_dicom(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a zip file, or a folder with at least one DICOM file in it or below it."""
    path = Path(path)
    if path.is_file():
        return zipfile.is_zipfile(path)
    return path.is_dir() and any(_header(file) is not None for file in _files(path, limit=200))


@contextlib.contextmanager
def dicom_source(path: str | os.PathLike) -> Iterator[Path]:
    """The folder to search: ``path`` itself, or a zip extracted into a temporary folder removed afterwards (member
    paths that would land outside it are refused)."""
    path = Path(path).expanduser()
    if path.is_dir():
        yield path
        return
    if not zipfile.is_zipfile(path):
        raise InvalidImageError(f"{path} is neither a folder of DICOM files nor a zip of one.")
    folder = Path(tempfile.mkdtemp(prefix="brainlesioncl-dicom-"))
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                target = (folder / member.filename).resolve()
                if not target.is_relative_to(folder.resolve()):
                    raise InvalidImageError(f"{path}: the zip member {member.filename!r} would be written outside "
                                            "the folder it is extracted to; the zip is refused.")
            archive.extractall(folder)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _files(folder: Path, limit: int | None = None) -> Iterator[Path]:
    count = 0
    for root, _dirs, names in os.walk(folder):
        for name in sorted(names):
            if name.startswith(".") or name.upper() == "DICOMDIR":
                continue
            yield Path(root) / name
            count += 1
            if limit is not None and count >= limit:
                return


def _header(file: Path) -> dict[str, str] | None:
    """The metadata of one file when it is DICOM (pixel data not read), else None."""
    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileName(str(file))
    reader.LoadPrivateTagsOn()
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return None
    tags = {key: reader.GetMetaData(key).strip() for key in reader.GetMetaDataKeys()}
    return tags if _SERIES_UID in tags else None


def find_series(folder: str | os.PathLike) -> tuple[list[DicomSeries], list[DicomSeries]]:
    """``(usable, set_aside)`` series of a study folder (see :func:`dicom_source` for a zip).

    Raises:
        InvalidImageError: no DICOM file at all, or images of several patients or studies mixed (reported as counts:
            one study per folder, so no patient's images are ever segmented as another's).
    """
    groups: dict[str, list[tuple[Path, dict[str, str]]]] = {}
    for file in _files(Path(folder)):
        tags = _header(file)
        if tags is not None:
            groups.setdefault(tags[_SERIES_UID], []).append((file, tags))
    if not groups:
        raise InvalidImageError(f"{folder} holds no DICOM file. Give the folder (or zip) a PACS export wrote, or "
                                "image files (NIfTI, NRRD) per modality.")
    patients = {tags.get(_PATIENT_ID, "") for members in groups.values() for _, tags in members}
    studies = {tags.get(_STUDY_UID, "") for members in groups.values() for _, tags in members}
    if len(patients) > 1 or len(studies) > 1:
        raise InvalidImageError(
            f"{folder} mixes the images of {len(patients)} patient(s) in {len(studies)} studies. Give one study per "
            "folder (export each study on its own), so that no patient's images are segmented with another's.")
    usable: list[DicomSeries] = []
    set_aside: list[DicomSeries] = []
    for uid, members in groups.items():
        series = DicomSeries(uid, tuple(file for file, _ in members), members[0][1])
        problem = _not_a_volume(series)
        if problem is None:
            usable.append(series)
        else:
            set_aside.append(DicomSeries(series.uid, series.files, series.tags, problem))
    return sorted(usable, key=_series_order), sorted(set_aside, key=_series_order)


def _series_order(series: DicomSeries) -> tuple[int, str]:
    """Series number order (as a PACS viewer lists them), then description."""
    return (int(series.number) if series.number.isdigit() else 1 << 30, series.description)


def series_of_files(files: list[Path] | list[str]) -> DicomSeries:
    """The one series made of ``files`` (e.g. the instances a DICOM database lists for a loaded volume).

    Raises:
        InvalidImageError: a file is not DICOM, or the files belong to several series.
    """
    headers = [(Path(file), _header(Path(file))) for file in files]
    unreadable = [str(file) for file, tags in headers if tags is None]
    if unreadable or not headers:
        raise InvalidImageError(f"not DICOM files of one series: {', '.join(unreadable[:3]) or 'no file given'}")
    uids = {tags[_SERIES_UID] for _, tags in headers if tags is not None}
    if len(uids) != 1:
        raise InvalidImageError(f"the files belong to {len(uids)} series, not one.")
    first = headers[0][1]
    assert first is not None
    series = DicomSeries(uids.pop(), tuple(file for file, _ in headers), first)
    problem = _not_a_volume(series)
    return series if problem is None else DicomSeries(series.uid, series.files, series.tags, problem)


def _not_a_volume(series: DicomSeries) -> str | None:
    """Why a series is not an MR volume to segment, or None."""
    tags = series.tags
    modality = tags.get(_MODALITY, "").upper()
    sop = tags.get(_SOP_CLASS, "")
    for prefix, what in _NOT_IMAGES.items():
        if sop.startswith(prefix):
            return f"{what}, not an image series"
    if modality and modality != "MR":
        return f"a {modality} series, not MR"
    if sop == _ENHANCED_MR or _number_of_frames(tags) > 1:
        return ("an enhanced multi-frame MR object, which BrainLesionCL does not read yet: export the series as "
                "classic single-frame MR images (most PACS and scanners offer it), or convert it with dcm2niix")
    image_type = tags.get(_IMAGE_TYPE, "").upper()
    if "LOCALIZER" in image_type or "SCOUT" in image_type:
        return "a localizer (scout), not a diagnostic series"
    if len(series.files) < 3:
        return f"{len(series.files)} image(s), not a volume"
    return None


def _number_of_frames(tags: dict[str, str]) -> int:
    try:
        return int(float(tags.get(_FRAMES, "1") or 1))
    except ValueError:
        return 1


def ordered_slices(series: DicomSeries) -> list[Path]:
    """The series' files in slice order along the slice normal, once checked to make one regular volume.

    Raises:
        InvalidImageError: the slices do not make one regular volume (the message says what and how to fix it).
    """
    headers = [_header(file) or {} for file in series.files]
    orientations = {h.get(_ORIENTATION, "") for h in headers}
    if len(orientations) != 1 or "" in orientations:
        raise InvalidImageError(f"{series.label}: its slices have {len(orientations)} different orientations (or "
                                "none): it is not one volume. Export the series again, or split it by orientation.")
    row, column = np.array([float(v) for v in orientations.pop().split("\\")]).reshape(2, 3)
    normal = np.cross(row, column)
    positions = np.array([[float(v) for v in h.get(_POSITION, "0\\0\\0").split("\\")] for h in headers])
    depth = positions @ normal
    order = np.argsort(depth, kind="stable")
    depth, positions = depth[order], positions[order]
    steps = np.diff(depth)
    distinct = np.unique(np.round(depth, 2))
    if len(distinct) < len(depth):
        per_position = len(depth) / len(distinct)
        if per_position == int(per_position) and per_position > 1:
            raise InvalidImageError(
                f"{series.label}: {int(per_position)} images at each of its {len(distinct)} slice positions, a 4-D "
                "series (several b-values, echoes or time points). Export each volume as its own series (for "
                "diffusion, the trace image of the highest b-value is the DWI channel).")
        raise InvalidImageError(f"{series.label}: {len(depth) - len(distinct)} duplicated slice(s) (two images at "
                                "one position). Export the series again; a PACS can send a slice twice.")
    spacing = float(np.median(steps))
    if steps.max() > 1.5 * spacing:
        gap = int(np.argmax(steps))
        missing = int(round(steps[gap] / spacing)) - 1
        raise InvalidImageError(
            f"{series.label}: about {missing} slice(s) missing after slice {gap + 1} of {len(depth)} (a gap of "
            f"{steps[gap]:.1f} mm where the slices are {spacing:.1f} mm apart). Send the whole series again.")
    if steps.max() - steps.min() > SLICE_SPACING_TOLERANCE * spacing:
        raise InvalidImageError(
            f"{series.label}: the slice spacing varies from {steps.min():.2f} to {steps.max():.2f} mm (more than "
            f"{SLICE_SPACING_TOLERANCE:.0%}); it cannot be read as one regular grid. Resample it to uniform slices "
            "(e.g. dcm2niix, or 3D Slicer's DICOM import, which regularises it) and give the NIfTI.")
    advance = positions[-1] - positions[0]
    tilt = float(np.degrees(np.arccos(min(1.0, abs(advance @ normal) / max(np.linalg.norm(advance), 1e-9)))))
    try:
        stated = abs(float(series.tags.get(_TILT, "0") or 0))
    except ValueError:
        stated = 0.0
    if tilt > MAX_TILT_DEGREES or stated > MAX_TILT_DEGREES:
        raise InvalidImageError(
            f"{series.label}: acquired with a gantry tilt of {max(tilt, stated):.1f} degrees, so its slices are "
            "sheared, not stacked. Convert it with tilt correction (dcm2niix does it by default) and give the NIfTI.")
    return [series.files[i] for i in order]


def read_series(series: DicomSeries) -> sitk.Image:
    """The series as one 3-D float32 volume with its geometry from the slices' positions (its slices in the order of
    :func:`ordered_slices`, which DICOM SEG frames follow too).

    Raises:
        InvalidImageError: the slices do not make one regular volume, or its pixel data cannot be decoded.
    """
    reader = sitk.ImageSeriesReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileNames([str(file) for file in ordered_slices(series)])
    try:
        image = reader.Execute()
    except RuntimeError as err:
        raise InvalidImageError(
            f"{series.label}: its pixel data cannot be decoded ({str(err).strip().splitlines()[-1][:200]}). If it "
            "uses a compressed transfer syntax GDCM cannot read, export it uncompressed (Explicit VR Little "
            "Endian) from the PACS, or decompress the files first with GDCM's gdcmconv --raw or DCMTK's dcmdjpeg "
            "and dcmdjp2k.") from err
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InvalidImageError(f"{series.label}: not a scalar 3-D series (colour or multi-component pixels).")
    return sitk.Cast(image, sitk.sitkFloat32)


def is_dicom_seg(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a DICOM Segmentation object (a file, header only read)."""
    path = Path(path)
    tags = _header(path) if path.is_file() else None
    return tags is not None and tags.get(_MODALITY, "").upper() == "SEG"


def dicom_seg_on_grid(path: str | os.PathLike, image: sitk.Image) -> sitk.Image | None:
    """A DICOM SEG as a label image on ``image``'s grid (each voxel the number of its segment, 0 elsewhere), or None
    when the SEG's frames do not lie on that grid's slices (another series, orientation or resolution).

    Each frame is placed by its own position, not by the SEG's declared slice spacing, so a SEG without its empty
    frames (as some viewers write them) or with a wrong Spacing Between Slices still lands on the right slices.
    Needs highdicom (the ``dicom`` extra).

    Raises:
        InvalidImageError: not a readable DICOM SEG.
    """
    try:
        import highdicom as hd
    except ImportError as err:
        raise InvalidImageError(f"{path}: reading a DICOM SEG needs the 'dicom' extra: pip install -e '.[dicom]'.") \
            from err
    try:
        segmentation = hd.seg.segread(str(path))
        frames = np.asarray(segmentation.pixel_array)
        shared = segmentation.SharedFunctionalGroupsSequence[0]
        orientation = np.array(shared.PlaneOrientationSequence[0].ImageOrientationPatient, float)
        per_frame = segmentation.PerFrameFunctionalGroupsSequence
        positions = [np.array(f.PlanePositionSequence[0].ImagePositionPatient, float) for f in per_frame]
        segments = [int((f.get("SegmentIdentificationSequence") or
                         shared.SegmentIdentificationSequence)[0].ReferencedSegmentNumber) for f in per_frame]
    except (ValueError, RuntimeError, AttributeError, KeyError, IndexError) as err:
        raise InvalidImageError(f"{path}: cannot read it as a DICOM SEG ({str(err)[:200]}).") from err
    if frames.ndim == 2:
        frames = frames[None]
    direction = np.array(image.GetDirection()).reshape(3, 3)
    if not np.allclose(orientation, np.concatenate([direction[:, 0], direction[:, 1]]), atol=1e-3) or \
            frames.shape[1:] != (image.GetSize()[1], image.GetSize()[0]):
        return None
    label = np.zeros(image.GetSize()[::-1], np.uint8)
    for frame, position, segment in zip(frames, positions, segments, strict=True):
        index = np.array(image.TransformPhysicalPointToContinuousIndex(tuple(position)))
        z = int(round(index[2]))
        if not np.allclose(index, [0.0, 0.0, z], atol=1e-2) or not 0 <= z < image.GetSize()[2]:
            return None
        label[z][frame > 0] = segment
    out = sitk.GetImageFromArray(label)
    out.CopyInformation(image)
    return out
