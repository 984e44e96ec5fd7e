"""Audit and repair planner (pure): holdings in, actions out.

Invariants
----------
* A block key belongs on its ``replication`` closest *live* nodes (its targets,
  see :mod:`hashmesh.placement`).
* Repair is driven by change, not by a timer re-sending everything: only keys
  whose target set or live holder set changed since the last plan are
  re-examined ("dirty" keys). A node going down dirties the keys it held or was
  a target of; a node coming up dirties the keys it is now a target of.
* Exactly one node acts for a key: the closest live *holder* (the leader). Every
  other holder stays quiet, so a death causes one copy per missing target, not
  one per survivor.
* Copies are only ever added here; nothing is deleted.

The planner holds no clock and does no I/O. The node feeds it what it learns
(which nodes are live, who holds what) and carries out the returned
:class:`Replicate` actions, reporting each outcome back with
:meth:`Planner.confirm_holder`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hashmesh.placement import nearest, ranked


@dataclass(frozen=True, slots=True)
class Replicate:
    """Copy block ``key`` to node ``target`` (the acting node holds it)."""

    key: bytes
    target: bytes


class Planner:
    """Tracks the keys one node holds, their known holders and the live set."""

    __slots__ = (
        "_dirty",
        "_holders",
        "_live",
        "_live_ranked",
        "_node_keys",
        "me",
        "replication",
    )

    def __init__(self, me: bytes, replication: int) -> None:
        self.me = me
        self.replication = replication
        self._live: set[bytes] = {me}
        self._holders: dict[bytes, set[bytes]] = {}
        self._node_keys: dict[bytes, set[bytes]] = {}
        self._dirty: set[bytes] = set()
        self._live_ranked: list[tuple[int, bytes]] | None = None  # _live, ready for nearest

    def _targets(self, key: bytes) -> list[bytes]:
        """The ``replication`` live nodes closest to ``key``."""
        if self._live_ranked is None:
            self._live_ranked = ranked(self._live, lambda n: n)
        return nearest(key, self._live_ranked, self.replication)

    # --- inputs -------------------------------------------------------------
    def track(self, key: bytes, holders: Iterable[bytes] = (), *, dirty: bool = True) -> None:
        """This node holds ``key``; ``holders`` are other nodes known to hold it.

        ``dirty=False``: do not queue a check yet (a put is placing the key right now
        and marks it dirty afterwards only if placement fell short).
        """
        held = self._holders.setdefault(key, set())
        for node in (self.me, *holders):
            if node not in held:
                held.add(node)
                self._node_keys.setdefault(node, set()).add(key)
        if dirty:
            self._dirty.add(key)

    def untrack(self, key: bytes) -> None:
        for node in self._holders.pop(key, set()):
            self._node_keys.get(node, set()).discard(key)
        self._dirty.discard(key)

    def confirm_holder(self, key: bytes, node: bytes) -> None:
        """``node`` now holds ``key`` (a replicate succeeded, or a HAVE said so)."""
        held = self._holders.get(key)
        if held is not None and node not in held:
            held.add(node)
            self._node_keys.setdefault(node, set()).add(key)

    def node_down(self, node: bytes) -> None:
        if node == self.me or node not in self._live:
            return
        self._dirty.update(self._node_keys.get(node, ()))
        # keys where the dead node was a target but not a holder (still counted live here)
        for key in self._holders:
            if key not in self._dirty and node in self._targets(key):
                self._dirty.add(key)
        self._live.discard(node)
        self._live_ranked = None

    def node_up(self, node: bytes) -> None:
        if node in self._live:
            return
        self._live.add(node)
        self._live_ranked = None
        for key in self._holders:
            if node in self._targets(key):
                self._dirty.add(key)

    def set_live(self, nodes: Iterable[bytes]) -> None:
        """Replace the live set (the node's current view), applying the differences."""
        new = set(nodes) | {self.me}
        for node in list(self._live - new):
            self.node_down(node)
        for node in new - self._live:
            self.node_up(node)

    # --- outputs ------------------------------------------------------------
    def plan(self, limit: int | None = None) -> list[Replicate]:
        """Actions for the dirty keys this node leads; clears what it examined."""
        actions: list[Replicate] = []
        examined: list[bytes] = []
        for key in self._dirty:
            if limit is not None and len(actions) >= limit:
                break
            examined.append(key)
            actions.extend(self._plan_key(key))
        self._dirty.difference_update(examined)
        return actions

    def _plan_key(self, key: bytes) -> list[Replicate]:
        held = self._holders.get(key)
        if not held:
            return []
        live_holders = held & self._live
        if not live_holders:
            return []
        k = int.from_bytes(key, "big")
        if min(live_holders, key=lambda n: int.from_bytes(n, "big") ^ k) != self.me:
            return []  # the closest live holder acts, not this node
        return [Replicate(key, t) for t in self._targets(key) if t not in live_holders]

    def under_replicated(self) -> int:
        """Keys known to have fewer live holders than the replication factor."""
        want = min(self.replication, len(self._live))
        return sum(1 for h in self._holders.values() if len(h & self._live) < want)

    @property
    def backlog(self) -> int:
        return len(self._dirty)


__all__ = ["Planner", "Replicate"]
