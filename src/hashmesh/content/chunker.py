"""Content-defined chunking (FastCDC) with the store's min/avg/max sizes.

The same bytes always split at the same cut points, so identical regions of
different files become identical blocks and are stored once.

``pyfastcdc`` accepts ``64 <= min <= 1 MiB``, ``256 <= avg <= 4 MiB`` and
``1 KiB <= max <= 16 MiB``. Sizes outside those windows are clamped for the
cut-point search, and any piece longer than the configured ``max_size`` is then
split into ``max_size`` pieces, so the configured maximum always holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from pyfastcdc import FastCDC

from hashmesh.errors import InvalidArgumentError

KiB = 1024
MiB = 1024 * KiB
_MIN_WINDOW = (64, 1 * MiB)
_AVG_WINDOW = (256, 4 * MiB)
_MAX_WINDOW = (1 * KiB, 16 * MiB)


class Reader(Protocol):
    """A binary stream with ``readinto`` (a raw file, ``io.BytesIO``)."""

    def readinto(self, buffer: memoryview) -> int | None: ...


def _clamp(value: int, window: tuple[int, int]) -> int:
    return max(window[0], min(window[1], value))


class Chunker:
    """Split bytes or a stream at content-defined cut points."""

    def __init__(self, min_size: int, avg_size: int, max_size: int) -> None:
        if not 1 <= min_size <= avg_size <= max_size:
            raise InvalidArgumentError("chunk sizes must satisfy 1 <= min <= avg <= max")
        self.min_size = min_size
        self.avg_size = avg_size
        self.max_size = max_size
        cmin = _clamp(min_size, _MIN_WINDOW)
        cmax = _clamp(max_size, _MAX_WINDOW)
        cavg = _clamp(avg_size, _AVG_WINDOW)
        cavg = max(cmin, min(cmax, cavg))
        self._cdc = FastCDC(cavg, min_size=cmin, max_size=cmax)

    def _bounded(self, piece: memoryview) -> Iterator[memoryview]:
        n = len(piece)
        if n <= self.max_size:
            yield piece
            return
        for start in range(0, n, self.max_size):
            yield piece[start : start + self.max_size]

    def split(self, data: bytes | bytearray | memoryview) -> Iterator[memoryview]:
        """Yield views of ``data``, one per chunk, in order (nothing for empty data)."""
        view = memoryview(data).cast("B") if not isinstance(data, memoryview) else data
        if len(view) == 0:
            return
        if len(view) <= self.min_size:
            yield view
            return
        for chunk in self._cdc.cut_buf(view):
            yield from self._bounded(chunk.data)

    def stream(self, reader: Reader) -> Iterator[bytes]:
        """Yield chunks of a stream as fresh ``bytes`` (memory stays bounded by ``max``)."""
        for chunk in self._cdc.cut_stream(reader):
            for piece in self._bounded(chunk.data):
                yield bytes(piece)


__all__ = ["Chunker", "Reader"]
