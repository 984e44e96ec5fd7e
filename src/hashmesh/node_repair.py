"""Repair, as the node carries it out: the planner's copy actions and the hand-off.

:class:`RepairMixin` is part of :class:`hashmesh.node.Node`. The pure decisions
live in :mod:`hashmesh.repair` (which keys need copies, who acts); this module
asks targets what they lack (HAVE) and pushes the missing blocks in batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from hashmesh.errors import HashmeshError
from hashmesh.ids import ContentId
from hashmesh.net import blocks as bx
from hashmesh.peering import BATCH_BYTES, BLOCK_TIMEOUT, addr
from hashmesh.placement import closest

log = logging.getLogger("hashmesh.node")


class RepairMixin:
    """Repair loop, one repair pass, per-target repair, and hand-off before leaving."""

    async def _repair_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._repair_wakeup.wait(), 5.0)
            self._repair_wakeup.clear()
            self._sync_live()
            self._queue_due_rechecks()
            try:
                await self.repair_once()
            except HashmeshError as exc:
                log.warning("repair pass failed: %s", exc)

    def _queue_due_rechecks(self) -> None:
        """Queue the received replicas whose RECHECK_DELAY has passed for a repair check."""
        now = asyncio.get_running_loop().time()
        due = [key for key, when in self._rechecks.items() if when <= now]
        for key in due:
            del self._rechecks[key]
            if key in self._cids:
                self.planner.track(key)

    async def repair_once(self, limit: int = 512) -> int:
        """Carry out the planner's copy actions (checking HAVE first); copies made."""
        assert self.planner is not None and self.store is not None
        made = 0
        while True:
            actions = self.planner.plan(limit)
            if not actions:
                break
            by_target: dict[bytes, list[bytes]] = {}
            for a in actions:
                by_target.setdefault(a.target, []).append(a.key)
            for target, keys in by_target.items():
                made += await self._repair_target(target, keys)
        self.repaired_blocks += made
        return made

    async def _repair_target(self, target: bytes, keys: list[bytes]) -> int:
        """Ask ``target`` which of ``keys`` it lacks (HAVE), then push those in batches.

        Keys that could not be handled are marked dirty again, so a later pass
        retries them.
        """
        assert self.endpoint is not None and self.planner is not None and self.store is not None
        peer = next((p for p in self.peers() if p.id == target), None)
        cids = [self._cids[k] for k in keys if k in self._cids]
        if peer is None:
            return 0
        try:
            reply = await self.endpoint.request(
                addr(peer), bx.Kind.HAVE, bx.encode_have(cids), BLOCK_TIMEOUT
            )
            have = bx.decode_have_reply(reply, len(cids))
        except HashmeshError:
            for cid in cids:
                self.planner.track(cid.digest)
            return 0
        missing = []
        for cid, has in zip(cids, have, strict=True):
            if has:
                self.planner.confirm_holder(cid.digest, target)
            else:
                missing.append(cid)
        made = 0
        group: list[tuple[ContentId, bytes]] = []
        for cid in [*missing, None]:
            if cid is not None:
                try:
                    group.append((cid, await self.store.get_block(cid)))
                except HashmeshError as exc:
                    log.warning("cannot repair %s: %s", cid, exc)
            if group and (cid is None or sum(len(d) for _, d in group) >= BATCH_BYTES):
                if await self._push_many(peer, group):
                    made += len(group)
                else:
                    for c, _ in group:
                        self.planner.track(c.digest)
                group = []
        return made

    async def handoff(self) -> int:
        """Before leaving: give each held block ``replication`` live holders other than us."""
        others = [p.id for p in self.live_peers()]
        by_target: dict[bytes, list[bytes]] = {}
        for key in self._cids:
            for target in closest(key, others, self.replication):
                by_target.setdefault(target, []).append(key)
        made = 0
        for target, keys in by_target.items():
            for i in range(0, len(keys), bx.MAX_HAVE):
                made += await self._repair_target(target, keys[i : i + bx.MAX_HAVE])
        return made
