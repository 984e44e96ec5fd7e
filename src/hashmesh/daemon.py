"""The node daemon: a :class:`Node` plus its control socket, run until told to stop.

SIGTERM and SIGINT stop it gracefully: the node first hands off blocks it holds
to the next closest nodes and its DHT records to their next holders.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import faulthandler
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hashmesh import allocator
from hashmesh.client import call
from hashmesh.config import Config, load, parse_duration
from hashmesh.control import ControlServer, Handler, socket_path
from hashmesh.errors import HashmeshError, InvalidArgumentError, InvalidIdError, UsageError
from hashmesh.ids import ContentId, NodeId
from hashmesh.node import Node

log = logging.getLogger("hashmesh.daemon")
JOIN_RETRY = 2.0
JOIN_ATTEMPTS = 30


def node_config(
    repo: Path,
    listen: str | None,
    bootstrap: Sequence[str],
    replication: int | None,
    write_quorum: int | None,
) -> Config:
    """The repository's config.toml, overridden by command-line values."""
    cfg = load(repo / "config.toml")
    changes: dict[str, Any] = {}
    if listen:
        changes["listen"] = listen
    if bootstrap:
        changes["bootstrap"] = tuple(bootstrap)
    if replication is not None:
        changes["replication"] = replication
        if write_quorum is None and cfg.node.write_quorum > replication:
            changes["write_quorum"] = 0
    if write_quorum is not None:
        changes["write_quorum"] = write_quorum
    return dataclasses.replace(cfg, node=dataclasses.replace(cfg.node, **changes))


def parse_key(text: str) -> bytes:
    """A DHT key from a content id (its digest) or a 64-hex node id/key."""
    t = text.strip()
    if len(t) == 64 and all(c in "0123456789abcdefABCDEF" for c in t):
        return NodeId.parse(t).value
    try:
        return ContentId.parse(t).digest
    except InvalidIdError:
        raise InvalidIdError(
            f"malformed key {text!r}: expected a content id or 64 hex characters"
        ) from None


def control_ops(node: Node, stop: asyncio.Event) -> dict[str, Handler]:
    """Control operations: each translates arguments to a Node or Store call."""
    store = node.store
    assert store is not None

    def meta(a: dict[str, Any]) -> dict[str, Any]:
        ttl = a.get("ttl")
        return {
            "name": a.get("name"),
            "tags": tuple(a.get("tags") or ()),
            "description": a.get("description") or "",
            "ttl": parse_duration(ttl) if ttl else None,
            "pin": bool(a.get("pin")),
        }

    async def put(a: dict[str, Any]) -> Any:
        return await node.put_path(str(a["path"]), **meta(a))

    async def get(a: dict[str, Any]) -> Any:
        return str(await node.get_to_path(str(a["id"]), str(a["dest"])))

    async def cat(a: dict[str, Any]) -> Any:
        return await node.iter_read(str(a["id"]))

    async def read(a: dict[str, Any]) -> Any:
        return await node.read(str(a["id"]), int(a.get("offset", 0)), a.get("length"))

    async def lookup(a: dict[str, Any]) -> Any:
        return await node.lookup_report(parse_key(str(a["key"])))

    async def closest(a: dict[str, Any]) -> Any:
        key = parse_key(str(a["id"]))
        count = int(a.get("count", node.config.dht.k))
        table = node.driver.protocol.routing_table if node.driver else None
        peers = table.closest(key, count) if table is not None else []
        return [
            {
                "node_id": str(p.node_id),
                "address": f"{p.host}:{p.port}",
                "distance_log2": NodeId(key).distance(p.node_id).bit_length(),
            }
            for p in peers
        ]

    async def status(a: dict[str, Any]) -> Any:
        return await node.status()

    async def peers(a: dict[str, Any]) -> Any:
        return node.peer_report()

    async def table(a: dict[str, Any]) -> Any:
        return node.table_report()

    async def ls(a: dict[str, Any]) -> Any:
        return [f.to_json() for f in await store.ls(a.get("limit"))]

    async def search(a: dict[str, Any]) -> Any:
        hits = await store.search(
            str(a.get("query", "")),
            content_type=a.get("content_type"),
            min_size=a.get("min_size"),
            max_size=a.get("max_size"),
            tag=a.get("tag"),
            sort=a.get("sort", "relevance"),
            limit=int(a.get("limit", 50)),
        )
        return [f.to_json() for f in hits]

    async def stat(a: dict[str, Any]) -> Any:
        return (await node.stat(str(a["id"]))).to_json()

    async def list_dir(a: dict[str, Any]) -> Any:
        return [dataclasses.asdict(e) for e in await node.list_dir(str(a["id"]))]

    async def verify(a: dict[str, Any]) -> Any:
        return (await store.verify(a.get("id"))).to_json()

    async def rm(a: dict[str, Any]) -> Any:
        await store.remove(str(a["id"]))

    async def pin(a: dict[str, Any]) -> Any:
        await store.pin(str(a["id"]))

    async def unpin(a: dict[str, Any]) -> Any:
        await store.unpin(str(a["id"]))

    async def gc(a: dict[str, Any]) -> Any:
        return (await store.gc()).to_json()

    async def stats(a: dict[str, Any]) -> Any:
        return (await store.stats()).to_json()

    async def stop_op(a: dict[str, Any]) -> Any:
        stop.set()

    async def has_blocks(a: dict[str, Any]) -> Any:
        """For each block id in ``ids``, whether this node stores it (audits, tests)."""
        return await store.has_blocks([str(i) for i in a.get("ids") or ()])

    async def dag_blocks(a: dict[str, Any]) -> Any:
        """Every block id under ``id`` that this node can reach locally, root first."""
        return [str(c) for c in await store.dag_blocks(str(a["id"]))]

    return {
        "put": put,
        "get": get,
        "cat": cat,
        "read": read,
        "dht_lookup": lookup,
        "dht_closest": closest,
        "dht_table": table,
        "status": status,
        "peers": peers,
        "ls": ls,
        "search": search,
        "stat": stat,
        "list_dir": list_dir,
        "verify": verify,
        "rm": rm,
        "pin": pin,
        "unpin": unpin,
        "gc": gc,
        "stats": stats,
        "stop": stop_op,
        "has_blocks": has_blocks,
        "dag_blocks": dag_blocks,
    }


async def _join_until_connected(node: Node, seeds: Sequence[str]) -> None:
    for _ in range(JOIN_ATTEMPTS):
        if await node.join(seeds) > 0:
            return
        await asyncio.sleep(JOIN_RETRY)
    log.warning("could not reach any bootstrap seed; running alone")


async def serve(repo: Path, config: Config, *, ready: Any = None) -> None:
    """Run a node for ``repo`` until SIGTERM/SIGINT or a ``stop`` control call."""
    if socket_path(repo).exists():
        try:
            await call(repo, "status", timeout=5)
        except HashmeshError:
            pass  # a stale socket from a killed node: take over
        else:
            raise UsageError(f"a node is already running for {repo}")
    node = Node(repo, config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await node.start()
    control = ControlServer(repo, control_ops(node, stop))
    joiner: asyncio.Task[None] | None = None
    try:
        await control.start()
        assert node.me is not None
        line = (
            f"hashmesh node {node.node_id} listening on {node.me.host}:{node.me.port} "
            f"(repo {repo}, replication {node.replication})"
        )
        print(line, flush=True)
        if ready is not None:
            ready(node)
        if config.node.bootstrap:
            joiner = loop.create_task(_join_until_connected(node, config.node.bootstrap))
        await stop.wait()
        print("stopping: handing off data to the next closest nodes", flush=True)
    finally:
        if joiner is not None:
            joiner.cancel()
            with contextlib.suppress(BaseException):
                await joiner
        await control.stop()
        await node.stop(graceful=True)
        print("stopped", flush=True)


def run(
    repo: Path,
    listen: str | None,
    bootstrap: Sequence[str],
    replication: int | None,
    write_quorum: int | None = None,
) -> None:
    from hashmesh.net.loop import run as run_loop

    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    faulthandler.enable()  # a crash in a C extension leaves a trace in the node's log
    allocator.tune()  # large block buffers are reused, not faulted in anew each time
    if replication is not None and replication < 1:
        raise InvalidArgumentError("--replication must be at least 1")
    repo.mkdir(parents=True, exist_ok=True)
    config = node_config(repo, listen, bootstrap, replication, write_quorum)
    run_loop(serve(repo, config))
