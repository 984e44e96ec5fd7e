"""Events the DHT core reports to its driver (popped with ``Protocol.next_event()``).

Each API call (``bootstrap``, ``lookup``, ``put``, ``get``, ``provide``,
``find_providers``, and the batched ``lookup_many``, ``get_many``, ``put_many``,
``provide_many``) returns an operation id ``op``; exactly one event with that
``op`` reports its result. ``hops`` is the depth, in the lookup's discovery
tree, of the node that gave the result (peers from the own routing table are
depth 1); ``messages`` counts the requests the operation sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from hashmesh.dht.messages import PeerInfo
from hashmesh.dht.records import Record


@dataclass(frozen=True, slots=True)
class BootstrapDone:
    op: int
    peers: int  # routing-table size after the self-lookup
    hops: int = 0
    messages: int = 0


@dataclass(frozen=True, slots=True)
class LookupDone:
    op: int
    closest: list[PeerInfo]
    hops: int = 0
    messages: int = 0


@dataclass(frozen=True, slots=True)
class PutDone:
    op: int
    stored_at: int  # peers that acknowledged the store
    hops: int = 0
    messages: int = 0


@dataclass(frozen=True, slots=True)
class GetDone:
    op: int
    record: Record | None
    hops: int = 0
    messages: int = 0


@dataclass(frozen=True, slots=True)
class ProvideDone:
    op: int
    stored_at: int
    hops: int = 0
    messages: int = 0


@dataclass(frozen=True, slots=True)
class ProvidersFound:
    op: int
    providers: list[PeerInfo]
    hops: int = 0
    messages: int = 0


@dataclass(frozen=True, slots=True)
class LookupManyDone:
    """The k closest peers of each key, in the order the keys were given."""

    op: int
    closest: list[list[PeerInfo]]
    messages: int = 0


@dataclass(frozen=True, slots=True)
class GetManyPart:
    """One key of a ``get_many(..., progress=True)`` is done (its record or None);
    the batch's :class:`GetManyDone` still follows, after every key's part."""

    op: int
    index: int
    record: Record | None
    messages: int = 0


@dataclass(frozen=True, slots=True)
class GetManyDone:
    """The record found under each key (None where none was found), in key order."""

    op: int
    records: list[Record | None]
    messages: int = 0


@dataclass(frozen=True, slots=True)
class PutManyDone:
    """How many peers acknowledged each record, in the order the records were given."""

    op: int
    stored_at: list[int]
    messages: int = 0


@dataclass(frozen=True, slots=True)
class ProvideManyDone:
    """How many peers accepted our provider record for each key, in key order."""

    op: int
    stored_at: list[int]
    messages: int = 0


Event = (
    BootstrapDone
    | LookupDone
    | PutDone
    | GetDone
    | ProvideDone
    | ProvidersFound
    | LookupManyDone
    | GetManyPart
    | GetManyDone
    | PutManyDone
    | ProvideManyDone
)

__all__ = [
    "BootstrapDone",
    "Event",
    "GetDone",
    "GetManyDone",
    "GetManyPart",
    "LookupDone",
    "LookupManyDone",
    "ProvideDone",
    "ProvideManyDone",
    "ProvidersFound",
    "PutDone",
    "PutManyDone",
]
