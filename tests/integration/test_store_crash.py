"""Crash safety: SIGKILL a process in the middle of puts, then check every acknowledged put.

The child puts (small batches, medium byte strings, files, removals + gc) in a
loop and appends a journal line only *after* each call returned. The parent
kills it at random moments (seeded), reopens the store and checks that every
journaled file reads back byte for byte and that verify() is clean.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hashmesh.config import StoreConfig
from hashmesh.store.api import Store

ROUNDS = 6
CONFIG = dict(chunk_min=16 * 1024, chunk_avg=64 * 1024, chunk_max=256 * 1024)

CHILD = r"""
import asyncio, os, random, sys
from hashmesh.config import StoreConfig
from hashmesh.store.api import Store

repo, journal_path, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
cfg = StoreConfig(**eval(sys.argv[4]))

def payload(s, n):
    r = random.Random(s)
    if s % 2:
        return r.randbytes(n)
    return b"".join(b"row %d value %d\n" % (i, r.randrange(1000)) for i in range(n // 12 + 1))[:n]

async def main():
    store = await Store.open(repo, cfg, create=True)
    journal = open(journal_path, "a", buffering=1)
    rnd = random.Random(seed)
    print("ready", flush=True)
    n = 0
    while True:
        n += 1
        op = rnd.random()
        base = seed * 1_000_000 + n * 100
        if op < 0.4:
            sizes = [rnd.choice([0, 1, 100, 4096, 9000]) for _ in range(8)]
            infos = await store.put_many([(f"m{base + i}", payload(base + i, sz)) for i, sz in enumerate(sizes)])
            for i, (info, sz) in enumerate(zip(infos, sizes)):
                journal.write(f"put {info.id} {base + i} {sz}\n")
        elif op < 0.75:
            sz = rnd.randrange(50_000, 900_000)
            info = await store.put_bytes(payload(base, sz), name=f"b{base}")
            journal.write(f"put {info.id} {base} {sz}\n")
        elif op < 0.9:
            sz = rnd.randrange(100_000, 1_500_000)
            p = os.path.join(os.path.dirname(journal_path), f"in{seed}.bin")
            with open(p, "wb") as f:
                f.write(payload(base, sz))
            info = await store.put_file(p)
            journal.write(f"put {info.id} {base} {sz}\n")
        else:
            lines = open(journal_path).read().split("\n")
            puts = [l.split()[1] for l in lines if l.startswith("put ")]
            if puts:
                victim = rnd.choice(puts)
                journal.write(f"rm {victim}\n")
                try:
                    await store.remove(victim)
                except Exception:
                    pass
            await store.gc()

asyncio.run(main())
"""


def payload(s: int, n: int) -> bytes:
    r = random.Random(s)
    if s % 2:
        return r.randbytes(n)
    return b"".join(b"row %d value %d\n" % (i, r.randrange(1000)) for i in range(n // 12 + 1))[:n]


def _journal(path: Path) -> dict[str, tuple[int, int]]:
    expected: dict[str, tuple[int, int]] = {}
    removed: set[str] = set()
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == "put":
            expected[parts[1]] = (int(parts[2]), int(parts[3]))
        elif len(parts) == 2 and parts[0] == "rm":
            removed.add(parts[1])
    # a file put again after an rm intent is ambiguous only if the rm came last; skip all
    return {k: v for k, v in expected.items() if k not in removed}


async def _check(repo: Path, journal: Path) -> int:
    expected = _journal(journal)
    store = await Store.open(repo, StoreConfig(**CONFIG))
    try:
        for cid, (seed, size) in expected.items():
            assert await store.read(cid) == payload(seed, size), f"{cid} reads back wrong"
        report = await store.verify()
        assert report.ok, report
        # the store stays usable after a crash
        info = await store.put_bytes(b"after crash " * 1000)
        assert await store.read(info.id) == b"after crash " * 1000
    finally:
        await store.close()
    return len(expected)


@pytest.mark.slow
def test_sigkill_during_puts_loses_nothing_acknowledged(tmp_path: Path) -> None:
    rnd = random.Random(20240607)
    repo = tmp_path / "repo"
    journal = tmp_path / "journal.txt"
    journal.touch()
    deadline = time.monotonic() + 120
    checked = 0
    for rnd_no in range(ROUNDS):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(repo), str(journal), str(rnd_no + 1), repr(CONFIG)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            line = child.stdout.readline() if child.stdout else b""
            assert line.strip() == b"ready", child.stderr.read() if child.stderr else b""
            time.sleep(rnd.uniform(0.2, 1.5))
            assert child.poll() is None, child.stderr.read() if child.stderr else b""
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.wait(30)
        checked = asyncio.run(_check(repo, journal))
        assert time.monotonic() < deadline, "crash test exceeded its time budget"
    assert checked > 20  # the child really did work between kills

    async def final() -> None:
        store = await Store.open(repo, StoreConfig(**CONFIG))
        try:
            await store.gc()  # removes orphans left by the kills
            assert (await store.verify()).ok
            leftovers = [p for p in (repo / "blocks").rglob("*.tmp")]
            assert leftovers == []
        finally:
            await store.close()

    asyncio.run(final())
    assert asyncio.run(_check(repo, journal)) == checked
