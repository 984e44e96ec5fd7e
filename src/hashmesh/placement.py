"""Which nodes hold which blocks (pure).

A block with content id ``c`` belongs on the ``r`` live nodes whose node ids are
XOR-closest to ``c.digest`` (the block's DHT key). Everything here is a pure
function of ids: no clock, no I/O, no randomness.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


def closest(key: bytes, candidates: Iterable[bytes], count: int) -> list[bytes]:
    """The ``count`` ids XOR-closest to ``key``, nearest first (duplicates removed)."""
    k = int.from_bytes(key, "big")
    return sorted(set(candidates), key=lambda n: int.from_bytes(n, "big") ^ k)[:count]


def ranked(items: Iterable[T], node_id_of: Callable[[T], bytes]) -> list[tuple[int, T]]:
    """``items`` with their node ids as integers, first of each id only: prepared once
    for :func:`nearest` over many keys."""
    seen: dict[bytes, T] = {}
    for item in items:
        seen.setdefault(node_id_of(item), item)
    return [(int.from_bytes(n, "big"), item) for n, item in seen.items()]


def nearest(key: bytes, candidates: list[tuple[int, T]], count: int) -> list[T]:
    """The ``count`` items of ``candidates`` (from :func:`ranked`) XOR-closest to ``key``."""
    k = int.from_bytes(key, "big")
    return [item for _, item in sorted(candidates, key=lambda c: c[0] ^ k)[:count]]


def closest_by(
    key: bytes, items: Iterable[T], node_id_of: Callable[[T], bytes], count: int
) -> list[T]:
    """Like :func:`closest` for arbitrary items, given ``node_id_of(item) -> bytes``."""
    return nearest(key, ranked(items, node_id_of), count)


__all__ = ["closest", "closest_by", "nearest", "ranked"]
