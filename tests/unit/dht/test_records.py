"""Record validation rules and the local record store."""

from __future__ import annotations

import dataclasses
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from hashmesh.dht import PeerInfo
from hashmesh.dht.records import (
    MAX_VALUE_BYTES,
    ProviderRecord,
    RecordStore,
    SignedRecord,
    ValueRecord,
    check_replace,
    mutable_key,
    validate,
)
from hashmesh.errors import RecordError
from hashmesh.identity import Identity

OWNER = Identity.from_private_bytes(bytes(range(32)))
OTHER = Identity.from_private_bytes(bytes(range(1, 33)))


def signed(seq: int = 1, value: bytes = b"v", expires: float = 1000.0, ident=OWNER) -> SignedRecord:
    return SignedRecord.create(ident.public_key, b"salt", seq, expires, value, ident.sign)


def test_value_record_key_is_hash() -> None:
    r = ValueRecord.of(b"data")
    validate(r, 0.0)
    validate(r, 0.0, key=r.key)
    with pytest.raises(RecordError, match="hash"):
        validate(ValueRecord(bytes(32), b"data"), 0.0)
    with pytest.raises(RecordError, match="requested key"):
        validate(r, 0.0, key=bytes(32))
    with pytest.raises(RecordError, match="larger"):
        validate(ValueRecord.of(b"x" * (MAX_VALUE_BYTES + 1)), 0.0)


def test_signed_record_rules() -> None:
    r = signed()
    assert r.key == mutable_key(OWNER.public_key, b"salt")
    validate(r, 10.0)
    with pytest.raises(RecordError, match="signature"):
        validate(dataclasses.replace(r, value=b"tampered"), 10.0)
    with pytest.raises(RecordError, match="signature"):
        validate(dataclasses.replace(r, seq=2), 10.0)
    forged = SignedRecord.create(OWNER.public_key, b"salt", 1, 1000.0, b"v", OTHER.sign)
    with pytest.raises(RecordError, match="signature"):
        validate(forged, 10.0)
    with pytest.raises(RecordError, match="key"):
        validate(dataclasses.replace(r, key=bytes(32)), 10.0)
    with pytest.raises(RecordError, match="expired"):
        validate(r, 1000.0)
    with pytest.raises(RecordError, match="unknown"):
        validate("not a record", 0.0)


def test_sequence_rules() -> None:
    r1, r2 = signed(1), signed(2, b"newer")
    assert check_replace(r1, r2) is True
    with pytest.raises(RecordError, match="stale"):
        check_replace(r2, r1)
    with pytest.raises(RecordError, match="already used"):
        check_replace(r1, signed(1, b"other"))
    assert check_replace(r1, r1) is False


def test_store_replaces_only_with_higher_seq_and_expires() -> None:
    st = RecordStore(max_records=10, max_providers_per_key=2)
    r1, r2 = signed(1), signed(2, b"two", expires=500.0)
    assert st.put(r1, 0.0, 100.0)
    assert st.put(r2, 1.0, 100.0)
    with pytest.raises(RecordError, match="stale"):
        st.put(r1, 2.0, 100.0)
    assert st.get(r1.key, 50.0) == r2
    assert st.get(r1.key, 101.0) is None  # local ttl
    v = ValueRecord.of(b"x")
    st.put(v, 0.0, 10.0)
    assert st.get(v.key, 9.9) == v and st.get(v.key, 10.0) is None
    # the signed record's own expiry caps the local ttl
    st.put(signed(3, expires=20.0), 0.0, 100.0)
    assert st.get(r1.key, 19.0) is not None and st.get(r1.key, 20.0) is None


def test_store_capacity_and_expire() -> None:
    st = RecordStore(max_records=2, max_providers_per_key=2)
    a, b, c = (ValueRecord.of(bytes([i])) for i in range(3))
    st.put(a, 0.0, 10.0)
    st.put(b, 0.0, 20.0)
    with pytest.raises(RecordError, match="full"):
        st.put(c, 5.0, 10.0)
    assert st.put(c, 15.0, 10.0)  # a expired, room again
    assert st.expire(100.0) == 2 and len(st) == 0


def test_received_time_tracked_for_republish_skip() -> None:
    st = RecordStore(max_records=10, max_providers_per_key=2)
    v = ValueRecord.of(b"x")
    st.put(v, 0.0, 100.0, received=False)
    assert st.received_at(v.key) == float("-inf")
    st.put(v, 5.0, 100.0, received=True)
    assert st.received_at(v.key) == 5.0


def test_providers() -> None:
    st = RecordStore(max_records=10, max_providers_per_key=2)
    key = bytes(32)
    ps = [PeerInfo.make(bytes([i]) * 32, "10.0.0.1", 1) for i in range(3)]
    st.add_provider(ProviderRecord(key, ps[0], 10.0), 0.0)
    st.add_provider(ProviderRecord(key, ps[1], 50.0), 0.0)
    with pytest.raises(RecordError, match="too many"):
        st.add_provider(ProviderRecord(key, ps[2], 50.0), 0.0)
    assert st.providers(key, 5.0, 10) == ps[:2]
    st.add_provider(ProviderRecord(key, ps[2], 50.0), 20.0)  # ps[0] expired: room
    assert st.providers(key, 20.0, 10) == ps[1:]
    with pytest.raises(RecordError, match="expired"):
        st.add_provider(ProviderRecord(key, ps[0], 10.0), 20.0)
    assert st.expire(60.0) == 2 and st.providers(key, 60.0, 10) == []


def test_provider_keys_are_bounded() -> None:
    """A peer cannot grow the provider store without bound (ProvideMany carries 128 keys)."""
    st = RecordStore(max_records=3, max_providers_per_key=2)
    p = PeerInfo.make(bytes([7]) * 32, "10.0.0.1", 1)
    for i in range(3):
        st.add_provider(ProviderRecord(bytes([i]) * 32, p, 10.0 + i), 0.0)
    with pytest.raises(RecordError, match="full"):
        st.add_provider(ProviderRecord(bytes([9]) * 32, p, 50.0), 0.0)
    st.add_provider(ProviderRecord(bytes([0]) * 32, p, 50.0), 0.0)  # a known key: renewed
    st.add_provider(ProviderRecord(bytes([9]) * 32, p, 50.0), 11.5)  # two expired: room
    assert st.providers(bytes([9]) * 32, 11.5, 10) == [p]


@settings(max_examples=200, deadline=None)
@given(
    ops=hst.lists(
        hst.tuples(
            hst.sampled_from(["put", "provide", "expire", "get"]),
            hst.integers(0, 7),  # which key
            hst.integers(0, 3),  # which provider
            hst.floats(0.0, 30.0),  # time step before the operation
            hst.floats(0.5, 50.0),  # ttl
        ),
        max_size=80,
    )
)
def test_expire_matches_a_full_scan(ops) -> None:
    """The expiry heaps drop exactly what a scan of every entry would."""
    store = RecordStore(max_records=100, max_providers_per_key=10)
    values = [ValueRecord.of(bytes([i])) for i in range(8)]
    peers = [PeerInfo.make(bytes([i + 1]) * 32, "10.0.0.1", 1) for i in range(4)]
    rec_exp: dict[bytes, float] = {}  # the model: key -> expiry
    prov_exp: dict[tuple[bytes, int], float] = {}
    now = 0.0
    for op, i, j, step, ttl in ops:
        now += step
        key = values[i].key
        if op == "put":
            live = rec_exp.get(key, -1.0) > now
            store.put(values[i], now, ttl)
            rec_exp[key] = max(rec_exp[key], now + ttl) if live else now + ttl
        elif op == "provide":
            store.add_provider(ProviderRecord(key, peers[j], now + ttl), now)
            prov_exp[(key, j)] = now + ttl
        elif op == "get":
            got = store.get(key, now)
            assert (got is not None) == (rec_exp.get(key, -1.0) > now)
            if got is None:
                rec_exp.pop(key, None)
        else:
            gone = [k for k, e in rec_exp.items() if e <= now]
            gone_p = [k for k, e in prov_exp.items() if e <= now]
            assert store.expire(now) == len(gone) + len(gone_p)
            for k in gone:
                del rec_exp[k]
            for k in gone_p:
                del prov_exp[k]
            assert sorted(store.keys()) == sorted(rec_exp)
            for v in values:
                want = [peers[j] for (k, j) in sorted(prov_exp) if k == v.key]
                assert sorted(p.id for p in store.providers(v.key, now, 10)) == sorted(
                    p.id for p in want
                )


def test_a_full_store_refuses_puts_without_scanning_every_record() -> None:
    """Each refused put used to scan the whole store for expired records."""
    n = 20_000
    store = RecordStore(max_records=n, max_providers_per_key=2)
    for i in range(n):
        store.put(ValueRecord.of(i.to_bytes(4, "big")), 0.0, 1000.0)
    extra = [ValueRecord.of(b"x" + i.to_bytes(4, "big")) for i in range(n)]
    t0 = time.process_time()
    for rec in extra:
        with pytest.raises(RecordError, match="full"):
            store.put(rec, 1.0, 1000.0)
    # a scan each: 400 million entries visited (seconds); without: tens of ms
    assert time.process_time() - t0 < 0.5
    assert store.expire(2000.0) == n and len(store) == 0


def test_renewals_do_not_grow_the_expiry_heaps_without_bound() -> None:
    store = RecordStore(max_records=10, max_providers_per_key=2)
    rec = ValueRecord.of(b"renewed")
    peer = PeerInfo.make(bytes([5]) * 32, "10.0.0.1", 1)
    for i in range(1000):  # each renewal pushes an entry; the old one goes stale
        store.put(rec, float(i), 10.0)
        store.add_provider(ProviderRecord(rec.key, peer, i + 10.0), float(i))
    assert len(store._rheap) <= 2 * 64 + 64 and len(store._pheap) <= 2 * 64 + 64
    assert store.expire(1008.0) == 0 and store.get(rec.key, 1008.0) == rec
    assert store.expire(1009.0) == 2 and len(store) == 0
