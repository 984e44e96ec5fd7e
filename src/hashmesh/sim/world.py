"""The world of one simulation: hosts with real cores, membership, truth, operations.

:class:`World` owns the engine, the network and the ground truth, creates hosts
(honest cores, liars, dead hosts), starts API calls on cores and routes each
result event back to the callback registered for its operation id.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from hashmesh.config import DhtConfig
from hashmesh.dht.messages import PeerInfo
from hashmesh.dht.protocol import Protocol
from hashmesh.sim.engine import Engine
from hashmesh.sim.network import ADVERSARY, DEAD, HONEST, PORT, Host, LatencyModel, Network
from hashmesh.sim.network import address_of as _address_of
from hashmesh.sim.report import Truth
from hashmesh.sim.scenarios import Colluders, Liar

OpCallback = Callable[[Host, Any], None]


def id_int(peer: PeerInfo) -> int:
    return int.from_bytes(peer.node_id.value, "big")


class World:
    """Hosts, cores, truth and pending operations of one simulation."""

    def __init__(
        self,
        seed: int,
        config: DhtConfig,
        *,
        latency_ms: float = 50.0,
        latency_sigma: float = 0.5,
        loss: float = 0.0,
        refuse_dead: bool = False,
        adversary_mode: str = "collude",
        core_factory: Callable[..., Any] | None = None,
    ) -> None:
        self.core_factory = core_factory or Protocol
        self.engine = Engine(seed)
        self.rng = self.engine.rng
        self.config = config
        self.net = Network(
            self.engine,
            LatencyModel(seed, latency_ms, latency_sigma),
            loss=loss,
            refuse_dead=refuse_dead,
            on_event=self._on_event,
        )
        self.truth = Truth()  # live, honest, joined hosts
        self.adversary_mode = adversary_mode
        self.colluders = Colluders(random.Random(self.rng.getrandbits(64)), self._all_peers)
        self._ops: dict[tuple[int, int], OpCallback] = {}
        self._pool: list[Host] = []  # joined, live, honest hosts (lookup origins)
        self._pool_index: dict[int, int] = {}
        self.unclaimed_events = 0

    # -- hosts ---------------------------------------------------------------------

    def _all_peers(self) -> list[PeerInfo]:
        return [h.peer for h in self.net.hosts if h.alive]

    def new_host(self, role: str = HONEST) -> Host:
        """Create a host with a fresh key at the next address; not yet in the truth."""
        slot = self.net.next_slot()
        peer = PeerInfo.make(self.rng.randbytes(32), _address_of(slot), PORT)
        core: Any = self.core_factory(peer, self.config, random.Random(self.rng.getrandbits(64)))
        if role == ADVERSARY:
            core = Liar(core, peer, self.colluders, k=self.config.k, mode=self.adversary_mode)
            self.colluders.add(peer)
        return self.net.add(peer, core, role)

    def mark_joined(self, host: Host, *_: Any) -> None:
        """``host`` finished joining: it counts in the truth and may start lookups."""
        if host.alive and host.role == HONEST and host.slot not in self._pool_index:
            self.truth.add(id_int(host.peer))
            self._pool_index[host.slot] = len(self._pool)
            self._pool.append(host)

    def _unpool(self, host: Host) -> None:
        i = self._pool_index.pop(host.slot, None)
        if i is None:
            return
        self.truth.remove(id_int(host.peer))
        last = self._pool.pop()
        if last is not host:
            self._pool[i] = last
            self._pool_index[last.slot] = i

    def pick_honest(self) -> Host | None:
        """A uniformly random joined, live, honest host (None if there is none)."""
        if not self._pool:
            return None
        return self._pool[self.rng.randrange(len(self._pool))]

    def honest_count(self) -> int:
        return len(self._pool)

    def kill(self, host: Host, *, graceful: bool) -> None:
        """Take ``host`` away: a graceful ``leave()`` first, or a silent crash."""
        if not host.alive:
            return
        if graceful and host.role != DEAD:
            self.net.call(host, host.core.leave)
        self.net.down(host)
        self._unpool(host)

    def silence(self, host: Host) -> None:
        """Make ``host`` silently dead but still present in others' tables."""
        self._unpool(host)
        host.role = DEAD
        host.armed = None

    def honest_live(self) -> list[Host]:
        """Joined, live, honest hosts in slot order."""
        return sorted(self._pool, key=lambda h: h.slot)

    # -- operations ----------------------------------------------------------------

    def start(self, host: Host, method: str, *args: Any, then: OpCallback) -> int:
        """Call ``host.core.<method>(*args, now)`` and route its result event to ``then``."""
        fn = getattr(host.core, method)
        op = fn(*args, self.engine.now)
        self._ops[(host.slot, op)] = then
        self.net.pump(host)
        return op

    def _on_event(self, host: Host, event: Any) -> None:
        callback = self._ops.pop((host.slot, getattr(event, "op", -1)), None)
        if callback is None:
            self.unclaimed_events += 1  # internal operations (refresh, republish)
            return
        callback(host, event)

    def pending_ops(self) -> int:
        return len(self._ops)
