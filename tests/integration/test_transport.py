"""The transport over real TCP on 127.0.0.1: auth, attacks, multiplexing, limits."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import time
from collections.abc import AsyncIterator

import blake3
import pytest

from hashmesh.errors import (
    HandshakeError,
    IntegrityError,
    NetworkError,
    NotFoundError,
    PeerBusyError,
    PeerUnavailableError,
    RequestTimeoutError,
)
from hashmesh.identity import Identity
from hashmesh.net import Endpoint, PeerAddress, PeerIdentity, TransportConfig, run
from hashmesh.net.framing import HEADER, FrameType, encode_frame, join_kind
from hashmesh.net.handshake import Handshake
from hashmesh.net.tls import make_credentials

MiB = 1 << 20
ECHO, FAIL, SLOW, BLOB, CRASH, UPLOAD, NOTE = 1, 2, 3, 4, 5, 6, 7
FAST = {"handshake_timeout": 1.0, "connect_timeout": 1.0, "request_timeout": 5.0}


def ident(n: int) -> Identity:
    return Identity.from_private_bytes(n.to_bytes(32, "big"))


def blob_chunk(i: int, size: int) -> bytes:
    """Deterministic pseudo-random chunk ``i`` of a blob."""
    return random.Random(i).randbytes(size)


class Service:
    """A test handler with a few request kinds; records what it saw."""

    def __init__(self) -> None:
        self.peers: list[PeerIdentity] = []
        self.cancelled = 0
        self.notes: list[bytes] = []
        self.produced = 0
        self.upload = blake3.blake3()

    async def __call__(self, peer: PeerIdentity, kind: int, body: bytes):
        self.peers.append(peer)
        if kind == ECHO:
            return body
        if kind == FAIL:
            raise NotFoundError(f"no such thing: {body.decode()}")
        if kind == SLOW:
            delay = struct.unpack(">d", body[:8])[0]
            try:
                await asyncio.sleep(delay)
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
            return body
        if kind == BLOB:
            count, size = struct.unpack(">II", body)
            return self._blob(count, size)
        if kind == CRASH:
            raise ZeroDivisionError("bug in handler")
        if kind == UPLOAD:
            self.upload.update(body)
            return b"ok"
        if kind == NOTE:
            self.notes.append(body)
            return b""
        raise IntegrityError("unexpected kind")

    async def _blob(self, count: int, size: int) -> AsyncIterator[bytes]:
        for i in range(count):
            self.produced += 1
            yield blob_chunk(i, size)


@contextlib.asynccontextmanager
async def server(n: int = 1, **cfg: object) -> AsyncIterator[tuple[Endpoint, PeerAddress, Service]]:
    svc = Service()
    async with Endpoint(ident(n), svc, TransportConfig(**{**FAST, **cfg})) as ep:
        host, port = await ep.listen("127.0.0.1", 0)
        yield ep, PeerAddress(ep.node_id, host, port), svc


@contextlib.asynccontextmanager
async def client(n: int = 100, **cfg: object) -> AsyncIterator[Endpoint]:
    async with Endpoint(ident(n), Service(), TransportConfig(**{**FAST, **cfg})) as ep:
        yield ep


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, int, bytes]:
    length, ftype, rid = HEADER.unpack(await reader.readexactly(HEADER.size))
    return ftype, rid, await reader.readexactly(length)


async def raw_session(addr: PeerAddress, me: Identity, *, prove: bool = True):
    """A hand-driven client: TLS plus (optionally) the identity proof, then raw frames."""
    creds = make_credentials(me)
    reader, writer = await asyncio.open_connection(
        addr.host, addr.port, ssl=creds.client, server_hostname=""
    )
    if prove:
        peer_cert = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        hs = Handshake(
            me, dialer=True, own_cert=creds.cert_der, peer_cert=peer_cert, expected=addr.node_id
        )
        writer.write(encode_frame(FrameType.HELLO, 0, hs.hello()))
        ftype, _, payload = await read_frame(reader)
        assert ftype == FrameType.HELLO
        writer.write(encode_frame(FrameType.PROOF, 0, hs.receive_hello(payload)))
        ftype, _, payload = await read_frame(reader)
        assert ftype == FrameType.PROOF
        hs.receive_proof(payload)
    return reader, writer


async def assert_closed(reader: asyncio.StreamReader, within: float = 2.0) -> None:
    async with asyncio.timeout(within):
        with contextlib.suppress(ConnectionError, OSError):
            while await reader.read(65536):
                pass


# ---------------------------------------------------------------------------- authentication


async def test_mutual_auth_and_both_directions() -> None:
    async with server() as (srv, addr, svc), client() as cli:
        assert await cli.request(addr, ECHO, b"ping") == b"ping"
        assert svc.peers[-1].node_id == cli.node_id
        conn = await cli.connect(addr)
        assert conn.peer is not None and conn.peer.node_id == srv.node_id
        # the listener can use the accepted connection to call the dialer back
        back = srv.pool.connection_to(cli.node_id)
        assert back is not None
        assert await back.request(ECHO, b"pong") == b"pong"
        assert len(cli.pool) == 1 and len(srv.pool) == 1


async def test_wrong_expected_id_refused() -> None:
    async with server() as (_, addr, svc), client() as cli:
        wrong = PeerAddress(ident(99).node_id, addr.host, addr.port)
        with pytest.raises(HandshakeError, match="expected"):
            await cli.request(wrong, ECHO, b"x")
        assert svc.peers == []
        assert await cli.request(addr, ECHO, b"still fine") == b"still fine"


class Relay:
    """A man in the middle: terminates TLS on both sides with its own certificate
    (a valid hashmesh one) and forwards the inner bytes unchanged."""

    def __init__(self, target: PeerAddress) -> None:
        self.target = target
        self.creds = make_credentials(ident(666))
        self.forwarded = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> PeerAddress:
        self.server = await asyncio.start_server(
            self._handle, "127.0.0.1", 0, ssl=self.creds.server
        )
        port = self.server.sockets[0].getsockname()[1]
        return PeerAddress(self.target.node_id, "127.0.0.1", port)

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await r.read(65536):
                self.forwarded += len(data)
                w.write(data)
                await w.drain()
        w.close()

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        sr, sw = await asyncio.open_connection(
            self.target.host, self.target.port, ssl=self.creds.client, server_hostname=""
        )
        await asyncio.gather(self._pipe(cr, sw), self._pipe(sr, cw))


async def test_man_in_the_middle_relay_refused() -> None:
    async with server() as (srv, addr, svc), client() as cli:
        relay = Relay(addr)
        async with relay as via:
            with pytest.raises(HandshakeError):
                await cli.request(via, ECHO, b"secret")
            assert relay.forwarded > 0  # the relay did carry the handshake bytes
        assert svc.peers == []
        await asyncio.sleep(0.05)
        assert len(srv.pool) == 0  # the server refused the relayed dialer too
        assert await cli.request(addr, ECHO, b"direct") == b"direct"


async def test_garbage_and_silence_before_handshake() -> None:
    async with server() as (_, addr, _svc), client() as cli:
        # plain-TCP garbage instead of a TLS ClientHello
        r, w = await asyncio.open_connection(addr.host, addr.port)
        w.write(b"GET / HTTP/1.0\r\n\r\n" * 10)
        await assert_closed(r)
        w.close()
        # TLS, then garbage instead of HELLO
        r, w = await raw_session(addr, ident(101), prove=False)
        w.write(b"\x00" * 64)
        await assert_closed(r)
        w.close()
        # TLS, then a request frame before the identity proof
        r, w = await raw_session(addr, ident(102), prove=False)
        w.write(encode_frame(FrameType.REQUEST, 1, join_kind(ECHO, b"x")))
        await assert_closed(r)
        w.close()
        # TLS, then silence: closed after the handshake timeout
        r, w = await raw_session(addr, ident(103), prove=False)
        t0 = time.monotonic()
        await assert_closed(r, within=3.0)
        assert 0.5 < time.monotonic() - t0 < 3.0
        w.close()
        assert await cli.request(addr, ECHO, b"alive") == b"alive"


async def test_dialing_a_peer_that_never_speaks_times_out() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)  # accepts TCP (kernel backlog), never sends a byte
    port = silent.getsockname()[1]
    try:
        async with client(handshake_timeout=0.3) as cli:
            t0 = time.monotonic()
            with pytest.raises(HandshakeError, match="timed out"):
                await cli.request(PeerAddress(ident(5).node_id, "127.0.0.1", port), ECHO, b"x")
            assert time.monotonic() - t0 < 1.5
    finally:
        silent.close()


async def test_dead_peer_fails_fast() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    async with client() as cli:
        dead = PeerAddress(ident(5).node_id, "127.0.0.1", port)
        t0 = time.monotonic()
        with pytest.raises(PeerUnavailableError):
            await cli.request(dead, ECHO, b"x")
        with pytest.raises(PeerUnavailableError, match="recently"):
            await cli.request(dead, ECHO, b"x")  # backoff: no second dial
        assert time.monotonic() - t0 < 0.5


# ---------------------------------------------------------------------------- multiplexing


async def test_pipelining_1000_requests_on_one_connection() -> None:
    rng = random.Random(7)
    async with server() as (_, addr, _svc), client(max_inflight_per_peer=1000) as cli:

        async def one(i: int) -> None:
            delay = rng.random() * 0.05
            body = struct.pack(">d", delay) + i.to_bytes(4, "big") * rng.randint(1, 50)
            assert await cli.request(addr, SLOW, body) == body

        await asyncio.gather(*(one(i) for i in range(1000)))
        assert len(cli.pool) == 1


async def test_per_request_timeout_cancels_remote_work() -> None:
    async with server() as (_, addr, svc), client() as cli:
        body = struct.pack(">d", 30.0)
        t0 = time.monotonic()
        with pytest.raises(RequestTimeoutError):
            await cli.request(addr, SLOW, body, timeout=0.1)
        assert time.monotonic() - t0 < 1.0
        for _ in range(100):
            if svc.cancelled:
                break
            await asyncio.sleep(0.01)
        assert svc.cancelled == 1
        assert await cli.request(addr, ECHO, b"after") == b"after"


async def test_errors_map_to_the_error_tree() -> None:
    async with server() as (_, addr, _svc), client() as cli:
        with pytest.raises(NotFoundError, match="no such thing: abc"):
            await cli.request(addr, FAIL, b"abc")
        with pytest.raises(NetworkError, match="internal error") as info:
            await cli.request(addr, CRASH, b"")
        assert "bug in handler" not in str(info.value)
        assert await cli.request(addr, ECHO, b"ok") == b"ok"


async def test_oversized_and_malformed_frames_close_only_that_connection() -> None:
    async with server(max_frame=64 * 1024) as (_, addr, _svc), client() as good:
        assert await good.request(addr, ECHO, b"before") == b"before"
        # a peer whose limit is larger sends a frame over the server's limit
        async with client(n=101, max_frame=1 * MiB) as big:
            with pytest.raises(PeerUnavailableError):
                await big.request(addr, ECHO, b"x" * (128 * 1024))
        # a hand-driven peer announces an 1 GiB frame, another sends an unknown type
        r, w = await raw_session(addr, ident(102))
        w.write(HEADER.pack(1 << 30, FrameType.REQUEST, 1))
        await assert_closed(r)
        w.close()
        r, w = await raw_session(addr, ident(103))
        w.write(encode_frame(0x66, 1, b"??"))
        await assert_closed(r)
        w.close()
        assert await good.request(addr, ECHO, b"after") == b"after"
        assert len(good.pool) == 1  # the good connection was never dropped


async def test_rate_limit_answers_busy_without_disconnecting() -> None:
    async with server(rate_limit=5.0, rate_burst=10) as (_, addr, _svc), client() as cli:
        results = await asyncio.gather(
            *(cli.request(addr, ECHO, b"%d" % i) for i in range(40)), return_exceptions=True
        )
        ok = [r for r in results if isinstance(r, bytes)]
        busy = [r for r in results if isinstance(r, PeerBusyError)]
        assert len(ok) == 10 and len(busy) == 30
        conn = await cli.connect(addr)
        assert conn.is_open
        await asyncio.sleep(0.25)  # the bucket refills
        assert await cli.request(addr, ECHO, b"later") == b"later"


async def until_noted(svc: Service) -> None:
    """Wait (at most a second) until the async handler has run for a one-way note."""
    for _ in range(100):
        if svc.notes:
            return
        await asyncio.sleep(0.01)


async def test_one_way_message() -> None:
    async with server() as (_, addr, svc), client() as cli:
        await cli.send(addr, NOTE, b"hello")
        await cli.request(addr, ECHO, b"sync")  # frames arrive in order
        await until_noted(svc)
        assert svc.notes == [b"hello"]


async def test_synchronous_message_handler_and_send_nowait() -> None:
    """on_message takes one-way messages first (False passes them on); send_nowait only
    sends on an open connection."""
    seen: list[tuple[int, bytes]] = []

    def on_message(peer: PeerIdentity, kind: int, body: bytes) -> bool:
        seen.append((kind, body))
        return kind == NOTE + 1

    svc = Service()
    async with Endpoint(ident(1), svc, TransportConfig(**FAST), on_message=on_message) as srv:
        host, port = await srv.listen("127.0.0.1", 0)
        addr = PeerAddress(srv.node_id, host, port)
        async with client() as cli:
            assert not cli.send_nowait(addr, NOTE + 1, b"no connection yet")
            await cli.connect(addr)
            for i in range(50):
                assert cli.send_nowait(addr, NOTE + 1, b"%d" % i)
            assert cli.send_nowait(addr, NOTE, b"to the async handler")
            await cli.request(addr, ECHO, b"sync")  # frames arrive in order
            await until_noted(svc)
    assert seen[:50] == [(NOTE + 1, b"%d" % i) for i in range(50)]
    assert seen[50] == (NOTE, b"to the async handler")
    assert svc.notes == [b"to the async handler"]


# ---------------------------------------------------------------------------- pool


async def test_idle_close_and_reconnect() -> None:
    async with server(idle_timeout=0.2) as (srv, addr, _svc), client(idle_timeout=0.2) as cli:
        first = await cli.connect(addr)
        assert await cli.request(addr, ECHO, b"1") == b"1"
        for _ in range(200):
            if not first.is_open and len(cli.pool) == 0:
                break
            await asyncio.sleep(0.01)
        assert not first.is_open and len(cli.pool) == 0
        assert await cli.request(addr, ECHO, b"2") == b"2"
        assert (await cli.connect(addr)) is not first
        assert len(srv.pool) == 1


async def test_connection_cap_evicts_least_recently_used_idle() -> None:
    async with (
        server(1) as (_, a1, _s1),
        server(2) as (_, a2, _s2),
        server(3) as (_, a3, _s3),
        client(max_connections=2) as cli,
    ):
        c1 = await cli.connect(a1)
        await cli.connect(a2)
        await cli.request(a2, ECHO, b"x")
        await cli.connect(a3)
        assert len(cli.pool) == 2
        await asyncio.sleep(0.05)
        assert not c1.is_open  # least recently used went first
        assert await cli.request(a1, ECHO, b"back") == b"back"
        assert len(cli.pool) == 2


# ---------------------------------------------------------------------------- bulk data


async def test_64_mib_streamed_download_integrity_and_bounded_buffering() -> None:
    chunk, count = 1 * MiB, 64
    async with server() as (_, addr, svc), client(stream_window=4) as cli:
        expected = blake3.blake3()
        for i in range(count):
            expected.update(blob_chunk(i, chunk))
        got = blake3.blake3()
        n = 0
        async for part in cli.stream(addr, BLOB, struct.pack(">II", count, chunk)):
            got.update(part)
            n += 1
            assert svc.produced - n <= 4 + 2  # the producer never runs far ahead
            if n % 16 == 0:
                await asyncio.sleep(0.01)  # a slow consumer
        assert n == count and got.digest() == expected.digest()


async def test_64_mib_upload_in_pipelined_requests() -> None:
    async with server() as (_, addr, svc), client(max_inflight_per_peer=4) as cli:
        parts = [blob_chunk(i, 4 * MiB) for i in range(16)]
        expected = blake3.blake3()
        for p in parts:
            expected.update(p)
        for p in parts:  # in order, so the server's running hash matches
            assert await cli.request(addr, UPLOAD, p) == b"ok"
        assert svc.upload.digest() == expected.digest()
        # and a joined streamed reply through the plain request() call
        joined = await cli.request(addr, BLOB, struct.pack(">II", 8, 256 * 1024))
        assert joined == b"".join(blob_chunk(i, 256 * 1024) for i in range(8))


async def test_clean_shutdown_fails_pending_and_leaves_no_tasks() -> None:
    async with server() as (srv, addr, _svc):
        cli = Endpoint(ident(100), None, TransportConfig(**FAST))
        pending = asyncio.ensure_future(cli.request(addr, SLOW, struct.pack(">d", 30.0)))
        await asyncio.sleep(0.2)
        await srv.close()
        with pytest.raises(PeerUnavailableError):
            await pending
        await cli.close()
    await asyncio.sleep(0)
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert others == []


# ---------------------------------------------------------------------------- uvloop


def test_core_scenarios_on_uvloop() -> None:
    pytest.importorskip("uvloop")

    async def scenario() -> str:
        async with server() as (_, addr, _svc), client(max_inflight_per_peer=500) as cli:
            bodies = [b"%d" % i for i in range(500)]
            assert await asyncio.gather(*(cli.request(addr, ECHO, b) for b in bodies)) == bodies
            with pytest.raises(NotFoundError):
                await cli.request(addr, FAIL, b"z")
            parts = [p async for p in cli.stream(addr, BLOB, struct.pack(">II", 8, MiB))]
            assert parts == [blob_chunk(i, MiB) for i in range(8)]
        async with server() as (_, addr, _svc), client() as fresh, Relay(addr) as via:
            with pytest.raises(HandshakeError):
                await fresh.request(via, ECHO, b"x")
            return type(asyncio.get_running_loop()).__module__

    assert run(scenario()).startswith("uvloop")
