"""``brainlesioncl segment``: one case (``--input MODALITY=FILE``, or ``auto=FILE`` to identify the contrast), or a
batch (``--cases``), with the raw-exam preparation, uncertainty, per-lesion report and prepared sequences on request."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import BrainLesionCLError
from .common import add_preparation_options, parse_inputs, progress_printer, registry_of

__all__ = ["EXIT_BATCH_FAILURES", "register"]

logger = logging.getLogger("brainlesioncl")

#: Exit code when some cases of a batch failed (the others were written).
EXIT_BATCH_FAILURES = 4


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    seg = sub.add_parser("segment", help="segment one case, or a batch of cases", parents=parents)
    seg.add_argument("--input", "-i", action="append", metavar="MODALITY=FILE",
                     help="one input volume (repeat per modality): a channel of the model (the shipped models: FLAIR, "
                          "T1, T1c, T2, PD, DWI; yours: brainlesioncl models info) or an alias (t2f, T1Gd, MPRAGE...); "
                          "auto=FILE identifies the contrast from DICOM tags, a BIDS sidecar, the name or the image")
    seg.add_argument("--dicom", metavar="STUDY",
                     help="a DICOM study (a folder of one patient's exam as a PACS exports it, or a zip): every MR "
                          "series is identified from its tags, description or image and mapped to a channel, the "
                          "rest set aside with the reason (instead of --input)")
    pacs = seg.add_argument_group("PACS (the 'dicom' extra; docs/DICOM.md)")
    pacs.add_argument("--from-pacs", metavar="AE@HOST:PORT",
                      help="fetch the study --study-uid from this PACS (C-GET) and segment it as --dicom does")
    pacs.add_argument("--study-uid", help="the Study Instance UID to fetch with --from-pacs")
    pacs.add_argument("--send-to", metavar="AE@HOST:PORT",
                      help="store the DICOM SEG (and the --report .dcm SR) in this PACS (C-STORE)")
    pacs.add_argument("--stow", metavar="URL",
                      help="store them with DICOMweb STOW-RS at this service root instead (user and password, if "
                           "asked, from BRAINLESIONCL_DICOMWEB_USER / _PASSWORD)")
    pacs.add_argument("--calling-ae", default="BRAINLESIONCL", help="this program's AE title (default BRAINLESIONCL)")
    pacs.add_argument("--pacs-ca", metavar="FILE", help="TLS: the CA certificate(s) that signed the PACS's (DIMSE "
                                                        "over TLS; for DICOMweb, the CA bundle of the https URL)")
    pacs.add_argument("--pacs-cert", metavar="FILE", help="TLS: this client's certificate, when the PACS asks")
    pacs.add_argument("--pacs-key", metavar="FILE", help="TLS: the key of --pacs-cert")
    seg.add_argument("--disease", "-d", default="unknown",
                     help="tumour, stroke, MS, WMH, metastasis, unknown (default: a neutral mix of the routings) or "
                          "auto (the model reads the disease from the image and says what it chose)")
    seg.add_argument("--output", "-o", help="output labelmap (.nii.gz, .nii, .nrrd, .mha), or with --dicom a DICOM SEG "
                                            "(.dcm, or --output-format dicom-seg)")
    seg.add_argument("--output-format", choices=["image", "dicom-seg"],
                     help="image (default; by the extension) or dicom-seg: a DICOM Segmentation on the reference "
                          "series, for a PACS (needs --dicom and the 'dicom' extra)")
    seg.add_argument("--probabilities", help="also write the lesion probability map here")
    seg.add_argument("--reference", help="modality whose grid the output takes (default: the first --input)")
    seg.add_argument("--model", help="model version (default: the active one)")
    seg.add_argument("--mode", default="fast", choices=["fast", "reference"],
                     help="fast single pass on the brain box (default) or the published sliding-window protocol")
    seg.add_argument("--overwrite", action="store_true", help="replace existing output files")
    add_preparation_options(seg)
    seg.add_argument("--uncertainty", metavar="FILE",
                     help="also write a voxel-wise uncertainty map of the segmentation: where 4 mirrored views of the "
                          "input disagree (predictive entropy, 0..1 bits); the segmentation itself is unchanged; "
                          "4x the network time")
    seg.add_argument("--tta", action="store_true",
                     help="segment the mean of 4 mirrored views (test-time augmentation) instead of one pass; 4x the "
                          "network time (its effect on real cases: docs/BENCHMARKS.md)")
    seg.add_argument("--report", metavar="FILE",
                     help="per-lesion report (.csv or .json): volume, largest diameter, RAS centroid, mean "
                          "probability; with a DICOM SEG output, .dcm writes it as a DICOM structured report (TID "
                          "1500) referencing the SEG")
    seg.add_argument("--write-prepared", metavar="DIR",
                     help="also write the prepared sequences, brain mask and QC to this existing folder")
    seg.add_argument("--min-lesion-mm3", type=float, default=0.0,
                     help="remove connected lesions smaller than this volume (default 0: keep all)")
    seg.add_argument("--cases", help="batch: a folder of case folders, or a CSV manifest")
    seg.add_argument("--output-dir", help="batch: folder for <case>_seg.nii.gz")
    seg.add_argument("--save-probabilities", action="store_true", help="batch: also write <case>_prob.nii.gz")
    seg.set_defaults(func=cmd_segment)


def cmd_segment(args: argparse.Namespace) -> int:
    if args.cases:
        return _segment_batch(args)
    if sum(bool(v) for v in (args.dicom, args.input, args.from_pacs)) > 1:
        raise BrainLesionCLError("Give the case one way: a DICOM study (--dicom), a study in a PACS (--from-pacs with "
                                 "--study-uid) or --input volumes.")
    if bool(args.from_pacs) != bool(args.study_uid):
        raise BrainLesionCLError("--from-pacs and --study-uid go together: the PACS, and the study to fetch from it.")
    if (args.send_to or args.stow) and not str(args.output or "").lower().endswith(".dcm") and \
            args.output_format != "dicom-seg":
        raise BrainLesionCLError("--send-to/--stow store a DICOM SEG: write one with -o seg.dcm.")
    if not args.input and not args.dicom and not args.from_pacs:
        raise BrainLesionCLError("Give the case with --input MODALITY=FILE (repeatable), a DICOM study with --dicom "
                                 "STUDY, or a batch with --cases.")
    if not args.output:
        raise BrainLesionCLError("Give the output labelmap path with -o/--output (e.g. -o seg.nii.gz).")
    if args.output_format is None:
        args.output_format = "dicom-seg" if str(args.output).lower().endswith(".dcm") else "image"
    if args.output_format == "dicom-seg" and not (args.dicom or args.from_pacs):
        raise BrainLesionCLError("A DICOM SEG refers to the source series: give the study with --dicom STUDY or "
                                 "--from-pacs (or write an image, e.g. -o seg.nii.gz).")
    if not (args.dicom or args.from_pacs):
        inputs = _resolve_auto_inputs(parse_inputs(args.input), args)
        _check_outputs(args)
        return _segment_case(args, None, inputs)
    _check_outputs(args)  # before fetching or reading a study, so a typo costs nothing
    if args.from_pacs:
        import tempfile

        from ..pacs import fetch_study, parse_node

        node = parse_node(args.from_pacs)
        with tempfile.TemporaryDirectory(prefix="brainlesioncl-study-") as folder:
            count = fetch_study(args.study_uid, node, folder, calling_ae=args.calling_ae, ca_file=args.pacs_ca,
                                cert_file=args.pacs_cert, key_file=args.pacs_key)
            print(f"pacs: fetched {count} image(s) of the study from {node}", file=sys.stderr)
            args.dicom = f"{node} (study fetched)"
            return _segment_case(args, Path(folder), None)
    from ..io.dicom import dicom_source

    with dicom_source(args.dicom) as folder:  # a zip stays extracted until the SEG that refers to it is written
        return _segment_case(args, folder, None)


def _check_outputs(args: argparse.Namespace) -> None:
    """Every output can be written (folder there, nothing replaced without --overwrite, known file kinds)."""
    from ..errors import OutputPathError
    from ..io import check_output_path
    from ..io.atomic import check_writable_folder

    if args.output_format == "dicom-seg":
        check_writable_folder(Path(args.output).expanduser().parent)
        if Path(args.output).exists() and not args.overwrite:
            raise OutputPathError(f"Output {args.output} exists already. Choose another name, or add --overwrite.")
    else:
        check_output_path(args.output, overwrite=args.overwrite)
    for optional in (args.probabilities, args.uncertainty):
        if optional:
            check_output_path(optional, overwrite=args.overwrite)
    if args.write_prepared:
        check_writable_folder(args.write_prepared, "--write-prepared folder")
    report_kinds = (".csv", ".json", ".dcm") if args.output_format == "dicom-seg" else (".csv", ".json")
    if args.report and Path(args.report).suffix.lower() not in report_kinds:
        raise OutputPathError(f"--report {args.report}: give a .csv or .json file name"
                              + (", or .dcm for a DICOM structured report referencing the SEG." if len(report_kinds) > 2
                                 else "."))


def _segment_case(args: argparse.Namespace, study: Path | None, inputs: dict[str, Any] | None) -> int:
    """One case, from the resolved ``--input`` volumes or from the DICOM study in ``study`` (outputs checked)."""
    reference_series = None
    if inputs is None:
        assert study is not None
        inputs, reference_series = _dicom_inputs(args, study)
    segmenter = _make_segmenter(args, args.disease)
    logger.info("model %s on %s", segmenter.metadata.version, segmenter.device)
    start = time.perf_counter()
    result = segmenter.segment(
        inputs, args.disease, reference=args.reference, progress=progress_printer(args.progress),
        prepare=args.prepare, register=not args.no_register, uncertainty=bool(args.uncertainty),
        bias_correction=args.bias_correction, tta=args.tta,
    )
    dicom_out = reference_series is not None and args.output_format == "dicom-seg"
    if dicom_out:  # the SEG (and SR) are written below, with the lesion table
        result.write_maps(probabilities=args.probabilities, uncertainty=args.uncertainty, overwrite=args.overwrite)
    else:
        result.write(args.output, probabilities=args.probabilities, uncertainty=args.uncertainty,
                     overwrite=args.overwrite)
    written = [str(path) for path in (args.output, args.probabilities, args.uncertainty) if path]
    if args.write_prepared:
        from ..preparation.export import write_prepared

        write_prepared(result.preparation, args.write_prepared, overwrite=args.overwrite)
        written.append(f"{args.write_prepared}/")
    rows = None
    if args.report or result.uncertainty is not None:
        from ..lesion_report import lesion_rows

        sequences = None
        if result.preparation is not None:  # the inputs on the result's grid, for the "brightest on" column
            sequences = {m.value: image for m, image in result.preparation.reference_grid[0].items()}
        rows = lesion_rows(result.label, result.probability, result.uncertainty, sequences)
    report_is_dicom = bool(args.report) and Path(args.report).suffix.lower() == ".dcm"  # only with a SEG (checked)
    if dicom_out:
        from ..dicom_export import write_dicom

        assert reference_series is not None
        write_dicom(result, reference_series, segmenter.metadata, args.output,
                    sr_path=args.report if report_is_dicom else None, rows=rows, overwrite=args.overwrite)
        if report_is_dicom:
            written.append(str(args.report))
    if args.report and not report_is_dicom:
        from ..lesion_report import write_lesion_report

        write_lesion_report(rows or [], args.report, overwrite=args.overwrite,
                            warnings=[w.message for w in result.warnings])
        written.append(str(args.report))
    if args.send_to or args.stow:
        _store_in_pacs(args, [p for p in (args.output, args.report) if p and str(p).lower().endswith(".dcm")])
    summary = {
        "output": str(args.output),
        "files": written,
        "model": result.model_version,
        "disease": result.disease,
        "route": route_description(result, segmenter),
        "channels": result.channels_used,
        "lesion_volume_ml": round(result.lesion_volume_ml, 3),
        "lesion_count": result.lesion_count,
        "classes": {str(value): name for value, name in result.classes.items()},
        "unsure_lesions": sum(bool(r.unsure) for r in rows) if result.uncertainty is not None and rows else None,
        "warnings": [w.message for w in result.warnings],
        "seconds": round(time.perf_counter() - start, 2),
        "device": str(segmenter.device),
        "quality": result.quality,
        "timings": {stage: round(seconds, 3) for stage, seconds in result.timings.items()},
        **({"routing": result.routing.to_json()} if result.routing is not None else {}),
    }
    if result.routing is not None and args.progress != "json":
        print(result.routing.describe())
    print(json.dumps(summary) if args.progress == "json" else _human_summary(summary))
    return 0


def route_description(result, segmenter) -> str:
    """Which experts produced the result, in words: the disease given, the one ``auto`` chose, the mix it used when
    unsure, or the tumour experts standing in for a metastasis model that is not installed."""
    from ..modalities import Disease, resolve_disease
    from ..models import ModelKind

    routing = result.routing
    if routing is not None and not routing.confident:
        mix = ", ".join(f"{d} {p:.0%}" for d, p in sorted(routing.probabilities.items(), key=lambda i: -i[1]))
        return f"auto, unsure: a mix of the routings ({mix})"
    if routing is not None:
        return f"auto: {routing.disease}"
    tag = resolve_disease(result.disease)
    if tag is Disease.METASTASIS and segmenter.metadata.kind is not ModelKind.METASTASIS_TWO_STAGE and \
            "metastasis" not in segmenter.metadata.disease_slots:
        return "metastasis, on the tumour experts (no two-stage metastasis model is installed)"
    if tag is Disease.UNKNOWN:
        return "unknown: an even mix of every disease routing"
    return tag.value


def _resolve_auto_inputs(inputs: dict[str, str], args: argparse.Namespace) -> dict[str, str]:
    """``--input auto=FILE`` (repeatable as auto, auto2, ...): identify each file's contrast from its DICOM tags, BIDS
    sidecar, name or (when none of those tells) its tissue contrast, and put it in its channel; print the evidence.
    Never fills a channel twice or with another contrast, and never replaces a channel given by name."""
    auto = [path for name, path in inputs.items() if name.lower().startswith("auto")]
    if not auto:
        return inputs
    from ..identification import auto_map, identify_file
    from ..modalities import resolve_modality

    explicit = {resolve_modality(n).value: p for n, p in inputs.items() if not n.lower().startswith("auto")}
    registry = registry_of(args)
    from ..inference import resolve_disease_model

    channels = registry.get(resolve_disease_model(registry, args.disease, args.model)).metadata.channels
    found = [(path, identify_file(path)) for path in auto]
    mapping, left_out = auto_map(found, channels, manual=explicit)
    for channel, mapped in mapping.items():
        if mapped.identification.evidence != "hand":
            print(f"auto: {mapped.volume} -> {channel} ({mapped.identification.label}: "
                  f"{mapped.identification.reason})", file=sys.stderr)
            for note in mapped.identification.notes:
                print(f"auto: note: {note}", file=sys.stderr)
    for path, why in left_out:
        print(f"auto: {path} left out: {why}", file=sys.stderr)
    given = list(inputs.values())  # keep the user's order: the first --input is the reference grid
    result = {channel: str(mapped.volume) for channel, mapped in
              sorted(mapping.items(), key=lambda item: given.index(str(item[1].volume)))}
    if not result:
        raise BrainLesionCLError("None of the --input auto= files could be identified; give them as MODALITY=FILE.")
    return result


def _store_in_pacs(args: argparse.Namespace, files: list[str]) -> None:
    """--send-to (C-STORE) or --stow (STOW-RS) of the DICOM files written."""
    from ..pacs import parse_node, store, stow

    if args.send_to:
        node = parse_node(args.send_to)
        count = store(files, node, calling_ae=args.calling_ae, ca_file=args.pacs_ca, cert_file=args.pacs_cert,
                      key_file=args.pacs_key)
        print(f"pacs: stored {count} object(s) in {node}", file=sys.stderr)
    if args.stow:
        count = stow(files, args.stow, ca_bundle=args.pacs_ca)
        print(f"pacs: stored {count} object(s) with STOW-RS at {args.stow}", file=sys.stderr)


def _dicom_inputs(args: argparse.Namespace, study: Path) -> tuple[dict[str, Any], Any]:
    """``--dicom STUDY``: the study's series identified and mapped to the model's channels (one line per series on
    stderr), and the reference series. The reference grid is FLAIR's when a FLAIR was found (lesions are usually read
    there), else the first channel's, unless --reference says otherwise."""
    from ..identification.study import map_dicom_study
    from ..inference import resolve_disease_model

    registry = registry_of(args)
    channels = registry.get(resolve_disease_model(registry, args.disease, args.model)).metadata.channels
    mapping = map_dicom_study(study, channels)
    for line in mapping.lines():
        print(f"dicom: {line}", file=sys.stderr)
    if not mapping.images:
        raise BrainLesionCLError(f"No series of {args.dicom} could be mapped to a channel of the model "
                                 f"({', '.join(channels)}); see the lines above, or give the volumes with --input.")
    from ..modalities import resolve_modality

    first = resolve_modality(args.reference).value if args.reference else (
        "FLAIR" if "FLAIR" in mapping.images else next(iter(mapping.images)))
    if first not in mapping.images:
        raise BrainLesionCLError(f"--reference {args.reference}: no series of the study was mapped to it "
                                 f"(mapped: {', '.join(mapping.images)}).")
    inputs = {first: mapping.images[first], **{c: image for c, image in mapping.images.items() if c != first}}
    return inputs, mapping.series[first]


#: Loaded models kept between requests by ``brainlesioncl worker`` (None: one-shot runs keep nothing).
_segmenter_cache: dict[tuple, Any] | None = None


def enable_segmenter_cache() -> None:
    """Keep every model :func:`_make_segmenter` loads, for the next request of a long-lived worker."""
    global _segmenter_cache
    if _segmenter_cache is None:
        _segmenter_cache = {}


def _make_segmenter(args: argparse.Namespace, disease: str):
    from ..inference import resolve_disease_model

    registry = registry_of(args)
    version = resolve_disease_model(registry, disease, args.model)
    if _segmenter_cache is None:
        return _load_segmenter(args, registry, version)
    key = (str(registry.root), version, args.device, args.mode, args.min_lesion_mm3)
    if key not in _segmenter_cache:
        _segmenter_cache[key] = _load_segmenter(args, registry, version)
    return _segmenter_cache[key]


def _load_segmenter(args: argparse.Namespace, registry, version: str):
    from ..inference import InferenceConfig, Segmenter

    config = InferenceConfig(mode=args.mode, min_lesion_mm3=args.min_lesion_mm3)
    bundle = registry.get(version)
    from ..models import ModelKind

    if bundle.metadata.kind is ModelKind.METASTASIS_TWO_STAGE:
        from ..metastasis import MetastasisPipeline

        return MetastasisPipeline.from_bundle(bundle, device=args.device)
    return Segmenter.from_bundle(bundle, device=args.device, inference=config)


def _human_summary(summary: dict) -> str:
    from ..preparation import quality_lines

    quality = quality_lines(summary.get("quality") or {})
    return "\n".join([f"prepare: {line}" for line in quality] + [_result_line(summary)]
                     + _subregion_lines((summary.get("quality") or {}).get("subregions"))
                     + [f"warning: {text}" for text in summary.get("warnings", [])])


def _subregion_lines(subregions: dict | None) -> list[str]:
    """The tumour sub-region volumes of a result (or why it has none), for the human summary."""
    if not subregions:
        return []
    if not subregions.get("given"):
        return [f"sub-regions: none ({subregions.get('why', 'not available')})"]
    from ..subregions import REGION_NAMES

    return ["sub-regions (labels 1 core, 2 oedema, 3 enhancing): " + ", ".join(
        f"{REGION_NAMES[region]} ({region}) {subregions[f'{region}_ml']:.2f} mL" for region in ("ET", "TC", "WT"))]


def _result_line(summary: dict) -> str:
    files = summary.get("files") or [summary["output"]]
    unsure = summary.get("unsure_lesions")
    lesions = f"{summary['lesion_count']} lesion(s)" + (f" ({unsure} unsure)" if unsure is not None else "")
    return (
        f"Wrote {', '.join(files)}: {lesions}, {summary['lesion_volume_ml']:.2f} mL "
        f"(route {summary.get('route', summary['disease'])}; model {summary['model']}, channels "
        f"{'+'.join(summary['channels'])}, {summary['seconds']:.1f} s on {summary['device']})"
    )


def _segment_batch(args: argparse.Namespace) -> int:
    from ..cases import find_cases

    if not args.output_dir:
        raise BrainLesionCLError("Batch mode needs --output-dir (an existing folder) for the labelmaps.")
    from ..io.atomic import check_writable_folder

    out_dir = check_writable_folder(args.output_dir, "--output-dir")
    cases = find_cases(args.cases)
    segmenters: dict[str, Any] = {}  # a Segmenter or a MetastasisPipeline per disease
    failures = 0
    for index, case in enumerate(cases, start=1):
        disease = case.disease or args.disease
        try:
            segmenter = segmenters.get(disease)
            if segmenter is None:
                segmenter = segmenters[disease] = _make_segmenter(args, disease)
            output = out_dir / f"{case.name}_seg.nii.gz"
            probabilities = out_dir / f"{case.name}_prob.nii.gz" if args.save_probabilities else None
            result = segmenter.segment({m.value: p for m, p in case.images.items()}, disease)
            result.write(output, probabilities=probabilities, overwrite=args.overwrite)
            chosen = f" ({result.routing.describe()})" if result.routing is not None else ""
            print(f"[{index}/{len(cases)}] {case.name}: {result.lesion_count} lesion(s), "
                  f"{result.lesion_volume_ml:.2f} mL -> {output}{chosen}")
        except BrainLesionCLError as err:
            failures += 1
            print(f"[{index}/{len(cases)}] {case.name}: FAILED: {err}", file=sys.stderr)
    print(f"{len(cases) - failures} of {len(cases)} case(s) segmented.")
    return EXIT_BATCH_FAILURES if failures else 0
