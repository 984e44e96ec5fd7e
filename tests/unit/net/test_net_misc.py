"""Token bucket, transport config, loop choice."""

from __future__ import annotations

import pytest

from hashmesh.config import DhtConfig, NodeConfig
from hashmesh.errors import InvalidArgumentError
from hashmesh.net import TransportConfig
from hashmesh.net.loop import loop_factory, run
from hashmesh.net.ratelimit import TokenBucket


def test_token_bucket() -> None:
    b = TokenBucket(rate=10, burst=3, now=0.0)
    assert [b.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert not b.take(0.05)
    assert b.take(0.1)
    assert not b.take(0.1)
    assert [b.take(100.0) for _ in range(4)] == [True, True, True, False]  # capped at burst


def test_config_from_node_and_validation() -> None:
    cfg = TransportConfig.from_node(
        NodeConfig(max_frame=1 << 20, max_connections=9),
        DhtConfig(puzzle_difficulty=2),
        idle_timeout=5,
    )
    assert (cfg.max_frame, cfg.max_connections, cfg.puzzle_difficulty, cfg.idle_timeout) == (
        1 << 20,
        9,
        2,
        5,
    )
    with pytest.raises(InvalidArgumentError):
        TransportConfig.from_node(NodeConfig(), nope=1)
    for bad in (
        {"max_frame": 10},
        {"request_timeout": 0},
        {"max_connections": 0},
        {"rate_limit": -1},
        {"puzzle_difficulty": 99},
    ):
        with pytest.raises(InvalidArgumentError):
            TransportConfig(**bad)


def test_run_uses_uvloop_when_installed() -> None:
    async def name() -> str:
        import asyncio

        return type(asyncio.get_running_loop()).__module__

    module = run(name())
    assert module.startswith("uvloop") == (loop_factory() is not None)
