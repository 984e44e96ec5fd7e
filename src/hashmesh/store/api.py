"""``hashmesh.Store``: the async Python API of a local repository.

Every method that touches disk runs the blocking work on a worker thread
(a small pool owned by the store), so the event loop stays free. See
docs/python-api.md for the contract and docs/storage.md for the on-disk format.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from hashmesh import config as config_mod
from hashmesh.content import manifest as mf
from hashmesh.errors import IntegrityError, InvalidArgumentError, NotFoundError, StorageError
from hashmesh.ids import ContentId
from hashmesh.store import export, index, lifecycle, puts, reader
from hashmesh.store.ingest import BlockSink
from hashmesh.store.model import DirEntry, FileInfo, GcReport, Stats, VerifyReport
from hashmesh.store.repo import Clock, Repo, parse_id

T = TypeVar("T")
IdLike = str | ContentId
ConfigLike = config_mod.Config | config_mod.StoreConfig | None
Progress = Callable[[int, int], None] | None
READ_AHEAD = 3
PLAN_BATCH = 32
API_THREADS = 4
FED_EXPORT_THREADS = 4


class Store:
    """An open local content-addressed store. Use ``await Store.open(path)``."""

    def __init__(self, repo: Repo) -> None:
        self._repo = repo
        self._pool = ThreadPoolExecutor(API_THREADS, thread_name_prefix="hashmesh-store")
        # exports that wait on a node's fetch, which commits through ``_pool``
        self._fed = ThreadPoolExecutor(FED_EXPORT_THREADS, thread_name_prefix="hashmesh-fed")
        self._closed = False

    # -- lifecycle -------------------------------------------------------------

    @classmethod
    async def init(
        cls,
        path: str | os.PathLike[str],
        config: ConfigLike = None,
        *,
        owner: str = "",
        clock: Clock | None = None,
    ) -> Store:
        """Create a repository at ``path`` (or open the one already there)."""
        repo = await asyncio.to_thread(
            Repo.open, path, config, create=True, owner=owner, clock=clock
        )
        return cls(repo)

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        config: ConfigLike = None,
        *,
        create: bool = False,
        clock: Clock | None = None,
    ) -> Store:
        """Open the repository at ``path``; ``NotInitialisedError`` if absent and not ``create``."""
        repo = await asyncio.to_thread(Repo.open, path, config, create=create, clock=clock)
        return cls(repo)

    @property
    def path(self) -> Path:
        return self._repo.root

    @property
    def config(self) -> config_mod.StoreConfig:
        return self._repo.config

    @property
    def owner(self) -> str:
        return self._repo.owner

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Let operations already running finish (queued ones are dropped) before the
        # database closes: closing a SQLite connection another thread is using can crash.
        # (an export waiting on a fetch ends when the fetch does: it stores nothing more
        # once the store is closed)
        for pool in (self._pool, self._fed):
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
        await asyncio.to_thread(self._repo.close)

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self._run_in(self._pool, functools.partial(fn, *args, **kwargs))

    async def _run_in(self, pool: ThreadPoolExecutor, fn: Callable[[], T]) -> T:
        if self._closed:
            raise StorageError("the store is closed")
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(pool, fn)
        try:
            return await fut
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._closed and fut.cancelled() and (task is None or not task.cancelling()):
                # close() dropped this queued operation: it never ran
                raise StorageError("the store was closed before this operation ran") from None
            raise

    def _threadsafe(self, progress: Progress) -> Progress:
        if progress is None:
            return None
        loop = asyncio.get_running_loop()
        return lambda done, total: loop.call_soon_threadsafe(progress, done, total)

    # -- puts --------------------------------------------------------------------

    async def _put_tree(
        self,
        put: Callable[..., FileInfo],
        path: str | os.PathLike[str],
        name: str | None,
        tags: Iterable[str],
        description: str,
        ttl: float | None,
        pin: bool,
        progress: Progress,
        sink: BlockSink | None,
    ) -> FileInfo:
        meta = puts.Meta.check(tags, description, ttl, pin)
        return await self._run(
            put, self._repo, Path(path).expanduser(), name, meta, self._threadsafe(progress), sink
        )

    async def put_file(
        self,
        path: str | os.PathLike[str],
        *,
        name: str | None = None,
        tags: Iterable[str] = (),
        description: str = "",
        ttl: float | None = None,
        pin: bool = False,
        progress: Progress = None,
        sink: BlockSink | None = None,
    ) -> FileInfo:
        """Store one file (streamed in bounded memory).

        ``sink`` (optional) gets the id and bytes of each new large block as it is
        hashed, in the store's thread (see :mod:`hashmesh.store.ingest`)."""
        return await self._put_tree(
            puts.put_file, path, name, tags, description, ttl, pin, progress, sink
        )

    async def put_dir(
        self,
        path: str | os.PathLike[str],
        *,
        name: str | None = None,
        tags: Iterable[str] = (),
        description: str = "",
        ttl: float | None = None,
        pin: bool = False,
        progress: Progress = None,
        sink: BlockSink | None = None,
    ) -> FileInfo:
        """Store a directory tree as a directory manifest of named entries (``sink``:
        as for :meth:`put_file`)."""
        return await self._put_tree(
            puts.put_dir, path, name, tags, description, ttl, pin, progress, sink
        )

    async def put_path(self, path: str | os.PathLike[str], **kwargs: Any) -> FileInfo:
        p = Path(path).expanduser()
        is_dir = await asyncio.to_thread(p.is_dir)
        if not is_dir and not await asyncio.to_thread(p.exists):
            raise NotFoundError(f"no such file or directory: {p}")
        return await (self.put_dir(p, **kwargs) if is_dir else self.put_file(p, **kwargs))

    async def put_bytes(
        self,
        data: bytes,
        *,
        name: str = "",
        tags: Iterable[str] = (),
        description: str = "",
        ttl: float | None = None,
        pin: bool = False,
    ) -> FileInfo:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidArgumentError("data must be bytes")
        meta = puts.Meta.check(tags, description, ttl, pin)
        return await self._run(puts.put_bytes, self._repo, data, name, meta)

    async def put_many(
        self,
        items: Sequence[tuple[str, bytes]],
        *,
        tags: Iterable[str] = (),
        description: str = "",
        ttl: float | None = None,
        pin: bool = False,
    ) -> list[FileInfo]:
        """Put many small objects in one group commit (one fsync for the batch)."""
        meta = puts.Meta.check(tags, description, ttl, pin)
        return await self._run(puts.put_many, self._repo, list(items), meta)

    # -- reads -------------------------------------------------------------------

    def _read_sync(self, cid: ContentId, offset: int, length: int | None) -> bytes:
        data = reader.read_range(self._repo.blocks, cid, offset, length)
        self._repo.note_access(str(cid))
        return data

    async def read(self, id: IdLike, offset: int = 0, length: int | None = None) -> bytes:
        """The bytes of a file (or a byte range of it), verified block by block."""
        cid = parse_id(id)
        reader.check_range(offset, length)
        return await self._run(self._read_sync, cid, offset, length)

    async def chunks_in_range(
        self, id: IdLike, offset: int = 0, length: int | None = None
    ) -> list[ContentId]:
        """The chunks holding bytes ``[offset, offset + length)`` of a file, in order
        (only its manifests need be stored)."""
        cid = parse_id(id)
        reader.check_range(offset, length)
        return await self._run(
            lambda: list(
                dict.fromkeys(p.cid for p in reader.plan(self._repo.blocks, cid, offset, length))
            )
        )

    async def iter_read(
        self,
        id: IdLike,
        offset: int = 0,
        length: int | None = None,
        ready: export.Ready = None,
    ) -> AsyncIterator[bytes]:
        """Stream a file chunk by chunk, reading a few chunks ahead (bounded memory).

        ``ready`` (for a node that fetches chunks while this streams) gives for a
        chunk a future that is done once it is stored, or None if it already is,
        and the bytes the fetch handed over; only the manifests need be stored
        when the stream starts.
        """
        cid = parse_id(id)
        reader.check_range(offset, length)
        blocks = self._repo.blocks
        pieces = reader.plan(blocks, cid, offset, length)
        loop = asyncio.get_running_loop()

        def next_batch() -> list[reader.Piece]:
            out: list[reader.Piece] = []
            for p in pieces:
                out.append(p)
                if len(out) >= PLAN_BATCH:
                    break
            return out

        queue: deque[reader.Piece] = deque()
        inflight: deque[Future[bytes]] = deque()
        exhausted = False
        try:
            while True:
                while len(inflight) < READ_AHEAD:
                    if not queue and not exhausted:
                        batch = await self._run(next_batch)
                        exhausted = not batch
                        queue.extend(batch)
                    if not queue:
                        break
                    stored = ready.wait_for(queue[0].cid) if ready is not None else None
                    if stored is not None and not stored.done():
                        if inflight:
                            break  # hand out what is read while the chunk arrives
                        await asyncio.wrap_future(stored, loop=loop)
                    elif stored is not None:
                        stored.result()  # raises the fetch's error
                    inflight.append(
                        self._pool.submit(export.read_when_ready, blocks, queue.popleft(), ready)
                    )
                if not inflight:
                    break
                yield await asyncio.wrap_future(inflight.popleft(), loop=loop)
            self._repo.note_access(str(cid))
        finally:
            for fut in inflight:
                fut.cancel()

    def _get_many_sync(self, ids: list[IdLike]) -> list[bytes]:
        cids = [parse_id(i) for i in ids]
        texts = [i if isinstance(i, str) else str(i) for i in ids]
        blocks = self._repo.blocks
        roots = blocks.get_many_small(cids)
        out: list[bytes] = [b""] * len(cids)
        flat: dict[int, tuple[mf.Link, ...]] = {}
        for i, cid in enumerate(cids):
            data = roots.get(cid.digest)
            if data is None:
                raise NotFoundError(f"{cid} is not stored here")
            if not cid.is_manifest:
                out[i] = bytes(data)
                continue
            m = reader.decode_manifest(cid, data)
            if isinstance(m, mf.FileManifest) and not any(lk.cid.is_manifest for lk in m.links):
                flat[i] = m.links
            else:
                out[i] = reader.read_range(blocks, cid, 0, None)
        need = list({lk.cid.digest: lk.cid for ls in flat.values() for lk in ls}.values())
        got = blocks.get_many_small(need)
        for i, links in flat.items():
            parts = []
            for lk in links:
                d = got.get(lk.cid.digest)
                parts.append(bytes(d) if d is not None else reader.read_block(blocks, lk.cid))
            out[i] = parts[0] if len(parts) == 1 else b"".join(parts)
        self._repo.note_access(*texts)
        return out

    async def get_many(self, ids: Iterable[IdLike]) -> list[bytes]:
        """Read many (small) files in one batch; each verified."""
        return await self._run(self._get_many_sync, list(ids))

    async def get_to_path(
        self,
        id: IdLike,
        dest: str | os.PathLike[str],
        progress: Progress = None,
        ready: export.Ready = None,
    ) -> Path:
        """Write a file, or a directory tree, to ``dest`` (via a temporary name).

        ``ready``: see :func:`hashmesh.store.export.get_to_path`. Such an export waits
        on a fetch that commits through this store's threads, so it runs on a thread
        of its own rather than on one of them."""
        cid = parse_id(id)
        tick = self._threadsafe(progress)

        def run() -> Path:
            info = self._stat_sync(cid)
            out = export.get_to_path(
                self._repo.blocks, cid, Path(dest).expanduser(), info.name, info.size, tick, ready
            )
            self._repo.note_access(str(cid))
            return out

        return await self._run_in(self._pool if ready is None else self._fed, run)

    async def list_dir(self, id: IdLike) -> list[DirEntry]:
        cid = parse_id(id)

        def run() -> list[DirEntry]:
            if not cid.is_manifest or self._repo.blocks.row(cid.digest) is None:
                raise NotFoundError(f"directory {cid} is not stored here")
            m = reader.load_manifest(self._repo.blocks, cid)
            if not isinstance(m, mf.DirManifest):
                raise InvalidArgumentError(f"{cid} is a file, not a directory")
            return [DirEntry(e.name, str(e.cid), e.size, e.kind) for e in m.entries]

        return await self._run(run)

    def _stat_sync(self, cid: ContentId) -> FileInfo:
        got = index.get(self._repo.db.reader(), str(cid))
        if got is not None:
            return self._repo.with_hits(got)
        if self._repo.blocks.row(cid.digest) is None:
            raise NotFoundError(f"{cid} is not stored here")
        kind, size, ctype = "file", reader.file_size(self._repo.blocks, cid), ""
        if cid.is_manifest and isinstance(
            reader.load_manifest(self._repo.blocks, cid), mf.DirManifest
        ):
            kind, ctype = "dir", "inode/directory"
        return FileInfo(
            id=str(cid),
            name="",
            size=size,
            content_type=ctype or "application/octet-stream",
            kind=kind,
        )

    async def stat(self, id: IdLike) -> FileInfo:
        """What the index knows of ``id`` (a bare block/manifest gets a minimal record)."""
        return await self._run(self._stat_sync, parse_id(id))

    async def ls(self, limit: int | None = None) -> list[FileInfo]:
        """Indexed files, newest first (expired ones hidden)."""

        def run() -> list[FileInfo]:
            rows = index.ls(self._repo.db.reader(), self._repo.clock(), limit)
            return [self._repo.with_hits(r) for r in rows]

        return await self._run(run)

    async def search(
        self,
        query: str = "",
        *,
        content_type: str | None = None,
        min_size: int | None = None,
        max_size: int | None = None,
        tag: str | None = None,
        sort: str = "relevance",
        limit: int = 50,
    ) -> list[FileInfo]:
        """FTS5 search over name, description and tags, with filters, sort and limit."""
        return await self._run(
            lambda: index.search(
                self._repo.db.reader(),
                query,
                now=self._repo.clock(),
                content_type=content_type,
                min_size=min_size,
                max_size=max_size,
                tag=tag,
                sort=sort,
                limit=limit,
            )
        )

    # -- lifecycle ---------------------------------------------------------------

    async def verify(self, id: IdLike | None = None) -> VerifyReport:
        cid = None if id is None else parse_id(id)
        return await self._run(lifecycle.verify, self._repo, cid)

    async def remove(self, id: IdLike) -> None:
        """Drop a file from the index; its blocks go at the next gc (unless shared)."""
        await self._run(self._repo.remove, parse_id(id))

    async def pin(self, id: IdLike) -> None:
        await self._run(self._repo.set_pin, parse_id(id), True)

    async def unpin(self, id: IdLike) -> None:
        await self._run(self._repo.set_pin, parse_id(id), False)

    async def gc(self) -> GcReport:
        return await self._run(lifecycle.gc, self._repo)

    async def stats(self) -> Stats:
        return await self._run(lifecycle.stats, self._repo)

    # -- raw blocks (network layer) ----------------------------------------------

    async def has_block(self, cid: IdLike) -> bool:
        c = parse_id(cid)
        return await self._run(self._repo.blocks.has, c)

    async def get_block(self, cid: IdLike) -> bytes:
        """The verified plain bytes of one block; ``NotFoundError`` if absent."""
        c = parse_id(cid)
        return await self._run(lambda: bytes(self._repo.blocks.get(c)))

    async def put_block(self, data: bytes, codec: int = ContentId.RAW) -> ContentId:
        """Store one block (held: gc keeps it until ``release_block``); return its id."""
        return (await self._run(self._repo.put_blocks, [(data, codec)]))[0]

    async def put_blocks(
        self, items: Sequence[tuple[bytes, int]], ids: Sequence[ContentId] | None = None
    ) -> list[ContentId]:
        """Store many blocks in one group commit. ``ids``: the blocks' ids when the
        caller has just verified the bytes against them (not hashed again)."""
        return await self._run(
            self._repo.put_blocks, list(items), ids=None if ids is None else list(ids)
        )

    async def get_blocks(self, cids: Sequence[IdLike]) -> list[bytes]:
        """Verified plain bytes of many blocks in one worker call; NotFoundError if one is absent."""
        cs = [parse_id(c) for c in cids]
        return await self._run(lambda: [bytes(self._repo.blocks.get(c)) for c in cs])

    async def has_blocks(self, cids: Sequence[IdLike]) -> list[bool]:
        """For each id, whether the block is stored here (one worker call)."""
        cs = [parse_id(c) for c in cids]
        return await self._run(lambda: [self._repo.blocks.has(c) for c in cs])

    async def children_many(self, cids: Sequence[IdLike]) -> list[ContentId]:
        """The ids the given (local) manifests reference directly, each once, in one call."""
        cs = [c for c in (parse_id(x) for x in cids) if c.is_manifest]

        def run() -> list[ContentId]:
            seen: dict[ContentId, None] = {}
            for c in cs:
                for child in mf.children(reader.load_manifest(self._repo.blocks, c)):
                    seen.setdefault(child, None)
            return list(seen)

        return await self._run(run)

    async def get_blocks_upto(
        self, cids: Sequence[IdLike], budget: int, corrupt: list[ContentId] | None = None
    ) -> list[bytes | None]:
        """Verified bytes of a *prefix* of ``cids`` totalling at most ``budget`` bytes (at
        least one id is always taken); None for ids not held here. One worker call: the
        caller sends what it got and asks again for the rest. With ``corrupt``, a block
        that fails its check is answered with None too and its id appended there
        (otherwise its IntegrityError is raised)."""
        cs = [parse_id(c) for c in cids]

        def run() -> list[bytes | None]:
            out: list[bytes | None] = []
            used = 0
            blocks = self._repo.blocks
            for c in cs:
                row = blocks.held(c)
                if row is None:
                    out.append(None)
                    continue
                if out and used + row.size > budget:
                    break  # known from the index: the block is not read in vain
                try:
                    data = bytes(blocks.read(c, row))
                except IntegrityError:
                    if corrupt is None:
                        raise
                    corrupt.append(c)
                    out.append(None)
                    continue
                used += len(data)
                out.append(data)
            return out

        return await self._run(run)

    async def dag_blocks_many(self, roots: Sequence[IdLike]) -> list[ContentId]:
        """Every block reachable from any of ``roots`` (each once), in one worker call."""
        rs = [parse_id(r) for r in roots]

        def run() -> list[ContentId]:
            seen: dict[ContentId, None] = {}
            for r in rs:
                for c in reader.dag(self._repo.blocks, r):
                    seen.setdefault(c, None)
            return list(seen)

        return await self._run(run)

    async def audit_step(
        self, after: bytes, budget: int
    ) -> tuple[bytes | None, int, list[ContentId]]:
        """Re-verify about ``budget`` stored bytes of blocks after digest ``after``; see
        :func:`hashmesh.store.lifecycle.audit_step`."""
        return await self._run(lifecycle.audit_step, self._repo, after, budget)

    async def rewrite_block(self, cid: IdLike, plain: bytes) -> bool:
        """Replace a corrupt or missing stored block with a good copy (``plain`` must
        hash to ``cid``: IntegrityError otherwise). True if it replaced the copy; False
        if the block is not stored here or its copy is intact."""
        c = parse_id(cid)

        def run() -> bool:
            with (
                self._repo.lock(),
                self._repo.guarded(None, "replace a corrupt block"),
                self._repo.db.transaction() as conn,
            ):
                return self._repo.blocks.rewrite(conn, c, plain)

        return await self._run(run)

    async def release_block(self, cid: IdLike) -> None:
        """Stop holding a block stored by ``put_block``; gc may then collect it."""
        await self._run(self._repo.set_pin, parse_id(cid), False)

    async def manifest_children(self, cid: IdLike) -> list[ContentId]:
        """The ids a manifest references directly (chunks, sub-manifests, entries)."""
        c = parse_id(cid)
        if not c.is_manifest:
            return []
        return await self._run(
            lambda: list(mf.children(reader.load_manifest(self._repo.blocks, c)))
        )

    async def dag_blocks(self, cid: IdLike) -> list[ContentId]:
        """Every block id reachable from ``cid``, root first."""
        c = parse_id(cid)
        return await self._run(lambda: list(reader.dag(self._repo.blocks, c)))

    async def list_block_ids(self) -> list[ContentId]:
        return await self._run(lambda: list(self._repo.blocks.iter_ids()))

    async def iter_blocks(self, batch: int = 1000) -> AsyncIterator[ContentId]:
        """Every stored block id, fetched ``batch`` at a time."""
        it = self._repo.blocks.iter_ids()

        def take() -> list[ContentId]:
            out = []
            for c in it:
                out.append(c)
                if len(out) >= batch:
                    break
            return out

        while True:
            part = await self._run(take)
            if not part:
                return
            for c in part:
                yield c


__all__ = ["Store"]
