"""One authenticated connection: handshake, then multiplexed requests both ways.

A :class:`Connection` is an :class:`asyncio.Protocol` on a TLS transport. It
runs the in-band identity proof (:mod:`hashmesh.net.handshake`), then carries
frames (:mod:`hashmesh.net.framing`) in both directions: each side may send
requests, answer the peer's requests through its handler, and send one-way
messages. Invariants:

* Request ids are allocated per direction and never reused on a connection.
* Our requests in flight are capped by a semaphore (``max_inflight_per_peer``).
* The peer's requests being served are capped (``max_handlers_per_connection``):
  past the cap we stop reading the socket, so TCP pushes back on the peer.
* Writers await the transport's drain when its buffer is over the high-water mark.
* A streamed response flows only as fast as the requester grants credit, so a
  slow consumer never blocks other requests on the connection.
* A protocol violation (oversized or malformed frame) aborts this connection
  only; every request pending on it fails with :class:`PeerUnavailableError`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any

from hashmesh.errors import (
    DecodeError,
    HandshakeError,
    HashmeshError,
    InvalidArgumentError,
    PeerUnavailableError,
    RequestTimeoutError,
)
from hashmesh.identity import Identity
from hashmesh.ids import NodeId
from hashmesh.net.config import TransportConfig
from hashmesh.net.framing import (
    CREDIT,
    HEADER,
    KIND,
    MAX_KIND,
    Code,
    FrameDecoder,
    FrameType,
    encode_error,
    error_from_payload,
    error_payload,
)
from hashmesh.net.handshake import Handshake, PeerIdentity

log = logging.getLogger(__name__)

Reply = bytes | AsyncIterable[bytes]
Handler = Callable[[PeerIdentity, int, bytes], Awaitable[Reply]]
Admit = Callable[[PeerIdentity], bool]
# A synchronous one-way message handler: True if it handled the message (no task is made).
MessageHandler = Callable[[PeerIdentity, int, bytes], bool]

_HANDSHAKE_MAX_FRAME = 256
_SMALL_WRITE = 64 * 1024
_READ_BUFFER = 256 * 1024


class _Inbound:
    """Requester side of one streamed response: a bounded queue of chunks."""

    __slots__ = ("chunks", "done", "error", "waiter")

    def __init__(self) -> None:
        self.chunks: deque[bytes] = deque()
        self.done = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class Connection(asyncio.BufferedProtocol):
    """An authenticated, multiplexed connection to one peer."""

    def __init__(
        self,
        identity: Identity,
        cert_der: bytes,
        config: TransportConfig,
        *,
        dialer: bool,
        expected: NodeId | None = None,
        handler: Handler | None = None,
        admit: Admit | None = None,
        on_ready: Callable[[Connection], object] | None = None,
        on_closed: Callable[[Connection], None] | None = None,
        on_message: MessageHandler | None = None,
    ) -> None:
        self._identity = identity
        self._cert_der = cert_der
        self._config = config
        self.dialer = dialer
        self._expected = expected
        self._handler = handler
        self._admit = admit
        self._on_ready = on_ready
        self._on_closed = on_closed
        self._on_message = on_message
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._decoder = FrameDecoder(_HANDSHAKE_MAX_FRAME)
        self._rview = memoryview(bytearray(_READ_BUFFER))
        self._handshake: Handshake | None = None
        self._hs_timer: asyncio.TimerHandle | None = None
        self.ready: asyncio.Future[PeerIdentity] = self._loop.create_future()
        self.ready.add_done_callback(_consume)
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self.peer: PeerIdentity | None = None
        self.close_reason: BaseException | None = None
        self._next_id = 1
        self._pending: dict[int, asyncio.Future[bytes]] = {}
        self._gather: dict[int, list[bytes]] = {}
        self._inbound: dict[int, _Inbound] = {}
        self._inflight = asyncio.Semaphore(config.max_inflight_per_peer)
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._oneway: set[asyncio.Task[None]] = set()
        self._credits: dict[int, list[Any]] = {}  # rid -> [credit, waiter future | None]
        self._write_paused = False
        self._wbuf: list[bytes] = []
        self._wbuf_size = 0
        self._flush_handle: asyncio.Handle | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._read_paused = False
        self.last_activity = self._loop.time()

    # ------------------------------------------------------------------ state
    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self.closed.done()

    @property
    def busy(self) -> int:
        """Requests in flight in either direction."""
        return len(self._pending) + len(self._inbound) + len(self._tasks)

    def __repr__(self) -> str:
        who = self.peer or (self._expected.short() if self._expected else "?")
        return f"<Connection {'to' if self.dialer else 'from'} {who}>"

    # ------------------------------------------------------------------ asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        timeout = self._config.handshake_timeout
        self._hs_timer = self._loop.call_later(timeout, self._handshake_timed_out)
        ssl_object = transport.get_extra_info("ssl_object")
        peer_cert = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        try:
            if not peer_cert:
                raise HandshakeError("peer presented no TLS certificate")
            self._handshake = Handshake(
                self._identity,
                dialer=self.dialer,
                own_cert=self._cert_der,
                peer_cert=peer_cert,
                expected=self._expected,
                difficulty=self._config.puzzle_difficulty,
            )
        except HandshakeError as exc:
            self._fail(exc)
            return
        self._write(FrameType.HELLO, 0, self._handshake.hello())

    def connection_lost(self, exc: Exception | None) -> None:
        self._shutdown(exc)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def get_buffer(self, sizehint: int) -> memoryview:
        # One reusable receive buffer: the SSL layer decrypts straight into it.
        return self._rview

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._rview[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
        self.last_activity = self._loop.time()
        decoder = self._decoder
        try:
            decoder.push(data)
            while (frame := decoder.pop_split()) is not None:
                if self.peer is None:
                    self._handshake_frame(frame[0], frame[1], frame[3])
                else:
                    self._frame(*frame)
                if self._transport is None or self.closed.done():
                    return
        except (DecodeError, HandshakeError) as exc:
            self._fail(exc)

    def eof_received(self) -> bool | None:
        return False  # close the connection

    # ------------------------------------------------------------------ handshake
    def _handshake_frame(self, ftype: int, rid: int, payload: bytes) -> None:
        hs = self._handshake
        if hs is None:
            raise HandshakeError("handshake not started")
        if ftype == FrameType.HELLO:
            self._write(FrameType.PROOF, 0, hs.receive_hello(payload))
        elif ftype == FrameType.PROOF:
            proven = hs.receive_proof(payload)
            host, port = _peer_address(self._transport)
            self.peer = PeerIdentity(proven.node_id, proven.public_key, host, port)
            self._decoder.max_frame = self._config.max_frame
            self._handshake = None
            if self._hs_timer is not None:
                self._hs_timer.cancel()
            self.ready.set_result(self.peer)
            if self._on_ready is not None:
                self._on_ready(self)
        else:
            raise HandshakeError(f"frame type 0x{ftype:02x} before the identity proof")

    def _handshake_timed_out(self) -> None:
        if self.peer is None:
            self._fail(HandshakeError("identity handshake timed out"))

    # ------------------------------------------------------------------ frames
    def _frame(self, ftype: int, rid: int, kind: int, payload: bytes) -> None:
        if ftype == FrameType.RESPONSE:
            self._settle(rid, payload, None)
        elif ftype == FrameType.REQUEST:
            self._serve(rid, kind, payload)
        elif ftype == FrameType.STREAM:
            self._chunk(rid, payload)
        elif ftype == FrameType.CREDIT:
            entry = self._credits.get(rid)
            if entry is not None:
                entry[0] += CREDIT.unpack(payload)[0]
                if entry[1] is not None and not entry[1].done():
                    entry[1].set_result(None)
        elif ftype == FrameType.STREAM_END:
            self._stream_end(rid)
        elif ftype == FrameType.ERROR:
            self._settle(rid, None, error_from_payload(payload, str(self.peer)))
        elif ftype == FrameType.MESSAGE:
            self._message(kind, payload)
        elif ftype == FrameType.CANCEL:
            task = self._tasks.get(rid)
            if task is not None:
                task.cancel()
        else:
            raise DecodeError(f"frame type 0x{ftype:02x} after the handshake")

    def _settle(self, rid: int, payload: bytes | None, error: BaseException | None) -> None:
        """A RESPONSE or ERROR for request ``rid``; late answers are dropped."""
        fut = self._pending.pop(rid, None)
        if fut is not None:
            self._gather.pop(rid, None)
            if not fut.done():
                if error is not None:
                    fut.set_exception(error)
                else:
                    fut.set_result(payload or b"")
            return
        inbound = self._inbound.get(rid)
        if inbound is not None:
            if error is not None:
                inbound.error = error
            else:
                inbound.chunks.append(payload or b"")
            inbound.done = True
            inbound.wake()

    def _chunk(self, rid: int, payload: bytes) -> None:
        inbound = self._inbound.get(rid)
        if inbound is not None:
            if len(inbound.chunks) > self._config.stream_window + 1:
                raise DecodeError("peer sent stream chunks beyond its credit")
            inbound.chunks.append(payload)
            inbound.wake()
            return
        parts = self._gather.get(rid)
        if rid in self._pending:
            credit = 1
            if parts is None:
                parts = self._gather[rid] = []
                credit = self._config.stream_window
            parts.append(payload)
            self._write(FrameType.CREDIT, rid, CREDIT.pack(credit))

    def _stream_end(self, rid: int) -> None:
        if rid in self._pending:
            self._settle(rid, b"".join(self._gather.get(rid, ())), None)
            return
        inbound = self._inbound.get(rid)
        if inbound is not None:
            inbound.done = True
            inbound.wake()

    # ------------------------------------------------------------------ serving
    def _serve(self, rid: int, kind: int, body: bytes) -> None:
        peer = self.peer
        assert peer is not None
        if self._handler is None:
            self._write(FrameType.ERROR, rid, encode_error(Code.UNKNOWN_KIND, "no handler"))
            return
        if self._admit is not None and not self._admit(peer):
            self._write(FrameType.ERROR, rid, encode_error(Code.BUSY, "rate limit exceeded"))
            return
        task = self._loop.create_task(self._run_handler(rid, kind, body))
        self._tasks[rid] = task
        if len(self._tasks) >= self._config.max_handlers_per_connection and self._transport:
            self._read_paused = True
            self._transport.pause_reading()

    async def _run_handler(self, rid: int, kind: int, body: bytes) -> None:
        assert self._handler is not None and self.peer is not None
        try:
            reply = await self._handler(self.peer, kind, body)
            if isinstance(reply, bytes | bytearray | memoryview):
                if len(reply) > self._config.max_frame:
                    self._write(
                        FrameType.ERROR,
                        rid,
                        encode_error(Code.CAPACITY, "response exceeds the frame limit"),
                    )
                else:
                    self._write(FrameType.RESPONSE, rid, bytes(reply))
            else:
                await self._send_stream(rid, reply)
            await self.drain()
        except asyncio.CancelledError:
            pass  # the requester gave up, or we are closing
        except HashmeshError as exc:
            self._write(FrameType.ERROR, rid, error_payload(exc))
        except Exception:
            log.exception("handler failed on request kind %d from %s", kind, self.peer)
            self._write(FrameType.ERROR, rid, error_payload(RuntimeError()))
        finally:
            self._tasks.pop(rid, None)
            self._credits.pop(rid, None)
            if self._read_paused and len(self._tasks) < self._config.max_handlers_per_connection:
                self._read_paused = False
                if self._transport is not None and not self.closed.done():
                    self._transport.resume_reading()

    async def _send_stream(self, rid: int, chunks: AsyncIterable[bytes]) -> None:
        entry: list[Any] = [1, None]  # one chunk may go before any CREDIT
        self._credits[rid] = entry
        iterator = chunks.__aiter__()
        try:
            async for chunk in iterator:
                if len(chunk) > self._config.max_frame:
                    raise InvalidArgumentError("stream chunk exceeds the frame limit")
                while entry[0] <= 0:
                    entry[1] = self._loop.create_future()
                    await entry[1]
                entry[0] -= 1
                self._write(FrameType.STREAM, rid, bytes(chunk))
                if self._write_paused:
                    await self.drain()
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
        self._write(FrameType.STREAM_END, rid)

    def _message(self, kind: int, body: bytes) -> None:
        if self.peer is None:
            return
        if self._admit is not None and not self._admit(self.peer):
            return
        if self._on_message is not None:
            try:
                if self._on_message(self.peer, kind, body):
                    return  # handled at once, no task
            except Exception:
                log.exception("handler failed on one-way message kind %d from %s", kind, self.peer)
                return
        if self._handler is None:
            return
        task = self._loop.create_task(self._run_oneway(kind, body))
        self._oneway.add(task)
        task.add_done_callback(self._oneway.discard)

    async def _run_oneway(self, kind: int, body: bytes) -> None:
        assert self._handler is not None and self.peer is not None
        try:
            reply = await self._handler(self.peer, kind, body)
            if not isinstance(reply, bytes | bytearray | memoryview):
                aclose = getattr(reply, "aclose", None)
                if aclose is not None:
                    await aclose()
        except HashmeshError as exc:
            log.debug("one-way message kind %d from %s refused: %s", kind, self.peer, exc)
        except Exception:
            log.exception("handler failed on one-way message kind %d from %s", kind, self.peer)

    # ------------------------------------------------------------------ requesting
    def _check_usable(self, kind: int, body: bytes) -> None:
        if not 0 <= kind <= MAX_KIND:
            raise InvalidArgumentError(f"request kind must be 0..{MAX_KIND}, got {kind}")
        if not self.is_open or self.peer is None:
            raise PeerUnavailableError(f"connection to {self.peer or '?'} is closed")
        if len(body) + 2 > self._config.max_frame:
            raise InvalidArgumentError(
                f"payload of {len(body)} bytes exceeds the frame limit {self._config.max_frame}"
            )

    async def request(self, kind: int, body: bytes, timeout: float | None = None) -> bytes:
        """Send a request and await its response bytes (a streamed one is joined).

        Raises the mapped :mod:`hashmesh.errors` class for an ERROR frame,
        :class:`RequestTimeoutError` past ``timeout`` (default: the config's),
        :class:`PeerUnavailableError` if the connection drops.
        """
        self._check_usable(kind, body)
        timeout = self._config.request_timeout if timeout is None else timeout
        loop = self._loop
        deadline = loop.time() + timeout
        sem = self._inflight
        if sem.locked():
            try:
                async with asyncio.timeout(timeout):
                    await sem.acquire()
            except TimeoutError:
                raise self._timeout_error(kind, timeout) from None
        else:
            await sem.acquire()  # free slot: returns without suspending
        try:
            if not self.is_open:
                raise PeerUnavailableError(f"connection to {self.peer} is closed")
            rid = self._next_id
            self._next_id += 1
            fut: asyncio.Future[bytes] = loop.create_future()
            self._pending[rid] = fut
            self._write(FrameType.REQUEST, rid, body, kind)
            timer = loop.call_at(deadline, self._expire, fut, kind, timeout)
            try:
                if self._write_paused:
                    await self.drain()
                return await fut
            finally:
                timer.cancel()
                if self._pending.pop(rid, None) is not None:  # timed out or cancelled
                    self._gather.pop(rid, None)
                    self._cancel_remote(rid)
        finally:
            sem.release()

    def _timeout_error(self, kind: int, timeout: float) -> RequestTimeoutError:
        return RequestTimeoutError(
            f"no answer from {self.peer} to request kind {kind} within {timeout:g}s"
        )

    def _expire(self, fut: asyncio.Future[bytes], kind: int, timeout: float) -> None:
        if not fut.done():
            fut.set_exception(self._timeout_error(kind, timeout))

    async def stream(
        self, kind: int, body: bytes, timeout: float | None = None
    ) -> AsyncIterator[bytes]:
        """Send a request and yield its response in chunks, with flow control.

        ``timeout`` bounds the wait for each chunk. At most ``stream_window + 1``
        chunks are buffered. Leaving the loop early cancels the request.
        """
        self._check_usable(kind, body)
        timeout = self._config.request_timeout if timeout is None else timeout
        window = self._config.stream_window
        async with self._inflight:
            rid = self._next_id
            self._next_id += 1
            inbound = self._inbound[rid] = _Inbound()
            granted = False
            try:
                self._write(FrameType.REQUEST, rid, body, kind)
                while True:
                    if not inbound.chunks and not inbound.done:
                        if not self.is_open:
                            raise PeerUnavailableError(f"connection to {self.peer} closed")
                        inbound.waiter = self._loop.create_future()
                        try:
                            async with asyncio.timeout(timeout):
                                await inbound.waiter
                        except TimeoutError:
                            raise RequestTimeoutError(
                                f"no data from {self.peer} for request kind {kind} "
                                f"within {timeout:g}s"
                            ) from None
                        continue
                    if inbound.chunks:
                        chunk = inbound.chunks.popleft()
                        if not inbound.done:
                            credit = 1 if granted else window
                            granted = True
                            self._write(FrameType.CREDIT, rid, CREDIT.pack(credit))
                        yield chunk
                        continue
                    if inbound.error is not None:
                        raise inbound.error
                    return
            finally:
                del self._inbound[rid]
                if not inbound.done:
                    self._cancel_remote(rid)

    async def send(self, kind: int, body: bytes) -> None:
        """Send a one-way message (no answer, no delivery guarantee)."""
        self._check_usable(kind, body)
        self._write(FrameType.MESSAGE, 0, body, kind)
        await self.drain()

    def send_nowait(self, kind: int, body: bytes) -> bool:
        """Queue a one-way message now; False (nothing queued) while writing is paused."""
        self._check_usable(kind, body)
        if self._write_paused:
            return False
        self._write(FrameType.MESSAGE, 0, body, kind)
        return True

    def _cancel_remote(self, rid: int) -> None:
        if self.is_open:
            self._write(FrameType.CANCEL, rid)

    # ------------------------------------------------------------------ writing and closing
    def _write(self, ftype: int, rid: int, payload: bytes = b"", kind: int = -1) -> None:
        """Queue one frame. Small frames are coalesced into one write per loop turn.

        ``kind`` >= 0 prefixes the payload with it (REQUEST, MESSAGE) without a copy.
        """
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if kind >= 0:
            header = HEADER.pack(len(payload) + 2, ftype, rid) + KIND.pack(kind)
        else:
            header = HEADER.pack(len(payload), ftype, rid)
        if len(payload) > _SMALL_WRITE:
            if self._wbuf:
                self._flush()
            transport.write(header)
            transport.write(payload)
            return
        self._wbuf.append(header + payload if payload else header)
        self._wbuf_size += len(payload) + len(header)
        if self._wbuf_size > _SMALL_WRITE:
            self._flush()
        elif self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._wbuf:
            return
        data = b"".join(self._wbuf) if len(self._wbuf) > 1 else self._wbuf[0]
        self._wbuf.clear()
        self._wbuf_size = 0
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    async def drain(self) -> None:
        """Wait while the transport's write buffer is over its high-water mark."""
        while self._write_paused and not self.closed.done():
            if self._drain_waiter is None or self._drain_waiter.done():
                self._drain_waiter = self._loop.create_future()
            await self._drain_waiter  # resolved by resume_writing() or _shutdown()

    def _fail(self, exc: BaseException) -> None:
        """Protocol violation or failed handshake: drop this connection now."""
        log.debug("closing %r: %s", self, exc)
        if self.peer is None and not isinstance(exc, HandshakeError):
            exc = HandshakeError(f"bad handshake: {exc}")
        if self.close_reason is None:
            self.close_reason = exc
        if not self.ready.done():
            self.ready.set_exception(exc)
        if self._transport is not None:
            self._transport.abort()
        self._shutdown(exc)

    def close(self) -> None:
        """Close gracefully (buffered writes are flushed first)."""
        self._flush()
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()
        if self._transport is None:
            self._shutdown(None)

    def abort(self) -> None:
        """Drop the connection at once, discarding buffered writes."""
        if self._transport is not None:
            self._transport.abort()
        self._shutdown(None)

    async def wait_tasks(self) -> None:
        """Wait until every handler task of this connection has finished."""
        tasks = [*self._tasks.values(), *self._oneway]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def aclose(self) -> None:
        """Close and wait until the connection is gone."""
        self.close()
        await asyncio.shield(self.closed)

    def _shutdown(self, exc: BaseException | None) -> None:
        if self.closed.done():
            return
        if self._hs_timer is not None:
            self._hs_timer.cancel()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._wbuf.clear()
        reason = self.close_reason or exc
        self.close_reason = reason
        if not self.ready.done():
            self.ready.set_exception(
                reason
                if isinstance(reason, HashmeshError)
                else HandshakeError(f"connection closed during the handshake: {reason or 'eof'}")
            )
        gone = PeerUnavailableError(
            f"connection to {self.peer or '?'} lost" + (f": {reason}" if reason else "")
        )
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(gone)
        self._pending.clear()
        self._gather.clear()
        for inbound in self._inbound.values():
            if not inbound.done:
                inbound.error = gone
                inbound.done = True
                inbound.wake()
        for task in (*self._tasks.values(), *self._oneway):
            task.cancel()
        for entry in self._credits.values():
            if entry[1] is not None and not entry[1].done():
                entry[1].cancel()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)
        self.closed.set_result(None)
        if self._on_closed is not None:
            self._on_closed(self)


def _consume(fut: asyncio.Future[Any]) -> None:
    """Mark a future's exception as retrieved (nobody may be awaiting it)."""
    if not fut.cancelled():
        fut.exception()


def _peer_address(transport: asyncio.BaseTransport | None) -> tuple[str, int]:
    info = transport.get_extra_info("peername") if transport is not None else None
    if isinstance(info, tuple) and len(info) >= 2:
        return str(info[0]), int(info[1])
    return "", 0


__all__ = ["Admit", "Connection", "Handler", "Reply"]
