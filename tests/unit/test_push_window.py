"""PushWindow: blocks offered by an ingest thread, taken in batches on the loop."""

from __future__ import annotations

import asyncio
import threading
import time

from hashmesh.ids import ContentId
from hashmesh.push_window import PushWindow


def _block(i: int, size: int = 100) -> tuple[ContentId, bytes]:
    data = bytes([i % 256]) * size
    return ContentId.of(data, ContentId.RAW), data


async def _offer_in_thread(window: PushWindow, blocks: list[tuple[ContentId, bytes]]) -> None:
    await asyncio.to_thread(lambda: [window.offer(c, d) for c, d in blocks])


async def test_batches_keep_order_and_budget_and_end_empty() -> None:
    window = PushWindow(asyncio.get_running_loop(), limit=10_000)
    blocks = [_block(i) for i in range(10)]
    await _offer_in_thread(window, blocks)
    await asyncio.sleep(0)  # the offers' callbacks run
    window.end()
    first = await window.take(250)  # two blocks of 100 fit, a third does not
    second = await window.take(10)  # at least one block, even past the budget
    rest = await window.take(10_000)
    assert [len(first), len(second), len(rest)] == [2, 1, 7]
    assert first + second + rest == blocks
    assert window.offered == [c for c, _ in blocks]
    assert await window.take(10_000) == []


async def test_a_full_window_holds_the_ingest_until_a_release() -> None:
    window = PushWindow(asyncio.get_running_loop(), limit=250)
    offering = asyncio.ensure_future(_offer_in_thread(window, [_block(i) for i in range(4)]))
    first = await asyncio.wait_for(window.take(1_000), 5)
    await asyncio.sleep(0.2)
    # 2 blocks fill the window: the third waits for them to be released
    assert len(first) + len(window._queue) == 2
    assert not offering.done()
    got = list(first)
    window.release(first)
    while len(got) < 4:
        batch = await asyncio.wait_for(window.take(1_000), 5)
        got += batch
        window.release(batch)
    await asyncio.wait_for(offering, 5)
    assert [d[0] for _, d in got] == [0, 1, 2, 3]


async def test_close_frees_a_waiting_ingest_and_drops_what_follows() -> None:
    window = PushWindow(asyncio.get_running_loop(), limit=100)
    offering = asyncio.ensure_future(_offer_in_thread(window, [_block(i) for i in range(3)]))
    await asyncio.sleep(0.2)
    assert not offering.done()  # the second block waits: the first holds the window
    window.close()
    await asyncio.wait_for(offering, 5)
    await asyncio.sleep(0)
    assert len(window.offered) == 1


def test_a_stalled_window_closes_itself() -> None:
    loop = asyncio.new_event_loop()
    try:
        window = PushWindow(loop, limit=100, stall=0.3)
        done = threading.Event()

        def ingest() -> None:
            for i in range(3):
                window.offer(*_block(i))
            done.set()

        t0 = time.monotonic()
        threading.Thread(target=ingest, daemon=True).start()
        assert done.wait(5)  # nobody releases: it gives up after ``stall``
        assert 0.25 < time.monotonic() - t0 < 3
        loop.run_until_complete(asyncio.sleep(0))
        assert len(window.offered) == 1
    finally:
        loop.close()
