"""Plain value types returned by the store API (no behaviour, no I/O)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class FileInfo:
    """One stored file or directory as the metadata index knows it."""

    id: str  # content id text form (the manifest's id)
    name: str
    size: int  # logical bytes (a directory: sum of its files)
    content_type: str
    kind: str  # "file" | "dir"
    description: str = ""
    tags: tuple[str, ...] = ()
    created: float = 0.0  # unix seconds
    accessed: float = 0.0
    access_count: int = 0
    owner: str = ""  # node id hex of the node that stored it ("" if none)
    expires: float | None = None  # unix seconds, None = never
    pinned: bool = False
    blocks: int = 0  # chunk blocks referenced (with repeats)

    def to_json(self) -> dict[str, Any]:
        # every field is a scalar but tags: a shallow copy is enough (asdict deep-copies
        # field by field, a measurable cost on every small put)
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["tags"] = list(self.tags)
        return d


@dataclass(frozen=True)
class DirEntry:
    """One named entry of a directory manifest."""

    name: str
    id: str
    size: int
    kind: str  # "file" | "dir"


@dataclass(frozen=True)
class Stats:
    files: int
    blocks: int
    logical_bytes: int  # sum of sizes of indexed files
    unique_bytes: int  # plain bytes of distinct blocks (after dedup)
    stored_bytes: int  # bytes on disk for blocks (after dedup and compression)
    dedup_saved: int  # logical_bytes - unique_bytes
    compression_saved: int  # unique_bytes - stored_bytes
    capacity: int  # 0 = unlimited (bounded by free disk)
    free: int  # bytes that can still be written

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class VerifyReport:
    checked_blocks: int
    bad_blocks: tuple[str, ...] = ()  # ids of corrupted blocks
    missing_blocks: tuple[str, ...] = ()  # ids referenced but absent
    affected_files: tuple[str, ...] = ()  # ids of files touching a bad or missing block

    @property
    def ok(self) -> bool:
        return not self.bad_blocks and not self.missing_blocks

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        return d


@dataclass(frozen=True)
class GcReport:
    removed_blocks: int
    freed_bytes: int
    expired_files: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
