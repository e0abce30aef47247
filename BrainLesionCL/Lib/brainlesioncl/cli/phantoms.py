"""Phantom commands: ``phantoms`` (cases with known truth), ``demo`` (the main job on fresh phantoms) and
``train-default`` (the recipe of the shipped phantom model)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .common import progress_printer, registry_of

__all__ = ["register"]


def register(sub: argparse._SubParsersAction, *, progress: argparse.ArgumentParser,
             device: argparse.ArgumentParser) -> None:
    ph = sub.add_parser("phantoms", help="generate multi-contrast brain phantoms with known lesion truth",
                        parents=[progress])
    ph.add_argument("output_dir", help="folder for the cases (one sub-folder each)")
    ph.add_argument("--count", type=int, default=4, help="cases to make")
    ph.add_argument("--disease", help="tumour, MS, stroke, WMH, metastasis, TBI or none")
    ph.add_argument("--preset", help="modality set and disease of a public database: "
                    "BRATS, ATLAS, MSSEG, ISLES, WMH, TBI, METS")
    ph.add_argument("--modalities", help="comma-separated, e.g. FLAIR,T1,T1c,T2 (default: all but ADC)")
    ph.add_argument("--size", type=int, nargs=3, default=[160, 192, 144], metavar=("X", "Y", "Z"),
                    help="grid size in voxels")
    ph.add_argument("--spacing", type=float, default=1.0, help="voxel size in mm")
    ph.add_argument("--seed", type=int, default=0, help="random seed of the first case")
    ph.add_argument("--preview", action="store_true", help="also write preview.png per case")
    ph.add_argument("--lesion-style", choices=["classic", "clinical"], default="classic",
                    help="clinical: MS, WMH and acute stroke as small and subtle as on real scans")
    ph.add_argument("--stroke-stage", choices=["acute", "chronic"],
                    help="strokes of one stage only (default: half acute, half chronic). A DWI/FLAIR study is acute: "
                         "without T1 a chronic cavity looks like CSF")
    ph.add_argument("--lesion-library", metavar="DIR",
                    help="folder of real stroke lesion masks in MNI152 space for the clinical style's acute strokes")
    ph.set_defaults(func=cmd_phantoms)

    demo = sub.add_parser("demo", help="segment freshly generated phantoms with the active model and score them",
                          parents=[device])
    demo.add_argument("--output-dir", default="demo_output",
                      help="folder for the segmentations, previews and summary.json")
    demo.add_argument("--model", help="model version (default: the active one)")
    demo.add_argument("--seed", type=int, default=1, help="random seed of the phantoms")
    demo.add_argument("--overwrite", action="store_true", help="replace the results of an earlier demo in that folder")
    demo.set_defaults(func=cmd_demo)

    td = sub.add_parser("train-default", help="train the demonstration model on phantoms (the shipped recipe)",
                        parents=[device])
    td.add_argument("output", help="bundle folder to create, e.g. braincl-demo-v2")
    td.add_argument("--epochs", type=int, default=30, help="passes over the phantoms")
    td.add_argument("--cases-per-disease", type=int, default=16, help="phantoms per disease")
    td.add_argument("--seed", type=int, default=2026, help="random seed")
    td.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate")
    td.add_argument("--schedule", choices=["constant", "cosine"], default="constant",
                    help="learning-rate schedule")
    td.add_argument("--init-from", help="bundle folder to fine-tune from (a second training stage)")
    td.set_defaults(func=cmd_train_default)


def cmd_phantoms(args: argparse.Namespace) -> int:
    from ..phantoms import generate_dataset

    out = Path(args.output_dir)
    folders = generate_dataset(
        out, count=args.count, disease=args.disease, preset=args.preset, seed=args.seed,
        modalities=args.modalities.split(",") if args.modalities else None,
        size=tuple(args.size), spacing=args.spacing, preview=args.preview,
        progress=progress_printer(args.progress), lesion_style=args.lesion_style, lesion_library=args.lesion_library,
        stroke_stage=args.stroke_stage,
    )
    print(f"Wrote {len(folders)} case(s) to {out} (manifest.json, cases.csv).")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    start = time.perf_counter()
    results = run_demo(args.output_dir, registry=registry_of(args), version=args.model, device=args.device,
                       seed=args.seed, overwrite=args.overwrite)
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
