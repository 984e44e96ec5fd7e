"""Scenarios: which hosts are dead or adversarial, churn over time, lying responders.

Adversaries are real cores wrapped by :class:`Liar`: the inner core joins, pings,
fills its routing table and stays in other nodes' tables like any honest node,
but the wrapper answers every ``FindNode``/``GetProviders`` with wrong contacts
and every ``FindValue`` with a forged record (or, failing that, wrong contacts).

Two lying strategies (``mode``):

``collude``  the k adversaries closest to the target, so a lookup that trusts
             them is steered into a region where only liars answer (an eclipse);
``random``   k contacts drawn at random from the whole network (mostly far ones).

``silent``   no answer at all to lookup requests (it still answers pings, so it
             stays in everyone's table: a black hole, worse than a dead node).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from hashmesh.dht import messages as m
from hashmesh.errors import InvalidArgumentError
from hashmesh.sim.report import Truth

ADVERSARY_MODES = ("collude", "random", "silent")


class Colluders:
    """What the adversaries know together: their own contacts, sorted by id."""

    def __init__(self, rng: random.Random, everyone: Callable[[], Sequence[Any]]) -> None:
        self.rng = rng
        self.truth = Truth()
        self.by_id: dict[int, Any] = {}
        self._everyone = everyone

    def add(self, peer: Any) -> None:
        key = int.from_bytes(peer.node_id.value, "big")
        self.by_id[key] = peer
        self.truth.add(key)

    def lie(self, target: bytes, k: int, mode: str, me: Any) -> tuple[Any, ...]:
        """The wrong "closest" contacts an adversary returns for ``target``."""
        if mode == "collude" and len(self.truth) > 1:
            t = int.from_bytes(target, "big")
            ids = self.truth.closest(t, k + 1)
            return tuple(self.by_id[i] for i in ids if self.by_id[i] is not me)[:k]
        pool = self._everyone()
        n = min(k, len(pool))
        return tuple(self.rng.sample(pool, n)) if n else ()


def forge_record(key: bytes) -> Any:
    """A value record claiming ``key`` whose value does not hash to it (a bad value)."""
    return m.ValueRecord(key, b"forged value for " + key[:8].hex().encode())


class Liar:
    """A real core behind a lying front (same driver surface as ``dht.Protocol``)."""

    def __init__(
        self, inner: Any, me: Any, colluders: Colluders, *, k: int, mode: str = "collude"
    ) -> None:
        if mode not in ADVERSARY_MODES:
            raise InvalidArgumentError(f"unknown liar mode {mode!r}")
        self.inner = inner
        self.me = me
        self.colluders = colluders
        self.k = k
        self.mode = mode
        self._out: list[tuple[Any, Any]] = []
        self.lies_told = 0

    def receive(self, peer: Any, message: Any, now: float) -> None:
        if isinstance(message, m.FindNode | m.FindValue | m.GetProviders):
            self.lies_told += 1
            if self.mode == "silent":
                return
            target = message.target if isinstance(message, m.FindNode) else message.key
            lies = self.colluders.lie(target, self.k, self.mode, self.me)
            me = self.me
            if isinstance(message, m.FindNode):
                reply: Any = m.Nodes(message.rpc_id, me, lies)
            elif isinstance(message, m.FindValue):
                reply = m.Value(message.rpc_id, me, forge_record(message.key), lies)
            else:
                reply = m.Providers(message.rpc_id, me, (), lies)
            self._out.append((peer, reply))
            return
        self.inner.receive(peer, message, now)

    def messages_to_send(self) -> list[tuple[Any, Any]]:
        out = self.inner.messages_to_send()
        if self._out:
            out = list(out) + self._out
            self._out = []
        return out

    def __getattr__(self, name: str) -> Any:
        # delivery_failed, handle_timer, get_timer, next_event, bootstrap, leave, ...
        return getattr(self.inner, name)


def pick_fraction(rng: random.Random, items: Sequence[Any], fraction: float) -> list[Any]:
    """A seeded random subset of ``round(fraction * len(items))`` items (order kept)."""
    if not 0.0 <= fraction <= 1.0:
        raise InvalidArgumentError(f"fraction must be in [0, 1]: {fraction}")
    n = round(fraction * len(items))
    chosen = set(rng.sample(range(len(items)), n))
    return [x for i, x in enumerate(items) if i in chosen]


def churn_plan(
    rng: random.Random, start: float, window: float, departures: int, graceful: float = 0.5
) -> list[tuple[float, str]]:
    """Times and kinds of churn events: ``departures`` leaves/crashes, as many joins.

    Departures are uniform over the window; each is a graceful ``leave`` with
    probability ``graceful``, else a ``crash``. Each departure is matched by a
    ``join`` at an independent uniform time, so the population stays about level.
    """
    plan: list[tuple[float, str]] = []
    for _ in range(departures):
        kind = "leave" if rng.random() < graceful else "crash"
        plan.append((start + rng.random() * window, kind))
        plan.append((start + rng.random() * window, "join"))
    plan.sort()
    return plan
