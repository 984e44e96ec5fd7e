"""Commands on the local repository: init, put, get, cat, ls, search, stat,
verify, rm, pin, unpin, gc, stats.

Each command translates its arguments to one or two :class:`hashmesh.Store`
calls and hands the result to :mod:`hashmesh.cli.render`.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hashmesh.cli import render
from hashmesh.cli.common import JsonOpt, RepoOpt, parse_id, repo_path, run
from hashmesh.cli.common import with_store as _with_store
from hashmesh.errors import InvalidArgumentError, NotFoundError, NotInitialisedError

if TYPE_CHECKING:
    from hashmesh.store.api import Store
    from hashmesh.store.model import FileInfo

SORTS = ("relevance", "name", "size", "created")

IdArg = Annotated[str, typer.Argument(help="Content id (bafkr4i... / bahqycda6e...).")]


def init(ctx: typer.Context, repo: RepoOpt = None) -> None:
    """Create a repository (default ~/.hashmesh); an existing one is left as it is."""
    path = repo_path(ctx, repo)

    async def go() -> bool:
        from hashmesh.store.api import Store

        try:
            store = await Store.open(path)
            existed = True
        except NotInitialisedError:
            store = await Store.init(path)
            existed = False
        await store.close()
        return existed

    existed = run(go())
    render.out(
        f"hashmesh repository already exists at {path}"
        if existed
        else f"initialised hashmesh repository at {path}"
    )


def put(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Files or directories to store.")],
    name: Annotated[str | None, typer.Option(help="Stored name (one path only).")] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", "-t", help="A tag (repeatable).")
    ] = None,
    description: Annotated[str, typer.Option(help="Free-text description.")] = "",
    ttl: Annotated[
        str | None, typer.Option(help="Expire after this long (90s, 12h, 30d, 2w).")
    ] = None,
    pin: Annotated[bool, typer.Option("--pin", help="Pin: never expire or collect.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the ids.")] = False,
    json_out: JsonOpt = False,
    repo: RepoOpt = None,
) -> None:
    """Store files and directories; print each id with its name and size."""
    from hashmesh.config import parse_duration

    ttl_seconds = parse_duration(ttl) if ttl is not None else None
    if name is not None and len(paths) > 1:
        raise InvalidArgumentError("--name needs exactly one path")
    for p in paths:
        if not p.exists():
            raise NotFoundError(f"no such file or directory: {p}")
        if not (p.is_file() or p.is_dir()):
            raise InvalidArgumentError(f"not a regular file or directory: {p}")

    async def go(store: Store) -> list[FileInfo]:
        infos = []
        for p in paths:
            with render.TransferProgress(f"put {p.name}", enabled=not (quiet or json_out)) as bar:
                info = await store.put_path(
                    p,
                    name=name,
                    tags=tuple(tag or ()),
                    description=description,
                    ttl=ttl_seconds,
                    pin=pin,
                    progress=bar,
                )
            infos.append(info)
            if not json_out:  # print as we go: a long batch shows its progress
                render.out(
                    info.id if quiet else f"{info.id}  {info.name}  {render.human_size(info.size)}"
                )
        return infos

    infos = _with_store(ctx, repo, go)
    if json_out:
        render.print_json([i.to_json() for i in infos])


def _safe_name(info: FileInfo) -> str:
    """A stored name usable as one path component in the current directory."""
    base = info.name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return base if base not in ("", ".", "..") else info.id


def get(
    ctx: typer.Context,
    content_id: IdArg,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Output path, or a directory to write into (default: the stored name in cwd).",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Overwrite an existing path.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing.")] = False,
    repo: RepoOpt = None,
) -> None:
    """Write a stored file (or directory tree) to disk."""
    cid = parse_id(content_id)

    async def go(store: Store) -> tuple[Path, FileInfo]:
        info = await store.stat(cid)
        dest = output if output is not None else Path.cwd() / _safe_name(info)
        if output is not None and output.is_dir() and not output.is_symlink():
            dest = output / _safe_name(info)  # like cp: into an existing directory
        exists = dest.exists() or dest.is_symlink()
        if exists and not force:
            raise InvalidArgumentError(f"{dest} already exists (use --force to overwrite)")
        target = dest.with_name(f".{dest.name}.hashmesh-{os.getpid()}") if exists else dest
        with render.TransferProgress(f"get {dest.name}", enabled=not quiet) as bar:
            await store.get_to_path(cid, target, progress=bar)
        if exists:
            _replace(target, dest)
        return dest, info

    dest, info = _with_store(ctx, repo, go)
    if not quiet:
        render.out(f"{dest}  {render.human_size(info.size)}")


def _replace(new: Path, dest: Path) -> None:
    """Put ``new`` where ``dest`` is (``--force``), keeping dest until new is in place."""
    if dest.is_dir() and not dest.is_symlink():
        old = dest.with_name(f".{dest.name}.hashmesh-old-{os.getpid()}")
        dest.rename(old)
        new.rename(dest)
        shutil.rmtree(old)
    elif new.is_dir():
        dest.unlink()
        new.rename(dest)
    else:
        os.replace(new, dest)


def cat(ctx: typer.Context, content_id: IdArg, repo: RepoOpt = None) -> None:
    """Write a stored file's bytes to stdout (streamed)."""
    cid = parse_id(content_id)
    sink = sys.stdout.buffer

    async def go(store: Store) -> None:
        async for chunk in store.iter_read(cid):
            sink.write(chunk)
        sink.flush()

    _with_store(ctx, repo, go)


def ls(
    ctx: typer.Context,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many.")] = None,
    json_out: JsonOpt = False,
    repo: RepoOpt = None,
) -> None:
    """List stored files and directories, newest first."""

    async def go(store: Store) -> list[FileInfo]:
        return await store.ls(limit=limit)

    _print_files(_with_store(ctx, repo, go), json_out, "(repository is empty)")


def _print_files(infos: list[FileInfo], json_out: bool, empty: str) -> None:
    """A list of files as JSON or a table; ``empty`` (to stderr) when there are none."""
    if json_out:
        render.print_json([i.to_json() for i in infos])
    elif infos:
        render.files_table(infos)
    else:
        render.err(empty)


def search(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="Words to find in names, descriptions, tags.")] = "",
    content_type: Annotated[
        str | None, typer.Option("--type", help="Content-type prefix, e.g. text/ or image/png.")
    ] = None,
    min_size: Annotated[str | None, typer.Option(help="Minimum size (e.g. 4KiB).")] = None,
    max_size: Annotated[str | None, typer.Option(help="Maximum size (e.g. 10MB).")] = None,
    tag: Annotated[str | None, typer.Option("--tag", "-t", help="Only with this tag.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 50,
    sort: Annotated[
        str, typer.Option(help="relevance, name, size (largest first), created (newest first).")
    ] = "relevance",
    json_out: JsonOpt = False,
    repo: RepoOpt = None,
) -> None:
    """Search names, descriptions and tags; filter by type, size and tag."""
    from hashmesh.config import parse_size

    if sort not in SORTS:
        raise InvalidArgumentError(f"invalid --sort {sort!r} (choose {', '.join(SORTS)})")
    lo = parse_size(min_size) if min_size is not None else None
    hi = parse_size(max_size) if max_size is not None else None

    async def go(store: Store) -> list[FileInfo]:
        return await store.search(
            query,
            content_type=content_type,
            min_size=lo,
            max_size=hi,
            tag=tag,
            sort=sort,
            limit=limit,
        )

    _print_files(_with_store(ctx, repo, go), json_out, "no matches")


def stat(
    ctx: typer.Context, content_id: IdArg, json_out: JsonOpt = False, repo: RepoOpt = None
) -> None:
    """Show everything the index knows about one id (and a directory's entries)."""
    cid = parse_id(content_id)

    async def go(store: Store) -> tuple[Any, Any]:
        info = await store.stat(cid)
        entries = await store.list_dir(cid) if info.kind == "dir" else None
        return info, entries

    info, entries = _with_store(ctx, repo, go)
    if json_out:
        doc = info.to_json()
        if entries is not None:
            doc["entries"] = [
                {"name": e.name, "id": e.id, "size": e.size, "kind": e.kind} for e in entries
            ]
        render.print_json(doc)
    else:
        render.stat_view(info, entries)


def verify(
    ctx: typer.Context,
    content_id: Annotated[str | None, typer.Argument(help="Only this id's blocks.")] = None,
    json_out: JsonOpt = False,
    repo: RepoOpt = None,
) -> None:
    """Re-hash every stored block (or one file's); exit 1 and list bad blocks if corrupted."""
    cid = parse_id(content_id) if content_id is not None else None

    async def go(store: Store) -> Any:
        return await store.verify(cid)

    report = _with_store(ctx, repo, go)
    if json_out:
        render.print_json(report.to_json())
    else:
        render.verify_view(report)
    if not report.ok:
        raise typer.Exit(1)


def _simple(verb: str, method: str) -> Callable[..., None]:
    """A command that calls one ``store.<method>(id)`` and prints ``<verb> <id>``."""

    def command(ctx: typer.Context, content_id: IdArg, repo: RepoOpt = None) -> None:
        cid = parse_id(content_id)

        async def go(store: Store) -> None:
            await getattr(store, method)(cid)

        _with_store(ctx, repo, go)
        render.out(f"{verb} {cid}")

    return command


def _report(ctx: typer.Context, repo: Path | None, method: str, json_out: bool, view: Any) -> None:
    """Run ``store.<method>()`` and print its report as JSON or with ``view``."""

    async def go(store: Store) -> Any:
        return await getattr(store, method)()

    report = _with_store(ctx, repo, go)
    if json_out:
        render.print_json(report.to_json())
    else:
        view(report)


def gc(ctx: typer.Context, json_out: JsonOpt = False, repo: RepoOpt = None) -> None:
    """Drop expired files, then blocks no file or pin references."""
    _report(ctx, repo, "gc", json_out, render.gc_view)


def stats(ctx: typer.Context, json_out: JsonOpt = False, repo: RepoOpt = None) -> None:
    """Counts, sizes, dedup and compression savings, capacity."""
    _report(ctx, repo, "stats", json_out, render.stats_view)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(init)
    app.command()(put)
    app.command()(get)
    app.command()(cat)
    app.command()(ls)
    app.command()(search)
    app.command()(stat)
    app.command()(verify)
    app.command("rm", help="Remove a file from the index (its blocks go at the next gc).")(
        _simple("removed", "remove")
    )
    app.command("pin", help="Pin: keep the file and its blocks through expiry and gc.")(
        _simple("pinned", "pin")
    )
    app.command("unpin", help="Unpin: the file may expire and be collected again.")(
        _simple("unpinned", "unpin")
    )
    app.command()(gc)
    app.command()(stats)


__all__ = ["register"]
