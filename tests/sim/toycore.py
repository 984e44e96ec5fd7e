"""A throwaway minimal Kademlia core with the dht.Protocol driver surface.

Only for testing the simulator's machinery independently of the real core: it
uses the real routing table and messages, does iterative FIND_NODE lookups with
alpha in flight and per-request timeouts, and nothing else (put/get complete at
once with nothing).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence

from hashmesh.config import DhtConfig
from hashmesh.dht import events as ev
from hashmesh.dht import messages as m
from hashmesh.dht.records import RecordStore
from hashmesh.dht.routing import RoutingTable


class _Lookup:
    def __init__(self, op: int, target: bytes, kind: str) -> None:
        self.op, self.target, self.kind = op, int.from_bytes(target, "big"), kind
        self.raw_target = target
        self.cands: dict[bytes, tuple[m.PeerInfo, int]] = {}  # id -> (peer, depth)
        self.state: dict[bytes, str] = {}  # queried / ok / failed
        self.inflight = 0
        self.messages = 0

    def dist(self, nid: bytes) -> int:
        return int.from_bytes(nid, "big") ^ self.target


class ToyCore:
    def __init__(self, me: m.PeerInfo, config: DhtConfig, rng: random.Random, **_: object):
        self.me, self.config, self.rng = me, config, rng
        self.routing_table = RoutingTable(me.node_id, config)
        self.records = RecordStore(10, 10)
        self._out: list[tuple[m.PeerInfo, object]] = []
        self._events: deque[object] = deque()
        self._rpcs: dict[int, tuple[_Lookup, bytes, float]] = {}
        self._op = 0

    def _new_op(self) -> int:
        self._op += 1
        return self._op

    def receive(self, peer: m.PeerInfo, msg: object, now: float) -> None:
        self.routing_table.update(peer, now)
        if isinstance(msg, m.Ping):
            self._out.append((peer, m.Pong(msg.rpc_id, self.me)))
        elif isinstance(msg, m.FindNode):
            near = self.routing_table.closest(msg.target, self.config.k, exclude=peer.id)
            self._out.append((peer, m.Nodes(msg.rpc_id, self.me, tuple(near))))
        elif isinstance(msg, m.Nodes):
            entry = self._rpcs.pop(msg.rpc_id, None)
            if entry is not None:
                lk, nid, _ = entry
                lk.inflight -= 1
                lk.state[nid] = "ok"
                depth = lk.cands[nid][1]
                for p in msg.peers:
                    if p.id != self.me.id and p.id not in lk.cands:
                        lk.cands[p.id] = (p, depth + 1)
                self._step(lk, now)

    def delivery_failed(self, peer: m.PeerInfo, rpc_id: int, now: float) -> None:
        self._fail(rpc_id, now)

    def _fail(self, rpc_id: int, now: float) -> None:
        entry = self._rpcs.pop(rpc_id, None)
        if entry is not None:
            lk, nid, _ = entry
            lk.inflight -= 1
            lk.state[nid] = "failed"
            self._step(lk, now)

    def handle_timer(self, now: float) -> None:
        for rpc_id in [r for r, e in self._rpcs.items() if e[2] <= now]:
            self._fail(rpc_id, now)

    def _step(self, lk: _Lookup, now: float) -> None:
        k = self.config.k
        order = sorted((c for c in lk.cands if lk.state.get(c) != "failed"), key=lk.dist)[:k]
        todo = [c for c in order if c not in lk.state]
        while todo and lk.inflight < self.config.alpha:
            nid = todo.pop(0)
            peer = lk.cands[nid][0]
            rpc = self.rng.getrandbits(64)
            lk.state[nid] = "queried"
            lk.inflight += 1
            lk.messages += 1
            self._rpcs[rpc] = (lk, nid, now + self.config.request_timeout)
            self._out.append((peer, m.FindNode(rpc, self.me, lk.raw_target)))
        if lk.inflight == 0 and not todo:
            done = [c for c in order if lk.state.get(c) == "ok"]
            hops = max((lk.cands[c][1] for c in done[:1]), default=0)
            peers = [lk.cands[c][0] for c in done]
            if lk.kind == "boot":
                self._events.append(
                    ev.BootstrapDone(lk.op, len(self.routing_table), hops, lk.messages)
                )
            else:
                self._events.append(ev.LookupDone(lk.op, peers, hops, lk.messages))

    def _start(self, target: bytes, kind: str, seeds: Sequence[m.PeerInfo], now: float) -> int:
        lk = _Lookup(self._new_op(), target, kind)
        for p in seeds:
            lk.cands[p.id] = (p, 1)
        self._step(lk, now)
        return lk.op

    def bootstrap(self, seeds: Sequence[m.PeerInfo], now: float) -> int:
        return self._start(self.me.id, "boot", seeds, now)

    def lookup(self, target: bytes, now: float) -> int:
        return self._start(target, "lookup", self.routing_table.closest(target, self.config.k), now)

    def leave(self, now: float) -> None:
        pass

    def messages_to_send(self) -> list[tuple[m.PeerInfo, object]]:
        out, self._out = self._out, []
        return out

    def get_timer(self) -> float | None:
        return min((e[2] for e in self._rpcs.values()), default=None)

    def next_event(self) -> object | None:
        return self._events.popleft() if self._events else None
