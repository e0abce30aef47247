"""``brainlesioncl`` command-line tool.

One module per command group, each with ``register(subparsers, ...)`` and its ``cmd_*`` functions:

* :mod:`.segment`: ``segment`` (one case, or a batch from a folder/CSV);
* :mod:`.prepare`: ``prepare`` (only the raw-exam stage) and ``identify`` (which contrast each file is);
* :mod:`.models`: ``models list|info|import|activate|rollback|export``;
* :mod:`.phantoms`: ``phantoms`` (synthetic cases with known truth), ``demo`` (the main job on phantoms) and
  ``train-default`` (the recipe of the shipped phantom model);
* :mod:`.episode`: ``episode`` (continual learning on local cases; data-parallel under ``torchrun``), ``adapt``,
  ``modality-study`` and ``report`` (continual-learning plots);
* :mod:`.federated`: ``federated server|site|app|simulate`` (an episode trained by several hospitals, on Flower);
* :mod:`.worker`: ``worker`` (a long-lived process running commands sent on stdin: the Slicer module's engine);
* :mod:`.common`: what they share (progress, ``--input`` and ``--option`` parsing, option groups).

Heavy imports (torch, MONAI) happen inside the commands so ``--help`` is instant. The Slicer module runs this same
entry point in its child process (``python -m brainlesioncl.cli.main``).

Exit codes: 0 success; 1 unexpected error (a bug: please report it); 2 bad input; 3 model/registry problem;
4 some cases of a batch failed; 130 cancelled.

With ``--progress json`` every progress step is printed on stdout as one line ``PROGRESS {"fraction": f, "stage": s}``
so a parent process (the Slicer module) can show it; ``--progress bar`` (default on a terminal) draws a bar on stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import BrainLesionCLError
from . import episode, federated, models, phantoms, prepare, segment, worker
from .common import device_options, progress_options

__all__ = ["build_parser", "command_names", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="brainlesioncl",
        description="Brain-lesion segmentation with any set of MRI modalities, and continual learning on local cases.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--registry", help="model registry folder (default: ~/.brainlesioncl/models)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    sub = parser.add_subparsers(dest="command", required=True)
    progress, device = progress_options(), device_options()
    segment.register(sub, [progress, device])
    models.register(sub)
    phantoms.register(sub, progress=progress, device=device)
    episode.register(sub, progress=progress, device=device)
    federated.register(sub, progress=progress, device=device)
    prepare.register(sub)
    worker.register(sub)
    return parser


def command_names() -> set[str]:
    """Every top-level command (``segment``, ``models``, ...)."""
    parser = build_parser()
    return {name for action in parser._actions if isinstance(action, argparse._SubParsersAction)
            for name in action.choices}


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
