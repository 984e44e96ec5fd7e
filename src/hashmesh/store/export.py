"""Writing stored files and directory trees back to the local file system.

Output goes to a temporary name next to the destination and is renamed into
place only when complete, so a failed or interrupted get never leaves a
half-written file under the requested name.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from hashmesh.content import manifest as mf
from hashmesh.errors import InvalidArgumentError
from hashmesh.ids import ContentId
from hashmesh.store import capacity
from hashmesh.store.blockstore import BlockStore
from hashmesh.store.direct import Output
from hashmesh.store.reader import Piece, load_manifest, plan, read_piece

Progress = Callable[[int, int], None] | None


class Fetching(Protocol):
    """Chunks a node fetches while a reader reads them (:class:`hashmesh.arrivals.Arrivals`)."""

    def wait_for(self, cid: ContentId) -> Future[None] | None:
        """A future done once ``cid`` is stored (None: it already was)."""

    def take(self, cid: ContentId) -> bytes | None:
        """The verified bytes of ``cid`` if the fetch handed them over, once."""


Ready = Fetching | None
READ_AHEAD = 8
# long-lived reader threads (each keeps one read connection per repository)
_READERS = ThreadPoolExecutor(4, thread_name_prefix="hashmesh-export")


def _wait(ready: Ready, cid: ContentId) -> None:
    """Return once ``cid`` is stored; raise the fetch's error if it could not be."""
    arrival = ready.wait_for(cid) if ready is not None else None
    if arrival is not None:
        arrival.result()


def read_when_ready(blocks: BlockStore, piece: Piece, ready: Ready) -> bytes:
    """``piece`` once its chunk is stored: from the bytes the fetch handed over, if
    it did, else from the store."""
    _wait(ready, piece.cid)
    return read_piece(blocks, piece, ready.take(piece.cid) if ready is not None else None)


def _write_file(
    blocks: BlockStore, cid: ContentId, dest: Path, tick: Callable[[int], None], ready: Ready
) -> None:
    # Reader threads read and verify pieces ahead (BLAKE3 and the disk release the
    # GIL) while this thread writes; at most READ_AHEAD pieces are in memory.
    # No fsync: an export is a copy (the durable one is in the store), written under a
    # temporary name and renamed into place when complete, like cp or `tahoe get`.
    _wait(ready, cid)  # a one-chunk file (in a tree) is its chunk ...
    whole = ready.take(cid) if ready is not None and not cid.is_manifest else None
    if whole is not None:  # ... handed over by the fetch, maybe not yet stored
        with Output(dest) as f:
            f.write(whole)
        tick(len(whole))
        return
    ahead: deque[Future[bytes | memoryview]] = deque()
    try:
        with Output(dest) as f:
            for piece in plan(blocks, cid):
                ahead.append(_READERS.submit(read_when_ready, blocks, piece, ready))
                if len(ahead) >= READ_AHEAD:
                    data = ahead.popleft().result()
                    f.write(data)
                    tick(len(data))
            while ahead:
                data = ahead.popleft().result()
                f.write(data)
                tick(len(data))
    finally:
        # on an error, no read may outlive this call (the store may be closed next)
        for fut in ahead:
            fut.cancel()
        for fut in ahead:
            if not fut.cancelled():
                fut.exception()  # waits; the outcome no longer matters


def _write_tree(
    blocks: BlockStore, cid: ContentId, dest: Path, tick: Callable[[int], None], ready: Ready
) -> None:
    m = load_manifest(blocks, cid)
    if not isinstance(m, mf.DirManifest):
        _write_file(blocks, cid, dest, tick, ready)
        return
    dest.mkdir()
    for e in m.entries:
        target = dest / mf.check_name(e.name)
        if e.kind == "dir":
            _write_tree(blocks, e.cid, target, tick, ready)
        else:
            _write_file(blocks, e.cid, target, tick, ready)


def _part_prefix(dest: Path) -> str:
    """The temporary name of an export to ``dest``, up to the writing process's id
    (then ``.part``); the host name keeps hosts sharing a directory apart."""
    host = socket.gethostname().replace("/", "_") or "host"
    return f".{dest.name}.hashmesh-{host}-"


def _drop_stale_parts(dest: Path) -> None:
    """Remove what earlier exports to ``dest`` on this host left when their process
    died (a node killed mid-get): parts named after a process id that no longer runs.
    A part of a live process (another export under way, or a reused id) is left alone.
    Best effort: a part that cannot be removed stays, and the export goes on."""
    prefix = _part_prefix(dest)
    for part in dest.parent.glob(f"{glob.escape(prefix)}*.part"):
        pid = part.name[len(prefix) : -len(".part")]
        if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        if part.is_dir() and not part.is_symlink():
            shutil.rmtree(part, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                part.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, owned by someone else
        return True
    return True


def get_to_path(
    blocks: BlockStore,
    cid: ContentId,
    dest: Path,
    name: str,
    size: int,
    progress: Progress,
    ready: Ready = None,
) -> Path:
    """Write file or tree ``cid`` to ``dest`` (into it, under ``name``, if it is a directory).

    With ``ready`` (a node fetching the chunks meanwhile), each chunk is read once
    the future ``ready.wait_for`` gives for it is done (None: already stored), from
    the bytes the fetch handed over if it did; only the manifests need be stored
    when the export starts."""
    is_dir = cid.is_manifest and isinstance(load_manifest(blocks, cid), mf.DirManifest)
    if dest.is_dir():
        dest = dest / mf.check_name(name or str(cid))
    if is_dir and dest.exists():
        raise InvalidArgumentError(f"{dest} already exists")
    if not dest.parent.is_dir():
        raise InvalidArgumentError(f"no such directory: {dest.parent}")
    _drop_stale_parts(dest)
    tmp = dest.parent / f"{_part_prefix(dest)}{os.getpid()}.part"
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, size)

    try:
        if is_dir:
            _write_tree(blocks, cid, tmp, tick, ready)
        else:
            _write_file(blocks, cid, tmp, tick, ready)
        os.replace(tmp, dest)
    except BaseException as exc:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        if isinstance(exc, FileExistsError):
            raise InvalidArgumentError(f"{tmp} is in the way; remove it and retry") from None
        if isinstance(exc, OSError):
            if capacity.is_disk_full(exc):
                raise capacity.disk_full_error(dest.parent) from None
            raise capacity.storage_error(exc, f"write {dest}") from None
        raise
    return dest


__all__ = ["get_to_path"]
