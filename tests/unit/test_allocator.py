"""The node's allocator thresholds: large buffers are reused, not faulted in anew."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Allocates, touches and frees a 4 MiB buffer 50 times (a received frame's life)
# and prints the minor page faults that took, after one warm-up round.
_PROBE = """
import resource, sys
from hashmesh import allocator
if sys.argv[1] == "tuned" and not allocator.tune():
    print("untuned"); sys.exit(0)
def once():
    buf = bytearray(4 << 20)
    buf[::4096] = b"x" * (4 << 8)
    return bytes(buf)
once()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    once()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, timeout=60, check=True
    )
    return out.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_tuned_process_reuses_large_buffers() -> None:
    tuned = _faults("tuned")
    if tuned == "untuned":
        pytest.skip("this libc takes no mallopt thresholds (not glibc)")
    default = int(_faults("default"))
    # 50 rounds of two 4 MiB buffers are 51,200 pages: glibc's default maps and
    # faults most of them anew; tuned, the freed heap is reused
    assert int(tuned) < 2_000, (tuned, default)
    assert default > 10 * max(1, int(tuned)), (tuned, default)
