"""Wall time of the real ``hashmesh`` command for small operations.

Runs each command N times in a fresh temporary repository and prints the
wall-time median, minimum and 90th percentile, and the median CPU time (user +
system; steadier than wall time when other work shares the machine), in ms:

    python benchmarks/bench_cli.py            # N = 21
    python benchmarks/bench_cli.py -n 51

``put`` stores a different 4 KiB file each time (no dedup shortcut); ``get``
writes a stored 4 KiB file to a new path each time. ``python -c pass`` and
``hashmesh --help`` show the interpreter and import floor.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def hashmesh_command() -> list[str]:
    script = Path(sys.executable).parent / "hashmesh"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "hashmesh"]


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run."""
    t = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{argv} failed with exit code {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def report(label: str, runs: list[tuple[float, float]]) -> None:
    ms = sorted(w * 1000 for w, _ in runs)
    cpu = statistics.median(c * 1000 for _, c in runs)
    p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
    print(
        f"{label:<22} wall median {statistics.median(ms):6.1f} ms  min {ms[0]:6.1f}  "
        f"p90 {p90:6.1f}   cpu median {cpu:6.1f} ms   (n={len(ms)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=21, help="runs per command")
    args = parser.parse_args()
    hm = hashmesh_command()
    rng = random.Random(4096)
    with tempfile.TemporaryDirectory(prefix="hashmesh-bench-") as tmp:
        root = Path(tmp)
        env = {**os.environ, "HASHMESH_HOME": str(root / "repo")}
        subprocess.run([*hm, "init"], env=env, check=True, stdout=subprocess.DEVNULL)
        files = []
        for i in range(args.n):
            f = root / f"in-{i}.bin"
            f.write_bytes(rng.randbytes(4096))
            files.append(f)
        stored = subprocess.run(
            [*hm, "put", "-q", files[0]], env=env, check=True, capture_output=True, text=True
        ).stdout.strip()

        cases: list[tuple[str, Callable[[int], list[str]]]] = [
            ("python -c pass", lambda i: [sys.executable, "-c", "pass"]),
            ("hashmesh --help", lambda i: [*hm, "--help"]),
            ("hashmesh put 4 KiB", lambda i: [*hm, "put", "-q", str(files[i])]),
            ("hashmesh get 4 KiB", lambda i: [*hm, "get", stored, "-o", str(root / f"o{i}")]),
            ("hashmesh cat 4 KiB", lambda i: [*hm, "cat", stored]),
            ("hashmesh ls", lambda i: [*hm, "ls"]),
        ]
        print(f"{' '.join(hm)}  (Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
        for label, make in cases:
            report(label, [timed(make(i), env) for i in range(args.n)])


if __name__ == "__main__":
    main()
