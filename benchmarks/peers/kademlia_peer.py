#!/usr/bin/env python3
"""Measure the PyPI ``kademlia`` library (over rpcudp), as a peer figure for hashmesh's DHT.

The library runs in its own venv at ``$HASHMESH_PEERS_DIR/kademlia-venv`` (default
/tmp/hashmesh-peers), created on first use with ``kademlia`` and ``uvloop``; it is never
imported into hashmesh's environment. This file plays two parts:

* in hashmesh's environment, :func:`measure` (or the command line) makes sure the venv
  exists and runs this same file inside it with ``--worker``, bounded in time;
* in the venv, the worker starts 30 ``kademlia.network.Server`` nodes in one asyncio
  process (uvloop), UDP on 127.0.0.1 with kernel-chosen ports, bootstraps them all, and then
  for each concurrency level (default 1 and 50 operations in flight) runs, from random nodes:
  ``n_ops`` sets of fresh 100-byte values, ``n_ops`` gets of those keys (with 30 nodes and
  k=20, most are local hits), and ``n_ops`` remote gets issued from a node that holds no
  local copy (one is made by dropping the local copy when every node holds the value),
  and ``n_ops`` node lookups (the library's ``NodeSpiderCrawl``, the k-closest search its
  ``set`` runs before storing) of fresh keys, from random nodes.

It reports ops/s, p50/p99 latency, failures (timeouts, missing or wrong values) and UDP
datagrams per operation, and prints one JSON object as the last line of its output.

Usage:  python benchmarks/peers/kademlia_peer.py [--ops 500] [--concurrency 1,50] [--json]
Import: ``from peers.kademlia_peer import measure`` with ``benchmarks/`` on sys.path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from peers import common

NODES = 30
VALUE_SIZE = 100
OP_TIMEOUT_S = 10.0  # one set or get
RUN_TIMEOUT_S = 900.0  # the whole worker process
OPS = ("set", "get", "remote_get", "lookup")


def _log(msg: str) -> None:
    print(f"[kademlia {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ parent side (hashmesh env)
def ensure_kademlia() -> Path:
    """Return the kademlia venv, creating it if needed."""
    return common.ensure_venv(
        "kademlia-venv",
        ["kademlia", "uvloop"],
        ["lib/python3*/site-packages/kademlia/network.py", "lib/python3*/site-packages/uvloop"],
    )


def measure(
    n_ops: int = 500,
    concurrency: Sequence[int] = (1, 50),
    nodes: int = NODES,
    timeout_s: float = RUN_TIMEOUT_S,
) -> dict[str, Any]:
    """Run the kademlia measurement in its venv; return the figures as a flat dict.

    Per concurrency level c: ``kademlia_{op}_per_s_c{c}``, ``kademlia_{op}_p50_ms_c{c}``,
    ``kademlia_{op}_p99_ms_c{c}``, ``kademlia_{op}_failures_c{c}`` and
    ``kademlia_{op}_datagrams_per_op_c{c}`` for op in set, get, remote_get. The keys without
    a ``_c{c}`` suffix repeat the first level given (sequential with the default (1, 50)).
    """
    if n_ops < 1 or nodes < 2 or not concurrency or min(concurrency) < 1:
        raise ValueError("need n_ops >= 1, nodes >= 2 and concurrency levels >= 1")
    venv_dir = ensure_kademlia()
    cmd = [
        str(venv_dir / "bin" / "python"),
        str(Path(__file__).resolve()),
        "--worker",
        f"--ops={n_ops}",
        f"--nodes={nodes}",
        "--concurrency=" + ",".join(str(c) for c in concurrency),
    ]
    started, t0, load0 = common.utc_now(), time.monotonic(), common.loadavg()
    try:
        proc = subprocess.run(
            cmd, stdout=subprocess.PIPE, text=True, timeout=timeout_s, check=False
        )  # on timeout or Ctrl-C, subprocess.run kills the worker before re-raising
    except subprocess.TimeoutExpired as exc:
        raise common.PeerBenchError(f"kademlia worker exceeded {timeout_s:.0f} s") from exc
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise common.PeerBenchError(f"kademlia worker failed with exit code {proc.returncode}")
    res: dict[str, Any] = json.loads(lines[-1])
    first = concurrency[0]
    for op in OPS:
        for stat in ("per_s", "p50_ms", "p99_ms", "failures"):
            res[f"kademlia_{op}_{stat}"] = res[f"kademlia_{op}_{stat}_c{first}"]
    res.update(
        started_utc=started,
        elapsed_s=round(time.monotonic() - t0, 1),
        loadavg_start=load0,
        loadavg_end=common.loadavg(),
    )
    return res


# ------------------------------------------------------------------ worker side (kademlia venv)
class _Phase:
    """Latencies and failures of one operation kind at one concurrency level."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.failures: dict[str, int] = {}

    def fail(self, kind: str) -> None:
        self.failures[kind] = self.failures.get(kind, 0) + 1


async def _worker(n_ops: int, n_nodes: int, levels: list[int], seed: int) -> dict[str, Any]:
    # only importable inside the kademlia venv
    from kademlia.crawling import NodeSpiderCrawl
    from kademlia.network import Server
    from kademlia.node import Node
    from kademlia.utils import digest

    rnd = random.Random(seed)
    datagrams = [0]
    servers = []
    t0 = time.perf_counter()
    for _ in range(n_nodes):
        server = Server()
        await server.listen(0, interface=common.LOOPBACK)
        proto = server.protocol
        receive = proto.datagram_received

        def counted(data: bytes, addr: Any, _receive: Any = receive) -> None:
            datagrams[0] += 1
            _receive(data, addr)

        proto.datagram_received = counted
        servers.append(server)
    seed_addr = (common.LOOPBACK, servers[0].transport.get_extra_info("sockname")[1])
    empty = 0
    for server in servers[1:]:
        if not await asyncio.wait_for(server.bootstrap([seed_addr]), OP_TIMEOUT_S * 3):
            empty += 1
    boot_s = time.perf_counter() - t0
    table = sorted(sum(len(b) for b in s.protocol.router.buckets) for s in servers)
    _log(
        f"{n_nodes} nodes up and bootstrapped in {boot_s:.2f} s ({empty} empty bootstraps), "
        f"routing-table sizes {table[0]}..{table[-1]}"
    )
    out: dict[str, Any] = {
        "nodes": n_nodes,
        "n_ops": n_ops,
        "value_size_B": VALUE_SIZE,
        "concurrency": levels,
        "bootstrap_s": round(boot_s, 3),
        "bootstrap_empty": empty,
        "routing_table_min_max": [table[0], table[-1]],
    }
    dropped = [0]

    async def timed(coro: Any, phase: _Phase) -> Any:
        start = time.perf_counter()
        try:
            result = await asyncio.wait_for(coro, OP_TIMEOUT_S)
        except TimeoutError:
            phase.fail("timeout")
            return None
        except (OSError, ValueError, KeyError) as exc:
            phase.fail(type(exc).__name__)
            return None
        phase.latencies.append(time.perf_counter() - start)
        return result

    async def one(op: str, key: str, value: bytes, phase: _Phase, gate: asyncio.Semaphore) -> None:
        async with gate:
            node = rnd.choice(servers)
            if op == "lookup":  # the k closest nodes of the key, as set finds them
                target = Node(digest(key))
                nearest = node.protocol.router.find_neighbors(target)
                crawl = NodeSpiderCrawl(node.protocol, target, nearest, node.ksize, node.alpha)
                if not await timed(crawl.find(), phase):
                    phase.fail("no nodes")
                return
            if op == "set":
                if not await timed(node.set(key, value), phase):
                    phase.fail("not stored")
                return
            if op == "remote_get":
                dkey = digest(key)
                holders_not = [s for s in servers if s.storage.get(dkey) is None]
                if holders_not:
                    node = rnd.choice(holders_not)
                else:  # every node holds it: drop this node's copy so the get must go out
                    node.storage.data.pop(dkey, None)
                    dropped[0] += 1
            got = await timed(node.get(key), phase)
            if got is None:
                phase.fail("missing")
            elif got != value:
                phase.fail("wrong value")

    for level in levels:
        keys = [f"bench-c{level}-{i}-{rnd.getrandbits(64):016x}" for i in range(n_ops)]
        values = {k: os.urandom(VALUE_SIZE) for k in keys}
        for op in OPS:
            phase, gate = _Phase(), asyncio.Semaphore(level)
            datagrams[0] = 0
            start = time.perf_counter()
            await asyncio.gather(*(one(op, k, values[k], phase, gate) for k in keys))
            wall = time.perf_counter() - start
            lat = phase.latencies or [float("nan")]
            tag = f"kademlia_{op}_{{}}_c{level}"
            out[tag.format("per_s")] = round(n_ops / wall, 1)
            out[tag.format("p50_ms")] = round(common.percentile(lat, 50) * 1e3, 2)
            out[tag.format("p99_ms")] = round(common.percentile(lat, 99) * 1e3, 2)
            out[tag.format("failures")] = sum(phase.failures.values())
            out[tag.format("datagrams_per_op")] = round(datagrams[0] / n_ops, 1)
            if phase.failures:
                out[tag.format("failure_kinds")] = phase.failures
            _log(
                f"{op:10s} x{n_ops}, {level:3d} in flight: {n_ops / wall:8.1f} ops/s, "
                f"p50 {out[tag.format('p50_ms')]} ms, p99 {out[tag.format('p99_ms')]} ms, "
                f"{out[tag.format('failures')]} failures, "
                f"{out[tag.format('datagrams_per_op')]} datagrams/op"
            )
    out["remote_get_local_copies_dropped"] = dropped[0]
    for server in servers:
        server.stop()
    await asyncio.sleep(0.05)
    return out


def _run_worker(args: argparse.Namespace) -> int:
    import importlib.metadata as md
    import logging

    logging.basicConfig(level=logging.CRITICAL)  # the library logs every RPC
    levels = [int(c) for c in args.concurrency.split(",")]
    try:
        import uvloop

        factory, loop_name = uvloop.new_event_loop, "uvloop"
    except ImportError:
        factory, loop_name = None, "asyncio"

    async def bounded() -> dict[str, Any]:
        async with asyncio.timeout(RUN_TIMEOUT_S * 0.9):  # inside the parent's bound
            return await _worker(args.ops, args.nodes, levels, args.seed)

    with asyncio.Runner(loop_factory=factory) as runner:
        res = runner.run(bounded())
    res["loop"] = loop_name
    res["versions"] = {n: md.version(n) for n in ("kademlia", "rpcudp", "u-msgpack-python")}
    res["python"] = sys.version.split()[0]
    print(json.dumps(res, sort_keys=True), flush=True)
    return 0


# ------------------------------------------------------------------ command line
def print_report(res: dict[str, Any]) -> None:
    """Print the figures of measure() as a readable table."""
    rows = []
    for level in res["concurrency"]:
        for op in OPS:
            tag = f"kademlia_{op}_{{}}_c{level}"
            rows.append(
                (
                    f"{op}, {level} in flight",
                    f"{res[tag.format('per_s')]} ops/s, p50 {res[tag.format('p50_ms')]} ms, "
                    f"p99 {res[tag.format('p99_ms')]} ms, {res[tag.format('failures')]} "
                    f"failures, {res[tag.format('datagrams_per_op')]} datagrams/op",
                )
            )
    common.print_table(
        f"kademlia {res['versions']['kademlia']} ({res['loop']}), {res['nodes']} nodes on "
        f"127.0.0.1 UDP, {res['n_ops']} ops per row, {res['value_size_B']} B values; started "
        f"{res['started_utc']}, took {res['elapsed_s']} s, load {res['loadavg_start']} -> "
        f"{res['loadavg_end']}",
        rows,
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (parent, or ``--worker`` inside the venv)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=500, help="operations per row")
    ap.add_argument("--nodes", type=int, default=NODES)
    ap.add_argument("--concurrency", default="1,50", help="comma-separated in-flight levels")
    ap.add_argument("--seed", type=int, default=42, help="seed for node and key choices")
    ap.add_argument("--json", action="store_true", help="print one JSON object only")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return _run_worker(args)
    return common.run_measure(
        "kademlia",
        lambda: measure(
            args.ops, tuple(int(c) for c in args.concurrency.split(",")), nodes=args.nodes
        ),
        as_json=args.json,
        report=print_report,
        stopped="the worker was stopped",
    )


if __name__ == "__main__":
    sys.exit(main())
