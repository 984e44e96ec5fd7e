import random

from hypothesis import given, settings
from hypothesis import strategies as st

from hashmesh.ids import distance
from hashmesh.placement import closest, closest_by, nearest, ranked
from hashmesh.repair import Planner, Replicate


def ids(n: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(32) for _ in range(n)]


def test_closest_orders_by_xor() -> None:
    key = bytes(32)
    a, b, c = bytes(31) + b"\x01", bytes(31) + b"\x04", b"\x80" + bytes(31)
    assert closest(key, [c, b, a, a], 2) == [a, b]
    items = [("c", c), ("b", b), ("a", a), ("a2", a)]
    assert closest_by(key, items, lambda it: it[1], 2) == [("a", a), ("b", b)]


@settings(max_examples=200, deadline=None)
@given(
    st.binary(min_size=32, max_size=32),
    st.lists(st.binary(min_size=32, max_size=32), max_size=30),
    st.integers(min_value=0, max_value=10),
)
def test_nearest_matches_sorting_by_distance(key: bytes, nodes: list[bytes], count: int) -> None:
    want = sorted(set(nodes), key=lambda n: distance(n, key))[:count]
    assert nearest(key, ranked(nodes, lambda n: n), count) == want
    assert closest(key, nodes, count) == want


def test_death_of_a_holder_makes_only_the_leader_act() -> None:
    nodes = ids(6)
    key = ids(1, seed=9)[0]
    t = closest(key, nodes, 3)
    planners = {n: Planner(n, 3) for n in t}
    for p in planners.values():
        p.set_live(nodes)
        p.track(key, t)
        assert p.plan() == []  # fully replicated: nothing to do
    dead = t[0]
    actions = []
    for n, p in planners.items():
        if n == dead:
            continue
        p.node_down(dead)
        actions += [(n, a) for a in p.plan()]
    replacement = closest(key, [x for x in nodes if x != dead], 3)[2]
    assert len(actions) == 1  # one copy, by one leader
    leader, action = actions[0]
    assert leader == t[1]
    assert action == Replicate(key, replacement)


def test_new_closer_node_gets_a_copy() -> None:
    nodes = ids(5)
    key = ids(1, seed=3)[0]
    t = closest(key, nodes[:4], 3)
    p = Planner(t[0], 3)
    p.set_live(nodes[:4])
    p.track(key, t)
    assert p.plan() == []
    p.node_up(nodes[4])
    expected = [Replicate(key, n) for n in closest(key, nodes, 3) if n not in t]
    assert p.plan() == expected
    assert p.backlog == 0


def test_unchanged_world_plans_nothing_twice() -> None:
    nodes = ids(8)
    p = Planner(nodes[0], 3)
    p.set_live(nodes)
    for key in ids(50, seed=4):
        p.track(key)
    first = p.plan()
    assert first  # the node holds keys nobody else has yet
    assert p.plan() == []  # no change, no work


@settings(max_examples=50, deadline=None)
@given(st.integers(4, 12), st.integers(1, 4), st.integers(0, 10_000))
def test_repair_restores_replication(n: int, r: int, seed: int) -> None:
    """Simulate deaths and apply every planned copy: each key ends with min(r, live) holders."""
    nodes = ids(n, seed)
    keys = ids(10, seed + 1)
    held: dict[bytes, set[bytes]] = {k: set(closest(k, nodes, r)) for k in keys}
    live = set(nodes)
    planners = {x: Planner(x, r) for x in nodes}
    for x, p in planners.items():
        p.set_live(live)
        for k, h in held.items():
            if x in h:
                p.track(k, h)
    rng = random.Random(seed)
    for victim in rng.sample(nodes, n // 2):
        live.discard(victim)
        for _ in range(r + 2):  # bounded rounds until quiet
            for x in list(live):
                planners[x].set_live(live)
                for a in planners[x].plan():
                    held[a.key].add(a.target)
                    planners[a.target].track(a.key, held[a.key])
                    for h in held[a.key] & live:
                        planners[h].confirm_holder(a.key, a.target)
        for k in keys:
            if held[k] & live:
                assert len(held[k] & live) >= min(r, len(live)), "under-replicated after repair"


def test_a_key_being_placed_by_a_put_is_not_queued_until_placement_falls_short() -> None:
    nodes = ids(5, seed=3)
    key = ids(1, seed=4)[0]
    me = closest(key, nodes, 3)[0]
    p = Planner(me, 3)
    p.set_live(nodes)
    p.plan()  # nothing tracked yet
    p.track(key, dirty=False)  # the put pushes it itself
    assert p.backlog == 0 and p.plan() == []
    p.track(key)  # the put fell short: now repair takes over
    targets = {a.target for a in p.plan()}
    assert targets == set(closest(key, nodes, 3)) - {me}
