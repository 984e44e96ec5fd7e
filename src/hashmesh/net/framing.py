"""Wire framing of the transport: length-prefixed, typed frames with a request id.

Every frame, in both directions and in every phase::

    length   u32 big-endian   number of payload bytes (0 .. max_frame)
    type     u8               FrameType
    id       u64 big-endian   request / stream id (0 where unused)
    payload  length bytes

Per-type payload rules (anything else is a :class:`DecodeError`):

==========  ====  ====================================================
HELLO       0x01  handshake hello (see :mod:`hashmesh.net.handshake`)
PROOF       0x02  handshake proof: a 64-byte Ed25519 signature
REQUEST     0x10  u16 kind + body; id != 0
RESPONSE    0x11  body; id of the request
ERROR       0x12  u16 code + UTF-8 one-line message (<= 256 bytes); id of the request
MESSAGE     0x13  u16 kind + body; one-way, id = 0
CANCEL      0x14  empty; the requester gave up on request ``id``
STREAM      0x15  one chunk of a streamed response to request ``id``
STREAM_END  0x16  empty; the streamed response to ``id`` is complete
CREDIT      0x17  u32 count: the requester may take ``count`` more chunks
==========  ====  ====================================================

This module is pure: it only turns bytes into frames and back.
"""

from __future__ import annotations

import struct
from enum import IntEnum

from hashmesh import errors as E
from hashmesh.errors import DecodeError, HashmeshError, InvalidArgumentError

HEADER = struct.Struct(">IBQ")
HEADER_SIZE = HEADER.size  # 13
KIND = struct.Struct(">H")
CREDIT = struct.Struct(">I")
MAX_KIND = 0xFFFF
MAX_ID = (1 << 64) - 1
MAX_ERROR_MESSAGE = 256
DEFAULT_MAX_FRAME = 8 * 1024 * 1024


class FrameType(IntEnum):
    """The type byte of a frame."""

    HELLO = 0x01
    PROOF = 0x02
    REQUEST = 0x10
    RESPONSE = 0x11
    ERROR = 0x12
    MESSAGE = 0x13
    CANCEL = 0x14
    STREAM = 0x15
    STREAM_END = 0x16
    CREDIT = 0x17


_TYPES = frozenset(int(t) for t in FrameType)
_KINDED = frozenset((FrameType.REQUEST, FrameType.MESSAGE))
_EMPTY = frozenset((FrameType.CANCEL, FrameType.STREAM_END))
_NEEDS_ID = frozenset(
    (
        FrameType.REQUEST,
        FrameType.RESPONSE,
        FrameType.ERROR,
        FrameType.CANCEL,
        FrameType.STREAM,
        FrameType.STREAM_END,
        FrameType.CREDIT,
    )
)

Frame = tuple[int, int, bytes]  # (type, id, payload)


def encode_header(ftype: int, rid: int, length: int) -> bytes:
    """The 13-byte header of a frame."""
    return HEADER.pack(length, ftype, rid)


def encode_frame(ftype: int, rid: int, payload: bytes = b"") -> bytes:
    """One whole frame (header + payload)."""
    return HEADER.pack(len(payload), ftype, rid) + payload


def check_frame(
    ftype: int, rid: int, payload: bytes | bytearray | memoryview, length: int | None = None
) -> None:
    """Raise :class:`DecodeError` if a frame breaks its type's rules.

    ``length`` is the whole payload length when ``payload`` is a body without its kind.
    """
    if ftype not in _TYPES:
        raise DecodeError(f"unknown frame type 0x{ftype:02x}")
    if ftype in _NEEDS_ID and rid == 0:
        raise DecodeError(f"frame type 0x{ftype:02x} needs a non-zero id")
    if ftype == FrameType.MESSAGE and rid != 0:
        raise DecodeError("a one-way message must have id 0")
    n = len(payload) if length is None else length
    if ftype in _KINDED and n < KIND.size:
        raise DecodeError("request or message without a kind")
    if ftype in _EMPTY and n:
        raise DecodeError(f"frame type 0x{ftype:02x} must be empty")
    if ftype == FrameType.ERROR and not KIND.size <= n <= KIND.size + MAX_ERROR_MESSAGE:
        raise DecodeError("error frame of bad size")
    if ftype == FrameType.CREDIT and n != CREDIT.size:
        raise DecodeError("credit frame of bad size")


class FrameDecoder:
    """Incremental decoder: push bytes, pop whole frames; DecodeError on garbage.

    After a :class:`DecodeError` the decoder is poisoned: the connection must close.
    The header of an oversized frame is rejected before its payload is read.
    ``max_frame`` may change between frames (the handshake uses a small limit).
    """

    __slots__ = ("_buf", "_failed", "_pos", "max_frame")

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._pos = 0
        self._failed = False

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a frame."""
        return len(self._buf) - self._pos

    def push(self, data: bytes | bytearray | memoryview) -> None:
        if self._failed:
            raise DecodeError("decoder already failed")
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def pop(self) -> Frame | None:
        """The next whole frame, or None if more bytes are needed."""
        split = self.pop_split()
        if split is None:
            return None
        ftype, rid, kind, body = split
        return (ftype, rid, KIND.pack(kind) + body) if kind >= 0 else (ftype, rid, body)

    def pop_split(self) -> tuple[int, int, int, bytes] | None:
        """Like :meth:`pop`, as (type, id, kind, body); kind is -1 for unkinded types.

        The body of a REQUEST or MESSAGE is sliced without its kind (one copy only).
        """
        buf, pos = self._buf, self._pos
        if len(buf) - pos < HEADER_SIZE:
            return None
        length, ftype, rid = HEADER.unpack_from(buf, pos)
        kind = -1
        try:
            if length > self.max_frame:
                raise DecodeError(f"frame of {length} bytes exceeds the limit {self.max_frame}")
            if ftype not in _TYPES:
                raise DecodeError(f"unknown frame type 0x{ftype:02x}")
            stop = pos + HEADER_SIZE + length
            if stop > len(buf):
                return None
            start = pos + HEADER_SIZE
            if ftype in _KINDED and length >= KIND.size:
                kind = KIND.unpack_from(buf, start)[0]
                start += KIND.size
            with memoryview(buf) as view:  # one copy, not two
                body = bytes(view[start:stop])
            check_frame(ftype, rid, body, length)
        except DecodeError:
            self._failed = True
            buf.clear()
            self._pos = 0
            raise
        self._pos = stop
        return ftype, rid, kind, body

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """Push ``data`` and pop every whole frame."""
        self.push(data)
        frames: list[Frame] = []
        while (frame := self.pop()) is not None:
            frames.append(frame)
        return frames


def split_kind(payload: bytes) -> tuple[int, bytes]:
    """(kind, body) of a REQUEST or MESSAGE payload (already checked by the decoder)."""
    return KIND.unpack_from(payload)[0], payload[KIND.size :]


def join_kind(kind: int, body: bytes) -> bytes:
    if not 0 <= kind <= MAX_KIND:
        raise InvalidArgumentError(f"request kind must be 0..{MAX_KIND}, got {kind}")
    return KIND.pack(kind) + body


# --------------------------------------------------------------------------- errors on the wire
# One table: error code <-> exception class. The requester raises the mapped class.


class Code(IntEnum):
    """Error codes carried by ERROR frames."""

    INTERNAL = 0
    BUSY = 1
    UNKNOWN_KIND = 2
    NOT_FOUND = 3
    INVALID_ARGUMENT = 4
    INVALID_ID = 5
    CAPACITY = 6
    STORAGE = 7
    INTEGRITY = 8
    DECODE = 9
    RECORD = 10
    HANDSHAKE = 11
    UNAVAILABLE = 12
    TIMEOUT = 13
    QUORUM = 14
    PEER = 15
    NETWORK = 16
    USAGE = 17


_CODE_TO_ERROR: dict[int, type[HashmeshError]] = {
    Code.INTERNAL: E.NetworkError,
    Code.BUSY: E.PeerBusyError,
    Code.UNKNOWN_KIND: E.InvalidArgumentError,
    Code.NOT_FOUND: E.NotFoundError,
    Code.INVALID_ARGUMENT: E.InvalidArgumentError,
    Code.INVALID_ID: E.InvalidIdError,
    Code.CAPACITY: E.CapacityError,
    Code.STORAGE: E.StorageError,
    Code.INTEGRITY: E.IntegrityError,
    Code.DECODE: E.DecodeError,
    Code.RECORD: E.RecordError,
    Code.HANDSHAKE: E.HandshakeError,
    Code.UNAVAILABLE: E.PeerUnavailableError,
    Code.TIMEOUT: E.RequestTimeoutError,
    Code.QUORUM: E.QuorumError,
    Code.PEER: E.PeerError,
    Code.NETWORK: E.NetworkError,
    Code.USAGE: E.UsageError,
}
# Most specific class first wins when an exception is mapped to a code.
_ERROR_TO_CODE: dict[type[HashmeshError], Code] = {
    E.PeerBusyError: Code.BUSY,
    E.NotFoundError: Code.NOT_FOUND,
    E.InvalidIdError: Code.INVALID_ID,
    E.InvalidArgumentError: Code.INVALID_ARGUMENT,
    E.UsageError: Code.USAGE,
    E.CapacityError: Code.CAPACITY,
    E.StorageError: Code.STORAGE,
    E.IntegrityError: Code.INTEGRITY,
    E.DecodeError: Code.DECODE,
    E.RecordError: Code.RECORD,
    E.HandshakeError: Code.HANDSHAKE,
    E.PeerError: Code.PEER,
    E.PeerUnavailableError: Code.UNAVAILABLE,
    E.RequestTimeoutError: Code.TIMEOUT,
    E.QuorumError: Code.QUORUM,
    E.NetworkError: Code.NETWORK,
}


def _one_line(text: str) -> str:
    return " ".join(text.split())


def encode_error(code: int, message: str) -> bytes:
    """ERROR payload: code + one line of UTF-8, cut to fit the limit."""
    raw = _one_line(message).encode("utf-8")[:MAX_ERROR_MESSAGE]
    return KIND.pack(code) + raw.decode("utf-8", "ignore").encode("utf-8")


def error_payload(exc: BaseException) -> bytes:
    """ERROR payload for an exception a handler raised (non-hashmesh ones say 'internal')."""
    if isinstance(exc, HashmeshError):
        for cls in type(exc).__mro__:
            code = _ERROR_TO_CODE.get(cls)
            if code is not None:
                return encode_error(code, str(exc) or cls.__name__)
    return encode_error(Code.INTERNAL, "internal error")


def decode_error(payload: bytes) -> tuple[int, str]:
    code = KIND.unpack_from(payload)[0]
    return code, _one_line(payload[KIND.size :].decode("utf-8", "replace"))


def error_from_payload(payload: bytes, peer: str) -> HashmeshError:
    """The exception the requester raises for an ERROR frame from ``peer``."""
    code, message = decode_error(payload)
    cls = _CODE_TO_ERROR.get(code, E.NetworkError)
    return cls(f"peer {peer}: {message}")


__all__ = [
    "DEFAULT_MAX_FRAME",
    "HEADER_SIZE",
    "MAX_ERROR_MESSAGE",
    "Code",
    "Frame",
    "FrameDecoder",
    "FrameType",
    "check_frame",
    "decode_error",
    "encode_error",
    "encode_frame",
    "encode_header",
    "error_from_payload",
    "error_payload",
    "join_kind",
    "split_kind",
]
