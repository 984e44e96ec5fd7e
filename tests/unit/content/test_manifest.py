"""Manifest encoding: round trips, strict decoding, bounded trees."""

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hashmesh.content import manifest as mf
from hashmesh.errors import DecodeError, InvalidArgumentError
from hashmesh.ids import ContentId

cids = st.builds(
    ContentId,
    st.binary(min_size=32, max_size=32),
    st.sampled_from([ContentId.RAW, ContentId.MANIFEST]),
)
links = st.lists(st.builds(mf.Link, cids, st.integers(0, 2**40)), max_size=50)
names = st.text(min_size=1, max_size=30).filter(
    lambda s: (
        s not in (".", "..")
        and not any(c in s for c in "/\\\x00")
        and len(s.encode("utf-8", "surrogatepass")) <= 255
        and not any(0xD800 <= ord(c) <= 0xDFFF for c in s)
    )
)


@settings(max_examples=100, deadline=None)
@given(links=links)
def test_file_round_trip(links):
    m = mf.FileManifest(tuple(links))
    back = mf.decode(mf.encode(m))
    assert back == m and back.size == sum(lk.size for lk in links)


@settings(max_examples=100, deadline=None)
@given(
    entries=st.dictionaries(
        names,
        st.tuples(
            st.binary(min_size=32, max_size=32), st.integers(0, 2**40), st.sampled_from(mf.KINDS)
        ),
        max_size=20,
    )
)
def test_dir_round_trip(entries):
    es = tuple(
        mf.Entry(n, ContentId(d, ContentId.MANIFEST), s, k)
        for n, (d, s, k) in sorted(entries.items())
    )
    m = mf.DirManifest(es)
    assert mf.decode(mf.encode(m)) == m


@settings(max_examples=300, deadline=None)
@given(garbage=st.binary(max_size=300))
def test_garbage_raises_decode_error_only(garbage):
    try:
        mf.decode(garbage)
    except DecodeError:
        pass


@settings(max_examples=200, deadline=None)
@given(
    body=st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**64 - 1)
        | st.text(max_size=5)
        | st.binary(max_size=40),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
        ),
        max_leaves=12,
    ),
    kind=st.sampled_from(["file", "dir", "x"]),
)
def test_wrongly_typed_msgpack_raises_decode_error_only(body, kind):
    doc = {"v": 1, "t": kind, "size": 0, "links": body, "entries": body}
    try:
        mf.decode(msgpack.packb(doc, use_bin_type=True))
    except DecodeError:
        pass


def test_invariants_are_checked():
    cid = ContentId(b"\x01" * 32)
    good = mf.encode(mf.FileManifest((mf.Link(cid, 10),)))
    body = msgpack.unpackb(good)
    for key, value in (("v", 2), ("size", 11), ("t", "dir")):
        bad = dict(body, **{key: value})
        with pytest.raises(DecodeError):
            mf.decode(msgpack.packb(bad, use_bin_type=True))
    with pytest.raises(DecodeError):
        mf.decode(b"\x00" * (mf.MAX_MANIFEST_BYTES + 1))


def test_unsafe_names_are_refused():
    cid = ContentId(b"\x02" * 32, ContentId.MANIFEST)
    for name in ("..", ".", "a/b", "", "x\x00"):
        with pytest.raises(InvalidArgumentError):
            mf.encode(mf.DirManifest((mf.Entry(name, cid, 0, "file"),)))
        doc = {"v": 1, "t": "dir", "size": 0, "entries": [[name, cid.to_bytes(), 0, "file"]]}
        with pytest.raises(DecodeError):
            mf.decode(msgpack.packb(doc, use_bin_type=True))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 200), fanout=st.integers(2, 6))
def test_tree_builder_is_bounded_and_ordered(n, fanout):
    blocks: dict[ContentId, mf.FileManifest] = {}

    def emit(data: bytes) -> ContentId:
        m = mf.decode(data)
        assert isinstance(m, mf.FileManifest) and len(m.links) <= fanout
        cid = ContentId.of(data, ContentId.MANIFEST)
        blocks[cid] = m
        return cid

    b = mf.TreeBuilder(emit, fanout)
    chunks = [ContentId.of(i.to_bytes(4, "big")) for i in range(n)]
    for i, c in enumerate(chunks):
        b.add(c, i + 1)
    root, size = b.finish()
    assert size == sum(range(1, n + 1))

    def leaves(cid: ContentId) -> list[ContentId]:
        out = []
        for lk in blocks[cid].links:
            out += leaves(lk.cid) if lk.cid.is_manifest else [lk.cid]
        return out

    assert leaves(root) == chunks
    if n > 1:
        assert len(blocks[root].links) >= 2
