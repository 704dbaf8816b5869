"""Any failure as one plain line for the user, with the full traceback in a log file the line names.

Failures a user can cause (a full disk, a folder they may not write to, a file that went away, a workspace
another window holds, too little memory) get a sentence that says what to do; anything else is called an
unexpected error. Either way the traceback is appended to a log under the logs folder, and the line ends
with "(details in LOG)". Writing the log may itself fail (a full disk): the line is still given.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
import traceback
from pathlib import Path

from core.diskspace import disk_full_message, is_disk_full


def _folder_of(filename: object) -> str:
    if not filename:
        return os.getcwd()
    path = Path(os.fsdecode(filename))  # type: ignore[arg-type]
    return str(path.parent if path.suffix or not path.is_dir() else path)


def plain_message(exc: BaseException) -> str | None:
    """A sentence for a failure the user can fix, else None."""
    from core.errors import WhetstoneError

    if isinstance(exc, WhetstoneError):  # ours already speak plainly
        return str(exc).strip().splitlines()[0] if str(exc).strip() else None
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc)
        if "disk is full" in text:
            return disk_full_message(os.getcwd(), None, "saving")
        if "locked" in text or "busy" in text:
            return "The workspace is in use by another Whetstone window or command; close that and try again."
        if "readonly" in text or "read-only" in text:
            return "The workspace file cannot be written (read-only); copy it somewhere you may write to."
        return None
    if isinstance(exc, MemoryError):
        return "Out of memory (RAM): close other programs, or work on a smaller file."
    if not isinstance(exc, OSError):
        return None
    filename = exc.filename if isinstance(exc.filename, str | bytes | os.PathLike) else None
    name = os.fsdecode(filename) if filename else ""
    if is_disk_full(exc):
        return disk_full_message(_folder_of(filename), None, f"writing {Path(name).name}" if name else "")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"Permission denied: {name or 'a file'} (you may not read or write it here)."
    if exc.errno == errno.EROFS:
        return f"{name or 'That folder'} is on a read-only disk; choose a folder you may write to."
    if exc.errno == errno.ENOENT:
        return f"File or folder not found: {name}" if name else "A file or folder was not found."
    if exc.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        return f"Cannot use {name}: a file stands where a folder is needed (or the other way round)."
    if exc.errno == errno.ENAMETOOLONG:
        return f"The name is too long for this file system: {name[:80]}…"
    return None


def log_failure(log_name: str, context: str = "", exc: BaseException | None = None) -> Path | None:
    """Append the current exception's traceback to LOGS/log_name; the log's path, or None if it cannot be
    written (a full disk)."""
    try:
        from core.paths import logs_dir

        log = logs_dir() / log_name
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()} {context}\n")
            handle.write(
                "".join(traceback.format_exception(exc)) if exc is not None else traceback.format_exc()
            )
        return log
    except Exception:  # noqa: BLE001 - the user's message matters more than the log
        return None


def failure_line(exc: BaseException, log_name: str, context: str = "") -> str:
    """One line for the user: a plain sentence (or 'Unexpected error: ...') and where the details are."""
    log = log_failure(log_name, context, exc)
    plain = plain_message(exc)
    if plain is None:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        plain = f"Unexpected error: {type(exc).__name__}" + (f": {first[:300]}" if first else "")
    return plain + (f" (details in {log})" if log is not None else "")


_BAD_INPUT = (
    errno.ENOENT,
    errno.EACCES,
    errno.EPERM,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EEXIST,
    errno.ENAMETOOLONG,
)


def exit_code(exc: BaseException) -> int:
    """The CLI's exit status: 2 for a path the user gave that cannot be used, 1 for a job that failed."""
    return 2 if isinstance(exc, OSError) and exc.errno in _BAD_INPUT else 1
