"""Bytes in, the same bytes out: whole files, ranges, streams, batches."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hashmesh.errors import InvalidArgumentError, NotFoundError
from hashmesh.ids import ContentId

from .conftest import SMALL

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
BOUNDARIES = sorted(
    {0, 1, 2}
    | {v + d for v in (SMALL.chunk_min, SMALL.chunk_avg, SMALL.chunk_max) for d in (-1, 0, 1)}
    | {3 * SMALL.chunk_max + 7, 50_000}
)


def _data(n: int, seed: int) -> bytes:
    rnd = random.Random(seed)
    if seed % 3 == 0:  # compressible
        return (b"lorem ipsum %d " % seed * (n // 10 + 1))[:n]
    return rnd.randbytes(n)


@SETTINGS
@given(n=st.one_of(st.sampled_from(BOUNDARIES), st.integers(0, 60_000)), seed=st.integers(0, 99))
def test_put_bytes_read_round_trip(env, n, seed):
    data = _data(n, seed)
    info = env.run(env.store.put_bytes(data, name="x.bin"))
    assert info.size == n
    # a file of one chunk is its raw chunk id; anything else (or empty) has a manifest
    assert ContentId.parse(info.id).is_manifest == (info.blocks != 1)
    assert env.run(env.store.read(info.id)) == data


@SETTINGS
@given(
    n=st.integers(0, 30_000),
    offset=st.integers(0, 32_000),
    length=st.one_of(st.none(), st.integers(0, 32_000)),
)
def test_ranges(env, n, offset, length):
    data = _data(n, n)
    info = env.run(env.store.put_bytes(data))
    end = None if length is None else offset + length
    assert env.run(env.store.read(info.id, offset, length)) == data[offset:end]

    async def collect() -> bytes:
        return b"".join([c async for c in env.store.iter_read(info.id, offset, length)])

    assert env.run(collect()) == data[offset:end]


def test_put_file_and_stream(env, tmp_path):
    data = _data(100_000, 1)
    p = tmp_path / "photo.bin"
    p.write_bytes(data)
    seen = []
    info = env.run(env.store.put_file(p, tags=["t1"], progress=lambda d, t: seen.append((d, t))))
    assert info.name == "photo.bin" and info.blocks > 10
    assert env.run(env.store.read(info.id)) == data
    env.run(asyncio_sleep0())
    assert seen and seen[-1] == (100_000, 100_000)
    again = env.run(env.store.put_bytes(data))
    assert again.id == info.id  # same content, same id


async def asyncio_sleep0() -> None:
    import asyncio

    await asyncio.sleep(0.01)


def test_large_blocks_as_files(big_env, tmp_path):
    data = _data(2_000_000, 2)
    p = tmp_path / "big.bin"
    p.write_bytes(data)
    info = big_env.run(big_env.store.put_file(p))
    files = [f for f in (big_env.path / "blocks").glob("*") if f.is_file()]
    assert len(files) >= 5
    assert big_env.run(big_env.store.read(info.id)) == data
    assert big_env.run(big_env.store.read(info.id, 999_999, 300_001)) == data[999_999:1_300_000]
    assert big_env.run(big_env.store.verify()).ok


def test_put_many_and_get_many(env):
    items = [(f"obj{i}.txt", _data(i * 37 % 5000, i)) for i in range(200)]
    infos = env.run(env.store.put_many(items))
    assert [i.name for i in infos] == [n for n, _ in items]
    got = env.run(env.store.get_many([i.id for i in infos]))
    assert got == [d for _, d in items]
    big = env.run(env.store.put_bytes(_data(40_000, 5)))
    assert env.run(env.store.get_many([big.id, infos[3].id])) == [_data(40_000, 5), items[3][1]]


def test_put_many_with_duplicates_in_one_batch(env):
    items = [("a", b""), ("b", b"same"), ("c", b""), ("d", b"same"), ("e", b"other")]
    infos = env.run(env.store.put_many(items, tags=["dup"]))
    assert infos[0].id == infos[2].id and infos[1].id == infos[3].id
    assert [h.name for h in env.run(env.store.search("c"))] == ["c"]  # latest name wins
    assert env.run(env.store.search("a")) == []
    assert env.run(env.store.verify()).ok
    assert env.run(env.store.get_many([i.id for i in infos])) == [d for _, d in items]


def test_hierarchical_manifest(tmp_path):
    import asyncio

    from hashmesh.config import StoreConfig
    from hashmesh.store.api import Store

    cfg = StoreConfig(chunk_min=64, chunk_avg=64, chunk_max=64, compress_min_size=1 << 20)

    async def main() -> None:
        s = await Store.init(tmp_path / "r", cfg)
        try:
            data = _data(64 * 4096 * 2 + 100, 4)  # > 2 * 4096 chunks: a two-level tree
            info = await s.put_bytes(data)
            children = await s.manifest_children(info.id)
            assert 2 <= len(children) <= 4096 and all(c.is_manifest for c in children)
            assert await s.read(info.id) == data
            assert await s.read(info.id, 300_000, 70_000) == data[300_000:370_000]
            assert (await s.verify(info.id)).ok
        finally:
            await s.close()

    asyncio.run(main())


def test_bad_arguments(env):
    info = env.run(env.store.put_bytes(b"abc"))
    with pytest.raises(InvalidArgumentError):
        env.run(env.store.read(info.id, -1))
    with pytest.raises(InvalidArgumentError):
        env.run(env.store.put_bytes(b"x", tags=["has space"]))
    with pytest.raises(InvalidArgumentError):
        env.run(env.store.put_bytes(b"x", ttl=0))
    missing = ContentId.of(b"nope", ContentId.MANIFEST)
    with pytest.raises(NotFoundError):
        env.run(env.store.read(missing))
    with pytest.raises(NotFoundError):
        env.run(env.store.stat(missing))


def test_raw_block_api(env):
    cid = env.run(env.store.put_block(b"raw bytes", ContentId.RAW))
    assert cid == ContentId.of(b"raw bytes")
    assert env.run(env.store.has_block(cid))
    assert env.run(env.store.get_block(str(cid))) == b"raw bytes"
    info = env.run(env.store.put_bytes(_data(10_000, 7)))
    kids = env.run(env.store.manifest_children(info.id))
    assert kids and all(env.run(env.store.has_block(k)) for k in kids)
    ids = env.run(env.store.list_block_ids())
    assert cid in ids and ContentId.parse(info.id) in ids
    env.run(env.store.gc())
    assert env.run(env.store.has_block(cid))  # held
    env.run(env.store.release_block(cid))
    env.run(env.store.gc())
    assert not env.run(env.store.has_block(cid))
