"""Disk-full failures in one line: which folder, how much space the job needs and how much is free."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from core.errors import WhetstoneError


class DiskFullError(WhetstoneError):
    """A write ran out of space. The message names the folder and the space needed."""


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def free_bytes(folder: str | os.PathLike[str]) -> int | None:
    path = Path(folder)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def human_size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def disk_full_message(folder: str | os.PathLike[str], needed: int | None, what: str = "") -> str:
    """'The disk is full: <what> needs about X in FOLDER (Y free); free some space and try again.'"""
    free = free_bytes(folder)
    need = f" about {human_size(needed)}" if needed else " more space"
    have = f" ({human_size(free)} free)" if free is not None else ""
    doing = f"{what} needs" if what else "this needs"
    return f"The disk is full: {doing}{need} in {folder}{have}; free some space and try again."


def check_space(folder: str | os.PathLike[str], needed: int, what: str = "") -> None:
    """Raise DiskFullError before starting a write of about `needed` bytes that cannot fit."""
    free = free_bytes(folder)
    if free is not None and free < needed:
        raise DiskFullError(disk_full_message(folder, needed, what))


def tree_size(path: str | os.PathLike[str]) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total
