"""Helpers for CLI tests: every test runs the real entry point in a subprocess."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

TIMEOUT = 120  # seconds per command: a hung CLI fails the test instead of the suite


def hashmesh_command() -> list[str]:
    """The installed ``hashmesh`` script next to the interpreter, else ``python -m hashmesh``."""
    script = Path(sys.executable).parent / "hashmesh"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "hashmesh"]


def cli_env(home: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HASHMESH_")}
    if home is not None:
        env["HASHMESH_HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    return env


Runner = Callable[..., subprocess.CompletedProcess]


def run_cli(
    args: Sequence[str | os.PathLike[str]],
    *,
    home: Path | None,
    cwd: Path | None = None,
    text: bool = True,
    module: bool = False,
) -> subprocess.CompletedProcess:
    """Run ``hashmesh ARGS`` with ``$HASHMESH_HOME=home``; never raises on exit codes."""
    cmd = [sys.executable, "-m", "hashmesh"] if module else hashmesh_command()
    return subprocess.run(
        [*cmd, *map(str, args)],
        env=cli_env(home),
        cwd=cwd,
        capture_output=True,
        text=text,
        timeout=TIMEOUT,
        check=False,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    """Exit ``code``, exactly one ``error: ...`` line on stderr, no traceback."""
    stderr = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode()
    assert proc.returncode == code, (proc.returncode, stderr)
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in (proc.stderr if isinstance(proc.stderr, str) else "")
    return proc


def make_file(path: Path, size: int, seed: int) -> bytes:
    """A file of ``size`` seeded random bytes."""
    data = random.Random(seed).randbytes(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data
