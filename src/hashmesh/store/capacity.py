"""Capacity accounting: how many bytes a put may still write, and readable sizes."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from pathlib import Path

from hashmesh.errors import CapacityError, StorageError

# A put needs its plain bytes (the stored form is never larger, bar a 12-byte header
# per block) plus its manifests: ~50 bytes per chunk link plus a block header.
HEADER_ALLOWANCE = 64
# Keep this much disk free for SQLite's WAL, checkpoints and the file system.
DISK_RESERVE = 16 * 1024 * 1024

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_size(n: int | float) -> str:
    """``1536 -> '1.5 KiB'``; exact bytes below 1 KiB."""
    value = float(n)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def estimate_need(plain_bytes: int, chunk_min: int, files: int = 1) -> int:
    """Upper bound of bytes a put of ``plain_bytes`` in ``files`` files may store."""
    chunks = plain_bytes // max(1, chunk_min) + files
    return plain_bytes + chunks * HEADER_ALLOWANCE + files * 256


def disk_free(path: Path) -> int:
    try:
        return max(0, shutil.disk_usage(path).free - DISK_RESERVE)
    except OSError as exc:
        raise StorageError(f"cannot read free space of {path}: {exc.strerror}") from None


def free_bytes(capacity: int, stored: int, path: Path) -> int:
    """min(capacity - stored, disk free); capacity 0 means only the disk limits."""
    disk = disk_free(path)
    if capacity <= 0:
        return disk
    return max(0, min(capacity - stored, disk))


def exceeded(need: int, free: int) -> CapacityError:
    return CapacityError(
        f"storage capacity exceeded: need {human_size(need)}, free {human_size(free)}",
        need=need,
        free=free,
    )


def is_disk_full(exc: BaseException) -> bool:
    """True for ENOSPC / EDQUOT from the OS or SQLite's 'database or disk is full'."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, sqlite3.Error):
        return "full" in str(exc).lower()
    return False


def disk_full_error(path: Path) -> CapacityError:
    return CapacityError(f"storage capacity exceeded: the disk holding {path} is full")


def storage_error(exc: OSError, what: str) -> StorageError:
    """One clear line for an OS error."""
    if isinstance(exc, PermissionError):
        return StorageError(f"permission denied: cannot {what}")
    return StorageError(f"cannot {what}: {exc.strerror or exc}")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = [
    "disk_free",
    "disk_full_error",
    "estimate_need",
    "exceeded",
    "free_bytes",
    "fsync_dir",
    "human_size",
    "is_disk_full",
    "storage_error",
]
