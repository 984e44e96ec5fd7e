"""Transport figures: round trips/s and bulk MB/s over TLS, against plain TCP.

Both ends run in this one process on one event loop (so every figure pays for
both sides). The baseline is a minimal asyncio Protocol speaking the same
13-byte-header framing over plain TCP with no TLS, no handshake and no pool, run
in the same process right before. Usage::

    python benchmarks/bench_transport.py [--loop uvloop|asyncio|both] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import struct
import sys
import time
from collections.abc import AsyncIterator

from hashmesh.identity import Identity
from hashmesh.net import Endpoint, PeerAddress, PeerIdentity, TransportConfig, run
from hashmesh.net.framing import HEADER, FrameType
from hashmesh.net.loop import loop_factory

MiB = 1 << 20
ECHO, DOWNLOAD, UPLOAD = 1, 2, 3


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----------------------------------------------------------------------------- baseline


class PlainEcho(asyncio.Protocol):
    """Plain-TCP server: answers each request frame with a response frame.

    A request for kind DOWNLOAD answers with ``count`` response frames of ``size``.
    """

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport
        self.buf = bytearray()

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        while len(buf) - pos >= HEADER.size:
            length, _ftype, rid = HEADER.unpack_from(buf, pos)
            if len(buf) - pos - HEADER.size < length:
                break
            payload = bytes(buf[pos + HEADER.size : pos + HEADER.size + length])
            pos += HEADER.size + length
            if payload[:2] == DOWNLOAD.to_bytes(2, "big"):
                count, size = struct.unpack(">II", payload[2:])
                chunk = bytes(size)
                for _ in range(count):
                    self.t.write(HEADER.pack(size, FrameType.STREAM, rid))
                    self.t.write(chunk)
                self.t.write(HEADER.pack(0, FrameType.STREAM_END, rid))
            else:
                self.t.write(HEADER.pack(len(payload) - 2, FrameType.RESPONSE, rid) + payload[2:])
        del buf[:pos]


class PlainClient(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.waiters: dict[int, asyncio.Future[bytes]] = {}
        self.next = 1
        self.received = 0
        self.done: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        while len(buf) - pos >= HEADER.size:
            length, ftype, rid = HEADER.unpack_from(buf, pos)
            if len(buf) - pos - HEADER.size < length:
                break
            payload = bytes(buf[pos + HEADER.size : pos + HEADER.size + length])
            pos += HEADER.size + length
            if ftype == FrameType.STREAM:
                self.received += length
            elif ftype == FrameType.STREAM_END:
                if self.done is not None:
                    self.done.set_result(None)
            else:
                self.waiters.pop(rid).set_result(payload)
        del buf[:pos]

    async def request(self, body: bytes) -> bytes:
        rid = self.next
        self.next += 1
        fut = asyncio.get_running_loop().create_future()
        self.waiters[rid] = fut
        self.t.write(HEADER.pack(len(body) + 2, FrameType.REQUEST, rid) + b"\x00\x01" + body)
        return await fut


# ----------------------------------------------------------------------------- measurements


class Clock:
    """Wall and CPU time of a block: rates per wall second and per CPU second."""

    def __enter__(self) -> Clock:
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.w0
        self.cpu = max(time.process_time() - self.c0, 1e-9)

    def rates(self, units: float) -> tuple[float, float]:
        return units / self.wall, units / self.cpu


Rates = tuple[float, float]


async def round_trips(call, n: int, inflight: int) -> Rates:
    body = b"x" * 32
    per = n // inflight

    async def worker() -> None:
        for _ in range(per):
            await call(body)

    with Clock() as clock:
        await asyncio.gather(*(worker() for _ in range(inflight)))
    return clock.rates(per * inflight)


async def plain_figures(rt_n: int, bulk: int) -> dict[str, Rates]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(PlainEcho, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, cli = await loop.create_connection(PlainClient, "127.0.0.1", port)
    out = {
        "rt_seq": await round_trips(cli.request, rt_n, 1),
        "rt_100": await round_trips(cli.request, rt_n * 4, 100),
    }
    cli.done = loop.create_future()
    request = struct.pack(">HII", DOWNLOAD, bulk // MiB, MiB)
    with Clock() as clock:
        cli.t.write(HEADER.pack(len(request), FrameType.REQUEST, 999999) + request)
        await cli.done
    out["bulk"] = clock.rates(cli.received / MiB)
    cli.t.close()
    server.close()
    return out


async def handler(peer: PeerIdentity, kind: int, body: bytes):
    if kind == ECHO:
        return body
    if kind == UPLOAD:
        return b"ok"
    count, size = struct.unpack(">II", body)
    chunk = bytes(size)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(count):
            yield chunk

    return chunks()


async def tls_figures(rt_n: int, bulk: int) -> tuple[dict[str, Rates], float, float]:
    cfg = TransportConfig(max_inflight_per_peer=128, rate_limit=0, stream_window=8)
    out: dict[str, Rates] = {}
    async with (
        Endpoint(Identity.generate(), handler, cfg) as srv,
        Endpoint(Identity.generate(), None, cfg) as cli,
    ):
        host, port = await srv.listen()
        addr = PeerAddress(srv.node_id, host, port)
        with Clock() as dial:
            conn = await cli.connect(addr)

        async def echo(body: bytes) -> bytes:
            return await conn.request(ECHO, body)

        out["rt_seq"] = await round_trips(echo, rt_n, 1)
        out["rt_100"] = await round_trips(echo, rt_n * 4, 100)
        rss0 = rss_mib()
        got = 0
        with Clock() as clock:
            async for chunk in conn.stream(DOWNLOAD, struct.pack(">II", bulk // MiB, MiB)):
                got += len(chunk)
        out["bulk_stream"] = clock.rates(got / MiB)
        part = bytes(4 * MiB)
        sem = asyncio.Semaphore(4)

        async def put() -> None:
            async with sem:
                await conn.request(UPLOAD, part)

        with Clock() as clock:
            await asyncio.gather(*(put() for _ in range(bulk // (4 * MiB))))
        out["bulk_upload"] = clock.rates(bulk / MiB)
        return out, dial.wall * 1000, rss_mib() - rss0


async def main(rt_n: int, bulk: int) -> None:
    loop_name = type(asyncio.get_running_loop()).__module__.split(".")[0]
    tls, dial_ms, rss = await tls_figures(rt_n, bulk)  # first, so its RSS growth shows
    plain = await plain_figures(rt_n, bulk)
    print(f"\n== loop: {loop_name}  (bulk {bulk // MiB} MiB, 1 MiB chunks; both ends on one loop)")
    print(f"dial + TLS 1.3 + identity proof: {dial_ms:.1f} ms")
    rows = [
        ("round trips/s, sequential, 32 B", tls["rt_seq"], plain["rt_seq"]),
        ("round trips/s, 100 in flight", tls["rt_100"], plain["rt_100"]),
        ("MB/s, streamed download", tls["bulk_stream"], plain["bulk"]),
        ("MB/s, 4 MiB requests x4 (upload)", tls["bulk_upload"], plain["bulk"]),
    ]
    print("rates per wall second, then per CPU second (steadier on a busy machine)")
    head = ("figure", "TLS", "plain", "ratio", "TLS/cpu", "plain/cpu", "ratio")
    print("{:34} {:>8} {:>8} {:>6} {:>9} {:>9} {:>6}".format(*head))
    for name, (aw, ac), (bw, bc) in rows:
        print(
            f"{name:34} {aw:8,.0f} {bw:8,.0f} {aw / bw:6.2f} {ac:9,.0f} {bc:9,.0f} {ac / bc:6.2f}"
        )
    print(f"peak RSS growth during the TLS bulk transfers: {rss:.0f} MiB")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--loop", choices=("uvloop", "asyncio", "both"), default="both")
    ap.add_argument("--quick", action="store_true", help="small counts (smoke run)")
    args = ap.parse_args()
    rt_n, bulk = (1000, 32 * MiB) if args.quick else (10000, 256 * MiB)
    loops = ["uvloop", "asyncio"] if args.loop == "both" else [args.loop]
    for name in loops:
        if name == "uvloop":
            if loop_factory() is None:
                print("uvloop is not installed; skipped", file=sys.stderr)
                continue
            run(main(rt_n, bulk))
        else:
            asyncio.run(main(rt_n, bulk))
