"""Measure the DHT targets with the simulator (real dht cores on a virtual clock).

    python benchmarks/bench_sim.py            # full: 10k and 100k nodes (about 30-60 min)
    python benchmarks/bench_sim.py --quick    # smaller networks, a few minutes
    python benchmarks/bench_sim.py --only 100k --json

Every scenario runs in a fresh subprocess so its peak RSS is its own. Prints one
table of target / measured / verdict and, with --json, one JSON object per line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

HOUR = 3600.0


def scenarios(quick: bool) -> list[tuple[str, dict[str, Any], str]]:
    n = 2000 if quick else 10_000
    look = 300 if quick else 1000
    vals_n = 300 if quick else 1000
    out = [
        (f"{n // 1000}k", {"nodes": n, "lookups": look}, "success 100%, hops p50<=3, p99<=5"),
        (f"{n // 1000}k-dead30", {"nodes": n, "lookups": look // 2, "dead": 0.3}, ">=99% success"),
        (f"{n // 1000}k-adv20-d1", {"nodes": n, "lookups": look // 2, "adversarial": 0.2},
         "figure without disjoint paths"),
        (f"{n // 1000}k-adv20-d4",
         {"nodes": n, "lookups": look // 2, "adversarial": 0.2, "disjoint": 4},
         ">=95% success"),
        (f"{n // 1000}k-batch", {"nodes": n, "lookups": 0, "batch": 1000},
         "batched calls: requests per key, recall"),
        ("values-republish",
         {"nodes": vals_n, "lookups": 0, "values": 200, "window": 6 * HOUR},
         ">=99% retrievable after 50% of holders left"),
        ("values-no-republish",
         {"nodes": vals_n, "lookups": 0, "values": 200, "window": 6 * HOUR, "republish": False},
         "contrast"),
    ]  # fmt: skip
    if quick:
        out.insert(1, ("2k-join", {"nodes": 2000, "lookups": 300, "build": "join"}, "real joins"))
    else:
        out.append(("100k", {"nodes": 100_000, "lookups": 300}, "<10 min, <8 GiB"))
    for v in (0, 250, 1000, 4000) if not quick else (0, 250, 1000):
        out.append(
            (f"republish-cost-{v}",
             {"nodes": 1000, "lookups": 0, "values": v, "holders_leave": 0.0,
              "window": 2 * HOUR, "build": "oracle"},
             "msgs/node/hour vs keys"),
        )  # fmt: skip
    return out


def run_one(params: dict[str, Any]) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--one", json.dumps(params)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def verdict(name: str, r: dict[str, Any]) -> str:
    if name.endswith("k") and name[:-1].isdigit():
        ok = r["success_rate"] == 1.0 and r["hops_p50"] <= 3 and r["hops_p99"] <= 5
        if name == "100k":
            ok = ok and r["seconds"] < 600 and r["peak_rss_mb"] < 8192
        return "met" if ok else "NOT met"
    if "dead30" in name:
        return "met" if r["success_rate"] >= 0.99 else "NOT met"
    if name.endswith("-d4"):
        return "met" if r["success_rate"] >= 0.95 else "NOT met"
    if name.endswith("-batch"):
        ok = r["batch_get_retrieved"] >= 0.99 and r["batch_lookup_top1"] >= 0.99
        return "met" if ok else "NOT met"
    if name == "values-republish":
        return "met" if r.get("values_retrievable", 0) >= 0.99 else "NOT met"
    return "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--only", help="run only scenarios whose name contains this")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        from hashmesh.sim.runner import run

        result = run(json.loads(args.one))
        result.pop("_latencies_ms", None)
        sys.stdout.write(json.dumps(result) + "\n")
        return
    rows = []
    costs: list[tuple[int, float, dict[str, int], int]] = []
    for name, params, target in scenarios(args.quick):
        if args.only and args.only not in name:
            continue
        r = run_one({"seed": 1, **params})
        if args.json:
            sys.stdout.write(json.dumps({"scenario": name, **r}) + "\n")
            sys.stdout.flush()
        if name.startswith("republish-cost"):
            hours = (r["virtual_seconds"]) / HOUR
            costs.append((params["values"], r["maintenance_msgs_per_node_hour"],
                          r["messages_by_type"], r["nodes"]))  # fmt: skip
            continue
        key = (
            f"retrievable {r['values_retrievable']:.4f}"
            if "values_retrievable" in r
            else f"put_many acks min/median {r['batch_put_acks_min']}/{r['batch_put_acks_median']}"
            f", {r['batch_put_requests_per_key']:g} req/key; get_many "
            f"{r['batch_get_retrieved']:.4f} found, {r['batch_get_requests_per_key']:g} req/key; "
            f"lookup_many recall {r['batch_lookup_recall']:.4f} top-1 {r['batch_lookup_top1']:.4f}"
            f", {r['batch_lookup_requests_per_key']:g} req/key"
            if "batch_put_acks_min" in r
            else f"success {r['success_rate']:.4f} recall {r['recall_k']:.4f} "
            f"hops p50/p99 {r['hops_p50']:g}/{r['hops_p99']:g} msgs {r['messages_per_lookup']:g} "
            f"lat p50/p99 {r['latency_p50_ms']:.0f}/{r['latency_p99_ms']:.0f} ms"
        )
        rows.append((name, target, key, f"{r['seconds']:.0f} s ({r['cpu_seconds']:.0f} cpu)", f"{r['peak_rss_mb']:.0f} MB",
                     verdict(name, r)))  # fmt: skip
        print(" | ".join(rows[-1]), flush=True)
    print()
    print("| scenario | target | measured | wall | peak RSS | verdict |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if costs:
        base = costs[0][1]
        print("\nRepublish cost (1000 nodes, k=20, 2 h window, no lookups):")
        print("Store = the originators' first puts (k per key); StoreMany = holders' republish")
        print("| keys | msgs/node/hour (all) | above 0 keys | Store msgs | StoreMany msgs "
              "| StoreMany/node/hour | FindNode msgs |")  # fmt: skip
        print("|---|---|---|---|---|---|---|")
        for v, per, by_type, nodes in costs:
            batches = by_type.get("StoreMany", 0)
            print(f"| {v} | {per:.1f} | {per - base:.1f} | {by_type.get('Store', 0)} | "
                  f"{batches} | {batches / nodes / 2:.2f} | "
                  f"{by_type.get('FindNode', 0)} |")  # fmt: skip
        del hours


if __name__ == "__main__":
    main()
