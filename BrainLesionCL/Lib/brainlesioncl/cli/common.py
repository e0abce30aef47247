"""What the commands share: progress display, ``--input`` parsing, the registry, ``--option`` values, and the option
groups declared once (argparse parents and helpers) so every command spells an option the same way."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence

from ..errors import BrainLesionCLError

__all__ = ["STRATEGY_NAMES", "add_preparation_options", "device_options", "parse_inputs", "parse_options",
           "progress_options", "progress_printer", "registry_of"]

#: The continual-learning strategies by name, without importing torch for ``--help`` (a test pins it to
#: :data:`brainlesioncl.continual.STRATEGIES`).
STRATEGY_NAMES = ("ours", "braincl-dd", "lwf", "ewc", "si", "naive", "joint")


def progress_options() -> argparse.ArgumentParser:
    """``--progress bar|lines|json|none``: a bar on a terminal; plain lines (one per epoch or stage, on stderr) when
    the output goes to a log file; JSON lines for a parent process such as Slicer."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--progress", choices=["bar", "lines", "json", "none"],
                        default="bar" if sys.stderr.isatty() else "lines",
                        help="progress display (default: bar on a terminal, else lines)")
    return parent


def device_options() -> argparse.ArgumentParser:
    """``--device`` (CUDA when present unless told otherwise)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    return parent


def add_preparation_options(parser: argparse.ArgumentParser, *, modes: Sequence[str] = ("auto", "on", "off"),
                            default: str = "auto", register: bool = True, help_text: str | None = None) -> None:
    """``--prepare``, ``--bias-correction`` and (when the command registers sequences) ``--no-register``: the
    raw-exam stage of :mod:`brainlesioncl.preparation`, with the same words in segment, prepare and episode."""
    parser.add_argument("--prepare", choices=list(modes), default=default,
                        help=help_text or "raw exams (skull on, sequences not co-registered) are brain-extracted and "
                                          "co-registered first: auto (default: only when needed), on, off")
    parser.add_argument("--bias-correction", action="store_true",
                        help="divide each input by its N4 bias field first (about 5-10 s per sequence; off by "
                             "default, see docs/BENCHMARKS.md)")
    if register:
        parser.add_argument("--no-register", action="store_true",
                            help="the sequences are already aligned: skip co-registration")


def progress_printer(kind: str) -> Callable[[float, str], None] | None:
    if kind == "none":
        return None
    if kind == "json":

        def emit(fraction: float, stage: str) -> None:
            print("PROGRESS " + json.dumps({"fraction": round(fraction, 4), "stage": stage}), flush=True)

        return emit
    if kind == "lines":
        return _line_printer()
    width = 30

    def bar(fraction: float, stage: str) -> None:
        filled = int(round(width * fraction))
        sys.stderr.write(f"\r[{'#' * filled}{' ' * (width - filled)}] {100 * fraction:5.1f}% {stage[:60]:<60}")
        if fraction >= 1.0:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return bar


#: Plain progress lines come at most this often, except for an epoch's line and the last one.
LINE_INTERVAL_SECONDS = 2.0


def _line_printer() -> Callable[[float, str], None]:
    """One line per epoch (every epoch), per new stage (at most every :data:`LINE_INTERVAL_SECONDS`) and at the end,
    on stderr: readable in a log file, where a redrawn bar is noise."""
    last_stage, last_time = [""], [float("-inf")]

    def line(fraction: float, stage: str) -> None:
        now = time.monotonic()
        if stage == last_stage[0]:
            return
        if not (stage.startswith("epoch") or fraction >= 1.0 or now - last_time[0] >= LINE_INTERVAL_SECONDS):
            return
        last_stage[0], last_time[0] = stage, now
        print(f"[{100 * fraction:5.1f}%] {stage}", file=sys.stderr, flush=True)

    return line


def parse_inputs(pairs: Sequence[str]) -> dict[str, str]:
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


def registry_of(args: argparse.Namespace):
    from ..registry import ModelRegistry

    return ModelRegistry(args.registry)


def parse_options(pairs: Sequence[str]) -> dict[str, object]:
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
