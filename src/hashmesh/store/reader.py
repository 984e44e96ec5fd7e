"""Reading files back: walk manifests to the chunks a byte range needs.

Only the manifests on the path to the range and the chunks overlapping it are
read; every block is verified on the way (:meth:`BlockStore.get`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from hashmesh.content import manifest as mf
from hashmesh.errors import DecodeError, IntegrityError, InvalidArgumentError, NotFoundError
from hashmesh.ids import ContentId
from hashmesh.store.blockstore import BlockStore

MAX_DEPTH = 16


@dataclass(frozen=True, slots=True)
class Piece:
    """Bytes ``[start, end)`` of chunk ``cid``."""

    cid: ContentId
    start: int
    end: int


def read_block(blocks: BlockStore, cid: ContentId, child: bool = True) -> bytes | memoryview:
    """A verified block; a missing *child* block is an integrity failure of its file."""
    try:
        return blocks.get(cid)
    except NotFoundError:
        if not child:
            raise
        raise IntegrityError(f"block {cid} is missing", block_id=str(cid)) from None


def load_manifest(blocks: BlockStore, cid: ContentId, child: bool = False) -> mf.Manifest:
    """Read, verify and decode one manifest block."""
    return decode_manifest(cid, read_block(blocks, cid, child))


def decode_manifest(cid: ContentId, data: bytes | memoryview) -> mf.Manifest:
    """Decode verified manifest bytes (a decode failure is an integrity failure)."""
    try:
        return mf.decode(data)
    except DecodeError as exc:
        # bytes match the id, so this is a well-formed block that is not a manifest
        raise IntegrityError(
            f"block {cid} is not a valid manifest: {exc}", block_id=str(cid)
        ) from None


def file_size(blocks: BlockStore, cid: ContentId) -> int:
    if cid.is_manifest:
        return load_manifest(blocks, cid).size
    row = blocks.row(cid.digest)
    if row is None:
        raise NotFoundError(f"{cid} is not stored here")
    return row.size


def check_range(offset: int, length: int | None) -> None:
    if not isinstance(offset, int) or offset < 0:
        raise InvalidArgumentError("offset must be a non-negative integer")
    if length is not None and (not isinstance(length, int) or length < 0):
        raise InvalidArgumentError("length must be a non-negative integer or None")


def plan(
    blocks: BlockStore, cid: ContentId, offset: int = 0, length: int | None = None
) -> Iterator[Piece]:
    """The chunk pieces covering ``[offset, offset + length)`` of a file, in order."""
    check_range(offset, length)
    if not cid.is_manifest:
        row = blocks.row(cid.digest)
        if row is None:
            raise NotFoundError(f"{cid} is not stored here")
        end = row.size if length is None else min(row.size, offset + length)
        if offset < end:
            yield Piece(cid, offset, end)
        return
    root = load_manifest(blocks, cid)
    if isinstance(root, mf.DirManifest):
        raise InvalidArgumentError(f"{cid} is a directory; list it or get it to a path")
    end = root.size if length is None else min(root.size, offset + length)
    if offset < end:
        yield from _walk(blocks, root, offset, end, 0)


def _walk(
    blocks: BlockStore, m: mf.FileManifest, start: int, end: int, depth: int
) -> Iterator[Piece]:
    """Pieces of bytes ``[start, end)`` relative to manifest ``m``."""
    if depth > MAX_DEPTH:
        raise IntegrityError("file manifest tree is too deep")
    i = m.locate(start)
    while i < len(m.links) and m.offsets[i] < end:
        link, base = m.links[i], m.offsets[i]
        lo, hi = max(start, base) - base, min(end, base + link.size) - base
        if link.cid.is_manifest:
            sub = load_manifest(blocks, link.cid, child=True)
            if not isinstance(sub, mf.FileManifest) or sub.size != link.size:
                raise IntegrityError(
                    f"block {link.cid} does not match its parent manifest", block_id=str(link.cid)
                )
            yield from _walk(blocks, sub, lo, hi, depth + 1)
        else:
            yield Piece(link.cid, lo, hi)
        i += 1


def read_piece(blocks: BlockStore, piece: Piece, data: bytes | memoryview | None = None) -> bytes:
    """The bytes of ``piece``, cut from ``data`` (its chunk's verified bytes) when
    given, else read from the store."""
    if data is None:
        data = read_block(blocks, piece.cid)
    if piece.end > len(data):
        raise IntegrityError(
            f"block {piece.cid} is shorter than its manifest says", block_id=str(piece.cid)
        )
    if piece.start == 0 and piece.end == len(data):
        return data if isinstance(data, bytes) else bytes(data)
    return bytes(memoryview(data)[piece.start : piece.end])


def read_range(blocks: BlockStore, cid: ContentId, offset: int, length: int | None) -> bytes:
    parts = [read_piece(blocks, p) for p in plan(blocks, cid, offset, length)]
    return parts[0] if len(parts) == 1 else b"".join(parts)


def dag(blocks: BlockStore, cid: ContentId) -> Iterator[ContentId]:
    """Every block id reachable from ``cid`` (manifests and chunks), depth first."""
    stack = [cid]
    seen: set[bytes] = set()
    while stack:
        c = stack.pop()
        if c.digest in seen:
            continue
        seen.add(c.digest)
        yield c
        if c.is_manifest:
            stack.extend(reversed(mf.children(load_manifest(blocks, c, child=c != cid))))


__all__ = [
    "Piece",
    "check_range",
    "dag",
    "decode_manifest",
    "file_size",
    "load_manifest",
    "plan",
    "read_block",
    "read_range",
]
