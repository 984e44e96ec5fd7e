"""Fixtures: a fresh repository per test, driven from sync code through one event loop.

Hypothesis does not drive ``async def`` tests, so store tests run coroutines
with ``run(...)`` on a loop owned by the fixture.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hashmesh.config import StoreConfig
from hashmesh.store.api import Store

# tiny chunks: many chunk boundaries in small inputs (all blocks live in SQLite)
SMALL = StoreConfig(chunk_min=256, chunk_avg=1024, chunk_max=4096, compress_min_size=512)
# chunks above 64 KiB: blocks are files under blocks/
LARGE = StoreConfig(chunk_min=80 * 1024, chunk_avg=128 * 1024, chunk_max=256 * 1024)


@dataclass
class Env:
    run: Callable[[Any], Any]
    store: Store
    path: Path
    clock: list[float]

    def reopen(self, config: StoreConfig | None = None) -> Store:
        self.run(self.store.close())
        self.store = self.run(
            Store.open(self.path, config or self.store.config, clock=lambda: self.clock[0])
        )
        return self.store


def _env(tmp_path: Path, config: StoreConfig) -> Iterator[Env]:
    loop = asyncio.new_event_loop()
    clock = [1_000_000.0]
    path = tmp_path / "repo"
    store = loop.run_until_complete(
        Store.init(path, config, owner="ab" * 32, clock=lambda: clock[0])
    )
    env = Env(loop.run_until_complete, store, path, clock)
    yield env
    loop.run_until_complete(env.store.close())
    loop.close()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    yield from _env(tmp_path, SMALL)


@pytest.fixture
def big_env(tmp_path: Path) -> Iterator[Env]:
    yield from _env(tmp_path, LARGE)
