"""The control socket: results, streams, typed errors, bad input, permissions."""

import asyncio
import os
import stat
import struct

import pytest

from hashmesh.client import Client, call
from hashmesh.control import ControlServer, socket_path
from hashmesh.errors import HashmeshError, InvalidArgumentError, NotFoundError, PeerUnavailableError


async def _echo(args: dict) -> dict:
    return {"echo": args}


async def _missing(args: dict) -> None:
    raise NotFoundError(f"no such file: {args.get('id')}")


async def _crash(args: dict) -> None:
    raise RuntimeError("internal detail that must not leak as a type")


async def _stream(args: dict):
    async def gen():
        for i in range(int(args["n"])):
            yield bytes([i]) * 1000

    return gen()


OPS = {"echo": _echo, "missing": _missing, "stream": _stream, "crash": _crash}


async def test_round_trip_and_errors(tmp_path) -> None:
    server = ControlServer(tmp_path, OPS)
    await server.start()
    try:
        assert stat.S_IMODE(os.stat(socket_path(tmp_path)).st_mode) == 0o600
        assert await call(tmp_path, "echo", x=1, b=b"\x00") == {"echo": {"x": 1, "b": b"\x00"}}
        with pytest.raises(NotFoundError, match="no such file: abc"):
            await call(tmp_path, "missing", id="abc")
        with pytest.raises(HashmeshError, match="internal error in crash: RuntimeError"):
            await call(tmp_path, "crash")
        with pytest.raises(InvalidArgumentError, match="unknown control operation"):
            await call(tmp_path, "nope")
        async with Client(tmp_path) as c:
            chunks = [c async for c in c.stream("stream", n=5)]
            assert chunks == [bytes([i]) * 1000 for i in range(5)]
            assert await c.call("echo") == {"echo": {}}  # connection reusable after a stream
    finally:
        await server.stop()
    assert not socket_path(tmp_path).exists()
    with pytest.raises(PeerUnavailableError):
        await call(tmp_path, "echo")


async def test_garbage_gets_an_error_and_server_survives(tmp_path) -> None:
    server = ControlServer(tmp_path, OPS)
    await server.start()
    try:
        reader, writer = await asyncio.open_unix_connection(str(socket_path(tmp_path)))
        writer.write(struct.pack(">I", 5) + b"\xc1\xc1\xc1\xc1\xc1")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 5)
        assert b"DecodeError" in data
        writer.close()
        reader, writer = await asyncio.open_unix_connection(str(socket_path(tmp_path)))
        writer.write(struct.pack(">I", 1 << 30))  # oversized
        await writer.drain()
        assert b"too large" in await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert await call(tmp_path, "echo") == {"echo": {}}
    finally:
        await server.stop()
