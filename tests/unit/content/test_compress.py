"""Stored block form: header, compression when it pays, strict decoding."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hashmesh.content.compress import (
    FLAG_ZSTD,
    HEADER_SIZE,
    KIND_MANIFEST,
    KIND_RAW,
    BlockCodec,
    parse_header,
)
from hashmesh.errors import DecodeError


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=5000), kind=st.sampled_from([KIND_RAW, KIND_MANIFEST]))
def test_round_trip(data, kind):
    codec = BlockCodec(3, 512)
    stored = codec.encode_bytes(data, kind)
    header, plain = codec.decode(stored)
    assert bytes(plain) == data and header.kind == kind and header.plain_size == len(data)


def test_compressible_block_is_compressed_and_flagged():
    codec = BlockCodec(3, 512)
    stored = codec.encode_bytes(b"abc" * 10_000, KIND_RAW)
    assert parse_header(stored).flags & FLAG_ZSTD
    assert len(stored) < 1000


def test_random_and_small_blocks_are_stored_plain():
    codec = BlockCodec(3, 512)
    rnd = random.Random(3).randbytes(300_000)
    for data in (rnd, b"a" * 500):
        stored = codec.encode_bytes(data, KIND_RAW)
        assert not parse_header(stored).compressed
        assert len(stored) == len(data) + HEADER_SIZE


@settings(max_examples=200, deadline=None)
@given(garbage=st.binary(max_size=200))
def test_garbage_raises_decode_error_only(garbage):
    codec = BlockCodec()
    try:
        codec.decode(garbage)
    except DecodeError:
        pass


def test_tampered_zstd_frame_is_a_decode_error():
    codec = BlockCodec()
    stored = bytearray(codec.encode_bytes(b"xyz" * 5000, KIND_RAW))
    stored[HEADER_SIZE + 2] ^= 0xFF
    with pytest.raises(DecodeError):
        codec.decode(bytes(stored))
