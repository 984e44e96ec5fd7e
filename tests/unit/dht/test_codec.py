"""Codec: round trips, strict typing, caps, and DecodeError (only) for bad input."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hashmesh.dht import codec
from hashmesh.dht.messages import (
    MAX_BATCH_KEYS,
    AddProvider,
    FindMany,
    FindNode,
    FindValue,
    FoundMany,
    GetProviders,
    Nodes,
    PeerInfo,
    Ping,
    Pong,
    ProvideMany,
    Providers,
    Store,
    StoreAck,
    StoreMany,
    Value,
)
from hashmesh.dht.ops import store_batches
from hashmesh.dht.records import MAX_VALUE_BYTES, SignedRecord, ValueRecord
from hashmesh.errors import DecodeError, InvalidArgumentError
from hashmesh.ids import NodeId

keys32 = st.binary(min_size=32, max_size=32)
u64 = st.integers(min_value=0, max_value=(1 << 64) - 1)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
hosts = st.one_of(
    st.ip_addresses().map(str), st.text(min_size=1, max_size=40).filter(lambda s: len(s) <= 253)
)
peers = st.builds(PeerInfo.make, keys32, hosts, st.integers(0, 65535))
peer_lists = st.lists(peers, max_size=codec.MAX_PEERS).map(tuple)
values = st.binary(max_size=2048)
value_records = values.map(ValueRecord.of)
signed_records = st.builds(
    SignedRecord,
    key=keys32,
    public_key=keys32,
    salt=st.binary(max_size=64),
    seq=u64,
    expires=finite,
    value=values,
    signature=st.binary(min_size=64, max_size=64),
)
records = st.one_of(value_records, signed_records)


@st.composite
def found_many(draw: st.DrawFn) -> FoundMany:
    table = tuple(draw(st.lists(peers, max_size=8)))
    refs = (
        st.lists(st.integers(0, len(table) - 1), max_size=codec.MAX_PEERS) if table else st.just([])
    )
    entry = st.tuples(st.none() | records, refs.map(tuple))
    entries = draw(st.lists(entry, min_size=1, max_size=6))
    return FoundMany(draw(u64), draw(peers), table, tuple(entries))


messages = st.one_of(
    st.builds(Ping, u64, peers),
    st.builds(Pong, u64, peers),
    st.builds(FindNode, u64, peers, keys32),
    st.builds(FindValue, u64, peers, keys32),
    st.builds(GetProviders, u64, peers, keys32),
    st.builds(Nodes, u64, peers, peer_lists),
    st.builds(Value, u64, peers, st.none() | records, peer_lists),
    st.builds(Store, u64, peers, records, finite.map(abs)),
    st.builds(StoreAck, u64, peers, st.booleans(), st.text(max_size=256)),
    st.builds(AddProvider, u64, peers, keys32, peers, finite),
    st.builds(Providers, u64, peers, peer_lists, peer_lists),
    st.builds(
        FindMany, u64, peers, st.lists(keys32, min_size=1, max_size=40).map(tuple), st.booleans()
    ),
    found_many(),
    st.builds(
        ProvideMany, u64, peers, st.lists(keys32, min_size=1, max_size=40).map(tuple), finite
    ),
    st.builds(
        StoreMany,
        u64,
        peers,
        st.lists(st.tuples(records, finite.map(abs)), min_size=1, max_size=8).map(tuple),
    ),
)


@given(messages)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_round_trip(m) -> None:
    data = codec.encode(m)
    assert len(data) <= codec.MAX_MESSAGE_BYTES
    assert codec.decode(data) == m


def _decode_or_decode_error(data: bytes) -> None:
    try:
        codec.decode(data)
    except DecodeError:
        pass


@given(st.binary(max_size=512))
@settings(max_examples=2000, deadline=None)
def test_arbitrary_bytes_only_decode_error(data: bytes) -> None:
    _decode_or_decode_error(data)


@given(messages, st.data())
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_encodings_only_decode_error(m, data) -> None:
    raw = bytearray(codec.encode(m))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if op == "flip" and raw:
            raw[pos] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del raw[pos:]
        else:
            raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
    _decode_or_decode_error(bytes(raw))


# msgpack values that are structurally close to messages: arrays of mixed types.
leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    finite,
    st.text(max_size=8),
    st.binary(max_size=40),
    st.floats(),
)
trees = st.recursive(
    leaf,
    lambda c: st.lists(c, max_size=6) | st.dictionaries(st.text(max_size=3), c, max_size=2),
    max_leaves=12,
)


@given(st.lists(trees, max_size=8), st.integers(0, 12))
@settings(max_examples=400, deadline=None)
def test_well_formed_msgpack_wrong_shape(fields, code) -> None:
    body = [1, code, 7, *fields]
    _decode_or_decode_error(msgpack.packb(body, use_bin_type=True))


def _peer(i: int = 1) -> PeerInfo:
    return PeerInfo.make(bytes([i]) * 32, "10.0.0.1", 4000)


def _raw(body: list) -> bytes:
    return msgpack.packb(body, use_bin_type=True)


def _wire_peer(p: PeerInfo) -> list:
    return [p.node_id.value, p.public_key, p.host, p.port]


def test_rejects_id_not_matching_key() -> None:
    p = _peer()
    bad = [bytes(32), p.public_key, p.host, p.port]
    with pytest.raises(DecodeError, match="BLAKE3"):
        codec.decode(_raw([1, 1, 5, bad]))
    forged = PeerInfo(p.public_key, p.host, p.port, NodeId(bytes(32)))
    with pytest.raises(DecodeError):
        codec.decode(_raw([1, 4, 5, _wire_peer(p), [_wire_peer(forged)]]))
    with pytest.raises(InvalidArgumentError):  # and we never emit one
        codec.encode(Nodes(1, p, (forged,)))


@pytest.mark.parametrize(
    "body",
    [
        [2, 1, 5, None],  # wrong version
        [1, 99, 5, None],  # unknown type code
        [1, "Ping", 5, None],  # a name is never a type
        [1, True, 5, None],  # bool is not a type code
        [1, 1, -1, None],  # negative rpc id
        [1, 1, 2**64, None],  # rpc id too large (msgpack itself cannot even carry it)
        [1, 1, 1.5, None],  # float rpc id
    ],
)
def test_rejects_bad_header(body) -> None:
    p = _peer()
    body = [*body[:3], _wire_peer(p)] if body[2] != 2**64 else body
    try:
        data = _raw(body)
    except OverflowError:
        return
    with pytest.raises(DecodeError):
        codec.decode(data)


def test_strict_field_types() -> None:
    p = _wire_peer(_peer())
    good = _raw([1, 3, 5, p, b"t" * 32])
    assert isinstance(codec.decode(good), FindNode)
    for bad in ("t" * 32, b"t" * 31, b"t" * 33, None, 5):
        with pytest.raises(DecodeError):
            codec.decode(_raw([1, 3, 5, p, bad]))
    with pytest.raises(DecodeError):  # extra field
        codec.decode(_raw([1, 3, 5, p, b"t" * 32, 0]))
    with pytest.raises(DecodeError):  # port out of range
        codec.decode(_raw([1, 1, 5, [*p[:3], 70000]]))
    with pytest.raises(DecodeError):  # bool where int expected
        codec.decode(_raw([1, 1, 5, [*p[:3], True]]))
    with pytest.raises(DecodeError):  # int where bool expected
        codec.decode(_raw([1, 8, 5, p, 1, ""]))
    with pytest.raises(DecodeError):  # NaN expiry
        codec.decode(_raw([1, 9, 5, p, b"k" * 32, p, float("nan")]))
    with pytest.raises(DecodeError):  # negative ttl
        codec.decode(_raw([1, 7, 5, p, [1, b"k" * 32, b""], -1.0]))
    with pytest.raises(DecodeError):  # unknown record kind
        codec.decode(_raw([1, 7, 5, p, [3, b"k" * 32, b""], 1.0]))


def test_caps() -> None:
    p = _peer()
    many = tuple(_peer(i) for i in range(codec.MAX_PEERS + 1))
    with pytest.raises(DecodeError):
        codec.decode(codec.encode(Nodes(1, p, many[: codec.MAX_PEERS]))[:-1])
    assert codec.decode(codec.encode(Nodes(1, p, many[: codec.MAX_PEERS]))).peers
    body = [1, 4, 1, _wire_peer(p), [_wire_peer(x) for x in many]]
    with pytest.raises(DecodeError):
        codec.decode(_raw(body))
    with pytest.raises(DecodeError):
        codec.decode(b"\x00" * (codec.MAX_MESSAGE_BYTES + 1))
    big = ValueRecord.of(b"x" * (32 * 1024 + 1))
    with pytest.raises(DecodeError):
        codec.decode(_raw([1, 7, 1, _wire_peer(p), [1, big.key, big.value], 0.0]))
    with pytest.raises(InvalidArgumentError):
        codec.encode(Ping(-1, p))
    with pytest.raises(InvalidArgumentError):
        codec.encode("ping")  # type: ignore[arg-type]


@given(st.lists(st.tuples(records, finite.map(abs)), min_size=1, max_size=20), u64)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_store_many_bytes_are_the_plain_msgpack_array(items, rpc) -> None:
    """StoreMany is packed from cached, checked items; the bytes must not differ."""
    m = StoreMany(rpc, _peer(), tuple(items))
    plain = [1, codec.TYPE_CODES[StoreMany], rpc, _wire_peer(_peer())]
    plain.append([[codec._record(r), float(t)] for r, t in items])
    assert codec.encode(m) == msgpack.packb(plain, use_bin_type=True)
    assert codec.encode(m) == codec.encode(m)  # from the cache the second time


big_values = st.one_of(st.binary(max_size=300), st.integers(0, MAX_VALUE_BYTES).map(bytes))


@given(
    st.lists(
        st.one_of(big_values.map(ValueRecord.of), signed_records, st.just(ValueRecord.of(b""))),
        min_size=1,
        max_size=1200,
    ),
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_store_batches_runs_always_encode(recs) -> None:
    """Every run store_batches cuts (its size estimate per record) fits one StoreMany."""
    runs = list(store_batches(recs, lambda r: r))
    assert [r for run in runs for r in run] == recs
    for run in runs:
        data = codec.encode(StoreMany(1, _peer(), tuple((r, 1.0) for r in run)))
        assert len(data) <= codec.MAX_MESSAGE_BYTES


def test_store_batches_fill_messages_with_small_values() -> None:
    """Small plain values are packed many to a message (fewer requests per put_many)."""
    recs = [ValueRecord.of(i.to_bytes(100, "big")) for i in range(600)]
    runs = list(store_batches(recs, lambda r: r))
    assert len(runs) == 3 and min(map(len, runs[:2])) >= 200  # 115 with the old estimate


def test_store_many_encoder_refuses_what_decode_would() -> None:
    p = _peer()
    rec = ValueRecord.of(b"v")
    for bad in (
        StoreMany(1, p, ()),  # no items
        StoreMany(1, p, ((rec, 0.0),) * (codec.MAX_BATCH_RECORDS + 1)),  # too many
        StoreMany(1, p, ((rec, -1.0),)),  # negative ttl
        StoreMany(1, p, ((rec, float("nan")),)),  # NaN ttl
        StoreMany(-1, p, ((rec, 0.0),)),  # negative rpc id
        StoreMany(1, p, ((ValueRecord(b"k" * 31, b"v"), 0.0),)),  # short key
        StoreMany(1, PeerInfo(p.public_key, p.host, p.port, NodeId(bytes(32))), ((rec, 0.0),)),
    ):
        with pytest.raises(InvalidArgumentError):
            codec.encode(bad)


def test_batch_messages_checked() -> None:
    p, q = _wire_peer(_peer()), _wire_peer(_peer(2))
    key = b"k" * 32
    assert codec.decode(_raw([1, 13, 5, p, [key], True])) == FindMany(5, _peer(), (key,), True)
    for fields in (
        [[], True],  # no keys
        [[key] * (MAX_BATCH_KEYS + 1), False],  # too many keys
        [[key], 1],  # int where bool expected
        [[key[:31]], False],  # short key
    ):
        with pytest.raises(DecodeError):
            codec.decode(_raw([1, 13, 5, p, *fields]))
    want = ProvideMany(6, _peer(), (key,), 5.0)
    assert codec.decode(_raw([1, 15, 6, p, [key], 5.0])) == want
    for fields in (
        [[], 5.0],  # no keys
        [[key] * (MAX_BATCH_KEYS + 1), 5.0],  # too many keys
        [[key[:31]], 5.0],  # short key
        [[key], float("inf")],  # expiry not finite
        [[key], "soon"],  # expiry not a number
    ):
        with pytest.raises(DecodeError):
            codec.decode(_raw([1, 15, 6, p, *fields]))
    ok = _raw([1, 14, 5, p, [q], [[None, [0]]]])
    assert codec.decode(ok).entries == ((None, (0,)),)  # type: ignore[union-attr]
    for fields in (
        [[q], [[None, [1]]]],  # index past the table
        [[], [[None, [0]]]],  # index into an empty table
        [[q], []],  # no entries
        [[q], [[None, [-1]]]],  # negative index
        [[q], [[None]]],  # entry of the wrong shape
    ):
        with pytest.raises(DecodeError):
            codec.decode(_raw([1, 14, 5, p, *fields]))


def test_never_other_exceptions_on_odd_containers() -> None:
    for data in (
        b"",
        b"\xc1",
        b"\x91",
        b"\xdd\xff\xff\xff\xff",
        b"\x81\x01\x02",
        b"\xd4\x01\x00",
        b"\x91" * 5000,
        bytearray(b"\x90"),
        memoryview(b"\x94\x01\x01\x01\xc0"),
    ):
        with pytest.raises(DecodeError):
            codec.decode(data)
    with pytest.raises(DecodeError):
        codec.decode("not bytes")  # type: ignore[arg-type]
