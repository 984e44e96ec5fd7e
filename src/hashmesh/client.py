"""Async client of a running node's control endpoint (see :mod:`hashmesh.control`)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

from hashmesh.control import raise_error, read_message, socket_path, write_message
from hashmesh.errors import PeerUnavailableError, RequestTimeoutError


def node_running(repo: str | os.PathLike[str]) -> bool:
    """True if a node's control socket exists in ``repo`` (it may still be stale)."""
    return socket_path(repo).exists()


class Client:
    """One connection to a node's control socket; use ``async with``."""

    def __init__(self, repo: str | os.PathLike[str], timeout: float = 60.0) -> None:
        self.path = socket_path(repo)
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> Client:
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_unix_connection(str(self.path)), timeout=5
            )
        except (OSError, TimeoutError):
            raise PeerUnavailableError(
                f"no node is running for this repository ({self.path})"
            ) from None
        return self

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except OSError:
                pass
            self._writer = None

    async def __aenter__(self) -> Client:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def call(self, op: str, **args: Any) -> Any:
        """Run ``op`` and return its result (streamed chunks are discarded)."""
        result: Any = None
        async for kind, value in self._exchange(op, args):
            if kind == "result":
                result = value
        return result

    async def stream(self, op: str, **args: Any) -> AsyncIterator[bytes]:
        """Run a streaming ``op``, yielding its byte chunks."""
        async for kind, value in self._exchange(op, args):
            if kind == "chunk":
                yield value

    async def _exchange(self, op: str, args: dict[str, Any]) -> AsyncIterator[tuple[str, Any]]:
        if self._reader is None or self._writer is None:
            await self.connect()
        assert self._reader is not None and self._writer is not None  # for type checkers
        write_message(self._writer, {"op": op, "args": args})
        await self._writer.drain()
        while True:
            try:
                msg = await asyncio.wait_for(read_message(self._reader), timeout=self.timeout)
            except TimeoutError:
                raise RequestTimeoutError(
                    f"node did not answer {op!r} in {self.timeout:.0f} s"
                ) from None
            if "chunk" in msg:
                yield "chunk", msg["chunk"]
                continue
            if msg.get("ok"):
                yield "result", msg.get("result")
                return
            raise_error(msg.get("error"))


async def call(repo: str | os.PathLike[str], op: str, timeout: float = 60.0, **args: Any) -> Any:
    """One-shot: connect, run ``op``, close."""
    async with Client(repo, timeout) as c:
        return await c.call(op, **args)


__all__ = ["Client", "call", "node_running"]
