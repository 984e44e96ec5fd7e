"""A put's blocks on their way to their holders while the local ingest still runs.

The ingest runs in a store thread and offers each new large block (id and bytes)
as soon as it is hashed; the node's pushers take the waiting blocks in batches
from the event loop and send them with the bytes in hand, so the file is read
and hashed once, and the replication overlaps the local write instead of
following it. At most ``limit`` offered bytes wait or travel at once: past that
the ingest thread waits for the pushers (backpressure, so memory stays bounded
whatever the file's size). A closed window (the pushers failed or the put was
abandoned) drops further offers at once; a wait longer than ``stall`` seconds
closes it too, and the blocks it did not take are placed after the ingest, read
back from the store.
"""

from __future__ import annotations

import asyncio
import threading
import time

from hashmesh.ids import ContentId

Batch = list[tuple[ContentId, bytes]]


class PushWindow:
    """Blocks offered by an ingest thread, handed out in batches on the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int, stall: float = 60.0) -> None:
        self._loop = loop
        self._limit = limit
        self._stall = stall
        self._cond = threading.Condition()
        self._held = 0  # bytes offered and not released (guarded by _cond)
        self._closed = False
        self._queue: Batch = []  # event-loop side from here on
        self._ended = False
        self._wake = asyncio.Event()
        self.offered: list[ContentId] = []

    # ---------------------------------------------------------------- ingest thread
    def offer(self, cid: ContentId, data: bytes) -> None:
        """Queue one block for its push; waits while the window is full."""
        with self._cond:
            deadline = time.monotonic() + self._stall
            while not self._closed and self._held and self._held + len(data) > self._limit:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._closed = True  # the pushers are stuck: the rest goes later
                    break
                self._cond.wait(left)
            if self._closed:
                return
            self._held += len(data)
        self._loop.call_soon_threadsafe(self._arrive, cid, data)

    def close(self) -> None:
        """Take no more blocks (any thread); a waiting offer returns at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # ---------------------------------------------------------------- event loop
    def _arrive(self, cid: ContentId, data: bytes) -> None:
        self._queue.append((cid, data))
        self.offered.append(cid)
        self._wake.set()

    def end(self) -> None:
        """The ingest is over: pushers stop once the queue is empty."""
        self._ended = True
        self._wake.set()

    async def take(self, budget: int) -> Batch:
        """The next waiting blocks, up to ``budget`` bytes (at least one); empty once
        the ingest is over and nothing waits."""
        while not self._queue:
            if self._ended:
                return []
            self._wake.clear()
            await self._wake.wait()
        size = n = 0
        for _, data in self._queue:
            if n and size + len(data) > budget:
                break
            size += len(data)
            n += 1
        batch, self._queue = self._queue[:n], self._queue[n:]
        if self._queue or self._ended:
            self._wake.set()  # another pusher may take the rest
        return batch

    def release(self, batch: Batch) -> None:
        """``batch`` was sent (or given up): its bytes leave the window."""
        with self._cond:
            self._held -= sum(len(d) for _, d in batch)
            self._cond.notify_all()


__all__ = ["Batch", "PushWindow"]
