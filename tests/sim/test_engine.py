"""The simulator's engine and wire, driven by a tiny throwaway core (not the DHT)."""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass

import pytest

from hashmesh.errors import InvalidArgumentError
from hashmesh.sim.engine import Engine
from hashmesh.sim.network import DEAD, LatencyModel, Network, address_of


@dataclass(frozen=True)
class Peer:
    public_key: bytes
    host: str
    port: int = 7400


@dataclass(frozen=True)
class Ping:
    rpc_id: int


@dataclass(frozen=True)
class Pong:
    rpc_id: int


class EchoCore:
    """Sends pings on request, answers pings, times out unanswered ones after 1 s."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.out: list[tuple[Peer, object]] = []
        self.pending: dict[int, float] = {}
        self.events: list[tuple[str, int, float]] = []
        self.failed: list[int] = []

    def ping(self, peer: Peer, now: float) -> int:
        rpc = self.rng.getrandbits(64)
        self.pending[rpc] = now + 1.0
        self.out.append((peer, Ping(rpc)))
        return rpc

    def receive(self, peer: Peer, message: object, now: float) -> None:
        if isinstance(message, Ping):
            self.out.append((peer, Pong(message.rpc_id)))
        elif isinstance(message, Pong) and self.pending.pop(message.rpc_id, None) is not None:
            self.events.append(("pong", message.rpc_id, now))

    def delivery_failed(self, peer: Peer, rpc_id: int, now: float) -> None:
        if self.pending.pop(rpc_id, None) is not None:
            self.events.append(("failed", rpc_id, now))

    def handle_timer(self, now: float) -> None:
        for rpc, deadline in list(self.pending.items()):
            if deadline <= now:
                del self.pending[rpc]
                self.events.append(("timeout", rpc, now))

    def messages_to_send(self) -> list[tuple[Peer, object]]:
        out, self.out = self.out, []
        return out

    def get_timer(self) -> float | None:
        return min(self.pending.values(), default=None)

    def next_event(self) -> tuple[str, int, float] | None:
        return self.events.pop(0) if self.events else None


def build(n: int, seed: int, loss: float = 0.0, refuse: bool = False):
    engine = Engine(seed)
    seen: list[tuple[int, str, float]] = []
    net = Network(
        engine,
        LatencyModel(seed),
        loss=loss,
        refuse_dead=refuse,
        on_event=lambda host, ev: seen.append((host.slot, ev[0], ev[2])),
    )
    for i in range(n):
        peer = Peer(bytes([i % 256, i // 256]) * 16, address_of(i))
        net.add(peer, EchoCore(random.Random(seed * 1000 + i)))
    return engine, net, seen


def ping_storm(seed: int, loss: float = 0.0, pings: int = 200):
    engine, net, seen = build(50, seed, loss)
    rng = engine.rng
    for _ in range(pings):
        a, b = rng.randrange(50), rng.randrange(50)
        src, dst = net.hosts[a], net.hosts[b]
        engine.at(rng.uniform(0, 5), net.call, src, src.core.ping, dst.peer)
    engine.run_until(60.0)
    return seen, net


def test_clock_orders_events_and_breaks_ties_by_schedule_order() -> None:
    engine = Engine(1)
    order: list[str] = []
    engine.at(2.0, order.append, "c")
    engine.at(1.0, order.append, "a")
    engine.at(1.0, order.append, "b")
    engine.after(0.5, order.append, "first")
    assert engine.run_until(1.5) == 3
    assert order == ["first", "a", "b"]
    assert engine.now == 1.5
    engine.run_until(10)
    assert order[-1] == "c"
    with pytest.raises(InvalidArgumentError):
        engine.after(-1, order.append, "x")


def test_event_budget_stops_a_runaway() -> None:
    engine = Engine(1)

    def forever() -> None:
        engine.after(0.001, forever)

    engine.after(0, forever)
    with pytest.raises(InvalidArgumentError):
        engine.run_until(1e9, max_events=1000)


def test_latency_is_deterministic_symmetric_and_lognormal() -> None:
    lat = LatencyModel(seed=7, median_ms=50, sigma=0.5)
    assert lat.one_way(3, 9) == lat.one_way(9, 3) == LatencyModel(7).one_way(3, 9)
    assert lat.one_way(3, 9) != LatencyModel(8).one_way(3, 9)
    samples = [lat.one_way(i, i + 1 + j) for i in range(100) for j in range(40)]
    median = statistics.median(samples)
    assert 0.045 < median < 0.055
    assert max(samples) < 1.0 and min(samples) >= 0.001


def test_addresses_distinct_in_24_and_16_groups() -> None:
    addrs = [address_of(i) for i in range(60_000)]
    assert len({a.rsplit(".", 1)[0] for a in addrs}) == 60_000
    assert len({".".join(a.split(".")[:2]) for a in addrs[:55_000]}) == 55_000
    assert all(not a.startswith(("10.", "127.", "192.")) for a in addrs)


def test_same_seed_same_history_and_pings_complete() -> None:
    a, _ = ping_storm(5)
    b, _ = ping_storm(5)
    c, _ = ping_storm(6)
    assert a == b
    assert a != c
    assert len(a) == 200 and all(kind == "pong" for _, kind, _ in a)


def test_loss_drops_about_the_asked_fraction_and_causes_timeouts() -> None:
    seen, net = ping_storm(3, loss=0.2, pings=1000)
    assert 0.15 < net.lost / net.sent < 0.25
    kinds = [k for _, k, _ in seen]
    assert len(kinds) == 1000
    # A ping survives only if both the ping and the pong do: about 0.8^2.
    assert 0.58 < kinds.count("pong") / 1000 < 0.70


def test_dead_host_is_silent_or_refuses() -> None:
    for refuse, expected in ((False, "timeout"), (True, "failed")):
        engine, net, seen = build(3, 11, refuse=refuse)
        net.down(net.hosts[1])
        src = net.hosts[0]
        engine.at(0.0, net.call, src, src.core.ping, net.hosts[1].peer)
        engine.run_until(5.0)
        assert [k for _, k, _ in seen] == [expected]
        if refuse:
            assert seen[0][2] < 1.0


def test_dead_role_host_never_answers() -> None:
    engine, net, seen = build(2, 11)
    net.hosts[1].role = DEAD
    src = net.hosts[0]
    engine.at(0.0, net.call, src, src.core.ping, net.hosts[1].peer)
    engine.run_until(5.0)
    assert [k for _, k, _ in seen] == ["timeout"]
    assert seen[0][2] == pytest.approx(1.0)


def test_forged_contact_fails_its_handshake() -> None:
    engine, net, seen = build(2, 11)
    forged = Peer(b"\xff" * 32, net.hosts[1].address)
    src = net.hosts[0]
    engine.at(0.0, net.call, src, src.core.ping, forged)
    engine.run_until(5.0)
    assert [k for _, k, _ in seen] == ["failed"]
