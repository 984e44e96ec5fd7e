"""``hashmesh demo`` runs end to end on a temporary repository."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.cli.cli_helpers import ok, run_cli


def test_demo_runs_and_leaves_its_data(tmp_path: Path) -> None:
    repo = tmp_path / "demo-repo"
    proc = ok(run_cli(["demo", "--local", "--repo", repo], home=tmp_path / "unused"))
    out = proc.stdout
    print(out)
    assert "stored big.bin (64.0 MiB)" in out
    assert "bytes identical" in out and "all intact" in out
    assert "dedup saved" in out and "compression saved" in out
    assert len(out.splitlines()) <= 12  # a few readable lines
    names = {i["name"] for i in json.loads(ok(run_cli(["ls", "--json"], home=repo)).stdout)}
    assert names == {"big.bin", "big-edited.bin", "notes"}
    stats = json.loads(ok(run_cli(["stats", "--json"], home=repo)).stdout)
    assert stats["dedup_saved"] > 60 * 1024 * 1024  # the near-copy shares almost every chunk
    assert stats["compression_saved"] > 10 * 1024 * 1024  # half of big.bin is text
    assert json.loads(ok(run_cli(["verify", "--json"], home=repo)).stdout)["ok"] is True
    assert not (tmp_path / "unused").exists()


@pytest.mark.slow
def test_full_demo_runs_a_network_that_heals(tmp_path: Path) -> None:
    repo = tmp_path / "demo-repo"
    proc = ok(run_cli(["demo", "--repo", repo], home=tmp_path / "unused"))
    out = proc.stdout
    print(out)
    assert "started 5 node processes" in out
    assert "26 of 26 blocks on their 3 closest nodes" in out
    assert "killed node" in out and "every byte identical" in out
    assert "every block is on its 3 closest live nodes again" in out
    assert "all nodes stopped" in out
    assert len(out.splitlines()) <= 20
    leftover = list((repo / "demo-network" / "nodes").glob("node*/node.sock"))
    assert leftover == []  # every node stopped and removed its control socket
