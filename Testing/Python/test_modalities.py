"""Modality/disease vocabularies and the validated channel mapping."""

from __future__ import annotations

import pytest

from brainlesioncl.errors import (
    ChannelMappingError,
    DiseaseNotSupportedError,
    DuplicateChannelError,
    NoChannelError,
    UnknownModalityError,
)
from brainlesioncl.modalities import (
    BRAINCL_CHANNEL_ORDER,
    BRAINCL_DISEASE_SLOTS,
    MULTIUNET_CHANNEL_ORDER,
    Disease,
    Modality,
    disease_context,
    guess_modality,
    map_channels,
    resolve_disease,
    resolve_modality,
)


@pytest.mark.parametrize(
    ("alias", "modality"),
    [
        ("t2f", Modality.FLAIR), ("T2-FLAIR", Modality.FLAIR), ("flair", Modality.FLAIR),
        ("t1ce", Modality.T1C), ("T1Gd", Modality.T1C), ("T1c", Modality.T1C), ("T1+C", Modality.T1C),
        ("MPRAGE", Modality.T1), ("t1n", Modality.T1), ("T1w", Modality.T1),
        ("t2w", Modality.T2), ("T2", Modality.T2),
        ("PD", Modality.PD), ("DP", Modality.PD), ("b1000", Modality.DWI), ("DWI", Modality.DWI),
        ("SWI", Modality.SWI), ("ADC", Modality.ADC), (Modality.T2, Modality.T2),
    ],
)
def test_aliases_resolve(alias, modality) -> None:
    assert resolve_modality(alias) is modality


def test_unknown_modality_suggests_close_names() -> None:
    with pytest.raises(UnknownModalityError, match="Did you mean.*flair"):
        resolve_modality("flari")
    with pytest.raises(UnknownModalityError, match="Known modalities"):
        resolve_modality("ultrasound")


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("BraTS-GLI-00001-000-t2f.nii.gz", Modality.FLAIR),
        ("BraTS-GLI-00001-000-t1c.nii.gz", Modality.T1C),
        ("BraTS-GLI-00001-000-t1n.nii.gz", Modality.T1),
        ("AX T2 FLAIR", Modality.FLAIR),
        ("T1 post Gd", Modality.T1C),
        ("sag 3D MPRAGE", Modality.T1),
        ("sub-01_ses-1_T2w.nii.gz", Modality.T2),
        ("ep2d_diff_b1000", Modality.DWI),
        ("dwi_adc", Modality.ADC),
        ("flair.nii.gz", Modality.FLAIR),
        ("label.nii.gz", None),
        ("brainmask.nii.gz", None),
        ("prediction_vbnet.nii.gz", None),
        ("Localizer", None),
        ("T1 and T2 composite", None),
    ],
)
def test_guess_modality(description, expected) -> None:
    assert guess_modality(description) is expected


def test_published_channel_orders() -> None:
    assert [m.value for m in BRAINCL_CHANNEL_ORDER] == ["DWI", "FLAIR", "PD", "T1", "T1c", "T2"]
    assert [m.value for m in MULTIUNET_CHANNEL_ORDER] == ["PD", "FLAIR", "SWI", "T1", "T1c", "T2"]


def test_map_channels_resolves_aliases_in_model_order() -> None:
    mapped = map_channels({"t1ce": "a.nii", "t2f": "b.nii", "T1": "c.nii"}, BRAINCL_CHANNEL_ORDER)
    assert list(mapped) == [Modality.FLAIR, Modality.T1, Modality.T1C]


def test_map_channels_errors() -> None:
    with pytest.raises(NoChannelError):
        map_channels({}, BRAINCL_CHANNEL_ORDER)
    with pytest.raises(DuplicateChannelError, match="Both 'FLAIR' and 't2f'"):
        map_channels({"FLAIR": "a.nii", "t2f": "b.nii"}, BRAINCL_CHANNEL_ORDER)
    with pytest.raises(DuplicateChannelError, match="same volume"):
        map_channels({"FLAIR": "a.nii", "T1": "./a.nii"}, BRAINCL_CHANNEL_ORDER)
    with pytest.raises(UnknownModalityError):
        map_channels({"CT": "a.nii"}, BRAINCL_CHANNEL_ORDER)
    with pytest.raises(ChannelMappingError, match="no SWI channel"):
        map_channels({"SWI": "a.nii"}, BRAINCL_CHANNEL_ORDER)
    volume = object()
    with pytest.raises(DuplicateChannelError):
        map_channels({"T1": volume, "T2": volume}, BRAINCL_CHANNEL_ORDER)


def test_disease_routing() -> None:
    slots = BRAINCL_DISEASE_SLOTS
    assert disease_context("tumor", slots) == [1, 0, 0, 0]
    assert disease_context("stroke", slots) == [0, 1, 0, 0]
    assert disease_context("multiple sclerosis", slots) == [0, 0, 1, 0]
    assert disease_context(Disease.WMH, slots) == [0, 0, 0, 1]
    assert disease_context("metastasis", slots) == [1, 0, 0, 0]  # falls back on the tumour experts
    assert disease_context("unknown", slots) == [0.25] * 4
    with pytest.raises(DiseaseNotSupportedError, match="no slot for disease 'WMH'"):
        disease_context("WMH", ["tumour", "stroke"])
    with pytest.raises(DiseaseNotSupportedError, match="Unknown disease tag"):
        resolve_disease("flu")
