"""One put: hash, dedup, compress and durably write blocks, then commit once.

An :class:`Ingest` collects the blocks of one or many files. Small blocks wait
in memory (and are committed to SQLite with the index rows); large blocks are
compressed and written to their files by a small pool of writer threads while
the caller keeps reading and hashing (blake3, zstd and file I/O release the
GIL). :meth:`Ingest.seal` waits for every write and fsyncs the touched
directories; only then may the caller commit the transaction that names them.
On any failure :meth:`Ingest.abort` removes the block files this put created
that no committed row names, so a failed put leaves nothing behind.

An ingest may also hand each new large block's id and bytes to a ``sink`` as it
is hashed (a node sends them to their holders while the put goes on); the sink
runs in the ingest's thread and may block it (backpressure).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from hashmesh.content.compress import HEADER_SIZE, KIND_MANIFEST, KIND_RAW
from hashmesh.errors import CapacityError
from hashmesh.ids import CODEC_MANIFEST, CODEC_RAW, ContentId, blake3_digest
from hashmesh.store.blockstore import SMALL_MAX, BlockStore
from hashmesh.store.capacity import disk_full_error, exceeded, fsync_dir, is_disk_full

MAX_IN_FLIGHT = 4
SMALL_BUFFER = 32 * 1024 * 1024

BlockSink = Callable[[ContentId, bytes], None]


@dataclass
class FileRefs:
    """The blocks one indexed file needs, collected while it is put."""

    digests: set[bytes] = field(default_factory=set)
    chunks: int = 0


class Ingest:
    """Blocks of one put, written durably before the index commit."""

    def __init__(
        self,
        blocks: BlockStore,
        pool: ThreadPoolExecutor,
        budget: int,
        flush_small: Callable[[list[tuple]], None] | None = None,
        sink: BlockSink | None = None,
    ) -> None:
        self.blocks = blocks
        self._sink = sink
        self._pool = pool
        self._budget = budget
        self._flush_small = flush_small
        self.small: list[tuple] = []
        self.large: list[tuple] = []
        self._small_bytes = 0
        self._known: set[bytes] = set()
        self._written: list[bytes] = []
        self._dirs: set[Path] = set()
        self._inflight: deque[Future[tuple]] = deque()
        self._lock = threading.Lock()
        self.new_stored = 0

    def _charge(self, n: int) -> None:
        self.new_stored += n
        if self.new_stored > self._budget:
            raise exceeded(self.new_stored, self._budget)

    def add(
        self, plain: bytes | memoryview, kind: int, refs: FileRefs, digest: bytes | None = None
    ) -> ContentId:
        """Store one block (once per repository); return its id. ``digest``: the
        block's BLAKE3, when the caller has just checked the bytes against it."""
        if digest is None:
            digest = blake3_digest(plain)
        cid = ContentId(digest, CODEC_MANIFEST if kind == KIND_MANIFEST else CODEC_RAW)
        refs.digests.add(digest)
        if kind == KIND_RAW:
            refs.chunks += 1
        if digest in self._known:
            return cid
        self._known.add(digest)
        n = len(plain)
        if n > SMALL_MAX and self.blocks.row(digest) is not None:
            return cid
        if n <= SMALL_MAX:  # dedup of small blocks happens at insert (INSERT OR IGNORE)
            header, payload = self.blocks.codec().encode(plain, kind)
            stored = header + bytes(payload)
            self._charge(len(stored))
            self.small.append((digest, kind, n, stored, stored[4]))
            self._small_bytes += len(stored)
            if self._small_bytes >= SMALL_BUFFER and self._flush_small is not None:
                self._flush_small(self.small)
                self.small = []
                self._small_bytes = 0
            return cid
        self._charge(n + HEADER_SIZE)
        while len(self._inflight) >= MAX_IN_FLIGHT:
            self._collect(self._inflight.popleft())
        if not isinstance(plain, bytes):
            plain = bytes(plain)
        self._inflight.append(self._pool.submit(self._write, digest, plain, kind))
        if self._sink is not None:
            self._sink(cid, plain)
        return cid

    def _write(self, digest: bytes, plain: bytes, kind: int) -> tuple:
        header, payload = self.blocks.codec().encode(plain, kind)
        with self._lock:
            self._written.append(digest)
        path = self.blocks.write_file(digest, header, payload)
        with self._lock:
            self._dirs.add(path.parent)
        return (digest, kind, len(plain), HEADER_SIZE + len(payload), header[4])

    def _collect(self, fut: Future[tuple]) -> None:
        try:
            row = fut.result()
        except OSError as exc:
            if is_disk_full(exc):
                raise disk_full_error(self.blocks.root) from None
            raise
        self.large.append(row)
        # the real stored size may be smaller than charged (compression)
        self.new_stored -= (row[2] + HEADER_SIZE) - row[3]

    def seal(self) -> list[tuple]:
        """Wait for every block write and fsync their directories; return all rows."""
        while self._inflight:
            self._collect(self._inflight.popleft())
        try:
            for d in sorted(self._dirs):
                fsync_dir(d)
        except OSError as exc:
            if is_disk_full(exc):
                raise disk_full_error(self.blocks.root) from None
            raise
        return self.large + self.small

    def abort(self) -> None:
        """Drop this put's block files that no committed row names."""
        while self._inflight:
            fut = self._inflight.popleft()
            try:
                fut.result()
            except (OSError, CapacityError):
                pass
        orphans = [d for d in self._written if self.blocks.row(d) is None]
        self.blocks.remove_files(orphans)
        self.small = []
        self.large = []


__all__ = ["FileRefs", "Ingest"]
