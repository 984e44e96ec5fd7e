"""Manifests: the blocks that tie chunks into files and files into directories.

Every manifest is one msgpack map with an explicit format version::

    file:  {"v": 1, "t": "file", "size": N, "links": [[cid, size], ...]}
    dir:   {"v": 1, "t": "dir",  "size": N, "entries": [[name, cid, size, kind], ...]}

``cid`` is the binary CIDv1 of the target. A file manifest's links are, in
order, raw chunks or (for big files) further file manifests covering the next
byte range; ``size`` is the sum of the link sizes, so a reader can seek to any
offset by summing sizes without touching the chunks. One manifest holds at most
:data:`MAX_LINKS` links; :class:`TreeBuilder` turns longer chunk lists into a
balanced tree of manifests with bounded memory. Directory entries are sorted by
name; ``kind`` is ``"file"`` or ``"dir"`` and ``cid`` is that entry's manifest.

Decoding is strict: size caps first, then types, then invariants. Anything
else raises :class:`DecodeError` (never another exception).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

from hashmesh.errors import DecodeError, InvalidArgumentError, InvalidIdError
from hashmesh.ids import ContentId

VERSION = 1
MAX_LINKS = 4096
MAX_DIR_ENTRIES = 16384
MAX_NAME_BYTES = 255
MAX_MANIFEST_BYTES = 8 * 1024 * 1024
MAX_SIZE = 1 << 62
KINDS = ("file", "dir")


@dataclass(frozen=True, slots=True)
class Link:
    """One child of a file manifest: a chunk or a sub-manifest, with its byte size."""

    cid: ContentId
    size: int


@dataclass(frozen=True, slots=True)
class Entry:
    """One named entry of a directory manifest."""

    name: str
    cid: ContentId
    size: int
    kind: str


@dataclass(frozen=True)
class FileManifest:
    """An ordered list of links; ``offsets[i]`` is where link ``i`` starts."""

    links: tuple[Link, ...]
    size: int = -1
    offsets: tuple[int, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        offs = tuple(itertools.accumulate((lk.size for lk in self.links), initial=0))
        object.__setattr__(self, "offsets", offs[:-1])
        if self.size < 0:
            object.__setattr__(self, "size", offs[-1])

    def locate(self, offset: int) -> int:
        """Index of the link holding byte ``offset`` (``len(links)`` past the end)."""
        if offset >= self.size:
            return len(self.links)
        return bisect.bisect_right(self.offsets, offset) - 1


@dataclass(frozen=True)
class DirManifest:
    """Named entries, sorted by name."""

    entries: tuple[Entry, ...]

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries)


Manifest = FileManifest | DirManifest


def check_name(name: str) -> str:
    """Return ``name`` if it is a safe single path component, else raise."""
    if (
        not isinstance(name, str)
        or name in ("", ".", "..")
        or "/" in name
        or "\x00" in name
        or "\\" in name
        or len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES
    ):
        raise InvalidArgumentError(f"invalid directory entry name {name!r}")
    return name


def encode(manifest: Manifest) -> bytes:
    """Canonical msgpack bytes of a manifest."""
    if isinstance(manifest, FileManifest):
        if len(manifest.links) > MAX_LINKS:
            raise InvalidArgumentError(f"a manifest holds at most {MAX_LINKS} links")
        body: dict[str, Any] = {
            "v": VERSION,
            "t": "file",
            "size": manifest.size,
            "links": [[lk.cid.to_bytes(), lk.size] for lk in manifest.links],
        }
    else:
        if len(manifest.entries) > MAX_DIR_ENTRIES:
            raise InvalidArgumentError(f"a directory holds at most {MAX_DIR_ENTRIES} entries")
        names = [e.name for e in manifest.entries]
        if names != sorted(names) or len(set(names)) != len(names):
            raise InvalidArgumentError("directory entries must be sorted and unique")
        for e in manifest.entries:
            check_name(e.name)
        body = {
            "v": VERSION,
            "t": "dir",
            "size": manifest.size,
            "entries": [[e.name, e.cid.to_bytes(), e.size, e.kind] for e in manifest.entries],
        }
    return msgpack.packb(body, use_bin_type=True)


def _int(value: Any, what: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_SIZE:
        raise DecodeError(f"manifest {what} is not a valid size")
    return value


def _cid(value: Any) -> ContentId:
    if type(value) is not bytes:
        raise DecodeError("manifest link is not a binary content id")
    try:
        return ContentId.from_bytes(value)
    except InvalidIdError as exc:
        raise DecodeError(f"manifest link: {exc}") from None


def _decode_file(body: dict[str, Any]) -> FileManifest:
    raw = body.get("links")
    if type(raw) is not list or len(raw) > MAX_LINKS:
        raise DecodeError("file manifest links missing or too many")
    links = []
    for item in raw:
        if type(item) is not list or len(item) != 2:
            raise DecodeError("file manifest link is malformed")
        links.append(Link(_cid(item[0]), _int(item[1], "link size")))
    size = _int(body.get("size"), "size")
    m = FileManifest(tuple(links))
    if m.size != size:
        raise DecodeError("file manifest size does not match its links")
    return m


def _decode_dir(body: dict[str, Any]) -> DirManifest:
    raw = body.get("entries")
    if type(raw) is not list or len(raw) > MAX_DIR_ENTRIES:
        raise DecodeError("directory manifest entries missing or too many")
    entries = []
    for item in raw:
        if type(item) is not list or len(item) != 4 or type(item[0]) is not str:
            raise DecodeError("directory entry is malformed")
        try:
            name = check_name(item[0])
        except InvalidArgumentError as exc:
            raise DecodeError(str(exc)) from None
        cid = _cid(item[1])
        if item[3] not in KINDS or (item[3] == "dir" and not cid.is_manifest):
            raise DecodeError("directory entry has a bad kind or id")
        entries.append(Entry(name, cid, _int(item[2], "entry size"), item[3]))
    names = [e.name for e in entries]
    if any(a >= b for a, b in itertools.pairwise(names)):
        raise DecodeError("directory entries are not sorted and unique")
    m = DirManifest(tuple(entries))
    if m.size != _int(body.get("size"), "size"):
        raise DecodeError("directory manifest size does not match its entries")
    return m


def decode(data: bytes | memoryview) -> Manifest:
    """Parse manifest bytes; :class:`DecodeError` on garbage, caps or broken invariants."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise DecodeError("manifest is too large")
    try:
        body = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            max_bin_len=64,
            max_str_len=4 * MAX_NAME_BYTES,
            max_array_len=max(MAX_LINKS, MAX_DIR_ENTRIES),
            max_map_len=8,
            max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
        raise DecodeError("manifest is not valid msgpack") from None
    except Exception as exc:  # msgpack may raise other internal errors on hostile input
        raise DecodeError(f"manifest is not valid msgpack ({type(exc).__name__})") from None
    if type(body) is not dict:
        raise DecodeError("manifest is not a map")
    if body.get("v") != VERSION:
        raise DecodeError(f"unsupported manifest version {body.get('v')!r}")
    kind = body.get("t")
    if kind == "file":
        return _decode_file(body)
    if kind == "dir":
        return _decode_dir(body)
    raise DecodeError("manifest has an unknown type")


class TreeBuilder:
    """Build a balanced tree of file manifests from a stream of chunk links.

    ``emit(manifest_bytes) -> ContentId`` stores one manifest block and returns
    its id. At most ``fanout`` links are held per tree level, so memory stays
    bounded however long the file. The shape depends only on the chunk sequence
    and ``fanout``, so equal files get equal ids.
    """

    def __init__(self, emit: Callable[[bytes], ContentId], fanout: int = MAX_LINKS) -> None:
        if not 2 <= fanout <= MAX_LINKS:
            raise InvalidArgumentError(f"fanout must be between 2 and {MAX_LINKS}")
        self._emit = emit
        self._fanout = fanout
        self._levels: list[list[Link]] = [[]]

    def _push(self, level: int, link: Link) -> None:
        if level == len(self._levels):
            self._levels.append([])
        pending = self._levels[level]
        if len(pending) == self._fanout:
            sub = FileManifest(tuple(pending))
            pending.clear()
            self._push(level + 1, Link(self._emit(encode(sub)), sub.size))
        pending.append(link)

    def add(self, cid: ContentId, size: int) -> None:
        """Append the next chunk of the file."""
        self._push(0, Link(cid, size))

    def finish(self) -> tuple[ContentId, int]:
        """Emit the remaining manifests; return the root id and the file size."""
        level = 0
        while level < len(self._levels) - 1:
            pending = self._levels[level]
            sub = FileManifest(tuple(pending))
            pending.clear()
            self._push(level + 1, Link(self._emit(encode(sub)), sub.size))
            level += 1
        root = FileManifest(tuple(self._levels[level]))
        return self._emit(encode(root)), root.size


def children(manifest: Manifest) -> Sequence[ContentId]:
    """The ids a manifest references directly, in order."""
    if isinstance(manifest, FileManifest):
        return [lk.cid for lk in manifest.links]
    return [e.cid for e in manifest.entries]


__all__ = [
    "MAX_DIR_ENTRIES",
    "MAX_LINKS",
    "MAX_MANIFEST_BYTES",
    "VERSION",
    "DirManifest",
    "Entry",
    "FileManifest",
    "Link",
    "Manifest",
    "TreeBuilder",
    "check_name",
    "children",
    "decode",
    "encode",
]
