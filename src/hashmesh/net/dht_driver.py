"""The asyncio driver of the sans-I/O DHT core over the authenticated transport.

One small loop, as the design asks: feed input (``receive`` for each DHT
message, ``delivery_failed`` when a send fails), drain output (send each
queued message as a one-way transport message), re-arm one timer at
``get_timer()``, and resolve the futures of API calls from ``next_event()``.

Every DHT message arrives over a connection whose peer proved its node key, so
the driver hands the core a contact built from the *authenticated* public key;
a message whose ``sender`` claims another key is dropped.

Lone ``lookup``, ``get``, ``put`` and ``provide`` calls made in the same event-loop
turn are merged: when more than one is waiting, the driver starts one batched call
(``lookup_many``, ``get_many``, ``put_many``, ``provide_many``) for them and hands each caller its
own result (with ``hops`` 0 and its share of the messages). A lone lookup or get
with nobody to merge with runs as before; a lone put or provide still runs as a
batch of one, so it uses the region cache of ``put_many`` (no lookup when its
keyspace region was looked up within ``region_cache_ttl``). So a node with many
concurrent callers (provider lookups, an application's gets) sends a few merged
requests per peer instead of one iterative lookup each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from hashmesh import dht
from hashmesh.dht import codec
from hashmesh.errors import DecodeError, HashmeshError
from hashmesh.net.blocks import Kind
from hashmesh.net.endpoint import Endpoint, PeerAddress
from hashmesh.net.handshake import PeerIdentity

log = logging.getLogger(__name__)

MERGE_MAX = 256  # lone calls merged into one batched call
_CALLS = {
    "lookup": ("lookup", "lookup_many"),
    "get": ("get", "get_many"),
    "put": ("put", "put_many"),
    "provide": ("provide", "provide_many"),
}
# even alone, these run as batched calls: their region cache spares most lookups
_REGION_KINDS = frozenset({"put", "provide"})


class _Merge:
    """Lone calls of one kind waiting for the end of this loop turn."""

    __slots__ = ("calls", "scheduled")

    def __init__(self) -> None:
        self.calls: list[tuple[Any, asyncio.Future[Any]]] = []
        self.scheduled = False


class DhtDriver:
    """Runs one :class:`dht.Protocol` on an :class:`Endpoint`."""

    def __init__(self, protocol: dht.Protocol, endpoint: Endpoint) -> None:
        self.protocol = protocol
        self.endpoint = endpoint
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._waiters: dict[int, Callable[[Any], None]] = {}
        self._merges = {kind: _Merge() for kind in _CALLS}
        self.merge = True  # merge concurrent lone calls (see the module docstring)
        self.merged_calls = 0  # lone calls that ran inside a batched call
        self._callers: set[asyncio.Future[Any]] = set()
        self._sends: set[asyncio.Task[None]] = set()
        self._closed = False
        self.received = 0
        self.sent = 0
        self.dropped = 0

    def now(self) -> float:
        """Wall-clock seconds: record expiry times travel between nodes, so the core's
        ``now`` must be a clock all nodes share (not the loop's monotonic clock)."""
        return time.time()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._pump()

    async def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        self._waiters.clear()
        for merge in self._merges.values():
            merge.calls.clear()
        for fut in list(self._callers):
            fut.cancel()
        for task in list(self._sends):
            task.cancel()
        for task in list(self._sends):
            with contextlib.suppress(BaseException):
                await task

    # --- input ---------------------------------------------------------------
    def on_message(self, peer: PeerIdentity, body: bytes) -> None:
        """A DHT message arrived from an authenticated ``peer``."""
        if self._closed:
            return
        try:
            msg = codec.decode(body)
        except DecodeError as exc:
            self.dropped += 1
            log.debug("dropping undecodable DHT message from %s: %s", peer, exc)
            return
        sender = msg.sender
        if sender.public_key != peer.public_key:
            self.dropped += 1
            log.debug("dropping DHT message from %s claiming another key", peer)
            return
        self.received += 1
        self.protocol.receive(sender, msg, self.now())
        self._pump()

    # --- API -----------------------------------------------------------------
    def _future(self) -> asyncio.Future[Any]:
        """A caller's future; close() cancels every one still waiting."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._callers.add(fut)
        fut.add_done_callback(self._callers.discard)
        return fut

    async def _op(self, op: int, timeout: float) -> Any:
        fut = self._future()
        self._waiters[op] = lambda event: _settle(fut, event)
        self._pump()
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._waiters.pop(op, None)

    async def _merged(self, kind: str, item: Any, timeout: float) -> Any:
        """Queue a lone call to run at the end of this loop turn, merged if others came."""
        loop = asyncio.get_running_loop()
        fut = self._future()
        merge = self._merges[kind]
        merge.calls.append((item, fut))
        if not merge.scheduled:
            merge.scheduled = True
            loop.call_soon(self._run_merged, kind)
        return await asyncio.wait_for(fut, timeout)

    def _run_merged(self, kind: str) -> None:
        merge = self._merges[kind]
        merge.scheduled = False
        calls = [(item, fut) for item, fut in merge.calls if not fut.done()]
        merge.calls.clear()
        if self._closed:
            for _, fut in calls:
                fut.cancel()
            return
        while calls:
            group: list[tuple[Any, asyncio.Future[Any]]] = []
            later: list[tuple[Any, asyncio.Future[Any]]] = []
            keys: set[bytes] = set()
            for item, fut in calls:
                key = item.key if kind == "put" else item
                if len(group) < MERGE_MAX and key not in keys:
                    keys.add(key)
                    group.append((item, fut))
                else:  # a second put (or get) of one key waits for the next batch
                    later.append((item, fut))
            self._start_group(kind, group)
            calls = later
        self._pump()

    def _start_group(
        self, kind: str, group: list[tuple[Any, asyncio.Future[Any]]], alone: bool = False
    ) -> None:
        now = self.now()
        items = [item for item, _ in group]
        futs = [fut for _, fut in group]
        lone_name, batch_name = _CALLS[kind]
        if alone or (len(group) == 1 and kind not in _REGION_KINDS):
            fut = futs[0]
            try:
                op = getattr(self.protocol, lone_name)(items[0], now)
            except Exception as exc:  # handed to its caller, as the call would have raised
                fut.set_exception(exc)
                return
            self._waiters[op] = lambda event: _settle(fut, event)
            return
        try:
            if kind == "get":  # each caller gets its key as soon as it is done
                op = self.protocol.get_many(items, now, progress=True)
            else:
                op = getattr(self.protocol, batch_name)(items, now)
        except Exception:  # one bad item (a record expired since): each on its own
            for one in group:
                self._start_group(kind, [one], alone=True)
            return
        if len(group) > 1:
            self.merged_calls += len(group)

        def deliver(event: Any) -> None:
            if isinstance(event, dht.GetManyPart):
                one = dht.GetDone(event.op, event.record, 0, event.messages)
                _settle(futs[event.index], one)
                return
            for fut, one in zip(futs, _split(event), strict=True):
                _settle(fut, one)

        self._waiters[op] = deliver

    async def bootstrap(self, seeds: Sequence[dht.PeerInfo], timeout: float = 30.0) -> Any:
        return await self._op(self.protocol.bootstrap(list(seeds), self.now()), timeout)

    async def lookup(self, target: bytes, timeout: float = 30.0) -> dht.LookupDone:
        if self.merge:
            return await self._merged("lookup", target, timeout)
        return await self._op(self.protocol.lookup(target, self.now()), timeout)

    async def put(self, record: dht.Record, timeout: float = 30.0) -> dht.PutDone:
        """Store ``record`` at its k closest peers; RecordError at once if it is invalid."""
        if self.merge:
            dht.validate(record, self.now())
            return await self._merged("put", record, timeout)
        return await self._op(self.protocol.put(record, self.now()), timeout)

    async def get(self, key: bytes, timeout: float = 30.0) -> dht.GetDone:
        if self.merge:
            return await self._merged("get", key, timeout)
        return await self._op(self.protocol.get(key, self.now()), timeout)

    async def provide(self, key: bytes, timeout: float = 30.0) -> dht.ProvideDone:
        if self.merge:
            return await self._merged("provide", key, timeout)
        return await self._op(self.protocol.provide(key, self.now()), timeout)

    async def find_providers(self, key: bytes, timeout: float = 30.0) -> dht.ProvidersFound:
        return await self._op(self.protocol.find_providers(key, self.now()), timeout)

    async def lookup_many(self, keys: Sequence[bytes], timeout: float = 30.0) -> dht.LookupManyDone:
        """The k closest peers of each key; one FindMany per peer and step."""
        return await self._op(self.protocol.lookup_many(list(keys), self.now()), timeout)

    async def get_many(self, keys: Sequence[bytes], timeout: float = 30.0) -> dht.GetManyDone:
        """The record under each key (None where none was found), queries merged."""
        return await self._op(self.protocol.get_many(list(keys), self.now()), timeout)

    async def put_many(
        self, records: Sequence[dht.Record], timeout: float = 30.0
    ) -> dht.PutManyDone:
        """Store each record at its k closest peers in StoreMany batches."""
        return await self._op(self.protocol.put_many(list(records), self.now()), timeout)

    async def provide_many(
        self, keys: Sequence[bytes], timeout: float = 30.0
    ) -> dht.ProvideManyDone:
        """Announce ourselves as a provider of each key, in ProvideMany batches."""
        return await self._op(self.protocol.provide_many(list(keys), self.now()), timeout)

    def leave(self) -> None:
        self.protocol.leave(self.now())
        self._pump()

    def add_contact(self, peer: dht.PeerInfo) -> None:
        self.protocol.add_contact(peer, self.now())
        self._pump()

    # --- output --------------------------------------------------------------
    def _pump(self) -> None:
        """Drain messages and events, then re-arm the one timer."""
        if self._closed or self._loop is None:
            return
        for peer, msg in self.protocol.messages_to_send():
            address = PeerAddress(peer.node_id, peer.host, peer.port)
            try:
                body = codec.encode(msg)
                if self.endpoint.send_nowait(address, Kind.DHT, body):  # open: no task
                    self.sent += 1
                    continue
            except (HashmeshError, OSError) as exc:
                self._loop.call_soon(self._send_failed, peer, msg, exc)
                continue
            task = self._loop.create_task(self._send(peer, msg, address, body))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)
        while (event := self.protocol.next_event()) is not None:
            if isinstance(event, dht.GetManyPart):  # its batch's final event follows
                waiter = self._waiters.get(event.op)
            else:
                waiter = self._waiters.pop(event.op, None)
            if waiter is not None:
                waiter(event)
        when = self.protocol.get_timer()
        if when != self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = when
            self._timer = (
                None
                if when is None
                else self._loop.call_later(max(0.0, when - self.now()), self._on_timer)
            )

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.protocol.handle_timer(self.now())
        self._pump()

    async def _send(
        self, peer: dht.PeerInfo, msg: dht.Message, address: PeerAddress, body: bytes
    ) -> None:
        """Dial if needed and send, waiting while the connection's writes are paused."""
        try:
            await self.endpoint.send(address, Kind.DHT, body)
            self.sent += 1
        except (HashmeshError, OSError) as exc:
            self._send_failed(peer, msg, exc)

    def _send_failed(self, peer: dht.PeerInfo, msg: dht.Message, exc: BaseException) -> None:
        log.debug("DHT send to %s failed: %s", peer, exc)
        if isinstance(msg, dht.REQUEST_TYPES) and not self._closed:
            self.protocol.delivery_failed(peer, msg.rpc_id, self.now())
            self._pump()


def _split(event: Any) -> list[Any]:
    """One lone-call result per item of a batched call's event."""
    if isinstance(event, dht.LookupManyDone):
        share = event.messages // max(1, len(event.closest))
        return [dht.LookupDone(event.op, c, 0, share) for c in event.closest]
    if isinstance(event, dht.GetManyDone):
        share = event.messages // max(1, len(event.records))
        return [dht.GetDone(event.op, r, 0, share) for r in event.records]
    share = event.messages // max(1, len(event.stored_at))
    one = dht.ProvideDone if isinstance(event, dht.ProvideManyDone) else dht.PutDone
    return [one(event.op, n, 0, share) for n in event.stored_at]


def _settle(fut: asyncio.Future[Any], result: Any) -> None:
    if not fut.done():
        fut.set_result(result)


__all__ = ["DhtDriver"]
