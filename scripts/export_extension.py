"""Export the tree the Slicer Extensions Index builds: the tracked files of this repository without the model
versions the extension does not install, into a new folder that becomes one commit of the published repository.

Why: the index's factory clones the extension's repository with its history and refuses repositories over 100 MB;
this repository's history holds every model version ever trained (about 18 MB each). The published repository
(``SlicerBrainLesionCL``) therefore gets one commit per release of this export, which holds the default model only
(the one ``default_models/defaults.json`` names, as ``BrainLesionCL/ShippedModels.cmake`` installs). See
docs/EXTENSION_INDEX.md for the whole procedure.

Usage (from the repository root)::

    python scripts/export_extension.py ../SlicerBrainLesionCL-export
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = Path("BrainLesionCL/Lib/brainlesioncl/default_models")
#: The Extensions Index's limit on a repository (its factory clones the history).
INDEX_LIMIT_BYTES = 100 * 1024 * 1024


def exported_files(repo: Path = REPO) -> list[Path]:
    """Tracked files, less the model versions other than the default one."""
    default = json.loads((repo / MODELS / "defaults.json").read_text(encoding="utf-8"))["segmentation"]
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=repo, check=True, capture_output=True).stdout
    files = [Path(name) for name in tracked.decode("utf-8").split("\0") if name]
    return [f for f in files
            if not (f.is_relative_to(MODELS) and len(f.relative_to(MODELS).parts) > 1
                    and f.relative_to(MODELS).parts[0] != default)]


def export(destination: Path, repo: Path = REPO) -> int:
    """Copy the exported files into ``destination`` (new or empty); returns their total size in bytes."""
    if destination.exists() and any(destination.iterdir()):
        raise SystemExit(f"error: {destination} is not empty; give a new folder")
    total = 0
    for relative in exported_files(repo):
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / relative, target)
        total += target.stat().st_size
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("destination", type=Path, help="a new folder for the exported tree")
    args = parser.parse_args(argv)
    total = export(args.destination)
    print(f"Exported {len(exported_files())} files, {total / 1e6:.1f} MB, to {args.destination} "
          f"(the index's limit: {INDEX_LIMIT_BYTES / 1e6:.0f} MB with history).")
    if total > INDEX_LIMIT_BYTES:
        print("error: the export is over the Extensions Index's limit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
