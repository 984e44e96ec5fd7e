"""Healing, as the node carries it out: corrupt local copies replaced from peers.

:class:`HealMixin` is part of :class:`hashmesh.node.Node`. Every read verifies
what it reads; a copy that fails is never handed out. A node replaces it with a
good copy fetched from a peer (verified, then written and fsync'd anew by
:meth:`hashmesh.store.api.Store.rewrite_block`):

* when its own read meets it (the read then goes on and returns the right bytes);
* when a peer asked for it (in the background; the peer asks another holder);
* when the audit finds it: a background pass re-verifies every stored block at
  ``audit_rate`` stored bytes per second, one pass each ``audit_interval``, so a
  copy nobody reads is found before the other copies are needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from hashmesh.config import Config
from hashmesh.errors import HashmeshError, IntegrityError
from hashmesh.ids import ContentId
from hashmesh.store.api import Store

log = logging.getLogger("hashmesh.node")
T = TypeVar("T")

MAX_HEALS = 16  # corrupt local blocks one read (or the server side at once) replaces
AUDIT_STEP_S = 1.0  # an audit step checks about this many seconds' worth of audit_rate


class HealMixin:
    """Read healing, background healing of served copies, and the audit loop."""

    # set up by Node.__init__ / Node.start (declared for the type checker)
    store: Store | None
    config: Config
    healed_blocks: int
    audited_bytes: int
    audit_passes: int
    last_audit: float
    _heals: dict[bytes, asyncio.Task[None]]

    if TYPE_CHECKING:

        async def _fetch_block(self, cid: ContentId, commit: bool = True) -> bytes: ...

    async def _healed(self, read: Callable[[], Awaitable[T]]) -> T:
        """Run ``read``; when it meets a corrupt (or vanished) local block, replace the
        block with a good copy from a peer and run it again (each block once, at most
        MAX_HEALS). With no good copy anywhere, the read's IntegrityError stands."""
        healed: set[str] = set()
        while True:
            try:
                return await read()
            except IntegrityError as exc:
                await self._heal(exc, healed)

    async def _heal(self, exc: IntegrityError, healed: set[str]) -> None:
        """Heal the block ``exc`` names, or raise ``exc``."""
        bad = exc.block_id
        if bad is None or bad in healed or len(healed) >= MAX_HEALS:
            raise exc
        healed.add(bad)
        try:
            await self._heal_block(ContentId.parse(bad))
        except HashmeshError:  # logged by the heal's task
            raise exc from None

    async def _heal_block(self, cid: ContentId) -> None:
        """Replace this node's copy of ``cid`` with a peer's good one. Reads, served
        requests and the audit may meet the same bad copy at once: they share one heal."""
        task = self._heals.get(cid.digest)
        if task is None:
            task = self._start_heal(cid)
        await asyncio.shield(task)

    def _start_heal(self, cid: ContentId) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._replace_block(cid))
        self._heals[cid.digest] = task

        def done(t: asyncio.Task[None]) -> None:
            self._heals.pop(cid.digest, None)
            exc = None if t.cancelled() else t.exception()  # retrieved even if no one waits
            if isinstance(exc, HashmeshError):
                log.warning("block %s is corrupt here and no peer had a good copy: %s", cid, exc)
            elif exc is not None:
                log.error("healing block %s failed", cid, exc_info=exc)

        task.add_done_callback(done)
        return task

    async def _replace_block(self, cid: ContentId) -> None:
        assert self.store is not None
        data = await self._fetch_block(cid, commit=False)
        if await self.store.rewrite_block(cid, data):
            self.healed_blocks += 1
            log.warning("block %s was corrupt here: replaced with a peer's good copy", cid)

    def _heal_later(self, cid: ContentId) -> None:
        """Heal a block a peer asked for and found corrupt here, in the background."""
        if cid.digest in self._heals or len(self._heals) >= MAX_HEALS:
            return
        self._start_heal(cid)

    async def _heal_quietly(self, cid: ContentId) -> None:
        with contextlib.suppress(HashmeshError):  # logged by the heal's task
            await self._heal_block(cid)

    async def _audit_loop(self) -> None:
        """Re-verify every stored block, ``audit_rate`` stored bytes per second, one pass
        each ``audit_interval`` seconds; heal what fails."""
        assert self.store is not None
        rate = self.config.node.audit_rate
        if rate <= 0:
            return
        loop = asyncio.get_running_loop()
        cursor = b""
        pass_started = loop.time()
        while True:
            t0 = loop.time()
            after, checked, bad = await self.store.audit_step(cursor, int(rate * AUDIT_STEP_S))
            self.audited_bytes += checked
            for cid in bad:
                log.warning("audit: block %s is corrupt or missing here", cid)
                await self._heal_quietly(cid)
            pause = checked / rate - (loop.time() - t0)
            if after is None:  # a whole pass: the next starts audit_interval after this one
                self.audit_passes += 1
                self.last_audit = time.time()
                cursor = b""
                pause = max(pause, self.config.node.audit_interval - (loop.time() - pass_started))
                pass_started = loop.time() + max(0.0, pause)
            else:
                cursor = after
            await asyncio.sleep(max(pause, 0.0))
