"""A Store-shaped view of the node running for a repository.

When a node runs for the repository, the CLI talks to it through this class
instead of opening the repository directly: the same method names and return
types as :class:`hashmesh.store.api.Store`, each one control call. Paths are
resolved to absolute ones here because the node runs in another directory.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from hashmesh.client import Client
from hashmesh.store.model import DirEntry, FileInfo, GcReport, Stats, VerifyReport

Progress = Callable[[int, int], None] | None


def _info(d: dict[str, Any]) -> FileInfo:
    d = dict(d)
    d["tags"] = tuple(d.get("tags") or ())
    return FileInfo(**d)


class RemoteStore:
    """The running node's store, over its control socket."""

    def __init__(self, client: Client) -> None:
        self._c = client

    @classmethod
    async def connect(cls, repo: str | os.PathLike[str]) -> RemoteStore:
        # Puts and gets of large files through the node take as long as they take.
        return cls(await Client(repo, timeout=3600).connect())

    async def close(self) -> None:
        await self._c.close()

    async def put_path(
        self, path: str | os.PathLike[str], *, progress: Progress = None, **meta: Any
    ) -> FileInfo:
        meta["tags"] = list(meta.get("tags") or ())
        res = await self._c.call("put", path=str(Path(path).resolve()), **meta)
        return _info(res["file"])

    async def stat(self, id: str) -> FileInfo:
        return _info(await self._c.call("stat", id=str(id)))

    async def get_to_path(
        self, id: str, dest: str | os.PathLike[str], progress: Progress = None
    ) -> Path:
        return Path(await self._c.call("get", id=str(id), dest=str(Path(dest).resolve())))

    async def iter_read(self, id: str) -> AsyncIterator[bytes]:
        async for chunk in self._c.stream("cat", id=str(id)):
            yield chunk

    async def read(self, id: str, offset: int = 0, length: int | None = None) -> bytes:
        return await self._c.call("read", id=str(id), offset=offset, length=length)

    async def list_dir(self, id: str) -> list[DirEntry]:
        return [DirEntry(**e) for e in await self._c.call("list_dir", id=str(id))]

    async def ls(self, limit: int | None = None) -> list[FileInfo]:
        return [_info(d) for d in await self._c.call("ls", limit=limit)]

    async def search(self, query: str = "", **filters: Any) -> list[FileInfo]:
        return [_info(d) for d in await self._c.call("search", query=query, **filters)]

    async def verify(self, id: str | None = None) -> VerifyReport:
        d = await self._c.call("verify", id=id)
        d.pop("ok", None)
        return VerifyReport(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    async def remove(self, id: str) -> None:
        await self._c.call("rm", id=str(id))

    async def pin(self, id: str) -> None:
        await self._c.call("pin", id=str(id))

    async def unpin(self, id: str) -> None:
        await self._c.call("unpin", id=str(id))

    async def gc(self) -> GcReport:
        d = await self._c.call("gc")
        d["expired_files"] = tuple(d.get("expired_files") or ())
        return GcReport(**d)

    async def stats(self) -> Stats:
        return Stats(**await self._c.call("stats"))


__all__ = ["RemoteStore"]
