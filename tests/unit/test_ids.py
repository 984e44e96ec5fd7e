import pytest
from hypothesis import given
from hypothesis import strategies as st

from hashmesh.errors import InvalidIdError
from hashmesh.ids import CODEC_MANIFEST, CODEC_RAW, ContentId, NodeId, bucket_index, distance


@given(st.binary(), st.sampled_from([CODEC_RAW, CODEC_MANIFEST]))
def test_content_id_text_round_trip(data: bytes, codec: int) -> None:
    cid = ContentId.of(data, codec)
    text = str(cid)
    assert text.startswith("bafkr4i" if codec == CODEC_RAW else "bahqycda6e")
    assert ContentId.parse(text) == cid
    assert ContentId.from_bytes(cid.to_bytes()) == cid


def test_known_vector() -> None:
    # BLAKE3("") = af1349b9...; raw CIDv1 of the empty block
    cid = ContentId.of(b"")
    assert cid.digest.hex().startswith("af1349b9f5f9a1a6")
    assert str(cid) == "bafkr4ifpcne3t5pzugtkaqcn5i3nzskjtpfslsnnyejlpte2spfoihzsmi"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "x",
        "bafy",
        "Qmfoo",
        "b!!!!",
        "b" + "a" * 200,
        "bafkr4ifpcne3t5pzugtkaqcn5i3nzskjtpfslsnnyejlpte2spfoihzsm",
    ],
)
def test_malformed_content_ids(bad: str) -> None:
    with pytest.raises(InvalidIdError):
        ContentId.parse(bad)


@given(st.text(max_size=80))
def test_parse_never_raises_anything_else(text: str) -> None:
    try:
        ContentId.parse(text)
    except InvalidIdError:
        pass


def test_only_the_canonical_form_parses() -> None:
    text = str(ContentId.of(b"x"))
    for bad in (
        text + "a",
        text[:-1],
        text.upper(),
        text + "=",
        text[:10] + "_" + text[11:],
        text[:10] + " " + text[11:],
        "b" + "\u00e9" * 58,
    ):
        with pytest.raises(InvalidIdError):
            ContentId.parse(bad)


def test_node_id_and_distance() -> None:
    a = NodeId(bytes(32))
    b = NodeId(bytes(31) + b"\x01")
    assert a.distance(b) == 1
    assert bucket_index(a.value, b.value) == 0
    assert bucket_index(a.value, a.value) == -1
    assert distance(b"\x80" + bytes(31), bytes(32)).bit_length() == 256
    assert NodeId.parse(str(b)) == b
    with pytest.raises(InvalidIdError):
        NodeId.parse("zz")
