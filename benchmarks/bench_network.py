#!/usr/bin/env python3
"""Networked hashmesh against this machine's raw limit and two peers, in one run.

A runnable script, not a test. Every ratio it prints is taken between figures measured
in the same run (the machine is shared and noisy, so figures from other runs do not
compare). Parts, in order:

1. **raw disk limit**: 256 x 1 MiB files, fsync each + directory fsync, MB/s (a short
   burst, printed for orientation).
2. **5-node devnet** (processes on 127.0.0.1, replication 3):
   * a large random file (256 MiB; 64 with ``--quick``) put on node 0 and got from another
     node through the control socket ("put" / "get", as the CLI does), a fresh file per rep
     so the reader's cache is cold; median of ``--reps``. Before each put the raw limit
     for writing ``r`` copies is measured: ``r`` threads in parallel (as a put's copies
     are written) each write the file size as fsync'd 1 MiB files, with ``O_DIRECT``
     where the file system allows (the fastest way here, and how the block store
     writes). The raw write and the put each start after ``--pause`` idle seconds, and
     the put / (raw / r) ratio is taken per rep. The raw files are removed only at the
     end (deleting many files slows the creation of new ones for a minute or more on
     this VM's journal-less ext4). After each get, a buffered write of the file size
     to a new file (no fsync) is timed too, for scale: a VM's first touch of a
     page-cache page can be slow. Both raw figures over Tahoe's are printed beside the
     Tahoe ratios, for scale, not as ceilings. One more file through the real
     ``hashmesh put`` / ``hashmesh get`` commands gives the CLI wall time;
   * 4 KiB objects from an in-process client :class:`hashmesh.node.Node` joined to the
     devnet: ``put_bytes`` / ``read`` with ``--concurrency`` in flight (ops/s, p50/p99), and
     the batch APIs ``put_many`` / ``get_many``. Reads run on a second client node that
     joined after the puts. After each join the timing waits until the devnet has moved
     the newcomer's share of the stored blocks to it (that rebalancing time is reported
     too), then ``--pause`` idle seconds; the reads cover only the objects the reader
     does not hold.
3. **30-node devnet**: an in-process client node runs DHT lookups of random keys and
   stores of 100-byte ``ValueRecord``s, sequentially and 50 in flight, then gets them
   from a node that joined later; then the same three through the batched calls
   (``lookup_many``, ``put_many``, ``get_many``, ``--dht-batch`` keys per call, one call
   in flight, 20 x ``--dht-ops`` keys each, so each phase lasts about a second or more),
   counted per key; the batched gets run on a node that joined after the
   batched stores, after one untimed call that opens its connections.
4. **peers** (skip with ``--no-peers``): Tahoe-LAFS (``peers/tahoe.py``; each of its large
   puts also starts after ``--pause`` idle seconds) and the PyPI ``kademlia`` library
   (``peers/kademlia_peer.py``), each in its own venv.

Prints load averages, a table with target / met? columns, or one JSON object (``--json``).
Every process started is stopped at the end, also on Ctrl-C or SIGTERM.

Usage: ``python benchmarks/bench_network.py [--quick] [--reps 3] [--no-peers] [--json]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import faulthandler
import json
import mmap
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from network_report import R, build_rows, print_table
from peers import common

from hashmesh import dht
from hashmesh.client import Client
from hashmesh.config import Config, NodeConfig
from hashmesh.devnet import Devnet
from hashmesh.errors import HashmeshError
from hashmesh.ids import ContentId
from hashmesh.net.loop import run as run_loop
from hashmesh.node import Node

MiB = 1 << 20
SMALL = 4096
OP_TIMEOUT = 30.0
RANGED_READS = 8  # 4 KiB reads spread over the large file, before its get
PHASE_CAP_S = 60.0  # no timed phase takes new work after this long


def log(msg: str) -> None:
    print(f"[bench_network {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def hashmesh_command() -> list[str]:
    script = Path(sys.executable).parent / "hashmesh"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "hashmesh"]


# ------------------------------------------------------------------ raw limit
def raw_fsync_MBps(work: Path, files: int = 256, writers: int = 1) -> float:
    """``writers`` threads each write ``files // writers`` x 1 MiB, fsync each file, then
    fsync their directory; MB/s in all. Written the fastest way this machine offers:
    with ``O_DIRECT`` where the file system takes it (as the block store writes), which
    here costs a sixth of the kernel CPU of buffered writes. The files stay until
    :func:`drop_raw_files`: on this VM's file system (ext4 without a journal) every
    file created within a minute or more of many deletions pays a scan past the
    recently freed inodes, which would slow whatever is measured next."""
    d = Path(tempfile.mkdtemp(dir=work, prefix="raw-"))
    RAW_DIRS.append(d)
    each = files // writers

    def write(w: int) -> None:
        sub = d / str(w)
        sub.mkdir()
        block = mmap.mmap(-1, MiB)  # page-aligned, as O_DIRECT wants
        block.write(os.urandom(MiB))
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        direct = getattr(os, "O_DIRECT", 0)
        for i in range(each):
            block[:8] = (w * each + i).to_bytes(8, "little")
            try:
                fd = os.open(sub / f"{i:04d}", flags | direct, 0o644)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                direct = 0  # this file system does not take O_DIRECT
                fd = os.open(sub / f"{i:04d}", flags, 0o644)
            try:
                os.write(fd, block)
                os.fsync(fd)
            finally:
                os.close(fd)
        dfd = os.open(sub, os.O_RDONLY)
        os.fsync(dfd)
        os.close(dfd)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(write, range(writers)))
    elapsed = time.perf_counter() - t0
    return writers * each * MiB / elapsed / 1e6


RAW_DIRS: list[Path] = []


def drop_raw_files() -> None:
    while RAW_DIRS:
        shutil.rmtree(RAW_DIRS.pop(), ignore_errors=True)


def raw_write_MBps(work: Path, size: int) -> float:
    """Write ``size`` bytes to a new file in 8 MiB writes, no fsync (the page cache: what
    a get's output costs at the least here); MB/s. The file is removed afterwards."""
    path = work / "raw-write.bin"
    block = memoryview(os.urandom(8 * MiB))
    t0 = time.perf_counter()
    with open(path, "wb", buffering=0) as f:
        for at in range(0, size, len(block)):
            f.write(block[: size - at])
    elapsed = time.perf_counter() - t0
    path.unlink()
    return size / elapsed / 1e6


# ------------------------------------------------------------------ timing helpers
NODE_PIDS: list[int] = []  # the running devnet's node processes, for CPU accounting
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> float:
    """CPU seconds (user + system) used so far by this process and the devnet's nodes."""
    t = os.times()
    total = t.user + t.system
    for pid in NODE_PIDS:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
    return total


def idle_cores(seconds: float = 2.0) -> float:
    """CPU cores the idle devnet (and this process) use: health pings, repair scans."""
    c0, t0 = cpu_seconds(), time.perf_counter()
    time.sleep(seconds)
    return (cpu_seconds() - c0) / (time.perf_counter() - t0)


class Timed:
    """Ops/s, latencies and failures of one timed phase."""

    def __init__(self) -> None:
        self.lat_ms: list[float] = []
        self.failures = 0
        self.ops = 0
        self.elapsed = 0.0
        self.cpu_s = 0.0

    def rate(self) -> float:
        return self.ops / self.elapsed if self.elapsed else 0.0

    def p(self, pct: float) -> float:
        return common.percentile(self.lat_ms, pct) if self.lat_ms else float("nan")


async def run_concurrent(
    fn: Callable[[Any], Awaitable[Any]], args: Sequence[Any], inflight: int, weight: int = 1
) -> Timed:
    """Run ``fn(a)`` for each ``a`` with ``inflight`` at once (bounded by PHASE_CAP_S).

    ``weight`` is how many objects one call handles (a batch), for the ops count.
    """
    t = Timed()
    queue = list(reversed(args))
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    deadline = t0 + PHASE_CAP_S

    async def worker() -> None:
        while queue and time.perf_counter() < deadline:
            a = queue.pop()
            s = time.perf_counter()
            try:
                await asyncio.wait_for(fn(a), OP_TIMEOUT)
            except (HashmeshError, TimeoutError, OSError) as exc:
                t.failures += 1
                if t.failures <= 3:
                    log(f"operation failed: {type(exc).__name__}: {exc}")
                continue
            t.lat_ms.append((time.perf_counter() - s) * 1000)
            t.ops += weight

    await asyncio.gather(*(worker() for _ in range(inflight)))
    t.elapsed = time.perf_counter() - t0
    t.cpu_s = cpu_seconds() - cpu0
    return t


def add_timed(res: dict[str, Any], key: str, t: Timed) -> None:
    res[f"{key}_per_s"] = t.rate()
    res[f"{key}_p50_ms"] = t.p(50)
    res[f"{key}_p99_ms"] = t.p(99)
    res[f"{key}_failures"] = t.failures
    res[f"{key}_cpu_ms_per_op"] = t.cpu_s * 1000 / t.ops if t.ops else float("nan")


async def client_node(work: Path, seed: str, name: str) -> Node:
    cfg = Config(node=NodeConfig(listen="127.0.0.1:0", replication=R))
    node = Node(work / name, cfg)
    await node.start()
    known = await node.join([seed])
    log(f"client node {name} joined: {known} peers in its table")
    return node


async def stop_nodes(nodes: list[Node]) -> None:
    for n in nodes:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(n.stop(graceful=False), 20)


# ------------------------------------------------------------------ large files
def write_random(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        for _ in range(size // (8 * MiB)):
            f.write(os.urandom(8 * MiB))
        f.write(os.urandom(size % (8 * MiB)))


async def large_rep(net: Devnet, work: Path, size: int, rep: int, pause: float) -> dict[str, float]:
    """Raw limit for r copies, then put a fresh file on node 0 and get it from another
    node; figures of this rep. The raw write and the put each follow ``pause`` idle s."""
    src = work / f"large-{rep}.bin"
    dest = work / f"large-{rep}.out"
    write_random(src, size)
    await asyncio.sleep(pause)
    raw = raw_fsync_MBps(work, files=R * size // MiB, writers=R)
    log(
        f"large rep {rep}: raw fsync'd writes of {R} x {size // MiB} MiB, {R} writers: {raw:.0f} MB/s"
    )
    await asyncio.sleep(pause)
    writer, reader = net.nodes[0], net.nodes[1 + rep % (net.count - 1)]
    async with Client(writer.repo, timeout=3600) as c:
        t0 = time.perf_counter()
        res = await c.call("put", path=str(src), name=src.name)
        put_s = time.perf_counter() - t0
    # ranged reads on a node other than the getter, so the get starts just as cold
    async with Client(net.nodes[1 + (rep + 1) % (net.count - 1)].repo, timeout=3600) as c:
        start = (await c.call("status"))["blocks"]
        ranged: list[float] = []
        for i in range(RANGED_READS):  # 4 KiB each: only the chunks they touch are fetched
            t0 = time.perf_counter()
            at = (2 * i + 1) * size // (2 * RANGED_READS)
            part = await c.call("read", id=res["file"]["id"], offset=at, length=4096)
            ranged.append(time.perf_counter() - t0)
            if len(part) != 4096:
                raise HashmeshError(f"ranged read returned {len(part)} bytes, expected 4096")
        ranged_blocks = (await c.call("status"))["blocks"] - start
    async with Client(reader.repo, timeout=3600) as c:
        before = (await c.call("status"))["blocks"]
        t0 = time.perf_counter()
        await c.call("get", id=res["file"]["id"], dest=str(dest))
        get_s = time.perf_counter() - t0
        after = (await c.call("status"))["blocks"]
    if dest.stat().st_size != size:
        raise HashmeshError(f"get wrote {dest.stat().st_size} bytes, expected {size}")
    # measured after the get and before its output is removed, so neither is handed
    # the pages the other just freed
    raw_write = raw_write_MBps(work, size)
    src.unlink()
    dest.unlink()
    blocks = max(1, int(res.get("blocks", 1)))
    log(
        f"large rep {rep}: put {size / put_s / 1e6:.0f} MB/s, get {size / get_s / 1e6:.0f} MB/s, "
        f"{RANGED_READS} ranged 4 KiB reads: median {common.median(ranged) * 1000:.1f} ms, "
        f"{ranged_blocks} blocks fetched; raw page-cache write {raw_write:.0f} MB/s"
    )
    return {
        "raw_r_copies_MBps": raw,
        "put_raw_ratio": size / put_s / 1e6 / (raw / R),
        "put_MBps": size / put_s / 1e6,
        "get_MBps": size / get_s / 1e6,
        "raw_write_MBps": raw_write,
        "get_raw_ratio": size / get_s / 1e6 / raw_write,
        "get_network_share": (after - before) / blocks,
        "ranged_read_ms": common.median(ranged) * 1000,
        "ranged_read_blocks": ranged_blocks,
        "blocks": blocks,
    }


def cli_round(net: Devnet, work: Path, size: int) -> tuple[float, float]:
    """One fresh file through ``hashmesh put`` (node 0) and ``hashmesh get`` (last node)."""
    src, dest = work / "cli.bin", work / "cli.out"
    write_random(src, size)
    cmd = hashmesh_command()
    t0 = time.perf_counter()
    out = subprocess.run(
        [*cmd, "put", "--repo", str(net.nodes[0].repo), "-q", str(src)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=True,
    ).stdout
    put_s = time.perf_counter() - t0
    cid = out.split()[0]
    t0 = time.perf_counter()
    subprocess.run(
        [*cmd, "get", "--repo", str(net.nodes[-1].repo), "-q", "-o", str(dest), cid],
        capture_output=True,
        text=True,
        timeout=1800,
        check=True,
    )
    get_s = time.perf_counter() - t0
    if dest.stat().st_size != size:
        raise HashmeshError("CLI get wrote the wrong size")
    src.unlink()
    dest.unlink()
    return put_s, get_s


# ------------------------------------------------------------------ small objects
async def small_objects(
    net: Devnet, work: Path, count: int, inflight: int, batch: int, pause: float = 0.0
) -> dict[str, Any]:
    """4 KiB objects: puts from one client node, reads from another (see the module doc).

    Each timed part starts ``pause`` idle seconds after the rebalance before it, so it
    does not pay for the write-back of the large files and the blocks moved."""
    res: dict[str, Any] = {"small_count": count, "small_inflight": inflight, "batch": batch}
    rnd = random.Random(42)
    blobs = [rnd.randbytes(SMALL) for _ in range(2 * count)]
    nodes: list[Node] = []
    try:
        writer = await client_node(work, net.nodes[0].address, "client-w")
        nodes.append(writer)
        res["rebalance_after_join_s"], res["rebalance_after_join_blocks"] = await settle(net)
        log(
            f"rebalanced after a node joined: {res['rebalance_after_join_blocks']} blocks "
            f"moved, settled in {res['rebalance_after_join_s']:.1f} s"
        )
        await asyncio.sleep(pause)
        ids: list[str] = []

        async def put_one(data: bytes) -> None:
            ids.append((await writer.put_bytes(data))["file"]["id"])

        t = await run_concurrent(put_one, blobs[:count], inflight)
        add_timed(res, "small_put", t)
        log(f"small put_bytes: {t.rate():.0f}/s, p50 {t.p(50):.1f} ms, p99 {t.p(99):.1f} ms")

        batch_ids: list[str] = []
        has_batch = hasattr(writer, "put_many") and hasattr(writer, "get_many")
        if has_batch:
            chunks = [
                [(f"b{i + k}.bin", blobs[count + i + k]) for k in range(batch)]
                for i in range(0, count - batch + 1, batch)
            ]

            async def put_batch(items: list[tuple[str, bytes]]) -> None:
                batch_ids.extend(str(d["id"]) for d in await writer.put_many(items))

            t = await run_concurrent(put_batch, chunks, 1, weight=batch)
            add_timed(res, "small_put_many", t)
            log(f"small put_many: {t.rate():.0f}/s (batches of {batch})")

        reader = await client_node(work, net.nodes[0].address, "client-r")
        nodes.append(reader)
        await settle(net)
        await asyncio.sleep(pause)
        all_ids = ids + batch_ids
        res["reader_held_before"] = await held(reader, all_ids)
        # the rebalance made the reader a holder of its share: time only what it lacks
        ids = await not_held(reader, ids)
        batch_ids = await not_held(reader, batch_ids)
        res["reader_read_objects"] = len(ids) + len(batch_ids)

        async def read_one(i: str) -> None:
            if len(await reader.read(i)) != SMALL:
                raise HashmeshError("read returned the wrong size")

        t = await run_concurrent(read_one, ids, inflight)
        add_timed(res, "small_get", t)
        log(f"small read: {t.rate():.0f}/s, p50 {t.p(50):.1f} ms, p99 {t.p(99):.1f} ms")
        if has_batch:
            groups = [batch_ids[i : i + batch] for i in range(0, len(batch_ids), batch)]

            async def get_batch(group: list[str]) -> None:
                if sum(map(len, await reader.get_many(group))) != SMALL * len(group):
                    raise HashmeshError("get_many returned the wrong size")

            t = await run_concurrent(get_batch, groups, 1, weight=batch)
            add_timed(res, "small_get_many", t)
            log(f"small get_many: {t.rate():.0f}/s (batches of {batch})")
        res["reader_objects"] = len(all_ids)
    finally:
        await stop_nodes(nodes)
    return res


async def settle(net: Devnet, timeout: float = 180.0) -> tuple[float, int]:
    """Wait until no devnet node has repair work left; (seconds, blocks moved).

    A node that joins takes over part of the keyspace, and the others move its share of
    the blocks already stored (here the large files') to it. Small-object figures are
    taken after that, not while it competes with them.
    """
    t0 = time.perf_counter()

    async def states() -> list[tuple[int, int]]:
        out = []
        for n in net.nodes:
            async with Client(n.repo, timeout=10) as c:
                st = await c.call("status")
            out.append((int(st["repair_backlog"]), int(st["repaired_blocks"])))
        return out

    first = last = await states()
    calm = 0
    await asyncio.sleep(3.0)  # the others notice the newcomer within a health interval
    while time.perf_counter() - t0 < timeout and calm < 3:
        now = await states()
        calm = calm + 1 if now == last and all(b == 0 for b, _ in now) else 0
        last = now
        await asyncio.sleep(0.5)
    moved = sum(b for _, b in last) - sum(b for _, b in first)
    return time.perf_counter() - t0, moved


async def held(node: Node, ids: list[str]) -> int:
    return len(ids) - len(await not_held(node, ids))


async def not_held(node: Node, ids: list[str]) -> list[str]:
    assert node.store is not None
    flags = await node.store.has_blocks([ContentId.parse(i) for i in ids])
    return [i for i, f in zip(ids, flags, strict=True) if not f]


# ------------------------------------------------------------------ DHT
async def dht_batched(
    net: Devnet, work: Path, client: Node, rnd: random.Random, calls: int, batch: int
) -> dict[str, Any]:
    """lookup_many / put_many (client) and get_many (a node joined after them), per key."""
    res: dict[str, Any] = {"dht_batch": batch}
    cd = client.driver
    assert cd is not None
    msgs: dict[str, list[int]] = {"lookup_many": [], "put_many": [], "get_many": []}
    values = [[rnd.randbytes(100) for _ in range(batch)] for _ in range(calls)]

    async def lookup_many(keys: list[bytes]) -> None:
        done = await cd.lookup_many(keys, timeout=OP_TIMEOUT)
        if any(not c for c in done.closest):
            raise HashmeshError("lookup_many found no nodes for a key")
        msgs["lookup_many"].append(done.messages)

    async def put_many(vals: list[bytes]) -> None:
        done = await cd.put_many([dht.ValueRecord.of(v) for v in vals], timeout=OP_TIMEOUT)
        if min(done.stored_at) < 1:
            raise HashmeshError("put_many: a record acknowledged by no node")
        msgs["put_many"].append(done.messages)

    async def get_many(vals: list[bytes]) -> None:
        keys = [dht.ValueRecord.of(v).key for v in vals]
        assert reader.driver is not None
        done = await reader.driver.get_many(keys, timeout=OP_TIMEOUT)
        got = [getattr(r, "value", None) for r in done.records]
        if got != vals:
            raise HashmeshError("get_many: missing or wrong values")
        msgs["get_many"].append(done.messages)

    keys = [[rnd.randbytes(32) for _ in range(batch)] for _ in range(calls)]
    reader = client
    try:
        for name, fn, args in (
            ("lookup_many", lookup_many, keys),
            ("put_many", put_many, values),
            ("get_many", get_many, values),
        ):
            if name == "get_many":  # a node that joined after the stores holds no copy
                reader = await client_node(work, net.nodes[0].address, "client-dht-r2")
                assert reader.driver is not None
                res["dht_get_many_reader_held"] = len(reader.driver.protocol.records)
                # untimed warm-up: keys no one holds make the new node dial its peers once
                # (TLS + identity proof each), as a node that has been up a while already has
                warm = [rnd.randbytes(32) for _ in range(100)]
                await reader.driver.get_many(warm, timeout=OP_TIMEOUT)
            t = await run_concurrent(fn, args, 1, weight=batch)
            add_timed(res, f"dht_{name}", t)
            per_key = sum(msgs[name]) / max(1, len(msgs[name]) * batch)
            res[f"dht_{name}_requests_per_key"] = per_key
            log(f"DHT {name}: {t.rate():.0f} keys/s, {t.failures} failed calls")
    finally:
        if reader is not client:
            await stop_nodes([reader])
    return res


async def dht_rates(net: Devnet, work: Path, n_ops: int, batch: int) -> dict[str, Any]:
    rnd = random.Random(7)
    res: dict[str, Any] = {"dht_nodes": net.count, "dht_ops": n_ops}
    nodes: list[Node] = []
    try:
        client = await client_node(work, net.nodes[0].address, "client-dht")
        nodes.append(client)
        driver = client.driver
        assert driver is not None
        res["dht_client_table"] = len(driver.protocol.routing_table)

        stored: list[bytes] = []

        async def lookup(key: bytes) -> None:
            done = await driver.lookup(key, timeout=OP_TIMEOUT)
            if not done.closest:
                raise HashmeshError("lookup found no nodes")

        async def store(value: bytes) -> None:
            done = await driver.put(dht.ValueRecord.of(value), timeout=OP_TIMEOUT)
            if done.stored_at < 1:
                raise HashmeshError("store acknowledged by no node")
            stored.append(value)

        for c in (1, 50):
            # concurrent single calls are merged into batched ones by the driver
            for op, fn, arg in (("lookup", lookup, 32), ("store", store, 100)):
                merged, sent = driver.merged_calls, driver.sent
                t = await run_concurrent(fn, [rnd.randbytes(arg) for _ in range(n_ops)], c)
                add_timed(res, f"dht_{op}_c{c}", t)
                res[f"dht_{op}_c{c}_merged"] = driver.merged_calls - merged
                res[f"dht_{op}_c{c}_messages_per_op"] = (driver.sent - sent) / n_ops
                log(f"DHT {op} c{c}: {t.rate():.0f}/s, p50 {t.p(50):.2f} ms")
        # Gets from a node that joined after the stores, so it holds no copy (like
        # kademlia's remote get).
        reader = await client_node(work, net.nodes[0].address, "client-dht-r")
        nodes.append(reader)
        rdriver = reader.driver
        assert rdriver is not None

        async def get(value: bytes) -> None:
            done = await rdriver.get(dht.ValueRecord.of(value).key, timeout=OP_TIMEOUT)
            rec = done.record
            if rec is None or getattr(rec, "value", None) != value:
                raise HashmeshError("DHT get: missing or wrong value")

        half = len(stored) // 2
        for c, values in ((1, stored[:half]), (50, stored[half:])):
            merged, sent = rdriver.merged_calls, rdriver.sent
            t = await run_concurrent(get, values, c)
            add_timed(res, f"dht_get_c{c}", t)
            res[f"dht_get_c{c}_merged"] = rdriver.merged_calls - merged
            res[f"dht_get_c{c}_messages_per_op"] = (rdriver.sent - sent) / max(1, len(values))
            log(f"DHT get c{c}: {t.rate():.0f}/s, p50 {t.p(50):.2f} ms, {t.failures} failed")
        res.update(await dht_batched(net, work, client, rnd, max(4, 20 * n_ops // batch), batch))
    finally:
        await stop_nodes(nodes)
    return res


# ------------------------------------------------------------------ orchestration
def with_devnet(base: Path, count: int, timeout: float, body: Callable[[Devnet], Any]) -> Any:
    """Start a devnet, run ``body(net)``, always stop it (also on Ctrl-C)."""
    net = Devnet(base, count, replication=R)
    with contextlib.ExitStack() as stack:
        stack.callback(net.stop)
        t0 = time.monotonic()
        net.start(timeout=timeout)
        NODE_PIDS[:] = [n.proc.pid for n in net.nodes if n.proc is not None]
        log(f"devnet of {count} nodes up in {time.monotonic() - t0:.1f} s")
        return body(net)


def part_network(args: argparse.Namespace, work: Path, res: dict[str, Any]) -> None:
    size = args.size_mib * MiB

    def body(net: Devnet) -> None:
        res["net5_idle_cores"] = idle_cores()
        reps = [run_loop(large_rep(net, work, size, i, args.pause)) for i in range(args.reps)]
        for key in (
            "raw_r_copies_MBps",
            "put_raw_ratio",
            "put_MBps",
            "get_MBps",
            "raw_write_MBps",
            "get_raw_ratio",
            "get_network_share",
            "ranged_read_ms",
            "ranged_read_blocks",
        ):
            res[f"large_{key}"] = common.median([r[key] for r in reps])
        res["large_runs"] = reps
        put_s, get_s = cli_round(net, work, size)
        res["cli_put_s"], res["cli_get_s"] = put_s, get_s
        res["cli_put_MBps"], res["cli_get_MBps"] = size / put_s / 1e6, size / get_s / 1e6
        log(f"CLI put {put_s:.2f} s, get {get_s:.2f} s")
        res.update(
            run_loop(small_objects(net, work, args.small, args.concurrency, args.batch, args.pause))
        )

    with_devnet(work / "net5", 5, 60, body)


def part_dht(args: argparse.Namespace, work: Path, res: dict[str, Any]) -> None:
    with_devnet(
        work / "net30",
        args.dht_nodes,
        240,
        lambda net: res.update(
            {f"net{net.count}_idle_cores": idle_cores()},
            **run_loop(dht_rates(net, work, args.dht_ops, args.dht_batch)),
        ),
    )


def part_peers(args: argparse.Namespace, res: dict[str, Any]) -> None:
    from peers import kademlia_peer, tahoe

    log("Tahoe-LAFS grid (takes minutes)")
    res["tahoe"] = tahoe.measure(
        size_mib=args.size_mib, reps=args.reps, quick=args.quick, pause=args.pause
    )
    log("kademlia")
    res["kademlia"] = kademlia_peer.measure(n_ops=args.dht_ops, concurrency=(1, 50))


# ------------------------------------------------------------------ main
def interrupt_on_signals() -> None:
    """SIGINT and SIGTERM raise KeyboardInterrupt, so ``finally`` blocks stop everything.

    Our own SIGINT handler also keeps asyncio.Runner from turning Ctrl-C into a task
    cancellation, which code that swallows CancelledError could lose.
    """

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="64 MiB, 1 rep, fewer ops")
    ap.add_argument(
        "--pause",
        type=float,
        default=None,
        help="idle seconds before each large raw write and put (default 20; 5 with --quick)",
    )
    ap.add_argument("--reps", type=int, default=None, help="large-file reps (default 3)")
    ap.add_argument("--size-mib", type=int, default=None, help="large file (default 256)")
    ap.add_argument("--small", type=int, default=None, help="4 KiB objects per API")
    ap.add_argument("--concurrency", type=int, default=32, help="small ops in flight")
    ap.add_argument("--batch", type=int, default=256, help="put_many/get_many batch size")
    ap.add_argument("--dht-nodes", type=int, default=30)
    ap.add_argument("--dht-ops", type=int, default=None, help="DHT ops per level")
    ap.add_argument("--dht-batch", type=int, default=500, help="keys per batched DHT call")
    ap.add_argument("--no-peers", action="store_true", help="skip Tahoe and kademlia")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: net,dht")
    ap.add_argument("--dir", default=None, help="work directory (default: a temp dir)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    faulthandler.enable()  # a crash in a C extension prints where it happened
    args.reps = args.reps or (1 if args.quick else 3)
    args.pause = args.pause if args.pause is not None else (5.0 if args.quick else 20.0)
    args.size_mib = args.size_mib or (64 if args.quick else 256)
    args.small = args.small or (1024 if args.quick else 4096)
    args.dht_ops = args.dht_ops or (200 if args.quick else 500)
    skip = set(filter(None, args.skip.split(",")))
    interrupt_on_signals()
    work = Path(args.dir or tempfile.mkdtemp(prefix="bench-network-"))
    work.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {
        "started_utc": common.utc_now(),
        "loadavg_start": common.loadavg(),
        "quick": args.quick,
        "reps": args.reps,
        "size_MiB": args.size_mib,
        "replication": R,
    }
    t0 = time.monotonic()
    try:
        res["raw_fsync_MBps"] = common.median([raw_fsync_MBps(work) for _ in range(args.reps)])
        log(f"raw fsync'd 1 MiB writes (256 MiB burst): {res['raw_fsync_MBps']:.0f} MB/s")
        if "net" not in skip:
            part_network(args, work, res)
        if "dht" not in skip:
            part_dht(args, work, res)
        if not args.no_peers:
            part_peers(args, res)
    except KeyboardInterrupt:
        log("interrupted; everything started has been stopped")
        return 130
    finally:
        drop_raw_files()
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)
    res["loadavg_end"] = common.loadavg()
    res["elapsed_s"] = time.monotonic() - t0
    rows = build_rows(res)
    if args.json:
        res["table"] = [
            {"figure": n, "value": v, "unit": u, "target": tg, "met": m} for n, v, u, tg, m in rows
        ]
        print(json.dumps(res, indent=2, default=str))
        return 0
    print(
        f"hashmesh network benchmark: {args.size_mib} MiB file, median of {args.reps}, "
        f"r={R}, small {args.small} x 4 KiB ({args.concurrency} in flight, batches of "
        f"{args.batch}), DHT {args.dht_nodes} nodes x {args.dht_ops} ops; MB = 1e6 B"
    )
    print(
        f"load average: start {res['loadavg_start']}, end {res['loadavg_end']}; "
        f"elapsed {res['elapsed_s']:.0f} s\n"
    )
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
