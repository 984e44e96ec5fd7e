"""Batched DHT calls (lookup_many, get_many, put_many) in in-memory networks.

Every message crosses the real codec here (encode, then decode), so a FindMany or
FoundMany the codec would refuse, or one over the size cap, fails the test.
"""

from __future__ import annotations

import random

import pytest
from tests.unit.dht.memnet import MemNet

from hashmesh.config import DhtConfig
from hashmesh.dht import (
    FindMany,
    FoundMany,
    GetDone,
    GetManyDone,
    GetManyPart,
    LookupDone,
    LookupManyDone,
    PeerInfo,
    Protocol,
    ProvideManyDone,
    ProvidersFound,
    PutManyDone,
    ValueRecord,
    codec,
    protocol,
)
from hashmesh.dht.batch import BatchLookup
from hashmesh.dht.records import MAX_VALUE_BYTES
from hashmesh.errors import InvalidArgumentError, RecordError
from hashmesh.ids import distance


class WireNet(MemNet):
    """A MemNet whose messages go through bytes, counting FindMany and FoundMany sizes."""

    def __init__(self, n: int, seed: int, config: DhtConfig | None = None) -> None:
        super().__init__(n, seed, config)
        self.sent: dict[str, int] = {}
        self.largest = 0

    def pump(self, proto: Protocol) -> None:
        out = proto.messages_to_send()
        wire = []
        for dest, msg in out:
            data = codec.encode(msg)
            self.largest = max(self.largest, len(data))
            name = type(msg).__name__
            self.sent[name] = self.sent.get(name, 0) + 1
            wire.append((dest, codec.decode(data)))
        proto._out = wire  # hand the decoded copies to MemNet's delivery
        super().pump(proto)


@pytest.fixture(scope="module")
def net() -> WireNet:
    n = WireNet(120, seed=31)
    n.bootstrap_all()
    return n


@pytest.mark.parametrize(("prefix", "factor"), [(b"", 1.5), (b"\x5a", 5.0)])
def test_lookup_many_matches_lone_lookups_with_fewer_requests(
    net: WireNet, prefix: bytes, factor: float
) -> None:
    """Random keys share some peers; keys of one region (one prefix) share nearly all."""
    rng = random.Random(32)
    keys = [prefix + rng.randbytes(32 - len(prefix)) for _ in range(60)]
    before = dict(net.sent)
    e = net.result(3, net.call(3, "lookup_many", keys))
    assert isinstance(e, LookupManyDone) and len(e.closest) == len(keys)
    batched = net.sent.get("FindMany", 0) - before.get("FindMany", 0)
    assert batched == e.messages
    lone = 0
    for key, got in zip(keys, e.closest, strict=True):
        want = net.true_closest(key, 8, exclude=net.infos[3].id)
        assert [p.id for p in got] == want
        one = net.result(3, net.call(3, "lookup", key))
        assert isinstance(one, LookupDone)
        lone += one.messages
    assert batched * factor < lone


def test_put_many_then_get_many_elsewhere(net: WireNet) -> None:
    rng = random.Random(33)
    recs = [ValueRecord.of(rng.randbytes(100)) for _ in range(150)]
    e = net.result(5, net.call(5, "put_many", recs))
    assert isinstance(e, PutManyDone)
    assert len(e.stored_at) == len(recs) and min(e.stored_at) >= 7  # k = 8, one may be us
    assert net.sent.get("StoreMany", 0) < len(recs)  # batched, not one per record
    missing = rng.randbytes(32)
    keys = [r.key for r in recs] + [missing]
    g = net.result(40, net.call(40, "get_many", keys))
    assert isinstance(g, GetManyDone)
    assert g.records[:-1] == recs and g.records[-1] is None
    one = net.result(41, net.call(41, "get", recs[7].key))  # lone get sees batched stores
    assert isinstance(one, GetDone) and one.record == recs[7]


def test_get_many_survives_dead_nodes() -> None:
    n = WireNet(120, seed=34)
    n.bootstrap_all()
    rng = random.Random(35)
    recs = [ValueRecord.of(rng.randbytes(64)) for _ in range(100)]
    assert isinstance(n.result(2, n.call(2, "put_many", recs)), PutManyDone)
    n.kill(p.id for p in rng.sample(n.infos[10:], 30))  # a quarter fail silently
    g = n.result(4, n.call(4, "get_many", [r.key for r in recs]), until=n.now + 120)
    assert isinstance(g, GetManyDone)
    assert sum(r is not None for r in g.records) >= 99
    assert all(r is None or r == want for r, want in zip(g.records, recs, strict=True))


def test_large_values_split_over_several_answers() -> None:
    n = WireNet(40, seed=36)
    n.bootstrap_all()
    rng = random.Random(37)
    recs = [ValueRecord.of(rng.randbytes(MAX_VALUE_BYTES)) for _ in range(12)]
    assert min(n.result(1, n.call(1, "put_many", recs)).stored_at) >= 1  # type: ignore[union-attr]
    g = n.result(9, n.call(9, "get_many", [r.key for r in recs]))
    assert isinstance(g, GetManyDone) and g.records == recs
    assert n.largest <= codec.MAX_MESSAGE_BYTES


def test_wrong_record_in_an_answer_is_not_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    n = MemNet(60, seed=38)
    n.bootstrap_all()
    rng = random.Random(39)
    recs = [ValueRecord.of(rng.randbytes(50)) for _ in range(20)]
    n.result(1, n.call(1, "put_many", recs))
    liar = n.proto(20)
    forged = ValueRecord(recs[0].key, b"forged")  # key is not BLAKE3 of the value

    def lie(sender, m: FindMany, now: float) -> FoundMany:
        return FoundMany(m.rpc_id, liar.me, (), tuple((forged, ()) for _ in m.keys))

    monkeypatch.setattr(liar, "_on_find_many", lie)
    # dispatch through the instance, so only the liar answers with its forgery
    monkeypatch.setitem(
        protocol._HANDLERS, FindMany, lambda self, s, m, now: self._on_find_many(s, m, now)
    )
    g = n.result(30, n.call(30, "get_many", [r.key for r in recs]))
    assert isinstance(g, GetManyDone) and g.records == recs


def test_invalid_record_refused_before_sending() -> None:
    n = MemNet(10, seed=40)
    n.bootstrap_all()
    bad = ValueRecord(b"k" * 32, b"not the preimage")
    with pytest.raises(RecordError):
        n.call(1, "put_many", [ValueRecord.of(b"fine"), bad])
    assert n.proto(1).messages_to_send() == []


def test_empty_batches_finish_at_once() -> None:
    n = MemNet(10, seed=41)
    n.bootstrap_all()
    for method, want in (
        ("lookup_many", LookupManyDone),
        ("get_many", GetManyDone),
        ("put_many", PutManyDone),
    ):
        e = n.result(2, n.call(2, method, []))
        assert isinstance(e, want) and e.messages == 0


def test_value_batches_start_narrow_and_widen_on_a_miss() -> None:
    """get_many asks each key one of its alpha closest first, preferring a peer other
    keys may ask too; a miss, failure or hedge brings in k seeds and alpha at once."""
    from hashmesh.dht.batch import BatchLookup

    rng = random.Random(42)
    peers = [PeerInfo.make(rng.randbytes(32), "10.0.0.1", 7000 + i) for i in range(12)]
    asked: list[int] = []

    def seeds_for(key: bytes, count: int) -> list[PeerInfo]:
        asked.append(count)
        return sorted(peers, key=lambda p: distance(p.id, key))[:count]

    # keys near one peer share it among their three closest
    hub = peers[0].id
    keys = [hub[:2] + rng.randbytes(30) for _ in range(3)]
    near = [seeds_for(key, 3) for key in keys]
    asked.clear()
    shared = set.intersection(*({p.id for p in ps} for ps in near))
    assert shared
    b = BatchLookup(keys, seeds_for, k=8, alpha=3, exclude=None, want_values=True)
    assert asked == [3, 3, 3]
    first = b.next_queries(range(3))
    assert len(first) == 1 and sorted(first[0][1]) == [0, 1, 2]  # one request for all
    peer = first[0][0]
    assert peer.id in shared
    b.on_answer(peer.id, [0], FoundMany(1, peer, (), ((None, ()),)), lambda r, k: True)
    assert asked == [3, 3, 3, 8]  # key 0 missed: widened from the table
    assert len(b.next_queries([0])) == 3  # and asks alpha at once now
    b.on_failure(peer.id, [0])  # a second miss or failure does not widen again
    assert asked == [3, 3, 3, 8]
    rec = ValueRecord.of(b"v")
    b.on_answer(peer.id, [1], FoundMany(2, peer, (), ((rec, ()),)), lambda r, k: True)
    assert b.done[1] and b.records[1] == rec and asked == [3, 3, 3, 8]
    assert b.hedge() == [2]  # key 2 still waits on its first peer: widened
    assert asked == [3, 3, 3, 8, 8] and b.hedge() == []


def _holders(n: MemNet, key: bytes) -> set[bytes]:
    return {nid for nid, proto in n.nodes.items() if proto.records.get(key, n.now) is not None}


def test_put_many_reuses_a_recent_region_lookup() -> None:
    """A second put_many into regions looked up within region_cache_ttl sends no
    FindMany, yet every record still reaches its true k closest nodes; after the ttl
    the regions are looked up again."""
    n = WireNet(120, seed=42)
    n.bootstrap_all()
    rng = random.Random(43)
    first = [ValueRecord.of(rng.randbytes(80)) for _ in range(200)]
    assert min(n.result(3, n.call(3, "put_many", first)).stored_at) >= 7  # type: ignore[union-attr]
    looked = n.sent.get("FindMany", 0)
    assert looked > 0
    second = [ValueRecord.of(rng.randbytes(80)) for _ in range(200)]
    e = n.result(3, n.call(3, "put_many", second))
    assert isinstance(e, PutManyDone) and min(e.stored_at) >= 7
    assert n.sent.get("FindMany", 0) == looked  # every region came from the cache
    me = n.infos[3].id

    def placed(recs: list[ValueRecord]) -> float:  # of the k true closest, on average
        return sum(
            len(_holders(n, r.key) & set(n.true_closest(r.key, 8, exclude=me))) for r in recs
        ) / len(recs)

    assert placed(second) >= 6.5 and placed(second) >= placed(first) - 0.25
    n.now += n.config.region_cache_ttl + 1
    third = [ValueRecord.of(rng.randbytes(80)) for _ in range(50)]
    assert isinstance(n.result(3, n.call(3, "put_many", third)), PutManyDone)
    assert n.sent.get("FindMany", 0) > looked


def test_a_dead_peer_in_a_cached_region_forces_a_fresh_lookup() -> None:
    n = WireNet(80, seed=44)
    n.bootstrap_all()
    rng = random.Random(45)
    recs = [ValueRecord.of(rng.randbytes(80)) for _ in range(100)]
    n.result(3, n.call(3, "put_many", recs))
    holders = set().union(*(_holders(n, r.key) for r in recs)) - {n.infos[3].id}
    n.kill(rng.sample(sorted(holders), 5))
    more = [ValueRecord.of(rng.randbytes(80)) for _ in range(100)]
    looked = n.sent.get("FindMany", 0)
    e = n.result(3, n.call(3, "put_many", more))  # from the cache: some stores time out
    assert isinstance(e, PutManyDone) and min(e.stored_at) >= 3
    assert n.sent.get("FindMany", 0) == looked
    assert not n.proto(3)._region_cache  # ... so the cache was dropped
    last = [ValueRecord.of(rng.randbytes(80)) for _ in range(100)]
    e = n.result(3, n.call(3, "put_many", last))
    assert isinstance(e, PutManyDone) and min(e.stored_at) >= 7
    assert n.sent.get("FindMany", 0) > looked


def test_provide_many_announces_in_batches_and_republishes_them() -> None:
    n = WireNet(100, seed=46)
    n.bootstrap_all()
    rng = random.Random(47)
    keys = [rng.randbytes(32) for _ in range(150)]
    e = n.result(5, n.call(5, "provide_many", keys))
    assert isinstance(e, ProvideManyDone) and min(e.stored_at) >= 7
    assert 0 < n.sent.get("ProvideMany", 0) < len(keys)
    assert n.sent.get("AddProvider", 0) == 0
    me = n.infos[5].id
    for key in keys[:10]:
        found = n.result(60, n.call(60, "find_providers", key))
        assert isinstance(found, ProvidersFound) and me in {p.id for p in found.providers}
    # the originator's republish of what it provides is batched too
    before = n.sent.get("ProvideMany", 0)
    n.run(until=n.now + n.config.originator_republish_interval + 5)
    assert n.sent.get("ProvideMany", 0) > before and n.sent.get("AddProvider", 0) == 0
    for call in ("provide_many", "lookup_many", "get_many"):
        with pytest.raises(InvalidArgumentError):
            n.call(5, call, [keys[0], b"short"])
    for call in ("provide", "lookup", "get", "find_providers"):
        with pytest.raises(InvalidArgumentError):
            n.call(5, call, b"short")


@pytest.mark.parametrize("lone", [False, True])
def test_gets_ask_one_peer_first_and_fewer_requests_than_alpha_at_once(lone: bool) -> None:
    """A settled network: each value is at its k closest, so the one first peer a get
    asks holds it. Asking alpha at once (get_hedge 0) costs more requests for the same
    records."""
    sent = {}
    for hedge in (0.25, 0.0):
        n = WireNet(30, 38, DhtConfig(k=8, alpha=3, request_timeout=1.0, get_hedge=hedge))
        n.bootstrap_all()
        rng = random.Random(39)
        recs = [ValueRecord.of(rng.randbytes(64)) for _ in range(50)]
        assert isinstance(n.result(2, n.call(2, "put_many", recs)), PutManyDone)
        reader = 7
        before = n.sent.get("FindMany", 0) + n.sent.get("FindValue", 0)
        if lone:
            for r in recs:
                g = n.result(reader, n.call(reader, "get", r.key))
                assert isinstance(g, GetDone) and g.record == r
        else:
            g = n.result(reader, n.call(reader, "get_many", [r.key for r in recs]))
            assert isinstance(g, GetManyDone) and g.records == recs
        sent[hedge] = n.sent.get("FindMany", 0) + n.sent.get("FindValue", 0) - before
    assert sent[0.25] * 2 <= sent[0.0], sent


def stored_and_first_peers(seed: int) -> tuple[WireNet, list[ValueRecord], dict[int, bytes]]:
    """40 records put on a 30-node net; for each key node 7 lacks, the one peer a
    get_many of them all asks first."""
    n = WireNet(30, seed=seed)
    n.bootstrap_all()
    rng = random.Random(seed + 1)
    recs = [ValueRecord.of(rng.randbytes(64)) for _ in range(40)]
    keys = [r.key for r in recs]
    assert isinstance(n.result(2, n.call(2, "put_many", recs)), PutManyDone)
    reader = n.proto(7)
    plan = BatchLookup(
        keys,
        reader.routing_table.closest,
        k=n.config.k,
        alpha=n.config.alpha,
        exclude=reader.me.id,
        want_values=True,
    )
    remote = [i for i, key in enumerate(keys) if reader.records.get(key, n.now) is None]
    return n, recs, {i: p.id for p, idx in plan.next_queries(remote) for i in idx}


def test_get_many_with_a_silent_first_peer_hedges_to_the_next() -> None:
    n, recs, first = stored_and_first_peers(40)
    keys = [r.key for r in recs]
    remote = list(first)
    firsts = set(first.values())
    assert len(remote) >= 10 and len(firsts) < len(remote) / 2  # keys share first peers
    n.kill(sorted(firsts)[:2])  # silent: no failure before the request deadline
    start = n.now
    g = n.result(7, n.call(7, "get_many", keys), until=n.now + 30)
    assert isinstance(g, GetManyDone) and g.records == recs
    # the hedge (0.25 s) brought in the next peers well before the 1 s request deadline
    assert n.now - start < n.config.request_timeout


def test_a_progress_get_many_reports_each_key_before_its_slowest_one() -> None:
    n, recs, first = stored_and_first_peers(50)
    keys = [r.key for r in recs]
    reader = n.proto(7)
    remote = list(first)
    silent = sorted(set(first.values()))[0]
    n.kill([silent])  # its keys wait for the hedge (0.25 s); the others need not
    slow = {i for i, pid in first.items() if pid == silent}
    assert slow and len(slow) < len(remote)
    start = n.now
    op = reader.get_many(keys, n.now, progress=True)
    n.pump(reader)
    n.run(until=start + 0.2)  # before the hedge
    events = [e for e in n.events[reader.me.id] if e.op == op]
    assert not any(isinstance(e, GetManyDone) for e in events)
    early = {e.index: e.record for e in events if isinstance(e, GetManyPart)}
    assert set(early) == set(range(len(keys))) - slow  # every key but the silent peer's
    assert all(early[i] == recs[i] for i in early)
    n.run(until=start + 5)
    events = [e for e in n.events[reader.me.id] if e.op == op]
    done = events.pop()
    assert isinstance(done, GetManyDone) and done.records == recs  # last, after the parts
    assert sorted(e.index for e in events) == list(range(len(keys)))  # each key once
    assert all(isinstance(e, GetManyPart) and e.record == recs[e.index] for e in events)
