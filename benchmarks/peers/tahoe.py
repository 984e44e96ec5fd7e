#!/usr/bin/env python3
"""Measure Tahoe-LAFS on a local loopback grid, as a peer figure for hashmesh's network bench.

The grid: one introducer, five storage nodes and one client node, all on 127.0.0.1, with
3-of-5 encoding (shares.needed=3, happy=5, total=5). Tahoe lives in its own venv at
``$HASHMESH_PEERS_DIR/tahoe-venv`` (default /tmp/hashmesh-peers), created on first use.

Measured, each as the median of ``reps`` repetitions with fresh random data (uploads are
convergent, so repeated bytes would find their shares already stored):

* a large file through the CLI (``tahoe put`` / ``tahoe get``), MB/s;
* the same size through the web API (``PUT /uri``, ``GET /uri/CAP``), MB/s;
* the same web-API transfer after switching the client to Foolscap
  (``[client] force_foolscap = true``, client restarted), MB/s;
* 200 files of 4 KiB through the web API, one request each on a kept-alive connection,
  files/s, with the default HTTPS storage protocol and with Foolscap.

Every download is checked against the uploaded bytes. Every node this module starts is
stopped at the end (SIGTERM, then SIGKILL), also on Ctrl-C or an error.

Usage:  python benchmarks/peers/tahoe.py [--quick] [--size-mib N] [--reps N] [--json]
Import: ``from peers.tahoe import measure`` with ``benchmarks/`` on sys.path.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from peers import common

NSTORAGE = 5
SHARES_NEEDED, SHARES_HAPPY, SHARES_TOTAL = 3, 5, 5
SMALL_COUNT = 200
SMALL_SIZE = 4096
QUICK_SIZE_MIB = 64
FULL_SIZE_MIB = 256
OP_TIMEOUT_S = 600.0  # one put or get of the large file
START_TIMEOUT_S = 120.0  # a node writing its files, the client seeing all servers
CHUNK = 1 << 20

# Tahoe 1.20 binds each node's log Tub (for flogtool) to ('', 0), i.e. all interfaces, and
# offers no setting for it. In our own venv we rewrite that one line to bind loopback.
_LOGTUB_OLD = "s.bind(('', 0))"
_LOGTUB_NEW = "s.bind(('127.0.0.1', 0))  # hashmesh-peers: loopback-only log Tub"


def _log(msg: str) -> None:
    print(f"[tahoe {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ensure_tahoe() -> Path:
    """Return the Tahoe venv, creating it and patching the log Tub bind if needed."""
    root = common.ensure_venv("tahoe-venv", ["tahoe-lafs"], ["bin/tahoe"])
    for path in root.glob("lib/python3*/site-packages/allmydata/util/iputil.py"):
        text = path.read_text()
        if _LOGTUB_OLD in text:
            path.write_text(text.replace(_LOGTUB_OLD, _LOGTUB_NEW, 1))
            _log(f"patched {path}: log Tub binds 127.0.0.1")
    return root


class Grid:
    """A running local Tahoe grid; use as a context manager so it always stops."""

    def __init__(self, venv_dir: Path, workdir: Path) -> None:
        self.tahoe = str(venv_dir / "bin" / "tahoe")
        self.work = workdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.web_port = 0

    # -- processes -------------------------------------------------------------------------
    def _cli(self, *args: str, timeout: float = 120.0) -> str:
        """Run one tahoe CLI command; return its stdout or raise PeerBenchError."""
        try:
            proc = subprocess.run(
                [self.tahoe, *args], capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise common.PeerBenchError(f"tahoe {args[:3]} timed out after {timeout} s") from exc
        if proc.returncode != 0:
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
            raise common.PeerBenchError(f"tahoe {args[:3]} failed ({proc.returncode}): {tail}")
        return proc.stdout

    def _start(self, name: str) -> None:
        log = open(self.work / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        try:
            self.procs[name] = subprocess.Popen(
                [self.tahoe, "run", "--allow-stdin-close", str(self.work / name)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us only; we stop the nodes ourselves
            )
        finally:
            log.close()

    def _stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None:
            how = common.stop_process(proc)
            if how == "SIGKILL":
                _log(f"{name} (pid {proc.pid}) needed SIGKILL")

    def stop_all(self) -> None:
        """Stop every node this grid started, client first."""
        order = ["client", *(f"s{i}" for i in range(1, NSTORAGE + 1)), "introducer"]
        for name in order + [n for n in self.procs if n not in order]:
            self._stop(name)

    def __enter__(self) -> Grid:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    # -- building --------------------------------------------------------------------------
    def build(self) -> float:
        """Create and start the grid; return seconds until the client saw all servers."""
        t0 = time.monotonic()
        ports = common.free_tcp_ports(NSTORAGE + 2)
        intro_port, self.web_port = ports[0], ports[-1]
        enc = [
            f"--shares-needed={SHARES_NEEDED}",
            f"--shares-happy={SHARES_HAPPY}",
            f"--shares-total={SHARES_TOTAL}",
        ]
        self._cli(
            "create-introducer",
            f"--location=tcp:127.0.0.1:{intro_port}",
            f"--port=tcp:{intro_port}:interface=127.0.0.1",
            str(self.work / "introducer"),
        )
        self._start("introducer")
        furl_file = self.work / "introducer" / "private" / "introducer.furl"
        furl = self._wait_file(furl_file).strip()
        for i in range(1, NSTORAGE + 1):
            port = ports[i]
            self._cli(
                "create-node",
                f"--nickname=s{i}",
                f"--introducer={furl}",
                f"--location=tcp:127.0.0.1:{port}",
                f"--port=tcp:{port}:interface=127.0.0.1",
                "--webport=none",
                *enc,
                str(self.work / f"s{i}"),
            )
        self._cli(
            "create-client",
            "--nickname=client",
            f"--introducer={furl}",
            f"--webport=tcp:{self.web_port}:interface=127.0.0.1",
            *enc,
            str(self.work / "client"),
        )
        for i in range(1, NSTORAGE + 1):
            self._start(f"s{i}")
        self._start("client")
        self.wait_servers(NSTORAGE)
        self.check_loopback()
        return time.monotonic() - t0

    def _wait_file(self, path: Path) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if path.exists() and path.stat().st_size > 0:
                return path.read_text()
            self._check_alive()
            time.sleep(0.2)
        raise common.PeerBenchError(f"{path} did not appear within {START_TIMEOUT_S:.0f} s")

    def _check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise common.PeerBenchError(
                    f"tahoe node {name} exited with {proc.returncode}; see {self.work}/{name}.log"
                )

    def connected_servers(self) -> int:
        """Number of storage servers the client reports as connected (0 if unreachable)."""
        try:
            conn = http.client.HTTPConnection(common.LOOPBACK, self.web_port, timeout=5)
            conn.request("GET", "/?t=json")
            body = conn.getresponse().read()
            conn.close()
            servers = json.loads(body).get("servers", [])
        except (OSError, ValueError, http.client.HTTPException):
            return 0
        return sum(
            1 for s in servers if str(s.get("connection_status", "")).lower().startswith("connect")
        )

    def wait_servers(self, want: int) -> None:
        """Wait (bounded) until the client sees *want* connected storage servers."""
        deadline = time.monotonic() + START_TIMEOUT_S
        seen = 0
        while time.monotonic() < deadline:
            seen = self.connected_servers()
            if seen >= want:
                return
            self._check_alive()
            time.sleep(0.5)
        raise common.PeerBenchError(f"client saw {seen} of {want} servers in {START_TIMEOUT_S} s")

    def check_loopback(self) -> None:
        """Refuse to go on if any node listens on an address other than 127.0.0.1."""
        for name, proc in self.procs.items():
            for ip, port in common.listening_addresses(proc.pid):
                if ip != common.LOOPBACK:
                    raise common.PeerBenchError(f"{name} listens on {ip}:{port}, not loopback")

    def set_force_foolscap(self, on: bool) -> None:
        """Switch the client's storage protocol and restart it."""
        cfg = self.work / "client" / "tahoe.cfg"
        lines = [ln for ln in cfg.read_text().splitlines() if not ln.startswith("force_foolscap")]
        idx = lines.index("[client]")
        lines.insert(idx + 1, f"force_foolscap = {'true' if on else 'false'}")
        cfg.write_text("\n".join(lines) + "\n")
        self._stop("client")
        self._start("client")
        self.wait_servers(NSTORAGE)
        self.check_loopback()

    # -- transfers -------------------------------------------------------------------------
    def _http(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(
            common.LOOPBACK, self.web_port, timeout=OP_TIMEOUT_S, blocksize=CHUNK
        )

    def cli_put(self, path: Path) -> str:
        """``tahoe put FILE``; return the cap."""
        out = self._cli("-d", str(self.work / "client"), "put", str(path), timeout=OP_TIMEOUT_S)
        return out.strip().splitlines()[-1]

    def cli_get(self, cap: str, out: Path) -> None:
        """``tahoe get CAP FILE``."""
        self._cli("-d", str(self.work / "client"), "get", cap, str(out), timeout=OP_TIMEOUT_S)

    def http_put_file(self, path: Path) -> str:
        """``PUT /uri`` streaming a file; return the cap."""
        conn = self._http()
        try:
            with path.open("rb") as body:
                conn.request(
                    "PUT", "/uri", body=body, headers={"Content-Length": str(path.stat().st_size)}
                )
                return _cap_from(conn.getresponse())
        finally:
            conn.close()

    def http_get_file(self, cap: str, out: Path) -> None:
        """``GET /uri/CAP`` into a file."""
        conn = self._http()
        try:
            conn.request("GET", f"/uri/{cap}")
            resp = conn.getresponse()
            if resp.status != 200:
                raise common.PeerBenchError(f"GET /uri -> {resp.status} {resp.read(300)!r}")
            with out.open("wb") as f:
                while chunk := resp.read(CHUNK):
                    f.write(chunk)
        finally:
            conn.close()

    def http_small(self, blobs: list[bytes]) -> tuple[float, float]:
        """PUT then GET every blob on one kept-alive connection; return (put_s, get_s)."""
        conn = self._http()
        try:
            t0 = time.perf_counter()
            caps = []
            for blob in blobs:
                conn.request("PUT", "/uri", body=blob)
                caps.append(_cap_from(conn.getresponse()))
            t1 = time.perf_counter()
            got = []
            for cap in caps:
                conn.request("GET", f"/uri/{cap}")
                resp = conn.getresponse()
                got.append(resp.read())
                if resp.status != 200:
                    raise common.PeerBenchError(f"GET /uri -> {resp.status}")
            t2 = time.perf_counter()
        finally:
            conn.close()
        if got != blobs:
            raise common.PeerBenchError("small-file download differs from upload")
        return t1 - t0, t2 - t1


def _cap_from(resp: http.client.HTTPResponse) -> str:
    body = resp.read().decode("utf-8", "replace").strip()
    if resp.status not in (200, 201) or not body.startswith("URI:"):
        raise common.PeerBenchError(f"PUT /uri -> {resp.status}: {body[:300]}")
    return body


def _random_file(path: Path, size: int) -> str:
    """Write *size* fresh random bytes to *path*; return their SHA-256 hex digest."""
    digest = hashlib.sha256()
    with path.open("wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(CHUNK * 4, left))
            digest.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK * 4):
            digest.update(chunk)
    return digest.hexdigest()


def _large_round(
    grid: Grid, tmp: Path, size: int, via: str, pause: float = 0.0
) -> tuple[float, float]:
    """One put + get of *size* fresh bytes via "cli" or "http"; return (put_s, get_s).
    The put starts after *pause* idle seconds (as hashmesh's does in bench_network.py)."""
    src, out = tmp / "src.bin", tmp / "out.bin"
    want = _random_file(src, size)
    time.sleep(pause)
    put, get = (
        (grid.cli_put, grid.cli_get) if via == "cli" else (grid.http_put_file, grid.http_get_file)
    )
    try:
        t0 = time.perf_counter()
        cap = put(src)
        t1 = time.perf_counter()
        get(cap, out)
        t2 = time.perf_counter()
        if _sha256_file(out) != want:
            raise common.PeerBenchError(f"{via} download of {size} bytes differs from upload")
    finally:
        src.unlink(missing_ok=True)
        out.unlink(missing_ok=True)
    return t1 - t0, t2 - t1


def measure(
    size_mib: int | None = None, reps: int = 3, quick: bool = False, pause: float = 0.0
) -> dict[str, Any]:
    """Build a local Tahoe grid, measure it, stop it; return the figures as a flat dict.

    *size_mib* is the large-file size (default 256 MiB, or 64 MiB with *quick*); every figure
    is the median of *reps* repetitions; each large put starts after *pause* idle seconds. Keys: tahoe_{cli,http,foolscap}_{put,get}_MBps,
    tahoe_small_{put,get}_per_s, tahoe_foolscap_small_{put,get}_per_s, plus run metadata
    and ``runs`` (every repetition's figure). MB = 10^6 bytes.
    """
    if size_mib is None:
        size_mib = QUICK_SIZE_MIB if quick else FULL_SIZE_MIB
    if size_mib < 1 or reps < 1:
        raise ValueError("size_mib and reps must be at least 1")
    size = size_mib * 1024 * 1024
    started, t_start, load0 = common.utc_now(), time.monotonic(), common.loadavg()
    venv_dir = ensure_tahoe()
    versions = common.pip_versions(venv_dir, ["tahoe-lafs", "foolscap", "twisted"])
    runs: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        runs.setdefault(key, []).append(round(value, 2))

    def small(prefix: str) -> None:
        for rep in range(reps):
            blobs = [os.urandom(SMALL_SIZE) for _ in range(SMALL_COUNT)]
            put_s, get_s = grid.http_small(blobs)
            add(f"{prefix}_put_per_s", SMALL_COUNT / put_s)
            add(f"{prefix}_get_per_s", SMALL_COUNT / get_s)
            _log(f"{prefix} rep {rep + 1}: put {put_s:.2f} s, get {get_s:.2f} s")

    def large(via: str, key: str) -> None:
        for rep in range(reps):
            put_s, get_s = _large_round(grid, tmp, size, via, pause)
            add(f"{key}_put_MBps", size / 1e6 / put_s)
            add(f"{key}_get_MBps", size / 1e6 / get_s)
            _log(f"{key} {size_mib} MiB rep {rep + 1}: put {put_s:.2f} s, get {get_s:.2f} s")

    tmp = Path(tempfile.mkdtemp(prefix="hashmesh-tahoe-"))
    try:
        (tmp / "grid").mkdir()
        with Grid(venv_dir, tmp / "grid") as grid:
            grid_s = grid.build()
            _log(f"grid up in {grid_s:.1f} s (web API on 127.0.0.1:{grid.web_port})")
            large("cli", "tahoe_cli")
            large("http", "tahoe_http")
            small("tahoe_small")
            grid.set_force_foolscap(True)
            _log("client restarted with force_foolscap = true")
            large("http", "tahoe_foolscap")
            small("tahoe_foolscap_small")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result: dict[str, Any] = {key: round(common.median(vals), 2) for key, vals in runs.items()}
    result.update(
        size_MiB=size_mib,
        reps=reps,
        small_files=SMALL_COUNT,
        small_size_B=SMALL_SIZE,
        encoding="3-of-5, happy=5",
        grid_start_s=round(grid_s, 1),
        tahoe_version=versions.get("tahoe-lafs", "unknown"),
        versions=versions,
        started_utc=started,
        elapsed_s=round(time.monotonic() - t_start, 1),
        loadavg_start=load0,
        loadavg_end=common.loadavg(),
        runs=runs,
    )
    return result


_LABELS = {
    "tahoe_cli_put_MBps": ("large put, tahoe put (CLI), HTTPS storage", "MB/s"),
    "tahoe_cli_get_MBps": ("large get, tahoe get (CLI), HTTPS storage", "MB/s"),
    "tahoe_http_put_MBps": ("large put, PUT /uri, HTTPS storage", "MB/s"),
    "tahoe_http_get_MBps": ("large get, GET /uri/CAP, HTTPS storage", "MB/s"),
    "tahoe_foolscap_put_MBps": ("large put, PUT /uri, Foolscap storage", "MB/s"),
    "tahoe_foolscap_get_MBps": ("large get, GET /uri/CAP, Foolscap storage", "MB/s"),
    "tahoe_small_put_per_s": ("4 KiB PUT /uri, HTTPS storage", "files/s"),
    "tahoe_small_get_per_s": ("4 KiB GET /uri/CAP, HTTPS storage", "files/s"),
    "tahoe_foolscap_small_put_per_s": ("4 KiB PUT /uri, Foolscap storage", "files/s"),
    "tahoe_foolscap_small_get_per_s": ("4 KiB GET /uri/CAP, Foolscap storage", "files/s"),
}


def print_report(res: dict[str, Any]) -> None:
    """Print the figures of measure() as a readable table."""
    rows = []
    for key, (label, unit) in _LABELS.items():
        runs = res["runs"].get(key, [])
        spread = f" ({min(runs)}-{max(runs)})" if len(runs) > 1 else ""
        rows.append((label, f"{res[key]} {unit}{spread}"))
    common.print_table(
        f"Tahoe-LAFS {res['tahoe_version']}, local grid {res['encoding']}, large file "
        f"{res['size_MiB']} MiB, {res['small_files']} x {res['small_size_B']} B small files, "
        f"median of {res['reps']} (min-max); started {res['started_utc']}, took "
        f"{res['elapsed_s']} s, load {res['loadavg_start']} -> {res['loadavg_end']}",
        rows,
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="64 MiB large file instead of 256 MiB")
    ap.add_argument("--size-mib", type=int, default=None, help="large-file size in MiB")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per measure (median)")
    ap.add_argument("--pause", type=float, default=0.0, help="idle seconds before each large put")
    ap.add_argument("--json", action="store_true", help="print one JSON object only")
    args = ap.parse_args(argv)
    return common.run_measure(
        "tahoe",
        lambda: measure(args.size_mib, args.reps, quick=args.quick, pause=args.pause),
        as_json=args.json,
        report=print_report,
        stopped="every Tahoe node started was stopped",
    )


if __name__ == "__main__":
    sys.exit(main())
