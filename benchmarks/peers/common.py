"""Shared helpers for the peer benchmarks (Tahoe-LAFS, the PyPI ``kademlia`` library).

Standard library only: this module is imported both by hashmesh's own environment and by
the interpreters of the dedicated peer venvs. It knows where the venvs live, how to create
one, how to pick loopback ports, stop a process we started, take medians and percentiles,
and print a small table.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import venv
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

DEFAULT_PEERS_DIR = "/tmp/hashmesh-peers"
LOOPBACK = "127.0.0.1"


class PeerBenchError(RuntimeError):
    """A peer benchmark could not be set up or run (install, start-up, timeout)."""


def peers_dir() -> Path:
    """Return the directory holding the peer venvs (``$HASHMESH_PEERS_DIR``)."""
    return Path(os.environ.get("HASHMESH_PEERS_DIR", DEFAULT_PEERS_DIR))


def ensure_venv(
    name: str, packages: Sequence[str], probes: Sequence[str], timeout_s: float = 900.0
) -> Path:
    """Create ``peers_dir()/name`` with *packages* installed unless it is already complete.

    *probes* are glob patterns relative to the venv (e.g. ``bin/tahoe``); the venv counts as
    complete when each matches a file. Returns the venv directory. Raises PeerBenchError if
    pip fails.
    """
    root = peers_dir() / name

    def complete() -> bool:
        return all(any(root.glob(p)) for p in probes)

    if complete():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    print(f"[peers] creating venv {root} and installing {' '.join(packages)}", file=sys.stderr)
    t0 = time.monotonic()
    # Same as `python3 -m venv`: based on the interpreter's base install, not on its venv.
    venv.EnvBuilder(with_pip=True, clear=True).create(root)
    cmd = [str(root / "bin" / "python"), "-m", "pip", "install", "-q", *packages]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise PeerBenchError(f"pip install {packages} timed out after {timeout_s:.0f} s") from exc
    if proc.returncode != 0 or not complete():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise PeerBenchError(f"pip install {packages} failed: " + " | ".join(tail))
    print(f"[peers] venv {name} ready in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return root


def pip_versions(venv_dir: Path, names: Iterable[str]) -> dict[str, str]:
    """Return ``{distribution: version}`` for *names* as installed in *venv_dir*."""
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: out[n] = 'missing'\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run(
        [str(venv_dir / "bin" / "python"), "-c", code, *names],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    try:
        return dict(json.loads(proc.stdout))
    except ValueError:
        return {n: "unknown" for n in names}


def free_tcp_ports(count: int) -> list[int]:
    """Return *count* distinct TCP ports that were free on 127.0.0.1 a moment ago.

    All sockets are held open together so the kernel hands out distinct ports; a small
    race remains between closing them and the peer binding them.
    """
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOOPBACK, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def stop_process(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> str:
    """Stop a process we started: SIGTERM, wait up to *grace_s*, then SIGKILL.

    Only the given PID is signalled. Returns how it ended: "exited", "SIGTERM" or "SIGKILL".
    """
    if proc.poll() is not None:
        return "exited"
    try:
        proc.send_signal(signal.SIGTERM)
    except ProcessLookupError:
        return "exited"
    try:
        proc.wait(timeout=grace_s)
        return "SIGTERM"
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace_s)
        return "SIGKILL"


def listening_addresses(pid: int) -> list[tuple[str, int]]:
    """Return the (ip, port) TCP listeners owned by *pid*, read from /proc (Linux only)."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return []
    found: list[tuple[str, int]] = []
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) < 10 or cols[3] != "0A" or cols[9] not in inodes:  # 0A = LISTEN
                continue
            hex_ip, hex_port = cols[1].split(":")
            found.append((_proc_ip(hex_ip, v6), int(hex_port, 16)))
    return found


def _proc_ip(hex_ip: str, v6: bool) -> str:
    """Decode an address column of /proc/net/tcp{,6} (little-endian 32-bit words)."""
    raw = bytes.fromhex(hex_ip)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    family = socket.AF_INET6 if v6 else socket.AF_INET
    return socket.inet_ntop(family, words)


def interrupt_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so ``finally`` blocks stop what we started."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def run_measure(
    name: str,
    measure: Callable[[], dict[str, Any]],
    *,
    as_json: bool,
    report: Callable[[dict[str, Any]], None],
    stopped: str,
) -> int:
    """A peer script's main: measure (SIGTERM unwinds like Ctrl-C), print, exit code."""
    interrupt_on_sigterm()  # unwinds through the finally blocks that stop what was started
    try:
        res = measure()
    except KeyboardInterrupt:
        print(f"interrupted; {stopped}", file=sys.stderr)
        return 130
    except (PeerBenchError, ValueError, OSError) as exc:
        print(f"{name} benchmark failed: {exc}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(res, sort_keys=True))
    else:
        report(res)
    return 0


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence."""
    return float(statistics.median(values))


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (0 < pct <= 100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-pct * len(ordered) // 100))))
    return float(ordered[rank - 1])


def utc_now() -> str:
    """Current UTC time as an ISO-8601 string with seconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def loadavg() -> str:
    """The 1/5/15-minute load averages, to record how busy the machine was."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def print_table(title: str, rows: Sequence[tuple[str, str]]) -> None:
    """Print a two-column table (measure, figure) in Markdown form."""
    width = max([len(r[0]) for r in rows] + [len("measure")])
    print(f"\n{title}\n")
    print(f"| {'measure'.ljust(width)} | figure |")
    print(f"|{'-' * (width + 2)}|--------|")
    for name, figure in rows:
        print(f"| {name.ljust(width)} | {figure} |")
