"""Commands for networked nodes: node start, devnet, status, peers, dht lookup/closest/table.

``node start`` runs the daemon in the foreground; the others talk to the node
running for the repository through its control socket (:mod:`hashmesh.client`).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from hashmesh.cli import render
from hashmesh.cli.common import JsonOpt, RepoOpt, repo_path, run
from hashmesh.errors import InvalidArgumentError

node_app = typer.Typer(help="Run a networked node.", no_args_is_help=True)
dht_app = typer.Typer(help="Inspect the DHT through the running node.", no_args_is_help=True)


def _call(ctx: typer.Context, repo: Path | None, op: str, **args: Any) -> Any:
    from hashmesh.client import call

    return run(call(repo_path(ctx, repo), op, **args))


@node_app.command("start")
def node_start(
    ctx: typer.Context,
    listen: Annotated[str, typer.Option(help="HOST:PORT to listen on.")] = "127.0.0.1:7400",
    bootstrap: Annotated[
        list[str] | None,
        typer.Option(
            "--bootstrap", "-b", help="Seed node HOST:PORT or NODEID@HOST:PORT (repeatable)."
        ),
    ] = None,
    replication: Annotated[
        int | None, typer.Option(help="Copies of each block (default 3, or config.toml).")
    ] = None,
    write_quorum: Annotated[
        int | None, typer.Option(help="Acks a put waits for (default: replication).")
    ] = None,
    repo: RepoOpt = None,
) -> None:
    """Run a node in the foreground until SIGTERM or Ctrl-C (which hand off data first)."""
    from hashmesh import daemon

    daemon.run(repo_path(ctx, repo), listen, bootstrap or [], replication, write_quorum)


@node_app.command("stop")
def node_stop(ctx: typer.Context, repo: RepoOpt = None) -> None:
    """Ask the running node to hand off its data and stop."""
    _call(ctx, repo, "stop")
    render.out("stop requested")


def status(ctx: typer.Context, json_out: JsonOpt = False, repo: RepoOpt = None) -> None:
    """Uptime, peers, stored bytes, replication health and repair backlog of the node."""
    s = _call(ctx, repo, "status")
    if json_out:
        render.print_json(s)
        return
    render.key_values(
        [
            ("node id", s["node_id"]),
            ("listening on", s["listen"]),
            ("uptime", render.human_duration(s["uptime"])),
            ("peers", f"{s['peers']} known, {s['live_peers']} live"),
            (
                "stored",
                f"{render.human_size(s['stored_bytes'])} in {s['blocks']} blocks, "
                f"{s['files']} files",
            ),
            ("replication", f"{s['replication']} copies, write quorum {s['write_quorum']}"),
            (
                "health",
                f"{s['under_replicated']} under-replicated blocks, "
                f"repair backlog {s['repair_backlog']}, {s['repaired_blocks']} repaired, "
                f"{s.get('healed_blocks', 0)} corrupt copies replaced",
            ),
            (
                "audit",
                f"{render.human_size(s.get('audited_bytes', 0))} re-verified; "
                f"whole passes: {s.get('audit_passes', 0)}",
            ),
        ]
    )


def peers(ctx: typer.Context, json_out: JsonOpt = False, repo: RepoOpt = None) -> None:
    """The node's peers with address, round-trip time and last contact."""
    rows = _call(ctx, repo, "peers")
    if json_out:
        render.print_json(rows)
        return
    render.table(
        ["node id", "address", "rtt", "last seen", "alive"],
        [
            [
                r["node_id"][:16],
                r["address"],
                f"{r['rtt_ms']:.2f} ms",
                render.human_time(r["last_seen"] or None, never="-"),
                "yes" if r["alive"] else "no",
            ]
            for r in rows
        ],
    )


@dht_app.command("lookup")
def dht_lookup(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="A content id or a 64-hex key/node id.")],
    json_out: JsonOpt = False,
    repo: RepoOpt = None,
) -> None:
    """Run an iterative lookup for KEY and show the closest nodes found."""
    r = _call(ctx, repo, "dht_lookup", key=key)
    if json_out:
        render.print_json(r)
        return
    render.out(
        f"lookup {r['key'][:16]}…: {len(r['closest'])} nodes, {r['hops']} hops, "
        f"{r['messages']} messages, {r['ms']:.1f} ms"
    )
    _closest_table(r["closest"])


@dht_app.command("closest")
def dht_closest(
    ctx: typer.Context,
    id: Annotated[str, typer.Argument(help="A content id or a 64-hex key/node id.")],
    count: Annotated[int, typer.Option(help="How many.")] = 20,
    json_out: JsonOpt = False,
    repo: RepoOpt = None,
) -> None:
    """The closest nodes to ID in the node's own routing table (no network traffic)."""
    if count < 1:
        raise InvalidArgumentError("--count must be at least 1")
    rows = _call(ctx, repo, "dht_closest", id=id, count=count)
    if json_out:
        render.print_json(rows)
        return
    _closest_table(rows)


def _closest_table(rows: list[dict[str, Any]]) -> None:
    render.table(
        ["node id", "address", "log2 distance"],
        [[r["node_id"][:16], r["address"], str(r["distance_log2"])] for r in rows],
    )


@dht_app.command("table")
def dht_table(ctx: typer.Context, json_out: JsonOpt = False, repo: RepoOpt = None) -> None:
    """The routing table: buckets with each peer's id, address, distance, last seen, rtt."""
    rows = _call(ctx, repo, "dht_table")
    if json_out:
        render.print_json(rows)
        return
    render.table(
        ["bucket", "node id", "address", "log2 distance", "last seen", "rtt"],
        [
            [
                str(r["bucket"]),
                r["node_id"][:16],
                r["address"],
                str(r["distance_log2"]),
                render.human_time(r["last_seen"] or None, never="-"),
                f"{r['rtt_ms']:.2f} ms",
            ]
            for r in rows
        ],
    )


def devnet(
    nodes: Annotated[int, typer.Option("--nodes", "-n", help="How many node processes.")] = 5,
    base: Annotated[
        Path | None,
        typer.Option("--dir", help="Where node repositories go (default ~/.hashmesh-devnet)."),
    ] = None,
    port: Annotated[int, typer.Option(help="First port (0 = find free ports).")] = 0,
    replication: Annotated[int, typer.Option(help="Copies of each block.")] = 3,
) -> None:
    """Start N nodes on 127.0.0.1, wait until connected, print how to use them; Ctrl-C stops all."""
    from hashmesh.devnet import Devnet, default_base

    if nodes < 1 or nodes > 200:
        raise InvalidArgumentError("--nodes must be between 1 and 200")
    net = Devnet(base or default_base(), nodes, port=port, replication=min(replication, nodes))
    stop = {"now": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    try:
        t0 = time.monotonic()
        net.start(timeout=30 + nodes)
        render.out(f"devnet: {nodes} nodes connected in {time.monotonic() - t0:.1f} s")
        for n in net.nodes:
            render.out(f"  node{n.index}: {n.address}  repo {n.repo}")
        first = net.nodes[0].repo
        render.out("try, in another terminal:")
        render.out(f"  hashmesh --repo {first} put FILE")
        render.out(f"  hashmesh --repo {net.nodes[-1].repo} get ID -o copy")
        render.out(f"  hashmesh --repo {first} status")
        render.out(
            "  hashmesh node start --repo DIR --listen 127.0.0.1:PORT "
            f"--bootstrap {net.nodes[0].address}   (add your own node)"
        )
        render.out("Ctrl-C stops every node.")
        reported: set[int] = set()
        while not stop["now"] and any(n.alive for n in net.nodes):
            for n in net.nodes:
                if not n.alive and n.index not in reported:
                    reported.add(n.index)
                    render.err(f"devnet: node{n.index} exited (see {n.repo / 'node.log'})")
            time.sleep(0.3)
    except KeyboardInterrupt:
        pass
    finally:
        render.out("devnet: stopping all nodes")
        net.stop()


def register(app: typer.Typer) -> None:
    app.add_typer(node_app, name="node")
    app.add_typer(dht_app, name="dht")
    app.command()(status)
    app.command()(peers)
    app.command()(devnet)


__all__ = ["register"]
