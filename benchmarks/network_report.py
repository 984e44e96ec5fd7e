"""The table of ``bench_network.py``: figures, ratios to the raw limit and peers, targets.

Kept apart from the measuring code; ``build_rows(res)`` turns the result dict of one run
into rows (figure, value, unit, target, met?) and ``print_table`` prints them.
"""

from __future__ import annotations

from typing import Any

R = 3  # replication of the measured devnet

Row = tuple[str, float | None, str, str, bool | None]


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def at_least(v: float | None, target: float) -> bool | None:
    return None if v is None else v >= target


def large_rows(res: dict[str, Any]) -> list[Row]:
    g = res.get
    put_raw = g("large_put_raw_ratio")
    raw = g("large_raw_r_copies_MBps")
    size = g("size_MiB")
    return [
        (f"raw: fsync'd writes of r x {size} MiB, r writers (median)", raw, "MB/s", "", None),
        (f"raw limit for r={R} copies (that / r)", raw / R if raw else None, "MB/s", "", None),
        ("large put, control socket (median)", g("large_put_MBps"), "MB/s", "", None),
        ("large get, other node, cold (median)", g("large_get_MBps"), "MB/s", "", None),
        (
            f"raw: page-cache write of {size} MiB, no fsync",
            g("large_raw_write_MBps"),
            "MB/s",
            "",
            None,
        ),
        ("  get / that raw write (per rep, median)", g("large_get_raw_ratio"), "x", "", None),
        ("  share of get blocks fetched over net", g("large_get_network_share"), "", "", None),
        ("4 KiB ranged read, other node, cold (median)", g("large_ranged_read_ms"), "ms", "", None),
        ("  blocks 8 such reads fetched", g("large_ranged_read_blocks"), "", "", None),
        ("large put via CLI, wall", g("cli_put_s"), "s", "", None),
        ("large get via CLI, wall", g("cli_get_s"), "s", "", None),
        ("large put via CLI (incl. start-up)", g("cli_put_MBps"), "MB/s", "", None),
        ("large get via CLI (incl. start-up)", g("cli_get_MBps"), "MB/s", "", None),
        (
            "put / raw limit for r copies (per rep, median)",
            put_raw,
            "x",
            ">= 0.5",
            at_least(put_raw, 0.5),
        ),
    ]


def build_rows(res: dict[str, Any]) -> list[Row]:
    g = res.get
    t: dict[str, Any] = g("tahoe") or {}
    k: dict[str, Any] = g("kademlia") or {}
    tahoe_up = max(
        (t.get(f"tahoe_{v}_put_MBps", 0) for v in ("cli", "http", "foolscap")), default=0
    )
    tahoe_down = max(
        (t.get(f"tahoe_{v}_get_MBps", 0) for v in ("cli", "http", "foolscap")), default=0
    )
    tahoe_sp = max(t.get("tahoe_small_put_per_s", 0), t.get("tahoe_foolscap_small_put_per_s", 0))
    tahoe_sg = max(t.get("tahoe_small_get_per_s", 0), t.get("tahoe_foolscap_small_get_per_s", 0))

    rows: list[Row] = [
        ("raw: fsync'd 1 MiB file writes, 256 MiB burst", g("raw_fsync_MBps"), "MB/s", "", None),
    ]
    for key in sorted(k for k in res if k.endswith("_idle_cores")):
        n = key[3:].split("_")[0]
        rows.append((f"idle {n}-node devnet CPU (pings etc.)", g(key), "cores", "", None))
    if "large_put_MBps" in res:
        rows += large_rows(res)
    if "rebalance_after_join_s" in res:
        moved = g("rebalance_after_join_blocks")
        label = f"rebalance after a node joined ({moved} blocks moved)"
        rows.append((label, g("rebalance_after_join_s"), "s", "", None))
    for key, label, target in (
        ("small_put", "4 KiB put_bytes", 2000),
        ("small_put_many", "4 KiB put_many", 2000),
        ("small_get", "4 KiB read (non-holder)", 5000),
        ("small_get_many", "4 KiB get_many (non-holder)", 5000),
    ):
        if f"{key}_per_s" not in res:
            continue
        v = g(f"{key}_per_s")
        rows.append((f"{label} ops/s", v, "ops/s", f">= {target}", at_least(v, target)))
        rows.append(("  p50 latency", g(f"{key}_p50_ms"), "ms", "", None))
        rows.append(("  p99 latency", g(f"{key}_p99_ms"), "ms", "", None))
        rows.append(("  CPU per op, all our processes", g(f"{key}_cpu_ms_per_op"), "ms", "", None))
    if "reader_objects" in res:
        held = f"{g('reader_held_before')} of {g('reader_objects')}"
        rows.append((f"  objects the reader held (not timed): {held}", None, "", "", None))
        n = g("reader_read_objects")
        rows.append((f"  objects read over the network (timed): {n}", None, "", "", None))
    for op in ("lookup", "store", "get"):
        for c in (1, 50):
            key = f"dht_{op}_c{c}"
            if f"{key}_per_s" in res:
                merged = res.get(f"{key}_merged") or 0
                label = f"DHT {op}, {c} in flight" + (f" ({merged} merged)" if merged else "")
                rows.append((label, g(f"{key}_per_s"), "ops/s", "", None))
                rows.append(("  p50 latency", g(f"{key}_p50_ms"), "ms", "", None))
                rows.append(("  p99 latency", g(f"{key}_p99_ms"), "ms", "", None))
                cpu = g(f"{key}_cpu_ms_per_op")
                rows.append(("  CPU per op, all our processes", cpu, "ms", "", None))
                v = g(f"{key}_messages_per_op")
                rows.append(("  DHT messages the caller sent per op", v, "msgs", "", None))
    for op in ("lookup_many", "put_many", "get_many"):
        key = f"dht_{op}"
        if f"{key}_per_s" in res:
            label = f"DHT {op}, {g('dht_batch')} keys per call"
            rows.append((label, g(f"{key}_per_s"), "keys/s", "", None))
            rows.append(("  requests per key", g(f"{key}_requests_per_key"), "msgs", "", None))
            cpu = g(f"{key}_cpu_ms_per_op")
            rows.append(("  CPU per key, all our processes", cpu, "ms", "", None))
    if t:
        rows += [
            ("Tahoe fastest upload", tahoe_up, "MB/s", "", None),
            ("Tahoe fastest download", tahoe_down, "MB/s", "", None),
            ("Tahoe small puts (best protocol)", tahoe_sp, "ops/s", "", None),
            ("Tahoe small gets (best protocol)", tahoe_sg, "ops/s", "", None),
        ]
        for label, x, goal in (
            ("put / Tahoe fastest upload", ratio(g("large_put_MBps"), tahoe_up), 4.0),
            ("get / Tahoe fastest download", ratio(g("large_get_MBps"), tahoe_down), 5.0),
        ):
            rows.append((label, x, "x", f">= {goal:g}", at_least(x, goal)))
        # for scale, not hard ceilings: a put's work is more than the raw writes, and a
        # get's output is written with O_DIRECT, not through the page cache
        raw_r = g("large_raw_r_copies_MBps")
        for label, x in (
            (
                "  for scale: raw limit for r copies / Tahoe upload",
                ratio(raw_r and raw_r / R, tahoe_up),
            ),
            (
                "  for scale: raw page-cache write / Tahoe download",
                ratio(g("large_raw_write_MBps"), tahoe_down),
            ),
        ):
            rows.append((label, x, "x", "", None))
        rows.append(
            (
                "small put_bytes / Tahoe small put",
                ratio(g("small_put_per_s"), tahoe_sp),
                "x",
                "",
                None,
            )
        )
        rows.append(
            ("small read / Tahoe small get", ratio(g("small_get_per_s"), tahoe_sg), "x", "", None)
        )
    if k:
        for c in (1, 50):
            rows.append(
                (
                    f"kademlia set, {c} in flight",
                    k.get(f"kademlia_set_per_s_c{c}"),
                    "ops/s",
                    "",
                    None,
                )
            )
            rows.append(
                (
                    f"kademlia remote get, {c} in flight",
                    k.get(f"kademlia_remote_get_per_s_c{c}"),
                    "ops/s",
                    "",
                    None,
                )
            )
            rows.append(
                (
                    f"kademlia node lookup, {c} in flight",
                    k.get(f"kademlia_lookup_per_s_c{c}"),
                    "ops/s",
                    "",
                    None,
                )
            )
        # Two kinds of lookup, each against its like: a value lookup (our get, kademlia's
        # get, which stops at the first holder) and a k-closest node lookup (ours, and
        # kademlia's NodeSpiderCrawl, which its set runs before storing).
        for c in (1, 50):
            v = ratio(g(f"dht_store_c{c}_per_s"), k.get(f"kademlia_set_per_s_c{c}"))
            rows.append((f"DHT store / kademlia set (c{c})", v, "x", ">= 50", at_least(v, 50)))
            v = ratio(g(f"dht_get_c{c}_per_s"), k.get(f"kademlia_remote_get_per_s_c{c}"))
            rows.append((f"DHT get / kademlia remote get (c{c})", v, "x", ">= 5", at_least(v, 5)))
            v = ratio(g(f"dht_lookup_c{c}_per_s"), k.get(f"kademlia_lookup_per_s_c{c}"))
            rows.append(
                (f"k-closest lookup / kademlia node lookup (c{c})", v, "x", ">= 5", at_least(v, 5))
            )
        best = {
            op: max(k.get(f"kademlia_{op}_per_s_c{c}") or 0 for c in (1, 50))
            for op in ("set", "remote_get", "lookup")
        }
        for label, ours, theirs, goal in (
            ("DHT put_many / kademlia best set", "dht_put_many_per_s", best["set"], 50),
            (
                "DHT get_many / kademlia best remote get",
                "dht_get_many_per_s",
                best["remote_get"],
                5,
            ),
            (
                "DHT lookup_many / kademlia best node lookup",
                "dht_lookup_many_per_s",
                best["lookup"],
                5,
            ),
        ):
            v = ratio(g(ours), theirs)
            rows.append((label, v, "x", f">= {goal}", at_least(v, goal)))
    return rows


def fmt(v: float | None) -> str:
    if v is None or v != v:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def print_table(rows: list[Row]) -> None:
    w = max(len(r[0]) for r in rows)
    print(f"| {'figure'.ljust(w)} | {'value':>10} | unit  | target  | met? |")
    print(f"|{'-' * (w + 2)}|-----------:|-------|---------|------|")
    for name, v, unit, target, met in rows:
        m = "" if met is None else ("yes" if met else "NO")
        print(f"| {name.ljust(w)} | {fmt(v):>10} | {unit:<5} | {target:<7} | {m:<4} |")


__all__ = ["Row", "build_rows", "print_table"]
