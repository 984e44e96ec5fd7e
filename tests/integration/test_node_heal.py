"""A node replaces a corrupt copy of a block with a good one from a peer: when its own
read meets it (the read then returns the right bytes) and when a peer asked for it."""

import asyncio
import contextlib
import dataclasses
import os
import random
from collections.abc import AsyncIterator

import pytest
from tests.integration.test_node_inprocess import start_net, stop_all

from hashmesh.config import Config, NodeConfig
from hashmesh.errors import IntegrityError
from hashmesh.ids import ContentId
from hashmesh.node import Node

MiB = 1024 * 1024


def corrupt(node: Node, cid: ContentId) -> None:
    """Flip one byte in the middle of ``node``'s block file for ``cid``."""
    path = node.store._repo.blocks.path_of(cid.digest)
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size // 2)
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 0xFF]))


async def holders(nodes: list[Node], cid: ContentId) -> list[Node]:
    return [n for n in nodes if await n.store.has_block(cid)]


async def intact(node: Node, root: ContentId) -> bool:
    report = await node.store.verify(str(root))
    return not report.bad_blocks and not report.missing_blocks


async def put_file(nodes: list[Node], tmp_path) -> tuple[bytes, ContentId, list[ContentId]]:
    data = random.Random(8).randbytes(8 * MiB)  # fixed content: fixed chunk boundaries
    src = tmp_path / "f.bin"
    src.write_bytes(data)
    root = ContentId.parse((await nodes[0].put_path(src))["file"]["id"])
    chunks = [c for c in await nodes[0].store.dag_blocks(root) if not c.is_manifest]
    assert len(chunks) >= 4, f"the tests need 4 chunks, the file has {len(chunks)}"
    return data, root, chunks


@contextlib.asynccontextmanager
async def net_with_file(
    tmp_path, count: int
) -> AsyncIterator[tuple[list[Node], bytes, ContentId, list[ContentId]]]:
    """``count`` joined nodes and an 8 MiB file put on the first; all stopped after."""
    nodes = await start_net(tmp_path, count)
    try:
        yield nodes, *await put_file(nodes, tmp_path)
    finally:
        await stop_all(nodes)


async def test_reads_heal_corrupt_local_blocks(tmp_path) -> None:
    async with net_with_file(tmp_path, 4) as (nodes, data, root, chunks):
        reader = nodes[0]  # the writer holds every block
        corrupt(reader, chunks[1])
        with pytest.raises(IntegrityError):  # the store alone refuses the bad bytes
            await reader.store.read(str(root))
        assert await reader.read(str(root)) == data
        assert reader.healed_blocks == 1 and await intact(reader, root)

        corrupt(reader, chunks[2])  # met in the middle of a stream
        stream = await reader.iter_read(str(root))
        assert b"".join([piece async for piece in stream]) == data
        corrupt(reader, chunks[3])
        out = tmp_path / "out.bin"
        assert (await reader.get_to_path(str(root), out)).read_bytes() == data
        assert reader.healed_blocks == 3 and await intact(reader, root)


async def test_corrupt_copies_served_to_a_peer_are_healed(tmp_path) -> None:
    async with net_with_file(tmp_path, 5) as (nodes, data, root, chunks):
        # a reader that lacks some chunk, and a bad copy of it on the holder it asks first
        for reader in nodes[1:]:
            have = await reader.store.has_blocks(chunks)
            lacking = [c for c, h in zip(chunks, have, strict=True) if not h]
            if lacking:
                break
        assert lacking, "every node holds every chunk: no reader to test with"
        target = lacking[0]
        placed = await reader.holders_for(target.digest, reader.replication)
        first = next(p for p in placed if p.id != reader.me.id)
        bad = next(n for n in nodes if n.me.id == first.id)
        corrupt(bad, target)
        assert await reader.read(str(root)) == data  # from another holder
        for _ in range(100):  # the holder asked for its bad copy heals in the background
            if await intact(bad, target):
                break
            await asyncio.sleep(0.1)
        assert await intact(bad, target) and bad.healed_blocks == 1


async def test_heals_of_one_block_at_once_share_one_fetch(tmp_path) -> None:
    """A read, a served request and the audit can meet one bad copy together: one heal."""
    async with net_with_file(tmp_path, 4) as (nodes, _data, root, chunks):
        node, target = nodes[0], chunks[0]
        fetched: list[ContentId] = []
        fetch = node._fetch_block

        async def counted(cid: ContentId, commit: bool = True) -> bytes:
            fetched.append(cid)
            return await fetch(cid, commit)

        node._fetch_block = counted
        corrupt(node, target)
        node._heal_later(target)
        await asyncio.gather(node._heal_block(target), node._heal_quietly(target))
        assert fetched == [target] and node.healed_blocks == 1 and await intact(node, root)
        await node._heal_block(target)  # the copy is intact now: fetched, but left alone
        assert len(fetched) == 2 and node.healed_blocks == 1


async def test_a_block_corrupt_everywhere_is_an_integrity_error(tmp_path) -> None:
    async with net_with_file(tmp_path, 4) as (nodes, _data, root, chunks):
        for node in await holders(nodes, chunks[0]):
            corrupt(node, chunks[0])
        with pytest.raises(IntegrityError) as err:
            await nodes[0].read(str(root))
        assert err.value.block_id == str(chunks[0])
        assert nodes[0].healed_blocks == 0


async def test_the_audit_finds_and_heals_a_copy_nobody_reads(tmp_path) -> None:
    fast = NodeConfig(
        listen="127.0.0.1:0", health_interval=0.5, audit_rate=256 * MiB, audit_interval=0.2
    )
    nodes = [Node(tmp_path / f"n{i}", dataclasses.replace(Config(), node=fast)) for i in range(4)]
    for node in nodes:
        await node.start()
    try:
        seed = f"{nodes[0].me.host}:{nodes[0].me.port}"
        for node in nodes[1:]:
            assert await node.join([seed]) > 0
        _data, _root, chunks = await put_file(nodes, tmp_path)
        holder = (await holders(nodes[1:], chunks[0]))[0]
        passes = holder.audit_passes
        corrupt(holder, chunks[0])
        for _ in range(200):  # no read: the audit's next pass finds it
            if holder.healed_blocks:
                break
            await asyncio.sleep(0.1)
        assert holder.healed_blocks == 1 and await intact(holder, chunks[0])
        assert holder.audit_passes > passes and holder.audited_bytes > 0
        status = await holder.status()
        assert status["healed_blocks"] == 1 and status["audit_passes"] >= 1
    finally:
        await stop_all(nodes)
