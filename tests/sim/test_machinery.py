"""Simulator machinery (truth, oracle tables, churn, liars) without the real core's behaviour."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from hashmesh.errors import InvalidArgumentError
from hashmesh.sim.build import oracle_contacts
from hashmesh.sim.report import Truth, percentile
from hashmesh.sim.runner import SimParams, run
from hashmesh.sim.scenarios import churn_plan, pick_fraction

sys.path.insert(0, str(Path(__file__).parent))
from toycore import ToyCore


def test_truth_matches_brute_force() -> None:
    rng = random.Random(4)
    ids = [rng.getrandbits(256) for _ in range(3000)]
    truth = Truth(ids)
    for _ in range(200):
        t = rng.getrandbits(256)
        assert truth.closest(t, 20) == sorted(ids, key=lambda x: x ^ t)[:20]
    gone = truth.closest(ids[0], 1)[0]
    truth.remove(gone)
    assert gone not in truth.closest(ids[0], 20)
    assert Truth().closest(5, 3) == []
    assert Truth([1, 2]).closest(0, 5) == [1, 2]


def test_percentile_nearest_rank() -> None:
    assert percentile([], 50) == 0.0
    assert percentile([3, 1, 2], 50) == 2
    assert percentile(list(range(1, 101)), 99) == 99
    assert percentile([7], 99) == 7


def test_oracle_contacts_fill_every_bucket_up_to_k() -> None:
    rng = random.Random(2)
    ids = sorted(rng.getrandbits(256) for _ in range(2000))
    me = ids[17]
    got = oracle_contacts(ids, me, 8, rng)
    assert me not in got and len(set(got)) == len(got)
    per_bucket: dict[int, int] = {}
    for x in got:
        per_bucket[(x ^ me).bit_length()] = per_bucket.get((x ^ me).bit_length(), 0) + 1
    for b in range(1, 257):
        members = sum(1 for x in ids if x != me and (x ^ me).bit_length() == b)
        assert per_bucket.get(b, 0) == min(8, members)


def test_churn_plan_and_pick_fraction_are_seeded() -> None:
    plan = churn_plan(random.Random(1), 10.0, 100.0, 50)
    assert plan == churn_plan(random.Random(1), 10.0, 100.0, 50)
    assert len(plan) == 100 and sum(1 for _, k in plan if k == "join") == 50
    assert all(10.0 <= t <= 110.0 for t, _ in plan) and plan == sorted(plan)
    picked = pick_fraction(random.Random(1), list(range(100)), 0.3)
    assert len(picked) == 30 and picked == sorted(picked)
    with pytest.raises(InvalidArgumentError):
        pick_fraction(random.Random(1), [1], 1.5)


def test_params_are_validated() -> None:
    for bad in (
        {"nodes": 1},
        {"loss": 1.0},
        {"dead": 0.6, "adversarial": 0.4},
        {"build": "magic"},
        {"adversary_mode": "rude"},
    ):
        with pytest.raises(InvalidArgumentError):
            SimParams(**bad).validate()
    assert SimParams(nodes=10).build_mode == "join"
    assert SimParams(nodes=10, join_limit=5).build_mode == "oracle"


def toy(**kw: object) -> dict:
    result = run({"seed": 5, "nodes": 200, "lookups": 100, **kw}, core_factory=ToyCore)
    for key in ("seconds", "cpu_seconds", "peak_rss_mb", "build_seconds"):
        result.pop(key)
    return result


def test_toy_network_same_seed_same_result_and_finds_closest() -> None:
    a, b = toy(), toy()
    assert a == b
    assert toy(seed=6) != a
    assert a["finished"] == 100 and a["success_rate"] >= 0.97


def test_toy_oracle_build_equals_converged_network() -> None:
    r = toy(build="oracle")
    assert r["build"] == "oracle" and r["success_rate"] == 1.0 and r["hops_p99"] <= 4


def test_toy_churn_departs_and_joins() -> None:
    r = toy(churn=0.2)
    assert r["left"] + r["crashed"] == 40 == r["joined"]
    assert r["finished"] == 100


def test_toy_colluding_liars_hurt_an_undefended_core() -> None:
    # The toy core has no disjoint paths: colluders steer it away (the attack works).
    honest = toy(nodes=300)["success_rate"]
    attacked = toy(nodes=300, adversarial=0.3)["success_rate"]
    assert attacked < honest - 0.2
