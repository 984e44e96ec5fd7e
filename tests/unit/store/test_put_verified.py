"""put_blocks with the ids a caller has just verified: stored without hashing again."""

from __future__ import annotations

import os

import pytest

from hashmesh.errors import InvalidArgumentError
from hashmesh.ids import ContentId
from hashmesh.store import ingest
from hashmesh.store.api import Store


async def test_verified_blocks_are_not_hashed_again(tmp_path, monkeypatch) -> None:
    store = await Store.init(tmp_path / "r")
    try:
        small, large = os.urandom(3000), os.urandom(300_000)
        cids = [ContentId.of(small, ContentId.RAW), ContentId.of(large, ContentId.RAW)]

        def no_hashing(_data: bytes) -> bytes:
            raise AssertionError("a verified block was hashed again")

        monkeypatch.setattr(ingest, "blake3_digest", no_hashing)
        items = [(small, ContentId.RAW), (large, ContentId.RAW)]
        assert await store.put_blocks(items, ids=cids) == cids
        with pytest.raises(AssertionError):  # without ids the store hashes
            await store.put_blocks([(os.urandom(100), ContentId.RAW)])
        monkeypatch.undo()
        assert await store.get_blocks(cids) == [small, large]  # read back, verified
    finally:
        await store.close()


async def test_ids_must_match_the_items(tmp_path) -> None:
    store = await Store.init(tmp_path / "r")
    try:
        data = os.urandom(100)
        cid = ContentId.of(data, ContentId.RAW)
        with pytest.raises(InvalidArgumentError):
            await store.put_blocks([(data, ContentId.RAW)], ids=[cid, cid])
        with pytest.raises(InvalidArgumentError):
            await store.put_blocks([(data, ContentId.MANIFEST)], ids=[cid])
        assert await store.has_blocks([cid]) == [False]
    finally:
        await store.close()
