"""Several real nodes in one event loop, talking TLS over 127.0.0.1."""

import asyncio
import dataclasses
import errno
import os
from collections import Counter

import pytest

from hashmesh.coalesce import Coalescer
from hashmesh.config import Config, NodeConfig
from hashmesh.errors import (
    CapacityError,
    InvalidArgumentError,
    NotFoundError,
    QuorumError,
    RequestTimeoutError,
)
from hashmesh.ids import ContentId
from hashmesh.node import Node


def cfg(replication: int = 3) -> Config:
    return dataclasses.replace(
        Config(),
        node=NodeConfig(listen="127.0.0.1:0", replication=replication, health_interval=0.5),
    )


async def start_net(tmp_path, n: int, replication: int = 3) -> list[Node]:
    nodes = [Node(tmp_path / f"n{i}", cfg(replication)) for i in range(n)]
    for node in nodes:
        await node.start()
    seed = f"{nodes[0].me.host}:{nodes[0].me.port}"
    for node in nodes[1:]:
        assert await node.join([seed]) > 0
    for node in nodes:  # a second round so early joiners learn of late ones
        await node.driver.lookup(node.node_id.value)
    return nodes


async def stop_all(nodes: list[Node]) -> None:
    for node in nodes:
        await node.stop(graceful=False)


async def test_put_on_one_get_from_another(tmp_path) -> None:
    nodes = await start_net(tmp_path, 5)
    try:
        data = os.urandom(3 * 1024 * 1024 + 17)
        res = await nodes[0].put_bytes(data, name="blob.bin")
        root = ContentId.parse(res["file"]["id"])
        assert res["min_acks"] >= 3
        # every block is on exactly its 3 closest nodes (plus the writer's own copy)
        for cid in await nodes[0].store.dag_blocks(root):
            holders = [n for n in nodes if await n.store.has_block(cid)]
            assert len(holders) >= 3
        reader = nodes[4]
        assert await reader.read(str(root)) == data
        assert await reader.read(str(root), offset=1000, length=50) == data[1000:1050]
    finally:
        await stop_all(nodes)


async def test_unknown_id_is_not_found(tmp_path) -> None:
    nodes = await start_net(tmp_path, 3)
    try:
        missing = ContentId.of(b"never stored", ContentId.MANIFEST)
        with pytest.raises(NotFoundError):
            await nodes[1].read(str(missing))
    finally:
        await stop_all(nodes)


async def test_put_many_and_get_many_small_objects(tmp_path) -> None:
    nodes = await start_net(tmp_path, 4)
    try:
        items = [(f"obj{i}", os.urandom(4096)) for i in range(300)]
        infos = await nodes[0].put_many(items)
        ids = [i["id"] for i in infos]
        got = await nodes[3].get_many(ids)
        assert got == [d for _, d in items]
        # every block of every object has 3 holders
        for cid in await nodes[0].store.dag_blocks_many(ids[:20]):
            held = sum([await n.store.has_block(cid) for n in nodes])
            assert held >= 3
    finally:
        await stop_all(nodes)


async def test_small_puts_place_while_committing_locally(tmp_path) -> None:
    """Concurrent one-block put_bytes travel to their holders alongside the local
    commit: each is stored here and on its closest nodes when the put returns; a put
    that cannot reach the write quorum fails."""
    nodes = await start_net(tmp_path, 4)
    try:
        blobs = [os.urandom(4096) for _ in range(40)] + [b"x", b""]
        results = await asyncio.gather(*(nodes[0].put_bytes(b) for b in blobs))
        for blob, res in zip(blobs, results, strict=True):
            cid = ContentId.parse(res["file"]["id"])
            assert (await nodes[0].store.stat(cid)).size == len(blob)
            if blob:
                assert res["min_acks"] >= 3 and cid == ContentId.of(blob, ContentId.RAW)
                assert sum([await n.store.has_block(cid) for n in nodes]) >= 3
        assert await nodes[2].read(results[5]["file"]["id"]) == blobs[5]

        async def full(*_args, **_kwargs):
            raise CapacityError("storage capacity exceeded")

        writer = nodes[0]
        commits = writer._small_puts
        writer._small_puts = Coalescer(full)  # the local commit fails ...
        blob = os.urandom(4096)
        cid = ContentId.of(blob, ContentId.RAW)
        with pytest.raises(CapacityError):
            await writer.put_bytes(blob)
        assert cid.digest not in writer._cids  # ... so repair does not watch what is not here
        assert writer.planner.backlog == 0
        real = writer.store.put_many
        writer.store.put_many = full  # put_many's local commit fails too
        with pytest.raises(CapacityError):
            await writer.put_many([("a", os.urandom(100)), ("b", os.urandom(200))])
        writer.store.put_many, writer._small_puts = real, commits
        assert writer.planner.backlog == 0
        for n in nodes[1:3]:
            await n.stop(graceful=False)
        with pytest.raises(QuorumError):
            await nodes[0].put_bytes(os.urandom(4096))
    finally:
        await stop_all([nodes[0], nodes[3]])


async def test_small_reads_return_before_their_cache_commit(tmp_path) -> None:
    """Concurrent one-block reads get verified bytes at once; the cache commit follows in
    the background, and a failing one (a full disk) does not fail the read."""
    nodes = await start_net(tmp_path, 4, replication=2)
    try:
        items = [(f"s{i}", os.urandom(4096)) for i in range(120)]
        ids = [i["id"] for i in await nodes[0].put_many(items)]
        reader = nodes[3]
        cids = [ContentId.parse(i) for i in ids]
        lacking = [
            c for c, h in zip(cids, await reader.store.has_blocks(cids), strict=True) if not h
        ]
        assert len(lacking) > 20
        want = {c: d for c, (_, d) in zip(cids, items, strict=True)}
        got = await asyncio.gather(*(reader.read(str(c)) for c in lacking[:20]))
        assert got == [want[c] for c in lacking[:20]]
        await asyncio.wait_for(asyncio.gather(*reader._caching), 10)
        assert all(await reader.store.has_blocks(lacking[:20]))  # cached after all
        assert reader._cache_bytes == 20 * 4096

        async def full(_key, items):
            raise CapacityError("disk full")

        reader._block_writes = Coalescer(full)
        rest = lacking[20:30]
        got = await asyncio.gather(*(reader.read(str(c)) for c in rest))
        assert got == [want[c] for c in rest]
        await asyncio.wait_for(asyncio.gather(*reader._caching), 10)
        assert not any(await reader.store.has_blocks(rest))
        assert reader._cache_bytes == 20 * 4096
    finally:
        await stop_all(nodes)


async def test_repair_restores_placement_after_a_node_dies(tmp_path) -> None:
    import asyncio
    import time

    from hashmesh.placement import closest

    nodes = await start_net(tmp_path, 5)
    victim = None

    async def misplaced(alive: list[Node], cids: list[ContentId]) -> int:
        ids = [n.node_id.value for n in alive]
        bad = 0
        for c in cids:
            for t in closest(c.digest, ids, 3):
                holder = next(n for n in alive if n.node_id.value == t)
                bad += not await holder.store.has_block(c)
        return bad

    try:
        # find a file and a node whose death leaves some block off its 3 closest live nodes
        for attempt in range(10):
            res = await nodes[0].put_bytes(os.urandom(2 * 1024 * 1024), name=f"r{attempt}")
            cids = await nodes[0].store.dag_blocks(ContentId.parse(res["file"]["id"]))
            for n in nodes[1:]:
                if await misplaced([m for m in nodes if m is not n], cids):
                    victim = n
                    break
            if victim is not None:
                break
        assert victim is not None
        await victim.stop(graceful=False)
        alive = [n for n in nodes if n is not victim]
        assert await misplaced(alive, cids) > 0
        deadline = time.monotonic() + 30
        while await misplaced(alive, cids):
            assert time.monotonic() < deadline, "repair did not restore placement in 30 s"
            await asyncio.sleep(0.2)
        assert sum(n.repaired_blocks for n in alive) > 0
    finally:
        await stop_all([n for n in nodes if n is not victim])


async def test_large_file_streams_to_holders_during_ingest(tmp_path) -> None:
    nodes = await start_net(tmp_path, 4)
    try:
        src = tmp_path / "big.bin"
        data = os.urandom(20 * 1024 * 1024)
        src.write_bytes(data)
        res = await nodes[0].put_path(src)
        assert res["min_acks"] >= 3
        root = ContentId.parse(res["file"]["id"])
        cids = await nodes[0].store.dag_blocks(root)
        held = [await n.store.has_blocks(cids) for n in nodes]
        assert all(sum(h[i] for h in held) >= 3 for i in range(len(cids)))
        assert await nodes[3].read(str(root)) == data
    finally:
        await stop_all(nodes)


async def test_a_put_keeps_several_pushes_in_flight_per_peer(tmp_path) -> None:
    nodes = await start_net(tmp_path, 3)  # replication 3: every block goes to both others
    writer = nodes[0]
    inflight: Counter[bytes] = Counter()
    peak: Counter[bytes] = Counter()
    send = writer._request_put_many

    async def counted(peer, group):
        inflight[peer.id] += 1
        peak[peer.id] = max(peak[peer.id], inflight[peer.id])
        try:
            return await send(peer, group)
        finally:
            inflight[peer.id] -= 1

    writer._request_put_many = counted
    try:
        src = tmp_path / "big.bin"
        src.write_bytes(os.urandom(24 * 1024 * 1024))  # about 20 blocks, 2 MiB per request
        res = await writer.put_path(src)
        assert res["min_acks"] >= 3
        assert len(peak) == 2
        assert min(peak.values()) >= 3, peak  # several requests at a time per peer
    finally:
        await stop_all(nodes)


async def test_a_put_sends_its_chunks_from_the_ingest_and_reads_the_rest_once(tmp_path) -> None:
    nodes = await start_net(tmp_path, 3)  # replication 3: two remote copies of every block
    writer = nodes[0]
    loaded: Counter[ContentId] = Counter()
    get_upto = writer.store.get_blocks_upto

    async def counted(cids, budget, corrupt=None):
        out = await get_upto(cids, budget, corrupt)
        for cid, data in zip(cids, out, strict=False):
            if data is not None:
                loaded[ContentId.parse(str(cid))] += 1
        return out

    writer.store.get_blocks_upto = counted
    try:
        src = tmp_path / "big.bin"
        src.write_bytes(os.urandom(12 * 1024 * 1024))
        res = await writer.put_path(src)
        assert res["min_acks"] >= 3
        blocks = await writer.store.dag_blocks(ContentId.parse(res["file"]["id"]))
        # the chunks went out with the bytes the ingest had in hand; only the
        # manifests are read back, each once for both copies
        assert set(loaded) == {c for c in blocks if c.is_manifest}
        assert max(loaded.values()) == 1, loaded
        for node in nodes[1:]:
            assert all(await node.store.has_blocks(blocks))
    finally:
        await stop_all(nodes)


async def test_health_checks_in_a_network_larger_than_k(tmp_path) -> None:
    import asyncio

    from hashmesh.config import DhtConfig

    small_k = dataclasses.replace(
        cfg(2),
        dht=DhtConfig(k=3),
        node=NodeConfig(listen="127.0.0.1:0", replication=2, health_interval=0.2),
    )
    nodes = [Node(tmp_path / f"k{i}", small_k) for i in range(6)]
    for node in nodes:
        await node.start()
    try:
        seed = f"{nodes[0].me.host}:{nodes[0].me.port}"
        for node in nodes[1:]:
            await node.join([seed])
        await asyncio.sleep(1.5)
        report = nodes[0].peer_report()
        assert len(report) > 3  # more peers than k: the sampled branch runs
        assert all(r["alive"] for r in report)
        assert sum(1 for r in report if r["last_seen"] > 0) >= 3
        data = os.urandom(50_000)
        res = await nodes[1].put_bytes(data, name="k.bin")  # placement through DHT lookups
        assert await nodes[5].read(res["file"]["id"]) == data
        # roots are announced in batches (provide_many) once the network has k nodes
        more = await asyncio.gather(*(nodes[1].put_bytes(os.urandom(900)) for _ in range(30)))
        roots = [ContentId.parse(r["file"]["id"]).digest for r in [res, *more]]
        for _ in range(100):
            if not nodes[1]._to_announce and nodes[1]._announcer.done():
                break
            await asyncio.sleep(0.05)
        assert set(roots) <= nodes[1].driver.protocol._provided
        for root in roots[:5]:
            found = await nodes[4].driver.find_providers(root, timeout=10)
            assert nodes[1].node_id.value in {p.node_id.value for p in found.providers}
    finally:
        await stop_all(nodes)


async def test_batched_dht_calls_over_tls(tmp_path) -> None:
    """put_many / get_many / lookup_many between real nodes, with one node gone."""
    from hashmesh import dht

    nodes = await start_net(tmp_path, 6)
    try:
        records = [dht.ValueRecord.of(os.urandom(80)) for _ in range(300)]
        done = await nodes[0].driver.put_many(records)
        assert len(done.stored_at) == 300 and min(done.stored_at) >= 3
        assert done.messages < 300  # batched: far fewer requests than records
        await nodes[1].stop(graceful=False)  # a holder of most records goes away
        keys = [r.key for r in records] + [os.urandom(32)]
        got = await nodes[5].driver.get_many(keys, timeout=20)
        assert got.records[:-1] == records and got.records[-1] is None
        found = await nodes[4].driver.lookup_many(keys[:50], timeout=20)
        live = {n.node_id.value for n in nodes if n is not nodes[1] and n is not nodes[4]}
        for closest in found.closest:
            assert {p.node_id.value for p in closest} == live
    finally:
        await stop_all([n for n in nodes if n is not nodes[1]])


async def test_concurrent_lone_dht_calls_are_merged(tmp_path) -> None:
    """Lone put/get/lookup calls made together run as one batched call each; every
    caller gets its own result, a bad record fails alone, a lone get stays lone and a
    lone put uses the region cache."""
    from hashmesh import dht
    from hashmesh.errors import RecordError

    nodes = await start_net(tmp_path, 6)
    try:
        writer, reader = nodes[0].driver, nodes[5].driver
        records = [dht.ValueRecord.of(os.urandom(60)) for _ in range(40)]
        bad = dht.ValueRecord(os.urandom(32), b"does not hash to the key")
        outcomes = await asyncio.gather(
            *(writer.put(r) for r in records), writer.put(bad), return_exceptions=True
        )
        assert isinstance(outcomes[-1], RecordError)
        assert all(o.stored_at >= 3 for o in outcomes[:-1])
        assert writer.merged_calls == 40
        # two puts of one key in one turn: both run (the second in the next batch)
        same = await asyncio.gather(writer.put(records[0]), writer.put(records[0]))
        assert [d.stored_at >= 3 for d in same] == [True, True]
        # a lone put runs as a batch of one: its region was just looked up, so it
        # sends its STORE_MANY requests and nothing else
        sent = writer.sent
        alone = await writer.put(dht.ValueRecord.of(os.urandom(60)))
        assert alone.stored_at >= 3 and writer.merged_calls == 40
        alone_sent, sent = writer.sent - sent, writer.sent
        assert alone_sent <= len(nodes) - 1
        writer.merge = False  # the core's own put: an iterative lookup first
        full = await writer.put(dht.ValueRecord.of(os.urandom(60)))
        writer.merge = True
        assert full.stored_at >= 3 and writer.sent - sent > alone_sent
        with pytest.raises(InvalidArgumentError):  # alone, a bad key fails as the lone call
            await writer.provide(b"short")

        keys = [r.key for r in records] + [os.urandom(32)]
        got = await asyncio.gather(*(reader.get(k) for k in keys))
        assert [g.record for g in got] == [*records, None]
        assert reader.merged_calls == len(keys)
        found = await asyncio.gather(*(reader.lookup(k) for k in keys[:10]))
        others = {n.node_id.value for n in nodes if n is not nodes[5]}
        assert all({p.node_id.value for p in f.closest} == others for f in found)
        assert reader.merged_calls == len(keys) + 10

        lone = await reader.get(records[3].key)  # nobody to merge with
        assert lone.record == records[3] and reader.merged_calls == len(keys) + 10

        provided = await asyncio.gather(*(writer.provide(k) for k in keys[:12]))
        assert all(isinstance(p, dht.ProvideDone) and p.stored_at >= 3 for p in provided)
        assert writer.merged_calls == 40 + 12
        found = await reader.find_providers(keys[7])
        assert nodes[0].node_id.value in {p.node_id.value for p in found.providers}

        # a bad key fails its own call only, also inside a merged batch
        bad = await asyncio.gather(
            reader.get(keys[1]), reader.get(b"short"), return_exceptions=True
        )
        assert bad[0].record == records[1] and isinstance(bad[1], InvalidArgumentError)
        # closing the driver ends the calls still waiting at once, not at their timeout
        waiting = asyncio.gather(
            *(reader.lookup(os.urandom(32), timeout=60) for _ in range(5)),
            return_exceptions=True,
        )
        await asyncio.sleep(0)
        t0 = asyncio.get_running_loop().time()
        await reader.close()
        assert all(isinstance(r, asyncio.CancelledError) for r in await waiting)
        assert asyncio.get_running_loop().time() - t0 < 5
    finally:
        await stop_all(nodes)


async def test_a_put_whose_disk_fills_mid_ingest_fails_cleanly(tmp_path) -> None:
    """Chunks already on their way to holders when the local write fails: the put
    raises the typed error (nothing hangs on the push window), repair does not watch
    blocks that are not here, and the next put works."""
    nodes = await start_net(tmp_path, 4)
    writer = nodes[0]
    blocks = writer.store._repo.blocks
    real_write = blocks.write_file
    written = 0

    def failing(digest, header, payload):
        nonlocal written
        written += 1
        if written > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(digest, header, payload)

    blocks.write_file = failing
    try:
        src = tmp_path / "big.bin"
        src.write_bytes(os.urandom(24 * 1024 * 1024))
        with pytest.raises(CapacityError):
            await asyncio.wait_for(writer.put_path(src), 60)
        assert written > 3
        held = await writer.store.has_blocks(list(writer._cids.values()))
        assert all(held), "repair watches a block this node does not hold"
        blocks.write_file = real_write
        res = await writer.put_path(src)
        assert res["min_acks"] >= 3
        assert await nodes[2].read(res["file"]["id"]) == src.read_bytes()
    finally:
        blocks.write_file = real_write
        await stop_all(nodes)


async def test_a_put_whose_pushers_fail_places_its_blocks_after_the_ingest(tmp_path) -> None:
    """Placement failing while the ingest runs (a lookup timing out in a large
    network) does not fail the put: the blocks it did not place go after the commit."""
    nodes = await start_net(tmp_path, 4)
    writer = nodes[0]
    real = writer.holders_many
    failed = 0

    async def flaky(keys, count):
        nonlocal failed
        if not failed:  # the first pusher's placement
            failed += 1
            raise RequestTimeoutError("lookup timed out")
        return await real(keys, count)

    writer.holders_many = flaky
    try:
        src = tmp_path / "big.bin"
        src.write_bytes(os.urandom(24 * 1024 * 1024))
        res = await asyncio.wait_for(writer.put_path(src), 60)
        assert failed == 1
        assert res["min_acks"] >= 3
        blocks = await writer.store.dag_blocks(ContentId.parse(res["file"]["id"]))
        held = [await n.store.has_blocks(blocks) for n in nodes]
        assert all(sum(h[i] for h in held) >= 3 for i in range(len(blocks)))
    finally:
        await stop_all(nodes)
