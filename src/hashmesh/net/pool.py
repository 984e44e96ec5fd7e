"""Connection pool: one reusable connection per peer id, bounded and swept.

* :meth:`Pool.get` returns the open connection to a peer or dials one; callers
  asking for the same peer at once share a single dial.
* At most ``max_connections`` connections are open (dialed and accepted ones
  alike); to make room the least recently active idle one is closed. With no
  idle connection to evict, a dial fails with :class:`PeerUnavailableError` and
  an accepted connection is refused.
* A sweeper closes connections with nothing in flight for ``idle_timeout``.
* After a failed dial, that (peer, address) fails fast for ``dial_backoff`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from hashmesh.errors import HashmeshError, PeerUnavailableError
from hashmesh.ids import NodeId
from hashmesh.net.config import TransportConfig
from hashmesh.net.connection import Connection

Dialer = Callable[[str, int, NodeId], Awaitable[Connection]]


class Pool:
    """Open connections by peer id; see the module docstring for the rules."""

    def __init__(self, config: TransportConfig, dial: Dialer) -> None:
        self._config = config
        self._dial = dial
        self._by_peer: OrderedDict[NodeId, Connection] = OrderedDict()
        self._all: set[Connection] = set()
        self._dialing: dict[NodeId, asyncio.Future[Connection]] = {}
        self._failed_until: dict[tuple[NodeId, str, int], float] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False

    def __len__(self) -> int:
        return len(self._all)

    @property
    def connections(self) -> list[Connection]:
        return list(self._all)

    def start(self) -> None:
        """Start the idle sweeper (call inside the running loop)."""
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())

    def connection_to(self, node_id: NodeId) -> Connection | None:
        conn = self._by_peer.get(node_id)
        return conn if conn is not None and conn.is_open else None

    async def get(self, node_id: NodeId, host: str, port: int) -> Connection:
        """The open connection to ``node_id``, dialing ``host:port`` if needed."""
        if self._closed:
            raise PeerUnavailableError("the transport is closed")
        conn = self._by_peer.get(node_id)
        if conn is not None and conn.is_open:
            self._by_peer.move_to_end(node_id)
            return conn
        pending = self._dialing.get(node_id)
        if pending is not None:
            return await asyncio.shield(pending)
        loop = asyncio.get_running_loop()
        key = (node_id, host, port)
        if self._failed_until.get(key, 0.0) > loop.time():
            raise PeerUnavailableError(f"peer {node_id.short()} at {host}:{port} failed recently")
        if not self._make_room(1):
            raise PeerUnavailableError("connection limit reached and no connection is idle")
        fut: asyncio.Future[Connection] = loop.create_future()
        fut.add_done_callback(_consume)
        self._dialing[node_id] = fut
        try:
            conn = await self._dial(host, port, node_id)
        except (HashmeshError, asyncio.CancelledError) as exc:
            if self._config.dial_backoff and not isinstance(exc, asyncio.CancelledError):
                self._failed_until[key] = loop.time() + self._config.dial_backoff
                if len(self._failed_until) > 4 * self._config.max_connections:
                    self._failed_until.clear()
            if isinstance(exc, asyncio.CancelledError):
                fut.cancel()
            else:
                fut.set_exception(exc)
            raise
        finally:
            self._dialing.pop(node_id, None)
        self._failed_until.pop(key, None)
        self._register(conn)
        fut.set_result(conn)
        return conn

    def add(self, conn: Connection) -> bool:
        """Adopt an accepted, authenticated connection; False (and closed) if no room."""
        if self._closed or not self._make_room(1):
            conn.close()
            return False
        self._register(conn)
        return True

    def _register(self, conn: Connection) -> None:
        peer = conn.peer
        if peer is None or not conn.is_open:
            return
        self._all.add(conn)
        current = self._by_peer.get(peer.node_id)
        if current is None or not current.is_open or not conn.dialer or current.dialer is False:
            self._by_peer[peer.node_id] = conn
        self._by_peer.move_to_end(peer.node_id)

    def discard(self, conn: Connection) -> None:
        """Forget a closed connection (its on_closed callback)."""
        self._all.discard(conn)
        peer = conn.peer
        if peer is not None and self._by_peer.get(peer.node_id) is conn:
            del self._by_peer[peer.node_id]
            for other in self._all:  # promote another open connection to the same peer
                if other.peer is not None and other.peer.node_id == peer.node_id and other.is_open:
                    self._by_peer[peer.node_id] = other
                    break

    def _make_room(self, needed: int) -> bool:
        limit = self._config.max_connections
        while len(self._all) + len(self._dialing) + needed > limit:
            idle = [c for c in self._all if c.busy == 0]
            if not idle:
                return False
            victim = min(idle, key=lambda c: c.last_activity)
            self.discard(victim)
            victim.close()
        return True

    async def _sweep(self) -> None:
        timeout = self._config.idle_timeout
        interval = min(max(timeout / 4, 0.02), 5.0)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for conn in list(self._all):
                if not conn.is_open:
                    self.discard(conn)
                elif conn.busy == 0 and now - conn.last_activity > timeout:
                    self.discard(conn)
                    conn.close()

    async def close(self) -> None:
        """Stop the sweeper and close every connection."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        for fut in self._dialing.values():
            fut.cancel()
        conns = list(self._all)
        self._all.clear()
        self._by_peer.clear()
        for conn in conns:
            conn.close()
        await close_all(conns)


async def close_all(conns: list[Connection], grace: float = 1.0) -> None:
    """Wait for ``conns`` to close (aborting stragglers after ``grace``) and their tasks."""
    for conn in conns:
        conn.close()
    if conns:
        _, late = await asyncio.wait([asyncio.shield(c.closed) for c in conns], timeout=grace)
        if late:
            for conn in conns:
                if not conn.closed.done():
                    conn.abort()
    await asyncio.gather(*(c.wait_tasks() for c in conns), return_exceptions=True)


def _consume(fut: asyncio.Future[Connection]) -> None:
    if not fut.cancelled():
        fut.exception()


__all__ = ["Dialer", "Pool", "close_all"]
