"""The network part of ``hashmesh demo``: a 5-node devnet that loses a node and heals.

Steps: start 5 node processes on 127.0.0.1 (replication 3); put a generated
file through node 0; SIGKILL a node that holds some of its blocks; read the
file back through another node and compare every byte; wait until every block
has 3 live holders again (repair) and report how long that took; stop all.
Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hashmesh.cli.render import human_size
from hashmesh.client import call
from hashmesh.devnet import Devnet
from hashmesh.errors import HashmeshError, IntegrityError, NetworkError
from hashmesh.ids import ContentId
from hashmesh.placement import closest

NODES = 5
REPLICATION = 3
REPAIR_TIMEOUT = 40.0


def _rate(n: int, seconds: float) -> str:
    return f"{n / 1e6 / seconds:.0f} MB/s" if seconds > 0 else "-"


async def _misplaced(net: Devnet, blocks: list[str], want: int) -> int:
    """Blocks not yet on all of their ``want`` closest live nodes (the placement rule)."""
    live = [n for n in net.nodes if n.alive]
    ids = {}
    held = {}
    for node in live:
        ids[node.index] = bytes.fromhex((await call(node.repo, "status"))["node_id"])
        held[node.index] = await call(node.repo, "has_blocks", ids=blocks)
    by_id = {v: k for k, v in ids.items()}
    missing = 0
    for j, text in enumerate(blocks):
        key = ContentId.parse(text).digest
        targets = closest(key, list(ids.values()), want)
        if not all(held[by_id[t]][j] for t in targets):
            missing += 1
    return missing


async def _wait_repaired(net: Devnet, blocks: list[str], want: int) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < REPAIR_TIMEOUT:
        if await _misplaced(net, blocks, want) == 0:
            return time.monotonic() - t0
        await asyncio.sleep(0.25)
    raise NetworkError(f"repair did not restore {want} copies within {REPAIR_TIMEOUT:.0f} s")


def run_network(base: Path, data: bytes, say: Callable[[str], None]) -> dict[str, Any]:
    """Run the whole network demo under ``base``; return its figures."""
    base.mkdir(parents=True, exist_ok=True)
    sample = base / "sample.bin"
    sample.write_bytes(data)
    net = Devnet(base / "nodes", NODES, replication=REPLICATION)
    t0 = time.monotonic()
    with net:
        say(
            f"network: started {NODES} node processes on 127.0.0.1 "
            f"(ports {net.port}-{net.port + NODES - 1}) in {time.monotonic() - t0:.1f} s"
        )
        return asyncio.run(_story(net, sample, data, say))


async def _story(
    net: Devnet, sample: Path, data: bytes, say: Callable[[str], None]
) -> dict[str, Any]:
    writer, reader = net.nodes[0], net.nodes[-1]
    t = time.monotonic()
    res = await call(writer.repo, "put", path=str(sample), name="sample.bin", timeout=600)
    put_s = time.monotonic() - t
    fid = res["file"]["id"]
    blocks: list[str] = await call(writer.repo, "dag_blocks", id=fid)
    placed = len(blocks) - await _misplaced(net, blocks, REPLICATION)
    say(
        f"put sample.bin ({human_size(len(data))}) through node0 in {put_s:.2f} s "
        f"({_rate(len(data), put_s)}): {placed} of {len(blocks)} blocks on their "
        f"{REPLICATION} closest nodes"
    )
    say(f"  id {fid}")
    # the victim: a node (not writer or reader) holding the most of this file's blocks
    held = {}
    for node in net.nodes[1:-1]:
        flags = await call(node.repo, "has_blocks", ids=blocks)
        held[node.index] = sum(flags)
    victim = max(held, key=lambda i: held[i])
    net.kill(victim)
    killed_at = time.monotonic()
    say(f"killed node{victim} with SIGKILL; it held {held[victim]} of the {len(blocks)} blocks")
    await asyncio.sleep(0.5)
    lost = await _misplaced(net, blocks, REPLICATION)
    say(f"  {lost} blocks now lack one of their {REPLICATION} closest live holders")
    out = sample.with_name("copy.bin")
    t = time.monotonic()
    await call(reader.repo, "get", id=fid, dest=str(out), timeout=600)
    get_s = time.monotonic() - t
    same = out.read_bytes() == data
    if not same:
        raise IntegrityError("the file read back differs from the original")
    say(
        f"read it back through node{reader.index} in {get_s:.2f} s ({_rate(len(data), get_s)}): "
        "every byte identical"
    )
    try:
        await _wait_repaired(net, blocks, REPLICATION)
    except HashmeshError as exc:
        say(f"repair: {exc}")
        raise
    repair_s = time.monotonic() - killed_at
    say(
        f"repair: every block is on its {REPLICATION} closest live nodes again, "
        f"{repair_s:.1f} s after the kill (failure detection included)"
    )
    return {"id": fid, "put_s": put_s, "get_s": get_s, "repair_s": repair_s, "victim": victim}


def sample_data(size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    half = size // 2
    text = b"".join(
        f"{i:08d} hashmesh keeps content safe across nodes\n".encode()
        for i in range(half // 50 + 1)
    )[:half]
    return rng.randbytes(size - half) + text


__all__ = ["run_network", "sample_data"]
