"""Run the engine's command line in a child process, so Slicer's GUI never freezes, and cancel it cleanly.

The child prints ``PROGRESS {"fraction": f, "stage": s}`` lines (``--progress json``) and a final JSON summary. A
reader thread queues every line; the owner calls :meth:`EngineProcess.poll` from its own loop (a ``QTimer`` in the
widget, ``time.sleep`` in a script or test) and gets the latest progress. :meth:`EngineProcess.cancel` kills the
whole process tree (the process group on Linux/macOS; on Windows, where ``PythonSlicer`` is a launcher whose real
Python would survive its parent, every descendant found with psutil, or ``taskkill /T``), so nothing the engine started
keeps running. Temporary folders holding patient images (``workDirs``) are removed when the process is cancelled or its
owner calls :meth:`EngineProcess.discardWork`. No Qt here.
"""

from __future__ import annotations

import enum
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["EngineProcess", "ProcessState", "engine_command", "kill_process_tree", "python_executable"]

_ENGINE_DIR = Path(__file__).resolve().parents[1] / "Lib"


class ProcessState(enum.Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


def python_executable() -> str:
    """Slicer's ``PythonSlicer`` launcher when present (it sets up Slicer's environment), else this interpreter."""
    return shutil.which("PythonSlicer") or sys.executable


def engine_command(arguments: Sequence[str]) -> list[str]:
    """The command that runs ``brainlesioncl <arguments>`` in a child Python."""
    return [python_executable(), "-m", "brainlesioncl.cli.main", *arguments]


def kill_process_tree(process: subprocess.Popen) -> None:
    """Kill a child and all its descendants, on every platform."""
    if os.name != "nt":
        try:
            os.killpg(process.pid, signal.SIGKILL)  # the child leads its own session (start_new_session)
        except ProcessLookupError:
            pass
        return
    try:  # pragma: no cover - Windows
        import psutil

        parent = psutil.Process(process.pid)
        for child in parent.children(recursive=True):
            child.kill()
        parent.kill()
    except ImportError:  # pragma: no cover - Windows without psutil
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(process.pid)], capture_output=True,
                       creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
    except Exception:  # pragma: no cover - already gone  # noqa: BLE001
        pass


@dataclass
class EngineProcess:
    """One running engine command. Start with :meth:`start`; poll until :attr:`state` is not RUNNING."""

    arguments: list[str]
    environment: dict[str, str] = field(default_factory=dict)
    fraction: float = 0.0
    stage: str = "starting"
    log: list[str] = field(default_factory=list)
    summary: dict | None = None
    state: ProcessState = ProcessState.RUNNING
    started: float = 0.0
    finished: float | None = None
    #: Temporary folders this job owns (patient images): removed by :meth:`discardWork` and by :meth:`cancel`.
    workDirs: list = field(default_factory=list)

    def start(self) -> EngineProcess:
        env = {**os.environ, **self.environment}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ENGINE_DIR), env.get("PYTHONPATH", "")) if p)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._cancelled = False
        self._eof = False
        self.started = time.perf_counter()
        env.setdefault("PYTHONIOENCODING", "utf-8")
        self._process = subprocess.Popen(
            engine_command(self.arguments), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
            text=True, encoding="utf-8", errors="replace",  # never the locale's codec: names may be non-ASCII
            start_new_session=(os.name != "nt"), bufsize=1,
            # Windows: a process group of its own, and no console window popping up over Slicer.
            creationflags=(getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
                           | getattr(subprocess, "CREATE_NO_WINDOW", 0)),
        )
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    @property
    def elapsed(self) -> float:
        return (self.finished or time.perf_counter()) - self.started

    @property
    def returncode(self) -> int | None:
        return self._process.poll()

    def poll(self) -> ProcessState:
        """Drain the output read so far; update fraction, stage, log and state."""
        ended = False
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is None:
                ended = self._eof = True
                break
            self._consume(line)
        if not ended and self._process.poll() is not None:
            # The process is gone: wait for the reader to drain the pipe, so the final summary line is not lost.
            ended = self._drain(timeout=5.0)
        if ended:
            code = self._process.wait()
            self.finished = self.finished or time.perf_counter()
            if self._cancelled:
                self.state = ProcessState.CANCELLED
            else:
                self.state = ProcessState.SUCCEEDED if code == 0 else ProcessState.FAILED
        return self.state

    def _drain(self, timeout: float) -> bool:
        deadline = time.perf_counter() + timeout
        while not self._eof and time.perf_counter() < deadline:
            try:
                line = self._lines.get(timeout=0.05)
            except queue.Empty:
                continue
            if line is None:
                self._eof = True
                return True
            self._consume(line)
        return True  # the reader is stuck on a pipe a grandchild still holds: report what we have

    def _consume(self, line: str) -> None:
        if line.startswith("PROGRESS "):
            try:
                record = json.loads(line[len("PROGRESS "):])
                self.fraction, self.stage = float(record["fraction"]), str(record["stage"])
                return
            except (ValueError, KeyError):
                pass
        if line.startswith("{"):
            try:
                self.summary = json.loads(line)
                return
            except ValueError:
                pass
        self.log.append(line)

    def wait(self, timeout: float | None = None, interval: float = 0.1) -> ProcessState:
        """Block until the process ends (scripts and tests; the widget polls instead)."""
        deadline = None if timeout is None else time.perf_counter() + timeout
        while self.poll() is ProcessState.RUNNING:
            if deadline is not None and time.perf_counter() > deadline:
                self.cancel()
                raise TimeoutError(f"brainlesioncl {' '.join(self.arguments[:1])} did not finish in {timeout} s")
            time.sleep(interval)
        return self.state

    def cancel(self) -> None:
        """Kill the child and everything it started, and remove its temporary folders. Idempotent."""
        if self._process.poll() is None:
            self._cancelled = True
            kill_process_tree(self._process)
            self._process.wait()
        self.discardWork()

    def discardWork(self) -> None:
        """Remove the temporary folders this job owns (the patient images written for it). Idempotent."""
        for folder in self.workDirs:
            shutil.rmtree(folder, ignore_errors=True)
        self.workDirs = []

    @property
    def error(self) -> str:
        """The child's error message (its last ``error:`` line), for the user."""
        for line in reversed(self.log):
            if line.startswith("error:"):
                return line[len("error:"):].strip()
        return self.log[-1] if self.log else f"exit code {self.returncode}"
