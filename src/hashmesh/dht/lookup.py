"""Iterative Kademlia lookup as a small state machine (no I/O, no clock).

The protocol asks :meth:`Lookup.next_queries` which peers to query, sends the
requests with their own deadlines, and reports each answer with
:meth:`Lookup.on_response` or each timeout/failure with :meth:`Lookup.on_failure`.

Invariants
----------
- Not lock-step: each path keeps up to ``alpha`` requests in flight; a slot is
  refilled as soon as one answer or failure comes back.
- A lookup may start narrower (``first`` < ``alpha`` in flight per path, as a get
  asks its closest known peer alone first): it widens to ``alpha`` at the first
  answer or failure, or when the caller calls :meth:`Lookup.widen` (a hedge timer).
- Only candidates among a path's ``k`` closest non-failed ones are ever queried.
- A path is finished when its ``k`` closest non-failed candidates have all answered
  (or none is left to ask and nothing is in flight).
- Disjoint paths (S/Kademlia): the seeds are dealt round-robin to ``paths`` paths;
  a peer belongs to the first path that learned of it, so no peer is queried by
  two paths. The result is the best ``k`` of all paths' answered peers.
- Hops: seeds have depth 1; a peer first learned from a depth-``h`` answer has depth
  ``h + 1``. Our own id is never a candidate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from hashmesh.dht.messages import PeerInfo

NEW, INFLIGHT, DONE, FAILED = 0, 1, 2, 3


class Candidate:
    """A peer the lookup knows of, with its distance to the target and state."""

    __slots__ = ("depth", "dist", "path", "peer", "state")

    def __init__(self, peer: PeerInfo, dist: int, depth: int, path: int) -> None:
        self.peer = peer
        self.dist = dist
        self.depth = depth
        self.path = path
        self.state = NEW


def _dist_of(c: Candidate) -> int:
    return c.dist


class Lookup:
    """State of one iterative lookup towards ``target``."""

    __slots__ = (
        "_by_id",
        "_exclude",
        "_inflight",
        "_paths",
        "_t",
        "alpha",
        "k",
        "messages",
        "target",
        "width",
    )

    def __init__(
        self,
        target: bytes,
        seeds: Sequence[PeerInfo],
        *,
        k: int,
        alpha: int,
        paths: int = 1,
        exclude: bytes | None = None,
        first: int | None = None,
    ) -> None:
        self.target = target
        self._t = int.from_bytes(target, "big")
        self.k = k
        self.alpha = alpha
        self.width = alpha if first is None else max(1, min(first, alpha))
        self._exclude = exclude
        n = max(1, min(paths, len(seeds))) if seeds else 1
        self._paths: list[list[Candidate]] = [[] for _ in range(n)]
        self._inflight = [0] * n
        self._by_id: dict[bytes, Candidate] = {}
        self.messages = 0
        self.add_seeds(seeds)

    def _add(self, peer: PeerInfo, depth: int, path: int) -> bool:
        """Append a new candidate (unsorted: the caller sorts the path afterwards)."""
        nid = peer.node_id.value
        if nid in self._by_id or nid == self._exclude:
            return False
        c = Candidate(peer, int.from_bytes(nid, "big") ^ self._t, depth, path)
        self._by_id[nid] = c
        self._paths[path].append(c)
        return True

    def next_queries(self) -> list[PeerInfo]:
        """Peers to query now (marked in flight); counted in :attr:`messages`."""
        out: list[PeerInfo] = []
        k, width = self.k, self.width
        for p, cands in enumerate(self._paths):
            room = width - self._inflight[p]
            if room <= 0:
                continue
            live = 0
            for c in cands:
                if c.state == FAILED:
                    continue
                live += 1
                if live > k:
                    break
                if c.state == NEW:
                    c.state = INFLIGHT
                    out.append(c.peer)
                    room -= 1
                    self._inflight[p] += 1
                    if room == 0:
                        break
        self.messages += len(out)
        return out

    def on_response(self, node_id: bytes, peers: Iterable[PeerInfo]) -> None:
        """``node_id`` answered with ``peers`` (already checked by the caller)."""
        c = self._by_id.get(node_id)
        if c is None or c.state not in (INFLIGHT, NEW):
            return
        if c.state == INFLIGHT:
            self._inflight[c.path] -= 1
        c.state = DONE
        self.width = self.alpha
        depth = c.depth + 1
        added = False
        for peer in peers:
            added = self._add(peer, depth, c.path) or added
        if added:  # one sort of a mostly sorted list beats an insort per peer
            self._paths[c.path].sort(key=_dist_of)

    def on_failure(self, node_id: bytes) -> None:
        c = self._by_id.get(node_id)
        if c is None or c.state not in (INFLIGHT, NEW):
            return
        if c.state == INFLIGHT:
            self._inflight[c.path] -= 1
        c.state = FAILED
        self.width = self.alpha

    @property
    def narrow(self) -> bool:
        """Still asking fewer than ``alpha`` peers at once (no answer or failure yet)."""
        return self.width < self.alpha

    def widen(self) -> None:
        self.width = self.alpha

    def add_seeds(self, peers: Sequence[PeerInfo]) -> None:
        """Depth-1 candidates (from our own table), dealt round-robin to the paths."""
        n = len(self._paths)
        for i, peer in enumerate(peers):
            self._add(peer, 1, i % n)
        for cands in self._paths:
            cands.sort(key=_dist_of)

    def requeue(self, node_id: bytes) -> None:
        """An in-flight query to ``node_id`` went unanswered without failing: ask again."""
        c = self._by_id.get(node_id)
        if c is not None and c.state == INFLIGHT:
            self._inflight[c.path] -= 1
            c.state = NEW

    def is_pending(self, node_id: bytes) -> bool:
        c = self._by_id.get(node_id)
        return c is not None and c.state == INFLIGHT

    def depth_of(self, node_id: bytes) -> int:
        c = self._by_id.get(node_id)
        return c.depth if c is not None else 0

    def _path_finished(self, p: int) -> bool:
        done = 0
        for c in self._paths[p]:
            if c.state == FAILED:
                continue
            if c.state != DONE:
                return False
            done += 1
            if done >= self.k:
                return True
        return True

    @property
    def finished(self) -> bool:
        return all(self._path_finished(p) for p in range(len(self._paths)))

    def answered(self) -> list[Candidate]:
        """Every candidate that answered, closest first (all paths)."""
        out = [c for c in self._by_id.values() if c.state == DONE]
        out.sort(key=_dist_of)
        return out

    def known(self) -> list[Candidate]:
        """Every candidate not known to have failed (answered or only heard of)."""
        return [c for c in self._by_id.values() if c.state != FAILED]

    def closest(self) -> list[PeerInfo]:
        """The best ``k`` answered peers over all paths, closest first."""
        return [c.peer for c in self.answered()[: self.k]]

    def hops(self) -> int:
        """Deepest discovery depth among the best ``k`` answered peers."""
        return max((c.depth for c in self.answered()[: self.k]), default=0)

    @property
    def paths(self) -> int:
        return len(self._paths)


__all__ = ["DONE", "FAILED", "INFLIGHT", "NEW", "Candidate", "Lookup"]
