"""The real ``hashmesh`` command on a real repository: round trips, listings, options."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.cli.cli_helpers import Runner, make_file, ok, run_cli

from hashmesh.ids import ContentId


def put_id(hm: Runner, *args: str | Path) -> str:
    out = ok(hm("put", "--quiet", *args)).stdout.split()
    assert len(out) == 1, out
    return out[0]


def test_init_uses_hashmesh_home_and_repo_option(tmp_path: Path) -> None:
    env_home, opt_home = tmp_path / "env", tmp_path / "opt"
    first = ok(run_cli(["init"], home=env_home))
    assert str(env_home) in first.stdout and env_home.is_dir()
    again = ok(run_cli(["init"], home=env_home))
    assert "already" in again.stdout
    ok(run_cli(["--repo", opt_home, "init"], home=env_home))
    assert opt_home.is_dir()
    # --repo after the command works too, and wins over $HASHMESH_HOME
    f = tmp_path / "a.txt"
    f.write_text("hello")
    ok(run_cli(["put", f, "--repo", opt_home], home=env_home))
    listed = json.loads(ok(run_cli(["ls", "--json", "--repo", opt_home], home=env_home)).stdout)
    assert [i["name"] for i in listed] == ["a.txt"]
    assert json.loads(ok(run_cli(["ls", "--json"], home=env_home)).stdout) == []


def test_put_get_cat_round_trip(hm: Runner, tmp_path: Path) -> None:
    data = make_file(tmp_path / "src" / "blob.bin", 700_000, seed=1)
    proc = ok(hm("put", tmp_path / "src" / "blob.bin", "--tag", "x", "--description", "a blob"))
    cid, name, size = proc.stdout.split(None, 2)
    ContentId.parse(cid)
    assert name == "blob.bin" and size.strip() == "683.6 KiB"

    out = tmp_path / "out.bin"
    ok(hm("get", cid, "-o", out))
    assert out.read_bytes() == data
    assert ok(hm("cat", cid, text=False)).stdout == data

    # default output name: the stored name in the current directory
    ok(hm("get", cid))
    assert (tmp_path / "blob.bin").read_bytes() == data

    # refuse to overwrite, unless --force
    out.write_bytes(b"keep me")
    refused = hm("get", cid, "-o", out)
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert out.read_bytes() == b"keep me"
    ok(hm("get", cid, "-o", out, "--force"))
    assert out.read_bytes() == data


def test_put_same_content_twice_gives_same_id(hm: Runner, tmp_path: Path) -> None:
    make_file(tmp_path / "a.bin", 5000, seed=2)
    make_file(tmp_path / "b.bin", 5000, seed=2)
    assert put_id(hm, tmp_path / "a.bin") == put_id(hm, tmp_path / "b.bin")


def test_directory_round_trip(hm: Runner, tmp_path: Path) -> None:
    src = tmp_path / "tree"
    files = {
        "top.txt": b"top level\n",
        "empty.txt": b"",
        "sub/one.bin": make_file(src / "sub" / "one.bin", 300_000, seed=3),
        "sub/deeper/two.txt": b"two\n" * 1000,
    }
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    cid = put_id(hm, src)

    doc = json.loads(ok(hm("stat", cid, "--json")).stdout)
    assert doc["kind"] == "dir" and doc["name"] == "tree"
    assert doc["size"] == sum(len(d) for d in files.values())
    assert {e["name"] for e in doc["entries"]} == {"top.txt", "empty.txt", "sub"}

    ok(hm("get", cid, "-o", tmp_path / "copy"))
    got = {
        p.relative_to(tmp_path / "copy").as_posix(): p.read_bytes()
        for p in (tmp_path / "copy").rglob("*")
        if p.is_file()
    }
    assert got == files
    # -o an existing directory writes into it, under the stored name
    ok(hm("get", cid, "-o", tmp_path / "copy"))
    assert (tmp_path / "copy" / "tree" / "sub" / "one.bin").read_bytes() == files["sub/one.bin"]
    # the default output (./tree) exists: refused, then replaced with --force
    assert hm("get", cid).returncode == 2
    (tmp_path / "tree" / "stray.txt").write_text("stray")
    ok(hm("get", cid, "--force"))
    assert not (tmp_path / "tree" / "stray.txt").exists()
    assert (tmp_path / "tree" / "sub" / "one.bin").read_bytes() == files["sub/one.bin"]


def test_put_quiet_prints_only_ids(hm: Runner, tmp_path: Path) -> None:
    paths = [tmp_path / f"f{i}.bin" for i in range(3)]
    for i, p in enumerate(paths):
        make_file(p, 1000 + i, seed=10 + i)
    proc = ok(hm("put", "-q", *paths))
    lines = proc.stdout.splitlines()
    assert len(lines) == 3
    for line in lines:
        assert line == line.strip() and str(ContentId.parse(line)) == line
    assert proc.stderr == ""


def test_json_outputs_parse(hm: Runner, tmp_path: Path) -> None:
    make_file(tmp_path / "x.bin", 2000, seed=4)
    docs = json.loads(ok(hm("put", "--json", tmp_path / "x.bin", "-t", "t1", "-t", "t2")).stdout)
    assert isinstance(docs, list) and len(docs) == 1
    info = docs[0]
    assert info["name"] == "x.bin" and info["size"] == 2000 and info["tags"] == ["t1", "t2"]
    cid = info["id"]
    assert [i["id"] for i in json.loads(ok(hm("ls", "--json")).stdout)] == [cid]
    assert json.loads(ok(hm("stat", cid, "--json")).stdout)["id"] == cid
    assert json.loads(ok(hm("search", "x", "--json")).stdout)[0]["id"] == cid
    assert json.loads(ok(hm("verify", "--json")).stdout)["ok"] is True
    assert json.loads(ok(hm("verify", cid, "--json")).stdout)["ok"] is True
    stats = json.loads(ok(hm("stats", "--json")).stdout)
    assert stats["files"] == 1 and stats["logical_bytes"] == 2000
    gc = json.loads(ok(hm("gc", "--json")).stdout)
    assert set(gc) >= {"removed_blocks", "freed_bytes", "expired_files"}


def test_human_listings(hm: Runner, tmp_path: Path) -> None:
    make_file(tmp_path / "big.bin", 3 * 1024 * 1024, seed=5)
    cid = put_id(hm, tmp_path / "big.bin")
    listing = ok(hm("ls")).stdout
    assert cid in listing and "big.bin" in listing and "3.0 MiB" in listing
    stat = ok(hm("stat", cid)).stdout
    assert cid in stat and "3.0 MiB" in stat
    assert "logical" in ok(hm("stats")).stdout
    assert ok(hm("verify")).stdout.startswith("ok:")


def test_search_filters(hm: Runner, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("meeting notes\n" * 500)
    make_file(tmp_path / "photo.bin", 40_000, seed=6)
    make_file(tmp_path / "tiny.bin", 100, seed=7)
    a = put_id(hm, tmp_path / "notes.txt", "--tag", "work", "--description", "weekly meeting")
    b = put_id(hm, tmp_path / "photo.bin", "--tag", "holiday", "--description", "beach photo")
    c = put_id(hm, tmp_path / "tiny.bin", "--tag", "work")

    def ids(*args: str) -> list[str]:
        return [i["id"] for i in json.loads(ok(hm("search", *args, "--json")).stdout)]

    assert ids("beach") == [b]
    assert ids("meeting") == [a]
    assert set(ids("--tag", "work")) == {a, c}
    assert set(ids("--min-size", "1KiB")) == {a, b}
    assert ids("--max-size", "1000") == [c]
    assert ids("--type", "text/") == [a]
    assert ids("--sort", "size") == [b, a, c]  # largest first
    assert ids("--sort", "name") == [a, b, c]
    assert len(ids("--limit", "1")) == 1
    assert ids("nothing-like-this") == []


def test_pin_unpin_gc(hm: Runner, tmp_path: Path) -> None:
    make_file(tmp_path / "a.bin", 20_000, seed=8)
    make_file(tmp_path / "b.bin", 20_000, seed=9)
    make_file(tmp_path / "c.bin", 20_000, seed=10)
    a = put_id(hm, tmp_path / "a.bin", "--ttl", "1s")
    b = put_id(hm, tmp_path / "b.bin", "--ttl", "1s", "--pin")
    c = put_id(hm, tmp_path / "c.bin")
    assert json.loads(ok(hm("stat", b, "--json")).stdout)["pinned"] is True
    assert json.loads(ok(hm("stat", a, "--json")).stdout)["expires"] is not None

    time.sleep(1.3)
    gc = json.loads(ok(hm("gc", "--json")).stdout)
    assert a in gc["expired_files"] and b not in gc["expired_files"]
    assert gc["removed_blocks"] >= 1 and gc["freed_bytes"] > 0
    assert hm("stat", a).returncode == 3
    ok(hm("stat", b))  # pinned: survives its expiry

    assert ok(hm("unpin", b)).stdout.strip() == f"unpinned {b}"
    assert json.loads(ok(hm("stat", b, "--json")).stdout)["pinned"] is False
    gc = json.loads(ok(hm("gc", "--json")).stdout)
    assert b in gc["expired_files"]

    ok(hm("pin", c))
    assert json.loads(ok(hm("stat", c, "--json")).stdout)["pinned"] is True
    assert ok(hm("rm", c)).stdout.strip() == f"removed {c}"
    assert c not in ok(hm("ls")).stdout  # gone from the index; blocks wait for gc
    gc = json.loads(ok(hm("gc", "--json")).stdout)
    assert gc["freed_bytes"] > 0
    assert hm("stat", c).returncode == 3
    assert hm("rm", c).returncode == 3
    stats = json.loads(ok(hm("stats", "--json")).stdout)
    assert stats["files"] == 0 and stats["blocks"] == 0


def test_python_dash_m_entry_point(home: Path) -> None:
    proc = ok(run_cli(["--version"], home=home, module=True))
    assert proc.stdout.startswith("hashmesh ")
    assert "Usage" in ok(run_cli(["--help"], home=home, module=True)).stdout
