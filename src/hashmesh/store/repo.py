"""The synchronous core of a repository: open/init, locks, capacity, commits, raw blocks.

:class:`Repo` is used from worker threads only (see :mod:`hashmesh.store.api`);
it never touches the event loop. Puts live in :mod:`hashmesh.store.puts`, gc
and verify in :mod:`hashmesh.store.lifecycle`.

Locking: every put holds a *shared* ``flock`` on ``<repo>/gc.lock`` from its
first block write to its commit; gc holds it *exclusively*. So gc never sees
(and removes) blocks whose index rows are about to commit, in this process or
another one.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from hashmesh import config as config_mod
from hashmesh.content import manifest as mf
from hashmesh.content.chunker import Chunker
from hashmesh.content.compress import KIND_MANIFEST, KIND_RAW
from hashmesh.errors import (
    CapacityError,
    DecodeError,
    HashmeshError,
    InvalidArgumentError,
    InvalidIdError,
    NotFoundError,
    NotInitialisedError,
    StorageError,
)
from hashmesh.ids import CODEC_MANIFEST, CODEC_RAW, ContentId
from hashmesh.store import capacity, index
from hashmesh.store.blockstore import BlockStore
from hashmesh.store.db import Database
from hashmesh.store.ingest import BlockSink, FileRefs, Ingest
from hashmesh.store.model import FileInfo

INDEX_FILE = "index.sqlite"
CONFIG_FILE = "config.toml"
LOCK_FILE = "gc.lock"
ACCESS_FLUSH_SECONDS = 5.0
WRITER_THREADS = 2

Clock = Callable[[], float]


_B32_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyz234567")
_B32_TO_HEX = str.maketrans("abcdefghijklmnopqrstuvwxyz234567", "0123456789abcdefghijklmnopqrstuv")


def parse_id(value: str | ContentId) -> ContentId:
    """Parse a content id; a C-speed path for well-formed text, ``ContentId.parse`` otherwise.

    base32 (RFC 4648, lower case) maps digit-for-digit onto Python's base-32
    ``int`` alphabet, so ``int(text, 32)`` decodes it without a Python loop.
    """
    if isinstance(value, ContentId):
        return value
    if not isinstance(value, str):
        raise InvalidIdError("content id must be a string or ContentId")
    body = value[1:]
    if value[:1] == "b" and 50 <= len(body) <= 120 and _B32_ALPHABET.issuperset(body):
        bits = len(body) * 5
        nbytes = bits // 8
        pad = bits - nbytes * 8
        n = int(body.translate(_B32_TO_HEX), 32)
        if pad < 5 and not n & ((1 << pad) - 1):
            try:
                return ContentId.from_bytes((n >> pad).to_bytes(nbytes, "big"))
            except InvalidIdError:
                pass
    return ContentId.parse(value)


def resolve_config(
    root: Path, cfg: config_mod.Config | config_mod.StoreConfig | None
) -> config_mod.StoreConfig:
    if cfg is None:
        return config_mod.load(root / CONFIG_FILE).store
    if isinstance(cfg, config_mod.Config):
        return cfg.store
    if isinstance(cfg, config_mod.StoreConfig):
        return cfg
    raise InvalidArgumentError("config must be a Config or StoreConfig")


class Repo:
    """One open repository (thread-safe)."""

    def __init__(
        self, root: Path, cfg: config_mod.StoreConfig, owner: str, clock: Clock | None
    ) -> None:
        self.root = root
        self.config = cfg
        self.clock: Clock = clock or time.time
        self.db = Database(root / INDEX_FILE)
        self.blocks = BlockStore(root, self.db, cfg.compress_level, cfg.compress_min_size)
        self.chunker = Chunker(cfg.chunk_min, cfg.chunk_avg, cfg.chunk_max)
        self.writers = ThreadPoolExecutor(WRITER_THREADS, thread_name_prefix="hashmesh-blockw")
        self._hits: dict[str, tuple[float, int]] = {}
        self._hits_lock = threading.Lock()
        self._last_flush = time.monotonic()
        stored_owner = self.meta("owner")
        if owner and owner != stored_owner:
            with self.db.transaction() as conn:
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('owner', ?)", (owner,))
            stored_owner = owner
        if not stored_owner:
            try:
                from hashmesh.identity import Identity  # lazy: cryptography costs ~20 ms

                stored_owner = str(Identity.load_or_create(root).node_id)
            except PermissionError:
                raise StorageError(f"permission denied: cannot read {root / 'node.key'}") from None
            with self.db.transaction() as conn:  # remember it: later opens skip the key
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('owner', ?)", (stored_owner,))
        self.owner = stored_owner

    # -- opening -------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        cfg: config_mod.Config | config_mod.StoreConfig | None = None,
        *,
        create: bool = False,
        owner: str = "",
        clock: Clock | None = None,
    ) -> Repo:
        root = Path(path).expanduser()
        exists = (root / INDEX_FILE).is_file()
        if not exists and not create:
            raise NotInitialisedError(f"no hashmesh repository at {root} (run `hashmesh init`)")
        try:
            if not exists:
                root.mkdir(parents=True, exist_ok=True)
            store_cfg = resolve_config(root, cfg)
            repo = cls(root, store_cfg, owner, clock)
            if not exists or not repo.blocks.dir.is_dir():
                repo.blocks.create_layout()
        except PermissionError as exc:
            raise StorageError(
                f"permission denied: cannot open repository {root} ({exc.filename or root})"
            ) from None
        except NotADirectoryError:
            raise StorageError(f"cannot open repository {root}: not a directory") from None
        except OSError as exc:
            raise capacity.storage_error(exc, f"open repository {root}") from None
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open index of repository {root}: {exc}") from None
        return repo

    def close(self) -> None:
        try:
            self.flush_access(force=True)
        except HashmeshError:
            pass
        self.writers.shutdown(wait=True)
        self.db.close()

    def meta(self, key: str) -> str:
        row = self.db.reader().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else ""

    # -- locks, capacity -----------------------------------------------------

    @contextmanager
    def lock(self, exclusive: bool = False) -> Iterator[None]:
        try:
            fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise capacity.storage_error(exc, f"open {self.root / LOCK_FILE}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    def totals(self) -> dict[str, int]:
        rows = self.db.reader().execute("SELECT key, value FROM totals").fetchall()
        return {k: v for k, v in rows}

    def free(self) -> int:
        return capacity.free_bytes(self.config.capacity, self.totals()["stored"], self.root)

    def budget(self, need: int) -> int:
        """Free bytes, after checking ``need`` fits (CapacityError before any write)."""
        free = self.free()
        if need > free:
            raise capacity.exceeded(need, free)
        return free

    def ingest(self, budget: int, sink: BlockSink | None = None) -> Ingest:
        return Ingest(self.blocks, self.writers, budget, self._flush_small, sink)

    def _flush_small(self, rows: list[tuple]) -> None:
        with self.db.transaction() as conn:
            self.blocks.insert_rows(conn, rows)

    @contextmanager
    def guarded(self, ingest: Ingest | None, what: str) -> Iterator[None]:
        """Map OS and SQLite failures of a write to one-line errors; clean up on failure."""
        try:
            yield
        except BaseException as exc:
            if ingest is not None:
                ingest.abort()
            if isinstance(exc, HashmeshError):
                raise
            if capacity.is_disk_full(exc):
                raise capacity.disk_full_error(self.root) from None
            if isinstance(exc, OSError):
                raise capacity.storage_error(exc, what) from None
            if isinstance(exc, sqlite3.Error):
                raise StorageError(f"cannot {what}: index error: {exc}") from None
            raise

    def commit(self, ingest: Ingest, files: list[index.NewFile]) -> list[FileInfo]:
        """Make the put durable: blocks (already fsync'd) first, then one index transaction.

        Returns the FileInfo of each file, as committed.
        """
        rows = ingest.seal()
        with self.db.transaction() as conn:
            self.blocks.insert_rows(conn, rows)
            fresh = index.upsert_many(conn, files)
            self._write_hits(conn)
            out = []
            for f, new in zip(files, fresh, strict=True):
                got = index.info_of(f) if new else index.get(conn, f.cid)
                if got is None:  # pragma: no cover - inserted above
                    raise StorageError(f"{f.cid} vanished during commit")
                out.append(got)
        return out

    # -- access statistics ---------------------------------------------------

    def note_access(self, *cids: str) -> None:
        """Count reads of indexed files (buffered; written with the next commit or every 5 s)."""
        now = self.clock()
        hits = self._hits
        with self._hits_lock:
            for cid in cids:
                old = hits.get(cid)
                hits[cid] = (now, 1 if old is None else old[1] + 1)
        if time.monotonic() - self._last_flush > ACCESS_FLUSH_SECONDS:
            self.flush_access()

    def _write_hits(self, conn: sqlite3.Connection) -> None:
        with self._hits_lock:
            hits, self._hits = self._hits, {}
        self._last_flush = time.monotonic()
        if hits:
            index.record_access(conn, hits)

    def flush_access(self, force: bool = False) -> None:
        if not self._hits and not force:
            return
        try:
            with self.db.transaction() as conn:
                self._write_hits(conn)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot update access statistics: {exc}") from None

    def with_hits(self, info: FileInfo) -> FileInfo:
        with self._hits_lock:
            hit = self._hits.get(info.id)
        if hit is None:
            return info
        return dataclasses.replace(
            info, accessed=max(info.accessed, hit[0]), access_count=info.access_count + hit[1]
        )

    # -- raw blocks ----------------------------------------------------------

    def put_blocks(
        self,
        items: list[tuple[bytes, int]],
        hold: bool = True,
        ids: list[ContentId] | None = None,
    ) -> list[ContentId]:
        """Store raw blocks (e.g. replicas from peers); held blocks survive gc.

        ``ids``: each block's id, when the caller has just verified the bytes against
        it (a node's received and fetched blocks); they are not hashed again."""
        if ids is not None and (
            len(ids) != len(items)
            or any(c.codec != k for c, (_, k) in zip(ids, items, strict=True))
        ):
            raise InvalidArgumentError("put_blocks: ids must match the items and their codecs")
        for data, codec in items:
            if codec not in (CODEC_RAW, CODEC_MANIFEST):
                raise InvalidArgumentError(f"unknown block codec 0x{codec:x}")
            if not isinstance(data, bytes | bytearray | memoryview):
                raise InvalidArgumentError("block data must be bytes")
            if codec == CODEC_MANIFEST:
                mf.decode(data)
            elif len(data) > 64 * 1024 * 1024:
                raise DecodeError("block is larger than 64 MiB")
        need = sum(len(d) + capacity.HEADER_ALLOWANCE for d, _ in items)
        with self.lock():
            ing = self.ingest(self.budget(need))
            refs = FileRefs()
            with self.guarded(ing, "store block"):
                digests = [None] * len(items) if ids is None else [c.digest for c in ids]
                out = [
                    ing.add(d, KIND_MANIFEST if c == CODEC_MANIFEST else KIND_RAW, refs, digest)
                    for (d, c), digest in zip(items, digests, strict=True)
                ]
                rows = ing.seal()
                with self.db.transaction() as conn:
                    self.blocks.insert_rows(conn, rows)
                    if hold:
                        conn.executemany(
                            "INSERT OR IGNORE INTO held_blocks VALUES (?, ?)",
                            [(c.digest, 1 if c.is_manifest else 0) for c in out],
                        )
        return out

    def set_pin(self, cid: ContentId, pinned: bool) -> None:
        text = str(cid)
        with self.db.transaction() as conn:
            cur = conn.execute("UPDATE files SET pinned = ? WHERE cid = ?", (int(pinned), text))
            if cur.rowcount:
                return
            if pinned:
                if not conn.execute(
                    "SELECT 1 FROM blocks WHERE digest = ?", (cid.digest,)
                ).fetchone():
                    raise NotFoundError(f"{cid} is not stored here")
                conn.execute(
                    "INSERT OR IGNORE INTO held_blocks VALUES (?, ?)",
                    (cid.digest, 1 if cid.is_manifest else 0),
                )
            else:
                cur = conn.execute("DELETE FROM held_blocks WHERE digest = ?", (cid.digest,))
                if not cur.rowcount:
                    raise NotFoundError(f"{cid} is not stored here")

    def remove(self, cid: ContentId) -> None:
        with self.db.transaction() as conn:
            cur = conn.execute("DELETE FROM files WHERE cid = ?", (str(cid),))
            if not cur.rowcount:
                raise NotFoundError(f"{cid} is not stored here")


__all__ = ["CapacityError", "Repo", "parse_id", "resolve_config"]
