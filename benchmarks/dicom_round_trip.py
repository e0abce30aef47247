"""A four-sequence DICOM study through a real PACS: fetched, segmented, SEG and SR stored back, timed by stage.

A real BraTS 2018 glioma case of ``../shared/data`` (FLAIR, T1, T1c, T2) is written as four DICOM MR series with
realistic tags (series descriptions, timing, contrast agent), stored in an Orthanc started on loopback, and then the
product's own command runs as a user would, with the shipped model::

    brainlesioncl segment --from-pacs PACS --study-uid UID -d tumour -o seg.dcm --report sr.dcm --send-to PACS

Target (issue 34): <= 60 s on 2 CPU cores for the whole command. Printed: the command's wall-clock seconds and its
stages (the summary's timings), and the fetch and store alone, timed in this process.

Usage (from the repository root; ``../shared/data`` beside the project, Orthanc installed)::

    python benchmarks/dicom_round_trip.py --json docs/dicom/round_trip.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Testing" / "Python"))  # the tests' DICOM writer and Orthanc launcher
DATA = ROOT.parent / "shared" / "data"
CASE = "glioma_brats2018_deepbrainseg/Brats18_TCIA02_135_1"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", default=CASE)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import orthanc_server

    if not (DATA / args.case).is_dir() or not orthanc_server.available():
        print("needs ../shared/data and Orthanc (apt-get install orthanc orthanc-dicomweb); nothing measured.")
        return 0
    import SimpleITK as sitk
    from dicom_helpers import SEQUENCES, new_uid, write_series

    from brainlesioncl.pacs import fetch_study, parse_node, store

    work = Path(tempfile.mkdtemp(prefix="dicom-round-trip-"))
    study = new_uid()
    files = []
    for number, (name, stem) in enumerate((("FLAIR", "flair"), ("T1", "t1"), ("T1c", "t1c"), ("T2", "t2")), 2):
        image = sitk.ReadImage(str(DATA / args.case / f"{stem}.nii.gz"), sitk.sitkFloat32)
        folder = write_series(image, work / "study" / name, study=study, series_number=number, tags=SEQUENCES[name])
        files += sorted(folder.iterdir())
    with orthanc_server.orthanc(work / "pacs") as pacs:
        node = parse_node(pacs.node)
        start = time.perf_counter()
        store(files, node)
        upload = time.perf_counter() - start
        start = time.perf_counter()
        fetched = fetch_study(study, node, work / "fetched")
        fetch = time.perf_counter() - start
        home = work / "home"  # a fresh install's registry: the shipped default model
        home.mkdir()
        command = [sys.executable, "-m", "brainlesioncl.cli.main", "segment", "--from-pacs", pacs.node, "--study-uid",
                   study, "-d", "tumour", "-o", str(work / "seg.dcm"), "--report", str(work / "sr.dcm"),
                   "--send-to", pacs.node, "--device", "cpu", "--progress", "json"]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HOME": str(home)},
                              check=False)
        total = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"segment failed ({done.returncode}): {done.stderr[-2000:]}")
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        stored = sorted({pacs.get(f"/series/{s}")["MainDicomTags"]["Modality"]
                         for s in pacs.get(f"/studies/{pacs.get('/studies')[0]}")["Series"]})
        start = time.perf_counter()
        store([work / "seg.dcm", work / "sr.dcm"], node)
        send = time.perf_counter() - start
    result = {"case": args.case, "images": len(files), "fetched": fetched, "command_seconds": round(total, 1),
              "stages": summary["timings"], "fetch_seconds_alone": round(fetch, 2),
              "store_seg_and_sr_seconds_alone": round(send, 2), "upload_seconds": round(upload, 2),
              "series_in_pacs_after": stored, "lesion_volume_ml": summary["lesion_volume_ml"],
              "subregions": summary["quality"].get("subregions"), "threads": os.cpu_count()}
    print(json.dumps(result, indent=1))
    print(f"\nfour-sequence study -> SEG + SR in the PACS: {total:.1f} s (target <= 60 s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
