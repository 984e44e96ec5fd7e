"""Arrivals: futures for chunks a fetch stores, and the bytes it hands a reader."""

import asyncio

import pytest

from hashmesh.arrivals import Arrivals
from hashmesh.errors import NotFoundError
from hashmesh.ids import ContentId


def cid(data: bytes) -> ContentId:
    return ContentId.of(data, ContentId.RAW)


def test_bytes_handed_over_are_taken_once() -> None:
    a, b = cid(b"a"), cid(b"b")
    arrivals = Arrivals([a, b], budget=100)
    assert not arrivals.wait_for(a).done()
    assert arrivals.wait_for(cid(b"held already")) is None
    arrivals.arrived(a, b"x" * 40)
    assert arrivals.wait_for(a).done() and arrivals.held == 40
    assert arrivals.take(a) == b"x" * 40
    assert arrivals.take(a) is None  # a second use reads the stored copy
    assert arrivals.held == 0
    assert arrivals.take(b) is None  # not arrived


def test_past_the_budget_the_reader_reads_the_store() -> None:
    a, b, c = cid(b"a"), cid(b"b"), cid(b"c")
    arrivals = Arrivals([a, b, c], budget=100)
    arrivals.arrived(a, b"x" * 60)
    arrivals.arrived(b, b"y" * 60)  # would hold 120 > 100: stored, not kept
    assert arrivals.wait_for(b).done()
    assert arrivals.take(b) is None and arrivals.held == 60
    assert arrivals.take(a) == b"x" * 60
    arrivals.arrived(c, b"z" * 60)  # room again
    assert arrivals.take(c) == b"z" * 60


def test_a_chunk_arrives_once() -> None:
    a = cid(b"a")
    arrivals = Arrivals([a], budget=100)
    arrivals.arrived(a, b"x" * 10)
    arrivals.arrived(a, b"y" * 10)  # fetched twice (a retry): the first bytes stay
    assert arrivals.held == 10 and arrivals.take(a) == b"x" * 10


async def test_chunks_the_fetch_did_not_store_fail_with_its_error() -> None:
    a, b = cid(b"a"), cid(b"b")
    arrivals = Arrivals([a, b])

    async def fetch() -> int:
        arrivals.arrived(a, b"x")
        raise NotFoundError("no holder answered")

    task = asyncio.get_running_loop().create_task(fetch())
    task.add_done_callback(arrivals.ended)
    with pytest.raises(NotFoundError):
        await task
    await asyncio.sleep(0)
    assert arrivals.wait_for(a).result() is None
    with pytest.raises(NotFoundError, match="no holder answered"):
        arrivals.wait_for(b).result()


def test_bytes_handed_over_before_their_commit_stay_until_it_is_over() -> None:
    a, b = cid(b"a"), cid(b"b")
    arrivals = Arrivals([a, b], budget=10)
    arrivals.arrived(a, b"x" * 40, stored=False)  # over the budget: kept all the same
    assert arrivals.wait_for(a).done() and arrivals.held == 40
    assert arrivals.take(a) == b"x" * 40
    assert arrivals.take(a) == b"x" * 40  # not in the store yet: a second read gets them
    arrivals.stored([a])  # committed, and taken already: released
    assert arrivals.held == 0 and arrivals.take(a) is None
    arrivals.arrived(b, b"y" * 40, stored=False)
    arrivals.stored([b])  # committed before the reader came: given once, as stored ones
    assert arrivals.take(b) == b"y" * 40
    assert arrivals.take(b) is None and arrivals.held == 0
