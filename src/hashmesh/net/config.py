"""Transport settings: one frozen dataclass, validated once."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from hashmesh.config import DhtConfig, NodeConfig
from hashmesh.errors import InvalidArgumentError
from hashmesh.net.framing import DEFAULT_MAX_FRAME


@dataclass(frozen=True)
class TransportConfig:
    """Limits and timeouts of the transport (seconds, bytes, counts)."""

    max_frame: int = DEFAULT_MAX_FRAME  # largest payload of one frame
    max_connections: int = 256  # open connections, in and out; LRU idle ones are evicted
    max_inflight_per_peer: int = 64  # our requests in flight on one connection
    max_handlers_per_connection: int = 256  # peer requests being served; then stop reading
    connect_timeout: float = 3.0  # TCP connect
    handshake_timeout: float = 5.0  # TLS handshake, then the identity proof
    request_timeout: float = 10.0  # default per-request deadline
    idle_timeout: float = 60.0  # close a connection with nothing in flight this long
    rate_limit: float = 5000.0  # requests per second one peer may make of us; 0 = unlimited
    rate_burst: float = 10000.0
    dial_backoff: float = 1.0  # after a failed dial, fail fast for this long; 0 = never
    puzzle_difficulty: int = 0  # id puzzle a peer's key must solve
    stream_window: int = 4  # chunks of a streamed response in flight

    def __post_init__(self) -> None:
        if not 1024 <= self.max_frame <= 1 << 30:
            raise InvalidArgumentError("max_frame must be between 1 KiB and 1 GiB")
        for name in (
            "max_connections",
            "max_inflight_per_peer",
            "max_handlers_per_connection",
            "stream_window",
        ):
            if getattr(self, name) < 1:
                raise InvalidArgumentError(f"{name} must be at least 1")
        for name in ("connect_timeout", "handshake_timeout", "request_timeout", "idle_timeout"):
            if getattr(self, name) <= 0:
                raise InvalidArgumentError(f"{name} must be positive")
        if self.rate_limit < 0 or self.rate_burst < 1 or self.dial_backoff < 0:
            raise InvalidArgumentError("rate_limit and dial_backoff >= 0, rate_burst >= 1")
        if not 0 <= self.puzzle_difficulty <= 24:
            raise InvalidArgumentError("puzzle_difficulty must be between 0 and 24")

    @classmethod
    def from_node(
        cls, node: NodeConfig, dht: DhtConfig | None = None, **overrides: Any
    ) -> TransportConfig:
        """Settings taken from a node's config, then ``overrides``."""
        base = cls(
            max_frame=node.max_frame,
            max_connections=node.max_connections,
            max_inflight_per_peer=node.max_inflight_per_peer,
        )
        if dht is not None:
            base = replace(base, puzzle_difficulty=dht.puzzle_difficulty)
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise InvalidArgumentError(f"unknown transport setting(s): {sorted(unknown)}")
        return replace(base, **overrides)


__all__ = ["TransportConfig"]
