"""A DICOM study to a model's channels: every MR series identified and mapped, as ``--input auto=`` does for files.

Each usable series of the study (:func:`brainlesioncl.io.dicom.find_series`) is identified from its DICOM tags, then
its series description, then its voxels (:func:`brainlesioncl.identification.identify`), the series are read together
as one exam (the pre/post-contrast T1 pair), and :func:`~brainlesioncl.identification.auto_map` fills the channels:
never a channel twice, never with another contrast, never below the confidence threshold. Series set aside (other
modalities, localizers, reports) and series left out (unsure, a channel the model lacks, a second FLAIR) come back
with the reason, named by series number and description only.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import SimpleITK as sitk

from ..io.dicom import DicomSeries, find_series, read_series
from ..modalities import Modality
from . import auto_map, decisive_name, identify
from .dicom import identification_tags
from .result import Identification

__all__ = ["StudyMapping", "identify_series", "map_dicom_study"]


@dataclass
class StudyMapping:
    """The volumes of the mapped series by channel (in the model's channel order), what identified each, and the
    series not used with the reason."""

    images: dict[str, sitk.Image] = field(default_factory=dict)
    series: dict[str, DicomSeries] = field(default_factory=dict)
    evidence: dict[str, tuple[str, Identification]] = field(default_factory=dict)  # channel -> (series, why)
    not_used: list[tuple[str, str]] = field(default_factory=list)  # (series, why)

    def lines(self) -> list[str]:
        """What a user reads: one line per series."""
        used = [f"{series} -> {channel} ({found.label}: {found.reason})"
                for channel, (series, found) in self.evidence.items()]
        return used + [f"{series}: not used ({why})" for series, why in self.not_used]


def identify_series(folder: str | os.PathLike, *, use_image: bool = True,
                    read: Callable[[DicomSeries], sitk.Image] = read_series,
                    ) -> tuple[list[tuple[DicomSeries, Identification]], list[DicomSeries]]:
    """Every usable series of a study folder with what identified it, and the series set aside (with the reason in
    ``problem``). ``read`` reads a series when its voxels are the evidence."""
    usable, set_aside = find_series(folder)
    found = [(series, identify(name=decisive_name([series.description]),
                               tags=identification_tags(series.tags) or None,
                               image=functools.partial(read, series) if use_image else None)) for series in usable]
    return found, set_aside


def map_dicom_study(folder: str | os.PathLike, channels: Sequence[str | Modality]) -> StudyMapping:
    """Identify and read the series of a DICOM study folder (see :func:`brainlesioncl.io.dicom.dicom_source` for a
    zip) for a model with ``channels``.

    Raises:
        InvalidImageError: no DICOM, several patients or studies mixed, or a series chosen for a channel whose slices
            do not make a volume (the message names the series and the fix).
    """
    mapping = StudyMapping()
    read = functools.cache(read_series)
    found, set_aside = identify_series(folder, read=read)
    mapping.not_used += [(series.label, str(series.problem)) for series in set_aside]
    chosen, left_out = auto_map(found, channels)
    for channel, mapped in chosen.items():
        series = mapped.volume
        assert isinstance(series, DicomSeries)
        mapping.images[channel] = read(series)
        mapping.series[channel] = series
        mapping.evidence[channel] = (series.label, mapped.identification)
    mapping.not_used += [(series.label, why) for series, why in left_out if isinstance(series, DicomSeries)]
    return mapping
