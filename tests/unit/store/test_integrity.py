"""Every corrupted or missing block is detected and named; nothing wrong is returned."""

from __future__ import annotations

import random
import sqlite3

import pytest

from hashmesh.errors import IntegrityError
from hashmesh.ids import ContentId


def _blocks_in_db(path):
    with sqlite3.connect(path / "index.sqlite") as conn:
        return [
            (d, k, data_id)
            for d, k, data_id in conn.execute("SELECT digest, kind, inline FROM blocks")
        ]


def _cid(digest: bytes, kind: int) -> ContentId:
    return ContentId(digest, ContentId.MANIFEST if kind else ContentId.RAW)


def _flip(path, digest: bytes, data_id, pos_seed: int) -> None:
    if not data_id:
        f = path / "blocks" / digest.hex()
        raw = bytearray(f.read_bytes())
        i = random.Random(pos_seed).randrange(len(raw))
        raw[i] ^= 0x40
        f.write_bytes(bytes(raw))
    else:
        with sqlite3.connect(path / "index.sqlite") as conn:
            (blob,) = conn.execute(
                "SELECT data FROM block_data WHERE digest = ?", (digest,)
            ).fetchone()
            raw = bytearray(blob)
            i = random.Random(pos_seed).randrange(len(raw))
            raw[i] ^= 0x40
            conn.execute("UPDATE block_data SET data = ? WHERE digest = ?", (bytes(raw), digest))


def _restore(path, digest, data_id, original) -> None:
    if not data_id:
        (path / "blocks" / digest.hex()).write_bytes(original)
    else:
        with sqlite3.connect(path / "index.sqlite") as conn:
            conn.execute("UPDATE block_data SET data = ? WHERE digest = ?", (original, digest))


def _stored(path, digest, data_id) -> bytes:
    if not data_id:
        return (path / "blocks" / digest.hex()).read_bytes()
    with sqlite3.connect(path / "index.sqlite") as conn:
        return conn.execute("SELECT data FROM block_data WHERE digest = ?", (digest,)).fetchone()[0]


def test_every_flipped_block_is_detected_and_named(big_env, tmp_path):
    env = big_env
    rnd = random.Random(11)
    text = b"".join(b"line %d of a compressible text file\n" % i for i in range(20_000))
    files = {
        "random": env.run(env.store.put_bytes(rnd.randbytes(700_000), name="r")),
        "text": env.run(env.store.put_bytes(text, name="t")),
        "small": env.run(env.store.put_bytes(b"tiny", name="s")),
    }
    rows = _blocks_in_db(env.path)
    assert any(not r[2] for r in rows) and any(r[2] for r in rows)
    needs = {f.id: _digests(env, f.id) for f in files.values()}
    for n, (digest, kind, data_id) in enumerate(rows):
        cid = _cid(digest, kind)
        original = _stored(env.path, digest, data_id)
        _flip(env.path, digest, data_id, n)
        with pytest.raises(IntegrityError) as exc:
            env.run(env.store.get_block(cid))
        assert exc.value.block_id == str(cid) and str(cid) in str(exc.value)
        owners = [f for f in files.values() if digest in needs[f.id]]
        for f in owners:
            with pytest.raises(IntegrityError) as exc:
                env.run(env.store.read(f.id))
            assert exc.value.block_id == str(cid)
        report = env.run(env.store.verify())
        assert report.bad_blocks == (str(cid),)
        assert set(report.affected_files) == {f.id for f in owners}
        _restore(env.path, digest, data_id, original)
    assert env.run(env.store.verify()).ok


def _digests(env, file_id):
    return {c.digest for c in env.run(env.store.dag_blocks(file_id))}


def test_verify_lists_all_bad_and_missing(big_env):
    env = big_env
    rnd = random.Random(5)
    info = env.run(env.store.put_bytes(rnd.randbytes(900_000), name="r"))
    rows = [r for r in _blocks_in_db(env.path) if not r[2]]
    assert len(rows) >= 4
    for n, (digest, _kind, data_id) in enumerate(rows[:2]):
        _flip(env.path, digest, data_id, n)
    gone = rows[2][0]
    (env.path / "blocks" / gone.hex()).unlink()
    report = env.run(env.store.verify())
    assert not report.ok
    assert set(report.bad_blocks) == {str(_cid(d, k)) for d, k, _ in rows[:2]}
    assert report.missing_blocks == (str(_cid(gone, rows[2][1])),)
    assert report.affected_files == (info.id,)
    assert env.run(env.store.verify(info.id)).bad_blocks == report.bad_blocks
    with pytest.raises(IntegrityError):
        env.run(env.store.read(info.id))


def test_rewrite_block_replaces_bad_and_missing_copies(big_env):
    env = big_env
    rnd = random.Random(9)
    text = b"".join(b"line %d of a compressible text file\n" % i for i in range(20_000))
    infos = [
        env.run(env.store.put_bytes(rnd.randbytes(700_000), name="r")),
        env.run(env.store.put_bytes(text, name="t")),
        env.run(env.store.put_bytes(b"tiny", name="s")),
    ]
    rows = _blocks_in_db(env.path)
    assert any(not r[2] for r in rows) and any(r[2] for r in rows)  # files and inline
    totals = env.run(env.store.stats())
    good = {d: bytes(env.run(env.store.get_block(_cid(d, k)))) for d, k, _ in rows}
    for n, (digest, _kind, data_id) in enumerate(rows):
        _flip(env.path, digest, data_id, n)
    (env.path / "blocks" / next(d for d, _k, i in rows if not i).hex()).unlink(missing_ok=True)
    assert not env.run(env.store.verify()).ok
    for digest, kind, _ in rows:
        cid = _cid(digest, kind)
        with pytest.raises(IntegrityError):  # a copy that does not match is refused
            env.run(env.store.rewrite_block(cid, good[digest] + b"x"))
        assert env.run(env.store.rewrite_block(cid, good[digest]))
    assert env.run(env.store.verify()).ok
    assert [env.run(env.store.read(i.id)) for i in infos][1] == text
    after = env.run(env.store.stats())
    assert (after.blocks, after.stored_bytes, after.unique_bytes) == (
        totals.blocks,
        totals.stored_bytes,
        totals.unique_bytes,
    )
    digest, kind, _ = rows[0]  # an intact copy is left as it is
    assert env.run(env.store.rewrite_block(_cid(digest, kind), good[digest])) is False
    assert env.run(env.store.stats()) == after
    absent = ContentId.of(b"never stored", ContentId.RAW)
    assert env.run(env.store.rewrite_block(absent, b"never stored")) is False


def test_audit_steps_cover_every_block_once_and_find_the_bad_ones(big_env):
    env = big_env
    rnd = random.Random(3)
    for i in range(4):
        env.run(env.store.put_bytes(rnd.randbytes(400_000 + i), name=f"r{i}"))
    env.run(env.store.put_bytes(b"tiny", name="s"))
    rows = _blocks_in_db(env.path)
    bad = {rows[1][0], rows[-1][0]}
    for n, (digest, _kind, data_id) in enumerate(rows):
        if digest in bad:
            _flip(env.path, digest, data_id, n)
    total = env.run(env.store.stats()).stored_bytes
    cursor, checked, found, steps = b"", 0, [], 0
    while True:  # small steps: a pass takes many, each resuming after the last digest
        after, n, step_bad = env.run(env.store.audit_step(cursor, 50_000))
        checked += n
        found += step_bad
        steps += 1
        if after is None:
            break
        cursor = after
        assert steps < 1000
    assert steps > 3 and checked == total
    assert {c.digest for c in found} == bad and len(found) == 2


def test_get_blocks_upto_reads_no_block_past_its_budget(big_env):
    env = big_env
    info = env.run(env.store.put_bytes(random.Random(3).randbytes(900_000), name="r"))
    chunks = [c for c in env.run(env.store.dag_blocks(info.id)) if not c.is_manifest]
    assert len(chunks) >= 3
    first = bytes(env.run(env.store.get_block(chunks[0])))
    size1 = len(env.run(env.store.get_block(chunks[1])))
    _flip(env.path, chunks[1].digest, 0, 1)
    corrupt: list[ContentId] = []
    got = env.run(env.store.get_blocks_upto(chunks[:3], len(first), corrupt))
    assert got == [first] and corrupt == []  # the bad block past the budget was not read
    got = env.run(env.store.get_blocks_upto(chunks[:3], len(first) + size1, corrupt))
    assert got[:2] == [first, None] and corrupt == [chunks[1]]
