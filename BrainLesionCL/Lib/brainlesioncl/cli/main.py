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
4 some cases of a batch failed; 5 a PACS refused or could not be reached; 130 cancelled.

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


#: What each command's help ends with: two or three commands a user can copy.
EXAMPLES: dict[str, list[str]] = {
    "segment": [
        "brainlesioncl segment -i FLAIR=flair.nii.gz -i T1=t1.nii.gz -d tumour -o seg.nii.gz",
        "brainlesioncl segment -i auto=scan1.nii.gz -i auto=scan2.nii.gz -d auto -o seg.nii.gz --report lesions.csv",
        "brainlesioncl segment --cases cases/ --output-dir results/ -d MS",
    ],
    "models": ["brainlesioncl models list", "brainlesioncl models activate braincl-demo-v4",
               "brainlesioncl models import exprience_1.pt --format braincl"],
    "phantoms": ["brainlesioncl phantoms out/ --disease MS --count 4 --preview"],
    "demo": ["brainlesioncl demo", "brainlesioncl demo --output-dir /tmp/demo --overwrite"],
    "train-default": ["brainlesioncl train-default my-phantom-model --epochs 30"],
    "episode": ["brainlesioncl episode cases/ --disease MS --epochs 20",
                "brainlesioncl episode cases.csv --disease stroke --strategy lwf --activate"],
    "modality-study": ["brainlesioncl modality-study cases/ --disease tumour --output-dir study/"],
    "report": ["brainlesioncl report results.json --output-dir plots/"],
    "adapt": ["brainlesioncl adapt --reassign SWI=PD", "brainlesioncl adapt --expand ADC --activate"],
    "federated": ["brainlesioncl federated server --insecure",
                  "brainlesioncl federated site --cases cases/ --superlink coordinator.example.org:9092 "
                  "--root-certificates ca.pem",
                  "brainlesioncl federated simulate --parent braincl-demo-v4 --disease MS --site north=cases_a/ "
                  "--site south=cases_b/"],
    "prepare": ["brainlesioncl prepare -i T1=t1.nii.gz -i FLAIR=flair.nii.gz --output-dir prepared/"],
    "identify": ["brainlesioncl identify scans/*.nii.gz", "brainlesioncl identify scan.nii.gz --json"],
}
#: Commands that exist for other programs (the Slicer module's engine process), not for users.
INTERNAL_COMMANDS = {"worker"}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples as written; an option's default shown after its help (unless the help already says
    it, or there is none to show)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or "default" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


def _global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """``--registry`` and ``-v``: accepted before or after the command (after it, they override)."""
    default = None if top else argparse.SUPPRESS
    parser.add_argument("--registry", default=default,
                        help="model registry folder (default: ~/.brainlesioncl/models)")
    parser.add_argument("-v", "--verbose", action="store_true", default=False if top else argparse.SUPPRESS,
                        help="log details")


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse._SubParsersAction]:
    return [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]


def _finish(parser: argparse.ArgumentParser, path: str = "") -> None:
    """Give every command the global options, the help formatter and its examples; hide internal commands."""
    for action in _subparsers(parser):
        public = [name for name in action.choices if name not in INTERNAL_COMMANDS]
        action.metavar = "{" + ",".join(public) + "}"
        action._choices_actions = [a for a in action._choices_actions if a.dest not in INTERNAL_COMMANDS]
        for name, child in action.choices.items():
            child.formatter_class = HelpFormatter
            if not _subparsers(child):
                _global_options(child, top=False)
            examples = EXAMPLES.get(name) if not path else [e for e in EXAMPLES.get(path, [])
                                                           if e.split()[2:3] == [name]]
            if examples:
                child.epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples)
            _finish(child, name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="brainlesioncl", formatter_class=HelpFormatter,
        description="Brain-lesion segmentation with any set of MRI modalities, and continual learning on local cases.",
        epilog="examples:\n  brainlesioncl demo\n  " + "\n  ".join(EXAMPLES["segment"][:2])
               + "\n\nEvery command has its own help: brainlesioncl COMMAND --help",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True)
    progress, device = progress_options(), device_options()
    segment.register(sub, [progress, device])
    models.register(sub)
    phantoms.register(sub, progress=progress, device=device)
    episode.register(sub, progress=progress, device=device)
    federated.register(sub, progress=progress, device=device)
    prepare.register(sub)
    worker.register(sub)
    _finish(parser)
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
