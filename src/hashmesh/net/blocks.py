"""Block exchange between nodes: request kinds and their body encodings (pure).

Every request rides a transport REQUEST frame (see ``docs/protocol.md``) whose
u16 *kind* is one of :class:`Kind`. Bodies:

=============  ===================================  =====================================
kind           request body                         response body
=============  ===================================  =====================================
DHT (1)        dht codec bytes (one-way MESSAGE)    (none)
GET (2)        binary content id                    the block's plain bytes
PUT (3)        msgpack [cid bytes, data]            empty, sent once the block is durable
HAVE (4)       msgpack [cid bytes, ...] (<= 4096)   one byte per id: 1 held, 0 not
PING (5)       empty                                empty
PUT_MANY (6)   msgpack [[cid bytes, data], ...]     empty, sent once all are durable
GET_MANY (7)   msgpack [cid bytes, ...] (<= 4096)   msgpack [data or nil, ...] for a prefix of
                                                    the ids (nil: not held); a shorter list
                                                    means the frame was full: ask for the rest
=============  ===================================  =====================================

The receiver of block bytes always checks them against the id before storing
or handing them on (:func:`verify`).
"""

from __future__ import annotations

from enum import IntEnum

import msgpack

from hashmesh.errors import DecodeError, IntegrityError, InvalidIdError
from hashmesh.ids import ContentId

MAX_HAVE = 4096


class Kind(IntEnum):
    DHT = 1
    GET = 2
    PUT = 3
    HAVE = 4
    PING = 5
    PUT_MANY = 6
    GET_MANY = 7


def _cid(raw: object) -> ContentId:
    if not isinstance(raw, bytes):
        raise DecodeError("content id must be bytes")
    try:
        return ContentId.from_bytes(raw)
    except InvalidIdError as exc:
        raise DecodeError(str(exc)) from None


def _unpack(body: bytes) -> object:
    try:
        return msgpack.unpackb(body, raw=False, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
        raise DecodeError("malformed block exchange body") from None


def encode_get(cid: ContentId) -> bytes:
    return cid.to_bytes()


def decode_get(body: bytes) -> ContentId:
    return _cid(bytes(body))


def encode_put(cid: ContentId, data: bytes) -> bytes:
    return msgpack.packb([cid.to_bytes(), data], use_bin_type=True)


def decode_put(body: bytes) -> tuple[ContentId, bytes]:
    obj = _unpack(body)
    if not isinstance(obj, list) or len(obj) != 2 or not isinstance(obj[1], bytes):
        raise DecodeError("PUT body must be [cid, data]")
    return _cid(obj[0]), obj[1]


def encode_put_many(items: list[tuple[ContentId, bytes]]) -> bytes:
    return msgpack.packb([[c.to_bytes(), d] for c, d in items], use_bin_type=True)


def decode_put_many(body: bytes) -> list[tuple[ContentId, bytes]]:
    obj = _unpack(body)
    if not isinstance(obj, list) or len(obj) > MAX_HAVE:
        raise DecodeError("PUT_MANY body must be a list of at most 4096 blocks")
    out = []
    for item in obj:
        if not isinstance(item, list) or len(item) != 2 or not isinstance(item[1], bytes):
            raise DecodeError("PUT_MANY item must be [cid, data]")
        out.append((_cid(item[0]), item[1]))
    return out


def encode_have(cids: list[ContentId]) -> bytes:
    return msgpack.packb([c.to_bytes() for c in cids], use_bin_type=True)


def decode_have(body: bytes) -> list[ContentId]:
    obj = _unpack(body)
    if not isinstance(obj, list) or len(obj) > MAX_HAVE:
        raise DecodeError("HAVE body must be a list of at most 4096 ids")
    return [_cid(c) for c in obj]


def decode_have_reply(body: bytes, count: int) -> list[bool]:
    if len(body) != count or any(b > 1 for b in body):
        raise DecodeError("HAVE reply has the wrong shape")
    return [b == 1 for b in body]


def encode_get_many_reply(datas: list[bytes | None]) -> bytes:
    return msgpack.packb(datas, use_bin_type=True)


def decode_get_many_reply(body: bytes, count: int) -> list[bytes | None]:
    obj = _unpack(body)
    if (
        not isinstance(obj, list)
        or len(obj) > count
        or (count and not obj)
        or not all(d is None or isinstance(d, bytes) for d in obj)
    ):
        raise DecodeError("GET_MANY reply has the wrong shape")
    return obj


def verify(cid: ContentId, data: bytes) -> bytes:
    """Return ``data`` if it hashes to ``cid``; raise :class:`IntegrityError` otherwise."""
    if ContentId.of(data, cid.codec) != cid:
        raise IntegrityError(
            f"block {cid} received from a peer does not match its id", block_id=str(cid)
        )
    return data


__all__ = [
    "MAX_HAVE",
    "Kind",
    "decode_get",
    "decode_get_many_reply",
    "decode_have",
    "decode_have_reply",
    "decode_put",
    "decode_put_many",
    "encode_get",
    "encode_get_many_reply",
    "encode_have",
    "encode_put",
    "encode_put_many",
    "verify",
]
