"""Round trip through a real PACS (Orthanc on loopback): a study stored in the PACS is fetched (C-GET), segmented, and
its DICOM SEG and SR go back (C-STORE, or DICOMweb STOW-RS), where they are queried and read; nothing identifying is
printed on the way."""

from __future__ import annotations

import io

import pytest
from dicom_helpers import ACCESSION, BIRTH_DATE, PATIENT_ID, PATIENT_NAME, SEQUENCES, new_uid, write_series
from orthanc_server import available, make_certificates, orthanc
from synthetic import make_grid

from brainlesioncl.cli.main import main
from brainlesioncl.errors import PacsError, SettingsError
from brainlesioncl.pacs import parse_node, store

from conftest import sphere_case

pytest.importorskip("pynetdicom", reason="the PACS tests need the 'dicom' extra (pip install -e '.[dicom]')")
pytest.importorskip("highdicom", reason="the PACS tests need the 'dicom' extra (pip install -e '.[dicom]')")
pydicom = pytest.importorskip("pydicom")
pytestmark = pytest.mark.skipif(not available(), reason="Orthanc is not installed (apt-get install orthanc "
                                                        "orthanc-dicomweb)")


def _study_in(pacs, tmp_path) -> str:
    study = new_uid()
    grid = make_grid((40, 44, 20), (2.0, 2.0, 3.5), origin=(-40.0, -44.0, -35.0))
    files = []
    for number, sequence in ((3, "FLAIR"), (4, "T1")):
        folder = write_series(sphere_case(grid, centre=(4.0, -2.0, 3.0), radius=12.0), tmp_path / "out" / sequence,
                              study=study, series_number=number, tags=SEQUENCES[sequence])
        files += sorted(folder.iterdir())
    assert store(files, parse_node(pacs.node)) == len(files)
    return study


def _series_in(pacs, study_uid: str) -> dict[str, list]:
    (study,) = [s for s in pacs.get("/studies?expand") if s["MainDicomTags"]["StudyInstanceUID"] == study_uid]
    by_modality: dict[str, list] = {}
    for series_id in study["Series"]:
        series = pacs.get(f"/series/{series_id}")
        by_modality.setdefault(series["MainDicomTags"]["Modality"], []).append(series)
    return by_modality


def test_fetch_segment_and_store_back_in_a_real_pacs(capsys, registry, tiny_version, tmp_path) -> None:
    with orthanc(tmp_path / "pacs") as pacs:
        study = _study_in(pacs, tmp_path)
        code = main(["--registry", str(registry.root), "segment", "--from-pacs", pacs.node, "--study-uid", study,
                     "-d", "MS", "-o", str(tmp_path / "seg.dcm"), "--report", str(tmp_path / "sr.dcm"),
                     "--send-to", pacs.node, "--device", "cpu"])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        assert "fetched 40 image(s)" in captured.err and "stored 2 object(s)" in captured.err
        assert not any(v in captured.out + captured.err for v in (PATIENT_ID, PATIENT_NAME, BIRTH_DATE, ACCESSION))
        series = _series_in(pacs, study)
        assert sorted(series) == ["MR", "SEG", "SR"] and len(series["MR"]) == 2
        (seg,) = series["SEG"]
        instance = seg["Instances"][0]
        dataset = pydicom.dcmread(io.BytesIO(pacs.get_bytes(f"/instances/{instance}/file")))
        flair_uid = next(s["MainDicomTags"]["SeriesInstanceUID"] for s in series["MR"]
                         if s["MainDicomTags"].get("SeriesNumber") == "3")
        assert dataset.ReferencedSeriesSequence[0].SeriesInstanceUID == flair_uid
        assert dataset.PatientID == PATIENT_ID  # the SEG joins the patient's record in the PACS
        # the same objects by DICOMweb STOW-RS
        code = main(["--registry", str(registry.root), "segment", "--from-pacs", pacs.node, "--study-uid", study,
                     "-d", "MS", "-o", str(tmp_path / "seg2.dcm"), "--stow", pacs.dicomweb, "--device", "cpu"])
        assert code == 0, capsys.readouterr().err
        assert len(_series_in(pacs, study)["SEG"]) == 2


def test_a_pacs_that_refuses_or_is_not_there_is_a_clear_error(tmp_path) -> None:
    grid = make_grid((40, 44, 20), (2.0, 2.0, 3.5))
    folder = write_series(sphere_case(grid), tmp_path / "s", study=new_uid(), series_number=1, tags=SEQUENCES["T1"])
    files = sorted(folder.iterdir())[:1]
    with orthanc(tmp_path / "pacs") as pacs:
        wrong_called_ae = pacs.node.replace("TESTPACS", "NOTTHEPACS")
        with pytest.raises(PacsError, match="refused the association"):
            store(files, parse_node(wrong_called_ae))
    with pytest.raises(PacsError, match="could not be reached"):
        store(files, parse_node(pacs.node))  # stopped now
    with pytest.raises(SettingsError, match="AE@HOST:PORT"):
        parse_node("pacs.hospital.org:104")


def test_results_go_to_a_pacs_that_speaks_only_tls(tmp_path) -> None:
    """DICOM over TLS as a hospital configures it: the PACS's certificate, signed by the hospital's CA, is checked
    (and its host name); without the CA, or speaking plain DICOM, nothing is stored."""
    certificates = make_certificates(tmp_path / "certs")
    grid = make_grid((40, 44, 20), (2.0, 2.0, 3.5))
    folder = write_series(sphere_case(grid), tmp_path / "s", study=new_uid(), series_number=1, tags=SEQUENCES["T1"])
    files = sorted(folder.iterdir())[:2]
    with orthanc(tmp_path / "pacs", tls=certificates) as pacs:
        node = parse_node(pacs.node)
        with pytest.raises(PacsError):
            store(files, node)  # plain DICOM to a TLS port
        assert store(files, node, ca_file=str(certificates["ca"])) == 2
        assert len(pacs.get("/instances")) == 2
        other = make_certificates(tmp_path / "other")  # a CA that did not sign the PACS's certificate
        with pytest.raises(PacsError):
            store(files, node, ca_file=str(other["ca"]))
