"""Iterative lookups: the state machine alone, and in small in-memory networks."""

from __future__ import annotations

import random

import pytest
from tests.unit.dht.memnet import MemNet

from hashmesh.config import DhtConfig
from hashmesh.dht import LookupDone, PeerInfo
from hashmesh.dht.lookup import Lookup
from hashmesh.ids import distance


def mk(rng: random.Random, n: int) -> list[PeerInfo]:
    return [PeerInfo.make(rng.randbytes(32), "10.0.0.1", 1) for _ in range(n)]


def test_not_lock_step_refills_slot_at_once() -> None:
    rng = random.Random(1)
    target = rng.randbytes(32)
    seeds = mk(rng, 6)
    lk = Lookup(target, seeds, k=4, alpha=3)
    first = lk.next_queries()
    assert len(first) == 3 and lk.next_queries() == []
    lk.on_response(first[0].id, [])
    assert len(lk.next_queries()) == 1  # one answer -> one new request, others still out
    lk.on_failure(first[1].id)
    assert len(lk.next_queries()) == 1
    assert lk.messages == 5


def test_a_narrow_start_asks_the_closest_alone_then_widens() -> None:
    rng = random.Random(11)
    target = rng.randbytes(32)
    seeds = sorted(mk(rng, 6), key=lambda p: distance(p.id, target))
    for settle in ("answer", "failure", "widen"):
        lk = Lookup(target, list(reversed(seeds)), k=4, alpha=3, first=1)
        (first,) = lk.next_queries()
        assert first == seeds[0] and lk.narrow and lk.next_queries() == []
        if settle == "answer":
            lk.on_response(first.id, [])
        elif settle == "failure":
            lk.on_failure(first.id)
        else:
            lk.widen()
        assert not lk.narrow
        more = lk.next_queries()
        assert len(more) == (3 if settle != "widen" else 2)  # alpha in flight from now on
        assert first not in more


def test_finishes_when_k_closest_answered_and_tracks_depth() -> None:
    rng = random.Random(2)
    target = rng.randbytes(32)
    pool = sorted(mk(rng, 12), key=lambda p: distance(p.id, target))
    far, near = pool[6:], pool[:6]
    lk = Lookup(target, far[:3], k=3, alpha=2)
    for _ in range(100):
        q = lk.next_queries()
        if not q and lk.finished:
            break
        for p in q:
            lk.on_response(p.id, near if p in far else [])
    assert lk.finished
    assert lk.closest() == near[:3]
    assert lk.hops() == 2  # learned from the seeds' answers


def test_disjoint_paths_never_share_a_node() -> None:
    rng = random.Random(3)
    target = rng.randbytes(32)
    pool = mk(rng, 40)
    lk = Lookup(target, pool[:6], k=4, alpha=2, paths=3)
    asked: list[bytes] = []
    for _ in range(200):
        q = lk.next_queries()
        if not q:
            break
        for p in q:
            asked.append(p.id)
            lk.on_response(p.id, rng.sample(pool, 5))
    assert len(asked) == len(set(asked))
    assert lk.paths == 3 and lk.finished


def test_own_id_is_never_a_candidate() -> None:
    rng = random.Random(4)
    me, *others = mk(rng, 4)
    lk = Lookup(rng.randbytes(32), [me, *others], k=3, alpha=3, exclude=me.id)
    assert me not in lk.next_queries()


@pytest.fixture(scope="module")
def net() -> MemNet:
    n = MemNet(150, seed=11)
    n.bootstrap_all()
    return n


def test_lookups_match_brute_force(net: MemNet) -> None:
    rng = random.Random(12)
    hops = []
    for i in range(25):
        target = rng.randbytes(32)
        e = net.result(i, net.call(i, "lookup", target))
        assert isinstance(e, LookupDone)
        want = net.true_closest(target, 8, exclude=net.infos[i].id)
        assert [p.id for p in e.closest] == want
        assert e.messages >= len(e.closest) and e.hops >= 1
        hops.append(e.hops)
    assert max(hops) <= 6


def test_routing_tables_fill_after_bootstrap(net: MemNet) -> None:
    sizes = [len(p.routing_table) for p in net.nodes.values()]
    assert min(sizes) >= 8


def test_lookup_survives_dead_nodes() -> None:
    n = MemNet(120, seed=13)
    n.bootstrap_all()
    rng = random.Random(14)
    n.kill(p.id for p in rng.sample(n.infos[10:], 24))  # 20 % fail silently
    good = 0
    for i in range(10):
        target = rng.randbytes(32)
        e = n.result(i, n.call(i, "lookup", target), until=n.now + 60)
        want = n.true_closest(target, 8, exclude=n.infos[i].id)
        good += len({p.id for p in e.closest} & set(want))
        assert all(p.id not in n.dead for p in e.closest)
    assert good >= 0.9 * 80


def test_disjoint_path_lookups_in_network() -> None:
    cfg = DhtConfig(k=8, alpha=2, disjoint_paths=3, request_timeout=1.0)
    n = MemNet(100, seed=15, config=cfg)
    n.bootstrap_all()
    rng = random.Random(16)
    for i in range(8):
        target = rng.randbytes(32)
        e = n.result(i, n.call(i, "lookup", target))
        want = n.true_closest(target, 8, exclude=n.infos[i].id)
        assert len({p.id for p in e.closest} & set(want)) >= 7
