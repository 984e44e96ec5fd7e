"""Chunks a background fetch is still storing, for a reader that streams a file.

A streaming get or cat starts fetching the missing chunks of a file and reads
the file at the same time. :class:`Arrivals` holds one future per missing chunk:
the fetch resolves it once the chunk is verified and committed to the store, and
the reader waits on it before reading that chunk. When the fetch ends, every
chunk it did not store gets the fetch's error (or NotFoundError), so a reader
never waits on a fetch that is over. The futures are ``concurrent.futures``
ones: an export thread blocks on them, an async reader wraps them.

The fetch also hands over the verified bytes of each chunk, so the reader need
not read them back from the disk. A chunk handed over once stored is kept while
the bytes not yet taken fit a budget (past it, a fetch far ahead of its reader,
the reader reads the store). A chunk handed over *before* its cache commit is
done (``arrived(..., stored=False)``, then :meth:`Arrivals.stored`) is kept
whatever the budget until it is both taken and committed (or its commit failed):
until then the store cannot serve a second read of it.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future

from hashmesh.errors import NotFoundError
from hashmesh.ids import ContentId

HANDOFF_BYTES = 64 * 1024 * 1024  # fetched bytes held for the reader, not yet taken


class Arrivals:
    """One future per chunk still to arrive, and the bytes of chunks that arrived."""

    def __init__(self, chunks: list[ContentId], budget: int = HANDOFF_BYTES) -> None:
        self._futures: dict[ContentId, Future[None]] = {c: Future() for c in chunks}
        self._data: dict[ContentId, bytes] = {}
        self._uncommitted: set[ContentId] = set()  # handed over before their commit
        self._taken: set[ContentId] = set()  # ... and already taken once
        self._held = 0
        self._budget = budget
        self._lock = threading.Lock()  # take() runs on reader threads

    @property
    def held(self) -> int:
        """Bytes handed over and not released yet."""
        return self._held

    def arrived(self, cid: ContentId, data: bytes | None = None, stored: bool = True) -> None:
        """``cid`` is verified (called by the fetch, on the event loop): stored, or with
        ``stored`` False only handed over, its commit still running (:meth:`stored`
        follows); ``data`` are its bytes."""
        fut = self._futures.get(cid)
        if fut is None or fut.done():
            return
        if data is not None:
            with self._lock:
                if not stored:
                    self._uncommitted.add(cid)
                if not stored or self._held + len(data) <= self._budget:
                    self._data[cid] = data
                    self._held += len(data)
        fut.set_result(None)

    def stored(self, cids: list[ContentId]) -> None:
        """The commits of ``cids`` (handed over with ``stored`` False) are over, done or
        failed: a chunk already taken is released (a later read goes to the store)."""
        with self._lock:
            for cid in cids:
                if cid in self._uncommitted:
                    self._uncommitted.discard(cid)
                    if cid in self._taken:
                        self._release(cid)

    def _release(self, cid: ContentId) -> bytes | None:
        data = self._data.pop(cid, None)
        if data is not None:
            self._held -= len(data)
        self._taken.discard(cid)
        return data

    def take(self, cid: ContentId) -> bytes | None:
        """The bytes of ``cid`` if the fetch handed them over; None otherwise. Once
        stored, a chunk's bytes are given once (a chunk read again comes from the
        store); before, every read gets them."""
        with self._lock:
            if cid in self._uncommitted:
                data = self._data.get(cid)
                self._taken.add(cid)
                return data
            return self._release(cid)

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
