"""Batched DHT calls (``lookup_many``, ``get_many``, ``put_many``) of the sans-I/O core.

:class:`BatchCalls` is a base of :class:`hashmesh.dht.protocol.Protocol`: the calls share
its request table, routing table and record store. Each key keeps its own lookup
(:mod:`hashmesh.dht.batch`); the queries the keys want to send to one peer go out as one
``FindMany``, in rounds, and ``put_many`` sends ``StoreMany`` requests whose
acknowledgements are counted per record. Also here: answering ``FindMany``, and the
region pools that ``put_many`` and republishing choose peers from.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

from hashmesh.config import DhtConfig
from hashmesh.dht import events as ev
from hashmesh.dht.batch import BatchLookup
from hashmesh.dht.codec import MAX_MESSAGE_BYTES, MAX_TABLE_PEERS
from hashmesh.dht.messages import (
    MAX_BATCH_KEYS,
    FindMany,
    FoundMany,
    Message,
    PeerInfo,
    ProvideMany,
    StoreAck,
    StoreMany,
)
from hashmesh.dht.ops import (
    GET_MANY,
    LOOKUP_MANY,
    PROVIDE_MANY,
    PUT_MANY,
    Op,
    Rpc,
    store_batches,
    value_bytes,
)
from hashmesh.dht.records import ProviderRecord, Record, RecordStore, validate
from hashmesh.dht.routing import RoutingTable
from hashmesh.errors import InvalidArgumentError, RecordError

# What one FoundMany may fill (estimated msgpack bytes), leaving room for its envelope.
_FOUND_MANY_BUDGET = MAX_MESSAGE_BYTES - 4096
REGION_CACHE_MAX = 4096  # regions whose put_many lookup result is remembered


def check_keys(keys: Sequence[bytes]) -> None:
    """InvalidArgumentError unless every key is 32 bytes (a DHT key, a BLAKE3 digest)."""
    for key in keys:
        if not isinstance(key, bytes) or len(key) != 32:
            raise InvalidArgumentError(f"a DHT key is 32 bytes, not {key!r:.40}")


class BatchCalls:
    """The batched calls; mixed into ``Protocol``, whose state they use."""

    me: PeerInfo
    config: DhtConfig
    routing_table: RoutingTable
    records: RecordStore
    _ops: dict[int, Op]
    _events: deque[ev.Event]
    _originated: dict[bytes, Record]
    _provided: set[bytes]
    _resp_peers: int
    _hedges: list[tuple[float, int]]  # (when, op) of gets still asking a first peer
    # (region bits, prefix) -> (expires, peers its last put_many lookup heard of)
    _region_cache: dict[tuple[int, int], tuple[float, list[PeerInfo]]]

    if TYPE_CHECKING:  # provided by Protocol

        def _start(self, now: float) -> None: ...
        def _rpc_id(self) -> int: ...
        def _new_op(self, purpose: int, public: bool) -> Op: ...
        def _request(self, peer: PeerInfo, msg: Message, op: int, now: float) -> None: ...
        def _is_mine(self, key: bytes, closest: list[PeerInfo]) -> bool: ...
        def _region_bits(self) -> int: ...

    # --- API ---------------------------------------------------------------------

    def lookup_many(self, keys: Sequence[bytes], now: float) -> int:
        """Find the k closest peers of each key, queries merged -> :class:`LookupManyDone`."""
        check_keys(keys)
        self._start(now)
        return self._begin_batch(LOOKUP_MANY, keys, now).op

    def get_many(self, keys: Sequence[bytes], now: float, progress: bool = False) -> int:
        """Find a valid record under each key (local copies first) -> :class:`GetManyDone`.

        With ``progress``, each key is also reported as soon as it is done
        (:class:`GetManyPart`), so a caller waiting for one key of a merged batch
        does not wait for the slowest key of the others."""
        check_keys(keys)
        self._start(now)
        op = self._begin_batch(GET_MANY, keys, now, local=True, progress=progress)
        return op.op

    def put_many(self, records: Sequence[Record], now: float) -> int:
        """Store each record at its k closest peers, as StoreMany batches -> :class:`PutManyDone`.

        Like republishing, one lookup per keyspace region (records whose keys share a
        prefix as long as our own neighbourhood's) finds the peers; each record goes to
        its k closest among the live peers that lookup heard of and the routing table's
        peers in the region (:meth:`_region_pools`).
        RecordError (before anything is sent) if any record is invalid.
        """
        for record in records:
            validate(record, now)
        self._start(now)
        for record in records:
            self._originated[record.key] = record
        return self._begin_regions(PUT_MANY, [r.key for r in records], now, records).op

    def provide_many(self, keys: Sequence[bytes], now: float) -> int:
        """Announce ourselves as a provider of each key at its k closest peers, as
        ProvideMany batches (regions found like :meth:`put_many`) -> :class:`ProvideManyDone`."""
        check_keys(keys)
        self._start(now)
        self._provided.update(keys)
        return self._begin_regions(PROVIDE_MANY, list(keys), now).op

    def _begin_regions(
        self,
        purpose: int,
        keys: list[bytes],
        now: float,
        records: Sequence[Record] = (),
        public: bool = True,
    ) -> Op:
        """Start a put_many / provide_many: one lookup per keyspace region not looked
        up within ``region_cache_ttl``, then the store phase (:meth:`_region_store`)."""
        bits = self._region_bits()
        regions: dict[int, int] = {}
        firsts: list[bytes] = []  # a key in each region
        region_of: list[int] = []
        for key in keys:
            prefix = int.from_bytes(key, "big") >> (256 - bits)
            if prefix not in regions:
                regions[prefix] = len(firsts)
                firsts.append(key)
            region_of.append(regions[prefix])
        cached: dict[int, list[PeerInfo]] = {}
        for prefix, j in regions.items():
            hit = self._region_cache.get((bits, prefix))
            if hit is not None and hit[0] > now:
                cached[j] = hit[1]
        targets = [key for j, key in enumerate(firsts) if j not in cached]
        op = self._begin_batch(
            purpose,
            targets,
            now,
            items=records,
            region_of=region_of,
            regions=(bits, list(regions), firsts, cached),
            public=public,
            item_keys=keys,
        )
        return op

    def _on_find_many(self, sender: PeerInfo, m: FindMany, now: float) -> Message:
        """Answer as many keys (in order) as fit one message; the requester re-asks the rest."""
        rt, records = self.routing_table, self.records
        exclude = sender.node_id.value
        table: list[PeerInfo] = []
        index: dict[bytes, int] = {}
        entries: list[tuple[Record | None, tuple[int, ...]]] = []
        used = 0
        for key in m.keys:
            rec = records.get(key, now) if m.want_values else None
            if rec is not None:
                cost = value_bytes(rec) + 320
                if entries and used + cost > _FOUND_MANY_BUDGET:
                    break
                entries.append((rec, ()))
                used += cost
                continue
            near = rt.closest(key, self._resp_peers, exclude=exclude)
            new = [p for p in near if p.node_id.value not in index]
            cost = 8 + 3 * len(near) + sum(80 + len(p.host) for p in new)
            if entries and (
                used + cost > _FOUND_MANY_BUDGET or len(table) + len(new) > MAX_TABLE_PEERS
            ):
                break
            for p in new:
                index[p.node_id.value] = len(table)
                table.append(p)
            entries.append((None, tuple(index[p.node_id.value] for p in near)))
            used += cost
        return FoundMany(m.rpc_id, self.me, tuple(table), tuple(entries))

    # --- running a batch -----------------------------------------------------------

    def _begin_batch(
        self,
        purpose: int,
        keys: Sequence[bytes],
        now: float,
        *,
        local: bool = False,
        items: Sequence[Record] = (),
        region_of: list[int] | None = None,
        regions: tuple[int, list[int], list[bytes], dict[int, list[PeerInfo]]] | None = None,
        public: bool = True,
        item_keys: list[bytes] | None = None,
        progress: bool = False,
    ) -> Op:
        op = self._new_op(purpose, public)
        op.progress = progress
        op.keys = item_keys  # put_many / provide_many: the key of each item
        op.items = list(items)
        op.region_of = region_of or []
        op.regions = regions
        cfg, rt = self.config, self.routing_table
        op.batch = batch = BatchLookup(
            keys,
            lambda key, count: rt.closest(key, count),
            k=cfg.k,
            # a value lookup ends at its first holder: asking many at once mostly repeats it
            alpha=cfg.alpha if purpose == GET_MANY else cfg.batch_alpha,
            exclude=self.me.node_id.value,
            want_values=purpose == GET_MANY,
            one_first=cfg.get_hedge > 0,
        )
        if local:
            for i, key in enumerate(batch.keys):
                rec = self.records.get(key, now)
                if rec is not None:
                    batch.finish(i, rec)
        self._ops[op.op] = op
        self._pump_batch(op, range(len(batch.keys)), now)
        if purpose == GET_MANY and cfg.get_hedge > 0 and self._ops.get(op.op) is op:
            heapq.heappush(self._hedges, (now + cfg.get_hedge, op.op))
        return op

    def _pump_batch(self, op: Op, indices: Sequence[int] | range, now: float) -> None:
        batch = op.batch
        if batch is None or op.waiting or self._ops.get(op.op) is not op:
            return  # finished, or already storing
        want = batch.want_values
        for peer, idx in batch.next_queries(indices):
            rid = self._rpc_id()
            op.parts[rid] = idx
            op.sent += 1
            keys = tuple(batch.keys[i] for i in idx)
            self._request(peer, FindMany(rid, self.me, keys, want), op.op, now)
        op.round_size = len(op.parts)
        self._report_done_keys(op)
        if batch.finished:
            self._batch_finished(op, now)

    def _report_done_keys(self, op: Op) -> None:
        """A progress get_many's :class:`GetManyPart` for each key done since the last call."""
        batch = op.batch
        if batch is None or not op.progress:
            return
        share = op.sent // max(1, len(batch.keys))
        for i in batch.take_fresh():
            self._events.append(ev.GetManyPart(op.op, i, batch.records[i], share))

    def _on_batch_response(self, op: Op, rpc: Rpc, m: Message | None, now: float) -> None:
        """An answer (``m``) or a failure (``m`` None) of one of a batched call's requests."""
        idx = op.parts.pop(rpc.rid, None)
        batch = op.batch
        if idx is None or batch is None:
            return
        if rpc.request is StoreMany or rpc.request is ProvideMany:
            if isinstance(m, StoreAck) and m.ok:
                for i in idx:
                    op.stored[i] += 1
            elif m is None:  # a peer the cached pools may hold failed: look regions up again
                self._region_cache.clear()
            self._batch_ack(op)
            return
        nid = rpc.peer.node_id.value
        if isinstance(m, FoundMany):
            batch.on_answer(nid, idx, m, lambda rec, key: self._record_ok(rec, key, now))
        else:
            batch.on_failure(nid, idx)
        self._report_done_keys(op)
        op.dirty.update(idx)
        # Rounds: the keys' next queries go out together once most of this round's answers
        # are in (so they merge into few requests); a straggler holds up only its own keys.
        if batch.finished or len(op.parts) <= op.round_size // 4:
            dirty = sorted(op.dirty)
            op.dirty.clear()
            self._pump_batch(op, dirty, now)

    def _record_ok(self, record: Record, key: bytes, now: float) -> bool:
        try:
            validate(record, now, key)
        except RecordError:
            return False
        return True

    def _batch_finished(self, op: Op, now: float) -> None:
        batch = op.batch
        assert batch is not None
        if op.purpose in (PUT_MANY, PROVIDE_MANY):
            self._region_store(op, batch, now)
            return
        del self._ops[op.op]  # answers still on their way find no operation and are dropped
        if op.purpose == GET_MANY:
            self._events.append(ev.GetManyDone(op.op, batch.records, op.sent))
        else:
            closest = [lk.closest() for lk in batch.lookups]
            self._events.append(ev.LookupManyDone(op.op, closest, op.sent))

    def _region_store(self, op: Op, batch: BatchLookup, now: float) -> None:
        """Send each record (put_many) or provider announcement (provide_many) to its
        k closest in its region's pool: one StoreMany / ProvideMany run per peer."""
        keys = op.keys or []
        op.stored = [0] * len(keys)
        op.parts.clear()  # late FindMany answers no longer matter
        per_peer: dict[bytes, tuple[PeerInfo, list[int]]] = {}
        k = self.config.k
        pools = self._op_pools(op, batch, now)
        expires = now + self.config.provider_ttl
        for i, key in enumerate(keys):
            t = int.from_bytes(key, "big")
            # a pool holds tens of peers: a C sort beats nsmallest's Python heap
            near = sorted(pools[op.region_of[i]], key=lambda e: e[0] ^ t)[:k]
            closest = [peer for _, peer in near]
            if self._is_mine(key, closest):
                try:
                    if op.purpose == PUT_MANY:
                        self.records.put(op.items[i], now, self.config.record_ttl, received=False)
                    else:
                        self.records.add_provider(ProviderRecord(key, self.me, expires), now)
                except RecordError:
                    pass
            for peer in closest:
                per_peer.setdefault(peer.node_id.value, (peer, []))[1].append(i)
        op.waiting = 1  # released below, so an empty store phase ends at once
        items = [(item, 0.0) for item in op.items] if op.purpose == PUT_MANY else []
        for peer, idx in per_peer.values():
            if op.purpose == PUT_MANY:
                runs = list(store_batches(idx, op.items.__getitem__))
            else:
                runs = [idx[n : n + MAX_BATCH_KEYS] for n in range(0, len(idx), MAX_BATCH_KEYS)]
            for run in runs:
                rid = self._rpc_id()
                op.parts[rid] = run
                op.waiting += 1
                op.sent += 1
                msg: Message
                if op.purpose == PUT_MANY:
                    msg = StoreMany(rid, self.me, tuple(map(items.__getitem__, run)))
                else:
                    msg = ProvideMany(rid, self.me, tuple(keys[i] for i in run), expires)
                self._request(peer, msg, op.op, now)
        self._batch_ack(op)

    def _batch_ack(self, op: Op) -> None:
        op.waiting -= 1
        if op.waiting <= 0 and self._ops.get(op.op) is op:
            del self._ops[op.op]
            if op.public:
                done = ev.PutManyDone if op.purpose == PUT_MANY else ev.ProvideManyDone
                self._events.append(done(op.op, op.stored, op.sent))

    def _op_pools(self, op: Op, batch: BatchLookup, now: float) -> list[list[tuple[int, PeerInfo]]]:
        """Each region's pool, from its lookup (then cached) or from the region cache."""
        assert op.regions is not None
        bits, prefixes, firsts, cached = op.regions
        heard = iter(batch.lookups)
        found: list[list[PeerInfo]] = []
        ttl = self.config.region_cache_ttl
        for j, prefix in enumerate(prefixes):
            if j in cached:
                found.append(cached[j])
                continue
            peers = [c.peer for c in next(heard).known()]
            found.append(peers)
            if ttl > 0 and peers:
                if len(self._region_cache) >= REGION_CACHE_MAX:
                    self._region_cache.pop(next(iter(self._region_cache)))
                self._region_cache[(bits, prefix)] = (now + ttl, peers)
        return self._region_pools(list(zip(firsts, found, strict=True)), bits)

    def _region_pools(
        self, regions: Sequence[tuple[bytes, Sequence[PeerInfo]]], bits: int
    ) -> list[list[tuple[int, PeerInfo]]]:
        """For each region (a key in it, the live peers its lookup heard of), the peers
        to choose its keys' k closest from.

        A lookup only reaches its own target's neighbourhood, so the routing table's
        peers in the same region (all of them when the network is one region) join the
        peers the lookup heard of. Regions are ``bits`` long, as when their keys were
        grouped. Entries are (id as int, peer).
        """
        shift = 256 - bits
        in_region: dict[int, list[PeerInfo]] = {}
        for p in self.routing_table.peers():
            in_region.setdefault(int.from_bytes(p.node_id.value, "big") >> shift, []).append(p)
        pools = []
        for key, heard in regions:
            pool = {p.node_id.value: p for p in heard}
            for p in in_region.get(int.from_bytes(key, "big") >> shift, ()):
                pool.setdefault(p.node_id.value, p)
            pools.append([(int.from_bytes(nid, "big"), p) for nid, p in pool.items()])
        return pools


__all__ = ["BatchCalls", "check_keys"]
