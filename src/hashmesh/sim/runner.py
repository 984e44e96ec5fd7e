"""``run(params) -> dict``: build a network of real cores, apply a scenario, measure.

Phases (all on the virtual clock):

1. **build**: create ``nodes`` hosts (a fraction of them adversaries), then join them
   by real bootstraps (``build="join"``) or fill their tables from the oracle
   (``build="oracle"``); ``auto`` joins up to ``join_limit`` nodes.
2. **damage**: silence a ``dead`` fraction of the honest hosts (they stay in every
   table; nothing repairs the tables before measuring).
3. **values** (optional): store ``values`` records from random honest hosts.
4. **measure**: over ``window`` seconds, ``lookups`` lookups from random honest
   hosts to random targets, while churn (``churn`` x nodes departures, half
   graceful ``leave()``, half crashes, and as many real joins) happens at uniform
   random times. Every core's timers (refresh, republish, expiry) run meanwhile.
5. **values check**: a ``get`` of every stored key from a random honest host.

With ``batch`` > 0, before the window: one honest host ``put_many``s ``batch`` records,
another ``get_many``s them, and a third runs ``lookup_many`` for ``batch`` random
keys (recall against the oracle), each measured in requests per key.

The result is a flat dict (see :mod:`hashmesh.sim.report` for the success rule).
Everything but ``seconds`` and ``peak_rss_mb`` is a pure function of the params.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from hashmesh.config import DhtConfig
from hashmesh.errors import InvalidArgumentError
from hashmesh.sim import scenarios
from hashmesh.sim.build import build_by_joins, build_by_oracle
from hashmesh.sim.network import ADVERSARY, HONEST, Host
from hashmesh.sim.report import LookupStats, histogram
from hashmesh.sim.world import World, id_int

BUILDS = ("auto", "join", "oracle")


@dataclass(frozen=True)
class SimParams:
    """Everything a simulation depends on (besides the code)."""

    nodes: int = 1000
    lookups: int = 1000
    seed: int = 1
    k: int = 20
    alpha: int = 3
    disjoint: int = 1
    loss: float = 0.0
    churn: float = 0.0
    dead: float = 0.0
    adversarial: float = 0.0
    adversary_mode: str = "collude"
    values: int = 0
    batch: int = 0  # keys of one put_many / get_many / lookup_many (0: none)
    republish: bool = True
    holders_leave: float = 0.5
    graceful: float = 0.5
    build: str = "auto"
    join_limit: int = 2000
    window: float = 600.0
    latency_ms: float = 50.0
    latency_sigma: float = 0.5
    request_timeout: float = 2.0
    refuse_dead: bool = False
    max_events: int = 200_000_000

    def validate(self) -> None:
        if self.nodes < 2:
            raise InvalidArgumentError("a simulation needs at least 2 nodes")
        if self.nodes > 2_000_000:
            raise InvalidArgumentError("at most 2,000,000 nodes")
        if self.lookups < 0 or self.values < 0 or self.batch < 0:
            raise InvalidArgumentError("lookups, values and batch must not be negative")
        for name in ("loss", "churn", "dead", "adversarial", "holders_leave", "graceful"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0 or (name == "loss" and v >= 1.0):
                raise InvalidArgumentError(f"{name} must be a fraction in [0, 1]: {v}")
        if self.dead + self.adversarial >= 0.95:
            raise InvalidArgumentError("dead + adversarial must leave some honest nodes")
        if self.build not in BUILDS:
            raise InvalidArgumentError(f"build must be one of {', '.join(BUILDS)}")
        if self.adversary_mode not in scenarios.ADVERSARY_MODES:
            modes = ", ".join(scenarios.ADVERSARY_MODES)
            raise InvalidArgumentError(f"adversary mode must be one of {modes}")
        if self.window <= 0 or self.request_timeout <= 0:
            raise InvalidArgumentError("window and request timeout must be positive")

    @property
    def build_mode(self) -> str:
        if self.build != "auto":
            return self.build
        return "join" if self.nodes <= self.join_limit else "oracle"

    def dht_config(self) -> DhtConfig:
        limits: dict[str, int] = {}
        if self.build_mode == "oracle":
            # Every simulated host has its own /24, so the diversity limits can never
            # bite; switching the checks off only saves their O(table) cost per insert.
            limits = {"max_per_ip_group_bucket": 0, "max_per_ip_group_table": 0}
        republish: dict[str, float] = {}
        if not self.republish:
            republish = {"republish_interval": 1e12, "originator_republish_interval": 1e12}
        return DhtConfig(
            k=self.k,
            alpha=self.alpha,
            disjoint_paths=self.disjoint,
            request_timeout=self.request_timeout,
            **limits,
            **republish,
        )


def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def _measure_lookups(world: World, p: SimParams, stats: LookupStats, t0: float) -> None:
    engine, rng, k = world.engine, world.rng, p.k
    for _ in range(p.lookups):
        when = t0 + rng.random() * p.window
        target = rng.randbytes(32)
        engine.at(when, _start_lookup, world, stats, target, k)
    stats.attempted = p.lookups


def _start_lookup(world: World, stats: LookupStats, target: bytes, k: int) -> None:
    host = world.pick_honest()
    if host is None:
        return
    started = world.engine.now

    def done(h: Host, event: Any) -> None:
        t = int.from_bytes(target, "big")
        truth = world.truth.closest(t, k)
        found = {id_int(peer) for peer in event.closest}
        found.add(id_int(h.peer))  # a node always knows itself
        ok = bool(truth) and truth[0] in found
        recall = sum(1 for x in truth if x in found) / max(1, len(truth))
        stats.record(ok, recall, event.hops, event.messages, world.engine.now - started)

    world.start(host, "lookup", target, then=done)


def _schedule_churn(world: World, p: SimParams, t0: float, victims: list[Host] | None) -> dict:
    counts = {"left": 0, "crashed": 0, "joined": 0}
    pool = victims if victims is not None else None
    n = round(p.churn * p.nodes) if victims is None else len(victims)
    plan = scenarios.churn_plan(world.rng, t0, p.window, n, p.graceful)
    order = list(pool) if pool is not None else None

    def depart(kind: str) -> None:
        if order is not None:
            host = order.pop() if order else None
        else:
            host = world.pick_honest() if world.honest_count() > 2 else None
        if host is None or not host.alive:
            return
        world.kill(host, graceful=kind == "leave")
        counts["left" if kind == "leave" else "crashed"] += 1

    def join() -> None:
        seed = world.pick_honest()
        host = world.new_host(HONEST)
        if seed is not None:
            world.start(host, "bootstrap", [seed.peer], then=world.mark_joined)
        counts["joined"] += 1

    if order is not None:
        world.rng.shuffle(order)
    for when, kind in plan:
        if kind == "join":
            world.engine.at(when, join)
        else:
            world.engine.at(when, depart, kind)
    return counts


def _store_values(world: World, p: SimParams) -> tuple[list[bytes], list[Host], int]:
    """Put ``p.values`` records; return keys, the hosts holding any, and acks."""
    from hashmesh.dht.records import ValueRecord

    keys: list[bytes] = []
    acks = {"n": 0}
    for i in range(p.values):
        rec = ValueRecord.of(b"hashmesh sim value %d seed %d" % (i, p.seed))
        keys.append(rec.key)
        host = world.pick_honest()
        when = world.engine.now + world.rng.random() * 10.0

        def put(h: Host = host, r: Any = rec) -> None:
            world.start(
                h, "put", r, then=lambda _h, e: acks.__setitem__("n", acks["n"] + e.stored_at)
            )

        world.engine.at(when, put)
    world.engine.run_until(world.engine.now + 10.0 + 60.0, p.max_events)
    holders = [h for h in world.honest_live() if any(key in h.core.records for key in keys)]
    return keys, holders, acks["n"]


def _measure_batch(world: World, p: SimParams) -> dict[str, Any]:
    """put_many, then get_many elsewhere, then lookup_many of random keys; per-key figures."""
    from hashmesh.dht.records import ValueRecord

    recs = [
        ValueRecord.of(b"hashmesh batch value %d seed %d" % (i, p.seed)) for i in range(p.batch)
    ]
    out: dict[str, Any] = {}
    events: dict[str, Any] = {}

    def call(name: str, *args: Any) -> Any:
        host = world.pick_honest()
        if host is None:
            return None
        world.start(host, name, *args, then=lambda _h, e: events.__setitem__(name, e))
        world.engine.run_while(lambda: name not in events, world.engine.now + 600.0)
        return events.get(name)

    put = call("put_many", recs)
    if put is not None:
        acks = sorted(put.stored_at)
        out["batch_put_acks_min"] = acks[0] if acks else 0
        out["batch_put_acks_median"] = acks[len(acks) // 2] if acks else 0
        out["batch_put_requests_per_key"] = round(put.messages / max(1, p.batch), 3)
    got = call("get_many", [r.key for r in recs])
    if got is not None:
        ok = sum(1 for r, want in zip(got.records, recs, strict=True) if r == want)
        out["batch_get_retrieved"] = round(ok / max(1, p.batch), 6)
        out["batch_get_requests_per_key"] = round(got.messages / max(1, p.batch), 3)
    targets = [world.rng.randbytes(32) for _ in range(p.batch)]
    found = call("lookup_many", targets)
    if found is not None:
        recall, top1 = 0.0, 0
        for target, closest in zip(targets, found.closest, strict=True):
            truth = world.truth.closest(int.from_bytes(target, "big"), p.k)
            ids = {id_int(peer) for peer in closest}
            recall += sum(1 for x in truth if x in ids) / max(1, len(truth))
            top1 += bool(truth) and truth[0] in ids
        out["batch_lookup_recall"] = round(recall / max(1, p.batch), 4)
        out["batch_lookup_top1"] = round(top1 / max(1, p.batch), 4)
        out["batch_lookup_requests_per_key"] = round(found.messages / max(1, p.batch), 3)
    return out


def _check_values(world: World, p: SimParams, keys: list[bytes]) -> dict[str, Any]:
    got = {"ok": 0, "done": 0}
    hops: list[int] = []
    for key in keys:
        host = world.pick_honest()

        def done(h: Host, event: Any, key: bytes = key) -> None:
            got["done"] += 1
            rec = event.record
            if rec is not None and rec.key == key:
                got["ok"] += 1
            hops.append(event.hops)

        world.start(host, "get", key, then=done)
    world.engine.run_while(lambda: got["done"] < len(keys), world.engine.now + 600.0, p.max_events)
    return {"values_retrievable": round(got["ok"] / max(1, len(keys)), 6)}


def run(
    params: SimParams | dict[str, Any], *, core_factory: Callable[..., Any] | None = None
) -> dict[str, Any]:
    """Run one simulation and return its figures as a flat, JSON-ready dict.

    ``core_factory(me, config, rng)`` builds each node's core; the default is the
    real :class:`hashmesh.dht.Protocol` (tests may pass a stand-in).
    """
    p = params if isinstance(params, SimParams) else SimParams(**params)
    p.validate()
    wall, cpu = time.perf_counter(), time.process_time()
    world = World(
        p.seed,
        p.dht_config(),
        latency_ms=p.latency_ms,
        latency_sigma=p.latency_sigma,
        loss=p.loss,
        refuse_dead=p.refuse_dead,
        adversary_mode=p.adversary_mode,
        core_factory=core_factory,
    )
    n_adv = round(p.adversarial * p.nodes)
    adv_slots = set(world.rng.sample(range(p.nodes), n_adv))
    hosts = [world.new_host(ADVERSARY if i in adv_slots else HONEST) for i in range(p.nodes)]
    result: dict[str, Any] = {"params": asdict(p), "build": p.build_mode}
    if p.build_mode == "join":
        done, msgs = build_by_joins(world, hosts)
        result["join_messages_per_node"] = round(msgs / max(1, done), 2)
    else:
        result["oracle_contacts_per_node"] = round(build_by_oracle(world, hosts) / p.nodes, 2)
    build_seconds = time.perf_counter() - wall
    honest = [h for h in hosts if h.role == HONEST]
    for host in scenarios.pick_fraction(world.rng, honest, p.dead * p.nodes / max(1, len(honest))):
        world.silence(host)
    if p.batch:
        result.update(_measure_batch(world, p))
    t0 = world.engine.now
    keys: list[bytes] = []
    victims = None
    if p.values:
        keys, holders, acks = _store_values(world, p)
        result["values_stored_acks_per_key"] = round(acks / max(1, p.values), 3)
        victims = scenarios.pick_fraction(world.rng, holders, p.holders_leave)
        t0 = world.engine.now
    stats = LookupStats()
    _measure_lookups(world, p, stats, t0)
    sent_before = world.net.sent
    churn = _schedule_churn(world, p, t0, victims) if (p.churn or victims) else {}
    world.engine.run_until(t0 + p.window, p.max_events)
    world.engine.run_while(lambda: stats.finished < stats.attempted, t0 + p.window + 600.0)
    maintenance = world.net.sent - sent_before
    result.update(stats.summary())
    result.update(churn)
    result["maintenance_msgs_per_node_hour"] = round(
        maintenance * 3600.0 / (max(1, p.nodes) * (world.engine.now - t0)), 3
    )
    if keys:
        result.update(_check_values(world, p, keys))
    result.update(
        {
            "nodes": p.nodes,
            "hops_histogram": histogram(stats.hops),
            "messages_sent": world.net.sent,
            "messages_by_type": dict(sorted(world.net.sent_by_type.items())),
            "messages_lost": world.net.lost,
            "virtual_seconds": round(world.engine.now, 3),
            "build_seconds": round(build_seconds, 2),
            "seconds": round(time.perf_counter() - wall, 2),
            "cpu_seconds": round(time.process_time() - cpu, 2),
            "peak_rss_mb": peak_rss_mb(),
        }
    )
    result["_latencies_ms"] = [round(x * 1000, 3) for x in stats.latency]
    return result
