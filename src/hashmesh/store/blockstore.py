"""Block storage: small blocks inside SQLite, large blocks as files, verified on read.

Layout and durability (see docs/storage.md):

* A block's stored form is ``header + payload`` (:mod:`hashmesh.content.compress`).
* Blocks whose plain size is at most :data:`SMALL_MAX` live in the ``block_data``
  table, written in the same transaction as the index rows that reference them.
* Larger blocks live in ``blocks/<64 hex>`` (one flat directory: ext4/xfs index
  large directories, and a put then needs a single directory fsync): written to
  a temporary name in the same directory, fdatasync'd, renamed into place; the
  directory is fsync'd once per put, before the transaction that adds their
  ``blocks`` rows commits.

A ``blocks`` row therefore only ever names bytes that are already durable. A
block file without a row is an orphan from an interrupted put; gc removes it.

Every read re-hashes the plain bytes; a mismatch, a bad header or a missing
file raises :class:`IntegrityError` naming the block.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hashmesh.content.compress import KIND_MANIFEST, KIND_RAW, BlockCodec
from hashmesh.errors import DecodeError, IntegrityError, NotFoundError
from hashmesh.ids import CODEC_MANIFEST, CODEC_RAW, ContentId, blake3_digest
from hashmesh.store.capacity import fsync_dir, storage_error
from hashmesh.store.db import Database
from hashmesh.store.direct import BlockFiles

SMALL_MAX = 64 * 1024
_KIND_OF_CODEC = {CODEC_RAW: KIND_RAW, CODEC_MANIFEST: KIND_MANIFEST}
_CODEC_OF_KIND = {KIND_RAW: CODEC_RAW, KIND_MANIFEST: CODEC_MANIFEST}
_tmp_counter = itertools.count()


def kind_of(cid: ContentId) -> int:
    return _KIND_OF_CODEC[cid.codec]


def cid_of(digest: bytes, kind: int) -> ContentId:
    return ContentId(digest, _CODEC_OF_KIND[kind])


@dataclass(frozen=True, slots=True)
class BlockRow:
    """What the index knows of one stored block."""

    digest: bytes
    kind: int
    size: int
    stored: int
    flags: int
    inline: int


class BlockStore:
    """Read, verify and write blocks of one repository (thread-safe)."""

    def __init__(self, root: Path, db: Database, level: int, compress_min: int) -> None:
        self.root = root
        self.dir = root / "blocks"
        self.db = db
        self._level = level
        self._compress_min = compress_min
        self._local = threading.local()
        self._files = BlockFiles()

    # -- setup ---------------------------------------------------------------

    def create_layout(self) -> None:
        """Create ``blocks/``, durably."""
        self.dir.mkdir(exist_ok=True)
        fsync_dir(self.dir)
        fsync_dir(self.root)

    def codec(self) -> BlockCodec:
        """This thread's reusable zstd codec."""
        codec: BlockCodec | None = getattr(self._local, "codec", None)
        if codec is None:
            codec = BlockCodec(self._level, self._compress_min)
            self._local.codec = codec
        return codec

    def path_of(self, digest: bytes) -> Path:
        return self.dir / digest.hex()

    # -- reading -------------------------------------------------------------

    def row(self, digest: bytes) -> BlockRow | None:
        r = (
            self.db.reader()
            .execute(
                "SELECT kind, size, stored, flags, inline FROM blocks WHERE digest = ?",
                (digest,),
            )
            .fetchone()
        )
        return None if r is None else BlockRow(digest, *r)

    def held(self, cid: ContentId) -> BlockRow | None:
        """The row of ``cid`` if this block (of this kind) is stored here."""
        r = self.row(cid.digest)
        return r if r is not None and r.kind == kind_of(cid) else None

    def has(self, cid: ContentId) -> bool:
        return self.held(cid) is not None

    def stored_form(self, cid: ContentId, row: BlockRow) -> bytes:
        if row.inline:
            got = (
                self.db.reader()
                .execute("SELECT data FROM block_data WHERE digest = ?", (row.digest,))
                .fetchone()
            )
            if got is None:
                raise IntegrityError(f"block {cid} is missing from the index", block_id=str(cid))
            return got[0]
        path = self.path_of(cid.digest)
        try:
            return self._files.read(path)
        except FileNotFoundError:
            raise IntegrityError(f"block {cid} is missing from disk", block_id=str(cid)) from None
        except OSError as exc:
            raise storage_error(exc, f"read block file {path}") from None

    def check(self, cid: ContentId, stored: bytes | memoryview) -> bytes | memoryview:
        """Decode a stored block and verify it against ``cid``; return the plain bytes."""
        try:
            header, plain = self.codec().decode(stored)
        except DecodeError as exc:
            raise IntegrityError(f"block {cid} is corrupt: {exc}", block_id=str(cid)) from None
        if header.kind != kind_of(cid) or blake3_digest(plain) != cid.digest:
            raise IntegrityError(
                f"block {cid} is corrupt: its bytes do not match its id", block_id=str(cid)
            )
        return plain

    def intact(self, cid: ContentId, row: BlockRow) -> bool:
        """Whether the stored copy of ``cid`` (its ``row``) reads back and verifies."""
        try:
            self.read(cid, row)
        except IntegrityError:
            return False
        return True

    def read(self, cid: ContentId, row: BlockRow) -> bytes | memoryview:
        """The verified plain bytes of ``cid``, stored as ``row`` says."""
        return self.check(cid, self.stored_form(cid, row))

    def get(self, cid: ContentId) -> bytes | memoryview:
        """The verified plain bytes of a block; NotFoundError if it is not stored."""
        row = self.held(cid)
        if row is None:
            raise NotFoundError(f"block {cid} is not stored here")
        return self.read(cid, row)

    def get_many_small(self, cids: list[ContentId]) -> dict[bytes, bytes | memoryview]:
        """Verified bytes of many blocks in one query; absent ids are left out."""
        out: dict[bytes, bytes | memoryview] = {}
        conn = self.db.reader()
        for start in range(0, len(cids), 500):
            part = cids[start : start + 500]
            marks = ",".join("?" * len(part))
            rows = conn.execute(
                "SELECT b.digest, b.kind, d.data FROM blocks b LEFT JOIN block_data d "
                f"ON d.digest = b.digest WHERE b.digest IN ({marks})",
                [c.digest for c in part],
            ).fetchall()
            by_digest = {r[0]: r for r in rows}
            for cid in part:
                r = by_digest.get(cid.digest)
                if r is None or r[1] != kind_of(cid):
                    continue
                stored = r[2]
                if stored is None:
                    stored = self.stored_form(cid, BlockRow(cid.digest, r[1], 0, 0, 0, 0))
                out[cid.digest] = self.check(cid, stored)
        return out

    def iter_rows(self, after: bytes = b"") -> Iterator[BlockRow]:
        """Every block row in digest order (those whose digest follows ``after``)."""
        conn = self.db.reader()
        last = after
        while True:
            rows = conn.execute(
                "SELECT digest, kind, size, stored, flags, inline FROM blocks "
                "WHERE digest > ? ORDER BY digest LIMIT 1000",
                (last,),
            ).fetchall()
            if not rows:
                return
            for r in rows:
                yield BlockRow(*r)
            last = rows[-1][0]

    def iter_ids(self) -> Iterator[ContentId]:
        for r in self.iter_rows():
            yield cid_of(r.digest, r.kind)

    # -- writing -------------------------------------------------------------

    def write_file(self, digest: bytes, header: bytes, payload: bytes | memoryview) -> Path:
        """Durably write one large block file (tmp, fsync, rename); the caller fsyncs the dir."""
        final = self.path_of(digest)
        tmp = final.parent / f".{final.name}.{os.getpid()}.{next(_tmp_counter)}.tmp"
        try:
            self._files.write(tmp, (header, payload))
            os.replace(tmp, final)
        except BaseException:
            _unlink(tmp)
            raise
        return final

    def insert_rows(self, conn: sqlite3.Connection, rows: list[tuple]) -> None:
        """Insert ``(digest, kind, size, stored_bytes_or_len, flags)`` rows in a transaction.

        ``stored_bytes_or_len`` is the stored form itself for small blocks (kept in
        SQLite) or its length for blocks already written as files. Rows already
        present are left alone.
        """
        files = [(d, k, n, s, f) for d, k, n, s, f in rows if isinstance(s, int)]
        small = [(d, k, n, s, f) for d, k, n, s, f in rows if not isinstance(s, int)]
        conn.executemany("INSERT OR IGNORE INTO blocks VALUES (?, ?, ?, ?, ?, 0)", files)
        conn.executemany(
            "INSERT OR IGNORE INTO blocks VALUES (?, ?, ?, ?, ?, 1)",
            [(d, k, n, len(s), f) for d, k, n, s, f in small],
        )
        conn.executemany(
            "INSERT OR IGNORE INTO block_data VALUES (?, ?)", [(r[0], r[3]) for r in small]
        )

    def rewrite(self, conn: sqlite3.Connection, cid: ContentId, plain: bytes) -> bool:
        """Replace the stored form of ``cid`` (found corrupt or missing) with ``plain``,
        which must hash to it. False, changing nothing, if no row names ``cid`` or its
        stored copy is intact (healed meanwhile by someone else). A block file is written
        anew (tmp, fdatasync, rename over the bad one, directory fsync'd) before the
        row changes in ``conn``'s transaction, so the row never names bytes that are
        not durable. The plain size (so where the block lives) cannot change; its
        stored size may (another compression level), and the totals follow."""
        if blake3_digest(plain) != cid.digest:
            raise IntegrityError(f"a copy of block {cid} does not match its id", block_id=str(cid))
        row = self.row(cid.digest)
        if row is None or row.kind != kind_of(cid) or self.intact(cid, row):
            return False
        header, payload = self.codec().encode(plain, row.kind)
        stored = len(header) + len(payload)
        if row.inline:
            conn.execute(
                "INSERT OR REPLACE INTO block_data VALUES (?, ?)",
                (cid.digest, header + bytes(payload)),
            )
        else:
            self.write_file(cid.digest, header, payload)
            fsync_dir(self.dir)
        conn.execute(
            "UPDATE blocks SET stored = ?, flags = ? WHERE digest = ?",
            (stored, header[4], cid.digest),
        )
        conn.execute(
            "UPDATE totals SET value = value + ? WHERE key = 'stored'", (stored - row.stored,)
        )
        return True

    def remove_files(self, digests: Iterable[bytes]) -> None:
        for digest in digests:
            _unlink(self.path_of(digest))

    def orphan_files(self) -> Iterator[Path]:
        """Block files (and stale temporaries) that no ``blocks`` row names."""
        conn = self.db.reader()
        for entry in os.scandir(self.dir):
            name = entry.name
            if name.endswith(".tmp"):
                yield Path(entry.path)
                continue
            try:
                digest = bytes.fromhex(name)
            except ValueError:
                continue
            r = conn.execute("SELECT inline FROM blocks WHERE digest = ?", (digest,)).fetchone()
            if r is None or r[0]:
                yield Path(entry.path)


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


__all__ = ["SMALL_MAX", "BlockRow", "BlockStore", "cid_of", "kind_of"]
