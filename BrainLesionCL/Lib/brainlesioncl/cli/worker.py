"""``brainlesioncl worker``: one long-lived engine process that runs commands sent on stdin.

Why: a ``segment`` run of the shipped model spends most of its time starting Python, importing PyTorch and reading
the model, not segmenting. The Slicer module starts this worker on the first Segment click and sends every later
click to it, so those cost the network time and little more. Cancel kills the worker (and with it any half-done
work); the next click starts a new one.

Protocol (one JSON object per line on stdin; everything the command prints goes to stdout as usual)::

    -> {"id": 1, "arguments": ["--registry", "...", "segment", "--input", "FLAIR=...", ...]}
    <- PROGRESS {...} lines, the command's summary line, error lines
    <- DONE {"id": 1, "returncode": 0}

The worker prints ``READY {"pid": ...}`` once its imports are done. End of stdin ends it. Models are kept in memory
between requests (keyed by registry, version, device and inference settings; a version's bundle never changes).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

__all__ = ["register", "serve"]

#: Commands a worker runs; anything else is refused (a worker in a worker, long training runs that belong in a
#: process of their own).
WORKER_COMMANDS = ("segment", "identify", "prepare", "models")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("worker", help="run engine commands sent as JSON lines on stdin (the Slicer module's "
                                           "persistent engine process)")
    parser.set_defaults(func=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    return serve(sys.stdin)


def serve(requests) -> int:
    """Answer requests (an iterable of lines, e.g. stdin) until it ends; replies go to stdout. Returns 0."""
    from . import main as cli
    from . import segment

    replies = sys.stdout
    commands = cli.command_names()
    segment.enable_segmenter_cache()
    import torch  # noqa: F401  - the expensive imports, done before READY so the first request is not slower

    from .. import inference  # noqa: F401

    print("READY " + json.dumps({"pid": os.getpid()}), file=replies, flush=True)
    for line in requests:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            request_id = request["id"]
            arguments = [str(a) for a in request["arguments"]]
        except (ValueError, KeyError, TypeError) as err:
            print(f"error: the worker could not read the request ({err}); send "
                  '{"id": N, "arguments": [...]} on one line', file=replies, flush=True)
            continue
        command = next((a for a in arguments if a in commands), None)
        if command not in WORKER_COMMANDS:
            print(f"error: the worker runs {', '.join(WORKER_COMMANDS)}; start `brainlesioncl {command or '...'}` as "
                  "a process of its own", file=replies, flush=True)
            code = 2
        else:
            code = _run(cli, arguments)
        sys.stderr.flush()
        print("DONE " + json.dumps({"id": request_id, "returncode": code}), file=replies, flush=True)
    return 0


def _run(cli, arguments: list[str]) -> int:
    try:
        return cli.main(arguments)
    except SystemExit as stop:  # argparse refuses bad arguments with SystemExit(2)
        return stop.code if isinstance(stop.code, int) else 2
    except Exception:  # noqa: BLE001 - a bug in one request must not end the worker; report it like main() would
        traceback.print_exc(file=sys.stdout)
        return 1
