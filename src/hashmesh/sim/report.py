"""Metrics of a simulation: ground truth, lookup outcomes, percentiles, JSON, table.

Success of a lookup (the definition every figure uses)
------------------------------------------------------
The *truth* for a target is taken by brute force over the hosts that are up and
honest at the moment the lookup finishes (dead, departed and adversarial hosts are
excluded). A lookup **succeeds** when its result contains the single closest such
host to the target. Its **recall** is the fraction of the k closest such hosts that
appear in its result (``recall_k`` in the report is the mean over lookups).

The brute force is exact and fast for 100,000 hosts: ids are kept sorted as
integers, and the hosts sharing the longest prefix with the target form one
contiguous run of that array (found by bisection); every host inside the run is
closer than every host outside it, so the k closest lie in the shortest run that
still holds k hosts.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field
from typing import Any

_BITS = 256


class Truth:
    """A sorted array of live honest ids with an exact k-closest query."""

    __slots__ = ("ids",)

    def __init__(self, ids: list[int] | None = None) -> None:
        self.ids: list[int] = sorted(ids or [])

    def add(self, node_id: int) -> None:
        bisect.insort(self.ids, node_id)

    def remove(self, node_id: int) -> None:
        i = bisect.bisect_left(self.ids, node_id)
        if i < len(self.ids) and self.ids[i] == node_id:
            del self.ids[i]

    def __len__(self) -> int:
        return len(self.ids)

    def _run(self, target: int, prefix: int) -> tuple[int, int]:
        shift = _BITS - prefix
        lo = (target >> shift) << shift
        ids = self.ids
        return bisect.bisect_left(ids, lo), bisect.bisect_left(ids, lo + (1 << shift))

    def closest(self, target: int, k: int) -> list[int]:
        """The ``k`` ids closest to ``target`` by XOR, closest first."""
        if not self.ids:
            return []
        lo_p, hi_p = 0, _BITS  # invariant: run(lo_p) holds >= k (or everything)
        while lo_p < hi_p:
            mid = (lo_p + hi_p + 1) // 2
            a, b = self._run(target, mid)
            if b - a >= k:
                lo_p = mid
            else:
                hi_p = mid - 1
        a, b = self._run(target, lo_p)
        return sorted(self.ids[a:b], key=lambda x: x ^ target)[:k]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]); 0.0 for no values."""
    if not values:
        return 0.0
    s = sorted(values)
    rank = max(1, min(len(s), -(-len(s) * q // 100)))
    return float(s[int(rank) - 1])


@dataclass
class LookupStats:
    """Outcomes of the measured lookups (or gets)."""

    attempted: int = 0
    finished: int = 0
    succeeded: int = 0
    recall_sum: float = 0.0
    hops: list[int] = field(default_factory=list)
    messages: list[int] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)

    def record(self, ok: bool, recall: float, hops: int, messages: int, seconds: float) -> None:
        self.finished += 1
        self.succeeded += int(ok)
        self.recall_sum += recall
        self.hops.append(hops)
        self.messages.append(messages)
        self.latency.append(seconds)

    def summary(self) -> dict[str, Any]:
        n = self.attempted or 1
        return {
            "lookups": self.attempted,
            "finished": self.finished,
            "success_rate": round(self.succeeded / n, 6),
            "recall_k": round(self.recall_sum / n, 6),
            "hops_p50": percentile(self.hops, 50),
            "hops_p99": percentile(self.hops, 99),
            "hops_max": max(self.hops, default=0),
            "messages_per_lookup": round(sum(self.messages) / max(1, len(self.messages)), 3),
            "latency_p50_ms": round(percentile(self.latency, 50) * 1000, 3),
            "latency_p99_ms": round(percentile(self.latency, 99) * 1000, 3),
        }


def histogram(values: list[int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in sorted(values):
        out[str(v)] = out.get(str(v), 0) + 1
    return out


def to_json(result: dict[str, Any]) -> str:
    """One JSON object, keys sorted, so equal results give equal text."""
    return json.dumps(result, sort_keys=True)


_ROWS = [
    ("nodes", "nodes (at start)"),
    ("build", "routing tables"),
    ("lookups", "lookups"),
    ("success_rate", "success rate"),
    ("recall_k", "mean recall of k closest"),
    ("hops_p50", "hops p50"),
    ("hops_p99", "hops p99"),
    ("messages_per_lookup", "messages per lookup"),
    ("latency_p50_ms", "latency p50 (ms)"),
    ("latency_p99_ms", "latency p99 (ms)"),
    ("values_retrievable", "values retrievable"),
    ("republish_msgs_per_node_hour", "republish msgs/node/hour"),
    ("seconds", "wall seconds"),
    ("peak_rss_mb", "peak RSS (MB)"),
]


def table_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) rows for the CLI table, in a fixed order."""
    rows = []
    for key, label in _ROWS:
        if key in result and result[key] is not None:
            v = result[key]
            if key in ("success_rate", "recall_k", "values_retrievable"):
                text = f"{100 * v:.2f} %"
            elif isinstance(v, float):
                text = f"{v:g}"
            else:
                text = str(v)
            rows.append((label, text))
    return rows
