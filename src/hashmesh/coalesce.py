"""Group commit for concurrent writes: many callers, one durable store commit.

A durable commit costs an fsync (about 0.5-5 ms here), and a node receives
blocks from many peers at once. :class:`Coalescer` queues concurrent requests
and hands everything queued to one call of a batch function, so N concurrent
writers pay for one commit instead of N. Each caller still gets its own result
and is acknowledged only after the commit that holds its data; if a batch
fails, its requests are retried one by one so one bad request cannot fail the
others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")  # one item
R = TypeVar("R")  # one item's result

MAX_BATCH_ITEMS = 4096
MAX_BATCH_BYTES = 64 * 1024 * 1024


class Coalescer(Generic[T, R]):
    """Runs ``flush(key, items) -> results`` over everything queued under ``key``."""

    def __init__(
        self,
        flush: Callable[[Hashable, list[T]], Awaitable[Sequence[R]]],
        size_of: Callable[[T], int] = lambda _: 0,
    ) -> None:
        self._flush = flush
        self._size_of = size_of
        self._queues: dict[Hashable, list[tuple[list[T], asyncio.Future[list[R]]]]] = {}
        self._runners: dict[Hashable, asyncio.Task[None]] = {}
        self.batches = 0
        self.items = 0

    async def submit(self, items: list[T], key: Hashable = None) -> list[R]:
        """Queue ``items`` (committed together) and wait for their results."""
        fut: asyncio.Future[list[R]] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(key, []).append((items, fut))
        runner = self._runners.get(key)
        if runner is None or runner.done():
            self._runners[key] = asyncio.get_running_loop().create_task(self._run(key))
        return await fut

    def _take(self, key: Hashable) -> list[tuple[list[T], asyncio.Future[list[R]]]]:
        queue = self._queues.get(key, [])
        taken: list[tuple[list[T], asyncio.Future[list[R]]]] = []
        count = size = 0
        while queue:
            items, _fut = queue[0]
            n, b = len(items), sum(self._size_of(i) for i in items)
            if taken and (count + n > MAX_BATCH_ITEMS or size + b > MAX_BATCH_BYTES):
                break
            taken.append(queue.pop(0))
            count, size = count + n, size + b
        return taken

    async def _run(self, key: Hashable) -> None:
        while batch := self._take(key):
            flat = [item for items, _ in batch for item in items]
            try:
                results = list(await self._flush(key, flat))
            except Exception as exc:
                if len(batch) == 1:
                    if not batch[0][1].done():
                        batch[0][1].set_exception(exc)
                    continue
                await self._one_by_one(key, batch)
                continue
            self.batches += 1
            self.items += len(flat)
            pos = 0
            for items, fut in batch:
                if not fut.done():
                    fut.set_result(results[pos : pos + len(items)])
                pos += len(items)
        self._queues.pop(key, None)

    async def _one_by_one(
        self, key: Hashable, batch: list[tuple[list[T], asyncio.Future[list[R]]]]
    ) -> None:
        for items, fut in batch:
            try:
                res = list(await self._flush(key, items))
            except Exception as exc:
                if not fut.done():
                    fut.set_exception(exc)
            else:
                if not fut.done():
                    fut.set_result(res)


__all__ = ["Coalescer"]
