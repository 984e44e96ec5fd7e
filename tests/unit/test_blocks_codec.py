"""Block-exchange bodies: round trips, and garbage gives DecodeError only."""

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hashmesh.errors import DecodeError, IntegrityError
from hashmesh.ids import CODEC_MANIFEST, ContentId
from hashmesh.net import blocks as bx


@given(st.lists(st.binary(max_size=64), max_size=20))
def test_round_trips(datas: list[bytes]) -> None:
    cids = [ContentId.of(d) for d in datas]
    assert bx.decode_have(bx.encode_have(cids)) == cids
    items = list(zip(cids, datas, strict=True))
    assert bx.decode_put_many(bx.encode_put_many(items)) == items
    replies = [d if i % 2 else None for i, d in enumerate(datas)]
    assert bx.decode_get_many_reply(bx.encode_get_many_reply(replies), len(datas)) == replies
    if datas:
        assert bx.decode_put(bx.encode_put(cids[0], datas[0])) == (cids[0], datas[0])
        assert bx.decode_get(bx.encode_get(cids[0])) == cids[0]


@given(st.binary(max_size=200))
def test_garbage_is_a_decode_error(body: bytes) -> None:
    for decode in (bx.decode_have, bx.decode_put, bx.decode_put_many, bx.decode_get):
        try:
            decode(body)
        except DecodeError:
            pass
    try:
        bx.decode_get_many_reply(body, 3)
    except DecodeError:
        pass


def test_wrong_shapes_and_tampered_blocks() -> None:
    with pytest.raises(DecodeError):
        bx.decode_have(msgpack.packb([b"x" * 36] * 5000))
    with pytest.raises(DecodeError):
        bx.decode_put(msgpack.packb([ContentId.of(b"a").to_bytes(), "text"]))
    with pytest.raises(DecodeError):
        bx.decode_get_many_reply(msgpack.packb([b"a", 1]), 2)
    cid = ContentId.of(b"block", CODEC_MANIFEST)
    assert bx.verify(cid, b"block") == b"block"
    with pytest.raises(IntegrityError):
        bx.verify(cid, b"blocK")
