"""Lifecycle of stored content: expiry, garbage collection, verification, statistics.

gc order: (1) drop expired, unpinned files from the index; (2) in one
transaction delete every ``blocks`` row that no indexed file references and no
one holds; (3) only after that commit, unlink their files; (4) remove orphan
block files left by interrupted puts. A crash between (2) and (3) only leaves
orphans, which the next gc removes. gc holds the repository lock exclusively,
so no put can be between writing its blocks and committing its rows meanwhile.
"""

from __future__ import annotations

import os
import sqlite3

from hashmesh.errors import IntegrityError, NotFoundError
from hashmesh.ids import ContentId
from hashmesh.store import capacity
from hashmesh.store.blockstore import BlockRow, cid_of
from hashmesh.store.model import GcReport, Stats, VerifyReport
from hashmesh.store.reader import dag
from hashmesh.store.repo import Repo

_DEAD = (
    "SELECT digest, stored, inline FROM blocks b "
    "WHERE NOT EXISTS (SELECT 1 FROM file_blocks fb WHERE fb.digest = b.digest) "
    "AND NOT EXISTS (SELECT 1 FROM held_blocks h WHERE h.digest = b.digest)"
)


def gc(repo: Repo) -> GcReport:
    with repo.lock(exclusive=True), repo.guarded(None, "collect garbage"):
        now = repo.clock()
        with repo.db.transaction() as conn:
            expired = [
                r[0]
                for r in conn.execute(
                    "SELECT cid FROM files WHERE expires IS NOT NULL AND expires <= ? "
                    "AND pinned = 0 ORDER BY expires",
                    (now,),
                )
            ]
            conn.executemany("DELETE FROM files WHERE cid = ?", [(c,) for c in expired])
        with repo.db.transaction() as conn:
            dead = conn.execute(_DEAD).fetchall()
            conn.executemany("DELETE FROM blocks WHERE digest = ?", [(d[0],) for d in dead])
        repo.blocks.remove_files(d[0] for d in dead if not d[2])
        freed = sum(d[1] for d in dead)
        orphans = 0
        for path in repo.blocks.orphan_files():
            try:
                freed += path.stat().st_size
                os.unlink(path)
                orphans += 1
            except FileNotFoundError:
                pass
        try:
            repo.db.reader().execute("PRAGMA wal_checkpoint(PASSIVE)")
            with repo.db.transaction() as conn:
                conn.execute("PRAGMA incremental_vacuum")
        except sqlite3.Error:
            pass
    return GcReport(
        removed_blocks=len(dead) + orphans, freed_bytes=freed, expired_files=tuple(expired)
    )


def _check(repo: Repo, row: BlockRow) -> str | None:
    """'bad', 'missing' or None for one block row."""
    cid = cid_of(row.digest, row.kind)
    if not row.inline and not repo.blocks.path_of(row.digest).is_file():
        return "missing"
    return None if repo.blocks.intact(cid, row) else "bad"


def audit_step(repo: Repo, after: bytes, budget: int) -> tuple[bytes | None, int, list[ContentId]]:
    """Re-verify the blocks whose digest follows ``after``, in digest order, until about
    ``budget`` stored bytes are checked: (the last digest checked, or None when the
    pass reached the end; stored bytes checked; the blocks found bad or missing)."""
    checked = 0
    bad: list[ContentId] = []
    for row in repo.blocks.iter_rows(after):
        if _check(repo, row) is not None:
            bad.append(cid_of(row.digest, row.kind))
        checked += row.stored
        if checked >= budget:
            return row.digest, checked, bad
    return None, checked, bad


def verify(repo: Repo, cid: ContentId | None = None) -> VerifyReport:
    """Re-hash every block (or one file's blocks); report bad, missing and affected files."""
    conn = repo.db.reader()
    bad: list[bytes] = []
    missing: list[bytes] = []
    checked = 0
    if cid is None:
        for row in repo.blocks.iter_rows():
            checked += 1
            state = _check(repo, row)
            if state == "bad":
                bad.append(row.digest)
            elif state == "missing":
                missing.append(row.digest)
        missing += [
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT digest FROM file_blocks fb "
                "WHERE NOT EXISTS (SELECT 1 FROM blocks b WHERE b.digest = fb.digest)"
            )
        ]
    else:
        fid = conn.execute("SELECT fid FROM files WHERE cid = ?", (str(cid),)).fetchone()
        if fid is not None:
            digests = [
                r[0]
                for r in conn.execute("SELECT digest FROM file_blocks WHERE fid = ?", (fid[0],))
            ]
        else:
            if repo.blocks.row(cid.digest) is None:
                raise NotFoundError(f"{cid} is not stored here")
            try:
                digests = [c.digest for c in dag(repo.blocks, cid)]
            except IntegrityError as exc:  # an unreadable manifest stops the walk
                digests = [cid.digest]
                if exc.block_id:
                    digests.append(ContentId.parse(exc.block_id).digest)
        for digest in digests:
            row = repo.blocks.row(digest)
            checked += 1
            if row is None:
                missing.append(digest)
                continue
            state = _check(repo, row)
            if state == "bad":
                bad.append(digest)
            elif state == "missing":
                missing.append(digest)
    kinds = {r.digest: r.kind for r in (repo.blocks.row(d) for d in bad + missing) if r}
    affected: set[str] = set()
    for d in bad + missing:
        affected.update(
            r[0]
            for r in conn.execute(
                "SELECT f.cid FROM file_blocks fb JOIN files f ON f.fid = fb.fid WHERE fb.digest = ?",
                (d,),
            )
        )

    def text(d: bytes) -> str:
        return str(cid_of(d, kinds.get(d, 0)))

    return VerifyReport(
        checked_blocks=checked,
        bad_blocks=tuple(sorted(text(d) for d in set(bad))),
        missing_blocks=tuple(sorted(text(d) for d in set(missing))),
        affected_files=tuple(sorted(affected)),
    )


def stats(repo: Repo) -> Stats:
    conn = repo.db.reader()
    files, logical = conn.execute("SELECT count(*), coalesce(sum(size), 0) FROM files").fetchone()
    t = repo.totals()
    return Stats(
        files=files,
        blocks=t["blocks"],
        logical_bytes=logical,
        unique_bytes=t["plain"],
        stored_bytes=t["stored"],
        dedup_saved=max(0, logical - t["plain"]),
        compression_saved=max(0, t["plain"] - t["stored"]),
        capacity=repo.config.capacity,
        free=capacity.free_bytes(repo.config.capacity, t["stored"], repo.root),
    )


__all__ = ["audit_step", "gc", "stats", "verify"]
