"""Block files and large exports past the page cache, where the file system allows.

A block file is written once, fsync'd, and seldom read again soon; an export is
written once and left to the user. Copying them through the page cache costs more
than it saves on a VM, where every freshly allocated page-cache page can be slow to
touch: here fsync'd 1 MiB files written buffered used about six times the CPU of the
same files written with ``O_DIRECT``, and a get's buffered output alone took over a
second of kernel time for 256 MiB in some runs (docs/storage.md). With
``O_DIRECT`` the kernel moves the bytes between our buffer and the disk.

``O_DIRECT`` needs the buffer, the file offset and the length aligned to the
device's block size. Each thread keeps one page-aligned ``mmap`` buffer, grown on
demand: a block is copied into it, padded with zeros to a multiple of
:data:`ALIGN`, written, and truncated back to its true length before the
``fdatasync`` that makes data and size durable; a read fills it and copies out the
file's bytes. File systems without ``O_DIRECT`` (tmpfs, some FUSE and network
mounts) refuse it with ``EINVAL``; the code then falls back to ordinary buffered
I/O (for good, in :class:`BlockFiles`). Block files smaller than :data:`DIRECT_MIN`
are written buffered; block files are never small (small blocks live in SQLite).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import threading
from collections.abc import Sequence

ALIGN = 4096  # covers 512-byte and 4 KiB logical blocks
DIRECT_MIN = 128 * 1024  # smaller files are written buffered
_O_DIRECT: int = getattr(os, "O_DIRECT", 0)
_MiB = 1 << 20


class BlockFiles:
    """Reads whole files, and writes them durably (the caller renames and fsyncs the
    directory), past the page cache where the file system allows it."""

    def __init__(self, direct: bool = True) -> None:
        self.direct = direct and _O_DIRECT != 0
        self._local = threading.local()

    def write(self, path: os.PathLike[str] | str, parts: Sequence[bytes | memoryview]) -> None:
        """Create ``path`` (which must not exist) holding ``parts``, data and size
        durable on return. On an error the file may be left behind for the caller."""
        total = sum(len(p) for p in parts)
        if self.direct and total >= DIRECT_MIN:
            try:
                self._write_direct(path, parts, total)
                return
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self.direct = False  # this file system does not take O_DIRECT
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)  # if the open itself was refused, there is none
        self._write_buffered(path, parts)

    def read(self, path: os.PathLike[str] | str) -> bytes:
        """The whole content of ``path``, read past the page cache where allowed."""
        if self.direct:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | _O_DIRECT)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self.direct = False  # this file system does not take O_DIRECT
            else:
                try:
                    return self._read_direct(fd)
                except OSError as exc:
                    if exc.errno != errno.EINVAL:
                        raise
                    self.direct = False
                finally:
                    os.close(fd)
        with open(path, "rb", buffering=0) as f:
            return f.read()

    def _read_direct(self, fd: int) -> bytes:
        size = os.fstat(fd).st_size
        padded = max(ALIGN, -(-size // ALIGN) * ALIGN)
        view = memoryview(self._buffer(padded))
        try:
            got = 0
            while got < size:  # a short read ends on an aligned offset or at the end
                n = os.preadv(fd, [view[got:padded]], got)
                if n == 0:
                    break
                got += n
            return bytes(view[:got])
        finally:
            view.release()

    def _buffer(self, size: int) -> mmap.mmap:
        buf: mmap.mmap | None = getattr(self._local, "buf", None)
        if buf is None or len(buf) < size:
            if buf is not None:
                buf.close()
            buf = mmap.mmap(-1, -(-size // _MiB) * _MiB)  # page-aligned
            self._local.buf = buf
        return buf

    def _write_direct(
        self, path: os.PathLike[str] | str, parts: Sequence[bytes | memoryview], total: int
    ) -> None:
        padded = -(-total // ALIGN) * ALIGN
        buf = self._buffer(padded)
        at = 0
        for p in parts:
            buf[at : at + len(p)] = p
            at += len(p)
        buf[total:padded] = bytes(padded - total)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | _O_DIRECT, 0o644)
        try:
            with memoryview(buf) as view:  # a short write still ends on an aligned offset
                _write_all(fd, view[:padded], 0)
            if padded != total:
                os.ftruncate(fd, total)
            os.fdatasync(fd)
        finally:
            os.close(fd)

    @staticmethod
    def _write_buffered(path: os.PathLike[str] | str, parts: Sequence[bytes | memoryview]) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            at = 0
            for p in parts:
                _write_all(fd, memoryview(p), at)
                at += len(p)
            os.fdatasync(fd)
        finally:
            os.close(fd)


class Output:
    """A new file written front to back, past the page cache where the file system
    allows it (a large export: its bytes are not read back soon). Not made durable:
    the caller decides about ``fsync``. Files under :data:`DIRECT_MIN` in all are
    written buffered."""

    STAGE = 8 * 1024 * 1024

    def __init__(self, path: os.PathLike[str] | str) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        fd = -1
        if _O_DIRECT:
            try:
                fd = os.open(path, flags | _O_DIRECT, 0o644)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
        # the stage exists only for O_DIRECT: buffered writes go straight to the file
        self._stage = mmap.mmap(-1, self.STAGE) if fd >= 0 else None
        self._fd = fd if fd >= 0 else os.open(path, flags, 0o644)
        self._used = 0  # bytes waiting in the stage
        self._at = 0  # file offset of the stage's first byte

    def write(self, data: bytes | memoryview) -> None:
        if self._stage is None:
            _write_all(self._fd, memoryview(data), self._at)
            self._at += len(data)
            return
        view = memoryview(data)
        while view:
            n = min(len(view), self.STAGE - self._used)
            self._stage[self._used : self._used + n] = view[:n]
            self._used += n
            view = view[n:]
            if self._used == self.STAGE:
                self._flush(self.STAGE)

    def _flush(self, length: int) -> None:
        assert self._stage is not None
        with memoryview(self._stage) as stage:
            done = 0
            while done < length:
                try:
                    done += os.pwrite(self._fd, stage[done:length], self._at + done)
                except OSError as exc:
                    if exc.errno != errno.EINVAL:
                        raise
                    self._buffered()  # opened with O_DIRECT, but writes refuse it
        self._at += length
        self._used = 0

    def _buffered(self) -> None:
        flags = fcntl.fcntl(self._fd, fcntl.F_GETFL)
        fcntl.fcntl(self._fd, fcntl.F_SETFL, flags & ~_O_DIRECT)

    def close(self, flush: bool = True) -> None:
        """Write what is staged (unless ``flush`` is false) and close the file."""
        try:
            if flush and self._stage is not None and self._used:
                total = self._at + self._used
                if total < DIRECT_MIN:  # small in all: an ordinary write
                    self._buffered()
                    with memoryview(self._stage) as stage:
                        _write_all(self._fd, stage[: self._used], self._at)
                else:
                    padded = -(-self._used // ALIGN) * ALIGN
                    self._stage[self._used : padded] = bytes(padded - self._used)
                    self._flush(padded)
                    os.ftruncate(self._fd, total)
        finally:
            os.close(self._fd)
            if self._stage is not None:
                self._stage.close()

    def __enter__(self) -> Output:
        return self

    def __exit__(self, et: type[BaseException] | None, *_: object) -> None:
        self.close(flush=et is None)  # a failed export is removed anyway


def _write_all(fd: int, view: memoryview, at: int) -> None:
    while view:
        n = os.pwrite(fd, view, at)
        view, at = view[n:], at + n


__all__ = ["ALIGN", "DIRECT_MIN", "BlockFiles", "Output"]
