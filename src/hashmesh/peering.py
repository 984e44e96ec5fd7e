"""What a node knows about its peers, shared by the node and its mixins.

:class:`PeerHealth` holds one peer's health-check state; :func:`addr` turns a
DHT contact into a transport address; the constants tune health checks and
block transfers.
"""

from __future__ import annotations

from dataclasses import dataclass

from hashmesh import dht
from hashmesh.net.endpoint import PeerAddress

HEALTH_SAMPLE = 8  # far peers pinged per round in large networks
HEALTH_FAILURES = 2  # consecutive failed pings before a peer counts as down
LOST_PROBES = 900  # failed pings after which a peer no longer in the routing table is forgotten
BLOCK_TIMEOUT = 30.0
BATCH_BYTES = 2 * 1024 * 1024  # blocks bound for one peer are packed up to this size
# A received replica is checked by repair (HAVE to its other targets) this long after it
# arrived, once its sender has finished placing it, instead of racing the sender's pushes.
RECHECK_DELAY = 10.0


@dataclass
class PeerHealth:
    peer: dht.PeerInfo
    rtt_ms: float = 0.0
    last_seen: float = 0.0  # unix seconds
    failures: int = 0


def addr(peer: dht.PeerInfo) -> PeerAddress:
    return PeerAddress(peer.node_id, peer.host, peer.port)


__all__ = ["PeerHealth", "addr"]
