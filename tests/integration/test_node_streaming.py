"""Reads of large files a node only partly holds: ranged reads fetch only the chunks
in the range; cat streams while the missing chunks are fetched; get writes the
whole file or tree, or nothing."""

import asyncio
import itertools
import os
import threading

import pytest
from tests.integration.test_node_inprocess import start_net, stop_all

from hashmesh.errors import NotFoundError
from hashmesh.ids import ContentId
from hashmesh.node import Node
from hashmesh.store.reader import plan as plan_pieces

MiB = 1024 * 1024


async def put_large(nodes: list[Node], tmp_path, size: int = 24 * MiB) -> tuple[bytes, ContentId]:
    data = os.urandom(size)
    src = tmp_path / "large.bin"
    src.write_bytes(data)
    res = await nodes[0].put_path(src)
    return data, ContentId.parse(res["file"]["id"])


async def lacking(node: Node, root: ContentId, writer: Node) -> list[ContentId]:
    """The raw chunks of ``root`` that ``node`` does not hold."""
    cids = [c for c in await writer.store.dag_blocks(root) if not c.is_manifest]
    have = await node.store.has_blocks(cids)
    return [c for c, h in zip(cids, have, strict=True) if not h]


async def most_lacking(nodes: list[Node], root: ContentId) -> tuple[Node, list[ContentId]]:
    best = max([(await lacking(n, root, nodes[0]), n) for n in nodes[1:]], key=lambda t: len(t[0]))
    assert len(best[0]) >= 2, "every node holds nearly every chunk; the test needs gaps"
    return best[1], best[0]


async def test_ranged_read_fetches_only_the_chunks_of_its_range(tmp_path) -> None:
    nodes = await start_net(tmp_path, 5)
    try:
        data, root = await put_large(nodes, tmp_path)
        reader, missing = await most_lacking(nodes, root)
        chunks = await nodes[0].store.chunks_in_range(root)
        target = missing[len(missing) // 2]
        # a range inside one chunk the reader lacks
        before = chunks[: chunks.index(target)]
        offset = sum(map(len, await nodes[0].store.get_blocks(before)))
        got = await reader.read(str(root), offset=offset + 10, length=100)
        assert got == data[offset + 10 : offset + 110]
        still = await lacking(reader, root, nodes[0])
        assert target not in still
        assert set(still) == set(missing) - {target}  # nothing else was fetched
        # the whole file reads back, the remaining chunks fetched now
        assert await reader.read(str(root)) == data
    finally:
        await stop_all(nodes)


async def test_get_to_path_of_a_partly_held_file(tmp_path) -> None:
    nodes = await start_net(tmp_path, 5)
    try:
        data, root = await put_large(nodes, tmp_path)
        reader, _missing = await most_lacking(nodes, root)
        dest = tmp_path / "out.bin"
        assert await reader.get_to_path(str(root), dest) == dest
        assert dest.read_bytes() == data
        assert await lacking(reader, root, nodes[0]) == []  # fetched chunks are cached
    finally:
        await stop_all(nodes)


async def test_get_writes_fetched_chunks_from_the_bytes_in_hand(tmp_path) -> None:
    nodes = await start_net(tmp_path, 5)
    try:
        half = os.urandom(8 * MiB)
        src = tmp_path / "twice.bin"
        src.write_bytes(half + half)  # the second half repeats the first half's chunks
        root = ContentId.parse((await nodes[0].put_path(src))["file"]["id"])
        reader, missing = await most_lacking(nodes, root)
        reads: list[ContentId] = []
        blocks = reader.store._repo.blocks
        get = blocks.get

        def counted(cid):
            reads.append(cid)
            return get(cid)

        blocks.get = counted
        dest = tmp_path / "out.bin"
        await reader.get_to_path(str(root), dest)
        assert dest.read_bytes() == half + half
        store = nodes[0].store
        plan = await store._run(lambda: [p.cid for p in plan_pieces(store._repo.blocks, root)])
        for cid in missing:  # a use after the first may read the stored copy
            assert reads.count(cid) <= plan.count(cid) - 1, cid
        assert any(plan.count(c) > 1 for c in missing), "no repeated chunk was fetched"
    finally:
        await stop_all(nodes)


@pytest.mark.parametrize("in_order", [True, False])
async def test_a_reader_s_fetch_brings_chunks_about_in_file_order(
    tmp_path, monkeypatch, in_order
) -> None:
    import hashmesh.node as node_module

    monkeypatch.setattr(node_module, "STREAM_PARALLEL", 2)
    nodes = await start_net(tmp_path, 5)
    try:
        _data, root = await put_large(nodes, tmp_path, size=64 * MiB)
        reader, _missing = await most_lacking(nodes, root)
        chunks = await reader._fetch_manifests(root)  # the missing ones, in file order
        sizes = dict(zip(chunks, map(len, await nodes[0].store.get_blocks(chunks)), strict=True))
        waiting = dict.fromkeys(chunks)  # not arrived yet, in file order
        ahead: list[int] = []

        def arrived(cid: ContentId, data: bytes) -> None:
            assert len(data) == sizes[cid]
            # bytes before this chunk still missing: how far ahead of the reader it came
            ahead.append(sum(sizes[c] for c in itertools.takewhile(lambda c: c != cid, waiting)))
            del waiting[cid]

        await reader._fetch_missing(chunks, arrived, early=False, in_order=in_order)
        assert not waiting
        total = sum(sizes.values())
        assert total >= 16 * MiB, "the reader lacks too little for the test"
        window = 2 * (node_module.STREAM_BYTES + 4 * MiB)  # 2 requests, each one chunk over
        if in_order:
            assert max(ahead) <= window, (ahead, total)
        else:  # everything asked at once: blocks land far ahead of the reader
            assert max(ahead) > window, (ahead, total)
    finally:
        await stop_all(nodes)


async def test_get_to_path_of_a_partly_held_directory(tmp_path) -> None:
    nodes = await start_net(tmp_path, 5)
    try:
        src = tmp_path / "tree"
        (src / "sub").mkdir(parents=True)
        files = {f"f{i}.txt": os.urandom(1000 + i * 7000) for i in range(40)}
        files["sub/big.bin"] = os.urandom(6 * MiB)
        for name, data in files.items():
            (src / name).write_bytes(data)
        res = await nodes[0].put_path(src)
        root = ContentId.parse(res["file"]["id"])
        reader, missing = await most_lacking(nodes, root)
        roots = {ContentId.parse(e.id) for e in await nodes[0].store.list_dir(str(root))}
        assert roots & set(missing), "the reader holds every one-chunk file: no gap to test"
        out = tmp_path / "out"
        await reader.get_to_path(str(root), out)
        assert {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} == set(files)
        assert all((out / name).read_bytes() == data for name, data in files.items())
    finally:
        await stop_all(nodes)


async def test_get_to_path_leaves_nothing_when_a_chunk_cannot_be_fetched(tmp_path) -> None:
    nodes = await start_net(tmp_path, 4)
    try:
        _data, root = await put_large(nodes, tmp_path, 16 * MiB)
        reader, missing = await most_lacking(nodes, root)
        await reader.fetch_dags([root], deferred=[])  # the manifests only
        for node in nodes:
            if node is not reader:
                await node.stop(graceful=False)
        out = tmp_path / "out"
        out.mkdir()
        with pytest.raises(NotFoundError):
            await asyncio.wait_for(reader.get_to_path(str(root), out / "f.bin"), 120)
        assert list(out.iterdir()) == []  # neither the file nor its temporary name
        assert not any(await reader.store.has_blocks(missing))
    finally:
        await stop_all([reader])


async def test_cat_streams_before_the_fetch_is_done_and_stops_it_when_closed(
    tmp_path, monkeypatch
) -> None:
    nodes = await start_net(tmp_path, 5)
    try:
        data, root = await put_large(nodes, tmp_path)
        reader, missing = await most_lacking(nodes, root)
        chunks = await nodes[0].store.chunks_in_range(root)
        late = missing[-1]  # held back until the first bytes are out
        assert chunks.index(late) > 0
        release = asyncio.Event()
        cancelled = asyncio.Event()
        fetch_one = Node._get_many_from

        async def gated(self, peer, cids, each, early=False, stored=None):
            try:
                if late in cids:  # the others in its batch come at once
                    others = [c for c in cids if c != late]
                    await fetch_one(self, peer, others, each, early, stored)
                    await release.wait()
                    cids = [late]
                return await fetch_one(self, peer, cids, each, early, stored)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        monkeypatch.setattr(Node, "_get_many_from", gated)
        stream = await reader.iter_read(str(root))
        first = await asyncio.wait_for(anext(stream), 30)
        assert data.startswith(first) and len(first) > 0
        assert late in await lacking(reader, root, nodes[0])  # still being fetched
        await stream.aclose()  # the reader stops: so does its fetch
        await asyncio.wait_for(cancelled.wait(), 10)

        release.set()
        stream = await reader.iter_read(str(root))
        got = b"".join([piece async for piece in stream])
        assert got == data
    finally:
        await stop_all(nodes)


async def test_stopping_a_node_during_a_get_ends_the_get_and_waits_for_its_export(
    tmp_path,
) -> None:
    nodes = await start_net(tmp_path, 4)
    reader = None
    try:
        _data, root = await put_large(nodes, tmp_path, 32 * MiB)
        reader, _missing = await most_lacking(nodes, root)
        out = tmp_path / "out"
        out.mkdir()
        get = asyncio.create_task(reader.get_to_path(str(root), out / "f.bin"))
        await asyncio.sleep(0.05)  # the export runs while chunks are still fetched
        await asyncio.wait_for(reader.stop(graceful=False), 60)
        # the store closed only once no export thread used it any more
        assert not [t for t in threading.enumerate() if t.name.startswith("hashmesh-fed")]
        await asyncio.wait_for(asyncio.wait([get]), 60)
        if get.exception() is not None:  # stopped in time: nothing was left behind
            assert list(out.iterdir()) == []
        else:  # it had finished first
            assert [p.name for p in out.iterdir()] == ["f.bin"]
    finally:
        await stop_all([n for n in nodes if n is not reader])
