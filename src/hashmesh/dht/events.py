"""Events the DHT core reports to its driver (popped with ``Protocol.next_event()``).

Each API call (``bootstrap``, ``lookup``, ``put``, ``get``, ``provide``,
``find_providers``) returns an operation id ``op``; exactly one event with that
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


Event = BootstrapDone | LookupDone | PutDone | GetDone | ProvideDone | ProvidersFound

__all__ = [
    "BootstrapDone",
    "Event",
    "GetDone",
    "LookupDone",
    "ProvideDone",
    "ProvidersFound",
    "PutDone",
]
