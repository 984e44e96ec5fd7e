"""The stored form of a block: a small versioned header, then the payload.

::

    offset size  field
    0      3     magic  b"HMB"
    3      1     format version (1)
    4      1     flags: bit 0 = payload is one zstd frame; other bits must be 0
    5      1     kind: 0 = raw chunk, 1 = manifest
    6      2     reserved, zero
    8      4     plain length, little-endian u32
    12     ...   payload (plain bytes, or the zstd frame)

A block's id always hashes its *plain* bytes; the header only says how to get
them back. Compression is kept only when it pays: blocks shorter than
``min_size`` are stored plain, large blocks are probed on their first 64 KiB,
and a compressed form is kept only if it saves at least 1/16 of the size.

:class:`BlockCodec` holds a reusable zstd compressor and decompressor; those
objects are not thread-safe, so callers keep one codec per thread.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import zstandard

from hashmesh.errors import DecodeError

MAGIC = b"HMB"
VERSION = 1
FLAG_ZSTD = 0x01
KIND_RAW = 0
KIND_MANIFEST = 1
HEADER = struct.Struct("<3sBBBxxI")
HEADER_SIZE = HEADER.size
MAX_PLAIN = 0xFFFFFFFF
_PROBE = 64 * 1024
_PROBE_MIN = 256 * 1024


@dataclass(frozen=True, slots=True)
class Header:
    """A parsed block header."""

    flags: int
    kind: int
    plain_size: int

    @property
    def compressed(self) -> bool:
        return bool(self.flags & FLAG_ZSTD)


def pack_header(flags: int, kind: int, plain_size: int) -> bytes:
    return HEADER.pack(MAGIC, VERSION, flags, kind, plain_size)


def parse_header(stored: bytes | memoryview) -> Header:
    """Parse and check the header of a stored block; :class:`DecodeError` if malformed."""
    if len(stored) < HEADER_SIZE:
        raise DecodeError("stored block is shorter than its header")
    magic, version, flags, kind, plain = HEADER.unpack_from(stored, 0)
    if magic != MAGIC:
        raise DecodeError("stored block has a bad magic number")
    if version != VERSION:
        raise DecodeError(f"stored block has unsupported format version {version}")
    if flags & ~FLAG_ZSTD or kind not in (KIND_RAW, KIND_MANIFEST):
        raise DecodeError("stored block has unknown flags or kind")
    if not flags & FLAG_ZSTD and len(stored) - HEADER_SIZE != plain:
        raise DecodeError("stored block length does not match its header")
    return Header(flags, kind, plain)


class BlockCodec:
    """Encode plain bytes to the stored form and back (one instance per thread)."""

    def __init__(self, level: int = 3, min_size: int = 512) -> None:
        self.level = level
        self.min_size = min_size
        self._c = zstandard.ZstdCompressor(level=level, write_content_size=True)
        self._d = zstandard.ZstdDecompressor()

    def _pays(self, plain: memoryview) -> bool:
        if len(plain) < _PROBE_MIN:
            return True
        probe = self._c.compress(plain[:_PROBE])
        return len(probe) <= _PROBE - _PROBE // 16

    def encode(self, plain: bytes | memoryview, kind: int) -> tuple[bytes, bytes | memoryview]:
        """Return ``(header, payload)``; the stored block is their concatenation."""
        view = memoryview(plain)
        n = len(view)
        if n > MAX_PLAIN:
            raise DecodeError("block too large")
        if n >= self.min_size and self._pays(view):
            packed = self._c.compress(view)
            if len(packed) <= n - n // 16:
                return pack_header(FLAG_ZSTD, kind, n), packed
        return pack_header(0, kind, n), view

    def encode_bytes(self, plain: bytes | memoryview, kind: int) -> bytes:
        header, payload = self.encode(plain, kind)
        return header + bytes(payload)

    def decode(self, stored: bytes | memoryview) -> tuple[Header, bytes | memoryview]:
        """Return the header and the plain bytes; :class:`DecodeError` on any malformation."""
        header = parse_header(stored)
        payload = memoryview(stored)[HEADER_SIZE:]
        if not header.compressed:
            return header, payload
        try:
            declared = zstandard.frame_content_size(payload)
            if declared != header.plain_size:
                raise DecodeError("stored block's zstd frame declares the wrong length")
            plain = self._d.decompress(payload, max_output_size=header.plain_size)
        except zstandard.ZstdError as exc:
            raise DecodeError(f"stored block does not decompress: {exc}") from None
        if len(plain) != header.plain_size:
            raise DecodeError("stored block decompresses to the wrong length")
        return header, plain


__all__ = [
    "FLAG_ZSTD",
    "HEADER_SIZE",
    "KIND_MANIFEST",
    "KIND_RAW",
    "VERSION",
    "BlockCodec",
    "Header",
    "pack_header",
    "parse_header",
]
