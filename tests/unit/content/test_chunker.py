"""Content-defined chunking: cut points, bounds and stream/buffer agreement."""

import io
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from hashmesh.content.chunker import Chunker


def _data(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 40_000),
    seed=st.integers(0, 1000),
    sizes=st.sampled_from([(64, 256, 1024), (256, 1024, 4096), (64, 64, 64), (100, 300, 700)]),
)
def test_split_covers_input_within_bounds_and_matches_stream(n, seed, sizes):
    c = Chunker(*sizes)
    data = _data(n, seed)
    pieces = [bytes(p) for p in c.split(data)]
    assert b"".join(pieces) == data
    assert all(0 < len(p) <= sizes[2] for p in pieces)
    assert all(len(p) >= min(sizes[0], 64) for p in pieces[:-1]) or sizes[2] < 1024
    assert list(c.stream(io.BytesIO(data))) == pieces


def test_empty_gives_no_chunks():
    assert list(Chunker(64, 256, 1024).split(b"")) == []


def test_cut_points_are_content_defined():
    c = Chunker(256, 1024, 4096)
    base = _data(200_000)
    shifted = b"inserted prefix" + base
    a = {bytes(p) for p in c.split(base)}
    b = {bytes(p) for p in c.split(shifted)}
    assert len(a & b) >= len(a) - 3  # only chunks near the edit change


def test_max_size_is_enforced_below_fastcdc_window():
    c = Chunker(64, 64, 100)
    assert all(len(p) <= 100 for p in c.split(_data(5000)))
