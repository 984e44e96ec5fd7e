"""The asyncio driver of the sans-I/O DHT core over the authenticated transport.

One small loop, as the design asks: feed input (``receive`` for each DHT
message, ``delivery_failed`` when a send fails), drain output (send each
queued message as a one-way transport message), re-arm one timer at
``get_timer()``, and resolve the futures of API calls from ``next_event()``.

Every DHT message arrives over a connection whose peer proved its node key, so
the driver hands the core a contact built from the *authenticated* public key;
a message whose ``sender`` claims another key is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from hashmesh import dht
from hashmesh.dht import codec
from hashmesh.errors import DecodeError, HashmeshError
from hashmesh.net.blocks import Kind
from hashmesh.net.endpoint import Endpoint, PeerAddress
from hashmesh.net.handshake import PeerIdentity

log = logging.getLogger(__name__)


class DhtDriver:
    """Runs one :class:`dht.Protocol` on an :class:`Endpoint`."""

    def __init__(self, protocol: dht.Protocol, endpoint: Endpoint) -> None:
        self.protocol = protocol
        self.endpoint = endpoint
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._waiters: dict[int, asyncio.Future[Any]] = {}
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
        for fut in self._waiters.values():
            if not fut.done():
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
    async def _op(self, op: int, timeout: float) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters[op] = fut
        self._pump()
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._waiters.pop(op, None)

    async def bootstrap(self, seeds: Sequence[dht.PeerInfo], timeout: float = 30.0) -> Any:
        return await self._op(self.protocol.bootstrap(list(seeds), self.now()), timeout)

    async def lookup(self, target: bytes, timeout: float = 30.0) -> dht.LookupDone:
        return await self._op(self.protocol.lookup(target, self.now()), timeout)

    async def put(self, record: dht.Record, timeout: float = 30.0) -> dht.PutDone:
        return await self._op(self.protocol.put(record, self.now()), timeout)

    async def get(self, key: bytes, timeout: float = 30.0) -> dht.GetDone:
        return await self._op(self.protocol.get(key, self.now()), timeout)

    async def provide(self, key: bytes, timeout: float = 30.0) -> dht.ProvideDone:
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
            fut = self._waiters.get(event.op)
            if fut is not None and not fut.done():
                fut.set_result(event)
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


__all__ = ["DhtDriver"]
