"""A local network of real node processes on 127.0.0.1.

Used by ``hashmesh devnet``, ``hashmesh demo``, the integration tests and the
network benchmarks. Node ``i`` has its repository in ``<base>/node<i>`` and
listens on ``127.0.0.1:<port + i>``; every node bootstraps from node 0. Each
process logs to ``<base>/node<i>/node.log``. Waiting is always bounded. On Linux a
node also gets SIGTERM when the process that started it dies, even by SIGKILL or a
crash, so no node outlives its devnet.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hashmesh.client import call
from hashmesh.config import DhtConfig
from hashmesh.errors import HashmeshError, NetworkError
from hashmesh.ids import bucket_index

HOST = "127.0.0.1"
DHT_K = DhtConfig().k  # the nodes run the default DHT configuration
_PR_SET_PDEATHSIG = 1


def _libc_prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _libc_prctl()  # looked up here: the child runs only a foreign call before exec


def _die_with_parent() -> None:
    """In the child before exec: ask the kernel for SIGTERM when our parent dies."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port_base(count: int, start: int = 17400, attempts: int = 200) -> int:
    """A base port such that ``count`` consecutive ports are free on 127.0.0.1."""
    for base in range(start, start + attempts * (count + 1), count + 1):
        socks: list[socket.socket] = []
        try:
            for p in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind((HOST, p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise NetworkError(f"no {count} consecutive free ports found on {HOST}")


def node_command(
    repo: Path, listen: str, replication: int, bootstrap: str | None = None, *extra: str
) -> list[str]:
    """argv of a ``hashmesh node start`` process with this interpreter."""
    argv = [sys.executable, "-m", "hashmesh", "node", "start", "--repo", str(repo),
            "--listen", listen, "--replication", str(replication)]  # fmt: skip
    if bootstrap:
        argv += ["--bootstrap", bootstrap]
    return argv + list(extra)


def table_capacity(me: bytes, others: list[bytes], k: int) -> int:
    """How many of ``others`` a Kademlia table of ``me`` can hold: all but those past
    ``k`` in one bucket (in 30 random ids, over 20 share the far bucket of some node
    about once in 25 networks)."""
    per_bucket = Counter(bucket_index(me, o) for o in others if o != me)
    return sum(min(k, n) for n in per_bucket.values())


@dataclass
class DevNode:
    index: int
    repo: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Devnet:
    """``count`` node processes; use as a context manager or call start()/stop()."""

    base: Path
    count: int
    port: int = 0
    replication: int = 3
    extra_args: tuple[str, ...] = ()
    nodes: list[DevNode] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.base = Path(self.base)
        if not self.port:
            self.port = free_port_base(self.count)
        self.nodes = [DevNode(i, self.base / f"node{i}", self.port + i) for i in range(self.count)]

    def command(self, node: DevNode) -> list[str]:
        seed = self.nodes[0].address if node.index != 0 else None
        return node_command(node.repo, node.address, self.replication, seed, *self.extra_args)

    def launch(self, node: DevNode) -> None:
        node.repo.mkdir(parents=True, exist_ok=True)
        log = open(node.repo / "node.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            node.proc = subprocess.Popen(
                self.command(node),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent if _PRCTL is not None else None,
            )
        finally:
            log.close()

    def start(self, timeout: float = 30.0) -> Devnet:
        self.base.mkdir(parents=True, exist_ok=True)
        for node in self.nodes:
            self.launch(node)
        self.wait_connected(timeout)
        return self

    def status(self, node: DevNode, timeout: float = 5.0) -> dict[str, Any]:
        return asyncio.run(call(node.repo, "status", timeout=timeout))

    def wait_connected(self, timeout: float = 30.0, nodes: list[DevNode] | None = None) -> None:
        """Wait until each live node knows every other live node its routing table can
        hold (all of them, unless more than ``k`` fall in one of its buckets); bounded."""
        deadline = time.monotonic() + timeout
        live = [n for n in self.nodes if n.alive]
        targets = nodes or live
        ids: dict[int, bytes] = {}
        pending = list(targets)
        while pending:
            node = pending[0]
            if not node.alive:
                raise HashmeshError(f"node {node.index} exited; see {node.repo / 'node.log'}")
            try:
                if len(ids) < len(live):
                    for n in live:
                        if n.index not in ids:
                            ids[n.index] = bytes.fromhex(self.status(n)["node_id"])
                others = [i for x, i in ids.items() if x != node.index]
                if self.status(node)["peers"] >= table_capacity(ids[node.index], others, DHT_K):
                    pending.pop(0)
                    continue
            except (HashmeshError, OSError, KeyError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise NetworkError(
                    f"devnet: node {node.index} did not connect within {timeout:.0f} s "
                    f"(see {node.repo / 'node.log'})"
                )
            time.sleep(0.1)

    def kill(self, index: int) -> None:
        """SIGKILL node ``index`` (no goodbye, no hand-off)."""
        node = self.nodes[index]
        if node.proc is not None and node.alive:
            node.proc.send_signal(signal.SIGKILL)
            node.proc.wait(timeout=10)
        with contextlib.suppress(FileNotFoundError):
            (node.repo / "node.sock").unlink()

    def restart(self, index: int, timeout: float = 30.0) -> None:
        node = self.nodes[index]
        if node.alive:
            self.kill(index)
        self.launch(node)
        self.wait_connected(timeout, [node])

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM every node, then SIGKILL what has not exited by ``timeout``."""
        for node in self.nodes:
            if node.alive and node.proc is not None:
                node.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            if node.proc is None:
                continue
            try:
                node.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait(timeout=10)

    def __enter__(self) -> Devnet:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def default_base() -> Path:
    """``$HASHMESH_DEVNET_DIR``, else ``~/.hashmesh-devnet``."""
    env = os.environ.get("HASHMESH_DEVNET_DIR")
    return Path(env) if env else Path.home() / ".hashmesh-devnet"


__all__ = ["DevNode", "Devnet", "default_base", "free_port_base", "node_command"]
