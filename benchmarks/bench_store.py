"""Local store throughput against this machine's raw limit (a runnable script, not a test).

Measures, each as the median of ``--reps`` runs on a fresh repository:

* put / get MB/s of one large file (random, and compressible text-like data);
* the raw limit for the same bytes: blake3 + one fsync'd file per 1 MiB (+ dir
  fsync) for puts, cold read (posix_fadvise DONTNEED) + blake3 for gets;
* small objects: 4 KiB ``put_many`` and ``get_many`` ops/s;
* search p50/p99 latency with ``--files`` indexed files.

Usage: ``python benchmarks/bench_store.py [--size-mib 256] [--files 100000] [--json]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import blake3

from hashmesh.store.api import Store

MiB = 1024 * 1024
WORDS = [
    "alpha",
    "beach",
    "cloud",
    "delta",
    "river",
    "mountain",
    "forest",
    "report",
    "invoice",
    "photo",
    "holiday",
    "summer",
    "winter",
    "budget",
    "music",
    "video",
    "draft",
    "final",
    "notes",
    "paper",
    "design",
    "sketch",
    "city",
    "night",
    "ocean",
    "garden",
    "family",
    "project",
    "backup",
    "server",
    "network",
    "kernel",
    "python",
    "rust",
    "golang",
    "spring",
    "autumn",
    "travel",
    "food",
    "recipe",
]


def random_data(n: int, seed: int) -> bytes:
    rnd = random.Random(seed)
    return b"".join(rnd.randbytes(min(16 * MiB, n - i)) for i in range(0, n, 16 * MiB))


def text_data(n: int, seed: int) -> bytes:
    """Log-like lines, compressible about 4-6x."""
    rnd = random.Random(seed)
    out = bytearray()
    i = 0
    while len(out) < n:
        chunk = "".join(
            f'{{"ts": {1700000000 + i + k}, "level": "{rnd.choice(("INFO", "WARN", "DEBUG"))}", '
            f'"user": {rnd.randrange(10**6)}, "msg": "{rnd.choice(WORDS)} {rnd.choice(WORDS)} '
            f'{rnd.choice(WORDS)}", "latency_ms": {rnd.random() * 100:.3f}}}\n'
            for k in range(1000)
        )
        out += chunk.encode()
        i += 1000
    return bytes(out[:n])


def drop_cache(paths: list[Path]) -> None:
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def raw_put(data: bytes, d: Path) -> float:
    d.mkdir()
    view = memoryview(data)
    t0 = time.perf_counter()
    for i in range(0, len(data), MiB):
        piece = view[i : i + MiB]
        name = blake3.blake3(piece).hexdigest()
        fd = os.open(d / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, piece)
        os.fsync(fd)
        os.close(fd)
    dfd = os.open(d, os.O_RDONLY)
    os.fsync(dfd)
    os.close(dfd)
    return time.perf_counter() - t0


def raw_get(d: Path) -> float:
    files = sorted(d.iterdir())
    drop_cache(files)
    t0 = time.perf_counter()
    for p in files:
        with open(p, "rb", buffering=0) as f:
            blake3.blake3(f.read()).digest()
    return time.perf_counter() - t0


def block_files(repo: Path) -> list[Path]:
    return [p for p in (repo / "blocks").rglob("*") if p.is_file()]


async def store_put_get(data: bytes, work: Path) -> tuple[float, float]:
    src = work / "input.bin"
    src.write_bytes(data)
    store = await Store.init(work / "repo")
    try:
        t0 = time.perf_counter()
        info = await store.put_file(src)
        put_s = time.perf_counter() - t0
        drop_cache(block_files(work / "repo"))
        t0 = time.perf_counter()
        n = 0
        async for chunk in store.iter_read(info.id):
            n += len(chunk)
        get_s = time.perf_counter() - t0
        assert n == len(data)
    finally:
        await store.close()
    return put_s, get_s


async def small_objects(work: Path, count: int, batch: int) -> tuple[float, float]:
    store = await Store.init(work / "small")
    rnd = random.Random(7)
    items = [(f"obj-{i}.bin", rnd.randbytes(4096)) for i in range(count)]
    try:
        t0 = time.perf_counter()
        ids: list[str] = []
        for i in range(0, count, batch):
            ids += [x.id for x in await store.put_many(items[i : i + batch])]
        put_s = time.perf_counter() - t0
        order = ids[:]
        random.Random(8).shuffle(order)
        t0 = time.perf_counter()
        for i in range(0, count, batch):
            await store.get_many(order[i : i + batch])
        get_s = time.perf_counter() - t0
    finally:
        await store.close()
    return count / put_s, count / get_s


async def search_latency(work: Path, files: int) -> tuple[float, float]:
    store = await Store.init(work / "search")
    rnd = random.Random(9)
    exts = [".jpg", ".png", ".txt", ".pdf", ".json", ".mp4", ".csv", ".bin"]
    try:
        for i in range(0, files, 5000):
            items = []
            for k in range(i, min(files, i + 5000)):
                name = f"{rnd.choice(WORDS)}-{rnd.choice(WORDS)}-{k}{rnd.choice(exts)}"
                items.append((name, b"%d " % k + rnd.randbytes(rnd.randrange(16, 200))))
            await store.put_many(
                items, tags=[rnd.choice(WORDS)], description=" ".join(rnd.sample(WORDS, 4))
            )
        queries = []
        for _ in range(300):
            kind = rnd.randrange(5)
            if kind == 0:
                queries.append({"query": rnd.choice(WORDS)})
            elif kind == 1:
                queries.append({"query": f"{rnd.choice(WORDS)} {rnd.choice(WORDS)}"})
            elif kind == 2:
                queries.append({"query": rnd.choice(WORDS), "content_type": "image/"})
            elif kind == 3:
                queries.append({"query": rnd.choice(WORDS)[:3], "sort": "size", "min_size": 100})
            else:
                queries.append({"tag": rnd.choice(WORDS), "sort": "name"})
        lat = []
        for q in queries:
            t0 = time.perf_counter()
            await store.search(limit=50, **q)
            lat.append((time.perf_counter() - t0) * 1000)
        lat.sort()
        return statistics.median(lat), lat[int(len(lat) * 0.99) - 1]
    finally:
        await store.close()


def fresh(base: Path) -> Path:
    d = Path(tempfile.mkdtemp(dir=base))
    return d


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--small", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dir", default=None, help="work directory (default: a temp dir)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    base = Path(args.dir or tempfile.mkdtemp(prefix="bench-store-"))
    base.mkdir(parents=True, exist_ok=True)
    size = args.size_mib * MiB
    results: dict[str, float] = {}
    try:
        for label, make in (("random", random_data), ("text", text_data)):
            data = make(size, 1)
            rp, rg, sp, sg = [], [], [], []
            for _ in range(args.reps):
                w = fresh(base)
                rp.append(size / raw_put(data, w / "raw") / 1e6)
                rg.append(size / raw_get(w / "raw") / 1e6)
                shutil.rmtree(w / "raw")
                put_s, get_s = await store_put_get(data, w)
                sp.append(size / put_s / 1e6)
                sg.append(size / get_s / 1e6)
                shutil.rmtree(w)
            results[f"{label}_put_MBps"] = statistics.median(sp)
            results[f"{label}_raw_put_MBps"] = statistics.median(rp)
            results[f"{label}_get_MBps"] = statistics.median(sg)
            results[f"{label}_raw_get_MBps"] = statistics.median(rg)
            del data
        pm, gm = [], []
        for _ in range(args.reps):
            w = fresh(base)
            p, g = await small_objects(w, args.small, args.batch)
            pm.append(p)
            gm.append(g)
            shutil.rmtree(w)
        results["small_put_many_ops"] = statistics.median(pm)
        results["small_get_many_ops"] = statistics.median(gm)
        w = fresh(base)
        p50, p99 = await search_latency(w, args.files)
        shutil.rmtree(w)
        results["search_files"] = args.files
        results["search_p50_ms"] = p50
        results["search_p99_ms"] = p99
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(
        f"hashmesh store benchmark ({args.size_mib} MiB files, median of {args.reps}; MB = 1e6 B)"
    )
    print(f"{'figure':<28}{'ours':>12}{'raw limit':>12}{'ratio':>8}")
    for label in ("random", "text"):
        for op in ("put", "get"):
            ours = results[f"{label}_{op}_MBps"]
            raw = results[f"{label}_raw_{op}_MBps"]
            print(f"{label + ' ' + op + ' MB/s':<28}{ours:>12.0f}{raw:>12.0f}{ours / raw:>8.0%}")
    print(f"{'4 KiB put_many ops/s':<28}{results['small_put_many_ops']:>12.0f}")
    print(f"{'4 KiB get_many ops/s':<28}{results['small_get_many_ops']:>12.0f}")
    print(f"{'search p50 ms':<28}{results['search_p50_ms']:>12.2f}   ({args.files} files)")
    print(f"{'search p99 ms':<28}{results['search_p99_ms']:>12.2f}")


if __name__ == "__main__":
    asyncio.run(main())
