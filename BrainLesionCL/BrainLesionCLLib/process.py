"""Run the engine's command line in a child process, so Slicer's GUI never freezes, and cancel it cleanly.

The child prints ``PROGRESS {"fraction": f, "stage": s}`` lines (``--progress json``) and a final JSON summary. A
reader thread queues every line; the owner calls :meth:`EngineProcess.poll` from its own loop (a ``QTimer`` in the
widget, ``time.sleep`` in a script or test) and gets the latest progress. :meth:`EngineProcess.cancel` kills the
whole process tree (the process group on Linux/macOS; on Windows, where ``PythonSlicer`` is a launcher whose real
Python would survive its parent, every descendant found with psutil, or ``taskkill /T``), so nothing the engine started
keeps running. Temporary folders holding patient images (``workDirs``) are removed when the process is cancelled or its
owner calls :meth:`EngineProcess.discardWork`. No Qt here.

:class:`EngineWorker` keeps one engine process (``brainlesioncl worker``) alive between Segment clicks: the first
click pays for starting Python, importing PyTorch and reading the model, later clicks only for the work. Its jobs
(:class:`WorkerJob`) look like an :class:`EngineProcess` to the caller. Cancelling a job ends the worker (the next
job starts a new one), and so does :meth:`EngineWorker.stop` (module exit, scene close).
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

__all__ = ["EngineJob", "EngineProcess", "EngineWorker", "ProcessState", "WorkerJob", "engine_command",
           "kill_process_tree", "python_executable"]

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


def _spawn(arguments: Sequence[str], environment: dict[str, str], stdin: bool = False
           ) -> tuple[subprocess.Popen, queue.Queue[str | None]]:
    """Start ``brainlesioncl <arguments>`` with a reader thread that queues its output lines (None at the end)."""
    env = {**os.environ, **environment}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ENGINE_DIR), env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("PYTHONIOENCODING", "utf-8")
    process = subprocess.Popen(
        engine_command(arguments), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
        stdin=subprocess.PIPE if stdin else None,
        text=True, encoding="utf-8", errors="replace",  # never the locale's codec: names may be non-ASCII
        start_new_session=(os.name != "nt"), bufsize=1,
        # Windows: a process group of its own, and no console window popping up over Slicer.
        creationflags=(getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
                       | getattr(subprocess, "CREATE_NO_WINDOW", 0)),
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return process, lines


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
class EngineJob:
    """What the widget sees of a running engine command, however it runs: progress, log, summary, state, and the
    temporary folders it owns. :class:`EngineProcess` (a process of its own) and :class:`WorkerJob` (a command sent to
    the kept-alive :class:`EngineWorker`) fill it in; they differ in how they poll, cancel and end."""

    arguments: list[str]
    fraction: float = 0.0
    stage: str = "starting"
    log: list[str] = field(default_factory=list)
    summary: dict | None = None
    state: ProcessState = ProcessState.RUNNING
    started: float = 0.0
    finished: float | None = None
    #: Temporary folders this job owns (patient images): removed by :meth:`discardWork` and by :meth:`cancel`.
    workDirs: list = field(default_factory=list)

    @property
    def elapsed(self) -> float:
        return (self.finished or time.perf_counter()) - self.started

    @property
    def returncode(self) -> int | None:
        raise NotImplementedError

    def poll(self) -> ProcessState:
        raise NotImplementedError

    def cancel(self) -> None:
        raise NotImplementedError

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
        """Block until the job ends (scripts and tests; the widget polls instead)."""
        deadline = None if timeout is None else time.perf_counter() + timeout
        while self.poll() is ProcessState.RUNNING:
            if deadline is not None and time.perf_counter() > deadline:
                self.cancel()
                raise TimeoutError(f"brainlesioncl {' '.join(self.arguments[:1])} did not finish in {timeout} s")
            time.sleep(interval)
        return self.state

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


@dataclass
class EngineProcess(EngineJob):
    """One engine command in a process of its own. Start with :meth:`start`; poll until :attr:`state` is not
    RUNNING."""

    environment: dict[str, str] = field(default_factory=dict)

    def start(self) -> EngineProcess:
        self._cancelled = False
        self._eof = False
        self.started = time.perf_counter()
        self._process, self._lines = _spawn(self.arguments, self.environment)
        return self

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

    def cancel(self) -> None:
        """Kill the child and everything it started, and remove its temporary folders. Idempotent."""
        if self._process.poll() is None:
            self._cancelled = True
            kill_process_tree(self._process)
            self._process.wait()
        self.discardWork()

@dataclass
class WorkerJob(EngineJob):
    """One command run by an :class:`EngineWorker`."""

    worker: EngineWorker = field(kw_only=True)
    requestId: int = field(kw_only=True)
    _returncode: int | None = None

    @property
    def returncode(self) -> int | None:
        return self._returncode

    def poll(self) -> ProcessState:
        if self.state is ProcessState.RUNNING:
            self.worker._pump(self)
        return self.state

    def _end(self, state: ProcessState, code: int | None) -> None:
        self.state, self._returncode = state, code
        self.finished = self.finished or time.perf_counter()

    def cancel(self) -> None:
        """End the job by ending the worker (whatever it was doing stops at once); remove the temporary folders."""
        if self.state is ProcessState.RUNNING:
            self._end(ProcessState.CANCELLED, self.worker.stop())  # the killed worker's exit status
        self.discardWork()


class EngineWorker:
    """A ``brainlesioncl worker`` child kept alive between jobs (one job at a time). Started by the first
    :meth:`submit`; a job finds it dead (cancelled, crashed) and a new one is started for the next."""

    def __init__(self, environment: dict[str, str] | None = None) -> None:
        self.environment = dict(environment or {})
        self._process: subprocess.Popen | None = None
        self._lines: queue.Queue[str | None] | None = None
        self._next_id = 0
        self._current: WorkerJob | None = None
        #: How many worker processes were started (1 after many jobs means the worker was reused).
        self.starts = 0

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def busy(self) -> bool:
        return self._current is not None and self._current.state is ProcessState.RUNNING

    def submit(self, arguments: Sequence[str], workDirs: Sequence = ()) -> WorkerJob:
        """Send one command (``brainlesioncl`` arguments, e.g. a ``segment``) to the worker, starting it if needed."""
        if self.busy:
            raise RuntimeError("the engine worker is busy with another job; wait for it or cancel it")
        if not self.alive:
            self._process, self._lines = _spawn(["worker"], self.environment, stdin=True)
            self.starts += 1
        self._next_id += 1
        job = WorkerJob(list(arguments), worker=self, requestId=self._next_id, started=time.perf_counter(),
                        workDirs=list(workDirs))
        assert self._process is not None and self._process.stdin is not None
        try:
            self._process.stdin.write(json.dumps({"id": job.requestId, "arguments": job.arguments}) + "\n")
            self._process.stdin.flush()
        except OSError:  # the worker died between the check and the write
            self.stop()
            job.log.append("error: the engine worker ended unexpectedly; press the button again to restart it")
            job._end(ProcessState.FAILED, 1)
            return job
        self._current = job
        return job

    def _pump(self, job: WorkerJob) -> None:
        """Move the worker's output lines into ``job`` until none is waiting; notice the end of the job."""
        assert self._lines is not None
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                if not self.alive and job.state is ProcessState.RUNNING:  # died without a DONE line
                    self._drain_into(job)
                    if job.state is ProcessState.RUNNING:
                        job._end(ProcessState.FAILED, self._process.poll() if self._process else 1)
                return
            if line is None:
                if job.state is ProcessState.RUNNING:
                    job._end(ProcessState.FAILED, self._process.wait() if self._process else 1)
                return
            if line.startswith("READY "):
                job.stage = "engine ready"
                continue
            if line.startswith("DONE "):
                reply = json.loads(line[len("DONE "):])
                if reply.get("id") == job.requestId:
                    code = int(reply.get("returncode", 1))
                    job._end(ProcessState.SUCCEEDED if code == 0 else ProcessState.FAILED, code)
                    self._current = None
                    return
                continue
            job._consume(line)

    def _drain_into(self, job: WorkerJob, timeout: float = 2.0) -> None:
        deadline = time.perf_counter() + timeout
        assert self._lines is not None
        while time.perf_counter() < deadline:
            try:
                line = self._lines.get(timeout=0.05)
            except queue.Empty:
                continue
            if line is None:
                return
            if not line.startswith(("READY ", "DONE ")):
                job._consume(line)

    def stop(self) -> int | None:
        """End the worker process and everything it started; its exit status (None: there was none). Idempotent."""
        process, self._process, self._current = self._process, None, None
        if process is None:
            return None
        if process.poll() is None:
            kill_process_tree(process)
        return process.wait()
