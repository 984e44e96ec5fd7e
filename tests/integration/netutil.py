"""Helpers for tests that drive real node processes: CLI runs, control calls, bounded waits.

Everything here talks to nodes the way a user does: the ``hashmesh`` CLI in a
subprocess, or the node's control socket in its repository
(:func:`hashmesh.client.call`). Every wait is bounded in time.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from hashmesh.client import call
from hashmesh.devnet import Devnet, DevNode

T = TypeVar("T")
MiB = 1 << 20


def hashmesh_argv(repo: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "hashmesh", "--repo", str(repo), *args]


def cli(repo: Path, *args: str, timeout: float = 120.0) -> str:
    """Run ``hashmesh --repo REPO ARGS...``; its stdout, or AssertionError with stderr."""
    r = subprocess.run(
        hashmesh_argv(repo, *args),
        capture_output=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if r.returncode != 0:
        raise AssertionError(
            f"hashmesh {' '.join(args)} exited {r.returncode}: "
            f"{r.stderr.decode(errors='replace')[-2000:]}"
        )
    return r.stdout.decode()


def cli_bytes(repo: Path, *args: str, timeout: float = 120.0) -> bytes:
    """Like :func:`cli` but returns raw stdout (for ``cat``)."""
    r = subprocess.run(
        hashmesh_argv(repo, *args), capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if r.returncode != 0:
        raise AssertionError(
            f"hashmesh {' '.join(args)} exited {r.returncode}: {r.stderr[-2000:]!r}"
        )
    return r.stdout


def ctl(repo: Path, op: str, timeout: float = 30.0, **args: Any) -> Any:
    """One control call to the node running for ``repo``."""
    return asyncio.run(call(repo, op, timeout=timeout, **args))


def wait_for(probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll ``probe`` until it returns a truthy value, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except Exception as exc:  # a node restarting answers with errors for a moment
            last_exc = exc
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for {what}"
            ) from last_exc
        time.sleep(interval)


def write_random(path: Path, size: int, seed: int) -> bytes:
    """A deterministic pseudo-random file of ``size`` bytes."""
    import random

    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return data


def put(net: Devnet, i: int, path: Path) -> str:
    """Store ``path`` through node ``i`` with the real CLI; the root id."""
    return cli(net.nodes[i].repo, "put", str(path), "-q").strip()


def block_ids(net: Devnet, i: int, root: str) -> list[str]:
    """Every block id of ``root`` as node ``i`` (which must hold the DAG) sees it."""
    return list(ctl(net.nodes[i].repo, "dag_blocks", id=root))


def holdings(net: Devnet, ids: Sequence[str]) -> dict[int, list[bool]]:
    """For each live node index, which of ``ids`` it stores."""
    return {n.index: list(ctl(n.repo, "has_blocks", ids=list(ids))) for n in net.nodes if n.alive}


def holder_counts(net: Devnet, ids: Sequence[str], exclude: Sequence[int] = ()) -> list[int]:
    """Live holders of each id, not counting the nodes in ``exclude``."""
    held = holdings(net, ids)
    return [sum(1 for i, h in held.items() if h[b] and i not in exclude) for b in range(len(ids))]


def terminate(node: DevNode, timeout: float = 40.0) -> int:
    """SIGTERM ``node`` and wait (bounded) for it to exit; its exit code."""
    assert node.proc is not None
    node.proc.send_signal(signal.SIGTERM)
    try:
        return node.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        node.proc.kill()
        node.proc.wait(timeout=10)
        raise AssertionError(f"node {node.index} ignored SIGTERM for {timeout:.0f} s") from None


def revive(net: Devnet, timeout: float = 40.0) -> None:
    """Restart every node that is not running (so a failed test leaves no hole)."""
    for n in net.nodes:
        if not n.alive:
            net.restart(n.index, timeout)


def write_config(repo: Path, text: str) -> None:
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "config.toml").write_text(text)


def log_tail(node: DevNode, lines: int = 40) -> str:
    try:
        return "\n".join((node.repo / "node.log").read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


__all__ = [
    "MiB",
    "block_ids",
    "cli",
    "cli_bytes",
    "ctl",
    "hashmesh_argv",
    "holder_counts",
    "holdings",
    "log_tail",
    "put",
    "revive",
    "terminate",
    "wait_for",
    "write_config",
    "write_random",
]
