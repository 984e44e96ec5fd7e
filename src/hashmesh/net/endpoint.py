"""A node's transport endpoint: listen, dial, and dispatch requests to a handler.

::

    async def handler(peer: PeerIdentity, kind: int, body: bytes) -> bytes: ...

    async with Endpoint(identity, handler, TransportConfig()) as ep:
        host, port = await ep.listen("127.0.0.1", 0)
        reply = await ep.request(PeerAddress(node_id, "127.0.0.1", 7400), kind=1, body=b"..")

Connections work both ways: a peer that dialed us can be sent requests over the
same connection. A handler raises a :class:`HashmeshError` to send an error
frame (mapped back to the same class on the requester); any other exception
becomes an 'internal error' frame and is logged here. A handler may return an
async iterable of byte chunks to stream a large response under flow control.
Each peer's requests are admitted by a token bucket; excess ones get a 'busy'
error frame (:class:`PeerBusyError`), not a disconnect. An optional synchronous
``on_message(peer, kind, body) -> bool`` takes one-way messages first (no task per
message); :meth:`Endpoint.send_nowait` sends one on an open connection at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType

from hashmesh.errors import HandshakeError, PeerUnavailableError, UsageError
from hashmesh.identity import Identity
from hashmesh.ids import NodeId
from hashmesh.net.config import TransportConfig
from hashmesh.net.connection import Connection, Handler, MessageHandler
from hashmesh.net.handshake import PeerIdentity
from hashmesh.net.pool import Pool, close_all
from hashmesh.net.ratelimit import TokenBucket
from hashmesh.net.tls import TlsCredentials, make_credentials

_MAX_BUCKETS = 4096


@dataclass(frozen=True, slots=True)
class PeerAddress:
    """Where to reach a peer and the node id it must prove."""

    node_id: NodeId
    host: str
    port: int


class Endpoint:
    """Listens for peers, dials peers, and serves requests with one handler."""

    def __init__(
        self,
        identity: Identity,
        handler: Handler | None = None,
        config: TransportConfig | None = None,
        on_message: MessageHandler | None = None,
    ) -> None:
        self.identity = identity
        self.config = config or TransportConfig()
        self._handler = handler
        self._on_message = on_message
        self._creds: TlsCredentials | None = None
        self._server: asyncio.Server | None = None
        self._pool = Pool(self.config, self._dial)
        self._accepted: weakref.WeakSet[Connection] = weakref.WeakSet()
        self._buckets: OrderedDict[NodeId, TokenBucket] = OrderedDict()
        self._started = False
        self._closed = False

    # ------------------------------------------------------------------ lifecycle
    @property
    def node_id(self) -> NodeId:
        return self.identity.node_id

    @property
    def address(self) -> tuple[str, int] | None:
        """The (host, port) we listen on, once listening."""
        if self._server is None or not self._server.sockets:
            return None
        name = self._server.sockets[0].getsockname()
        return str(name[0]), int(name[1])

    @property
    def pool(self) -> Pool:
        return self._pool

    def _start(self) -> TlsCredentials:
        if self._closed:
            raise UsageError("the endpoint is closed")
        if self._creds is None:
            self._creds = make_credentials(self.identity)
        if not self._started:
            self._started = True
            self._pool.start()
        return self._creds

    async def start(self) -> None:
        """Prepare to dial (listening is separate: :meth:`listen`)."""
        self._start()

    async def listen(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Accept peers on ``host:port`` (0 = any free port); returns the bound address."""
        creds = self._start()
        if self._server is not None:
            raise UsageError("already listening")
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                self._accept,
                host,
                port,
                ssl=creds.server,
                ssl_handshake_timeout=self.config.handshake_timeout,
                reuse_address=True,
            )
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        address = self.address
        assert address is not None
        return address

    async def close(self) -> None:
        """Stop listening, close every connection, and wait for handler tasks."""
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close()
        await self._pool.close()
        await close_all(list(self._accepted))
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None

    async def __aenter__(self) -> Endpoint:
        self._start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ accepting
    def _accept(self) -> Connection:
        creds = self._creds
        assert creds is not None
        conn = Connection(
            self.identity,
            creds.cert_der,
            self.config,
            dialer=False,
            handler=self._handler,
            on_message=self._on_message,
            admit=self._admit,
            on_ready=self._pool.add,
            on_closed=self._pool.discard,
        )
        self._accepted.add(conn)
        return conn

    def _admit(self, peer: PeerIdentity) -> bool:
        rate = self.config.rate_limit
        if rate <= 0:
            return True
        now = asyncio.get_running_loop().time()
        bucket = self._buckets.get(peer.node_id)
        if bucket is None:
            bucket = self._buckets[peer.node_id] = TokenBucket(rate, self.config.rate_burst, now)
            if len(self._buckets) > _MAX_BUCKETS:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(peer.node_id)
        return bucket.take(now)

    # ------------------------------------------------------------------ dialing
    async def _dial(self, host: str, port: int, expected: NodeId | None) -> Connection:
        creds = self._start()
        loop = asyncio.get_running_loop()
        sock = await _tcp_connect(host, port, self.config.connect_timeout)
        conn = Connection(
            self.identity,
            creds.cert_der,
            self.config,
            dialer=True,
            expected=expected,
            handler=self._handler,
            on_message=self._on_message,
            admit=self._admit,
            on_closed=self._pool.discard,
        )
        try:
            async with asyncio.timeout(self.config.handshake_timeout):
                await loop.create_connection(
                    lambda: conn,
                    sock=sock,
                    ssl=creds.client,
                    server_hostname="",
                    ssl_handshake_timeout=self.config.handshake_timeout,
                )
                await conn.ready
        except HandshakeError:
            sock.close()
            raise
        except TimeoutError:
            conn.abort()
            sock.close()
            raise HandshakeError(f"handshake with {host}:{port} timed out") from None
        except (ssl.SSLError, OSError) as exc:
            sock.close()
            raise HandshakeError(f"TLS handshake with {host}:{port} failed: {exc}") from None
        except BaseException:
            conn.abort()
            sock.close()
            raise
        return conn

    async def introduce(self, host: str, port: int) -> PeerIdentity:
        """Dial an address whose node id is not known yet (a bootstrap seed).

        The peer still proves *a* node key over this TLS session; we learn its id
        from the proof instead of checking it against an expected one.
        """
        conn = await self._dial(host, port, None)
        if conn.peer is None or not self._pool.add(conn):
            conn.close()
            raise PeerUnavailableError(f"could not keep a connection to {host}:{port}")
        return conn.peer

    async def connect(self, peer: PeerAddress) -> Connection:
        """The pooled, authenticated connection to ``peer`` (dialed if needed)."""
        self._start()
        return await self._pool.get(peer.node_id, peer.host, peer.port)

    async def request(
        self, peer: PeerAddress, kind: int, body: bytes, timeout: float | None = None
    ) -> bytes:
        """One request to ``peer`` over its pooled connection; the response bytes."""
        conn = await self.connect(peer)
        return await conn.request(kind, body, timeout)

    async def stream(
        self, peer: PeerAddress, kind: int, body: bytes, timeout: float | None = None
    ) -> AsyncIterator[bytes]:
        """A request whose response arrives as flow-controlled chunks."""
        conn = await self.connect(peer)
        async for chunk in conn.stream(kind, body, timeout):
            yield chunk

    async def send(self, peer: PeerAddress, kind: int, body: bytes) -> None:
        """A one-way message to ``peer``."""
        conn = await self.connect(peer)
        await conn.send(kind, body)

    def send_nowait(self, peer: PeerAddress, kind: int, body: bytes) -> bool:
        """Queue a one-way message on an open connection to ``peer`` without waiting.

        False (nothing sent) if there is no open connection or its writes are paused:
        then use :meth:`send`, which dials and waits.
        """
        if self._closed:
            return False
        conn = self._pool.connection_to(peer.node_id)
        return conn is not None and conn.send_nowait(kind, body)


async def _tcp_connect(host: str, port: int, timeout: float) -> socket.socket:
    """A connected non-blocking TCP socket; PeerUnavailableError on any failure."""
    loop = asyncio.get_running_loop()
    last: BaseException | None = None
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            for family, stype, proto, _, addr in infos:
                sock = socket.socket(family, stype, proto)
                try:
                    sock.setblocking(False)
                    await loop.sock_connect(sock, addr)
                except BaseException as exc:
                    sock.close()
                    if not isinstance(exc, OSError):
                        raise
                    last = exc
                    continue
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return sock
    except TimeoutError:
        raise PeerUnavailableError(f"cannot connect to {host}:{port}: timed out") from None
    except OSError as exc:
        raise PeerUnavailableError(f"cannot connect to {host}:{port}: {exc}") from None
    reason = getattr(last, "strerror", None) or last or "no address"
    raise PeerUnavailableError(f"cannot connect to {host}:{port}: {reason}")


__all__ = ["Endpoint", "PeerAddress"]
