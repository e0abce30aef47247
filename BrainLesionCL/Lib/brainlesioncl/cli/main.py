"""``brainlesioncl`` command-line tool.

Sub-commands: ``segment`` (one case, or a batch from a folder/CSV), ``models list|info|import|activate|rollback|
export``, ``phantoms`` (synthetic cases with known truth), ``demo`` (the main job on phantoms), ``train-default``
(the recipe of the shipped model), ``episode`` (continual learning on local cases; data-parallel under ``torchrun``),
``report`` (continual-learning plots), ``identify`` (which contrast each file is), ``adapt``, ``modality-study``.
Heavy imports (torch, MONAI) happen inside the commands so ``--help`` is instant.

Exit codes: 0 success; 1 unexpected error (a bug: please report it); 2 bad input; 3 model/registry problem;
4 some cases of a batch failed; 130 cancelled.

With ``--progress json`` every progress step is printed on stdout as one line ``PROGRESS {"fraction": f, "stage": s}``
so a parent process (the Slicer module) can show it; ``--progress bar`` (default on a terminal) draws a bar on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .. import __version__
from ..errors import BrainLesionCLError

logger = logging.getLogger("brainlesioncl")

EXIT_BATCH_FAILURES = 4


def _progress_printer(kind: str):
    if kind == "none":
        return None
    if kind == "json":

        def emit(fraction: float, stage: str) -> None:
            print("PROGRESS " + json.dumps({"fraction": round(fraction, 4), "stage": stage}), flush=True)

        return emit
    width = 30

    def bar(fraction: float, stage: str) -> None:
        filled = int(round(width * fraction))
        sys.stderr.write(f"\r[{'#' * filled}{' ' * (width - filled)}] {100 * fraction:5.1f}% {stage[:60]:<60}")
        if fraction >= 1.0:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return bar


def _parse_inputs(pairs: Sequence[str]) -> dict[str, str]:
    inputs: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise BrainLesionCLError(
                f"--input {pair!r} must look like MODALITY=FILE, e.g. --input FLAIR=flair.nii.gz"
            )
        name, path = pair.split("=", 1)
        if name.strip().lower() == "auto":  # several files to identify: auto, auto2, auto3, ...
            name = f"auto{sum(k.startswith('auto') for k in inputs) + 1}"
        if name in inputs:
            raise BrainLesionCLError(f"--input {name} is given twice; give each modality once.")
        inputs[name.strip()] = path.strip()
    return inputs


def _resolve_auto_inputs(inputs: dict[str, str], args: argparse.Namespace) -> dict[str, str]:
    """``--input auto=FILE`` (repeatable as auto, auto2, ...): identify each file's contrast from its DICOM tags, BIDS
    sidecar or name, and put it in its channel; print the evidence. Never fills a channel twice or with another
    contrast, and never replaces a channel given by name."""
    auto = [path for name, path in inputs.items() if name.lower().startswith("auto")]
    if not auto:
        return inputs
    from ..identification import auto_map, identify_file
    from ..modalities import resolve_modality

    explicit = {resolve_modality(n).value: p for n, p in inputs.items() if not n.lower().startswith("auto")}
    registry = _registry(args)
    from ..inference import resolve_disease_model

    channels = registry.get(resolve_disease_model(registry, args.disease, args.model)).metadata.channels
    found = [(path, identify_file(path, use_image=False)) for path in auto]
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


def cmd_prepare(args: argparse.Namespace) -> int:
    """Only the preparation stage: co-registered, brain-extracted sequences on the reference grid, and the QC."""
    from ..inference.segmenter import inputs_order, read_inputs
    from ..modalities import map_channels, resolve_modality
    from ..preparation import prepare_inputs
    from ..preparation.export import write_prepared

    inputs = _parse_inputs(args.input or [])
    if not inputs:
        raise BrainLesionCLError("Give the exam with --input MODALITY=FILE (repeatable).")
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
    from ..identification import identify_file

    rows = []
    for path in args.files:
        found = identify_file(path, use_image=not args.no_image)
        rows.append({"file": path, "modality": found.modality.value if found.modality else None,
                     "refused": found.refused, "evidence": found.evidence,
                     "confidence": round(found.confidence, 3), "reason": found.reason, "notes": list(found.notes)})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            what = row["modality"] or ("refused" if row["refused"] else "-")
            print(f"{row['file']}: {what} ({row['evidence']}, {row['confidence']:.0%}) {row['reason']}")
            for note in row["notes"]:
                print(f"    note: {note}")
    return 0


def _registry(args: argparse.Namespace):
    from ..registry import ModelRegistry

    return ModelRegistry(args.registry)


def _make_segmenter(args: argparse.Namespace, disease: str):
    from ..inference import InferenceConfig, Segmenter, resolve_disease_model

    registry = _registry(args)
    version = resolve_disease_model(registry, disease, args.model)
    config = InferenceConfig(mode=args.mode, min_lesion_mm3=args.min_lesion_mm3)
    bundle = registry.get(version)
    from ..models import ModelKind

    if bundle.metadata.kind is ModelKind.METASTASIS_TWO_STAGE:
        from ..metastasis import MetastasisPipeline

        return MetastasisPipeline.from_bundle(bundle, device=args.device)
    return Segmenter.from_bundle(bundle, device=args.device, inference=config)


def cmd_segment(args: argparse.Namespace) -> int:
    if args.cases:
        return _segment_batch(args)
    if not args.input:
        raise BrainLesionCLError("Give the case with --input MODALITY=FILE (repeatable), or a batch with --cases.")
    if not args.output:
        raise BrainLesionCLError("Give the output labelmap path with -o/--output (e.g. -o seg.nii.gz).")
    from ..errors import OutputPathError
    from ..io import check_output_path

    inputs = _resolve_auto_inputs(_parse_inputs(args.input), args)
    # Check outputs before any heavy work, so a typo costs nothing.
    check_output_path(args.output, overwrite=args.overwrite)
    if args.probabilities:
        check_output_path(args.probabilities, overwrite=args.overwrite)
    if args.uncertainty:
        check_output_path(args.uncertainty, overwrite=args.overwrite)
    if args.write_prepared:
        from ..io.atomic import check_writable_folder

        check_writable_folder(args.write_prepared, "--write-prepared folder")
    if args.report and Path(args.report).suffix.lower() not in (".csv", ".json"):
        raise OutputPathError(f"--report {args.report}: give a .csv or .json file name.")
    segmenter = _make_segmenter(args, args.disease)
    logger.info("model %s on %s", segmenter.metadata.version, segmenter.device)
    start = time.perf_counter()
    result = segmenter.segment(
        inputs, args.disease, reference=args.reference, progress=_progress_printer(args.progress),
        prepare=args.prepare, register=not args.no_register, uncertainty=bool(args.uncertainty),
        bias_correction=args.bias_correction,
    )
    result.write(args.output, probabilities=args.probabilities, uncertainty=args.uncertainty,
                 overwrite=args.overwrite)
    if args.write_prepared:
        from ..preparation.export import write_prepared

        write_prepared(result.preparation, args.write_prepared, overwrite=args.overwrite)
    if args.report:
        from ..lesion_report import lesion_rows, write_lesion_report

        write_lesion_report(lesion_rows(result.label, result.probability, result.uncertainty), args.report,
                            overwrite=args.overwrite)
    summary = {
        "output": str(args.output),
        "model": result.model_version,
        "disease": result.disease,
        "channels": result.channels_used,
        "lesion_volume_ml": round(result.lesion_volume_ml, 3),
        "lesion_count": result.lesion_count,
        "seconds": round(time.perf_counter() - start, 2),
        "device": str(segmenter.device),
        "quality": result.quality,
    }
    print(json.dumps(summary) if args.progress == "json" else _human_summary(summary))
    return 0


def _human_summary(summary: dict) -> str:
    from ..preparation import quality_lines

    quality = quality_lines(summary.get("quality") or {})
    return "\n".join([f"prepare: {line}" for line in quality] + [_result_line(summary)])


def _result_line(summary: dict) -> str:
    return (
        f"Wrote {summary['output']}: {summary['lesion_count']} lesion(s), {summary['lesion_volume_ml']:.2f} mL "
        f"({summary['disease']}, model {summary['model']}, channels {'+'.join(summary['channels'])}, "
        f"{summary['seconds']:.1f} s on {summary['device']})"
    )


def _segment_batch(args: argparse.Namespace) -> int:
    from ..cases import find_cases

    if not args.output_dir:
        raise BrainLesionCLError("Batch mode needs --output-dir (an existing folder) for the labelmaps.")
    from ..io.atomic import check_writable_folder

    out_dir = check_writable_folder(args.output_dir, "--output-dir")
    cases = find_cases(args.cases)
    segmenters: dict[str, object] = {}
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
            print(f"[{index}/{len(cases)}] {case.name}: {result.lesion_count} lesion(s), "
                  f"{result.lesion_volume_ml:.2f} mL -> {output}")
        except BrainLesionCLError as err:
            failures += 1
            print(f"[{index}/{len(cases)}] {case.name}: FAILED: {err}", file=sys.stderr)
    print(f"{len(cases) - failures} of {len(cases)} case(s) segmented.")
    return EXIT_BATCH_FAILURES if failures else 0


def cmd_models(args: argparse.Namespace) -> int:
    registry = _registry(args)
    action = args.models_action
    if action == "list":
        infos = registry.list()
        if not infos:
            print("No model installed. Import one with `brainlesioncl models import FILE`.")
        for info in infos:
            flags = ("*" if info.active else " ") + ("B" if info.builtin else " ")
            if info.problem:
                print(f"{flags} {info.version:<28} DAMAGED: {info.problem}")
                continue
            print(f"{flags} {info.version:<28} {info.kind:<22} parent={info.parent or '-':<20} "
                  f"channels={','.join(info.channels)} diseases={','.join(info.disease_slots) or '-'}")
        print("(* active, B shipped with BrainLesionCL)")
        damaged = [info.version for info in infos if info.problem]
        if damaged:
            print(f"{len(damaged)} damaged version(s) cannot be used: {', '.join(damaged)}. Delete their folders under "
                  f"{registry.versions_dir} or re-import them.", file=sys.stderr)
    elif action == "info":
        bundle = registry.get(args.version)
        bundle.verify()
        print(json.dumps(bundle.metadata.to_json(), indent=2))
    elif action == "import":
        version = registry.import_checkpoint(args.file, name=args.name, fmt=args.format)
        print(f"Imported {args.file} as {version}.")
        if args.activate:
            registry.activate(version)
            print(f"{version} is now active.")
    elif action == "activate":
        registry.activate(args.version)
        print(f"{args.version} is now active.")
    elif action == "rollback":
        print(f"Rolled back to {registry.rollback(args.role)}.")
    elif action == "export":
        print(f"Exported to {registry.export(args.version, args.destination)}.")
    return 0


def cmd_phantoms(args: argparse.Namespace) -> int:
    from ..phantoms import generate_dataset

    out = Path(args.output_dir)
    folders = generate_dataset(
        out, count=args.count, disease=args.disease, preset=args.preset, seed=args.seed,
        modalities=args.modalities.split(",") if args.modalities else None,
        size=tuple(args.size), spacing=args.spacing, preview=args.preview,
        progress=_progress_printer(args.progress),
    )
    print(f"Wrote {len(folders)} case(s) to {out} (manifest.json, cases.csv).")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    start = time.perf_counter()
    results = run_demo(args.output_dir, registry=_registry(args), version=args.model, device=args.device,
                       seed=args.seed)
    mean = sum(r.metrics["dice"] for r in results) / len(results)
    print(f"Mean Dice {mean:.3f} over {len(results)} phantom case(s); total {time.perf_counter() - start:.0f} s.")
    return 0


def cmd_train_default(args: argparse.Namespace) -> int:
    from ..training.default_model import DefaultRecipe, train_default_model

    recipe = DefaultRecipe(epochs=args.epochs, cases_per_disease=args.cases_per_disease, seed=args.seed,
                           learning_rate=args.learning_rate, schedule=args.schedule, init_from=args.init_from)
    path = train_default_model(args.output, recipe, device=args.device,
                               progress=lambda message: print(message, flush=True))
    print(f"Default model written to {path}")
    return 0


def _parse_options(pairs: Sequence[str]) -> dict[str, object]:
    """``--option NAME=VALUE`` pairs; VALUE is JSON (a number, true/false, a string in quotes)."""
    from ..errors import SettingsError

    options: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"--option {pair!r} must look like NAME=VALUE, e.g. --option beta=0.5")
        try:
            options[key.strip()] = json.loads(value) if value.strip() else None
        except json.JSONDecodeError as err:
            raise SettingsError(
                f"--option {pair!r}: {value!r} is not a value; give a number (beta=0.5), true/false, or a quoted "
                f"string (name='\"x\"')."
            ) from err
        if not isinstance(options[key.strip()], (int, float, bool, str, type(None))):
            raise SettingsError(f"--option {pair!r}: give a single number, true/false or string, not a list or object.")
    return options


def _init_distributed() -> bool:
    """Join the process group when started by ``torchrun`` (WORLD_SIZE > 1): NCCL on GPUs, gloo on CPUs."""
    import os

    import torch

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or torch.distributed.is_initialized():
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    torch.distributed.init_process_group(backend=backend)
    return True


def cmd_episode(args: argparse.Namespace) -> int:
    from ..continual import EpisodeConfig, train_episode

    options = _parse_options(args.option or [])
    config = EpisodeConfig(
        strategy=args.strategy, strategy_options=options, epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch, crop_size=args.crop_size, batch_size=args.batch_size,
        learning_rate=args.learning_rate, schedule=args.schedule, validation_fraction=args.validation_fraction,
        seed=args.seed, keep=args.keep,
    )
    started_group = _init_distributed()
    import torch

    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    printer = _progress_printer(args.progress) if rank == 0 else None

    def report(record: dict) -> None:
        if printer is None:
            return
        if "stage" in record:
            printer(0.0, record["stage"])
            return
        dice = "-" if record["val_dice"] is None else f"{record['val_dice']:.3f}"
        printer(record["epoch"] / record["epochs"], f"epoch {record['epoch']}/{record['epochs']} loss "
                f"{record['loss']:.4f} val Dice {dice} ETA {record['eta_seconds'] / 60:.1f} min")

    try:
        result = train_episode(
            args.cases, args.disease, parent=args.parent, registry=_registry(args), config=config, name=args.name,
            device=args.device, label_mapping=args.label_mapping, prepare=args.prepare,
            bias_correction=args.bias_correction, resume=not args.no_resume, progress=report,
        )
        if rank == 0:
            registry = _registry(args)
            if args.activate:
                registry.activate(result.version)
            summary = {"version": result.version, "parent": result.metadata.parent,
                       "minutes": round(result.seconds / 60, 2),
                       "validation": result.metadata.metrics.get("validation"), "activated": bool(args.activate)}
            print(json.dumps(summary) if args.progress == "json" else
                  f"New version {result.version} (parent {result.metadata.parent}) in {summary['minutes']} min; "
                  f"validation {summary['validation']}. "
                  + ("Activated." if args.activate else f"Activate it with: brainlesioncl models activate "
                     f"{result.version}"))
    finally:
        if started_group:
            torch.distributed.destroy_process_group()
    return 0


def cmd_modality_study(args: argparse.Namespace) -> int:
    from ..continual import load_episode_cases
    from ..modality_study import modality_study, unannotated_cases, write_study

    registry = _registry(args)
    bundle = registry.get(args.model)
    meta = bundle.metadata
    printer = _progress_printer(args.progress)
    if args.against == "full":  # the cases' own all-inputs results are the reference: labels are not needed
        cases = unannotated_cases(args.cases, args.disease, meta.channels, meta.preprocess_config)
    else:
        cases = load_episode_cases(args.cases, args.disease, meta.channels, meta.preprocess_config,
                                   label_mapping=args.label_mapping)
    results = modality_study(bundle.build(), cases, meta.channels, meta.disease_slots, device=args.device,
                             against=args.against, output=meta.output, progress=printer)
    files = write_study(results, args.output_dir)
    print(files["markdown"].read_text(encoding="utf-8"))
    return 0


def cmd_adapt(args: argparse.Namespace) -> int:
    from ..adaptation import adapt_version
    from ..errors import SettingsError
    from ..models import ModelKind

    reassign = None
    if args.reassign:
        new, sep, slot = args.reassign.partition("=")
        if not sep or not new or not slot:
            raise SettingsError(f"--reassign takes NEW=SLOT, e.g. SWI=PD (got {args.reassign!r}).")
        reassign = (new, slot)
    registry = _registry(args)
    version = adapt_version(registry, args.parent, reassign=reassign, expand=args.expand or (),
                            progressive=args.progressive, name=args.name)
    if args.activate:
        registry.activate(version)
    meta = registry.get(version).metadata
    print(json.dumps({"version": version, "parent": meta.parent, "kind": meta.kind.value, "channels": meta.channels,
                      "activated": bool(args.activate)}))
    print(f"Next: brainlesioncl episode CASES --disease D --parent {version}"
          + (" --strategy naive" if meta.kind is not ModelKind.MOE_UNET else ""), file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ..continual.report import load_results, write_report

    files = write_report(load_results(args.results), args.output_dir)
    print((Path(args.output_dir) / "summary.md").read_text(encoding="utf-8"))
    for name, path in files.items():
        print(f"{name}: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="brainlesioncl",
        description="Brain-lesion segmentation with any set of MRI modalities, and continual learning on local cases.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--registry", help="model registry folder (default: ~/.brainlesioncl/models)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    sub = parser.add_subparsers(dest="command", required=True)

    seg = sub.add_parser("segment", help="segment one case, or a batch of cases")
    seg.add_argument("--input", "-i", action="append", metavar="MODALITY=FILE",
                     help="one input volume (repeat per modality): FLAIR, T1, T1c, T2, PD, DWI, SWI, ADC or aliases; "
                          "auto=FILE identifies the contrast from DICOM tags, a BIDS sidecar or the name")
    seg.add_argument("--disease", "-d", default="unknown",
                     help="tumour, stroke, MS, WMH, metastasis or unknown (default)")
    seg.add_argument("--output", "-o", help="output labelmap (.nii.gz, .nii, .nrrd, .mha)")
    seg.add_argument("--probabilities", help="also write the lesion probability map here")
    seg.add_argument("--reference", help="modality whose grid the output takes (default: the first --input)")
    seg.add_argument("--model", help="model version (default: the active one)")
    seg.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    seg.add_argument("--mode", default="fast", choices=["fast", "reference"],
                     help="fast single pass on the brain box (default) or the published sliding-window protocol")
    seg.add_argument("--overwrite", action="store_true", help="replace existing output files")
    seg.add_argument("--prepare", choices=["auto", "on", "off"], default="auto",
                     help="raw exams (skull on, sequences not co-registered) are brain-extracted and co-registered "
                          "first: auto (default: only when needed), on, off")
    seg.add_argument("--bias-correction", action="store_true",
                     help="divide each input by its N4 bias field first (about 5-10 s per sequence; off by default, "
                         "see docs/BENCHMARKS.md)")
    seg.add_argument("--uncertainty", metavar="FILE",
                     help="also write a voxel-wise uncertainty map (predictive entropy of 4 flipped views, 0..1 bits)")
    seg.add_argument("--report", metavar="FILE",
                     help="per-lesion report (.csv or .json): volume, largest diameter, RAS centroid, mean probability")
    seg.add_argument("--write-prepared", metavar="DIR",
                     help="also write the prepared sequences, brain mask and QC to this existing folder")
    seg.add_argument("--no-register", action="store_true",
                     help="the sequences are already aligned: skip co-registration")
    seg.add_argument("--min-lesion-mm3", type=float, default=0.0,
                     help="remove connected lesions smaller than this volume (default 0: keep all)")
    seg.add_argument("--cases", help="batch: a folder of case folders, or a CSV manifest")
    seg.add_argument("--output-dir", help="batch: folder for <case>_seg.nii.gz")
    seg.add_argument("--save-probabilities", action="store_true", help="batch: also write <case>_prob.nii.gz")
    seg.add_argument("--progress", choices=["bar", "json", "none"],
                     default="bar" if sys.stderr.isatty() else "none", help="progress display")
    seg.set_defaults(func=cmd_segment)

    models = sub.add_parser("models", help="list, inspect, import, activate, roll back and export model versions")
    msub = models.add_subparsers(dest="models_action", required=True)
    msub.add_parser("list", help="list versions")
    info = msub.add_parser("info", help="show a version's metadata (verifies its weights)")
    info.add_argument("version", nargs="?", default=None)
    imp = msub.add_parser("import", help="import a published BrainCL (.pt) or MultiUnet (.pth) checkpoint")
    imp.add_argument("file")
    imp.add_argument("--name", help="registry name (default: braincl or multiunet)")
    imp.add_argument("--format", default="auto", choices=["auto", "braincl", "multiunet"])
    imp.add_argument("--activate", action="store_true", help="activate the imported version")
    act = msub.add_parser("activate", help="make a version the active one")
    act.add_argument("version")
    rb = msub.add_parser("rollback", help="re-activate the previously active version")
    rb.add_argument("--role", default="segmentation", choices=["segmentation", "metastasis"])
    exp = msub.add_parser("export", help="copy a version's bundle to a new folder")
    exp.add_argument("version")
    exp.add_argument("destination")
    models.set_defaults(func=cmd_models)

    ph = sub.add_parser("phantoms", help="generate multi-contrast brain phantoms with known lesion truth")
    ph.add_argument("output_dir")
    ph.add_argument("--count", type=int, default=4)
    ph.add_argument("--disease", help="tumour, MS, stroke, WMH, metastasis, TBI or none")
    ph.add_argument("--preset", help="modality set and disease of a public database: "
                    "BRATS, ATLAS, MSSEG, ISLES, WMH, TBI, METS")
    ph.add_argument("--modalities", help="comma-separated, e.g. FLAIR,T1,T1c,T2 (default: all but ADC)")
    ph.add_argument("--size", type=int, nargs=3, default=[160, 192, 144], metavar=("X", "Y", "Z"))
    ph.add_argument("--spacing", type=float, default=1.0, help="voxel size in mm")
    ph.add_argument("--seed", type=int, default=0)
    ph.add_argument("--preview", action="store_true", help="also write preview.png per case")
    ph.add_argument("--progress", choices=["bar", "json", "none"], default="bar" if sys.stderr.isatty() else "none")
    ph.set_defaults(func=cmd_phantoms)

    demo = sub.add_parser("demo", help="segment freshly generated phantoms with the active model and score them")
    demo.add_argument("--output-dir", default="demo_output")
    demo.add_argument("--model", help="model version (default: the active one)")
    demo.add_argument("--device", default="auto")
    demo.add_argument("--seed", type=int, default=1)
    demo.set_defaults(func=cmd_demo)

    td = sub.add_parser("train-default", help="train the demonstration model on phantoms (the shipped recipe)")
    td.add_argument("output", help="bundle folder to create, e.g. braincl-demo-v2")
    td.add_argument("--epochs", type=int, default=30)
    td.add_argument("--cases-per-disease", type=int, default=16)
    td.add_argument("--seed", type=int, default=2026)
    td.add_argument("--learning-rate", type=float, default=1e-3)
    td.add_argument("--schedule", choices=["constant", "cosine"], default="constant")
    td.add_argument("--init-from", help="bundle folder to fine-tune from (a second training stage)")
    td.add_argument("--device", default="auto")
    td.set_defaults(func=cmd_train_default)

    ep = sub.add_parser("episode", help="learn from local annotated cases: a new model version (continual learning)")
    ep.add_argument("cases", help="folder of case folders, or a CSV/JSON manifest, with a label per case")
    ep.add_argument("--disease", required=True, help="the cases' disease tag (tumour, stroke, MS, WMH, metastasis)")
    ep.add_argument("--parent", help="version to start from (default: the active model)")
    ep.add_argument("--strategy", default="ours", help="ours (default), braincl-dd, lwf, ewc, si, naive")
    ep.add_argument("--option", action="append", help="strategy hyper-parameter NAME=VALUE (JSON value), repeatable")
    ep.add_argument("--epochs", type=int, default=20)
    ep.add_argument("--steps-per-epoch", type=int,
                    help="batches per epoch (default: one crop per case); set it when there are few cases, so an "
                         "epoch (and its checkpoint) is a useful amount of work")
    ep.add_argument("--crop-size", type=int, default=64)
    ep.add_argument("--batch-size", type=int, default=2)
    ep.add_argument("--learning-rate", type=float, default=1e-3)
    ep.add_argument("--schedule", choices=["constant", "cosine"], default="constant",
                    help="learning rate: constant, or cosine decay to 1%% over the episode")
    ep.add_argument("--validation-fraction", type=float, default=0.2)
    ep.add_argument("--keep", choices=["best", "last"], default="best", help="keep the best-validation or last epoch")
    ep.add_argument("--seed", type=int, default=0)
    ep.add_argument("--name", help="model name of the new version (default: the parent's)")
    ep.add_argument("--label-mapping", choices=["strict", "nonzero"], default="strict",
                    help="nonzero: every label value > 0 is lesion (e.g. BraTS 1/2/4)")
    ep.add_argument("--prepare", choices=["auto", "on", "off"], default="auto",
                    help="raw annotated exams: co-register and brain-extract each case onto the sequence its label "
                         "was drawn on, as segment does (auto: only when a case is raw)")
    ep.add_argument("--bias-correction", action="store_true",
                    help="N4 bias-field correction of every case first (use it if you segment with it)")
    ep.add_argument("--device", default="auto")
    ep.add_argument("--activate", action="store_true", help="activate the new version when done")
    ep.add_argument("--no-resume", action="store_true", help="start from epoch 1 even if a checkpoint exists")
    ep.add_argument("--progress", choices=["bar", "json", "none"], default="bar" if sys.stderr.isatty() else "none")
    ep.set_defaults(func=cmd_episode)

    ms = sub.add_parser("modality-study", help="Dice with every subset of each case's modalities (which inputs matter)")
    ms.add_argument("cases", help="labelled cases: a folder of case folders, or a CSV/JSON manifest")
    ms.add_argument("--disease", required=True)
    ms.add_argument("--model", help="model version (default: the active one)")
    ms.add_argument("--output-dir", default="modality_study")
    ms.add_argument("--label-mapping", choices=["strict", "nonzero"], default="strict")
    ms.add_argument("--against", choices=["label", "full"], default="label",
                    help="score against the annotations, or each case's all-inputs segmentation (no label needed)")
    ms.add_argument("--device", default="auto")
    ms.add_argument("--progress", choices=["bar", "json", "none"], default="bar" if sys.stderr.isatty() else "none")
    ms.set_defaults(func=cmd_modality_study)

    ad = sub.add_parser("adapt", help="prepare a version for a modality it never saw (a new version to fine-tune)")
    ad.add_argument("--parent", help="version to adapt (default: the active model)")
    ad.add_argument("--reassign", metavar="NEW=SLOT", help="carry NEW in an unused channel, e.g. SWI=PD")
    ad.add_argument("--expand", action="append", metavar="MODALITY",
                    help="add an input channel with new first-layer filters, repeatable")
    ad.add_argument("--progressive", action="store_true",
                    help="freeze the (residual U-Net) parent as a column and add a new column with laterals")
    ad.add_argument("--name", help="model name of the new version (default: the parent's)")
    ad.add_argument("--activate", action="store_true")
    ad.set_defaults(func=cmd_adapt)

    prep = sub.add_parser("prepare", help="only prepare a raw exam: co-register, extract the brain, write QC")
    prep.add_argument("--input", "-i", action="append", metavar="MODALITY=FILE", help="one sequence (repeatable)")
    prep.add_argument("--reference", help="the sequence whose grid the others take (default: the first --input)")
    prep.add_argument("--output-dir", required=True, help="existing folder for the prepared sequences and QC")
    prep.add_argument("--prepare", choices=["auto", "on"], default="on", help="on (default) or auto")
    prep.add_argument("--no-register", action="store_true", help="the sequences are already aligned")
    prep.add_argument("--bias-correction", action="store_true",
                      help="divide each input by its N4 bias field first (about 5-10 s per sequence; off by default, "
                         "see docs/BENCHMARKS.md)")
    prep.add_argument("--overwrite", action="store_true")
    prep.set_defaults(func=cmd_prepare)

    ident = sub.add_parser("identify", help="which contrast each file is (DICOM tags, BIDS sidecar, name, image)")
    ident.add_argument("files", nargs="+", help="image files or DICOM series folders")
    ident.add_argument("--no-image", action="store_true", help="do not read the voxels (tags and names only)")
    ident.add_argument("--json", action="store_true", help="one JSON list instead of lines")
    ident.set_defaults(func=cmd_identify)

    rp = sub.add_parser("report", help="heatmaps of R and a radar of Acc/ILM/BWT/FWT from a results JSON")
    rp.add_argument("results", help="JSON with datasets and one R matrix per strategy (the benchmark writes it)")
    rp.add_argument("--output-dir", default="cl_report")
    rp.set_defaults(func=cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # an ASCII terminal gets '?' for '°' or '²', never a crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args) or 0)
    except BrainLesionCLError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
