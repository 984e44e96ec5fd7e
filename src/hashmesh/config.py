"""Typed configuration: frozen dataclasses, validated once, at the edge.

A repository may hold ``config.toml`` with optional tables ``[store]``,
``[dht]`` and ``[node]`` whose keys are the field names below. :func:`load`
reads it; unknown keys and bad values raise :class:`InvalidArgumentError`.
Nothing here touches the world except :func:`load` reading its one file.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hashmesh.errors import InvalidArgumentError

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": KiB,
    "m": 10**6,
    "mb": 10**6,
    "mib": MiB,
    "g": 10**9,
    "gb": 10**9,
    "gib": GiB,
    "t": 10**12,
    "tb": 10**12,
    "tib": 1024 * GiB,
}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$", re.IGNORECASE)
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_size(text: str | int) -> int:
    """Parse ``"10GiB"``, ``"512k"``, ``"1000"`` into bytes."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise InvalidArgumentError(f"size must not be negative: {text}")
        return text
    m = _SIZE_RE.match(str(text))
    if not m:
        raise InvalidArgumentError(f"invalid size {text!r} (examples: 4096, 512KiB, 10GB)")
    return int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "").lower()])


def parse_duration(text: str | int | float) -> float:
    """Parse ``"30d"``, ``"12h"``, ``"90s"``, ``"3600"`` into seconds (> 0)."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        value = float(text)
    else:
        m = _DURATION_RE.match(str(text))
        if not m:
            raise InvalidArgumentError(f"invalid duration {text!r} (examples: 90s, 12h, 30d)")
        value = float(m.group(1)) * _DURATION_UNITS[(m.group(2) or "").lower()]
    if value <= 0:
        raise InvalidArgumentError(f"duration must be positive: {text!r}")
    return value


@dataclass(frozen=True)
class StoreConfig:
    """Local content-addressed store settings."""

    chunk_min: int = 256 * KiB
    chunk_avg: int = 1 * MiB
    chunk_max: int = 4 * MiB
    compress_level: int = 1  # zstd -1: on text about the ratio of -3 at twice the speed
    compress_min_size: int = 512  # smaller blocks are never compressed
    capacity: int = 0  # bytes; 0 = limited only by free disk space
    group_commit_blocks: int = 256  # small blocks per fsync batch

    def __post_init__(self) -> None:
        if not (64 <= self.chunk_min <= self.chunk_avg <= self.chunk_max <= 64 * MiB):
            raise InvalidArgumentError(
                "chunk sizes must satisfy 64 <= chunk_min <= chunk_avg <= chunk_max <= 64MiB"
            )
        if not 1 <= self.compress_level <= 22:
            raise InvalidArgumentError("compress_level must be between 1 and 22")
        if self.capacity < 0:
            raise InvalidArgumentError("capacity must not be negative")
        if self.group_commit_blocks < 1:
            raise InvalidArgumentError("group_commit_blocks must be at least 1")


@dataclass(frozen=True)
class DhtConfig:
    """Kademlia parameters (names follow the paper)."""

    k: int = 20
    alpha: int = 3
    # Queries in flight per key in batched lookups (lookup_many, put_many; get_many uses
    # alpha): they share requests, so asking more at once costs few messages, saves rounds.
    # k by default: each key's k closest known peers are asked in the first round.
    batch_alpha: int = 20
    # put_many skips the lookup of a keyspace region it looked up this recently (0: never)
    region_cache_ttl: float = 30.0
    disjoint_paths: int = 1
    request_timeout: float = 2.0
    # A lone get asks its closest known peer alone first; the next alpha join when that
    # peer answers without the value, fails, or is silent this long (0: alpha at once).
    get_hedge: float = 0.25
    bucket_refresh_interval: float = 3600.0
    max_failures: int = 3  # consecutive failures before a peer is dropped
    replacement_cache_size: int = 20
    max_per_ip_group_bucket: int = 2
    max_per_ip_group_table: int = 10
    record_ttl: float = 24 * 3600.0
    provider_ttl: float = 24 * 3600.0
    republish_interval: float = 3600.0
    originator_republish_interval: float = 12 * 3600.0
    puzzle_difficulty: int = 0
    # Loopback and private networks (a devnet, a LAN) share one IP group: exempt them from
    # the per-/24 diversity limits, which guard against Sybils spread over the Internet.
    diversity_exempt_private: bool = True
    # a full bucket pings its head about a newcomer at most this often (seconds)
    head_ping_interval: float = 30.0
    max_records: int = 65536  # records one node holds for others (and provider keys)
    max_providers_per_key: int = 32
    refresh_on_join: bool = True  # bootstrap also refreshes buckets beyond the closest neighbour

    def __post_init__(self) -> None:
        if self.k < 1 or self.alpha < 1 or self.batch_alpha < 1 or self.disjoint_paths < 1:
            raise InvalidArgumentError(
                "k, alpha, batch_alpha and disjoint_paths must be at least 1"
            )
        if self.request_timeout <= 0:
            raise InvalidArgumentError("request_timeout must be positive")
        if self.get_hedge < 0:
            raise InvalidArgumentError("get_hedge must not be negative")
        if self.region_cache_ttl < 0:
            raise InvalidArgumentError("region_cache_ttl must not be negative")
        if not 0 <= self.puzzle_difficulty <= 24:
            raise InvalidArgumentError("puzzle_difficulty must be between 0 and 24")


@dataclass(frozen=True)
class NodeConfig:
    """A networked node's settings."""

    listen: str = "127.0.0.1:7400"
    bootstrap: tuple[str, ...] = ()
    replication: int = 3
    write_quorum: int = 0  # 0 = replication
    cache_bytes: int = 256 * MiB
    health_interval: float = 2.0
    max_connections: int = 256
    max_inflight_per_peer: int = 64
    max_frame: int = 8 * MiB
    audit_rate: int = 8 * MiB  # stored bytes re-verified per second; 0: no audit
    audit_interval: float = 24 * 3600.0  # seconds from one audit pass's start to the next

    def __post_init__(self) -> None:
        if self.audit_rate < 0 or self.audit_interval < 0:
            raise InvalidArgumentError("audit_rate and audit_interval must not be negative")
        if self.replication < 1:
            raise InvalidArgumentError("replication must be at least 1")
        if not 0 <= self.write_quorum <= self.replication:
            raise InvalidArgumentError("write_quorum must be between 0 and replication")
        parse_address(self.listen)
        for b in self.bootstrap:
            parse_address(b)

    @property
    def quorum(self) -> int:
        return self.write_quorum or self.replication


@dataclass(frozen=True)
class Config:
    """All settings of one repository."""

    store: StoreConfig = field(default_factory=StoreConfig)
    dht: DhtConfig = field(default_factory=DhtConfig)
    node: NodeConfig = field(default_factory=NodeConfig)


def parse_address(text: str) -> tuple[str, int]:
    """Parse ``HOST:PORT`` (``[v6]:PORT`` for IPv6)."""
    t = text.strip()
    if t.startswith("["):
        host, sep, rest = t[1:].partition("]:")
    else:
        host, sep, rest = t.rpartition(":")
    if not sep or not host or not rest.isdigit() or not 0 <= int(rest) <= 65535:
        raise InvalidArgumentError(f"invalid address {text!r} (expected HOST:PORT)")
    return host, int(rest)


def _build(cls: type, table: dict[str, Any], section: str) -> Any:
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(table) - set(names)
    if unknown:
        raise InvalidArgumentError(f"unknown key(s) in [{section}]: {', '.join(sorted(unknown))}")
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        if key == "bootstrap":
            value = tuple(value)
        elif key in ("capacity", "cache_bytes", "audit_rate") or key.startswith("chunk_"):
            value = parse_size(value)
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise InvalidArgumentError(f"bad value in [{section}]: {exc}") from None


def load(path: str | os.PathLike[str] | None) -> Config:
    """Read a ``config.toml``; a missing file gives the defaults."""
    if path is None:
        return Config()
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Config()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidArgumentError(f"cannot read config {p}: {exc}") from None
    unknown = set(data) - {"store", "dht", "node"}
    if unknown:
        raise InvalidArgumentError(f"unknown section(s) in {p}: {', '.join(sorted(unknown))}")
    return Config(
        store=_build(StoreConfig, data.get("store", {}), "store"),
        dht=_build(DhtConfig, data.get("dht", {}), "dht"),
        node=_build(NodeConfig, data.get("node", {}), "node"),
    )


__all__ = [
    "Config",
    "DhtConfig",
    "NodeConfig",
    "StoreConfig",
    "load",
    "parse_address",
    "parse_duration",
    "parse_size",
]
