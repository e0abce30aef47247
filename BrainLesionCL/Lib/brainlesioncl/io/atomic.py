"""All-or-nothing, verified file writes.

Why this module exists: SimpleITK does not raise when a write fails half way (a full disk gives a 0-byte or truncated
file and only a message on stderr), and a run that writes a labelmap *and* a probability map must never leave one
complete file beside a broken one. So every output goes through :class:`StagedOutputs`:

1. each file is written to a hidden temporary sibling (same folder, so the final rename is atomic);
2. each temporary file is **verified** by the caller's check (for images: read back and compared with what was meant
   to be written);
3. only when every file of the set is verified are they renamed into place; files they replace are kept aside until
   the last rename succeeded and restored if one fails.

Any failure removes every temporary file and raises with the file's name and, when the disk is full, says so.
Files are created with the permissions the user's umask gives (``mkstemp`` alone would give 0600, which colleagues
on a shared drive cannot open).
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from ..errors import ModelStorageError, OutputPathError

__all__ = ["StagedOutputs", "default_file_mode", "default_dir_mode", "is_disk_full", "disk_full_hint",
           "check_writable_folder", "storage_error"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode ``open(..., "w")`` would give a new file (0666 less the umask)."""
    return 0o666 & ~_umask()


def default_dir_mode() -> int:
    """The mode ``mkdir`` would give a new folder (0777 less the umask)."""
    return 0o777 & ~_umask()


def is_disk_full(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full_hint(folder: str | os.PathLike) -> str:
    """A sentence on free space in ``folder``, for messages about failed writes."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return ""
    return f" {free / 2**20:.1f} MiB are free on that disk{'; it is full' if free < 2**20 else ''}."


def check_writable_folder(folder: str | os.PathLike, what: str = "Output folder") -> Path:
    """Fail fast (before any heavy work) when ``folder`` is missing or cannot be written, by trying it."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise OutputPathError(f"{what} {folder} does not exist. Create it first.")
    try:
        fd, probe = tempfile.mkstemp(prefix=".brainlesioncl-write-test-", dir=folder)
    except OSError as err:
        raise OutputPathError(
            f"{what} {folder} cannot be written ({err.strerror}). Choose a folder you can write to, or ask for write "
            "permission."
        ) from err
    os.close(fd)
    os.unlink(probe)
    return folder


class StagedOutputs:
    """Write several files as one unit; see the module docstring.

    Example::

        with StagedOutputs() as out:
            out.add(label_path, lambda tmp: write(label, tmp), verify=check_label)
            out.add(prob_path, lambda tmp: write(prob, tmp), verify=check_prob)
        # both files are in place here, or neither is (and an OutputPathError was raised)
    """

    def __init__(self) -> None:
        self._staged: list[tuple[Path, Path]] = []  # (temporary file, final path)

    def add(
        self,
        final: str | os.PathLike,
        write: Callable[[Path], object],
        *,
        verify: Callable[[Path], None] | None = None,
        suffix: str = "",
    ) -> None:
        """Write one file of the set to a temporary sibling of ``final`` and verify it (raises on failure)."""
        final = Path(final)
        try:
            fd, name = tempfile.mkstemp(prefix=f".{final.name}.partial-", suffix=suffix, dir=final.parent)
        except OSError as err:
            raise self._error(final, err) from err
        os.close(fd)
        tmp = Path(name)
        self._staged.append((tmp, final))
        try:
            write(tmp)
            if tmp.stat().st_size == 0:
                raise OSError(errno.EIO, "the written file is empty")
            if verify is not None:
                verify(tmp)
            os.chmod(tmp, default_file_mode())
        except OutputPathError:
            raise
        except (OSError, RuntimeError, ValueError, EOFError) as err:
            raise self._error(final, err) from err

    @staticmethod
    def _error(final: Path, err: BaseException) -> OutputPathError:
        reason = getattr(err, "strerror", None) or str(err).strip().splitlines()[-1][:200]
        hint = disk_full_hint(final.parent)
        full = is_disk_full(err) or "full" in hint
        return OutputPathError(
            f"Could not write {final}: {'the disk is full' if full else reason}.{hint} Nothing was written; "
            + ("free some space or choose another folder, then run again." if full else
               "check the folder and run again.")
        )

    def commit(self) -> list[Path]:
        """Move every verified file into place; on any failure restore what was there and remove the rest."""
        backups: list[tuple[Path, Path]] = []
        placed: list[Path] = []
        try:
            for _tmp, final in self._staged:
                if final.exists():
                    backup = final.with_name(f".{final.name}.previous-{os.getpid()}")
                    os.replace(final, backup)
                    backups.append((backup, final))
            for tmp, final in self._staged:
                os.replace(tmp, final)
                placed.append(final)
        except OSError as err:
            for final in placed:
                final.unlink(missing_ok=True)
            for backup, final in backups:
                os.replace(backup, final)
            self.abort()
            raise self._error(self._staged[len(placed)][1] if len(placed) < len(self._staged) else placed[-1],
                              err) from err
        for backup, _final in backups:
            backup.unlink(missing_ok=True)
        finals = [final for _tmp, final in self._staged]
        self._staged = []
        return finals

    def abort(self) -> None:
        for tmp, _final in self._staged:
            tmp.unlink(missing_ok=True)
        self._staged = []

    def __enter__(self) -> StagedOutputs:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()


def storage_error(destination: Path, err: BaseException) -> ModelStorageError:
    """The message for a model or checkpoint that could not be stored: says when the disk is full."""
    hint = disk_full_hint(destination.parent if destination.parent.exists() else Path.home())
    if is_disk_full(err) or "full" in hint:
        return ModelStorageError(f"Could not store {destination.name}: the disk is full.{hint} Nothing partial was "
                                 "left behind; free some space and run again.")
    return ModelStorageError(f"Could not store {destination.name} in {destination.parent}: "
                             f"{getattr(err, 'strerror', None) or err}. Nothing partial was left behind.")

