"""Closing a store while operations run: they finish or fail cleanly, nothing crashes.

Closing a SQLite connection that another thread is still using can crash the process,
so ``Store.close`` first lets running operations finish (and drops queued ones with a
typed error), and an export never leaves a read behind.
"""

from __future__ import annotations

import asyncio
import os

from hashmesh.errors import StorageError
from hashmesh.store.api import Store
from hashmesh.store.model import FileInfo


async def test_close_while_reads_and_puts_run(tmp_path) -> None:
    store = await Store.init(tmp_path / "r")
    infos = [await store.put_bytes(os.urandom(3000), name=f"{i}") for i in range(40)]
    tasks = [asyncio.ensure_future(store.read(i.id)) for i in infos for _ in range(5)]
    tasks += [asyncio.ensure_future(store.put_bytes(os.urandom(20000))) for _ in range(20)]
    tasks += [
        asyncio.ensure_future(store.get_to_path(infos[0].id, tmp_path / f"out{i}"))
        for i in range(5)
    ]
    await asyncio.sleep(0.005)  # some are running, some still queued
    await store.close()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    ran = dropped = 0
    for result in done:
        if isinstance(result, StorageError):
            dropped += 1
        else:
            assert isinstance(result, bytes | FileInfo | os.PathLike), result
            ran += 1
    assert ran + dropped == len(tasks) and ran > 0
    reopened = await Store.open(tmp_path / "r")  # what was acknowledged is there
    try:
        for info in infos:
            assert len(await reopened.read(info.id)) == 3000
    finally:
        await reopened.close()
