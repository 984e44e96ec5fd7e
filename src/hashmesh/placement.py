"""Which nodes hold which blocks (pure).

A block with content id ``c`` belongs on the ``r`` live nodes whose node ids are
XOR-closest to ``c.digest`` (the block's DHT key). Everything here is a pure
function of ids: no clock, no I/O, no randomness.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from hashmesh.ids import distance

T = TypeVar("T")


def closest(key: bytes, candidates: Iterable[bytes], count: int) -> list[bytes]:
    """The ``count`` ids XOR-closest to ``key``, nearest first (duplicates removed)."""
    unique = set(candidates)
    return sorted(unique, key=lambda n: distance(n, key))[:count]


def closest_by(
    key: bytes, items: Iterable[T], node_id_of: Callable[[T], bytes], count: int
) -> list[T]:
    """Like :func:`closest` for arbitrary items, given ``node_id_of(item) -> bytes``."""
    seen: dict[bytes, T] = {}
    for item in items:
        seen.setdefault(node_id_of(item), item)
    ordered = sorted(seen, key=lambda n: distance(n, key))[:count]
    return [seen[n] for n in ordered]


__all__ = ["closest", "closest_by"]
