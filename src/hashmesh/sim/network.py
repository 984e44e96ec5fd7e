"""The simulated wire: hosts, fake addresses, per-link latency, loss, and the driver loop.

Each :class:`Host` wraps one core (a real ``dht.Protocol`` or an adversary wrapper
with the same surface). After every input given to a core the network runs the
contract's driver loop: drain ``messages_to_send()``, schedule each delivery after
the link's latency (or drop it with the loss probability), re-arm the core's one
timer at ``get_timer()``, and hand every ``next_event()`` to the observer.

Invariants
----------
* A link's one-way latency is a pure function of (seed, the two host slots): the
  same pair always has the same latency, in both directions.
* Addresses are never reused: a host that leaves keeps its slot; a joiner gets a
  new one. Every slot maps to a distinct IPv4 /24 (and a distinct /16 for the first
  55,552 slots) so IP-diversity limits in the routing table never bite.
* A message to a contact whose key does not match the host at that address fails
  its handshake: the sender gets ``delivery_failed`` one round trip later.
* A message to a host that is down is silently lost (the sender learns of it only by its own timeout),
  unless ``refuse_dead`` is set, in which case the sender gets ``delivery_failed``
  one round trip later (as a TCP reset would give it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from hashmesh.errors import InvalidArgumentError
from hashmesh.sim.engine import Engine

HONEST = "honest"
DEAD = "dead"
ADVERSARY = "adversary"

PORT = 7400
_MASK64 = (1 << 64) - 1
# First octets that are ordinary unicast space (not 0, 10, 127, 169, 172, 192, or >= 224).
_FIRST_OCTETS = [o for o in range(1, 224) if o not in (10, 100, 127, 169, 172, 192, 198)]
_GROUPS16 = len(_FIRST_OCTETS) * 256


def address_of(slot: int) -> str:
    """The fake IPv4 address of host ``slot``: distinct /24 per slot, spread over /16s."""
    if slot < 0 or slot >= _GROUPS16 * 256 * 254:
        raise InvalidArgumentError(f"host slot {slot} out of range")
    g16 = slot % _GROUPS16
    rest = slot // _GROUPS16
    a = _FIRST_OCTETS[g16 // 256]
    b = g16 % 256
    c = rest % 256
    d = 1 + (rest // 256) % 254
    return f"{a}.{b}.{c}.{d}"


def _mix64(x: int) -> int:
    """splitmix64 finaliser: a fast, well-spread integer hash."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


class LatencyModel:
    """Lognormal one-way latency per link, deterministic per (seed, pair).

    ``median_ms`` is the median one-way delay; ``sigma`` the log-space spread
    (0.5 gives a p99 of about 3.2x the median). Floors at ``min_ms``.
    """

    __slots__ = ("_mu", "median_ms", "min_ms", "seed", "sigma")

    def __init__(
        self, seed: int, median_ms: float = 50.0, sigma: float = 0.5, min_ms: float = 1.0
    ) -> None:
        if median_ms <= 0 or sigma < 0 or min_ms < 0:
            raise InvalidArgumentError("latency median must be > 0, sigma and floor >= 0")
        self.seed = seed & _MASK64
        self.median_ms = median_ms
        self.sigma = sigma
        self.min_ms = min_ms
        self._mu = math.log(median_ms / 1000.0)

    def one_way(self, a: int, b: int) -> float:
        """One-way delay in seconds between host slots ``a`` and ``b``."""
        if a > b:
            a, b = b, a
        h1 = _mix64(self.seed ^ _mix64((a << 32) | b))
        h2 = _mix64(h1)
        u1 = ((h1 >> 11) + 1) / 9007199254740993.0  # in (0, 1]
        u2 = (h2 >> 11) / 9007199254740992.0
        z = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
        return max(self.min_ms / 1000.0, math.exp(self._mu + self.sigma * z))


class Host:
    """One simulated machine: a slot, its contact, its core and its state."""

    __slots__ = ("address", "alive", "armed", "core", "joined_at", "peer", "role", "slot")

    def __init__(self, slot: int, peer: Any, core: Any, role: str, now: float) -> None:
        self.slot = slot
        self.peer = peer
        self.core = core
        self.role = role
        self.alive = True
        self.armed: float | None = None
        self.joined_at = now
        self.address = peer.host


EventSink = Callable[[Host, Any], None]


class Network:
    """All hosts of one simulation and the wire between them."""

    def __init__(
        self,
        engine: Engine,
        latency: LatencyModel,
        *,
        loss: float = 0.0,
        refuse_dead: bool = False,
        on_event: EventSink | None = None,
    ) -> None:
        if not 0.0 <= loss < 1.0:
            raise InvalidArgumentError("loss must be in [0, 1)")
        self.engine = engine
        self.latency = latency
        self.loss = loss
        self.refuse_dead = refuse_dead
        self.on_event: EventSink = on_event or (lambda host, event: None)
        self.hosts: list[Host] = []
        self.by_address: dict[str, Host] = {}
        self.sent = 0
        self.sent_by_type: dict[str, int] = {}
        self.lost = 0
        self.delivered = 0

    # -- membership ----------------------------------------------------------------

    def next_slot(self) -> int:
        return len(self.hosts)

    def add(self, peer: Any, core: Any, role: str = HONEST) -> Host:
        """Attach a core at the next slot; ``peer.host`` must be ``address_of(slot)``."""
        host = Host(len(self.hosts), peer, core, role, self.engine.now)
        if host.address in self.by_address:
            raise InvalidArgumentError(f"address {host.address} already in use")
        self.hosts.append(host)
        self.by_address[host.address] = host
        return host

    def down(self, host: Host) -> None:
        """Take a host off the network at once (a crash); its timers go stale."""
        host.alive = False
        host.armed = None

    def live_hosts(self) -> list[Host]:
        return [h for h in self.hosts if h.alive]

    # -- the driver loop -------------------------------------------------------------

    def pump(self, host: Host) -> None:
        """After an input to ``host.core``: send its output, re-arm its timer, emit events."""
        core = host.core
        out = core.messages_to_send()
        if out:
            for peer, message in out:
                self._send(host, peer, message)
        deadline = core.get_timer()
        if deadline is not None and (host.armed is None or deadline < host.armed):
            host.armed = deadline
            self.engine.at(deadline, self._fire, host, deadline)
        event = core.next_event()
        while event is not None:
            self.on_event(host, event)
            event = core.next_event()

    def _fire(self, host: Host, deadline: float) -> None:
        if not host.alive or host.armed != deadline:
            return  # stale: the host died or re-armed for an earlier deadline
        host.armed = None
        current = host.core.get_timer()
        if current is None:
            return
        now = self.engine.now
        if current <= now:
            host.core.handle_timer(now)
        self.pump(host)

    def _send(self, src: Host, peer: Any, message: Any) -> None:
        self.sent += 1
        name = type(message).__name__
        self.sent_by_type[name] = self.sent_by_type.get(name, 0) + 1
        dst = self.by_address.get(peer.host)
        engine = self.engine
        if self.loss and engine.rng.random() < self.loss:
            self.lost += 1
            return
        if dst is None:
            delay = 2 * self.latency.one_way(src.slot, src.slot + 1)
            if self.refuse_dead:
                engine.after(delay, self._refused, src, peer, message)
            return
        delay = self.latency.one_way(src.slot, dst.slot)
        if dst.peer.public_key != peer.public_key:
            # The transport handshake proves keys: a forged contact fails after one RTT.
            engine.after(2 * delay, self._refused, src, peer, message)
            return
        engine.after(delay, self._deliver, src, dst, message)

    def _deliver(self, src: Host, dst: Host, message: Any) -> None:
        peer = src.peer
        if not dst.alive or dst.role == DEAD:
            if self.refuse_dead:
                delay = self.latency.one_way(src.slot, dst.slot)
                self.engine.after(delay, self._refused, src, dst.peer, message)
            return
        self.delivered += 1
        dst.core.receive(peer, message, self.engine.now)
        self.pump(dst)

    def _refused(self, src: Host, peer: Any, message: Any) -> None:
        if src.alive and src.role != DEAD:
            src.core.delivery_failed(peer, message.rpc_id, self.engine.now)
            self.pump(src)

    def call(self, host: Host, fn: Callable[..., Any], *args: Any) -> Any:
        """Give an API call to ``host.core`` now (``fn(*args, now)``) and run the driver loop."""
        result = fn(*args, self.engine.now)
        self.pump(host)
        return result
