"""The environment of every Flower process BrainLesionCL starts or hosts: nothing is sent anywhere it was not told to
send, and Flower's helpers are found however the command was started.

* **No telemetry, no update check.** Flower reports usage events to its developers unless ``FLWR_TELEMETRY_ENABLED``
  is ``0``, and its command-line tools ask PyPI for a newer release unless ``FLWR_DISABLE_UPDATE_CHECK`` is ``1``. A
  hospital's federated study must talk only to its own server, so both are switched off in this process (before
  Flower is imported: its telemetry reads the variable once, at import) and in every child process.
* **Helpers next to the interpreter.** ``flower-supernode`` and ``flower-superlink`` start ``flower-superexec`` by
  name, looked up on ``PATH``. A site started by the CLI's full path from a service manager, pipx or the Slicer
  module has a minimal ``PATH`` without the environment's ``bin`` folder; it is put first, so the helpers of the same
  installation are found.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["QUIET_FLOWER", "flower_environment", "quiet_flower_here"]

#: What every Flower process gets: telemetry and the update check off.
QUIET_FLOWER = {"FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1"}


def quiet_flower_here() -> None:
    """Switch Flower's telemetry and update check off in this process (call before importing ``flwr``)."""
    os.environ.update(QUIET_FLOWER)


def flower_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a Flower child process: ``base`` (default: this process's), Flower quiet, and this
    interpreter's ``bin`` folder first on ``PATH``."""
    env = dict(os.environ if base is None else base)
    env.update(QUIET_FLOWER)
    scripts = str(Path(sys.executable).parent)
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p]
    env["PATH"] = os.pathsep.join([scripts, *[p for p in path if p != scripts]] or [scripts])
    return env
