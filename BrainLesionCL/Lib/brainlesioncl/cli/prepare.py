"""``brainlesioncl prepare`` (only the raw-exam stage, written out for inspection or reuse) and ``brainlesioncl
identify`` (which contrast each file is, with the evidence)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..errors import BrainLesionCLError
from .common import add_preparation_options, parse_inputs

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    prep = sub.add_parser("prepare", help="only prepare a raw exam: co-register, extract the brain, write QC")
    prep.add_argument("--input", "-i", action="append", metavar="MODALITY=FILE", help="one sequence (repeatable)")
    prep.add_argument("--dicom", metavar="STUDY", help="a DICOM study (folder or zip) instead: every MR series "
                                                        "identified and prepared (FLAIR's grid, when there is one)")
    prep.add_argument("--reference", help="the sequence whose grid the others take (default: the first --input)")
    prep.add_argument("--output-dir", required=True, help="existing folder for the prepared sequences and QC")
    add_preparation_options(prep, modes=("auto", "on"), default="on", help_text="on (default) or auto")
    prep.add_argument("--overwrite", action="store_true", help="replace prepared files already in the folder")
    prep.set_defaults(func=cmd_prepare)

    ident = sub.add_parser("identify", help="which contrast each file is (DICOM tags, BIDS sidecar, name, image)")
    ident.add_argument("files", nargs="*", help="image files or DICOM series folders")
    ident.add_argument("--dicom", metavar="STUDY", help="a DICOM study (folder or zip): every series, identified as "
                                                        "segment --dicom identifies it, and those set aside, why")
    ident.add_argument("--no-image", action="store_true", help="do not read the voxels (tags and names only)")
    ident.add_argument("--json", action="store_true", help="one JSON list instead of lines")
    ident.add_argument("--separately", action="store_true",
                       help="the files are not one exam: never read them together (by default a T1 and a T1c the "
                            "image of each alone cannot tell apart are compared side by side)")
    ident.set_defaults(func=cmd_identify)


def cmd_prepare(args: argparse.Namespace) -> int:
    """Only the preparation stage: co-registered, brain-extracted sequences on the reference grid, and the QC."""
    from ..inference.segmenter import inputs_order, read_inputs
    from ..io.atomic import check_writable_folder
    from ..modalities import map_channels, resolve_modality
    from ..preparation import prepare_inputs
    from ..preparation.export import write_prepared

    if bool(args.input) == bool(args.dicom):
        raise BrainLesionCLError("Give the exam with --input MODALITY=FILE (repeatable) or a DICOM study with --dicom.")
    check_writable_folder(args.output_dir, "--output-dir")  # before the minutes of preparation
    if args.dicom:
        from ..identification.study import map_dicom_study
        from ..io.dicom import dicom_source
        from ..modalities import Modality

        with dicom_source(args.dicom) as folder:
            study = map_dicom_study(folder, [m.value for m in Modality])
        for line in study.lines():
            print(f"dicom: {line}")
        first = "FLAIR" if "FLAIR" in study.images else next(iter(study.images), None)
        if first is None:
            raise BrainLesionCLError(f"No MR series of {args.dicom} could be identified; see the lines above.")
        ordered = {resolve_modality(c): image for c, image in
                   sorted(study.images.items(), key=lambda item: item[0] != first)}
    else:
        inputs = parse_inputs(args.input)
        mapped = map_channels(inputs, [resolve_modality(name).value for name in inputs])
        images = read_inputs(mapped)
        ordered = {m: images[m] for m in inputs_order(inputs, mapped)}
    reference = resolve_modality(args.reference) if args.reference else next(iter(ordered))
    preparation = prepare_inputs(ordered, reference, mode=args.prepare, register=not args.no_register,
                                 bias_correction=args.bias_correction)
    files = write_prepared(preparation, args.output_dir, overwrite=args.overwrite)
    for line in preparation.lines():
        print(f"prepare: {line}")
    print(f"Wrote {len(files)} file(s) to {args.output_dir}.")
    return 0


def cmd_identify(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import InvalidImageError
    from ..identification import identify_file, read_together

    if bool(args.files) == bool(args.dicom):
        raise BrainLesionCLError("Give the image files (or DICOM series folders) to identify, or a study with --dicom.")
    missing = [path for path in [*args.files, *([args.dicom] if args.dicom else [])] if not Path(path).exists()]
    if missing:
        raise InvalidImageError(f"file not found: {', '.join(missing)}; check the path (identify reads image files "
                                "and DICOM series folders).")
    aside: list[tuple[str, str]] = []
    if args.dicom:
        from ..identification.study import identify_series
        from ..io.dicom import dicom_source

        with dicom_source(args.dicom) as folder:
            series_found, set_aside = identify_series(folder, use_image=not args.no_image)
        names = [series.label for series, _ in series_found]
        found_all = [found for _, found in series_found]
        aside = [(series.label, str(series.problem)) for series in set_aside]
    else:
        names = list(args.files)
        found_all = [identify_file(path, use_image=not args.no_image) for path in args.files]
    if not args.separately:
        found_all = read_together(found_all)
    rows: list[dict[str, Any]] = []
    for path, found in zip(names, found_all, strict=True):
        rows.append({"file": path, "modality": found.modality.value if found.modality else None,
                     "refused": found.refused, "evidence": found.evidence,
                     "confidence": round(found.confidence, 3), "reason": found.reason, "notes": list(found.notes)})
    rows += [{"file": name, "modality": None, "refused": True, "evidence": "dicom", "confidence": 1.0,
              "reason": f"set aside: {why}", "notes": []} for name, why in aside]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            what = row["modality"] or ("refused" if row["refused"] else "-")
            print(f"{row['file']}: {what} ({row['evidence']}, {row['confidence']:.0%}) {row['reason']}")
            for note in row["notes"]:
                print(f"    note: {note}")
    return 0
