"""Every failure is one line on stderr and a documented exit code, never a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from tests.cli.cli_helpers import (
    Runner,
    assert_one_line_error,
    cli_env,
    hashmesh_command,
    make_file,
    ok,
    run_cli,
)

from hashmesh.cli.app import EXIT_CODES, error_message, exit_code
from hashmesh.errors import (
    CapacityError,
    DecodeError,
    HashmeshError,
    IntegrityError,
    InvalidArgumentError,
    InvalidIdError,
    NotFoundError,
    NotInitialisedError,
    PeerUnavailableError,
    StorageError,
    UsageError,
)
from hashmesh.ids import CODEC_MANIFEST, ContentId

UNKNOWN = str(ContentId.of(b"never stored", CODEC_MANIFEST))


def test_error_table() -> None:
    cases = {
        UsageError("x"): 2,
        InvalidIdError("x"): 2,
        InvalidArgumentError("x"): 2,
        NotInitialisedError("x"): 2,
        NotFoundError("x"): 3,
        CapacityError("x"): 4,
        IntegrityError("x", block_id="bafk"): 5,
        StorageError("x"): 6,
        PeerUnavailableError("x"): 7,
        DecodeError("x"): 1,
        HashmeshError("x"): 1,
        PermissionError(13, "Permission denied", "/x"): 6,
        FileNotFoundError(2, "No such file", "/x"): 6,
        KeyboardInterrupt(): 130,
        ValueError("bug"): 1,
    }
    for exc, code in cases.items():
        assert exit_code(exc) == code, exc
        assert "\n" not in error_message(exc)
    assert error_message(IntegrityError("bad", block_id="bafkXYZ")) == "bad (block bafkXYZ)"
    assert error_message(PermissionError(13, "Permission denied", "/x")) == (
        "Permission denied: /x"
    )
    assert error_message(ValueError("a\nb")).startswith("internal error: ValueError: a b")
    # subclasses are listed before their bases, so every row is reachable
    for i, (cls, _) in enumerate(EXIT_CODES):
        for later, _ in EXIT_CODES[i + 1 :]:
            assert not issubclass(later, cls), (later, cls)


def test_repository_not_initialised(tmp_path: Path) -> None:
    repo = tmp_path / "nothing-here"
    f = tmp_path / "a.txt"
    f.write_text("a")
    msg = f"error: no hashmesh repository at {repo} (run `hashmesh init`)"
    for args in (["ls"], ["put", f], ["stat", UNKNOWN], ["stats"], ["verify"], ["gc"]):
        proc = run_cli(args, home=repo)
        assert assert_one_line_error(proc, 2) == msg, args
    assert not repo.exists()


def test_unknown_id(hm: Runner) -> None:
    for cmd in ("get", "cat", "stat", "rm", "pin", "unpin", "verify"):
        assert_one_line_error(hm(cmd, UNKNOWN), 3)


def test_malformed_id(hm: Runner) -> None:
    for cmd in ("get", "cat", "stat", "rm", "pin", "unpin", "verify"):
        assert_one_line_error(hm(cmd, "not-an-id"), 2, "content id")
    assert_one_line_error(hm("cat", "bafkr4i"), 2)


def test_missing_path(hm: Runner, tmp_path: Path) -> None:
    assert_one_line_error(hm("put", tmp_path / "no-such-file"), 3, "no-such-file")


def test_bad_option_values(hm: Runner, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    assert_one_line_error(hm("put", tmp_path / "a.txt", "--ttl", "banana"), 2, "banana")
    assert_one_line_error(hm("put", tmp_path / "a.txt", "--ttl", "0"), 2)
    assert_one_line_error(hm("search", "--min-size", "lots"), 2, "lots")
    assert_one_line_error(hm("search", "--sort", "colour"), 2, "colour")
    assert_one_line_error(hm("put", tmp_path / "a.txt", tmp_path / "a.txt", "--name", "n"), 2)
    assert json.loads(ok(hm("ls", "--json")).stdout) == []  # nothing was stored


def test_typer_usage_errors_exit_2(hm: Runner) -> None:
    for args in (["put"], ["no-such-command"], ["ls", "--no-such-option"]):
        proc = hm(*args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, args


def test_output_path_not_writable(hm: Runner, tmp_path: Path) -> None:
    """The parent of the output path is a regular file: fails for root too."""
    make_file(tmp_path / "a.bin", 3000, seed=20)
    cid = ok(hm("put", "-q", tmp_path / "a.bin")).stdout.strip()
    blocker = tmp_path / "blocker"
    blocker.write_text("I am a file")
    # the store calls a missing output directory a usage error
    assert_one_line_error(hm("get", cid, "-o", blocker / "out.bin"), 2, "blocker")
    # /proc refuses new files even for root: the write itself fails
    assert_one_line_error(hm("get", cid, "-o", "/proc/hashmesh-out.bin"), 6, "/proc")


def test_repository_not_writable(tmp_path: Path) -> None:
    """``init`` where the repository's parent is a regular file."""
    blocker = tmp_path / "blocker"
    blocker.write_text("I am a file")
    proc = run_cli(["init"], home=blocker / "repo")
    assert proc.returncode in (6, 2) and "Traceback" not in proc.stderr
    assert_one_line_error(proc, proc.returncode)


def test_capacity_exceeded(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    ok(run_cli(["init"], home=repo))
    (repo / "config.toml").write_text("[store]\ncapacity = 10000\n")
    make_file(tmp_path / "big.bin", 50_000, seed=21)
    assert_one_line_error(run_cli(["put", tmp_path / "big.bin"], home=repo), 4)
    assert json.loads(ok(run_cli(["ls", "--json"], home=repo)).stdout) == []
    make_file(tmp_path / "small.bin", 1000, seed=22)
    ok(run_cli(["put", tmp_path / "small.bin"], home=repo))


def _block_files(repo: Path) -> list[Path]:
    return sorted(p for p in (repo / "blocks").rglob("*") if p.is_file())


def test_corrupted_block(hm: Runner, home: Path, tmp_path: Path) -> None:
    make_file(tmp_path / "a.bin", 200_000, seed=23)
    cid = ok(hm("put", "-q", tmp_path / "a.bin")).stdout.strip()
    assert json.loads(ok(hm("verify", "--json")).stdout)["ok"] is True
    blocks = _block_files(home)
    assert blocks, "no block files under <repo>/blocks"
    for path in blocks:  # flip one byte in every stored block
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0x40
        path.write_bytes(bytes(raw))

    assert_one_line_error(hm("cat", cid), 5)
    assert_one_line_error(hm("get", cid, "-o", tmp_path / "out.bin"), 5)
    assert not (tmp_path / "out.bin").exists()

    proc = hm("verify")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    bad_lines = [line for line in proc.stdout.splitlines() if line.startswith("bad block")]
    assert len(bad_lines) == len(blocks), proc.stdout
    report = json.loads(hm("verify", "--json").stdout)
    assert report["ok"] is False and len(report["bad_blocks"]) == len(blocks)
    assert cid in report["affected_files"]


def test_broken_pipe_is_quiet(hm: Runner, home: Path, tmp_path: Path) -> None:
    make_file(tmp_path / "a.bin", 3 * 1024 * 1024, seed=24)
    cid = ok(hm("put", "-q", tmp_path / "a.bin")).stdout.strip()
    cmd = " ".join([*hashmesh_command(), "cat", cid])
    proc = subprocess.run(
        f"{cmd} | head -c 10 >/dev/null; exit ${{PIPESTATUS[0]}}",
        shell=True,
        executable="/bin/bash",
        env=cli_env((hm.__closure__ and None) or None) | {"HASHMESH_HOME": str(tmp_path / "repo")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr


def test_ctrl_c_is_one_line_and_130(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*hashmesh_command(), "--repo", tmp_path / "repo", "demo"],
        env=cli_env(None),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a shell's background job inherits SIGINT ignored; the child needs the default
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the demo has started: handlers are in place
        assert first.startswith("hashmesh demo"), first
        time.sleep(0.3)  # well inside the work, not in the first bytecodes of the event loop
        os.kill(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    if proc.returncode == 0:
        pytest.skip("the demo finished before the interrupt arrived")
    assert proc.returncode == 130, stderr
    assert stderr.strip() == "error: interrupted", stderr
