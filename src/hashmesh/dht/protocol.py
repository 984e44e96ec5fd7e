"""The sans-I/O Kademlia core: one node's brain, driven by its caller.

Driver loop: feed input (:meth:`Protocol.receive`, :meth:`Protocol.delivery_failed`,
:meth:`Protocol.handle_timer`, or an API call) -> drain :meth:`Protocol.messages_to_send`
-> deliver -> re-arm one timer at :meth:`Protocol.get_timer` -> pop :meth:`Protocol.next_event`.

Invariants
----------
- Nothing here touches the world: time arrives as ``now``, randomness from the injected rng.
- Every request we send has a deadline ``now + request_timeout``; a response is accepted only
  from the peer it was sent to, with the one response type legal for the request.
- A message is dropped unless its sender's id is BLAKE3 of its key and the key is the one the
  transport authenticated. Senders whose id fails the puzzle are served but never admitted.
- A full bucket makes us ping its head; the head is evicted only after ``max_failures``
  consecutive failures (re-pinged after each), never on one timeout.
- Each public API call returns an op id and later yields exactly one event with it.
- Republishing by holders does one lookup per keyspace region (keys sharing a prefix as long as
  our own neighbourhood's), and skips keys a peer re-stored to us within the last interval.
- Batched calls (``lookup_many``, ``get_many``, ``put_many``, ``provide_many``) run one lookup
  per key (per keyspace region for puts and provides), but send each step's queries to a peer
  as one ``FindMany`` and each peer's records as ``StoreMany`` (keys as ``ProvideMany``)
  requests; their answers are credited only to the keys they were asked for.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable, Sequence

from hashmesh.config import DhtConfig
from hashmesh.dht import events as ev
from hashmesh.dht.batching import BatchCalls, check_keys
from hashmesh.dht.codec import MAX_PEERS, MAX_PROVIDERS
from hashmesh.dht.lookup import Lookup
from hashmesh.dht.messages import (
    RESPONSE_FOR,
    AddProvider,
    FindMany,
    FindNode,
    FindValue,
    GetProviders,
    Message,
    Nodes,
    PeerInfo,
    Ping,
    Pong,
    ProvideMany,
    Providers,
    Store,
    StoreAck,
    StoreMany,
    Value,
    peer_id_ok,
    peer_puzzle_ok,
)
from hashmesh.dht.ops import (
    BOOTSTRAP,
    FIND_PROVIDERS,
    GET,
    LOOKUP,
    PROVIDE,
    PROVIDE_MANY,
    PUT,
    PUT_MANY,
    QUERY,
    REFRESH,
    REPUBLISH,
    Op,
    Rpc,
    store_batches,
)
from hashmesh.dht.records import ProviderRecord, Record, RecordStore, SignedRecord, validate
from hashmesh.dht.routing import RoutingTable
from hashmesh.errors import RecordError
from hashmesh.ids import NodeId

MAX_PEERS_PER_RESPONSE = MAX_PEERS
ORIGINATOR_BATCH = 4096  # records or provided keys per batched originator republish
_U64 = (1 << 64) - 1


class Protocol(BatchCalls):
    """One Kademlia node's brain: feed it input, drain its output."""

    def __init__(
        self,
        me: PeerInfo,
        config: DhtConfig,
        rng: random.Random,
        *,
        sign: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.me = me
        self.config = config
        self.rng = rng
        self.sign = sign
        self.routing_table = RoutingTable(me.node_id, config)
        self.records = RecordStore(config.max_records, config.max_providers_per_key)
        self._out: list[tuple[PeerInfo, Message]] = []
        self._events: deque[ev.Event] = deque()
        self._ops: dict[int, Op] = {}
        self._pending: dict[int, Rpc] = {}
        self._timers: list[tuple[float, int]] = []
        self._hedges: list[tuple[float, int]] = []  # (when, op) of gets asking one peer
        self._pinging: set[bytes] = set()
        self._head_ping_due: dict[int, float] = {}  # bucket index -> next head ping allowed
        self._originated: dict[bytes, Record] = {}
        self._region_cache: dict[tuple[int, int], tuple[float, list[PeerInfo]]] = {}
        self._provided: set[bytes] = set()
        self._next_op = 1
        self._next_rpc = 0
        self._started = False
        self._left = False
        self._next_maint = self._next_republish = self._next_orig = float("inf")
        self._resp_peers = min(config.k, MAX_PEERS_PER_RESPONSE)

    # --- read-only views ---------------------------------------------------

    @property
    def node_id(self) -> NodeId:
        return self.me.node_id

    def peers(self) -> list[PeerInfo]:
        return list(self.routing_table.peers())

    @property
    def pending_requests(self) -> int:
        return len(self._pending)

    # --- outputs -------------------------------------------------------------

    def messages_to_send(self) -> list[tuple[PeerInfo, Message]]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> ev.Event | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        timers, pending = self._timers, self._pending
        while timers and timers[0][1] not in pending:
            heapq.heappop(timers)
        t = timers[0][0] if timers else float("inf")
        hedges = self._hedges
        while hedges and not self._narrow(hedges[0][1]):
            heapq.heappop(hedges)
        if hedges:
            t = min(t, hedges[0][0])
        t = min(t, self._next_maint)
        return None if t == float("inf") else t

    # --- inputs --------------------------------------------------------------

    def receive(self, peer: PeerInfo, message: Message, now: float) -> None:
        """Handle one message that ``peer`` (as authenticated by the transport) sent us."""
        if self._left:
            return
        sender = message.sender
        if sender is not peer and sender.public_key != peer.public_key:
            return
        if not peer_id_ok(sender):
            return
        self._start(now)
        if peer_puzzle_ok(sender, self.config.puzzle_difficulty):
            head = self.routing_table.update(sender, now)
            if head is not None:
                self._ping_head(head, now)
        handler = _HANDLERS.get(type(message))
        if handler is not None:
            self._out.append((peer, handler(self, sender, message, now)))
            return
        rpc = self._pending.get(message.rpc_id)
        if rpc is None or rpc.peer.node_id.value != sender.node_id.value:
            return
        if type(message) is not RESPONSE_FOR[rpc.request]:
            return
        del self._pending[message.rpc_id]
        self._on_response(rpc, message, now)

    def delivery_failed(self, peer: PeerInfo, rpc_id: int, now: float) -> None:
        """The transport could not deliver request ``rpc_id``: fail it now."""
        rpc = self._pending.get(rpc_id)
        if rpc is not None and rpc.peer.node_id.value == peer.node_id.value:
            del self._pending[rpc_id]
            self._on_failure(rpc, now)

    def handle_timer(self, now: float) -> None:
        """Expire requests past their deadline and run due maintenance."""
        if self._left:
            return
        timers, pending = self._timers, self._pending
        while timers and timers[0][0] <= now:
            _, rid = heapq.heappop(timers)
            rpc = pending.pop(rid, None)
            if rpc is not None:
                self._on_failure(rpc, now)
        hedges = self._hedges
        while hedges and hedges[0][0] <= now:
            _, oid = heapq.heappop(hedges)
            if self._narrow(oid):  # its first peer is slow: ask the next ones too
                op = self._ops[oid]
                if op.batch is not None:
                    self._pump_batch(op, op.batch.hedge(), now)
                elif op.lookup is not None:
                    op.lookup.widen()
                    self._pump(op, now)
        if now >= self._next_maint:
            self._maintain(now)

    # --- API -----------------------------------------------------------------

    def bootstrap(self, seeds: Sequence[PeerInfo], now: float) -> int:
        """Join via ``seeds``: add them, look up our own id (then refresh far buckets)."""
        self._start(now)
        for s in seeds:
            if s.node_id != self.me.node_id and peer_id_ok(s):
                self.routing_table.update(s, now)
        return self._begin(BOOTSTRAP, self.me.node_id.value, now, public=True).op

    def add_contact(self, peer: PeerInfo, now: float) -> bool:
        """Put a known-good ``peer`` in the routing table without any traffic (seeding, oracles).

        Full buckets are left alone (no ping, no eviction). True if the peer is now held.
        """
        if self._left or not peer_id_ok(peer):
            return False
        self._start(now)
        rt = self.routing_table
        if rt.get(peer.node_id.value) is None and len(rt.bucket(rt.index_of(peer.id))) >= rt.k:
            return False
        rt.update(peer, now)
        return rt.get(peer.node_id.value) is not None

    def lookup(self, target: bytes, now: float) -> int:
        """Find the k closest peers to ``target`` -> :class:`LookupDone`."""
        check_keys((target,))
        self._start(now)
        return self._begin(LOOKUP, target, now, public=True).op

    def put(self, record: Record, now: float) -> int:
        """Store ``record`` at the k closest peers -> :class:`PutDone`. RecordError if invalid."""
        validate(record, now)
        self._start(now)
        self._originated[record.key] = record
        op = self._begin(PUT, record.key, now, public=True, record=record)
        return op.op

    def get(self, key: bytes, now: float) -> int:
        """Find a valid record under ``key`` -> :class:`GetDone` (local copy first)."""
        check_keys((key,))
        self._start(now)
        local = self.records.get(key, now)
        if local is not None:
            op = self._new_op(GET, public=True)
            self._events.append(ev.GetDone(op.op, local, 0, 0))
            return op.op
        hedge = self.config.get_hedge
        if hedge <= 0:
            return self._begin(GET, key, now, public=True).op
        # The closest known peer alone first: in a settled network it holds the value,
        # and one request does what alpha would. Any answer without the value, a
        # failure, or ``get_hedge`` seconds of silence bring in the next ones.
        op = self._begin(GET, key, now, public=True, first=1)
        if op.lookup is not None and op.lookup.narrow and op.op in self._ops:
            heapq.heappush(self._hedges, (now + hedge, op.op))
        return op.op

    def provide(self, key: bytes, now: float) -> int:
        """Announce ourselves as a provider of ``key`` -> :class:`ProvideDone`."""
        check_keys((key,))
        self._start(now)
        self._provided.add(key)
        return self._begin(PROVIDE, key, now, public=True).op

    def find_providers(self, key: bytes, now: float) -> int:
        """Find providers of ``key`` -> :class:`ProvidersFound`."""
        check_keys((key,))
        self._start(now)
        op = self._begin(FIND_PROVIDERS, key, now, public=True, found=True)
        return op.op

    def make_signed(self, salt: bytes, seq: int, value: bytes, now: float) -> SignedRecord:
        """A record signed with our key, expiring ``record_ttl`` from ``now`` (needs ``sign``)."""
        if self.sign is None:
            raise RecordError("this node has no signing key")
        exp = now + self.config.record_ttl
        return SignedRecord.create(self.me.public_key, salt, seq, exp, value, self.sign)

    def leave(self, now: float) -> None:
        """Hand every live record to the closest peers we know (one StoreMany batch per
        peer), then go quiet."""
        k = self.config.k
        me = self.me.node_id.value
        held = dict(self.records.items(now))
        for key, rec in self._originated.items():
            held.setdefault(key, rec)
        batches: dict[bytes, tuple[PeerInfo, list[tuple[Record, float]]]] = {}
        for key, rec in held.items():
            ttl = self.records.remaining(key, now) or self.config.record_ttl
            for peer in self.routing_table.closest(key, k, exclude=me):
                batches.setdefault(peer.node_id.value, (peer, []))[1].append((rec, ttl))
        self._send_store_many(batches)
        self._left = True
        self._pending.clear()
        self._timers.clear()
        self._next_maint = float("inf")

    # --- request handlers (we are the server) -------------------------------

    def _closest_for(self, target: bytes, requester: PeerInfo) -> tuple[PeerInfo, ...]:
        rt = self.routing_table
        return tuple(rt.closest(target, self._resp_peers, exclude=requester.node_id.value))

    def _on_ping(self, sender: PeerInfo, m: Ping, now: float) -> Message:
        return Pong(m.rpc_id, self.me)

    def _on_find_node(self, sender: PeerInfo, m: FindNode, now: float) -> Message:
        return Nodes(m.rpc_id, self.me, self._closest_for(m.target, sender))

    def _on_find_value(self, sender: PeerInfo, m: FindValue, now: float) -> Message:
        rec = self.records.get(m.key, now)
        if rec is not None:
            return Value(m.rpc_id, self.me, rec, ())
        return Value(m.rpc_id, self.me, None, self._closest_for(m.key, sender))

    def _on_store(self, sender: PeerInfo, m: Store, now: float) -> Message:
        cap = self.config.record_ttl
        ttl = min(m.ttl, cap) if m.ttl > 0 else cap
        try:
            self.records.put(m.record, now, ttl, received=True)
        except RecordError as exc:
            return StoreAck(m.rpc_id, self.me, False, str(exc))
        return StoreAck(m.rpc_id, self.me, True)

    def _on_store_many(self, sender: PeerInfo, m: StoreMany, now: float) -> Message:
        cap = self.config.record_ttl
        refused = ""
        for record, ttl in m.items:
            try:
                self.records.put(record, now, min(ttl, cap) if ttl > 0 else cap, received=True)
            except RecordError as exc:
                refused = refused or str(exc)
        return StoreAck(m.rpc_id, self.me, not refused, refused)

    def _on_add_provider(self, sender: PeerInfo, m: AddProvider, now: float) -> Message:
        if m.provider.public_key != sender.public_key or m.provider.node_id != sender.node_id:
            return StoreAck(m.rpc_id, self.me, False, "provider must be the sender")
        return self._add_providers(m.rpc_id, sender, (m.key,), m.expires, now)

    def _on_provide_many(self, sender: PeerInfo, m: ProvideMany, now: float) -> Message:
        return self._add_providers(m.rpc_id, sender, m.keys, m.expires, now)

    def _add_providers(
        self, rpc_id: int, sender: PeerInfo, keys: Sequence[bytes], expires: float, now: float
    ) -> Message:
        """Hold ``sender`` as a provider of each key; ok if all were accepted."""
        expires = min(expires, now + self.config.provider_ttl)
        refused = ""
        for key in keys:
            try:
                self.records.add_provider(ProviderRecord(key, sender, expires), now)
            except RecordError as exc:
                refused = refused or str(exc)
        return StoreAck(rpc_id, self.me, not refused, refused)

    def _on_get_providers(self, sender: PeerInfo, m: GetProviders, now: float) -> Message:
        provs = tuple(self.records.providers(m.key, now, MAX_PROVIDERS))
        return Providers(m.rpc_id, self.me, provs, self._closest_for(m.key, sender))

    # --- operations -----------------------------------------------------------

    def _narrow(self, op_id: int) -> bool:
        """Whether get ``op_id`` may still wait on a first peer (its hedge matters)."""
        op = self._ops.get(op_id)
        if op is None:
            return False
        if op.batch is not None:
            return not op.batch.finished
        return op.lookup is not None and op.lookup.narrow

    def _start(self, now: float) -> None:
        if self._started:
            return
        self._started = True
        cfg = self.config
        self._next_republish = now + cfg.republish_interval * (0.9 + 0.2 * self.rng.random())
        self._next_orig = now + cfg.originator_republish_interval * (0.9 + 0.2 * self.rng.random())
        self._next_maint = min(self._next_republish, now + cfg.bucket_refresh_interval)

    def _rpc_id(self) -> int:
        if not self._next_rpc:
            self._next_rpc = self.rng.getrandbits(48) | 1
        self._next_rpc = (self._next_rpc + 1) & _U64
        return self._next_rpc

    def _new_op(self, purpose: int, public: bool) -> Op:
        op = Op(self._next_op, purpose, public)
        self._next_op += 1
        return op

    def _begin(
        self,
        purpose: int,
        target: bytes,
        now: float,
        *,
        public: bool,
        record: Record | None = None,
        keys: list[bytes] | None = None,
        found: bool = False,
        first: int | None = None,
    ) -> Op:
        op = self._new_op(purpose, public)
        op.record = record
        op.keys = keys
        if found:
            op.found = {}
        cfg = self.config
        paths = cfg.disjoint_paths
        rt = self.routing_table
        rt.touch_bucket(target, now)
        seeds = rt.closest(target, cfg.k * paths if paths > 1 else cfg.k)
        op.lookup = Lookup(
            target,
            seeds,
            k=cfg.k,
            alpha=cfg.alpha,
            paths=paths,
            exclude=self.me.node_id.value,
            first=first,
        )
        self._ops[op.op] = op
        self._pump(op, now)
        return op

    def _pump(self, op: Op, now: float) -> None:
        lk = op.lookup
        if lk is None:
            return
        query = QUERY.get(op.purpose, FindNode)
        for peer in lk.next_queries():
            self._request(peer, query(self._rpc_id(), self.me, lk.target), op.op, now)
        if lk.finished:
            self._lookup_finished(op, now)

    def _request(self, peer: PeerInfo, msg: Message, op: int, now: float) -> None:
        deadline = now + self.config.request_timeout
        self._pending[msg.rpc_id] = Rpc(peer, type(msg), op, deadline, msg.rpc_id)
        heapq.heappush(self._timers, (deadline, msg.rpc_id))
        self._out.append((peer, msg))

    def _ping_head(self, head: PeerInfo, now: float, retry: bool = False) -> None:
        """Ping a full bucket's least-recently-seen head (at most once per bucket per
        ``head_ping_interval``): newcomers wait in the replacement cache meanwhile, so a
        busy network does not turn every new contact into a ping chain."""
        hid = head.node_id.value
        index = self.me.node_id.distance(head.node_id).bit_length() - 1
        if not retry and now < self._head_ping_due.get(index, float("-inf")):
            return
        self._head_ping_due[index] = now + self.config.head_ping_interval
        if hid not in self._pinging:
            self._pinging.add(hid)
            self._request(head, Ping(self._rpc_id(), self.me), 0, now)

    def _on_response(self, rpc: Rpc, m: Message, now: float) -> None:
        if rpc.op == 0:
            self._pinging.discard(rpc.peer.node_id.value)
            return
        op = self._ops.get(rpc.op)
        if op is None:
            return
        if op.batch is not None:
            self._on_batch_response(op, rpc, m, now)
            return
        nid = rpc.peer.node_id.value
        if op.lookup is not None and op.waiting == 0:
            lk = op.lookup
            if isinstance(m, Value) and m.record is not None:
                try:
                    validate(m.record, now, lk.target)
                except RecordError:
                    lk.on_failure(nid)
                else:
                    self._value_found(op, m.record, nid, now)
                    return
            elif isinstance(m, Providers) and op.found is not None:
                for p in m.providers:
                    if peer_id_ok(p):
                        op.found.setdefault(p.node_id.value, p)
            if isinstance(m, Nodes | Value | Providers):
                lk.on_response(nid, (p for p in m.peers if peer_id_ok(p)))
            if op.found is not None and len(op.found) >= self.config.k:
                self._lookup_finished(op, now)
            else:
                self._pump(op, now)
        elif isinstance(m, StoreAck):
            op.found = op.found or {}
            if m.ok:
                op.found[nid] = rpc.peer
            self._ack_done(op)

    def _on_failure(self, rpc: Rpc, now: float) -> None:
        nid = rpc.peer.node_id.value
        evicted = self.routing_table.record_failure(nid, now)
        if rpc.op == 0:
            self._pinging.discard(nid)
            if not evicted and self.routing_table.get(nid) is not None:
                self._ping_head(rpc.peer, now, retry=True)  # keep probing a failing head
            return
        op = self._ops.get(rpc.op)
        if op is None:
            return
        if op.batch is not None:
            self._on_batch_response(op, rpc, None, now)
            return
        if rpc.request is Store or rpc.request is AddProvider:
            if op.waiting:
                self._ack_done(op)
        elif op.lookup is not None and not op.waiting:
            op.lookup.on_failure(nid)
            self._pump(op, now)

    def _ack_done(self, op: Op) -> None:
        op.waiting -= 1
        if op.waiting <= 0:
            del self._ops[op.op]
            if op.public:
                lk = op.lookup
                n = len(op.found or ())
                hops, msgs = (lk.hops(), lk.messages) if lk else (0, 0)
                cls = ev.PutDone if op.purpose == PUT else ev.ProvideDone
                self._events.append(cls(op.op, n, hops, msgs))

    def _value_found(self, op: Op, record: Record, source: bytes, now: float) -> None:
        lk = op.lookup
        if lk is None:
            return
        del self._ops[op.op]
        for c in lk.answered():
            if c.peer.node_id.value != source:
                self._out.append((c.peer, Store(self._rpc_id(), self.me, record, 0.0)))
                break
        if op.public:
            self._events.append(ev.GetDone(op.op, record, lk.depth_of(source), lk.messages))

    def _lookup_finished(self, op: Op, now: float) -> None:
        lk = op.lookup
        if lk is None:
            return
        if self._ops.get(op.op) is not op or op.waiting:
            return
        closest = lk.closest()
        p = op.purpose
        if p in (PUT, PROVIDE):
            self._store_phase(op, closest, now)
            return
        del self._ops[op.op]
        if p == REPUBLISH:
            self._republish_region(op, closest, now)
        elif p == BOOTSTRAP:
            if self.config.refresh_on_join:
                self._refresh_far(now)
            self._events.append(
                ev.BootstrapDone(op.op, len(self.routing_table), lk.hops(), lk.messages)
            )
        elif not op.public:
            return
        elif p == LOOKUP:
            self._events.append(ev.LookupDone(op.op, closest, lk.hops(), lk.messages))
        elif p == GET:
            self._events.append(ev.GetDone(op.op, None, lk.hops(), lk.messages))
        elif p == FIND_PROVIDERS:
            found = list((op.found or {}).values())
            self._events.append(ev.ProvidersFound(op.op, found, lk.hops(), lk.messages))

    def _is_mine(self, key: bytes, closest: list[PeerInfo]) -> bool:
        """True if we are among the k closest to ``key`` (``closest``: the others)."""
        if len(closest) < self.config.k:
            return True
        t = int.from_bytes(key, "big")
        mine = int.from_bytes(self.me.node_id.value, "big") ^ t
        return mine < int.from_bytes(closest[-1].node_id.value, "big") ^ t

    def _store_phase(self, op: Op, closest: list[PeerInfo], now: float) -> None:
        key = op.lookup.target  # type: ignore[union-attr]
        me = self.me
        mine = self._is_mine(key, closest)
        op.found = {}
        if op.purpose == PUT:
            if op.record is None:
                return
            if mine:
                try:
                    self.records.put(op.record, now, self.config.record_ttl, received=False)
                except RecordError:
                    pass
            for peer in closest:
                self._request(peer, Store(self._rpc_id(), me, op.record), op.op, now)
        else:
            exp = now + self.config.provider_ttl
            if mine:
                try:
                    self.records.add_provider(ProviderRecord(key, me, exp), now)
                except RecordError:
                    pass
            for peer in closest:
                self._request(peer, AddProvider(self._rpc_id(), me, key, me, exp), op.op, now)
        op.waiting = len(closest) + 1
        self._ack_done(op)  # the +1 makes an empty store phase finish at once

    # --- maintenance ----------------------------------------------------------

    def _refresh_far(self, now: float) -> None:
        rt = self.routing_table
        low = rt.lowest_nonempty()
        if low < 0:
            return
        for i in range(low + 1, 256):
            self._begin(REFRESH, rt.random_id_in_bucket(i, self.rng), now, public=False)

    def _maintain(self, now: float) -> None:
        cfg = self.config
        rt = self.routing_table
        for i in rt.stale_buckets(now):
            self._begin(REFRESH, rt.random_id_in_bucket(i, self.rng), now, public=False)
        self.records.expire(now)
        if now >= self._next_republish:
            self._next_republish = now + cfg.republish_interval
            self._republish(now)
        if now >= self._next_orig:
            self._next_orig = now + cfg.originator_republish_interval
            # batched like put_many / provide_many: one lookup per region, not per key
            live = [
                rec
                for rec in self._originated.values()
                if not (isinstance(rec, SignedRecord) and rec.expires <= now)
            ]
            for n in range(0, len(live), ORIGINATOR_BATCH):
                recs = live[n : n + ORIGINATOR_BATCH]
                self._begin_regions(PUT_MANY, [r.key for r in recs], now, recs, public=False)
            provided = list(self._provided)
            for n in range(0, len(provided), ORIGINATOR_BATCH):
                keys = provided[n : n + ORIGINATOR_BATCH]
                self._begin_regions(PROVIDE_MANY, keys, now, public=False)
        self._next_maint = max(
            now + 1.0, min(rt.next_refresh_due(), self._next_republish, self._next_orig)
        )

    def _region_bits(self) -> int:
        """Prefix length of a keyspace region: as long as our k-neighbourhood's shared prefix."""
        me = self.me.node_id.value
        near = self.routing_table.closest(me, self.config.k)
        if len(near) < self.config.k:
            return 0
        d = int.from_bytes(me, "big") ^ int.from_bytes(near[-1].node_id.value, "big")
        return max(0, 256 - d.bit_length())

    def _republish(self, now: float) -> None:
        interval = self.config.republish_interval
        bits = self._region_bits()
        regions: dict[int, list[bytes]] = {}
        for key, _ in self.records.items(now):
            if key in self._originated or now - self.records.received_at(key) < interval:
                continue  # originator handles its own; a peer republished this recently
            regions.setdefault(int.from_bytes(key, "big") >> (256 - bits), []).append(key)
        for keys in regions.values():
            self._begin(REPUBLISH, keys[0], now, public=False, keys=keys)

    def _republish_region(self, op: Op, closest: list[PeerInfo], now: float) -> None:
        lk = op.lookup
        if lk is None:
            return
        region = (lk.target, [c.peer for c in lk.known()])
        (pool,) = self._region_pools([region], self._region_bits())
        k = self.config.k
        me = self.me.node_id.value
        batches: dict[bytes, tuple[PeerInfo, list[tuple[Record, float]]]] = {}
        for key in op.keys or ():
            rec = self.records.get(key, now)
            if rec is None:
                continue
            ttl = self.records.remaining(key, now)
            t = int.from_bytes(key, "big")
            for _, peer in heapq.nsmallest(k, pool, key=lambda e: e[0] ^ t):
                if peer.node_id.value != me:
                    batches.setdefault(peer.node_id.value, (peer, []))[1].append((rec, ttl))
        self._send_store_many(batches)

    def _send_store_many(
        self, batches: dict[bytes, tuple[PeerInfo, list[tuple[Record, float]]]]
    ) -> None:
        """One StoreMany per peer (split by count and value bytes), not one Store per record."""
        for peer, items in batches.values():
            for run in store_batches(items, lambda item: item[0]):
                self._out.append((peer, StoreMany(self._rpc_id(), self.me, tuple(run))))


_HANDLERS: dict[type, Callable[[Protocol, PeerInfo, Message, float], Message]] = {
    Ping: Protocol._on_ping,  # type: ignore[dict-item]
    FindNode: Protocol._on_find_node,  # type: ignore[dict-item]
    FindValue: Protocol._on_find_value,  # type: ignore[dict-item]
    Store: Protocol._on_store,  # type: ignore[dict-item]
    StoreMany: Protocol._on_store_many,  # type: ignore[dict-item]
    AddProvider: Protocol._on_add_provider,  # type: ignore[dict-item]
    ProvideMany: Protocol._on_provide_many,  # type: ignore[dict-item]
    GetProviders: Protocol._on_get_providers,  # type: ignore[dict-item]
    FindMany: Protocol._on_find_many,  # type: ignore[dict-item]
}

__all__ = ["MAX_PEERS_PER_RESPONSE", "Protocol"]
