"""Node commands through the real ``hashmesh`` entry point: status, peers, dht, devnet."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from tests.cli.cli_helpers import assert_one_line_error, cli_env, hashmesh_command, ok, run_cli

from hashmesh.devnet import Devnet

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    with Devnet(tmp_path_factory.mktemp("clinet"), 3, replication=2) as devnet:
        yield devnet


def j(args: list, repo: Path):
    return json.loads(ok(run_cli([*args, "--json", "--repo", repo], home=None)).stdout)


def test_status_peers_and_table(net: Devnet) -> None:
    repo = net.nodes[0].repo
    status = j(["status"], repo)
    assert status["peers"] == 2 and status["replication"] == 2
    assert len(status["node_id"]) == 64
    peers = j(["peers"], repo)
    assert {p["address"] for p in peers} == {n.address for n in net.nodes[1:]}
    table = j(["dht", "table"], repo)
    assert {r["node_id"] for r in table} == {p["node_id"] for p in peers}
    assert all(0 <= r["bucket"] <= 255 for r in table)
    human = ok(run_cli(["status", "--repo", repo], home=None)).stdout
    assert "peers" in human and "2 known" in human


def test_put_through_a_node_and_dht_lookups(net: Devnet, tmp_path: Path) -> None:
    src = tmp_path / "x.bin"
    src.write_bytes(os.urandom(100_000))
    cid = ok(run_cli(["put", src, "-q", "--repo", net.nodes[0].repo], home=None)).stdout.strip()
    out = tmp_path / "y.bin"
    ok(run_cli(["get", cid, "-o", out, "--repo", net.nodes[2].repo], home=None))
    assert out.read_bytes() == src.read_bytes()
    found = j(["dht", "lookup", cid], net.nodes[1].repo)
    assert found["hops"] >= 1 and len(found["closest"]) == 2
    closest = j(["dht", "closest", cid, "--count", "1"], net.nodes[1].repo)
    assert len(closest) == 1
    bad = run_cli(["dht", "lookup", "not-a-key", "--repo", net.nodes[1].repo], home=None)
    assert_one_line_error(bad, 2, "malformed key")


def test_commands_without_a_running_node(tmp_path: Path) -> None:
    ok(run_cli(["init", "--repo", tmp_path], home=None))
    for args in (["status"], ["peers"], ["dht", "table"]):
        assert_one_line_error(run_cli([*args, "--repo", tmp_path], home=None), 7, "no node")


def test_devnet_command_starts_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*hashmesh_command(), "devnet", "--nodes", "2", "--dir", str(tmp_path)],
        env=cli_env(None),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "node1" / "node.sock").exists():
            assert time.monotonic() < deadline and proc.poll() is None, "devnet did not start"
            time.sleep(0.2)
        time.sleep(1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "2 nodes connected" in out and "stopping all nodes" in out
    assert not list(tmp_path.glob("node*/node.sock"))  # every node stopped cleanly


def test_a_second_node_on_the_same_repository_is_refused(net: Devnet) -> None:
    node = net.nodes[0]
    proc = run_cli(["node", "start", "--repo", node.repo, "--listen", "127.0.0.1:0"], home=None)
    assert_one_line_error(proc, 2, "already running")
    assert j(["status"], node.repo)["peers"] == 2  # the running node is unharmed


def test_listen_address_in_use_is_one_line(net: Devnet, tmp_path: Path) -> None:
    proc = run_cli(
        ["node", "start", "--repo", tmp_path / "r", "--listen", net.nodes[1].address], home=None
    )
    assert_one_line_error(proc, 2, "cannot listen")
