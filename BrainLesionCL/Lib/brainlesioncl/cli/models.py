"""``brainlesioncl models``: list, inspect, import, activate, roll back and export model versions."""

from __future__ import annotations

import argparse
import json
import sys

from .common import registry_of

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="list, inspect, import, activate, roll back and export model versions")
    msub = models.add_subparsers(dest="models_action", required=True)
    msub.add_parser("list", help="list versions")
    info = msub.add_parser("info", help="show a version's metadata (verifies its weights)")
    info.add_argument("version", nargs="?", default=None, help="version id (default: the active model)")
    imp = msub.add_parser("import", help="import a published BrainCL (.pt) or MultiUnet (.pth) checkpoint")
    imp.add_argument("file", help="the checkpoint file (read without unpickling code)")
    imp.add_argument("--name", help="registry name (default: braincl or multiunet)")
    imp.add_argument("--format", default="auto", choices=["auto", "braincl", "multiunet"],
                     help="which published layout (auto: read it from the keys)")
    imp.add_argument("--activate", action="store_true", help="activate the imported version")
    act = msub.add_parser("activate", help="make a version the active one")
    act.add_argument("version", help="version id (see: brainlesioncl models list)")
    rb = msub.add_parser("rollback", help="re-activate the previously active version")
    rb.add_argument("--role", default="segmentation", choices=["segmentation", "metastasis"],
                    help="which active model to roll back")
    exp = msub.add_parser("export", help="copy a version's bundle to a new folder")
    exp.add_argument("version", help="version id")
    exp.add_argument("destination", help="a new folder for the bundle")
    models.set_defaults(func=cmd_models)


def cmd_models(args: argparse.Namespace) -> int:
    registry = registry_of(args)
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
