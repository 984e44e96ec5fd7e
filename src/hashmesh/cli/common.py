"""What every command shares: the repository path, common options, the async runner.

Commands are thin: they resolve the repository, open :class:`hashmesh.Store`,
call one or two API methods inside :func:`with_store` and hand the results to
:mod:`hashmesh.cli.render`. Heavy modules (the store, rich) load lazily so
that a small ``put`` or ``get`` starts fast.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from hashmesh.errors import NotInitialisedError

if TYPE_CHECKING:
    from hashmesh.store.api import Store

T = TypeVar("T")

ENV_HOME = "HASHMESH_HOME"
DEFAULT_HOME = "~/.hashmesh"

RepoOpt = Annotated[
    Path | None,
    typer.Option(
        "--repo",
        help="Repository directory (default: $HASHMESH_HOME, else ~/.hashmesh).",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


class Interrupted(Exception):
    """The user pressed Ctrl-C while a command ran (mapped to exit code 130)."""


def repo_path(ctx: typer.Context, repo: Path | None = None) -> Path:
    """The repository: the command's --repo, else the global --repo, else $HASHMESH_HOME."""
    if repo is None:
        obj = ctx.find_root().obj
        repo = obj.get("repo") if isinstance(obj, dict) else None
    if repo is None:
        env = os.environ.get(ENV_HOME)
        repo = Path(env) if env else Path(DEFAULT_HOME)
    return Path(repo).expanduser()


def not_initialised(path: Path) -> NotInitialisedError:
    """The one message for a missing repository."""
    return NotInitialisedError(f"no hashmesh repository at {path} (run `hashmesh init`)")


def run(coro: Awaitable[T]) -> T:
    """Run one coroutine to completion; Ctrl-C becomes :class:`Interrupted`."""

    async def _main() -> T:
        return await coro

    try:
        return asyncio.run(_main())
    except KeyboardInterrupt:
        raise Interrupted() from None


def with_store(
    ctx: typer.Context,
    repo: Path | None,
    fn: Callable[[Store], Awaitable[T]],
    *,
    create: bool = False,
) -> T:
    """Open the repository, run ``fn(store)``, close the store; return fn's result."""
    path = repo_path(ctx, repo)

    async def _go() -> T:
        from hashmesh.control import socket_path

        if socket_path(path).exists():  # a node runs for this repository: go through it
            from hashmesh.errors import PeerUnavailableError
            from hashmesh.remote import RemoteStore

            try:
                remote = await RemoteStore.connect(path)
            except PeerUnavailableError:
                pass  # a stale socket left by a killed node: open the repository directly
            else:
                try:
                    return await fn(remote)  # type: ignore[arg-type]
                finally:
                    await remote.close()

        from hashmesh.store.api import Store

        try:
            store = await Store.open(path, create=create)
        except NotInitialisedError:
            raise not_initialised(path) from None
        try:
            return await fn(store)
        finally:
            await store.close()

    return run(_go())


def parse_id(text: str) -> str:
    """Validate a content id's text form (``InvalidIdError`` if malformed)."""
    from hashmesh.ids import ContentId

    return str(ContentId.parse(text))
