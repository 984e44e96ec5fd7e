"""Which nodes hold which blocks (pure).

A block with content id ``c`` belongs on the ``r`` live nodes whose node ids are
XOR-closest to ``c.digest`` (the block's DHT key). Everything here is a pure
function of ids: no clock, no I/O, no randomness.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

from hashmesh.ids import distance

T = TypeVar("T")


def closest(key: bytes, candidates: Iterable[bytes], count: int) -> list[bytes]:
    """The ``count`` ids XOR-closest to ``key``, nearest first (duplicates removed)."""
    unique = set(candidates)
    return sorted(unique, key=lambda n: distance(n, key))[:count]


def closest_by(key: bytes, items: Iterable[T], node_id_of: object, count: int) -> list[T]:
    """Like :func:`closest` for arbitrary items, given ``node_id_of(item) -> bytes``."""
    seen: dict[bytes, T] = {}
    for item in items:
        seen.setdefault(node_id_of(item), item)  # type: ignore[operator]
    ordered = sorted(seen, key=lambda n: distance(n, key))[:count]
    return [seen[n] for n in ordered]


def is_responsible(me: bytes, key: bytes, known: Iterable[bytes], replication: int) -> bool:
    """True if ``me`` is among the ``replication`` closest of ``known`` plus itself."""
    return me in closest(key, [me, *known], replication)


def targets(key: bytes, live: Sequence[bytes], replication: int) -> list[bytes]:
    """The nodes that should hold ``key``: the ``replication`` closest live ids."""
    return closest(key, live, replication)


__all__ = ["closest", "closest_by", "is_responsible", "targets"]
