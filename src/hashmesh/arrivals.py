"""Chunks a background fetch is still storing, for a reader that streams a file.

A streaming get or cat starts fetching the missing chunks of a file and reads
the file at the same time. :class:`Arrivals` holds one future per missing chunk:
the fetch resolves it once the chunk is verified and committed to the store, and
the reader waits on it before reading that chunk. When the fetch ends, every
chunk it did not store gets the fetch's error (or NotFoundError), so a reader
never waits on a fetch that is over. The futures are ``concurrent.futures``
ones: an export thread blocks on them, an async reader wraps them.

The fetch also hands over the verified bytes it just stored, up to a budget of
bytes not yet taken, so the reader need not read them back from the disk; past
the budget (a fetch far ahead of its reader) the reader reads the store.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future

from hashmesh.errors import NotFoundError
from hashmesh.ids import ContentId

HANDOFF_BYTES = 64 * 1024 * 1024  # fetched bytes held for the reader, not yet taken


class Arrivals:
    """One future per chunk still to be stored, and the bytes of chunks just stored."""

    def __init__(self, chunks: list[ContentId], budget: int = HANDOFF_BYTES) -> None:
        self._futures: dict[ContentId, Future[None]] = {c: Future() for c in chunks}
        self._data: dict[ContentId, bytes] = {}
        self._held = 0
        self._budget = budget
        self._lock = threading.Lock()  # take() runs on reader threads

    @property
    def held(self) -> int:
        """Bytes handed over and not taken yet."""
        return self._held

    def arrived(self, cid: ContentId, data: bytes | None = None) -> None:
        """``cid`` is stored (called by the fetch, on the event loop); ``data`` are its
        verified bytes, kept for the reader while the budget allows."""
        fut = self._futures.get(cid)
        if fut is None or fut.done():
            return
        if data is not None:
            with self._lock:
                if self._held + len(data) <= self._budget:
                    self._data[cid] = data
                    self._held += len(data)
        fut.set_result(None)

    def take(self, cid: ContentId) -> bytes | None:
        """The bytes of ``cid`` if the fetch handed them over (once: a chunk read
        again comes from the store); None otherwise."""
        with self._lock:
            data = self._data.pop(cid, None)
            if data is not None:
                self._held -= len(data)
        return data

    def ended(self, fetch: asyncio.Task[int]) -> None:
        """The fetch is over: every chunk it did not store fails with its error."""
        exc = None if fetch.cancelled() else fetch.exception()
        for cid, fut in self._futures.items():
            if not fut.done():
                fut.set_exception(exc or NotFoundError(f"block {cid} was not fetched"))

    def wait_for(self, cid: ContentId) -> Future[None] | None:
        """A future done once ``cid`` is stored; None for a chunk that was already here."""
        return self._futures.get(cid)


__all__ = ["Arrivals"]
