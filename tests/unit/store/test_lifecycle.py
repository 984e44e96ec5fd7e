"""Dedup, pins, expiry, gc, capacity and stats."""

from __future__ import annotations

import os
import random

import pytest

from hashmesh.config import StoreConfig
from hashmesh.errors import CapacityError, NotFoundError


def _rand(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _disk_usage(path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path / "blocks"):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def test_dedup_across_files(env):
    shared = _rand(20_000, 1)
    a = env.run(env.store.put_bytes(shared + _rand(5000, 2), name="a"))
    before = env.run(env.store.stats())
    b = env.run(env.store.put_bytes(_rand(5000, 3) + shared, name="b"))
    after = env.run(env.store.stats())
    assert a.id != b.id
    # most of b's chunks were already stored: far fewer new bytes than b's size
    assert after.unique_bytes - before.unique_bytes < b.size // 2
    assert after.dedup_saved > 10_000


def test_gc_keeps_shared_and_pinned_blocks(env):
    shared = _rand(30_000, 4)
    a = env.run(env.store.put_bytes(shared + b"A" * 3000, name="a"))
    b = env.run(env.store.put_bytes(shared + b"B" * 3000, name="b"))
    p = env.run(env.store.put_bytes(_rand(8000, 5), name="p", pin=True))
    env.run(env.store.remove(a.id))
    report = env.run(env.store.gc())
    assert report.removed_blocks >= 1
    assert env.run(env.store.read(b.id)) == shared + b"B" * 3000
    assert env.run(env.store.read(p.id)) == _rand(8000, 5)
    assert env.run(env.store.verify()).ok
    with pytest.raises(NotFoundError):
        env.run(env.store.read(a.id))
    env.run(env.store.remove(b.id))
    env.run(env.store.gc())
    assert env.run(env.store.stats()).files == 1
    assert env.run(env.store.read(p.id)) == _rand(8000, 5)


def test_expiry_and_pins(env):
    short = env.run(env.store.put_bytes(b"short lived" * 100, name="s", ttl=60))
    kept = env.run(env.store.put_bytes(b"pinned" * 100, name="k", ttl=60, pin=True))
    forever = env.run(env.store.put_bytes(b"forever" * 100, name="f"))
    assert short.expires == env.clock[0] + 60
    assert env.run(env.store.gc()).expired_files == ()
    env.clock[0] += 61
    assert {i.id for i in env.run(env.store.ls())} == {kept.id, forever.id}
    report = env.run(env.store.gc())
    assert report.expired_files == (short.id,)
    with pytest.raises(NotFoundError):
        env.run(env.store.read(short.id))
    assert env.run(env.store.read(kept.id)) == b"pinned" * 100
    env.run(env.store.unpin(kept.id))
    assert env.run(env.store.gc()).expired_files == (kept.id,)
    assert env.run(env.store.read(forever.id)) == b"forever" * 100


def test_capacity_error_writes_nothing(env, tmp_path):
    store = env.reopen(StoreConfig(chunk_min=256, chunk_avg=1024, chunk_max=4096, capacity=50_000))
    env.run(store.put_bytes(_rand(20_000, 1)))
    before = env.run(store.stats())
    usage = _disk_usage(env.path)
    with pytest.raises(CapacityError) as exc:
        env.run(store.put_bytes(_rand(40_000, 2)))
    assert str(exc.value).startswith("storage capacity exceeded: need ")
    assert "KiB" in str(exc.value)
    big = tmp_path / "big.bin"
    big.write_bytes(_rand(60_000, 3))
    with pytest.raises(CapacityError):
        env.run(store.put_file(big))
    with pytest.raises(CapacityError):
        env.run(store.put_many([(str(i), _rand(4096, i)) for i in range(10)]))
    after = env.run(store.stats())
    assert (after.blocks, after.stored_bytes, after.files) == (
        before.blocks,
        before.stored_bytes,
        before.files,
    )
    assert _disk_usage(env.path) == usage
    assert after.free == 50_000 - after.stored_bytes


def test_capacity_rechecked_while_writing(big_env, tmp_path):
    """A file that grows after the up-front check still cannot overrun the limit."""
    env = big_env
    cfg = StoreConfig(
        chunk_min=80 * 1024, chunk_avg=128 * 1024, chunk_max=256 * 1024, capacity=1_500_000
    )
    store = env.reopen(cfg)
    growing = tmp_path / "fifo"
    os.mkfifo(growing)
    import threading

    def feed() -> None:
        with open(growing, "wb") as f:
            try:
                f.write(_rand(3_000_000, 9))
            except BrokenPipeError:
                pass

    t = threading.Thread(target=feed)
    t.start()
    with pytest.raises(CapacityError):
        env.run(store.put_file(growing))
    t.join(10)
    assert env.run(store.stats()).blocks == 0
    assert _disk_usage(env.path) == 0


def test_stats_report_compression(env):
    text = b"".join(b"compress me please, line %d\n" % i for i in range(3400))
    env.run(env.store.put_bytes(text[:95_000], name="c"))
    s = env.run(env.store.stats())
    assert s.files == 1 and s.logical_bytes == 95_000
    assert s.compression_saved > 50_000
    assert s.stored_bytes < s.unique_bytes
