"""DHT message codec: versioned msgpack with explicit type codes and size caps.

Wire form (docs/protocol.md, "DHT messages")::

    message = [VERSION, type_code, rpc_id, sender, *fields]     a msgpack array
    peer    = [node_id(bin 32), public_key(bin 32), host(str 1..253), port(int 0..65535)]
    record  = [1, key(bin 32), value(bin)]                                   immutable
            | [2, key, public_key(bin 32), salt(bin), seq(u64), expires(float64),
               value(bin), signature(bin 64)]                                signed

The type code table :data:`TYPE_CODES` is the only dispatch: nothing read off the
wire is ever used as a name. :func:`decode` checks the size cap first, then every
field's msgpack type and range, and that each peer's ``node_id`` is BLAKE3 of its
``public_key``; any failure raises :class:`DecodeError` and nothing else. Semantic
record checks (hashes, signatures, expiry) are :func:`records.validate`'s job.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import msgpack

from hashmesh.dht.messages import (
    MAX_BATCH_KEYS,
    MAX_BATCH_RECORDS,
    AddProvider,
    FindMany,
    FindNode,
    FindValue,
    FoundMany,
    GetProviders,
    Message,
    Nodes,
    PeerInfo,
    Ping,
    Pong,
    ProvideMany,
    Providers,
    Store,
    StoreAck,
    StoreMany,
    Value,
    peer_id_ok,
)
from hashmesh.dht.records import MAX_SALT_BYTES, MAX_VALUE_BYTES, Record, SignedRecord, ValueRecord
from hashmesh.errors import DecodeError, InvalidArgumentError
from hashmesh.ids import NodeId

VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024
MAX_PEERS = 32
MAX_PROVIDERS = 32
MAX_TABLE_PEERS = 512  # the shared peer table of one FoundMany
MAX_HOST_CHARS = 253
MAX_REASON_CHARS = 256
_U64 = (1 << 64) - 1

#: The explicit type-code table (append only; never reuse a code).
TYPE_CODES: dict[type, int] = {
    Ping: 1,
    Pong: 2,
    FindNode: 3,
    Nodes: 4,
    FindValue: 5,
    Value: 6,
    Store: 7,
    StoreAck: 8,
    AddProvider: 9,
    GetProviders: 10,
    Providers: 11,
    StoreMany: 12,
    FindMany: 13,
    FoundMany: 14,
    ProvideMany: 15,
}
_REC_VALUE, _REC_SIGNED = 1, 2


# --- encoding -------------------------------------------------------------------


def _peer(p: PeerInfo) -> list[Any]:
    return [p.node_id.value, p.public_key, p.host, p.port]


def _peers(ps: tuple[PeerInfo, ...]) -> list[Any]:
    return [_peer(p) for p in ps]


def _record(r: Record | None) -> Any:
    if r is None:
        return None
    if isinstance(r, ValueRecord):
        return [_REC_VALUE, r.key, r.value]
    return [
        _REC_SIGNED,
        r.key,
        r.public_key,
        r.salt,
        r.seq,
        float(r.expires),
        r.value,
        r.signature,
    ]


def _fields(m: Message) -> list[Any]:
    if isinstance(m, Ping | Pong):
        return []
    if isinstance(m, FindNode):
        return [m.target]
    if isinstance(m, FindValue | GetProviders):
        return [m.key]
    if isinstance(m, Nodes):
        return [_peers(m.peers)]
    if isinstance(m, Value):
        return [_record(m.record), _peers(m.peers)]
    if isinstance(m, Store):
        return [_record(m.record), float(m.ttl)]
    if isinstance(m, StoreAck):
        return [bool(m.ok), m.reason]
    if isinstance(m, AddProvider):
        return [m.key, _peer(m.provider), float(m.expires)]
    if isinstance(m, FindMany):
        return [list(m.keys), bool(m.want_values)]
    if isinstance(m, ProvideMany):
        return [list(m.keys), float(m.expires)]
    if isinstance(m, FoundMany):
        return [_peers(m.peers), [[_record(r), list(ix)] for r, ix in m.entries]]
    if isinstance(m, Providers):
        return [_peers(m.providers), _peers(m.peers)]
    # StoreMany is packed from cached items by _encode_store_many
    raise InvalidArgumentError(f"{type(m).__name__} is not encoded field by field")


def encode(message: Message) -> bytes:
    """The wire bytes of ``message``.

    Raises InvalidArgumentError if it is not a message, is too big, or holds a field
    :func:`decode` would refuse (the result is re-decoded to keep the pair symmetric).
    """
    code = TYPE_CODES.get(type(message))
    if code is None:
        raise InvalidArgumentError(f"not a DHT message: {type(message).__name__}")
    if type(message) is StoreMany:
        return _encode_store_many(message, code)
    body = [VERSION, code, message.rpc_id, _peer(message.sender), *_fields(message)]
    try:
        data = msgpack.packb(body, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidArgumentError(f"cannot encode {type(message).__name__}: {exc}") from None
    if len(data) > MAX_MESSAGE_BYTES:
        raise InvalidArgumentError(f"encoded message exceeds {MAX_MESSAGE_BYTES} bytes")
    try:  # symmetry: never emit what decode() would refuse
        decode(data)
    except DecodeError as exc:
        raise InvalidArgumentError(f"cannot encode {type(message).__name__}: {exc}") from None
    return data


_ITEMS: OrderedDict[tuple[Record, float], bytes] = OrderedDict()
_ITEMS_MAX = 8192


def _store_item(record: Record, ttl: float) -> bytes:
    """The bytes of one StoreMany item, checked once to read back as itself, then cached.

    ``put_many`` sends each record to its k closest peers and republishing resends the
    same records, so the item is packed (and checked) once rather than once per message.
    """
    key = (record, float(ttl))
    data = _ITEMS.get(key)
    if data is not None:
        _ITEMS.move_to_end(key)
        return data
    try:
        data = msgpack.packb([_record(record), float(ttl)], use_bin_type=True)
        back = _read_store_item(_unpack(data))
    except (TypeError, ValueError, OverflowError, DecodeError) as exc:
        raise InvalidArgumentError(f"cannot encode a StoreMany item: {exc}") from None
    if back != key:
        raise InvalidArgumentError("a StoreMany item does not read back as itself")
    _ITEMS[key] = data
    if len(_ITEMS) > _ITEMS_MAX:
        _ITEMS.popitem(last=False)
    return data


def _encode_store_many(m: StoreMany, code: int) -> bytes:
    """Exactly ``packb([VERSION, code, rpc_id, sender, items])``, from checked parts."""
    if not 1 <= len(m.items) <= MAX_BATCH_RECORDS:
        raise InvalidArgumentError(f"a StoreMany holds 1..{MAX_BATCH_RECORDS} items")
    if type(m.rpc_id) is not int or not 0 <= m.rpc_id <= _U64:
        raise InvalidArgumentError("rpc_id must be an integer in 0..2^64-1")
    sender = _peer(m.sender)
    try:
        _read_peer(sender, "sender")
    except DecodeError as exc:
        raise InvalidArgumentError(f"cannot encode StoreMany: {exc}") from None
    packer = msgpack.Packer(use_bin_type=True)
    head = b"".join(
        (
            packer.pack_array_header(5),
            packer.pack(VERSION),
            packer.pack(code),
            packer.pack(m.rpc_id),
            packer.pack(sender),
            packer.pack_array_header(len(m.items)),
        )
    )
    data = head + b"".join(_store_item(r, t) for r, t in m.items)
    if len(data) > MAX_MESSAGE_BYTES:
        raise InvalidArgumentError(f"encoded message exceeds {MAX_MESSAGE_BYTES} bytes")
    return data


# --- decoding: strict field readers ------------------------------------------------


def _bin(x: Any, what: str, size: int | None = None, max_size: int = MAX_MESSAGE_BYTES) -> bytes:
    if type(x) is not bytes:
        raise DecodeError(f"{what}: expected bytes")
    if size is not None and len(x) != size:
        raise DecodeError(f"{what}: expected {size} bytes, got {len(x)}")
    if len(x) > max_size:
        raise DecodeError(f"{what}: longer than {max_size} bytes")
    return x


def _uint(x: Any, what: str, hi: int = _U64) -> int:
    if type(x) is not int or not 0 <= x <= hi:
        raise DecodeError(f"{what}: expected an integer in 0..{hi}")
    return x


def _float(x: Any, what: str) -> float:
    if type(x) is not float or not math.isfinite(x):
        raise DecodeError(f"{what}: expected a finite float")
    return x


def _str(x: Any, what: str, max_chars: int, min_chars: int = 0) -> str:
    if type(x) is not str or not min_chars <= len(x) <= max_chars:
        raise DecodeError(f"{what}: expected a string of {min_chars}..{max_chars} characters")
    return x


def _list(x: Any, what: str, size: int | None = None, max_len: int | None = None) -> list[Any]:
    if type(x) is not list:
        raise DecodeError(f"{what}: expected an array")
    if size is not None and len(x) != size:
        raise DecodeError(f"{what}: expected {size} items, got {len(x)}")
    if max_len is not None and len(x) > max_len:
        raise DecodeError(f"{what}: more than {max_len} items")
    return x


def _batch(x: Any, what: str, max_len: int) -> list[Any]:
    """The list of a batch message: 1..``max_len`` items."""
    if type(x) is not list or not 1 <= len(x) <= max_len:
        raise DecodeError(f"{what}: expected a list of 1..{max_len}")
    return x


def _read_peer(x: Any, what: str = "peer") -> PeerInfo:
    f = _list(x, what, 4)
    node_id = _bin(f[0], what + ".node_id", 32)
    public_key = _bin(f[1], what + ".public_key", 32)
    host = _str(f[2], what + ".host", MAX_HOST_CHARS, 1)
    port = _uint(f[3], what + ".port", 65535)
    peer = PeerInfo(public_key, host, port, NodeId(node_id))
    if not peer_id_ok(peer):
        raise DecodeError(f"{what}: node id is not BLAKE3 of its public key")
    return peer


def _read_peers(x: Any, what: str, max_len: int) -> tuple[PeerInfo, ...]:
    return tuple(_read_peer(p, what) for p in _list(x, what, max_len=max_len))


def _read_record(x: Any) -> Record | None:
    if x is None:
        return None
    f = _list(x, "record")
    if not f:
        raise DecodeError("record: empty")
    kind = f[0]
    if type(kind) is int and kind == _REC_VALUE:
        _list(f, "record", 3)
        return ValueRecord(
            _bin(f[1], "record.key", 32), _bin(f[2], "record.value", None, MAX_VALUE_BYTES)
        )
    if type(kind) is int and kind == _REC_SIGNED:
        _list(f, "record", 8)
        return SignedRecord(
            key=_bin(f[1], "record.key", 32),
            public_key=_bin(f[2], "record.public_key", 32),
            salt=_bin(f[3], "record.salt", None, MAX_SALT_BYTES),
            seq=_uint(f[4], "record.seq"),
            expires=_float(f[5], "record.expires"),
            value=_bin(f[6], "record.value", None, MAX_VALUE_BYTES),
            signature=_bin(f[7], "record.signature", 64),
        )
    raise DecodeError("record: unknown kind")


def _d_empty(cls: type) -> Callable[[int, PeerInfo, list[Any]], Message]:
    def read(rpc: int, sender: PeerInfo, f: list[Any]) -> Message:
        _list(f, "fields", 0)
        return cls(rpc, sender)

    return read


def _d_key(cls: type) -> Callable[[int, PeerInfo, list[Any]], Message]:
    def read(rpc: int, sender: PeerInfo, f: list[Any]) -> Message:
        _list(f, "fields", 1)
        return cls(rpc, sender, _bin(f[0], "key", 32))

    return read


def _d_nodes(rpc: int, sender: PeerInfo, f: list[Any]) -> Message:
    _list(f, "fields", 1)
    return Nodes(rpc, sender, _read_peers(f[0], "peers", MAX_PEERS))


def _d_value(rpc: int, sender: PeerInfo, f: list[Any]) -> Message:
    _list(f, "fields", 2)
    return Value(rpc, sender, _read_record(f[0]), _read_peers(f[1], "peers", MAX_PEERS))


def _d_store(rpc: int, sender: PeerInfo, f: list[Any]) -> Message:
    return Store(rpc, sender, *_read_store_item(f, "store"))


def _d_store_many(rpc: int, sender: PeerInfo, f: list[Any]) -> Message:
    _list(f, "fields", 1)
    raw = _batch(f[0], "items", MAX_BATCH_RECORDS)
    return StoreMany(rpc, sender, tuple(_read_store_item(item) for item in raw))


def _read_store_item(item: Any, what: str = "store_many item") -> tuple[Record, float]:
    """``[record, ttl]``: a STORE's fields or one STORE_MANY item."""
    _list(item, what, 2)
    record = _read_record(item[0])
    if record is None:
        raise DecodeError(f"{what}: missing record")
    ttl = _float(item[1], "ttl")
    if ttl < 0:
        raise DecodeError("ttl: negative")
    return record, ttl


def _d_ack(rpc: int, sender: PeerInfo, f: list[Any]) -> Message:
    _list(f, "fields", 2)
    if type(f[0]) is not bool:
        raise DecodeError("ok: expected a boolean")
    return StoreAck(rpc, sender, f[0], _str(f[1], "reason", MAX_REASON_CHARS))


def _d_add_provider(rpc: int, sender: PeerInfo, f: list[Any]) -> Message:
    _list(f, "fields", 3)
    key = _bin(f[0], "key", 32)
    return AddProvider(rpc, sender, key, _read_peer(f[1], "provider"), _float(f[2], "expires"))


def _d_providers(rpc: int, sender: PeerInfo, f: list[Any]) -> Message:
    _list(f, "fields", 2)
    provs = _read_peers(f[0], "providers", MAX_PROVIDERS)
    return Providers(rpc, sender, provs, _read_peers(f[1], "peers", MAX_PEERS))


def _d_find_many(rpc: int, sender: PeerInfo, f: list[Any]) -> Message:
    _list(f, "fields", 2)
    raw = _batch(f[0], "keys", MAX_BATCH_KEYS)
    if type(f[1]) is not bool:
        raise DecodeError("want_values: expected a boolean")
    return FindMany(rpc, sender, tuple(_bin(k, "key", 32) for k in raw), f[1])


def _d_provide_many(rpc: int, sender: PeerInfo, f: list[Any]) -> Message:
    _list(f, "fields", 2)
    raw = _batch(f[0], "keys", MAX_BATCH_KEYS)
    return ProvideMany(rpc, sender, tuple(_bin(k, "key", 32) for k in raw), _float(f[1], "expires"))


def _d_found_many(rpc: int, sender: PeerInfo, f: list[Any]) -> Message:
    _list(f, "fields", 2)
    peers = _read_peers(f[0], "peers", MAX_TABLE_PEERS)
    raw = _batch(f[1], "entries", MAX_BATCH_KEYS)
    n = len(peers)
    entries = []
    for item in raw:
        _list(item, "entry", 2)
        idx = _list(item[1], "entry.peers", max_len=MAX_PEERS)
        for i in idx:  # inline: this is the hot loop of a big answer
            if type(i) is not int or not 0 <= i < n:
                raise DecodeError(f"peer index: expected an integer in 0..{n - 1}")
        entries.append((_read_record(item[0]), tuple(idx)))
    return FoundMany(rpc, sender, peers, tuple(entries))


_DECODERS: dict[int, Callable[[int, PeerInfo, list[Any]], Message]] = {
    1: _d_empty(Ping),
    2: _d_empty(Pong),
    3: _d_key(FindNode),
    4: _d_nodes,
    5: _d_key(FindValue),
    6: _d_value,
    7: _d_store,
    8: _d_ack,
    9: _d_add_provider,
    10: _d_key(GetProviders),
    11: _d_providers,
    12: _d_store_many,
    13: _d_find_many,
    14: _d_found_many,
    15: _d_provide_many,
}


def _unpack(data: bytes | bytearray | memoryview) -> Any:
    """msgpack with every limit of the format (no maps, no ext types, capped lengths)."""
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_str_len=MAX_MESSAGE_BYTES,
            max_bin_len=MAX_MESSAGE_BYTES,
            max_array_len=MAX_TABLE_PEERS,
            max_map_len=0,
            max_ext_len=0,
        )
    except (ValueError, TypeError, OverflowError, RecursionError, msgpack.UnpackException) as exc:
        raise DecodeError(f"not a msgpack message: {type(exc).__name__}") from None


def decode(data: bytes) -> Message:
    """Parse one message; raise :class:`DecodeError` for anything but a valid message."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError("expected bytes")
    if len(data) > MAX_MESSAGE_BYTES:
        raise DecodeError(f"message larger than {MAX_MESSAGE_BYTES} bytes")
    f = _list(_unpack(data), "message")
    if len(f) < 4:
        raise DecodeError("message: too short")
    if type(f[0]) is not int or f[0] != VERSION:
        raise DecodeError(f"unsupported version {f[0]!r}")
    code = f[1]
    reader = _DECODERS.get(code) if type(code) is int else None
    if reader is None:
        raise DecodeError(f"unknown message type {code!r}")
    return reader(_uint(f[2], "rpc_id"), _read_peer(f[3], "sender"), f[4:])


__all__ = [
    "MAX_HOST_CHARS",
    "MAX_MESSAGE_BYTES",
    "MAX_PEERS",
    "MAX_PROVIDERS",
    "MAX_REASON_CHARS",
    "MAX_TABLE_PEERS",
    "TYPE_CODES",
    "VERSION",
    "decode",
    "encode",
]
