"""Six real nodes on six hosts (network namespaces): a partition, writes on both sides, healing.

Each host runs ``hashmesh node start`` listening on its own address
(10.88.0.x:7400) and bootstrapping from host 0. The test process stays in the
root namespace and talks to each node through the control socket in its
repository (a unix socket on the shared filesystem), and reads with the real
CLI the same way.

Replication 2 with write quorum 2: each half of the cut has three nodes, so a
write made inside a half can still be acknowledged by two live nodes there
(the writer and one more) once the writer has noticed that the far half is
gone; that keeps every acknowledged write on two machines, where quorum 1
would let a write survive on the writer alone. After healing, the nodes must
re-learn the far half on their own (health checks keep probing peers that
went down, even those the DHT evicted from its routing table during the cut) and repair moves each block to its closest nodes in the whole
network, so every file is readable from every host.

Settings in each repository's ``config.toml``: health checks every second. All
six hosts share one private /24 (a LAN); the DHT exempts private networks from
its per-/24 diversity limits by default, so no setting is needed for that.
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.netutil import cli_bytes, ctl, wait_for
from tests.netns.harness import Network, run

from hashmesh.devnet import node_command

HOSTS = 6
SPLIT = HOSTS // 2
PORT = 7400
CONFIG = """\
[node]
health_interval = 1.0
"""


class Cluster:
    """One node process per namespace host; repos under ``base``."""

    def __init__(self, net: Network, base: Path) -> None:
        self.net = net
        self.repos = [base / f"h{i}" for i in range(net.hosts)]
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * net.hosts

    def start(self, i: int) -> None:
        repo = self.repos[i]
        repo.mkdir(parents=True, exist_ok=True)
        (repo / "config.toml").write_text(CONFIG)
        seed = f"{self.net.address(0)}:{PORT}" if i else None
        listen = f"{self.net.address(i)}:{PORT}"
        argv = [*self.net.prefix(i), *node_command(repo, listen, 2, seed, "--write-quorum", "2")]
        with open(repo / "node.log", "ab") as log:
            self.procs[i] = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def status(self, i: int) -> dict:
        return ctl(self.repos[i], "status", timeout=10)

    def wait_all_live(self, hosts: range, timeout: float, what: str) -> None:
        """Each node in ``hosts`` sees every other node of ``hosts`` as live (bounded)."""
        want = len(hosts) - 1
        for i in hosts:
            proc = self.procs[i]
            assert proc is not None and proc.poll() is None, self.log(i)
            wait_for(
                lambda i=i: self.status(i)["live_peers"] >= want,
                timeout,
                f"{what}: host {i} to see {want} live peers\n{self.log(i)}",
                interval=0.25,
            )

    def log(self, i: int) -> str:
        try:
            text = (self.repos[i] / "node.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-15:])

    def stop(self) -> None:
        for p in self.procs:
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for p in self.procs:
            if p is None:
                continue
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with Network(hosts=HOSTS, split_at=SPLIT) as net:
        c = Cluster(net, tmp_path)
        try:
            for i in range(HOSTS):
                c.start(i)
            yield c
        finally:
            c.stop()


def put(c: Cluster, i: int, path: Path) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "hashmesh", "--repo", str(c.repos[i]), "put", str(path), "-q"],
        capture_output=True,
        timeout=60,
    )
    assert r.returncode == 0, f"put on host {i}: {r.stderr.decode(errors='replace')}"
    return r.stdout.decode().strip()


def test_writes_on_both_sides_of_a_partition_are_readable_everywhere_after_healing(
    cluster: Cluster, tmp_path: Path
) -> None:
    c = cluster
    if shutil.which("ss") is None:
        pytest.skip("iproute2's 'ss' is needed to cut TCP connections across the partition")
    everyone = range(HOSTS)
    c.wait_all_live(everyone, 30, "start-up")

    c.net.cut()
    t0 = time.monotonic()
    for i in everyone:  # every node notices that the far half is gone
        wait_for(
            lambda i=i: c.status(i)["live_peers"] == SPLIT - 1,
            30,
            f"host {i} to mark the far half down\n{c.log(i)}",
            interval=0.25,
        )
    print(f"\npartition noticed by all nodes in {time.monotonic() - t0:.1f} s")
    # DHT lookups during the cut fail on the far half, so the routing tables evict it:
    # after healing, the nodes must find each other again without those entries
    rng = random.Random(5)
    for _ in range(4):
        for i in everyone:
            ctl(c.repos[i], "dht_lookup", key=rng.randbytes(32).hex(), timeout=60)
    for i in everyone:
        wait_for(
            lambda i=i: c.status(i)["peers"] == SPLIT - 1,
            20,
            f"host {i}'s routing table to drop the far half",
        )
    # a long cut outlives TCP connections (idle timeouts, NAT and keepalive expiry): model
    # that without waiting minutes by destroying every socket to the far half, so nothing
    # sent before the cut can reintroduce the halves to each other when it heals
    for i in everyone:
        for j in everyone:
            if (i < SPLIT) != (j < SPLIT):
                run(*c.net.prefix(i), "ss", "-K", "dst", c.net.address(j), check=False)

    files: dict[str, bytes] = {}
    for writer, seed in ((1, 11), (SPLIT + 1, 12)):
        data = random.Random(seed).randbytes(3 * (1 << 20) + seed)
        src = tmp_path / f"side{writer}.bin"
        src.write_bytes(data)
        files[put(c, writer, src)] = data
    # the cut holds: the far half cannot read what was just written
    far_root = next(iter(files))
    r = subprocess.run(
        [sys.executable, "-m", "hashmesh", "--repo", str(c.repos[SPLIT]), "cat", far_root],
        capture_output=True,
        timeout=90,
    )
    assert r.returncode != 0 and b"Traceback" not in r.stderr

    c.net.heal()
    t0 = time.monotonic()
    c.wait_all_live(everyone, 45, "heal")
    print(f"all {HOSTS} nodes see each other again {time.monotonic() - t0:.1f} s after healing")

    def all_readable() -> bool:
        return all(
            cli_bytes(c.repos[i], "cat", root, timeout=60) == data
            for root, data in files.items()
            for i in everyone
        )

    wait_for(all_readable, 45, "every file to be readable from every host", interval=1.0)
    print(f"every file readable from every host {time.monotonic() - t0:.1f} s after healing")
