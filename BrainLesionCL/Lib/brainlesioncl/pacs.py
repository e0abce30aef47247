"""Talking to a PACS: store results (C-STORE or DICOMweb STOW-RS) and fetch a study to segment (C-GET or WADO-RS).

A hospital configures its PACS nodes as ``AE@HOST:PORT`` (the called AE title, host and port of the DICOM service)
and its DICOMweb endpoints as URLs. BrainLesionCL calls as the AE title ``BRAINLESIONCL`` unless told otherwise (the
PACS administrator registers that title). TLS: for DIMSE, give a CA file (and a client certificate and key where the
PACS asks for one); for DICOMweb, an ``https://`` URL with the hospital's CA bundle and, if needed, a user and password
read from the environment (never from the command line, where other users of the machine could read them).

Nothing identifying leaves through here beyond the DICOM files themselves, which carry the patient's identifiers
because they go back to that patient's record: logs and messages name studies and series by UID count and series
number, never by patient name, ID or birth date. Uses ``pynetdicom`` and ``dicomweb-client`` (the ``dicom`` extra).
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import PacsError, SettingsError

__all__ = ["DicomNode", "PacsError", "fetch_study", "parse_node", "stow", "store"]

CALLING_AE = "BRAINLESIONCL"
#: SOP classes by UID (pynetdicom generates its named constants at run time, which type checkers cannot see).
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"
_NODE = re.compile(r"^(?P<ae>[^@\s]{1,16})@(?P<host>[^:\s]+):(?P<port>\d{1,5})$")
INSTALL_HINT = ("Talking to a PACS needs the optional packages of the 'dicom' extra: pip install -e '.[dicom]' in a "
                "clone of BrainLesionCL (pip install 'brainlesioncl[dicom]' from a package index).")


@dataclass(frozen=True)
class DicomNode:
    """A DICOM service: its AE title, host and port."""

    ae_title: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


def parse_node(text: str) -> DicomNode:
    """``AE@HOST:PORT`` as a :class:`DicomNode` (a SettingsError names the expected form)."""
    match = _NODE.match(text.strip())
    if not match or not 0 < int(match["port"]) < 65536:
        raise SettingsError(f"{text!r} is not a DICOM node; give AE@HOST:PORT, e.g. ORTHANC@pacs.hospital.org:4242 "
                            "(the called AE title, host and port your PACS administrator gives you).")
    return DicomNode(match["ae"], match["host"], int(match["port"]))


def _tls(node: DicomNode, ca_file: str | None, cert_file: str | None,
         key_file: str | None) -> tuple[ssl.SSLContext, str] | None:
    """pynetdicom's TLS arguments: the hospital's CA (the PACS's certificate and host name are checked) and, when the
    PACS asks for one, this client's certificate and key; None without a CA file (plain DICOM)."""
    if not ca_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    if cert_file:
        context.load_cert_chain(cert_file, keyfile=key_file)
    return context, node.host


def _application_entity(calling_ae: str) -> Any:
    try:
        from pynetdicom import AE
    except ImportError as err:
        raise SettingsError(INSTALL_HINT) from err
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
    return ae


def _refused(node: DicomNode, calling_ae: str) -> PacsError:
    return PacsError(f"The PACS {node} refused the association or could not be reached (is {calling_ae} registered "
                     "there as a modality, and are the AE title, host and port right?).")


def store(files: Sequence[str | os.PathLike], node: DicomNode, *, calling_ae: str = CALLING_AE,
          ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None) -> int:
    """C-STORE ``files`` (e.g. a SEG and its SR) on ``node``; returns how many were stored.

    Raises:
        PacsError: the association failed, or the PACS did not accept a file (its status is given).
    """
    import pydicom

    if not files:
        return 0
    datasets = [pydicom.dcmread(str(file)) for file in files]
    ae = _application_entity(calling_ae)
    for sop_class, syntax in sorted({(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID) for ds in datasets}):
        ae.add_requested_context(sop_class, [syntax])
    association = ae.associate(node.host, node.port, ae_title=node.ae_title,
                               tls_args=_tls(node, ca_file, cert_file, key_file))
    if not association.is_established:
        raise _refused(node, calling_ae)
    try:
        for dataset in datasets:
            status = association.send_c_store(dataset)
            code = getattr(status, "Status", None)
            if code != 0x0000:
                raise PacsError(f"The PACS {node} did not store a {dataset.Modality} object (status "
                                f"{'none: the connection dropped' if code is None else hex(code)}).")
    finally:
        association.release()
    return len(datasets)


def fetch_study(study_uid: str, node: DicomNode, folder: str | os.PathLike, *, calling_ae: str = CALLING_AE,
                ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None) -> int:
    """Fetch the MR series of study ``study_uid`` from ``node`` into ``folder``; returns the number of files.

    A C-FIND lists the study's MR series (so earlier results stored in the study, SEG and SR, are not fetched), then
    one C-GET per series. C-GET, not C-MOVE: the images come back on the same association, so the PACS needs no
    route back to this machine (no listening port to open in a hospital firewall).
    """
    ae = _application_entity(calling_ae)
    import pydicom
    from pynetdicom import build_role, evt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    received: list[Path] = []

    def on_store(event: Any) -> int:
        dataset = event.dataset
        dataset.file_meta = event.file_meta
        path = folder / f"{len(received):05d}.dcm"
        dataset.save_as(str(path), enforce_file_format=True)
        received.append(path)
        return 0x0000

    ae.add_requested_context(STUDY_ROOT_FIND)
    ae.add_requested_context(STUDY_ROOT_GET)
    for storage in (MR_IMAGE_STORAGE, ENHANCED_MR_IMAGE_STORAGE):
        ae.add_requested_context(storage)
    association = ae.associate(node.host, node.port, ae_title=node.ae_title,
                               tls_args=_tls(node, ca_file, cert_file, key_file),
                               ext_neg=[build_role(s, scp_role=True)
                                        for s in (MR_IMAGE_STORAGE, ENHANCED_MR_IMAGE_STORAGE)],
                               evt_handlers=[(evt.EVT_C_STORE, on_store)])
    if not association.is_established:
        raise _refused(node, calling_ae)
    failures = 0
    try:
        query = pydicom.Dataset()
        query.QueryRetrieveLevel = "SERIES"
        query.StudyInstanceUID = study_uid
        query.SeriesInstanceUID = ""
        query.Modality = "MR"
        series = [found.SeriesInstanceUID for status, found in association.send_c_find(query, STUDY_ROOT_FIND)
                  if getattr(status, "Status", None) in (0xFF00, 0xFF01) and found is not None]
        for uid in series:
            wanted = pydicom.Dataset()
            wanted.QueryRetrieveLevel = "SERIES"
            wanted.StudyInstanceUID, wanted.SeriesInstanceUID = study_uid, uid
            for status, _ in association.send_c_get(wanted, STUDY_ROOT_GET):
                failures += getattr(status, "Status", 0xC000) not in (0x0000, 0xFF00, 0xFF01)
    finally:
        association.release()
    if failures or not received:
        raise PacsError(f"The PACS {node} sent {len(received)} image(s) of the study "
                        f"{'and reported a failure' if failures else '(is the Study Instance UID right?)'}.")
    return len(received)


def stow(files: Sequence[str | os.PathLike], url: str, *, ca_bundle: str | None = None) -> int:
    """Store ``files`` with DICOMweb STOW-RS at ``url`` (the service root, e.g. https://pacs/dicom-web); the user and
    password, when the service asks for them, come from BRAINLESIONCL_DICOMWEB_USER / _PASSWORD."""
    try:
        from dicomweb_client.api import DICOMwebClient
        from requests import Session
    except ImportError as err:
        raise SettingsError(INSTALL_HINT) from err
    import pydicom

    session = Session()
    user, password = os.environ.get("BRAINLESIONCL_DICOMWEB_USER"), os.environ.get("BRAINLESIONCL_DICOMWEB_PASSWORD")
    if user:
        session.auth = (user, password or "")
    if ca_bundle:
        session.verify = ca_bundle
    client = DICOMwebClient(url=url, session=session)
    try:
        client.store_instances([pydicom.dcmread(str(file)) for file in files])
    except Exception as err:  # noqa: BLE001 - requests/HTTP errors of every kind mean the same to the user
        raise PacsError(f"The DICOMweb service {url} did not store the files ({type(err).__name__}: "
                        f"{str(err)[:200]}).") from err
    return len(files)
