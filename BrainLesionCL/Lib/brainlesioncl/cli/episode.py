"""Continual-learning commands: ``episode`` (a new version learnt from local annotated cases; data-parallel under
``torchrun``), ``adapt`` (a version for a modality the model never saw), ``modality-study`` (which inputs matter)
and ``report`` (plots of a sequence's accuracy matrix)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .common import STRATEGY_NAMES, add_preparation_options, parse_options, progress_printer, registry_of

__all__ = ["register"]


def register(sub: argparse._SubParsersAction, *, progress: argparse.ArgumentParser,
             device: argparse.ArgumentParser) -> None:
    ep = sub.add_parser("episode", help="learn from local annotated cases: a new model version (continual learning)",
                        parents=[progress, device])
    ep.add_argument("cases", help="folder of case folders, or a CSV/JSON manifest, with a label per case")
    ep.add_argument("--disease", required=True, help="the cases' disease tag (tumour, stroke, MS, WMH, metastasis)")
    ep.add_argument("--parent", help="version to start from (default: the active model)")
    ep.add_argument("--strategy", default="ours", choices=STRATEGY_NAMES,
                    help="ours (default): dual distillation plus the old diseases' routes; braincl-dd: the published "
                         "method; lwf, ewc, si: classic baselines; naive: plain fine-tuning; joint: upper bound")
    ep.add_argument("--option", action="append", help="strategy hyper-parameter NAME=VALUE (JSON value), repeatable")
    ep.add_argument("--epochs", type=int, default=20, help="passes over the cases' crops")
    ep.add_argument("--steps-per-epoch", type=int,
                    help="batches per epoch (default: one crop per case); set it when there are few cases, so an "
                         "epoch (and its checkpoint) is a useful amount of work")
    ep.add_argument("--crop-size", type=int, default=64, help="edge of the cubic training crops, in voxels")
    ep.add_argument("--batch-size", type=int, default=2, help="crops per training step")
    ep.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate")
    ep.add_argument("--schedule", choices=["constant", "cosine"], default="constant",
                    help="learning rate: constant, or cosine decay to 1%% over the episode")
    ep.add_argument("--validation-fraction", type=float, default=0.2,
                    help="share of the cases held out to pick the best epoch")
    ep.add_argument("--keep", choices=["best", "last"], default="best", help="keep the best-validation or last epoch")
    ep.add_argument("--seed", type=int, default=0, help="random seed (crops, split, initialisation)")
    ep.add_argument("--name", help="model name of the new version (default: the parent's)")
    ep.add_argument("--label-mapping", choices=["strict", "nonzero"], default="strict",
                    help="nonzero: every label value > 0 is lesion (e.g. BraTS 1/2/4)")
    add_preparation_options(ep, register=False,
                            help_text="raw annotated exams: co-register and brain-extract each case onto the sequence "
                                      "its label was drawn on, as segment does (auto: only when a case is raw)")
    ep.add_argument("--activate", action="store_true", help="activate the new version when done")
    ep.add_argument("--no-resume", action="store_true", help="start from epoch 1 even if a checkpoint exists")
    ep.set_defaults(func=cmd_episode)

    ms = sub.add_parser("modality-study", help="Dice with every subset of each case's modalities (which inputs matter)",
                        parents=[progress, device])
    ms.add_argument("cases", help="labelled cases: a folder of case folders, or a CSV/JSON manifest")
    ms.add_argument("--disease", required=True, help="the disease the cases show (routes the experts)")
    ms.add_argument("--model", help="model version (default: the active one)")
    ms.add_argument("--output-dir", default="modality_study", help="folder for the table and plots")
    ms.add_argument("--label-mapping", choices=["strict", "nonzero"], default="strict",
                    help="strict: labels are 0/1; nonzero: every nonzero value is lesion (BraTS 1/2/4)")
    ms.add_argument("--against", choices=["label", "full"], default="label",
                    help="score against the annotations, or each case's all-inputs segmentation (no label needed)")
    ms.set_defaults(func=cmd_modality_study)

    ad = sub.add_parser("adapt", help="prepare a version for a modality it never saw (a new version to fine-tune)")
    ad.add_argument("--parent", help="version to adapt (default: the active model)")
    ad.add_argument("--reassign", metavar="NEW=SLOT", help="carry NEW in an unused channel, e.g. SWI=PD")
    ad.add_argument("--expand", action="append", metavar="MODALITY",
                    help="add an input channel with new first-layer filters, repeatable")
    ad.add_argument("--progressive", action="store_true",
                    help="freeze the (residual U-Net) parent as a column and add a new column with laterals")
    ad.add_argument("--name", help="model name of the new version (default: the parent's)")
    ad.add_argument("--activate", action="store_true", help="make the new version the active one")
    ad.set_defaults(func=cmd_adapt)

    rp = sub.add_parser("report", help="heatmaps of R and a radar of Acc/ILM/BWT/FWT from a results JSON")
    rp.add_argument("results", help="JSON with datasets and one R matrix per strategy (the benchmark writes it)")
    rp.add_argument("--output-dir", default="cl_report", help="folder for the plots")
    rp.set_defaults(func=cmd_report)


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

    options = parse_options(args.option or [])
    config = EpisodeConfig(
        strategy=args.strategy, strategy_options=options, epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch, crop_size=args.crop_size, batch_size=args.batch_size,
        learning_rate=args.learning_rate, schedule=args.schedule, validation_fraction=args.validation_fraction,
        seed=args.seed, keep=args.keep,
    )
    started_group = _init_distributed()
    import torch

    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    printer = progress_printer(args.progress) if rank == 0 else None

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
            args.cases, args.disease, parent=args.parent, registry=registry_of(args), config=config, name=args.name,
            device=args.device, label_mapping=args.label_mapping, prepare=args.prepare,
            bias_correction=args.bias_correction, resume=not args.no_resume, progress=report,
        )
        if rank == 0 and result.metadata is not None:  # the other ranks of a torchrun episode write nothing
            registry = registry_of(args)
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

    registry = registry_of(args)
    bundle = registry.get(args.model)
    meta = bundle.metadata
    printer = progress_printer(args.progress)
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
    registry = registry_of(args)
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
