"""Putting files, directories and byte strings into a :class:`Repo`.

Each put: stat the input, check capacity (nothing is written if it will not
fit), chunk + hash + write blocks through an :class:`Ingest`, build the
manifests, then commit blocks and index rows once (see :meth:`Repo.commit`).
"""

from __future__ import annotations

import mimetypes
import os
import stat as stat_mod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hashmesh.content import manifest as mf
from hashmesh.content.compress import KIND_MANIFEST, KIND_RAW
from hashmesh.content.mediatype import DIRECTORY, detect
from hashmesh.errors import InvalidArgumentError, NotFoundError
from hashmesh.ids import ContentId
from hashmesh.store import capacity, index
from hashmesh.store.ingest import BlockSink, FileRefs, Ingest
from hashmesh.store.model import FileInfo
from hashmesh.store.repo import Repo

Progress = Callable[[int, int], None] | None
HEAD_BYTES = 4096


@dataclass(frozen=True)
class Meta:
    """User metadata shared by the put calls."""

    tags: tuple[str, ...] = ()
    description: str = ""
    ttl: float | None = None
    pin: bool = False

    @classmethod
    def check(cls, tags: Iterable[str], description: str, ttl: float | None, pin: bool) -> Meta:
        if isinstance(tags, str):
            tags = [tags]
        if ttl is not None and (
            isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl > 0
        ):
            raise InvalidArgumentError("ttl must be a positive number of seconds or None")
        return cls(index.check_tags(tags), index.check_description(description), ttl, bool(pin))


class _Counter:
    def __init__(self, total: int, progress: Progress) -> None:
        self.done = 0
        self.total = total
        self.progress = progress

    def add(self, n: int) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(self.done, self.total)


def _content_type(name: str, head: bytes) -> str:
    guess = mimetypes.guess_type(name, strict=False)[0] if name else None
    return detect(guess, head)


def _new_file(
    repo: Repo,
    cid: ContentId,
    name: str,
    size: int,
    ctype: str,
    kind: str,
    meta: Meta,
    refs: FileRefs,
) -> index.NewFile:
    now = repo.clock()
    return index.NewFile(
        cid=str(cid),
        name=name,
        size=size,
        content_type=ctype,
        kind=kind,
        description=meta.description,
        tags=meta.tags,
        created=now,
        owner=repo.owner,
        expires=None if meta.ttl is None else now + meta.ttl,
        pinned=meta.pin,
        nblocks=refs.chunks,
        digests=frozenset(refs.digests),
    )


def _chunks_to_file(
    ing: Ingest, refs: FileRefs, chunks: Iterable[bytes | memoryview], counter: _Counter
) -> tuple[ContentId, int, bytes]:
    """Store a file's chunks; its id is the manifest's, or for a file of exactly one
    chunk the chunk's own raw id (no manifest block: half the blocks for small files)."""
    builder = mf.TreeBuilder(lambda b: ing.add(b, KIND_MANIFEST, refs))
    head = b""
    first = True
    only: tuple[ContentId, int] | None = None
    count = 0
    try:
        for chunk in chunks:
            if first:
                head = bytes(chunk[:HEAD_BYTES])
                first = False
            cid = ing.add(chunk, KIND_RAW, refs)
            builder.add(cid, len(chunk))
            counter.add(len(chunk))
            count += 1
            only = (cid, len(chunk)) if count == 1 else None
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    if only is not None:
        return only[0], only[1], head
    cid, size = builder.finish()
    return cid, size, head


def _file_chunks(repo: Repo, path: Path) -> tuple[Iterable[bytes], int]:
    """A stream of chunks of ``path`` (raw file, bounded memory) and its size at open."""
    try:
        f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the generator
    except FileNotFoundError:
        raise NotFoundError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise InvalidArgumentError(f"{path} is a directory") from None
    size = os.fstat(f.fileno()).st_size

    def gen() -> Iterable[bytes]:
        with f:
            yield from repo.chunker.stream(f)

    return gen(), size


def _stat(path: Path) -> os.stat_result:
    try:
        return path.stat()
    except FileNotFoundError:
        raise NotFoundError(f"no such file or directory: {path}") from None
    except PermissionError:
        raise capacity.storage_error(PermissionError(), f"read {path}") from None


def put_file(
    repo: Repo,
    path: Path,
    name: str | None,
    meta: Meta,
    progress: Progress,
    sink: BlockSink | None = None,
) -> FileInfo:
    st = _stat(path)
    if stat_mod.S_ISDIR(st.st_mode):
        raise InvalidArgumentError(f"{path} is a directory (use put_dir)")
    name = name if name is not None else path.name
    with repo.lock():
        need = capacity.estimate_need(st.st_size, repo.config.chunk_min)
        ing = repo.ingest(repo.budget(need), sink)
        with repo.guarded(ing, f"store {path}"):
            chunks, size = _file_chunks(repo, path)
            refs = FileRefs()
            cid, size, head = _chunks_to_file(ing, refs, chunks, _Counter(size, progress))
            f = _new_file(repo, cid, name, size, _content_type(name, head), "file", meta, refs)
            return repo.commit(ing, [f])[0]


def put_bytes(repo: Repo, data: bytes, name: str, meta: Meta) -> FileInfo:
    return put_many(repo, [(name, data)], meta)[0]


def put_many(repo: Repo, items: Sequence[tuple[str, bytes]], meta: Meta) -> list[FileInfo]:
    for item in items:
        if (
            not isinstance(item, tuple | list)
            or len(item) != 2
            or not isinstance(item[0], str)
            or not isinstance(item[1], bytes | bytearray | memoryview)
        ):
            raise InvalidArgumentError("put_many items must be (name, bytes) pairs")
    total = sum(len(d) for _, d in items)
    need = capacity.estimate_need(total, repo.config.chunk_min, max(1, len(items)))
    news: list[index.NewFile] = []
    with repo.lock():
        ing = repo.ingest(repo.budget(need))
        with repo.guarded(ing, "store data"):
            counter = _Counter(total, None)
            for name, data in items:
                refs = FileRefs()
                cid, size, head = _chunks_to_file(ing, refs, repo.chunker.split(data), counter)
                news.append(
                    _new_file(repo, cid, name, size, _content_type(name, head), "file", meta, refs)
                )
            return repo.commit(ing, news)


def _scan(path: Path) -> tuple[int, int]:
    """Total bytes and number of regular files under ``path`` (symlinks skipped)."""
    total = files = 0
    stack = [path]
    while stack:
        d = stack.pop()
        try:
            entries = list(os.scandir(d))
        except PermissionError:
            raise capacity.storage_error(PermissionError(), f"read directory {d}") from None
        for e in entries:
            if e.is_symlink():
                continue
            if e.is_dir():
                stack.append(Path(e.path))
            elif e.is_file():
                total += e.stat().st_size
                files += 1
    return total, files


def _entry_name(name: str, where: Path) -> str:
    try:
        name.encode("utf-8")
        return mf.check_name(name)
    except (UnicodeEncodeError, InvalidArgumentError):
        raise InvalidArgumentError(f"cannot store {where}: unsupported file name") from None


def _put_tree(
    repo: Repo, ing: Ingest, path: Path, refs: FileRefs, counter: _Counter
) -> tuple[ContentId, int]:
    entries: list[mf.Entry] = []
    for e in sorted(os.scandir(path), key=lambda e: e.name):
        if e.is_symlink():
            continue
        p = Path(e.path)
        if e.is_dir():
            sub, size = _put_tree(repo, ing, p, refs, counter)
            entries.append(mf.Entry(_entry_name(e.name, p), sub, size, "dir"))
        elif e.is_file():
            chunks, _ = _file_chunks(repo, p)
            cid, size, _head = _chunks_to_file(ing, refs, chunks, counter)
            entries.append(mf.Entry(_entry_name(e.name, p), cid, size, "file"))
    if len(entries) > mf.MAX_DIR_ENTRIES:
        raise InvalidArgumentError(
            f"cannot store {path}: more than {mf.MAX_DIR_ENTRIES} entries in one directory"
        )
    dm = mf.DirManifest(tuple(entries))
    return ing.add(mf.encode(dm), KIND_MANIFEST, refs), dm.size


def put_dir(
    repo: Repo,
    path: Path,
    name: str | None,
    meta: Meta,
    progress: Progress,
    sink: BlockSink | None = None,
) -> FileInfo:
    st = _stat(path)
    if not stat_mod.S_ISDIR(st.st_mode):
        raise InvalidArgumentError(f"{path} is not a directory")
    name = name if name is not None else path.resolve().name
    total, nfiles = _scan(path)
    with repo.lock():
        need = capacity.estimate_need(total, repo.config.chunk_min, nfiles + 1)
        ing = repo.ingest(repo.budget(need), sink)
        with repo.guarded(ing, f"store {path}"):
            refs = FileRefs()
            cid, size = _put_tree(repo, ing, path, refs, _Counter(total, progress))
            f = _new_file(repo, cid, name, size, DIRECTORY, "dir", meta, refs)
            return repo.commit(ing, [f])[0]


__all__ = ["Meta", "put_bytes", "put_dir", "put_file", "put_many"]
