"""The local control endpoint of a running node: a unix socket in the repository.

Only the repository's owner can reach it: the socket file is created with mode
0600 inside the repository directory, so no token is needed.

Wire format: each message is a 4-byte big-endian length followed by a msgpack
map (at most ``MAX_MESSAGE`` bytes). A request is ``{"op": str, "args": map}``.
The server answers with zero or more ``{"chunk": bytes}`` messages (streamed
results such as file contents) and then exactly one final message:
``{"ok": true, "result": any}`` or
``{"ok": false, "error": {"type": name, "message": str}}`` where ``name`` is a
class in :mod:`hashmesh.errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import msgpack

from hashmesh import errors
from hashmesh.errors import DecodeError, HashmeshError, PeerUnavailableError

log = logging.getLogger(__name__)

SOCKET_NAME = "node.sock"
MAX_MESSAGE = 16 * 1024 * 1024
_LEN = struct.Struct(">I")

# An operation returns a result, or an async iterator of byte chunks followed by
# nothing (the final message then carries ``None``).
Handler = Callable[[dict[str, Any]], Awaitable[Any]]


def socket_path(repo: str | os.PathLike[str]) -> Path:
    return Path(repo) / SOCKET_NAME


async def read_message(reader: asyncio.StreamReader) -> dict[str, Any]:
    try:
        header = await reader.readexactly(4)
        (size,) = _LEN.unpack(header)
        if size > MAX_MESSAGE:
            raise DecodeError(f"control message too large ({size} bytes)")
        body = await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        raise PeerUnavailableError("control connection closed") from None
    try:
        msg = msgpack.unpackb(body, raw=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
        raise DecodeError("malformed control message") from None
    if not isinstance(msg, dict):
        raise DecodeError("control message is not a map")
    return msg


def write_message(writer: asyncio.StreamWriter, msg: dict[str, Any]) -> None:
    body = msgpack.packb(msg, use_bin_type=True)
    writer.write(_LEN.pack(len(body)) + body)


def error_payload(exc: BaseException) -> dict[str, Any]:
    name = type(exc).__name__
    if not isinstance(exc, HashmeshError) or name not in errors.__all__:
        name = "HashmeshError"
    return {"type": name, "message": str(exc) or name}


def raise_error(payload: Any) -> None:
    if not isinstance(payload, dict):
        raise HashmeshError("node returned a malformed error")
    name = payload.get("type")
    cls = getattr(errors, name, HashmeshError) if name in errors.__all__ else HashmeshError
    raise cls(str(payload.get("message", "node error")))


class ControlServer:
    """Serves ``ops`` (name -> handler) on the repository's unix socket."""

    def __init__(self, repo: str | os.PathLike[str], ops: dict[str, Handler]) -> None:
        self.path = socket_path(repo)
        self.ops = ops
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    request = await read_message(reader)
                except PeerUnavailableError:
                    return
                except DecodeError as exc:
                    write_message(writer, {"ok": False, "error": error_payload(exc)})
                    return
                await self._answer(request, writer)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, request: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        op = request.get("op")
        args = request.get("args") or {}
        handler = self.ops.get(op) if isinstance(op, str) else None
        if handler is None or not isinstance(args, dict):
            err = errors.InvalidArgumentError(f"unknown control operation {op!r}")
            write_message(writer, {"ok": False, "error": error_payload(err)})
            return
        try:
            result = await handler(args)
            if isinstance(result, AsyncIterator):
                # a generator is closed at once when the client goes away (a node
                # streaming a file then stops fetching it)
                closing = (
                    contextlib.aclosing(result)
                    if isinstance(result, AsyncGenerator)
                    else contextlib.nullcontext(result)
                )
                async with closing as chunks:
                    async for chunk in chunks:
                        write_message(writer, {"chunk": chunk})
                        await writer.drain()
                result = None
        except HashmeshError as exc:
            write_message(writer, {"ok": False, "error": error_payload(exc)})
            return
        except OSError as exc:
            err = errors.StorageError(f"{exc.strerror or exc}")
            write_message(writer, {"ok": False, "error": error_payload(err)})
            return
        except Exception as exc:  # a bug in a handler must not kill the endpoint
            log.exception("control operation %r failed", op)
            err = HashmeshError(f"internal error in {op}: {type(exc).__name__}")
            write_message(writer, {"ok": False, "error": error_payload(err)})
            return
        write_message(writer, {"ok": True, "result": result})
