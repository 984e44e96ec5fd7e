"""Identifier value types: content ids and node ids, both BLAKE3-256.

Content id text form
--------------------
A content id is a CIDv1 written in multibase base32 (lower case, no padding,
prefix ``b``)::

    binary  = 0x01 (CID version 1)
              varint(codec)            0x55 raw block | 0x0300e1 hashmesh manifest
              0x1e                     multihash code: blake3
              0x20                     digest length: 32 bytes
              digest[32]               BLAKE3-256 of the block's plain bytes
    text    = "b" + base32lower(binary)

A raw chunk id therefore starts with ``bafkr4i`` (as IPFS writes blake3 raw
CIDs); a manifest id starts with ``bahqycda6e``. The digest always covers the
block's *plain* bytes, never its compressed or encrypted stored form, so the
same content has the same id on every node.

Node ids are the 32-byte BLAKE3-256 digest of a node's Ed25519 public key,
written as 64 lower-case hex characters. Distances are the Kademlia XOR metric
over the 256-bit big-endian integers.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import ClassVar

import blake3

from hashmesh.errors import InvalidIdError

DIGEST_SIZE = 32
ID_BITS = DIGEST_SIZE * 8

CODEC_RAW = 0x55
CODEC_MANIFEST = 0x0300E1  # in the multicodec private-use range
_MULTIHASH_BLAKE3 = 0x1E
_CODECS = {CODEC_RAW: "raw", CODEC_MANIFEST: "manifest"}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = 0
    shift = 0
    for i in range(pos, min(len(buf), pos + 9)):
        b = buf[i]
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i + 1
        shift += 7
    raise InvalidIdError("malformed content id: bad varint")


# bytes.translate table: base32 letters -> int(..., 32) digits, everything else -> "!"
_B32_TO_INT = bytes(
    "0123456789abcdefghijklmnopqrstuv"["abcdefghijklmnopqrstuvwxyz234567".index(chr(c))].encode()[0]
    if chr(c) in "abcdefghijklmnopqrstuvwxyz234567"
    else ord("!")
    for c in range(256)
)

_PREFIX = {
    codec: b"\x01" + _varint(codec) + bytes([_MULTIHASH_BLAKE3, DIGEST_SIZE]) for codec in _CODECS
}


def blake3_digest(data: bytes | bytearray | memoryview) -> bytes:
    """BLAKE3-256 of ``data``."""
    return blake3.blake3(data).digest()


@dataclass(frozen=True, slots=True)
class ContentId:
    """The id of a block: its codec (raw chunk or manifest) and BLAKE3 digest."""

    digest: bytes
    codec: int = CODEC_RAW

    RAW: ClassVar[int] = CODEC_RAW
    MANIFEST: ClassVar[int] = CODEC_MANIFEST

    def __post_init__(self) -> None:
        if len(self.digest) != DIGEST_SIZE:
            raise InvalidIdError(f"content id digest must be {DIGEST_SIZE} bytes")
        if self.codec not in _CODECS:
            raise InvalidIdError(f"unknown content id codec 0x{self.codec:x}")

    @classmethod
    def of(cls, data: bytes | bytearray | memoryview, codec: int = CODEC_RAW) -> ContentId:
        """The id of ``data`` under ``codec``."""
        return cls(blake3_digest(data), codec)

    @property
    def is_manifest(self) -> bool:
        return self.codec == CODEC_MANIFEST

    def to_bytes(self) -> bytes:
        return _PREFIX[self.codec] + self.digest

    @classmethod
    def from_bytes(cls, raw: bytes) -> ContentId:
        for codec, prefix in _PREFIX.items():  # fast path: the two known prefixes
            if len(raw) == len(prefix) + DIGEST_SIZE and raw.startswith(prefix):
                return cls(bytes(raw[len(prefix) :]), codec)
        if len(raw) < 4 or raw[0] != 0x01:
            raise InvalidIdError("malformed content id: not a CIDv1")
        codec, pos = _read_varint(raw, 1)
        if codec not in _CODECS:
            raise InvalidIdError(f"malformed content id: unknown codec 0x{codec:x}")
        if raw[pos : pos + 2] != bytes([_MULTIHASH_BLAKE3, DIGEST_SIZE]):
            raise InvalidIdError("malformed content id: not a blake3-256 multihash")
        digest = raw[pos + 2 :]
        if len(digest) != DIGEST_SIZE:
            raise InvalidIdError("malformed content id: wrong digest length")
        return cls(bytes(digest), codec)

    def __str__(self) -> str:
        return "b" + base64.b32encode(self.to_bytes()).decode("ascii").lower().rstrip("=")

    def __repr__(self) -> str:
        return f"ContentId({self!s})"

    @classmethod
    def parse(cls, text: str) -> ContentId:
        """Parse the canonical text form; raise :class:`InvalidIdError` with a clear reason.

        base32 (RFC 4648, lower case) maps digit for digit onto Python's base-32
        ``int`` alphabet, so ``int(body, 32)`` decodes it without a Python loop. Only
        the canonical form is accepted: no padding, upper case or stray trailing bits.
        """
        if not isinstance(text, str):
            raise InvalidIdError("content id must be a string")
        t = text.strip()
        if not t:
            raise InvalidIdError("malformed content id: empty")
        if t[0] != "b":
            raise InvalidIdError(
                f"malformed content id {text!r}: expected a base32 CID starting with 'b'"
            )
        body = t[1:]
        try:
            if not 8 <= len(body) <= 120:
                raise ValueError
            n = int(body.encode("ascii").translate(_B32_TO_INT), 32)
        except (ValueError, UnicodeEncodeError):
            raise InvalidIdError(f"malformed content id {text!r}: not lower-case base32") from None
        nbytes, pad = divmod(len(body) * 5, 8)
        if pad >= 5 or n & ((1 << pad) - 1):
            raise InvalidIdError(f"malformed content id {text!r}: not canonical base32")
        try:
            return cls.from_bytes((n >> pad).to_bytes(nbytes, "big"))
        except InvalidIdError as exc:
            raise InvalidIdError(f"{exc} ({text!r})") from None

    @property
    def key(self) -> bytes:
        """The 32-byte DHT key of this content (its digest)."""
        return self.digest


@dataclass(frozen=True, slots=True, order=True)
class NodeId:
    """A 256-bit node id: BLAKE3-256 of the node's Ed25519 public key."""

    value: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.value, bytes) or len(self.value) != DIGEST_SIZE:
            raise InvalidIdError(f"node id must be {DIGEST_SIZE} bytes")

    @classmethod
    def from_public_key(cls, public_key: bytes) -> NodeId:
        return cls(blake3_digest(public_key))

    @classmethod
    def parse(cls, text: str) -> NodeId:
        t = text.strip().lower()
        if len(t) != DIGEST_SIZE * 2:
            raise InvalidIdError(f"malformed node id {text!r}: expected 64 hex characters")
        try:
            return cls(bytes.fromhex(t))
        except ValueError:
            raise InvalidIdError(f"malformed node id {text!r}: not hex") from None

    def __int__(self) -> int:
        return int.from_bytes(self.value, "big")

    def distance(self, other: NodeId | bytes) -> int:
        o = other.value if isinstance(other, NodeId) else other
        return distance(self.value, o)

    def __str__(self) -> str:
        return self.value.hex()

    def short(self) -> str:
        return self.value.hex()[:12]

    def __repr__(self) -> str:
        return f"NodeId({self.short()}…)"


def distance(a: bytes, b: bytes) -> int:
    """Kademlia XOR distance between two 32-byte keys, as an integer."""
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


def bucket_index(a: bytes, b: bytes) -> int:
    """Index of the k-bucket ``b`` falls in, seen from ``a``: bit length of the distance - 1.

    Returns -1 when ``a == b``.
    """
    return distance(a, b).bit_length() - 1


__all__ = [
    "CODEC_MANIFEST",
    "CODEC_RAW",
    "DIGEST_SIZE",
    "ID_BITS",
    "ContentId",
    "NodeId",
    "blake3_digest",
    "bucket_index",
    "distance",
]
