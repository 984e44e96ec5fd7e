"""Framing: round trips, garbage, limits, per-type rules, error codes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hashmesh import errors as E
from hashmesh.net.framing import (
    HEADER_SIZE,
    MAX_ERROR_MESSAGE,
    Code,
    FrameDecoder,
    FrameType,
    decode_error,
    encode_error,
    encode_frame,
    encode_header,
    error_from_payload,
    error_payload,
    join_kind,
    split_kind,
)

MAX = 4096


@st.composite
def frames(draw: st.DrawFn) -> tuple[int, int, bytes]:
    ftype = draw(st.sampled_from(list(FrameType)))
    rid = draw(st.integers(1, (1 << 64) - 1))
    if ftype == FrameType.MESSAGE:
        rid = 0
    body = draw(st.binary(max_size=300))
    if ftype in (FrameType.REQUEST, FrameType.MESSAGE):
        payload = join_kind(draw(st.integers(0, 0xFFFF)), body)
    elif ftype in (FrameType.CANCEL, FrameType.STREAM_END):
        payload = b""
    elif ftype == FrameType.ERROR:
        payload = encode_error(draw(st.integers(0, 17)), draw(st.text(max_size=80)))
    elif ftype == FrameType.CREDIT:
        payload = draw(st.integers(0, 2**32 - 1)).to_bytes(4, "big")
    else:
        payload = body
    return int(ftype), rid, payload


@settings(max_examples=200, deadline=None)
@given(st.lists(frames(), max_size=20), st.data())
def test_round_trip_in_arbitrary_pieces(
    fs: list[tuple[int, int, bytes]], data: st.DataObject
) -> None:
    wire = b"".join(encode_frame(*f) for f in fs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    decoder = FrameDecoder(MAX)
    out: list[tuple[int, int, bytes]] = []
    prev = 0
    for cut in [*cuts, len(wire)]:
        out += decoder.feed(wire[prev:cut])
        prev = cut
    assert out == fs
    assert decoder.buffered == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_gives_decode_error_or_waits(garbage: bytes) -> None:
    decoder = FrameDecoder(MAX)
    try:
        frames_out = decoder.feed(garbage)
    except E.DecodeError:
        with pytest.raises(E.DecodeError):
            decoder.feed(b"more")  # poisoned
        return
    for ftype, _, _ in frames_out:
        assert ftype in set(FrameType)


def test_oversized_rejected_from_header_alone() -> None:
    decoder = FrameDecoder(MAX)
    with pytest.raises(E.DecodeError, match="exceeds"):
        decoder.feed(encode_header(FrameType.RESPONSE, 1, MAX + 1))
    ok = FrameDecoder(MAX)
    assert ok.feed(encode_frame(FrameType.RESPONSE, 1, b"x" * MAX)) == [
        (FrameType.RESPONSE, 1, b"x" * MAX)
    ]


def test_limit_can_change_between_frames() -> None:
    decoder = FrameDecoder(16)
    decoder.push(
        encode_frame(FrameType.HELLO, 0, b"h" * 10)
        + encode_frame(FrameType.RESPONSE, 1, b"r" * 100)
    )
    assert decoder.pop() == (FrameType.HELLO, 0, b"h" * 10)
    decoder.max_frame = 1000
    assert decoder.pop() == (FrameType.RESPONSE, 1, b"r" * 100)
    assert decoder.pop() is None


@pytest.mark.parametrize(
    "wire",
    [
        encode_frame(0x7F, 1, b""),  # unknown type
        encode_frame(FrameType.REQUEST, 0, b"\x00\x01"),  # request without id
        encode_frame(FrameType.REQUEST, 5, b"\x00"),  # request without kind
        encode_frame(FrameType.MESSAGE, 3, b"\x00\x01"),  # one-way with an id
        encode_frame(FrameType.CANCEL, 3, b"x"),  # cancel with payload
        encode_frame(FrameType.ERROR, 3, b"\x00"),  # error without code
        encode_frame(FrameType.ERROR, 3, b"\x00\x01" + b"m" * (MAX_ERROR_MESSAGE + 1)),
        encode_frame(FrameType.CREDIT, 3, b"\x00\x01"),  # credit of bad size
        encode_frame(FrameType.RESPONSE, 0, b"x"),  # response without id
    ],
)
def test_type_rules(wire: bytes) -> None:
    with pytest.raises(E.DecodeError):
        FrameDecoder(MAX).feed(wire)


def test_header_layout() -> None:
    assert HEADER_SIZE == 13
    wire = encode_frame(FrameType.REQUEST, 0x0102030405060708, join_kind(0x0A0B, b"zz"))
    assert wire.hex() == "00000004" + "10" + "0102030405060708" + "0a0b" + "7a7a"
    assert split_kind(join_kind(7, b"abc")) == (7, b"abc")
    decoder = FrameDecoder(MAX)
    decoder.push(wire + encode_frame(FrameType.RESPONSE, 9, b"r"))
    assert decoder.pop_split() == (FrameType.REQUEST, 0x0102030405060708, 0x0A0B, b"zz")
    assert decoder.pop_split() == (FrameType.RESPONSE, 9, -1, b"r")
    assert decoder.pop_split() is None
    with pytest.raises(E.InvalidArgumentError):
        join_kind(0x10000, b"")


@pytest.mark.parametrize(
    "exc",
    [
        E.NotFoundError("gone"),
        E.InvalidIdError("bad id"),
        E.CapacityError("full"),
        E.IntegrityError("bad"),
        E.PeerBusyError("busy"),
        E.RecordError("stale"),
        E.StorageError("disk"),
        E.QuorumError("q"),
        E.InvalidArgumentError("arg"),
    ],
)
def test_error_round_trip_keeps_class(exc: E.HashmeshError) -> None:
    err = error_from_payload(error_payload(exc), "peer1")
    assert type(err) is type(exc)
    assert str(exc) in str(err) and "peer1" in str(err)


def test_foreign_exception_is_internal_and_lines_are_flattened() -> None:
    assert decode_error(error_payload(ValueError("secret detail"))) == (
        Code.INTERNAL,
        "internal error",
    )
    code, msg = decode_error(encode_error(Code.NOT_FOUND, "line one\nline two\t" + "é" * 500))
    assert code == Code.NOT_FOUND and "\n" not in msg and msg.startswith("line one line two")
    assert len(encode_error(Code.NOT_FOUND, "é" * 500)) <= 2 + MAX_ERROR_MESSAGE
    assert isinstance(error_from_payload(encode_error(999, "?"), "p"), E.NetworkError)
