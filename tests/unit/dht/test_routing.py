"""Routing table: order, ping-before-evict, replacements, failures, diversity, puzzle, refresh."""

from __future__ import annotations

import random

from hashmesh.config import DhtConfig
from hashmesh.dht import PeerInfo, RoutingTable, ip_group
from hashmesh.identity import puzzle_ok
from hashmesh.ids import NodeId, distance

ME = NodeId.from_public_key(b"\x00" * 32)


def peer(rng: random.Random, host: str | None = None) -> PeerInfo:
    h = host or f"45.{rng.randrange(256)}.{rng.randrange(256)}.1"  # public: limits apply
    return PeerInfo.make(rng.randbytes(32), h, 7000)


def peers_in_bucket(
    table: RoutingTable, index: int, n: int, rng: random.Random, host=None
) -> list[PeerInfo]:
    out = []
    for _ in range(100_000):
        p = peer(rng, host(len(out)) if host else None)
        if table.index_of(p.id) == index:
            out.append(p)
            if len(out) == n:
                return out
    raise AssertionError("could not find peers")


def cfg(**kw) -> DhtConfig:
    base = dict(k=4, replacement_cache_size=3, max_failures=3)
    base.update(kw)
    return DhtConfig(**base)


def test_lrs_order_and_touch_moves_to_tail() -> None:
    rng = random.Random(1)
    t = RoutingTable(ME, cfg())
    ps = peers_in_bucket(t, 255, 3, rng)
    for i, p in enumerate(ps):
        assert t.update(p, float(i)) is None
    assert t.bucket(255) == ps
    t.update(ps[0], 10.0)
    assert t.bucket(255) == [ps[1], ps[2], ps[0]]
    assert len(t) == 3 and ps[0].id in t and t.get(ps[1].id) == ps[1]


def test_own_id_never_added() -> None:
    t = RoutingTable(ME, cfg())
    me = PeerInfo.make(b"\x00" * 32, "10.0.0.1", 1)
    assert t.update(me, 0.0) is None and len(t) == 0


def test_full_bucket_returns_head_and_keeps_live_peer() -> None:
    rng = random.Random(2)
    t = RoutingTable(ME, cfg())
    ps = peers_in_bucket(t, 255, 6, rng)
    for p in ps[:4]:
        t.update(p, 0.0)
    assert t.update(ps[4], 1.0) == ps[0]  # ping this head
    assert t.bucket(255) == ps[:4]  # nobody dropped
    assert t.replacements(255) == [ps[4]]
    # the head answers: it moves to the tail and stays; the newcomer waits in the cache
    t.update(ps[0], 2.0)
    assert t.bucket(255) == [*ps[1:4], ps[0]]
    assert t.update(ps[5], 3.0) == ps[1]
    assert t.replacements(255) == [ps[4], ps[5]]


def test_one_timeout_never_evicts_max_failures_does_and_promotes_newest() -> None:
    rng = random.Random(3)
    t = RoutingTable(ME, cfg())
    ps = peers_in_bucket(t, 255, 6, rng)
    for p in ps[:4]:
        t.update(p, 0.0)
    t.update(ps[4], 1.0)
    t.update(ps[5], 1.0)
    assert t.record_failure(ps[0].id, 2.0) is False
    assert t.record_failure(ps[0].id, 3.0) is False
    assert t.failures(ps[0].id) == 2
    t.update(ps[0], 4.0)  # an answer resets the count
    assert t.failures(ps[0].id) == 0
    for _ in range(2):
        assert t.record_failure(ps[1].id, 5.0) is False
    assert t.record_failure(ps[1].id, 6.0) is True
    assert ps[1].id not in t
    assert t.bucket(255)[-1] == ps[5]  # newest replacement promoted
    assert t.replacements(255) == [ps[4]]
    assert len(t) == 4


def test_replacement_cache_bounded() -> None:
    rng = random.Random(4)
    t = RoutingTable(ME, cfg(replacement_cache_size=2))
    ps = peers_in_bucket(t, 255, 8, rng)
    for p in ps:
        t.update(p, 0.0)
    assert t.replacements(255) == ps[-2:]


def test_closest_matches_brute_force() -> None:
    rng = random.Random(5)
    t = RoutingTable(ME, DhtConfig(k=20))
    all_peers = [peer(rng) for _ in range(2000)]
    for p in all_peers:
        t.update(p, 0.0)
    held = list(t.peers())
    assert len(held) == len(t)
    for _ in range(50):
        target = rng.randbytes(32)
        want = sorted(held, key=lambda p: distance(p.id, target))[:20]
        assert t.closest(target, 20) == want
    assert t.closest(held[0].id, 5, exclude=held[0].id)[0] != held[0]


def test_bucket_indices_respect_distance() -> None:
    rng = random.Random(6)
    t = RoutingTable(ME, DhtConfig(k=20))
    for _ in range(500):
        t.update(peer(rng), 0.0)
    for i in range(256):
        for p in t.bucket(i):
            assert distance(p.id, ME.value).bit_length() == i + 1


def test_diversity_per_bucket_and_table() -> None:
    rng = random.Random(7)
    t = RoutingTable(ME, DhtConfig(k=20, max_per_ip_group_bucket=2, max_per_ip_group_table=3))
    same24 = peers_in_bucket(t, 255, 3, rng, host=lambda i: f"203.0.113.{i + 1}")
    for p in same24:
        t.update(p, 0.0)
    assert len(t.bucket(255)) == 2  # third from the /24 refused in this bucket
    other = peers_in_bucket(t, 254, 3, rng, host=lambda i: f"203.0.113.{i + 50}")
    for p in other:
        t.update(p, 0.0)
    assert len(t) == 3  # table-wide cap
    v6 = peers_in_bucket(t, 253, 3, rng, host=lambda i: f"2001:db8:1:{i}::1")
    for p in v6:
        t.update(p, 0.0)
    assert len(t.bucket(253)) == 2  # same /48


def test_loopback_exempt_by_default_and_configurable() -> None:
    rng = random.Random(8)
    loop = lambda i: f"127.0.0.{i + 1}"  # noqa: E731
    t = RoutingTable(ME, DhtConfig(k=20))
    for p in peers_in_bucket(t, 255, 10, rng, host=loop):
        t.update(p, 0.0)
    assert len(t) == 10
    t2 = RoutingTable(ME, DhtConfig(k=20, diversity_exempt_private=False))
    for p in peers_in_bucket(t2, 255, 10, rng, host=loop):
        t2.update(p, 0.0)
    assert len(t2) == 2
    t3 = RoutingTable(ME, DhtConfig(k=20, max_per_ip_group_bucket=0, max_per_ip_group_table=0))
    for p in peers_in_bucket(t3, 255, 10, rng, host=lambda i: f"203.0.113.{i}"):
        t3.update(p, 0.0)
    assert len(t3) == 10


def test_ip_group() -> None:
    assert ip_group("10.1.2.3")[0] == ip_group("10.1.2.200")[0] != ip_group("10.1.3.1")[0]
    assert ip_group("127.0.0.1") == ip_group("127.0.0.9")
    assert ip_group("127.0.0.1")[1] and ip_group("::1")[1]
    assert ip_group("192.168.1.7")[1] and ip_group("10.88.0.2")[1] and ip_group("fd00::1")[1]
    assert not ip_group("45.1.2.3")[1] and not ip_group("2001:db8::1")[1]
    assert ip_group("::ffff:10.1.2.3") == ip_group("10.1.2.3")
    assert ip_group("example.org")[0] != ip_group("example.net")[0]


def test_puzzle_gate() -> None:
    rng = random.Random(9)
    t = RoutingTable(ME, DhtConfig(k=20, puzzle_difficulty=4))
    ps = [peer(rng) for _ in range(300)]
    for p in ps:
        t.update(p, 0.0)
    held = {p.id for p in t.peers()}
    assert held and all(puzzle_ok(NodeId(i), 4) for i in held)
    assert len(held) < 300  # ~1/16 pass


def test_refresh_reports_idle_buckets_only() -> None:
    rng = random.Random(10)
    t = RoutingTable(ME, DhtConfig(k=20, bucket_refresh_interval=100.0))
    a = peers_in_bucket(t, 255, 1, rng)[0]
    b = peers_in_bucket(t, 250, 1, rng)[0]
    t.update(a, 0.0)
    t.update(b, 0.0)
    assert t.stale_buckets(50.0) == []  # (and buckets 251..254 start their idle clock)
    t.update(a, 120.0)
    assert t.stale_buckets(120.0) == [250]
    assert t.stale_buckets(160.0) == [250, 251, 252, 253, 254]
    t.touch_bucket(t.random_id_in_bucket(250, rng), 160.0)
    assert 250 not in t.stale_buckets(160.0)
    for i in (0, 1, 100, 255):
        assert t.index_of(t.random_id_in_bucket(i, rng)) == i
