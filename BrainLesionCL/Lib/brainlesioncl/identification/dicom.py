"""Which contrast a series is, from its DICOM tags (or the BIDS sidecar a DICOM converter wrote).

Tags outrank names: a technologist can name a series anything, but the scanner writes Image Type, b-value, contrast
agent and timing itself. Rules, most specific first:

1. Image Type: LOCALIZER, perfusion, FA/tensor maps, phase images, projections (MIP) and reformats (MPR) are refused;
   ADC / eADC / dADC -> ADC (before the b-value: an ADC map is stored with b = 0); TRACEW -> DWI; SWI -> SWI.
2. Diffusion b-value (0018,9087 or the vendors' private tags) > 0 -> DWI; b = 0 alone -> refused (a b0 image).
3. Timing (ms): inversion time >= 1500 with TR >= 4000 -> FLAIR; inversion time 300-1300 with TE < 15 -> T1 (MPRAGE
   and T1-FLAIR); gradient echo with TE >= 15 -> refused (T2*); TE >= 70 and TR >= 2000 -> T2; TE <= 30 and TR >= 1800
   -> PD; TE <= 30 and TR <= 1000 -> T1. A contrast agent (0018,0010) turns T1 into T1c.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from ..modalities import Modality
from .result import Identification

__all__ = ["identification_tags", "identify_tags", "read_dicom_tags", "tags_from_sidecar", "TAGS"]

#: DICOM keyword -> SimpleITK/GDCM metadata key.
TAGS = {
    "ImageType": "0008|0008", "SeriesDescription": "0008|103e", "ProtocolName": "0018|1030",
    "ScanningSequence": "0018|0020", "SequenceVariant": "0018|0021", "SequenceName": "0018|0024",
    "RepetitionTime": "0018|0080", "EchoTime": "0018|0081", "InversionTime": "0018|0082",
    "ContrastBolusAgent": "0018|0010", "DiffusionBValue": "0018|9087",
}
#: Vendors' private b-value tags (Siemens, GE, Philips).
_PRIVATE_B_VALUES = ("0019|100c", "0043|1039", "2001|1003")


def read_dicom_tags(path: str | os.PathLike) -> dict[str, str]:
    """The tags of a DICOM file, or of the first file of a DICOM series folder, keyed by DICOM keyword (and the
    vendors' private b-value tags by group|element). Empty when the path holds no DICOM."""
    import SimpleITK as sitk

    path = Path(path)
    if path.is_dir():
        files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path))
        if not files:
            return {}
        path = Path(files[0])
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.LoadPrivateTagsOn()
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return {}
    return identification_tags({key: reader.GetMetaData(key) for key in reader.GetMetaDataKeys()})


def identification_tags(metadata: Mapping[str, str]) -> dict[str, str]:
    """The tags identification reads, keyed by DICOM keyword (the vendors' private b-value tags by group|element),
    from a file's GDCM metadata (``group|element`` keys)."""
    tags = {name: metadata[key].strip() for name, key in TAGS.items() if key in metadata}
    tags.update({key: metadata[key].strip() for key in _PRIVATE_B_VALUES if key in metadata})
    return tags


def tags_from_sidecar(path: str | os.PathLike) -> dict[str, str]:
    """The same keys from a BIDS JSON sidecar written by a DICOM converter (``flair.json`` beside ``flair.nii.gz``).
    Times are converted to milliseconds when the sidecar gives them in seconds (BIDS' convention)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    tags: dict[str, str] = {}
    for name in TAGS:
        if name not in data and not (name == "ContrastBolusAgent" and "ContrastBolusIngredient" in data):
            continue
        value = data.get(name, data.get("ContrastBolusIngredient"))
        if isinstance(value, list):
            value = "\\".join(str(v) for v in value)
        if name in ("RepetitionTime", "EchoTime", "InversionTime") and isinstance(value, (int, float)):
            value = value * 1000 if value < 30 else value  # seconds in BIDS; some converters keep milliseconds
        tags[name] = str(value)
    return tags


def _number(tags: Mapping[str, str], key: str) -> float | None:
    text = str(tags.get(key, "")).split("\\")[0].strip()
    try:
        return float(text)
    except ValueError:
        return None


def _b_value(tags: Mapping[str, str]) -> float | None:
    for key in ("DiffusionBValue", *_PRIVATE_B_VALUES):
        value = _number(tags, key)
        if value is not None:
            return value % 1_000_000_000 if key == "0043|1039" else value  # GE stores b as 1000000000 + b
    return None


def identify_tags(tags: Mapping[str, str]) -> Identification:
    """The contrast the tags say (see the module docstring); modality None when they say nothing decisive."""
    image_type = {part.strip().upper() for part in str(tags.get("ImageType", "")).split("\\") if part.strip()}
    reason_prefix = "DICOM Image Type " + "\\".join(sorted(image_type)) if image_type else "DICOM tags"

    def refused(why: str) -> Identification:
        return Identification(None, 0.95, "dicom", f"{reason_prefix}: {why}", refused=True)

    if "LOCALIZER" in image_type:
        return refused("a localizer")
    if image_type & {"ADC", "EADC", "DADC", "ADC_UNSPECIFIED"}:
        return Identification(Modality.ADC, 0.97, "dicom", f"{reason_prefix}: an ADC map")
    if image_type & {"PERFUSION", "CBF", "CBV", "MTT", "TTP", "ASL"}:
        return refused("a perfusion series")
    if image_type & {"FA", "TENSOR", "COLFA", "FA_UNSPECIFIED", "TRACEA", "EXP"}:
        return refused("a derived diffusion map")
    if image_type & {"P", "PHASE", "PHASE MAP"} or image_type & {"MIP", "MNIP", "PROJECTION IMAGE", "MPR",
                                                              "REFORMATTED", "CSAMPR", "CSA MPR"}:
        return refused("a phase, projection or reformatted image")
    if image_type & {"TRACEW", "TRACE", "ISODWI"}:
        return Identification(Modality.DWI, 0.97, "dicom", f"{reason_prefix}: a diffusion trace-weighted image")
    if image_type & {"SWI", "SWAN"}:
        return Identification(Modality.SWI, 0.95, "dicom", f"{reason_prefix}: a susceptibility-weighted image")
    b_value = _b_value(tags)
    if b_value is not None and b_value > 50:
        return Identification(Modality.DWI, 0.95, "dicom", f"diffusion b-value {b_value:g} s/mm²: a DWI")
    if b_value is not None and ("EP" in str(tags.get("ScanningSequence", "")).upper() or image_type & {"DIFFUSION"}):
        return refused("a b = 0 diffusion image")
    tr, te, ti = (_number(tags, k) for k in ("RepetitionTime", "EchoTime", "InversionTime"))
    sequence = str(tags.get("ScanningSequence", "")).upper()
    contrast_agent = str(tags.get("ContrastBolusAgent", "")).strip() not in ("", "NONE", "NO", "0")
    timing = f"TR {tr:g} ms, TE {te:g} ms" if tr is not None and te is not None else ""
    if ti:
        timing += f", TI {ti:g} ms"

    def t1(why: str) -> Identification:
        if contrast_agent:
            return Identification(Modality.T1C, 0.9, "dicom", f"{why} with contrast agent "
                                  f"'{tags.get('ContrastBolusAgent')}': T1 post-contrast")
        return Identification(Modality.T1, 0.85, "dicom", f"{why}, no contrast agent recorded: T1")

    if ti is not None and ti >= 1500 and (tr is None or tr >= 4000):
        return Identification(Modality.FLAIR, 0.9, "dicom", f"inversion recovery ({timing}): FLAIR")
    if ti is not None and 300 <= ti <= 1300 and te is not None and te < 15:
        return t1(f"inversion-prepared T1 ({timing})")
    if tr is None or te is None:
        return Identification(None, 0.0, "dicom", "DICOM tags without timing")
    if "GR" in sequence and "SE" not in sequence and te >= 15:
        return refused(f"a gradient echo with a long echo time ({timing}): T2*-weighted")
    if te >= 70 and tr >= 2000:
        return Identification(Modality.T2, 0.85, "dicom", f"long TR and TE ({timing}): T2")
    if te <= 30 and tr >= 1800 and "GR" not in sequence:
        return Identification(Modality.PD, 0.75, "dicom", f"long TR, short TE ({timing}): proton density")
    if te <= 30 and tr <= 1000:
        return t1(f"short TR and TE ({timing})")
    return Identification(None, 0.0, "dicom", f"timing ({timing}) fits no contrast decisively")
