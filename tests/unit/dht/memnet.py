"""A tiny deterministic in-memory driver for DHT cores (test helper, not a test).

Messages are delivered after a fixed delay; timers live in one heap; everything
is ordered by (time, sequence number), so a seed fixes the whole run.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable

from hashmesh.config import DhtConfig
from hashmesh.dht import PeerInfo, Protocol
from hashmesh.dht.events import Event
from hashmesh.identity import Identity
from hashmesh.ids import distance


def host_for(i: int) -> str:
    """A distinct fake /24 per node (so diversity limits do not bite)."""
    return f"10.{(i >> 8) & 255}.{i & 255}.1"


class MemNet:
    """``n`` Protocol cores wired together in memory."""

    def __init__(
        self,
        n: int,
        seed: int,
        config: DhtConfig | None = None,
        *,
        delay: float = 0.01,
        signing: bool = False,
    ) -> None:
        self.rng = random.Random(seed)
        self.config = config or DhtConfig(k=8, alpha=3, request_timeout=1.0)
        self.delay = delay
        self.now = 0.0
        self._seq = 0
        self._heap: list[tuple[float, int, str, object]] = []
        self._armed: dict[bytes, float] = {}
        self.nodes: dict[bytes, Protocol] = {}
        self.infos: list[PeerInfo] = []
        self.dead: set[bytes] = set()
        self.events: dict[bytes, list[Event]] = {}
        self.delivered = 0
        self.identities: dict[bytes, Identity] = {}
        for i in range(n):
            self.add_node(i, signing=signing)

    def add_node(self, i: int, *, signing: bool = False) -> Protocol:
        raw = self.rng.randbytes(32)
        sign = None
        if signing:
            ident = Identity.from_private_bytes(raw)
            pk, sign = ident.public_key, ident.sign
        else:
            pk = raw
        info = PeerInfo.make(pk, host_for(i), 7000 + i % 1000)
        proto = Protocol(info, self.config, random.Random(self.rng.getrandbits(64)), sign=sign)
        if signing:
            self.identities[info.id] = ident
        self.nodes[info.id] = proto
        self.infos.append(info)
        self.events[info.id] = []
        return proto

    def proto(self, i: int) -> Protocol:
        return self.nodes[self.infos[i].id]

    # --- driving ------------------------------------------------------------

    def _push(self, t: float, kind: str, item: object) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, kind, item))

    def pump(self, proto: Protocol) -> None:
        """Drain one core's outputs after an input."""
        src = proto.me
        for dest, msg in proto.messages_to_send():
            self._push(self.now + self.delay, "msg", (src, dest, msg))
        while (e := proto.next_event()) is not None:
            self.events[src.id].append(e)
        t = proto.get_timer()
        if t is not None and self._armed.get(src.id) != t:
            self._armed[src.id] = t
            self._push(max(t, self.now), "timer", (proto, t))

    def run(self, until: float | None = None, max_steps: int = 2_000_000) -> None:
        """Process queued work up to time ``until`` (or until idle)."""
        for _ in range(max_steps):
            if not self._heap or (until is not None and self._heap[0][0] > until):
                break
            t, _, kind, item = heapq.heappop(self._heap)
            self.now = max(self.now, t)
            if kind == "msg":
                src, dest, msg = item  # type: ignore[misc]
                proto = self.nodes.get(dest.id)
                if proto is None or dest.id in self.dead or src.id in self.dead:
                    continue
                self.delivered += 1
                proto.receive(src, msg, self.now)
                self.pump(proto)
            else:
                proto, armed = item  # type: ignore[misc]
                if proto.me.id in self.dead or self._armed.get(proto.me.id) != armed:
                    continue
                self._armed.pop(proto.me.id, None)
                proto.handle_timer(self.now)
                self.pump(proto)
        else:
            raise AssertionError("simulation did not settle")
        if until is not None:
            self.now = max(self.now, until)

    def call(self, i: int, method: str, *args: object) -> int:
        proto = self.proto(i)
        op = getattr(proto, method)(*args, self.now)
        self.pump(proto)
        return op

    def result(self, i: int, op: int, until: float | None = None) -> Event:
        """Run until op ``op`` of node ``i`` reports; return its event."""
        nid = self.infos[i].id
        deadline = self.now + 120.0 if until is None else until
        while True:
            for e in self.events[nid]:
                if e.op == op:
                    return e
            if not self._heap or self._heap[0][0] > deadline:
                raise AssertionError(f"op {op} of node {i} did not finish")
            self.run(until=min(deadline, self._heap[0][0]))

    def bootstrap_all(self, seed_count: int = 1) -> None:
        """Join every node one by one through node 0."""
        first = self.infos[0]
        for i in range(1, len(self.infos)):
            op = self.call(i, "bootstrap", [first][:seed_count])
            self.result(i, op)

    def kill(self, ids: Iterable[bytes]) -> None:
        self.dead.update(ids)

    def true_closest(self, target: bytes, count: int, exclude: bytes | None = None) -> list[bytes]:
        ids = [p.id for p in self.infos if p.id not in self.dead and p.id != exclude]
        ids.sort(key=lambda x: distance(x, target))
        return ids[:count]
