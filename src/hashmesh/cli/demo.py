"""``hashmesh demo``: store generated sample data, then show what the store does.

:func:`run_local` is the local part as a plain async function over an open
:class:`hashmesh.Store`: it generates a large mixed file, a near-duplicate of
it (a few KiB inserted in the middle, so content-defined chunking shares almost
every chunk) and a directory of small text files; stores, lists, searches,
verifies and retrieves them, compares the bytes, and reports dedup and
compression savings. A multi-node demo can call it per node.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hashmesh.cli.common import RepoOpt, repo_path, run
from hashmesh.cli.render import human_size, out
from hashmesh.errors import IntegrityError

if TYPE_CHECKING:
    from hashmesh.store.api import Store

MiB = 1024 * 1024
DEFAULT_SIZE = 64 * MiB
SEED = 20261122
_SEGMENT = 1 * MiB
_WORDS = [
    "block",
    "chunk",
    "manifest",
    "peer",
    "node",
    "bucket",
    "replica",
    "shard",
    "hash",
    "digest",
    "store",
    "index",
    "search",
    "tag",
    "pin",
    "expire",
    "verify",
    "repair",
    "route",
    "lookup",
    "closest",
    "distance",
    "record",
    "provider",
    "cache",
    "compress",
    "dedup",
    "stream",
    "window",
    "boundary",
    "commit",
    "journal",
    "quorum",
    "gossip",
    "ledger",
]


@dataclass(frozen=True)
class DemoSummary:
    """The ids the demo stored and whether every retrieved byte matched."""

    big_id: str
    edited_id: str
    notes_id: str
    verified_blocks: int
    identical: bool


def _log_text(rng: random.Random, size: int) -> bytes:
    """About ``size`` bytes of log-like, compressible text."""
    lines = []
    total = 0
    while total < size:
        line = (
            f"2026-11-22T{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d} "
            f"INFO {rng.choice(_WORDS)} {rng.getrandbits(32):08x} {rng.choice(_WORDS)} "
            f"{rng.randrange(100000)} in {rng.randrange(1000)} ms\n"
        )
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()[:size]


def sample_bytes(size: int, rng: random.Random) -> bytes:
    """Half random, half compressible (each text segment distinct), in 1 MiB segments."""
    base = _log_text(rng, _SEGMENT)
    parts = []
    for _ in range(-(-size // _SEGMENT)):
        if rng.random() < 0.5:
            parts.append(rng.randbytes(_SEGMENT))
        else:
            table = bytes(rng.sample(range(256), 256))  # relabel bytes: still compressible
            cut = rng.randrange(_SEGMENT)
            parts.append((base[cut:] + base[:cut]).translate(table))
    return b"".join(parts)[:size]


def write_notes(root: Path, rng: random.Random, count: int = 40) -> int:
    """A directory tree of ``count`` small text files; returns their total size."""
    total = 0
    for i in range(count):
        sub = root / ("recipes" if i % 4 == 0 else "journal")
        sub.mkdir(parents=True, exist_ok=True)
        words = [rng.choice(_WORDS) for _ in range(rng.randrange(150, 1200))]
        text = f"note {i}\n\n" + " ".join(words) + "\n"
        (sub / f"note-{i:02d}.txt").write_text(text, encoding="utf-8")
        total += len(text)
    return total


def _same_tree(a: Path, b: Path) -> bool:
    fa = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    fb = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    return fa == fb and all((a / r).read_bytes() == (b / r).read_bytes() for r in fa)


def _rate(n: int, seconds: float) -> str:
    return f"{n / MiB / seconds:.0f} MiB/s" if seconds > 0 else "-"


async def run_local(
    store: Store, work: Path, *, size: int = DEFAULT_SIZE, say: Callable[[str], None] = out
) -> DemoSummary:
    """Store, list, search, verify and retrieve generated data in ``store``."""
    rng = random.Random(SEED)
    before = await store.stats()

    big = sample_bytes(size, rng)
    at = size // 6
    edited = big[:at] + rng.randbytes(4096) + big[at:]
    (work / "big.bin").write_bytes(big)
    (work / "big-edited.bin").write_bytes(edited)
    notes_size = write_notes(work / "notes", rng)

    t = time.perf_counter()
    big_info = await store.put_file(
        work / "big.bin", tags=("demo", "binary"), description="demo: half random, half text"
    )
    dt = time.perf_counter() - t
    say(f"stored big.bin ({human_size(size)}) in {dt:.2f} s ({_rate(size, dt)}) as {big_info.id}")
    after_big = await store.stats()

    t = time.perf_counter()
    ed_info = await store.put_file(
        work / "big-edited.bin", tags=("demo", "binary"), description="demo: 4 KiB inserted"
    )
    dt = time.perf_counter() - t
    added = (await store.stats()).stored_bytes - after_big.stored_bytes
    say(
        f"stored big-edited.bin (4 KiB inserted at {human_size(at)}) in {dt:.2f} s "
        f"as {ed_info.id}: only {human_size(max(0, added))} new on disk"
    )
    t = time.perf_counter()
    notes_info = await store.put_dir(
        work / "notes", tags=("demo", "text"), description="demo notes and recipes"
    )
    dt = time.perf_counter() - t
    say(f"stored notes/ (40 files, {human_size(notes_size)}) in {dt:.2f} s as {notes_info.id}")

    listed = await store.ls()
    hits = await store.search("recipes notes", tag="demo")
    big_hits = await store.search("", tag="binary", min_size=size // 2, sort="size")
    say(
        f"ls shows {len(listed)} items; search 'recipes notes' found "
        f"{', '.join(h.name for h in hits) or 'nothing'}; "
        f"binaries > {human_size(size // 2)}: {len(big_hits)}"
    )

    t = time.perf_counter()
    checked = 0
    for info in (big_info, ed_info, notes_info):
        report = await store.verify(info.id)
        checked += report.checked_blocks
        if not report.ok:
            raise IntegrityError(f"demo data failed verification: {report.bad_blocks}")
    say(f"verified {checked} blocks in {time.perf_counter() - t:.2f} s: all intact")

    (work / "out").mkdir()
    t = time.perf_counter()
    got = await store.get_to_path(big_info.id, work / "out" / "big.bin")
    got_notes = await store.get_to_path(notes_info.id, work / "out" / "notes")
    dt = time.perf_counter() - t
    part = await store.read(ed_info.id, offset=at, length=4096)
    identical = (
        Path(got).read_bytes() == big
        and _same_tree(work / "notes", Path(got_notes))
        and part == edited[at : at + 4096]
    )
    if not identical:
        raise IntegrityError("demo data read back differs from what was stored")
    say(f"retrieved big.bin and notes/ in {dt:.2f} s: bytes identical; a 4 KiB range read matches")

    after = await store.stats()
    say(
        f"repository: {human_size(after.logical_bytes)} logical in "
        f"{human_size(after.stored_bytes)} on disk; dedup saved {human_size(after.dedup_saved)}, "
        f"compression saved {human_size(after.compression_saved)}; this run added "
        f"{human_size(max(0, after.stored_bytes - before.stored_bytes))}"
    )
    return DemoSummary(big_info.id, ed_info.id, notes_info.id, checked, identical)


def demo(
    ctx: typer.Context,
    repo: RepoOpt = None,
    size: Annotated[
        str, typer.Option(help="Size of the large sample file.", hidden=True)
    ] = "64MiB",
    local: Annotated[
        bool, typer.Option("--local", help="Only the single-repository part; no network.")
    ] = False,
    net_size: Annotated[
        str, typer.Option(help="Size of the file sent through the network.", hidden=True)
    ] = "32MiB",
) -> None:
    """Store sample data locally (dedup, search, verify), then run a 5-node network on
    127.0.0.1: put a file, kill a node, read it back through another, watch repair."""
    from hashmesh.config import parse_size
    from hashmesh.store.api import Store

    path = repo_path(ctx, repo)
    nbytes = parse_size(size)
    if nbytes < 64 * 1024:
        from hashmesh.errors import InvalidArgumentError

        raise InvalidArgumentError("--size must be at least 64KiB")

    async def go() -> DemoSummary:
        store = await Store.open(path, create=True)
        try:
            with tempfile.TemporaryDirectory(prefix="hashmesh-demo-") as tmp:
                return await run_local(store, Path(tmp), size=nbytes)
        finally:
            await store.close()

    out(f"hashmesh demo on the repository at {path}")
    started = time.perf_counter()
    run(go())
    if local:
        out(f"done in {time.perf_counter() - started:.1f} s; try: hashmesh --repo {path} ls")
        return
    from hashmesh.cli.demo_net import run_network, sample_data

    net_dir = path / "demo-network"
    if net_dir.exists():
        import shutil

        shutil.rmtree(net_dir)
    run_network(net_dir, sample_data(parse_size(net_size), SEED), out)
    out(
        f"done in {time.perf_counter() - started:.1f} s; all nodes stopped. "
        "Start your own network with: hashmesh devnet --nodes 5"
    )


def register(app: typer.Typer) -> None:
    """Add ``demo`` to ``app``."""
    app.command()(demo)


__all__ = ["DemoSummary", "register", "run_local", "sample_bytes"]
