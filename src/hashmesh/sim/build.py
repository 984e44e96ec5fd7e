"""Two ways to build the starting network: real joins, or oracle-filled tables.

``join``    every node bootstraps through the real core (``Protocol.bootstrap``: a
            self-lookup through one random already-joined honest seed), a few at a time
            on the virtual clock. Exactly what a real network does; affordable up to
            a few thousand nodes.

``oracle``  every node's routing table is filled directly with the contacts a
            converged network would hold: for each of its k-buckets (a contiguous
            run of the sorted id array, found by bisection) up to k members drawn at
            random, i.e. all of them for the near buckets and a random k for the far
            ones. The contacts enter through the core's public input path
            (``receive`` of a ``Ping`` from that contact; the Pong it queues is
            discarded), so the core's own rules (bucket size, IP diversity) apply.
            Used for large networks, where 100,000 real joins would take too long.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

from hashmesh.dht.messages import Ping
from hashmesh.sim.network import HONEST, Host
from hashmesh.sim.world import World, id_int

_BITS = 256


def build_by_joins(world: World, hosts: Sequence[Host], gap: float = 0.05, settle: float = 30.0):
    """Join ``hosts`` one after another (``gap`` seconds apart) by real bootstraps.

    Returns ``(joined, messages)``: how many bootstraps finished, requests they sent.
    """
    engine = world.engine
    joined: list[Host] = []
    stats = {"done": 0, "messages": 0}

    def finished(host: Host, event: Any) -> None:
        stats["done"] += 1
        stats["messages"] += getattr(event, "messages", 0)

    def join(host: Host) -> None:
        # Seeds are honest (a bootstrap list is configured, not learned from strangers).
        if joined:
            seed = joined[world.rng.randrange(len(joined))]
            world.start(host, "bootstrap", [seed.peer], then=finished)
        if host.role == HONEST:
            joined.append(host)
        world.mark_joined(host)

    t0 = engine.now
    for i, host in enumerate(hosts):
        engine.at(t0 + i * gap, join, host)
    engine.run_until(t0 + len(hosts) * gap + settle)
    return stats["done"], stats["messages"]


def oracle_contacts(sorted_ids: list[int], me: int, k: int, rng: Any) -> list[int]:
    """The ids a converged table of node ``me`` holds: <= k random ones per bucket."""
    out: list[int] = []
    for b in range(_BITS):
        # bucket b: ids whose XOR distance to me has bit length b + 1
        lo = ((me >> (b + 1)) << (b + 1)) | ((~me >> b & 1) << b)
        hi = lo + (1 << b)
        i, j = bisect.bisect_left(sorted_ids, lo), bisect.bisect_left(sorted_ids, hi)
        n = j - i
        if n == 0:
            if b > 40 and i == j and (i == 0 or i == len(sorted_ids)):
                continue
            continue
        if n <= k:
            out.extend(sorted_ids[i:j])
        else:
            out.extend(sorted_ids[x] for x in rng.sample(range(i, j), k))
    return out


def build_by_oracle(world: World, hosts: Sequence[Host]) -> int:
    """Fill every host's routing table as a converged network would; return contacts added."""
    by_id = {id_int(h.peer): h for h in hosts}
    sorted_ids = sorted(by_id)
    now = world.engine.now
    rng = world.rng
    k = world.config.k
    total = 0
    for host in hosts:
        me = id_int(host.peer)
        core = host.core
        inner = getattr(core, "inner", core)  # a liar's own table is filled too
        for cid in oracle_contacts(sorted_ids, me, k, rng):
            peer = by_id[cid].peer
            inner.receive(peer, Ping(0, peer), now)
            total += 1
        inner.messages_to_send()  # the Pongs to the oracle's fake pings go nowhere
        while inner.next_event() is not None:
            pass
        world.net.pump(host)  # arms the refresh timer
        world.mark_joined(host)
    return total
