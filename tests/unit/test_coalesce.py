"""Group commit: concurrent submissions share flushes; one bad request fails alone."""

import asyncio

import pytest

from hashmesh.coalesce import Coalescer
from hashmesh.errors import CapacityError


async def test_concurrent_submits_share_flushes() -> None:
    calls: list[list[int]] = []

    async def flush(key, items: list[int]) -> list[int]:
        calls.append(list(items))
        await asyncio.sleep(0.01)  # like an fsync
        return [i * 10 for i in items]

    c: Coalescer[int, int] = Coalescer(flush)
    results = await asyncio.gather(*(c.submit([i, i + 1000]) for i in range(50)))
    assert results == [[i * 10, (i + 1000) * 10] for i in range(50)]
    assert len(calls) < 10  # 50 callers, a handful of commits
    assert sorted(x for call in calls for x in call) == sorted([*range(50), *range(1000, 1050)])


async def test_a_failing_request_does_not_fail_the_others() -> None:
    async def flush(key, items: list[int]) -> list[int]:
        await asyncio.sleep(0)
        if any(i < 0 for i in items):
            raise CapacityError("storage capacity exceeded")
        return items

    c: Coalescer[int, int] = Coalescer(flush)
    outcomes = await asyncio.gather(*(c.submit([i]) for i in (1, 2, -3, 4)), return_exceptions=True)
    assert outcomes[0] == [1] and outcomes[1] == [2] and outcomes[3] == [4]
    assert isinstance(outcomes[2], CapacityError)


async def test_keys_are_committed_separately() -> None:
    seen: list[tuple[object, list[str]]] = []

    async def flush(key, items: list[str]) -> list[str]:
        seen.append((key, list(items)))
        await asyncio.sleep(0)
        return items

    c: Coalescer[str, str] = Coalescer(flush)
    await asyncio.gather(c.submit(["a"], key="x"), c.submit(["b"], key="y"))
    assert all(len({k}) == 1 for k, _ in seen)
    assert {k for k, _ in seen} == {"x", "y"}
    with pytest.raises(CapacityError):

        async def bad(key, items):
            raise CapacityError("full")

        await Coalescer(bad).submit([1])
