"""Chunks a background fetch is still storing, for a reader that streams a file.

A streaming get or cat starts fetching the missing chunks of a file and reads
the file at the same time. :class:`Arrivals` holds one future per missing chunk:
the fetch resolves it once the chunk is verified and committed to the store, and
the reader waits on it before reading that chunk. When the fetch ends, every
chunk it did not store gets the fetch's error (or NotFoundError), so a reader
never waits on a fetch that is over. The futures are ``concurrent.futures``
ones: an export thread blocks on them, an async reader wraps them.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future

from hashmesh.errors import NotFoundError
from hashmesh.ids import ContentId


class Arrivals:
    """One future per chunk still to be stored."""

    def __init__(self, chunks: list[ContentId]) -> None:
        self._futures: dict[ContentId, Future[None]] = {c: Future() for c in chunks}

    def arrived(self, cid: ContentId, data: bytes | None = None) -> None:
        """``cid`` is stored (called by the fetch, on the event loop)."""
        fut = self._futures.get(cid)
        if fut is not None and not fut.done():
            fut.set_result(None)

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
