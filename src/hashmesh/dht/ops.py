"""The DHT core's bookkeeping types: operation purposes, one operation, one request.

Shared by :mod:`hashmesh.dht.protocol` and :mod:`hashmesh.dht.batching` (pure data, no I/O).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from hashmesh.dht.batch import BatchLookup
from hashmesh.dht.lookup import Lookup
from hashmesh.dht.messages import (
    BATCH_VALUE_BYTES,
    MAX_BATCH_RECORDS,
    FindValue,
    GetProviders,
    Message,
    PeerInfo,
)
from hashmesh.dht.records import Record, ValueRecord

# Operation purposes.
(
    LOOKUP,
    BOOTSTRAP,
    REFRESH,
    GET,
    PUT,
    PROVIDE,
    FIND_PROVIDERS,
    REPUBLISH,
    ACKS,
    LOOKUP_MANY,
    GET_MANY,
    PUT_MANY,
    PROVIDE_MANY,
) = range(13)
QUERY: dict[int, Callable[[int, PeerInfo, bytes], Message]] = {
    GET: FindValue,
    FIND_PROVIDERS: GetProviders,
}
T = TypeVar("T")


class Op:
    """One operation in flight: its purpose, lookup (or batch) and what it has gathered."""

    __slots__ = (
        "batch",
        "dirty",
        "found",
        "items",
        "keys",
        "lookup",
        "op",
        "parts",
        "progress",
        "public",
        "purpose",
        "record",
        "region_of",
        "regions",
        "round_size",
        "sent",
        "stored",
        "waiting",
    )

    def __init__(self, op: int, purpose: int, public: bool) -> None:
        self.op = op
        self.purpose = purpose
        self.public = public
        self.lookup: Lookup | None = None
        self.record: Record | None = None
        self.keys: list[bytes] | None = None
        self.found: dict[bytes, PeerInfo] | None = None
        self.waiting = 0  # outstanding acks (store phase)
        # batched calls
        self.batch: BatchLookup | None = None
        self.items: list[Record] = []  # put_many's records
        self.parts: dict[int, list[int]] = {}  # request rpc id -> the key indices it carries
        self.stored: list[int] = []  # put_many: acknowledgements per record
        self.region_of: list[int] = []  # put_many: each record's region
        # put_many: (region bits, each region's prefix, a key in it, cached pools by region)
        self.regions: tuple[int, list[int], list[bytes], dict[int, list[PeerInfo]]] | None = None
        self.progress = False  # get_many: report each key when it is done
        self.sent = 0  # requests sent
        self.dirty: set[int] = set()  # keys answered since the batch last sent queries
        self.round_size = 0  # queries the batch had in flight when it last sent


class Rpc:
    """One request awaiting its answer: to whom, of which type, for which operation."""

    __slots__ = ("deadline", "op", "peer", "request", "rid")

    def __init__(self, peer: PeerInfo, request: type, op: int, deadline: float, rid: int) -> None:
        self.peer = peer
        self.request = request
        self.op = op  # 0: an eviction ping
        self.deadline = deadline
        self.rid = rid


def value_bytes(record: Record) -> int:
    return len(getattr(record, "value", b"")) + len(getattr(record, "salt", b""))


def store_batches(items: Sequence[T], record_of: Callable[[T], Record]) -> Iterator[list[T]]:
    """Split ``items`` into StoreMany-sized runs (by count and by value bytes)."""
    batch: list[T] = []
    size = 0
    for item in items:
        record = record_of(item)
        # an item's bytes beyond its value: a plain record packs to value + 49 at most
        # (key, headers, ttl); a signed one also carries a key, a signature and more
        n = value_bytes(record) + (64 if isinstance(record, ValueRecord) else 256)
        if batch and (len(batch) >= MAX_BATCH_RECORDS or size + n > BATCH_VALUE_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += n
    if batch:
        yield batch


__all__ = [
    "ACKS",
    "BOOTSTRAP",
    "FIND_PROVIDERS",
    "GET",
    "GET_MANY",
    "LOOKUP",
    "LOOKUP_MANY",
    "PROVIDE",
    "PROVIDE_MANY",
    "PUT",
    "PUT_MANY",
    "QUERY",
    "REFRESH",
    "REPUBLISH",
    "Op",
    "Rpc",
    "store_batches",
    "value_bytes",
]
