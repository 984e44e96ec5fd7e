"""Many iterative lookups run as one, their requests to a peer merged (no I/O, no clock).

Each key keeps its own :class:`~hashmesh.dht.lookup.Lookup`, so each key's result is
what a lone lookup would find. Only the traffic is shared: the queries the lookups
want to send in one step are grouped by peer, and each group becomes one ``FindMany``
(up to ``MAX_BATCH_KEYS`` keys). Keys in one keyspace region share their closest
peers, so a batch of n keys costs about as many messages as a few lone lookups.

Invariants
----------
- A key is asked of a peer only when its own lookup picked that peer (``alpha`` in
  flight per key, only among its ``k`` closest live candidates).
- An answer is credited only to the keys of the request it answers; a key past the
  answer's entries (it did not fit) is asked again, of the same peer.
- With ``want_values``, a key is done at the first record that validates for it; a
  record that does not validate counts as that peer failing the key.
- With ``want_values`` (and ``one_first``), a key first asks one peer only, picked among its ``alpha``
  closest known peers as the one most other keys of the batch may ask too (so the
  batch's first round goes to few peers; in a settled network each of them holds
  the value). At its first miss or failure, or when :meth:`BatchLookup.hedge` is
  called (the caller's timer for a silent peer), it gets the ``k`` closest from the
  routing table as well and asks ``alpha`` at once, as a lone lookup does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from hashmesh.dht.lookup import Lookup
from hashmesh.dht.messages import MAX_BATCH_KEYS, FoundMany, PeerInfo, peer_id_ok
from hashmesh.dht.records import Record


class BatchLookup:
    """State of one batch: a :class:`Lookup` per key, and which keys are done."""

    __slots__ = (
        "_k",
        "_seeds_for",
        "done",
        "fresh",
        "keys",
        "lookups",
        "narrow",
        "records",
        "remaining",
        "want_values",
    )

    def __init__(
        self,
        keys: Sequence[bytes],
        seeds_for: Callable[[bytes, int], Sequence[PeerInfo]],
        *,
        k: int,
        alpha: int,
        exclude: bytes | None,
        want_values: bool,
        one_first: bool = True,
    ) -> None:
        self.keys = list(keys)
        self.want_values = want_values
        self._k = k
        self._seeds_for = seeds_for
        if want_values and one_first:
            near = [seeds_for(key, alpha) for key in self.keys]
            shared = Counter(p.node_id.value for ps in near for p in ps)
            self.lookups = [
                Lookup(
                    key,
                    # the closest among the most shared (max keeps the first of equals)
                    [max(ps, key=lambda p: shared[p.node_id.value])] if ps else [],
                    k=k,
                    alpha=alpha,
                    exclude=exclude,
                    first=1,
                )
                for key, ps in zip(self.keys, near, strict=True)
            ]
        else:  # value lookups asking alpha at once start from their alpha closest
            first = alpha if want_values else k
            self.lookups = [
                Lookup(key, seeds_for(key, first), k=k, alpha=alpha, exclude=exclude)
                for key in self.keys
            ]
        self.narrow = [want_values] * len(self.keys)  # not yet seeded with the k closest
        self.records: list[Record | None] = [None] * len(self.keys)
        self.done = [False] * len(self.keys)
        self.remaining = len(self.keys)
        self.fresh: list[int] = []  # keys done since :meth:`take_fresh`

    @property
    def finished(self) -> bool:
        return self.remaining == 0

    def _widen(self, i: int) -> None:
        if self.narrow[i]:
            self.narrow[i] = False
            self.lookups[i].add_seeds(self._seeds_for(self.keys[i], self._k))
            self.lookups[i].widen()

    def hedge(self) -> list[int]:
        """Widen every key still waiting on its one first peer; their indices."""
        out = [i for i in range(len(self.keys)) if self.narrow[i] and not self.done[i]]
        for i in out:
            self._widen(i)
        return out

    def finish(self, i: int, record: Record | None = None) -> None:
        if not self.done[i]:
            self.done[i] = True
            self.records[i] = record
            self.remaining -= 1
            self.fresh.append(i)

    def take_fresh(self) -> list[int]:
        """The keys done since the last call, in the order they were done."""
        out, self.fresh = self.fresh, []
        return out

    def next_queries(self, indices: Iterable[int]) -> list[tuple[PeerInfo, list[int]]]:
        """The requests to send now: (peer, key indices), at most MAX_BATCH_KEYS each.

        Keys whose lookup has finished (nothing left to ask) are marked done here.
        """
        groups: dict[bytes, tuple[PeerInfo, list[int]]] = {}
        for i in indices:
            if self.done[i]:
                continue
            lk = self.lookups[i]
            for peer in lk.next_queries():
                group = groups.get(peer.node_id.value)
                if group is None:
                    groups[peer.node_id.value] = (peer, [i])
                else:
                    group[1].append(i)
            if lk.finished:
                self.finish(i)
        out: list[tuple[PeerInfo, list[int]]] = []
        for peer, idx in groups.values():
            for start in range(0, len(idx), MAX_BATCH_KEYS):
                out.append((peer, idx[start : start + MAX_BATCH_KEYS]))
        return out

    def on_answer(
        self,
        peer_id: bytes,
        indices: list[int],
        answer: FoundMany,
        record_ok: Callable[[Record, bytes], bool],
    ) -> None:
        """``peer_id`` answered the request for ``indices`` with ``answer``."""
        table = answer.peers
        ok = [peer_id_ok(p) for p in table]
        for i, (record, refs) in zip(indices, answer.entries, strict=False):
            if self.done[i]:
                continue
            lk = self.lookups[i]
            if record is not None and self.want_values:
                if record_ok(record, self.keys[i]):
                    lk.on_response(peer_id, ())
                    self.finish(i, record)
                else:
                    lk.on_failure(peer_id)
                    self._widen(i)
                continue
            lk.on_response(peer_id, (table[r] for r in refs if ok[r]))
            self._widen(i)
        for i in indices[len(answer.entries) :]:
            self.lookups[i].requeue(peer_id)

    def on_failure(self, peer_id: bytes, indices: list[int]) -> None:
        for i in indices:
            if not self.done[i]:
                self.lookups[i].on_failure(peer_id)
                self._widen(i)


__all__ = ["BatchLookup"]
