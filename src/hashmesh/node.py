"""The Node service: one networked hashmesh node.

Composes the local store, the authenticated transport, the DHT core (through
its asyncio driver), placement and the repair planner. ``start()`` does all the
work; the constructor has no side effects. The node owns its background tasks
(health checks, repair, cache trimming) and cancels them in ``stop()``.

Data placement: every block of a stored file (chunks and manifests) goes to
the ``replication`` live nodes XOR-closest to the block's id, found by a DHT
lookup. A put returns only after ``write_quorum`` of them acknowledged each
block durably; the root id is announced with a provider record. A get finds
holders by lookup and provider records, fetches blocks in parallel, verifies
each, and keeps them in a bounded local cache (a resumed get skips what is
already local).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from hashmesh import dht
from hashmesh.arrivals import Arrivals
from hashmesh.coalesce import Coalescer
from hashmesh.config import Config, parse_address
from hashmesh.content import manifest as mf
from hashmesh.errors import (
    HashmeshError,
    IntegrityError,
    NotFoundError,
    QuorumError,
)
from hashmesh.identity import Identity
from hashmesh.ids import ContentId, NodeId
from hashmesh.net import blocks as bx
from hashmesh.net.config import TransportConfig
from hashmesh.net.dht_driver import DhtDriver
from hashmesh.net.endpoint import Endpoint
from hashmesh.net.handshake import PeerIdentity
from hashmesh.node_heal import HealMixin
from hashmesh.node_repair import RepairMixin
from hashmesh.node_report import ReportMixin
from hashmesh.peering import (
    BLOCK_TIMEOUT,
    HEALTH_FAILURES,
    HEALTH_SAMPLE,
    LOST_PROBES,
    RECHECK_DELAY,
    PeerHealth,
    addr,
)
from hashmesh.placement import closest_by, nearest, ranked
from hashmesh.push_window import PushWindow
from hashmesh.repair import Planner
from hashmesh.store.api import Store
from hashmesh.store.model import DirEntry, FileInfo

log = logging.getLogger(__name__)

FETCH_PARALLEL = 16
GET_BATCH = 512  # block ids per GET_MANY request
FETCH_PER_PEER = 4  # GET_MANY requests in flight per holder ...
FETCH_SPLIT_MIN = 8  # ... when each would ask for at least this many blocks
STREAM_PARALLEL = 8  # GET_MANY requests in flight when a reader waits on each block ...
STREAM_BYTES = 2 * 1024 * 1024  # ... each asking for about this many bytes ...
STREAM_STEP = 2  # ... or this many blocks before the first arrived
CACHE_BEHIND_BYTES = 32 * 1024 * 1024  # fetched bytes whose cache commit may lag behind
ANNOUNCE_BATCH = 1024  # roots per provide_many
MAX_UNANNOUNCED = 1 << 16  # roots waiting for their provider record
SMALL_PUT = 256 * 1024  # put_bytes up to this size joins a group commit
PUSH_WORKERS = 4  # blocks loaded at once for a push, so requests in flight per peer
LOAD_BYTES = 4 * 1024 * 1024  # blocks one push loader reads at a time (every copy shared)
PUSH_WINDOW = 64 * 1024 * 1024  # a put's bytes on their way out while its ingest runs


class Node(RepairMixin, HealMixin, ReportMixin):
    """A networked node serving one repository."""

    def __init__(
        self,
        repo: str | Path,
        config: Config | None = None,
        *,
        identity: Identity | None = None,
    ) -> None:
        self.repo = Path(repo)
        self.config = config or Config()
        self.replication = self.config.node.replication
        self.quorum = self.config.node.quorum
        self._identity = identity
        self.store: Store | None = None
        self.endpoint: Endpoint | None = None
        self.driver: DhtDriver | None = None
        self.me: dht.PeerInfo | None = None
        self.planner: Planner | None = None
        self.started_at = 0.0
        self._cids: dict[bytes, ContentId] = {}
        self._health: dict[bytes, PeerHealth] = {}
        self._cache: OrderedDict[bytes, int] = OrderedDict()
        self._cache_bytes = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._repair_wakeup = asyncio.Event()
        self._rechecks: dict[bytes, float] = {}  # received replica -> when repair checks it
        self._to_announce: dict[bytes, None] = {}  # roots waiting for a provider record
        self._announcer: asyncio.Task[None] | None = None
        self._caching: set[asyncio.Task[None]] = set()  # cache commits no read waits for
        self._caching_bytes = 0  # ... and the bytes they hold
        self._heals: dict[bytes, asyncio.Task[None]] = {}  # heals under way, by block digest
        self.healed_blocks = 0  # corrupt local blocks replaced with a peer's good copy
        self.audited_bytes = 0  # stored bytes the audit re-verified
        self.audit_passes = 0
        self.last_audit = 0.0  # when the last whole audit pass ended (0: none yet)
        self._block_writes: Coalescer[tuple[ContentId, bytes], ContentId]
        self._small_puts: Coalescer[tuple[str, bytes], FileInfo]
        self._replications: Coalescer[ContentId, dict[str, Any]]
        self._small_reads: Coalescer[ContentId, bytes]
        self._pushes: Coalescer[tuple[ContentId, bytes], dict[str, Any]]
        self.repaired_blocks = 0

    # ------------------------------------------------------------------ lifecycle
    @property
    def identity(self) -> Identity:
        if self._identity is None:
            raise HashmeshError("node not started")
        return self._identity

    @property
    def node_id(self) -> NodeId:
        return self.identity.node_id

    async def start(self) -> None:
        cfg = self.config
        self.store = await Store.open(self.repo, cfg.store, create=True)
        store = self.store
        # verified blocks (received or fetched): stored without hashing them again
        self._block_writes = Coalescer(
            lambda _key, items: store.put_blocks(
                [(d, c.codec) for c, d in items], ids=[c for c, _ in items]
            ),
            size_of=lambda item: len(item[1]),
        )
        self._small_puts = Coalescer(
            lambda key, items: store.put_many(items, **dict(key)),  # type: ignore[call-overload]
            size_of=lambda item: len(item[1]),
        )
        self._replications = Coalescer(lambda _key, roots: self._replicate_roots(roots))
        self._pushes = Coalescer(
            lambda _key, items: self._push_roots(items), size_of=lambda item: len(item[1])
        )
        self._small_reads = Coalescer(lambda _key, roots: self._read_roots(roots))
        if self._identity is None:
            self._identity = await asyncio.to_thread(
                Identity.load_or_create, self.repo, cfg.dht.puzzle_difficulty
            )
        self.endpoint = Endpoint(
            self._identity,
            self._handle,
            TransportConfig.from_node(cfg.node, cfg.dht),
            on_message=self._on_message,
        )
        host, port = parse_address(cfg.node.listen)
        host, port = await self.endpoint.listen(host, port)
        self.me = dht.PeerInfo.make(self._identity.public_key, host, port)
        protocol = dht.Protocol(self.me, cfg.dht, random.Random(), sign=self._identity.sign)
        self.driver = DhtDriver(protocol, self.endpoint)
        self.driver.start()
        self.planner = Planner(self.me.id, self.replication)
        async for cid in self.store.iter_blocks():
            self._cids[cid.digest] = cid
            self.planner.track(cid.digest)
        self.started_at = time.time()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._health_loop(), name="health"),
            loop.create_task(self._repair_loop(), name="repair"),
            loop.create_task(self._audit_loop(), name="audit"),
        ]

    async def join(self, seeds: Iterable[str], timeout: float = 30.0) -> int:
        """Bootstrap from ``HOST:PORT`` or ``NODEID@HOST:PORT`` seeds; the table size."""
        assert self.endpoint is not None and self.driver is not None
        infos: list[dht.PeerInfo] = []
        for seed in seeds:
            node_hex, _, where = seed.rpartition("@")
            host, port = parse_address(where)
            try:
                peer = await self.endpoint.introduce(host, port)
            except HashmeshError as exc:
                log.warning("bootstrap seed %s unreachable: %s", seed, exc)
                continue
            if node_hex and str(peer.node_id) != node_hex.lower():
                log.warning("bootstrap seed %s proved id %s; skipped", seed, peer.node_id)
                continue
            infos.append(dht.PeerInfo.make(peer.public_key, host, port))
        if not infos:
            return 0
        await self.driver.bootstrap(infos, timeout)
        self._sync_live()
        return len(self.driver.protocol.routing_table)

    async def stop(self, graceful: bool = True, handoff_timeout: float = 30.0) -> None:
        """Stop; when ``graceful``, first hand off blocks and DHT records to the next holders."""
        if graceful and self.driver is not None and self.store is not None:
            try:
                await asyncio.wait_for(self.handoff(), handoff_timeout)
            except (TimeoutError, HashmeshError) as exc:
                log.warning("hand-off incomplete: %s", exc)
            self.driver.leave()
            await asyncio.sleep(0.2)  # let the record hand-off messages go out
        if self._caching:
            await asyncio.wait(self._caching, timeout=10)
        for task in [*self._tasks, *self._heals.values(), *filter(None, [self._announcer])]:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self.driver is not None:
            await self.driver.close()
        if self.endpoint is not None:
            await self.endpoint.close()
        if self.store is not None:
            await self.store.close()

    # ------------------------------------------------------------------ peers
    def peers(self) -> list[dht.PeerInfo]:
        return self.driver.protocol.peers() if self.driver else []

    def live_peers(self) -> list[dht.PeerInfo]:
        return [
            p
            for p in self.peers()
            if self._health.get(p.id, PeerHealth(p)).failures < HEALTH_FAILURES
        ]

    def _sync_live(self) -> None:
        if self.planner is None:
            return
        before = self.planner.backlog
        self.planner.set_live(p.id for p in self.live_peers())
        if self.planner.backlog > before:
            self._repair_wakeup.set()

    def _mark_down(self, peer: dht.PeerInfo) -> None:
        """A request to ``peer`` failed: treat it as down until a health ping answers."""
        self._health.setdefault(peer.id, PeerHealth(peer)).failures = HEALTH_FAILURES

    async def ping(self, peer: dht.PeerInfo, timeout: float = 2.0) -> float:
        assert self.endpoint is not None
        t0 = time.perf_counter()
        await self.endpoint.request(addr(peer), bx.Kind.PING, b"", timeout)
        return (time.perf_counter() - t0) * 1000

    async def _health_loop(self) -> None:
        """Ping peers each ``health_interval``: all of them in a network of at most ``k``;
        otherwise the ``k`` closest to us (where the blocks we hold have their other
        holders) plus a rotating sample of ``HEALTH_SAMPLE`` others.

        Peers that fell out of the DHT routing table (a partition makes lookups
        evict them) while failing are still probed for ``LOST_PROBES`` rounds and put back in
        the table when they answer, so the halves of a healed partition find each
        other again. When a peer goes down its connection is dropped: after a cut
        heals, a stale TCP connection would wait out its retransmission backoff.
        """
        assert self.driver is not None and self.endpoint is not None
        interval = self.config.node.health_interval
        rotor = 0
        while True:
            peers = self.peers()
            known = {p.id for p in peers}
            k = self.config.dht.k
            if len(peers) > k:  # large network: our neighbourhood plus a rotating sample
                near = closest_by(self.me.id, peers, lambda p: p.id, k)  # type: ignore[union-attr]
                ids = {p.id for p in near}
                rest = [p for p in peers if p.id not in ids]
                rotor = (rotor + HEALTH_SAMPLE) % len(rest)
                peers = near + (rest + rest)[rotor : rotor + HEALTH_SAMPLE]
            lost = [h.peer for k, h in self._health.items() if k not in known and h.failures]
            peers += lost
            results = await asyncio.gather(*(self.ping(p) for p in peers), return_exceptions=True)
            for peer, res in zip(peers, results, strict=True):
                h = self._health.setdefault(peer.id, PeerHealth(peer))
                if isinstance(res, BaseException):
                    h.failures += 1
                    if h.failures == HEALTH_FAILURES:
                        log.info("peer %s is down", peer.node_id.short())
                    conn = self.endpoint.pool.connection_to(peer.node_id)
                    if conn is not None and h.failures >= HEALTH_FAILURES:
                        conn.abort()
                    if peer.id not in known and h.failures >= LOST_PROBES:
                        del self._health[peer.id]
                else:
                    if peer.id not in known:
                        log.info("peer %s is reachable again", peer.node_id.short())
                        self.driver.add_contact(peer)
                    h.failures, h.rtt_ms, h.last_seen = 0, res, time.time()
            self._sync_live()
            await asyncio.sleep(interval)

    # ------------------------------------------------------------------ placement
    async def holders_for(self, key: bytes, count: int) -> list[dht.PeerInfo]:
        """The ``count`` live nodes closest to ``key`` (this node included).

        In a network smaller than ``k`` every node's routing table holds every
        node it has heard of, so the table answers without a lookup; otherwise an
        iterative DHT lookup finds the closest nodes.
        """
        return (await self.holders_many([key], count))[0]

    async def holders_many(self, keys: list[bytes], count: int) -> list[list[dht.PeerInfo]]:
        """:meth:`holders_for` of each key; from the table, the candidates are
        prepared once for all keys (no task, no lookup each), otherwise up to
        ``FETCH_PARALLEL`` lookups run at once."""
        assert self.driver is not None and self.me is not None
        table = self.driver.protocol.routing_table
        if len(table) < self.config.dht.k:
            cands = self._placeable([self.me, *table.peers()])
            return [nearest(key, cands, count) for key in keys]
        sem = asyncio.Semaphore(FETCH_PARALLEL)

        async def one(key: bytes) -> list[dht.PeerInfo]:
            assert self.driver is not None and self.me is not None
            async with sem:
                found = (await self.driver.lookup(key)).closest
            return nearest(key, self._placeable([self.me, *found]), count)

        return list(await asyncio.gather(*map(one, keys)))

    def _placeable(self, peers: list[dht.PeerInfo]) -> list[tuple[int, dht.PeerInfo]]:
        """``peers`` without those failing their health checks, ready for ``nearest``."""
        down = {k for k, h in self._health.items() if h.failures >= HEALTH_FAILURES}
        return ranked((p for p in peers if p.id not in down), lambda p: p.id)

    # ------------------------------------------------------------------ serving
    def _on_message(self, peer: PeerIdentity, kind: int, body: bytes) -> bool:
        """One-way DHT messages go to the driver at once (no task each)."""
        if kind != bx.Kind.DHT or self.driver is None:
            return False
        self.driver.on_message(peer, body)
        return True

    async def _handle(self, peer: PeerIdentity, kind: int, body: bytes) -> Any:
        assert self.store is not None
        if kind == bx.Kind.DHT:
            assert self.driver is not None
            self.driver.on_message(peer, body)
            return b""
        if kind == bx.Kind.PING:
            return b""
        if kind == bx.Kind.GET:
            cid = bx.decode_get(body)
            try:
                return await self.store.get_block(cid)
            except IntegrityError:  # the peer asks another holder; this copy is replaced
                self._heal_later(cid)
                raise
        if kind == bx.Kind.HAVE:
            cids = bx.decode_have(body)
            return bytes(int(h) for h in await self.store.has_blocks(cids))
        if kind == bx.Kind.GET_MANY:
            cids = bx.decode_have(body)
            budget = self.config.node.max_frame - 64 * 1024 - 16 * len(cids)
            corrupt: list[ContentId] = []
            reply = await self.store.get_blocks_upto(cids, budget, corrupt)
            for cid in corrupt:  # answered as not held; the copy here is replaced
                self._heal_later(cid)
            return bx.encode_get_many_reply(reply)
        if kind == bx.Kind.PUT:
            cid, data = bx.decode_put(body)
            await self._accept_blocks([(cid, bx.verify(cid, data))], peer)
            return b""
        if kind == bx.Kind.PUT_MANY:
            items = [(c, bx.verify(c, d)) for c, d in bx.decode_put_many(body)]
            await self._accept_blocks(items, peer)
            return b""
        raise NotFoundError(f"unknown request kind {kind}")

    async def _accept_blocks(
        self, items: list[tuple[ContentId, bytes]], peer: PeerIdentity
    ) -> None:
        assert self.store is not None and self.planner is not None
        stored = await self._block_writes.submit(items)
        due = asyncio.get_running_loop().time() + RECHECK_DELAY
        for cid in stored:
            self._cids[cid.digest] = cid
            self._cache.pop(cid.digest, None)  # a replica is never evicted as cache
            # The sender is still placing this block (it queues what falls short itself):
            # repair checks it here only later, when that is done (RECHECK_DELAY).
            self.planner.track(cid.digest, [peer.node_id.value], dirty=False)
            self._rechecks[cid.digest] = due

    # ------------------------------------------------------------------ writing
    async def put_path(self, path: str | Path, **meta: Any) -> dict[str, Any]:
        """Store a file or directory and place every block on its closest nodes;
        FileInfo + figures.

        The large blocks travel to their holders while the local ingest still runs
        (a :class:`PushWindow` of ``PUSH_WINDOW`` bytes, ``PUSH_WORKERS`` pushers with
        the bytes in hand); after the local commit, whatever is still short of its
        quorum (small blocks, manifests, blocks the window dropped or a peer
        refused) is placed from the store. Returns once every block has its quorum.
        """
        assert self.store is not None
        window = PushWindow(asyncio.get_running_loop(), PUSH_WINDOW)
        acks: dict[ContentId, int] = {}

        async def pusher() -> None:
            try:
                while batch := await window.take(LOAD_BYTES):
                    try:
                        cids = [c for c, _ in batch]
                        got = await self.replicate_blocks(cids, given=dict(batch), strict=False)
                        acks.update(zip(cids, got, strict=True))
                    finally:
                        window.release(batch)
            except (HashmeshError, TimeoutError) as exc:  # e.g. a lookup in a large network
                log.info("pushing during the ingest stopped (%s); the rest follows it", exc)
                window.close()
            except BaseException:
                window.close()  # the ingest must not wait on a pusher that is gone
                raise

        pushers = [asyncio.ensure_future(pusher()) for _ in range(PUSH_WORKERS)]
        try:
            info = await self.store.put_path(path, sink=window.offer, **meta)
        except BaseException:
            window.close()
            for task in pushers:
                task.cancel()
            await asyncio.wait(pushers)
            await self._untrack_unless_held(window.offered)
            raise
        finally:
            window.end()
        try:
            await asyncio.gather(*pushers)
        finally:
            for task in pushers:  # left running only if one of them raised
                task.cancel()
        placed = await self._replicate_roots([ContentId.parse(info.id)], acks)
        return {"file": info.to_json(), **placed[0]}

    async def put_bytes(self, data: bytes, **meta: Any) -> dict[str, Any]:
        assert self.store is not None
        if len(data) <= SMALL_PUT and not meta.get("ttl"):
            # concurrent small puts share one local commit (group commit)
            key = (
                ("tags", tuple(meta.get("tags") or ())),
                ("description", meta.get("description") or ""),
                ("pin", bool(meta.get("pin"))),
            )
            item = (meta.get("name") or "", data)
            if 0 < len(data) <= self.config.store.chunk_min:
                # One block, whose id is known now: it travels to its holders while the
                # local commit runs (the put returns when both are done).
                cid = ContentId.of(data, ContentId.RAW)
                (info,), (placed,) = await self._commit_while_pushing(
                    self._small_puts.submit([item], key), self._pushes.submit([(cid, data)]), [cid]
                )
                if info.id != str(cid):  # the store chunked it after all: place its blocks
                    (placed,) = await self._replications.submit([ContentId.parse(info.id)])
                return {"file": info.to_json(), **placed}
            (info,) = await self._small_puts.submit([item], key)
            # ... and their blocks travel to each peer together
            (placed,) = await self._replications.submit([ContentId.parse(info.id)])
            return {"file": info.to_json(), **placed}
        info = await self.store.put_bytes(data, **meta)
        placed = await self.replicate_dag(ContentId.parse(info.id))
        return {"file": info.to_json(), **placed}

    async def _replicate_roots(
        self, roots: list[ContentId], placed: dict[ContentId, int] | None = None
    ) -> list[dict[str, Any]]:
        """Place the blocks of every DAG under ``roots`` in one batch and announce the roots.

        ``placed`` holds the acks of blocks already sent (those with a quorum are
        not sent again). Returns ``{"blocks", "min_acks"}`` per root. Raises
        QuorumError if any block is short (the small-put coalescer then retries each
        root on its own, so only the puts that really failed report failure).
        """
        assert self.store is not None
        dags = [[r] if not r.is_manifest else await self.store.dag_blocks(r) for r in roots]
        acks = dict(placed or {})
        cids = [
            c for c in dict.fromkeys(c for dag in dags for c in dag) if acks.get(c, 0) < self.quorum
        ]
        acks.update(zip(cids, await self.replicate_blocks(cids), strict=True))
        for root in roots:
            self._announce(root)
        return [{"blocks": len(d), "min_acks": min(acks[c] for c in d)} for d in dags]

    async def _commit_while_pushing(
        self,
        commit: Awaitable[list[FileInfo]],
        push: Awaitable[list[dict[str, Any]]],
        cids: list[ContentId],
    ) -> tuple[list[FileInfo], list[dict[str, Any]]]:
        """Run a local commit and the push of its one-block objects ``cids`` together;
        both must succeed. When the commit fails, repair stops watching the pushed
        blocks not stored here (their holders keep their copies) and its error is
        raised; otherwise a failed push's error (a QuorumError) is."""
        local, pushed = await asyncio.gather(commit, push, return_exceptions=True)
        if isinstance(local, BaseException):
            await self._untrack_unless_held(cids)
            raise local
        if isinstance(pushed, BaseException):
            raise pushed
        return local, pushed

    async def _untrack_unless_held(self, cids: list[ContentId]) -> None:
        """After a failed local commit: repair stops watching the pushed blocks that
        are not stored here (their holders keep their copies)."""
        assert self.store is not None and self.planner is not None
        if not cids:
            return
        with contextlib.suppress(HashmeshError):
            for cid, held in zip(cids, await self.store.has_blocks(cids), strict=True):
                if not held:
                    self.planner.untrack(cid.digest)
                    self._cids.pop(cid.digest, None)

    async def _push_roots(self, items: list[tuple[ContentId, bytes]]) -> list[dict[str, Any]]:
        """Place one-block files from the bytes in hand (not read back from the store)
        and announce them; ``{"blocks", "min_acks"}`` each, QuorumError if one is short."""
        given = dict(items)
        cids = list(given)
        acks = dict(zip(cids, await self.replicate_blocks(cids, given=given), strict=True))
        for cid in cids:
            self._announce(cid)
        return [{"blocks": 1, "min_acks": acks[cid]} for cid, _ in items]

    async def replicate_dag(self, root: ContentId) -> dict[str, Any]:
        """Place every block under ``root`` on its closest nodes; raise QuorumError if short."""
        return (await self._replicate_roots([root]))[0]

    def _announce(self, root: ContentId) -> None:
        """Publish a provider record for ``root`` in the background (a fallback for finding
        holders; placement does not depend on it). Skipped while the network is smaller
        than ``k``, where every node's table knows every holder. Roots waiting to be
        announced go out together, ``ANNOUNCE_BATCH`` per ``provide_many`` (ProvideMany
        requests, one lookup per keyspace region); the DHT core republishes them later."""
        assert self.driver is not None
        if len(self.driver.protocol.routing_table) < self.config.dht.k:
            return
        if len(self._to_announce) >= MAX_UNANNOUNCED:
            log.warning(
                "%d roots wait for announcement; %s is not announced", MAX_UNANNOUNCED, root
            )
            return
        self._to_announce[root.digest] = None
        if self._announcer is None or self._announcer.done():
            self._announcer = asyncio.get_running_loop().create_task(self._announce_loop())

    async def _announce_loop(self) -> None:
        assert self.driver is not None
        while self._to_announce:
            keys = list(itertools.islice(self._to_announce, ANNOUNCE_BATCH))
            for key in keys:
                del self._to_announce[key]
            try:
                await self.driver.provide_many(keys, timeout=60)
            except (HashmeshError, TimeoutError) as exc:  # the core still republishes them
                log.info("announcing %d roots: %s", len(keys), exc)

    async def replicate_blocks(
        self,
        cids: list[ContentId],
        retry: bool = True,
        given: dict[ContentId, bytes] | None = None,
        strict: bool = True,
    ) -> list[int]:
        """Send each block to its ``replication`` closest live nodes; acks per block.

        ``PUSH_WORKERS`` loaders each take the next blocks up to ``LOAD_BYTES``, read
        them once from the local store (or take them from ``given``: verified ids
        whose bytes the caller has) and send every peer its share in one PUT_MANY
        (one durable commit on the receiver), to all those peers at once; so each
        block is read once however many copies it needs, and each peer has up to
        ``PUSH_WORKERS`` requests in flight. Raises :class:`QuorumError` if any block
        got fewer than ``write_quorum`` acks (unless not ``strict``: the caller then
        reads the short ones off the acks).
        """
        assert self.store is not None and self.planner is not None and self.me is not None
        acks = [0] * len(cids)
        wanted = [0] * len(cids)
        targets: list[list[dht.PeerInfo]] = []
        placements = await self.holders_many([c.digest for c in cids], self.replication)
        for i, (cid, holders) in enumerate(zip(cids, placements, strict=True)):
            self._cids[cid.digest] = cid
            # not queued for repair while this put places it (repair would push the same
            # blocks again, racing the put); queued below if placement falls short
            self.planner.track(cid.digest, dirty=False)
            wanted[i] = len(holders)
            acks[i] = sum(1 for p in holders if p.id == self.me.id)
            targets.append([p for p in holders if p.id != self.me.id])
        store = self.store

        async def load(take: list[int]) -> list[bytes | None]:
            """A prefix of ``take``'s blocks within LOAD_BYTES (at least one)."""
            if given is None:
                return await store.get_blocks_upto([cids[i] for i in take], LOAD_BYTES)
            out: list[bytes | None] = []
            size = 0
            for i in take:
                data = given[cids[i]]
                if out and size + len(data) > LOAD_BYTES:
                    break
                out.append(data)
                size += len(data)
            return out

        async def push(peer: dht.PeerInfo, idxs: list[int], datas: list[bytes]) -> None:
            if await self._push_many(
                peer, [(cids[i], d) for i, d in zip(idxs, datas, strict=True)]
            ):
                for i in idxs:
                    acks[i] += 1

        todo = deque(i for i in range(len(cids)) if targets[i])
        loading = 0  # loaders reading a prefix of the ids they took (the rest comes back)
        wake = asyncio.Event()

        async def loader() -> None:
            nonlocal loading
            while todo or loading:
                if not todo:  # wait for what a loading worker puts back, or its end
                    wake.clear()
                    await wake.wait()
                    continue
                take = [todo.popleft() for _ in range(min(len(todo), 1024))]
                loading += 1
                try:
                    datas = await load(take)
                finally:
                    loading -= 1
                    wake.set()  # the waiters run after the put-back below
                todo.extendleft(reversed(take[len(datas) :]))  # past the budget: later
                shares: dict[bytes, tuple[dht.PeerInfo, list[int], list[bytes]]] = {}
                for i, data in zip(take, datas, strict=False):
                    if data is None:
                        continue
                    for peer in targets[i]:
                        share = shares.setdefault(peer.id, (peer, [], []))
                        share[1].append(i)
                        share[2].append(data)
                await asyncio.gather(*(push(*share) for share in shares.values()))

        try:
            await asyncio.gather(*(loader() for _ in range(PUSH_WORKERS)))
        finally:
            for i, cid in enumerate(cids):
                if acks[i] < wanted[i]:  # repair completes what this put could not
                    self.planner.track(cid.digest)
        short = sum(1 for a in acks if a < self.quorum)
        if short and retry:  # failed targets are now marked down: place on the next closest
            return await self.replicate_blocks(cids, retry=False, given=given, strict=strict)
        if short and strict:
            raise QuorumError(
                f"{short} of {len(cids)} blocks were acknowledged by fewer than "
                f"{self.quorum} nodes (replication {self.replication}, "
                f"{len(self.live_peers()) + 1} live nodes known)"
            )
        return acks

    async def _push_many(self, peer: dht.PeerInfo, items: list[tuple[ContentId, bytes]]) -> bool:
        """Send blocks to ``peer`` in requests under the frame limit; True if all were acked."""
        assert self.endpoint is not None and self.planner is not None
        limit = self.config.node.max_frame - 64 * 1024
        group: list[tuple[ContentId, bytes]] = []
        size = 0
        ok = True
        for cid, data in [*items, (None, b"")]:
            if group and (cid is None or size + len(data) > limit):
                ok &= await self._request_put_many(peer, group)
                group, size = [], 0
            if cid is not None:
                group.append((cid, data))
                size += len(data) + 64
        return ok

    async def _request_put_many(
        self, peer: dht.PeerInfo, group: list[tuple[ContentId, bytes]]
    ) -> bool:
        assert self.endpoint is not None and self.planner is not None
        try:
            await self.endpoint.request(
                addr(peer), bx.Kind.PUT_MANY, bx.encode_put_many(group), BLOCK_TIMEOUT
            )
        except HashmeshError as exc:
            log.info("batch push to %s failed: %s", peer.node_id.short(), exc)
            self._mark_down(peer)
            return False
        for cid, _ in group:
            self.planner.confirm_holder(cid.digest, peer.id)
        return True

    async def put_many(self, items: list[tuple[str, bytes]], **meta: Any) -> list[dict[str, Any]]:
        """Store many small objects in one local commit and replicate them in batches
        (one-block objects travel to their holders while the local commit runs)."""
        assert self.store is not None
        limit = self.config.store.chunk_min
        if items and all(0 < len(d) <= limit for _, d in items):
            given = [(ContentId.of(d, ContentId.RAW), d) for _, d in items]
            infos, _ = await self._commit_while_pushing(
                self.store.put_many(items, **meta), self._push_roots(given), [c for c, _ in given]
            )
            roots = [ContentId.parse(i.id) for i in infos]
            rest = [r for r, (c, _) in zip(roots, given, strict=True) if r != c]
        else:
            infos = await self.store.put_many(items, **meta)
            rest = [ContentId.parse(i.id) for i in infos]
        if rest:
            await self._replicate_roots(rest)
        return [i.to_json() for i in infos]

    async def _read_roots(self, roots: list[ContentId]) -> list[bytes]:
        """The content of each root; a one-block file just fetched (verified) is handed
        back as received, the rest is read from the store in one call."""
        assert self.store is not None
        fetched: dict[ContentId, bytes] = {}
        await self.fetch_dags(roots, fetched)
        rest = [r for r in dict.fromkeys(roots) if r.is_manifest or r not in fetched]
        if rest:
            store = self.store
            got = await self._healed(lambda: store.get_many(rest))
            fetched.update(zip(rest, got, strict=True))
        await self.trim_cache()
        return [fetched[r] for r in roots]

    async def get_many(self, ids: list[str]) -> list[bytes]:
        """Read many (small) files, fetching what is not local in batches."""
        return await self._read_roots([ContentId.parse(i) for i in ids])

    # ------------------------------------------------------------------ reading
    async def fetch_dag(self, root: ContentId) -> int:
        """Make every block under ``root`` local; returns how many were fetched."""
        return await self.fetch_dags([root])

    async def fetch_dags(
        self,
        roots: list[ContentId],
        received: dict[ContentId, bytes] | None = None,
        deferred: list[ContentId] | None = None,
    ) -> int:
        """Make every block under ``roots`` local, one DAG level at a time.

        Each level: one local HAVE check, then the missing blocks grouped by their
        closest holder and fetched with GET_MANY (several in parallel), verified, and
        committed together; whatever a batch did not return is fetched one by one
        from any holder. A repeated call resumes: blocks already here are skipped.
        The verified bytes of fetched raw roots go into ``received`` when given.
        With ``deferred``, only manifests are fetched: the missing chunks are
        appended to it instead (in file order), for the caller to fetch.
        """
        assert self.store is not None
        fetched = 0
        level = list(dict.fromkeys(roots))
        while level:
            have = await self.store.has_blocks(level)
            missing = [c for c, h in zip(level, have, strict=True) if not h]
            if deferred is not None:
                deferred += [c for c in missing if not c.is_manifest]
                missing = [c for c in missing if c.is_manifest]
            if missing:
                fetched += await self._fetch_missing(
                    missing, None if received is None else received.__setitem__
                )
            received = None  # only the roots' level
            level = await self.store.children_many([c for c in level if c.is_manifest])
        return fetched

    async def _fetch_missing(
        self,
        missing: list[ContentId],
        hand_back: Callable[[ContentId, bytes], None] | None = None,
        early: bool | None = None,
        in_order: bool = False,
        stored: Callable[[list[ContentId]], None] | None = None,
    ) -> int:
        """Fetch ``missing`` (verified, committed as cache); ``hand_back`` gets each
        raw block's bytes once it is stored. ``early`` (by default when every block is
        raw and some caller takes the bytes: a reader's one-block files) hands them
        back at once and commits them in the background instead; ``stored`` then
        learns when each commit is over (done or failed). ``in_order`` is for a
        reader waiting on each block in turn: see :meth:`_fetch_in_order`."""
        assert self.me is not None
        sem = asyncio.Semaphore(FETCH_PARALLEL)
        if early is None:
            early = hand_back is not None and not any(c.is_manifest for c in missing)

        by_peer: dict[bytes, tuple[dht.PeerInfo, list[int]]] = {}
        placements = await self.holders_many([c.digest for c in missing], self.replication)
        for i, holders in enumerate(placements):
            peer = next((p for p in holders if p.id != self.me.id), None)
            if peer is not None:
                by_peer.setdefault(peer.id, (peer, []))[1].append(i)
        got: set[ContentId] = set()

        def each(cid: ContentId, data: bytes) -> None:
            got.add(cid)
            if hand_back is not None and not cid.is_manifest:
                hand_back(cid, data)

        if in_order:
            await self._fetch_in_order(missing, list(by_peer.values()), each, early, stored)
        else:

            async def batch(peer: dht.PeerInfo, cids: list[ContentId]) -> None:
                async with sem:
                    await self._get_many_from(peer, cids, each, early, stored)

            # batches start in the order of their first block
            starts: list[tuple[int, dht.PeerInfo, list[ContentId]]] = []
            for peer, idxs in by_peer.values():
                step = min(GET_BATCH, max(FETCH_SPLIT_MIN, -(-len(idxs) // FETCH_PER_PEER)))
                for j in range(0, len(idxs), step):
                    part = idxs[j : j + step]
                    starts.append((part[0], peer, [missing[k] for k in part]))
            starts.sort(key=lambda t: t[0])
            await asyncio.gather(*(batch(peer, cids) for _, peer, cids in starts))

        async def single(cid: ContentId) -> None:
            async with sem:
                each(cid, await self._fetch_block(cid))  # committed before it returns
                if stored is not None:
                    stored([cid])

        await asyncio.gather(*(single(c) for c in missing if c not in got))
        return len(missing)

    async def _fetch_in_order(
        self,
        missing: list[ContentId],
        plans: list[tuple[dht.PeerInfo, list[int]]],
        each: Callable[[ContentId, bytes], None],
        early: bool,
        stored: Callable[[list[ContentId]], None] | None = None,
    ) -> None:
        """Fetch ``missing`` so that blocks arrive about in order: ``STREAM_PARALLEL``
        workers each ask for the first block nobody asked for yet, together with the
        next ones its holder has nearby, about ``STREAM_BYTES`` (by the sizes seen so
        far; ``STREAM_STEP`` blocks before any arrived). Asking for everything at once
        instead lands most blocks near the end, and the reader waits meanwhile."""
        owner: dict[int, int] = {i: p for p, (_, idxs) in enumerate(plans) for i in idxs}
        queues = [deque(idxs) for _, idxs in plans]
        order = iter(sorted(owner))
        seen = [0, 0]  # bytes, blocks

        def counted(cid: ContentId, data: bytes) -> None:
            seen[0] += len(data)
            seen[1] += 1
            each(cid, data)

        async def worker() -> None:
            for i in order:
                queue = queues[owner[i]]
                if not queue or queue[0] != i:
                    continue  # asked for with an earlier block of its holder
                step = STREAM_STEP
                if seen[1]:
                    step = max(1, min(GET_BATCH, STREAM_BYTES * seen[1] // max(1, seen[0])))
                # its holder's next blocks, from the stretch of the file where it has
                # about ``step`` of them (further ones would come far ahead of the reader)
                reach = i + step * len(plans)
                take = [queue.popleft()]
                while queue and len(take) < step and queue[0] <= reach:
                    take.append(queue.popleft())
                peer = plans[owner[i]][0]
                cids = [missing[k] for k in take]
                await self._get_many_from(peer, cids, counted, early, stored)

        await asyncio.gather(*(worker() for _ in range(STREAM_PARALLEL)))

    async def _get_many_from(
        self,
        peer: dht.PeerInfo,
        cids: list[ContentId],
        each: Callable[[ContentId, bytes], None],
        early: bool = False,
        stored: Callable[[list[ContentId]], None] | None = None,
    ) -> None:
        """Fetch what ``peer`` holds of ``cids``; ``each`` gets every block verified
        and committed to the local cache.

        Each GET_MANY reply covers a prefix of the ids that fits one frame; the
        rest is asked for again until the peer has answered for every id. With
        ``early`` the verified blocks go to ``each`` at once and are committed in
        the background (a crash before that costs a re-fetch), at most
        ``CACHE_BEHIND_BYTES`` behind the fetch; ``stored`` learns when each
        commit is over.
        """
        assert self.endpoint is not None
        todo = list(cids)
        while todo:
            while early and self._caching and self._caching_bytes > CACHE_BEHIND_BYTES:
                await asyncio.wait(set(self._caching), return_when=asyncio.FIRST_COMPLETED)
            try:
                reply = await self.endpoint.request(
                    addr(peer), bx.Kind.GET_MANY, bx.encode_have(todo), BLOCK_TIMEOUT
                )
                datas = bx.decode_get_many_reply(reply, len(todo))
            except HashmeshError as exc:
                log.info("batch fetch from %s failed: %s", peer.node_id.short(), exc)
                return
            good: list[tuple[ContentId, bytes]] = []
            for cid, data in zip(todo, datas, strict=False):
                if data is None:
                    continue
                try:
                    good.append((cid, bx.verify(cid, data)))
                except IntegrityError as exc:
                    log.warning("%s (from %s)", exc, peer.node_id.short())
            todo = todo[len(datas) :]
            if good and early:
                task = asyncio.get_running_loop().create_task(self._cache_later(good, stored))
                self._caching.add(task)
                task.add_done_callback(self._caching.discard)
            elif good:
                await self._cache_blocks(good)
            for cid, data in good:
                each(cid, data)
            if good and not early and stored is not None:
                stored([c for c, _ in good])

    async def _cache_blocks(self, good: list[tuple[ContentId, bytes]]) -> None:
        """Commit fetched (verified) blocks as cache; the LRU may release them later."""
        await self._block_writes.submit(good)
        for cid, data in good:
            self._cids[cid.digest] = cid
            self._remember_cache(cid.digest, len(data))

    async def _cache_later(
        self,
        good: list[tuple[ContentId, bytes]],
        stored: Callable[[list[ContentId]], None] | None = None,
    ) -> None:
        """:meth:`_cache_blocks` for blocks already handed to their reader: a failure
        (a full disk) only means they will be fetched again next time. ``stored``
        learns when it is over, either way."""
        size = sum(len(d) for _, d in good)
        self._caching_bytes += size
        try:
            await self._cache_blocks(good)
        except HashmeshError as exc:
            log.warning("caching %d fetched blocks failed: %s", len(good), exc)
        finally:
            self._caching_bytes -= size
            if stored is not None:
                stored([c for c, _ in good])

    async def _holder_sources(self, cid: ContentId) -> AsyncIterator[list[dht.PeerInfo]]:
        """Candidate holders, cheapest first: placement (table or lookup), then a fresh
        iterative lookup, then the provider records (file roots are announced)."""
        assert self.driver is not None
        yield await self.holders_for(cid.digest, 2 * self.replication)
        with contextlib.suppress(HashmeshError, TimeoutError):
            yield list((await self.driver.lookup(cid.digest, timeout=10)).closest)
        with contextlib.suppress(HashmeshError, TimeoutError):
            yield list((await self.driver.find_providers(cid.digest, timeout=10)).providers)

    async def _fetch_block(self, cid: ContentId, commit: bool = True) -> bytes:
        """Fetch one block from the first holder that returns bytes matching its id
        (and commit it as cache unless ``commit`` is False)."""
        assert self.store is not None and self.endpoint is not None
        tried: set[bytes] = {self.me.id} if self.me is not None else set()
        corrupt = 0
        async for holders in self._holder_sources(cid):
            for peer in holders:
                if peer.id in tried:
                    continue
                tried.add(peer.id)
                try:
                    data = await self.endpoint.request(
                        addr(peer), bx.Kind.GET, bx.encode_get(cid), BLOCK_TIMEOUT
                    )
                    bx.verify(cid, data)
                except IntegrityError as exc:
                    corrupt += 1
                    log.warning("%s (from %s)", exc, peer.node_id.short())
                    continue
                except HashmeshError:
                    continue
                if not commit:
                    return data
                await self._block_writes.submit([(cid, data)])
                self._cids[cid.digest] = cid
                self._remember_cache(cid.digest, len(data))
                return data
        asked = len(tried) - (self.me is not None)
        if corrupt:
            raise IntegrityError(
                f"block {cid}: {corrupt} of {asked} nodes returned corrupt data, none a good copy",
                block_id=str(cid),
            )
        raise NotFoundError(f"block {cid} not found on the network (asked {asked} nodes)")

    def _remember_cache(self, digest: bytes, size: int) -> None:
        self._cache_bytes -= self._cache.pop(digest, 0)  # fetched twice: counted once
        self._cache[digest] = size
        self._cache.move_to_end(digest)
        self._cache_bytes += size

    async def trim_cache(self) -> int:
        """Release least recently fetched cache blocks beyond ``cache_bytes``."""
        assert self.store is not None
        released = 0
        while self._cache_bytes > self.config.node.cache_bytes and self._cache:
            digest, size = self._cache.popitem(last=False)
            self._cache_bytes -= size
            await self.store.release_block(self._cids[digest])
            released += 1
        return released

    async def stat(self, id: str) -> FileInfo:
        """The local index entry, or for content stored elsewhere what its root block says."""
        assert self.store is not None
        root = ContentId.parse(id)
        try:
            return await self.store.stat(root)
        except NotFoundError:
            pass
        if not await self.store.has_block(root):
            await self._fetch_block(root)
        block = await self.store.get_block(root)
        if not root.is_manifest:  # a one-chunk file: the block is the content
            return FileInfo(
                id=str(root),
                name="",
                size=len(block),
                content_type="application/octet-stream",
                kind="file",
                blocks=1,
            )
        m = mf.decode(block)
        is_dir = isinstance(m, mf.DirManifest)
        return FileInfo(
            id=str(root),
            name="",
            size=max(m.size, 0),
            content_type="inode/directory" if is_dir else "application/octet-stream",
            kind="dir" if is_dir else "file",
        )

    async def list_dir(self, id: str) -> list[DirEntry]:
        assert self.store is not None
        root = ContentId.parse(id)
        if not await self.store.has_block(root):
            await self._fetch_block(root)
        return await self.store.list_dir(root)

    async def read(self, id: str, offset: int = 0, length: int | None = None) -> bytes:
        assert self.store is not None
        root = ContentId.parse(id)
        if not root.is_manifest and offset == 0 and length is None:
            # a one-chunk file: concurrent reads are fetched and read as one batch
            (data,) = await self._small_reads.submit([root])
            return data
        chunks = await self._fetch_manifests(root)
        if chunks:  # only those the range needs
            need = set(await self.store.chunks_in_range(root, offset, length))
            missing = [c for c in chunks if c in need]
            if missing:
                await self._fetch_missing(missing)
        store = self.store
        data = await self._healed(lambda: store.read(root, offset, length))
        await self.trim_cache()
        return data

    async def iter_read(self, id: str) -> AsyncIterator[bytes]:
        """Stream a file; its missing chunks are fetched while the first ones are sent."""
        root = ContentId.parse(id)
        return self._stream(root, await self._fetch_manifests(root))

    async def _fetch_manifests(self, root: ContentId) -> list[ContentId]:
        """Make the manifests under ``root`` local (a one-block file: the block); the
        chunks under it still missing here, each once, in file order."""
        if not root.is_manifest:
            await self.fetch_dag(root)
            return []
        chunks: list[ContentId] = []
        await self.fetch_dags([root], deferred=chunks)
        return list(dict.fromkeys(chunks))

    async def _stream(self, root: ContentId, chunks: list[ContentId]) -> AsyncIterator[bytes]:
        """The bytes of ``root`` while ``chunks`` are fetched; a corrupt local block met
        on the way is healed and the stream goes on from where it stopped."""
        assert self.store is not None
        arrivals, fetch = self._fetch_behind(chunks)
        sent = 0
        healed: set[str] = set()
        try:
            while True:
                try:
                    async for piece in self.store.iter_read(root, sent, ready=arrivals):
                        sent += len(piece)
                        yield piece
                    return
                except IntegrityError as exc:
                    await self._heal(exc, healed)
        finally:
            fetch.cancel()  # a no-op once it is done
            await asyncio.wait([fetch])

    async def get_to_path(self, id: str, dest: str | Path) -> Path:
        """Write a file or tree to ``dest``; the chunks missing here are fetched while
        the export writes the ones it has (each waits for its chunk's arrival and is
        written from the bytes in hand, its cache commit running behind); returns
        once the output is complete and the fetched chunks are cached."""
        assert self.store is not None
        root = ContentId.parse(id)
        store = self.store
        arrivals, fetch = self._fetch_behind(await self._fetch_manifests(root))
        try:
            path = await self._healed(lambda: store.get_to_path(root, dest, ready=arrivals))
        finally:
            fetch.cancel()  # a no-op once it is done
            await asyncio.wait([fetch])
        if self._caching:  # the fetched chunks' cache commits, running behind the fetch
            await asyncio.wait(set(self._caching))
        await self.trim_cache()
        return path

    def _fetch_behind(self, chunks: list[ContentId]) -> tuple[Arrivals, asyncio.Task[int]]:
        """Start fetching ``chunks`` for a reader that waits on each one's arrival; the
        caller cancels the task when it stops reading (a failed fetch fails the
        chunks it did not store, so the reader never waits on it in vain)."""
        arrivals = Arrivals(chunks)
        fetch = asyncio.get_running_loop().create_task(
            self._fetch_missing(
                chunks,
                lambda cid, data: arrivals.arrived(cid, data, stored=False),
                early=True,  # the reader takes the bytes; their cache commit runs behind
                in_order=True,
                stored=arrivals.stored,
            )
        )
        fetch.add_done_callback(arrivals.ended)
        return arrivals, fetch


__all__ = ["Node", "PeerHealth"]
