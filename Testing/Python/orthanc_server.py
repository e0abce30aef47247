"""A real PACS for tests: Orthanc (Debian's ``orthanc`` and ``orthanc-dicomweb``), started on loopback with a generated
configuration and free ports, stopped afterwards."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
AE_TITLE = "TESTPACS"


def available() -> bool:
    return Path(ORTHANC).exists() and DICOMWEB_PLUGIN.exists()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Pacs:
    dicom_port: int
    http: str  # REST root, e.g. http://127.0.0.1:8042

    @property
    def node(self) -> str:
        return f"{AE_TITLE}@127.0.0.1:{self.dicom_port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.http}/dicom-web"

    def get(self, path: str) -> object:
        with urllib.request.urlopen(f"{self.http}{path}", timeout=30) as response:
            return json.loads(response.read())

    def get_bytes(self, path: str) -> bytes:
        with urllib.request.urlopen(f"{self.http}{path}", timeout=30) as response:
            return response.read()


def make_certificates(folder: Path) -> dict[str, Path]:
    """A hospital CA and a server certificate for 127.0.0.1 signed by it (openssl), as an IT department issues them."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / f"{name}.pem" for name in ("ca", "ca_key", "server", "server_key")}
    run = [("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", paths["ca_key"], "-out", paths["ca"],
            "-days", "2", "-subj", "/CN=Test Hospital CA"),
           ("req", "-newkey", "rsa:2048", "-nodes", "-keyout", paths["server_key"], "-out", folder / "server.csr",
            "-subj", "/CN=127.0.0.1")]
    for arguments in run:
        subprocess.run(["openssl", *map(str, arguments)], check=True, capture_output=True)
    (folder / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    subprocess.run(["openssl", "x509", "-req", "-in", str(folder / "server.csr"), "-CA", str(paths["ca"]), "-CAkey",
                    str(paths["ca_key"]), "-CAcreateserial", "-out", str(paths["server"]), "-days", "2", "-extfile",
                    str(folder / "ext.cnf")], check=True, capture_output=True)
    return paths


@contextmanager
def orthanc(folder: Path, calling_ae: str = "BRAINLESIONCL", tls: dict[str, Path] | None = None) -> Iterator[Pacs]:
    """Orthanc on loopback, accepting C-STORE and C-GET from ``calling_ae``, with DICOMweb; with ``tls``
    (:func:`make_certificates`) its DICOM port speaks only TLS. Stopped on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    dicom_port, http_port = _free_port(), _free_port()
    config = {
        "Name": "BrainLesionCL test PACS", "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"), "DicomAet": AE_TITLE, "DicomPort": dicom_port,
        "HttpPort": http_port, "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
        "DicomCheckCalledAet": True, "DicomAlwaysAllowStore": True, "DicomCheckModalityHost": False,
        "DicomModalities": {"brainlesioncl": [calling_ae, "127.0.0.1", _free_port()]},
        "Plugins": [str(DICOMWEB_PLUGIN)], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "ConcurrentJobs": 1, "HttpTimeout": 30, "StableAge": 1,
    }
    if tls is not None:
        config.update({"DicomTlsEnabled": True, "DicomTlsCertificate": str(tls["server"]),
                       "DicomTlsPrivateKey": str(tls["server_key"]), "DicomTlsTrustedCertificates": str(tls["ca"]),
                       "DicomTlsRemoteCertificateRequired": False})
    (folder / "orthanc.json").write_text(json.dumps(config), encoding="utf-8")
    log = (folder / "orthanc.log").open("w")
    process = subprocess.Popen([ORTHANC, str(folder / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
    pacs = Pacs(dicom_port, f"http://127.0.0.1:{http_port}")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                pacs.get("/system")
                break
            except OSError as err:
                if process.poll() is not None or time.monotonic() > deadline:
                    log_text = (folder / "orthanc.log").read_text()[-2000:]
                    raise RuntimeError(f"Orthanc did not start: {log_text}") from err
                time.sleep(0.2)
        yield pacs
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
