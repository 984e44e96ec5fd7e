"""Directories: nested trees, empty directories and files, listing, export."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from hashmesh.errors import InvalidArgumentError, NotFoundError


def _tree(root):
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "a" / "one.txt").write_bytes(b"one" * 1000)
    (root / "a" / "b" / "two.bin").write_bytes(os.urandom(20_000))
    (root / "a" / "b" / "c" / "zero").write_bytes(b"")
    (root / "top.txt").write_text("top level")
    os.symlink(root / "top.txt", root / "link")  # symlinks are skipped


def _snapshot(root):
    out = {}
    for dirpath, dirs, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        out[rel] = ("dir", sorted(dirs))
        for f in files:
            with open(os.path.join(dirpath, f), "rb") as fh:
                out[os.path.join(rel, f)] = fh.read()
    return out


def test_dir_round_trip(env, tmp_path):
    src = tmp_path / "src"
    _tree(src)
    os.unlink(src / "link")
    expected = _snapshot(src)
    os.symlink(src / "top.txt", src / "link")
    info = env.run(env.store.put_dir(src, tags=["tree"]))
    assert info.kind == "dir" and info.name == "src" and info.content_type == "inode/directory"
    assert info.size == 3000 + 20_000 + 9
    entries = env.run(env.store.list_dir(info.id))
    assert [(e.name, e.kind) for e in entries] == [
        ("a", "dir"),
        ("empty", "dir"),
        ("top.txt", "file"),
    ]
    sub = env.run(env.store.list_dir(entries[0].id))
    assert [e.name for e in sub] == ["b", "one.txt"]
    assert env.run(env.store.read(sub[1].id)) == b"one" * 1000
    out = env.run(env.store.get_to_path(info.id, tmp_path / "out"))
    assert out == tmp_path / "out"
    assert _snapshot(out) == expected
    into = tmp_path / "into"
    into.mkdir()
    assert env.run(env.store.get_to_path(info.id, into)) == into / "src"
    with pytest.raises(InvalidArgumentError):
        env.run(env.store.get_to_path(info.id, into))  # into/src exists now
    with pytest.raises(InvalidArgumentError):
        env.run(env.store.read(info.id))
    assert env.run(env.store.verify(info.id)).ok


def test_empty_dir_and_empty_file(env, tmp_path):
    d = tmp_path / "nothing"
    d.mkdir()
    info = env.run(env.store.put_path(d))
    assert info.kind == "dir" and info.size == 0
    assert env.run(env.store.list_dir(info.id)) == []
    f = tmp_path / "empty.txt"
    f.write_bytes(b"")
    fi = env.run(env.store.put_path(f))
    assert fi.kind == "file" and fi.size == 0
    assert env.run(env.store.read(fi.id)) == b""
    dest = env.run(env.store.get_to_path(fi.id, tmp_path / "copy"))
    assert dest.read_bytes() == b""
    with pytest.raises(InvalidArgumentError):
        env.run(env.store.list_dir(fi.id))


def test_dir_blocks_survive_gc_and_file_export(env, tmp_path):
    src = tmp_path / "src"
    _tree(src)
    info = env.run(env.store.put_dir(src))
    env.run(env.store.gc())
    assert env.run(env.store.verify()).ok
    entries = env.run(env.store.list_dir(info.id))
    f = env.run(env.store.get_to_path(entries[2].id, tmp_path / "t.txt"))
    assert f.read_text() == "top level"
    env.run(env.store.remove(info.id))
    env.run(env.store.gc())
    assert env.run(env.store.stats()).blocks == 0
    with pytest.raises(NotFoundError):
        env.run(env.store.list_dir(info.id))


def test_export_removes_parts_left_by_a_dead_process(env, tmp_path):
    """A node killed mid-get leaves its part file; the next export to that path
    removes it (a part of a live process is kept)."""
    f = tmp_path / "f.txt"
    f.write_bytes(b"content" * 100)
    fi = env.run(env.store.put_path(f))
    gone = subprocess.Popen(["true"])  # once waited for, its id runs no process
    gone.wait()
    here = socket.gethostname()
    stale_file = tmp_path / f".copy.hashmesh-{here}-{gone.pid}.part"
    stale_file.write_bytes(b"half written")
    stale_dir = tmp_path / f".copy.hashmesh-{here}-{gone.pid + 1000000}.part"  # a tree's
    (stale_dir / "sub").mkdir(parents=True)
    live = tmp_path / f".copy.hashmesh-{here}-1.part"  # process 1 always runs
    live.write_bytes(b"someone else's")
    other = tmp_path / f".other.hashmesh-{here}-{gone.pid}.part"  # for another path
    other.write_bytes(b"not ours")
    elsewhere = tmp_path / f".copy.hashmesh-{here}x-{gone.pid}.part"  # another host's
    elsewhere.write_bytes(b"theirs")
    out = env.run(env.store.get_to_path(fi.id, tmp_path / "copy"))
    assert out.read_bytes() == b"content" * 100
    assert not stale_file.exists() and not stale_dir.exists()
    assert live.exists() and other.exists() and elsewhere.exists()


def test_export_goes_on_when_a_stale_part_cannot_be_removed(env, tmp_path, monkeypatch):
    f = tmp_path / "f.txt"
    f.write_bytes(b"data" * 10)
    fi = env.run(env.store.put_path(f))
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = tmp_path / f".copy.hashmesh-{socket.gethostname()}-{gone.pid}.part"
    stale.write_bytes(b"half")
    real_unlink = Path.unlink

    def refuse(self, missing_ok=False):
        if self == stale:
            raise PermissionError(13, "Permission denied", str(self))
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", refuse)
    out = env.run(env.store.get_to_path(fi.id, tmp_path / "copy"))
    assert out.read_bytes() == b"data" * 10 and stale.exists()
