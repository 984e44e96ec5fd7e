"""Output: human sizes and times, rich tables, one-document JSON, progress bars.

Everything that prints goes through here so commands stay translations.
rich is imported only when a table or a progress bar is actually drawn.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from hashmesh.store.model import DirEntry, FileInfo, GcReport, Stats, VerifyReport

PROGRESS_MIN_BYTES = 64 * 1024 * 1024  # show a bar at once for transfers above this
PROGRESS_AFTER_SECONDS = 1.0  # otherwise only once a transfer has run this long
_PIPE_WIDTH = 240  # table width when stdout is not a terminal (keep ids whole)

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


def human_size(n: int | float) -> str:
    """``512 B``, ``4.0 KiB``, ``64.0 MiB``."""
    if n < 1024:
        return f"{int(n)} B"
    value = float(n) / 1024
    unit = 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value /= 1024
        unit += 1
    return f"{value:.1f} {_UNITS[unit]}"


def human_time(ts: float | None, *, never: str = "never") -> str:
    """A unix time as local ``YYYY-MM-DD HH:MM``."""
    if ts is None:
        return never
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def human_duration(seconds: float) -> str:
    """``0.21 s``, ``3.4 min``, ``2.0 d``."""
    if seconds < 120:
        return f"{seconds:.2f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    to_json = getattr(obj, "to_json", None)
    if callable(to_json):
        return to_json()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def print_json(doc: Any) -> None:
    """Print exactly one JSON document on stdout."""
    sys.stdout.write(json.dumps(doc, default=_json_default, indent=2, sort_keys=True) + "\n")


def out(line: str = "") -> None:
    """One plain line on stdout (no markup, no wrapping)."""
    sys.stdout.write(line + "\n")


def err(line: str) -> None:
    """One plain line on stderr."""
    sys.stderr.write(line + "\n")


def console() -> Console:
    """A rich console on stdout; wide when piped so ids are never cut."""
    from rich.console import Console

    width = None if sys.stdout.isatty() else _PIPE_WIDTH
    return Console(width=width, highlight=False, soft_wrap=False)


def files_table(infos: Sequence[FileInfo], *, title: str | None = None) -> None:
    """The table of ``ls`` and ``search``."""
    from rich.table import Table

    table = Table(title=title, box=None, header_style="bold", pad_edge=False)
    table.add_column("ID", no_wrap=True)
    table.add_column("NAME", overflow="fold")
    table.add_column("SIZE", justify="right", no_wrap=True)
    table.add_column("TYPE", no_wrap=True)
    table.add_column("TAGS", overflow="fold")
    table.add_column("PIN", no_wrap=True)
    table.add_column("CREATED", no_wrap=True)
    for f in infos:
        kind = "dir" if f.kind == "dir" else (f.content_type or "file")
        table.add_row(
            f.id,
            f.name,
            human_size(f.size),
            kind,
            ",".join(f.tags),
            "yes" if f.pinned else "",
            human_time(f.created),
        )
    console().print(table)


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """A plain table with a bold header row."""
    from rich.table import Table

    t = Table(box=None, header_style="bold", pad_edge=False)
    for h in headers:
        t.add_column(h.upper(), no_wrap=True)
    for row in rows:
        t.add_row(*row)
    console().print(t)


def key_values(rows: Iterable[tuple[str, str]]) -> None:
    """A two-column table of names and values."""
    from rich.table import Table

    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    console().print(table)


def stat_view(info: FileInfo, entries: Sequence[DirEntry] | None) -> None:
    """``stat``: every field of one file, and a directory's entries."""
    now = time.time()
    expires = "never" if info.expires is None else f"{human_time(info.expires)}"
    if info.expires is not None:
        left = info.expires - now
        expires += f" (in {human_duration(left)})" if left > 0 else " (expired)"
    key_values(
        [
            ("id", info.id),
            ("name", info.name),
            ("kind", info.kind),
            ("size", f"{human_size(info.size)} ({info.size} bytes)"),
            ("type", info.content_type),
            ("description", info.description),
            ("tags", ", ".join(info.tags)),
            ("pinned", "yes" if info.pinned else "no"),
            ("blocks", str(info.blocks)),
            ("created", human_time(info.created)),
            ("accessed", f"{human_time(info.accessed or None)} ({info.access_count} reads)"),
            ("expires", expires),
            ("owner", info.owner or "-"),
        ]
    )
    if entries:
        from rich.table import Table

        table = Table(box=None, header_style="bold", pad_edge=False, title="entries")
        table.add_column("NAME", overflow="fold")
        table.add_column("KIND", no_wrap=True)
        table.add_column("SIZE", justify="right", no_wrap=True)
        table.add_column("ID", no_wrap=True)
        for e in entries:
            table.add_row(e.name, e.kind, human_size(e.size), e.id)
        console().print(table)


def stats_view(s: Stats) -> None:
    """``stats``: counts, sizes and savings."""

    def pct(part: int, whole: int) -> str:
        return f" ({100 * part / whole:.1f} %)" if whole else ""

    key_values(
        [
            ("files", str(s.files)),
            ("blocks", str(s.blocks)),
            ("logical", human_size(s.logical_bytes)),
            ("unique", human_size(s.unique_bytes)),
            ("on disk", human_size(s.stored_bytes)),
            ("dedup saved", human_size(s.dedup_saved) + pct(s.dedup_saved, s.logical_bytes)),
            (
                "compression saved",
                human_size(s.compression_saved) + pct(s.compression_saved, s.unique_bytes),
            ),
            ("capacity", "unlimited" if s.capacity == 0 else human_size(s.capacity)),
            ("free", human_size(s.free)),
        ]
    )


def verify_view(r: VerifyReport) -> None:
    """``verify``: a summary line, then every bad or missing block and affected file."""
    if r.ok:
        out(f"ok: {r.checked_blocks} blocks checked, all intact")
        return
    out(
        f"CORRUPTED: {r.checked_blocks} blocks checked, {len(r.bad_blocks)} bad, "
        f"{len(r.missing_blocks)} missing, {len(r.affected_files)} files affected"
    )
    for b in r.bad_blocks:
        out(f"bad block      {b}")
    for b in r.missing_blocks:
        out(f"missing block  {b}")
    for f in r.affected_files:
        out(f"affected file  {f}")


def gc_view(r: GcReport) -> None:
    """``gc``: what was removed."""
    out(
        f"removed {r.removed_blocks} blocks, freed {human_size(r.freed_bytes)}, "
        f"{len(r.expired_files)} expired files dropped"
    )
    for f in r.expired_files:
        out(f"expired  {f}")


class TransferProgress:
    """A progress bar on stderr that appears only for long transfers.

    Call it as ``progress(done_bytes, total_bytes)`` (thread-safe). The bar is
    drawn when the total exceeds :data:`PROGRESS_MIN_BYTES` or the transfer has
    run for :data:`PROGRESS_AFTER_SECONDS`; never when stdout or stderr is not
    a terminal, or when ``enabled`` is false (``--quiet``, ``--json``).
    """

    def __init__(self, label: str, *, enabled: bool = True) -> None:
        self.label = label
        self.enabled = enabled and sys.stdout.isatty() and sys.stderr.isatty()
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        with self._lock:
            if self._bar is None:
                slow = time.monotonic() - self._started >= PROGRESS_AFTER_SECONDS
                if total <= PROGRESS_MIN_BYTES and not slow:
                    return
                self._start_bar(total)
            assert self._bar is not None and self._task is not None
            self._bar.update(self._task, completed=done, total=total)

    def _start_bar(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(self.label, total=total)

    def close(self) -> None:
        """Remove the bar (if one was drawn)."""
        with self._lock:
            if self._bar is not None:
                self._bar.stop()
                self._bar = None

    def __enter__(self) -> TransferProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
