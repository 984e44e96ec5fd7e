"""The metadata index: one row per stored file or directory, tags, refs, search.

Rows are written inside the caller's transaction (see :class:`hashmesh.store.db.Database`);
reads use the calling thread's read connection.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hashmesh.errors import InvalidArgumentError
from hashmesh.store.model import FileInfo

SORTS = ("relevance", "name", "size", "created")
MAX_TAG = 64
MAX_TAGS = 64
MAX_DESCRIPTION = 4096
MAX_LIMIT = 10_000
_COLUMNS = (
    "fid, cid, name, size, content_type, kind, description, tags, created, accessed, "
    "access_count, owner, expires, pinned, nblocks"
)
_FTS_INSERT = "INSERT INTO files_fts(rowid, name, description, tags) VALUES (?, ?, ?, ?)"
_TERM = re.compile(r"\w[\w\-]*", re.UNICODE)


@dataclass(frozen=True)
class NewFile:
    """Everything the index stores about a put file, before it has a row."""

    cid: str
    name: str
    size: int
    content_type: str
    kind: str
    description: str
    tags: tuple[str, ...]
    created: float
    owner: str
    expires: float | None
    pinned: bool
    nblocks: int
    digests: frozenset[bytes]


def check_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Validate and normalise tags: 1..64 printable characters, no whitespace."""
    out: list[str] = []
    for tag in tags:
        t = tag.strip() if isinstance(tag, str) else ""
        if not t or len(t) > MAX_TAG or any(c.isspace() or not c.isprintable() for c in t):
            raise InvalidArgumentError(
                f"invalid tag {tag!r} (1-{MAX_TAG} printable characters, no spaces)"
            )
        if t not in out:
            out.append(t)
    if len(out) > MAX_TAGS:
        raise InvalidArgumentError(f"at most {MAX_TAGS} tags per file")
    return tuple(out)


def check_description(text: str) -> str:
    if not isinstance(text, str) or len(text) > MAX_DESCRIPTION:
        raise InvalidArgumentError(f"description must be text of at most {MAX_DESCRIPTION} chars")
    return text


def _info(row: Sequence) -> FileInfo:
    return FileInfo(
        id=row[1],
        name=row[2],
        size=row[3],
        content_type=row[4],
        kind=row[5],
        description=row[6],
        tags=tuple(row[7].split()) if row[7] else (),
        created=row[8],
        accessed=row[9],
        access_count=row[10],
        owner=row[11],
        expires=row[12],
        pinned=bool(row[13]),
        blocks=row[14],
    )


def upsert_many(conn: sqlite3.Connection, files: Sequence[NewFile]) -> list[bool]:
    """Insert file rows, or refresh the metadata of ones stored before; True where new.

    A re-put keeps ``created`` and the access counters, takes the new name,
    description, tags and expiry, and stays pinned if either put pinned it.
    """
    fresh: list[bool] = []
    fts: list[tuple] = []
    tags: list[tuple] = []
    refs: list[tuple] = []
    for f in files:
        tags_text = " ".join(f.tags)
        cur = conn.execute(
            f"INSERT INTO files({_COLUMNS}) VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?) "
            "ON CONFLICT(cid) DO NOTHING",
            (
                f.cid,
                f.name,
                f.size,
                f.content_type,
                f.kind,
                f.description,
                tags_text,
                f.created,
                f.created,
                f.owner,
                f.expires,
                int(f.pinned),
                f.nblocks,
            ),
        )
        new = cur.rowcount == 1
        if new:
            fid = cur.lastrowid
            fts.append((fid, f.name, f.description, tags_text))
        else:
            # the update trigger rewrites this row's FTS entry: index pending rows first
            conn.executemany(_FTS_INSERT, fts)
            fts.clear()
            old = conn.execute("SELECT fid, pinned FROM files WHERE cid = ?", (f.cid,)).fetchone()
            fid = old[0]
            conn.execute(
                "UPDATE files SET name = ?, description = ?, tags = ?, expires = ?, pinned = ?, "
                "content_type = ? WHERE fid = ?",
                (
                    f.name,
                    f.description,
                    tags_text,
                    None if (old[1] or f.pinned) else f.expires,
                    int(old[1] or f.pinned),
                    f.content_type,
                    fid,
                ),
            )
            conn.execute("DELETE FROM file_tags WHERE fid = ?", (fid,))
        fresh.append(new)
        tags += [(t, fid) for t in f.tags]
        refs += [(fid, d) for d in f.digests]
    conn.executemany(
        "INSERT INTO files_fts(rowid, name, description, tags) VALUES (?, ?, ?, ?)", fts
    )
    conn.executemany("INSERT OR IGNORE INTO file_tags VALUES (?, ?)", tags)
    conn.executemany("INSERT OR IGNORE INTO file_blocks VALUES (?, ?)", refs)
    return fresh


def info_of(f: NewFile) -> FileInfo:
    """The FileInfo of a row just inserted from ``f``."""
    return FileInfo(
        id=f.cid,
        name=f.name,
        size=f.size,
        content_type=f.content_type,
        kind=f.kind,
        description=f.description,
        tags=f.tags,
        created=f.created,
        accessed=f.created,
        access_count=0,
        owner=f.owner,
        expires=f.expires,
        pinned=f.pinned,
        blocks=f.nblocks,
    )


def get(conn: sqlite3.Connection, cid: str) -> FileInfo | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM files WHERE cid = ?", (cid,)).fetchone()
    return None if row is None else _info(row)


def fid_of(conn: sqlite3.Connection, cid: str) -> int | None:
    row = conn.execute("SELECT fid FROM files WHERE cid = ?", (cid,)).fetchone()
    return None if row is None else row[0]


def ls(conn: sqlite3.Connection, now: float, limit: int | None) -> list[FileInfo]:
    sql = f"SELECT {_COLUMNS} FROM files WHERE expires IS NULL OR expires > ? OR pinned = 1 ORDER BY created DESC, fid DESC"
    args: list = [now]
    if limit is not None:
        sql += " LIMIT ?"
        args.append(_limit(limit))
    return [_info(r) for r in conn.execute(sql, args)]


def _limit(limit: int) -> int:
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgumentError(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def fts_query(text: str) -> str:
    """A safe FTS5 query: every word of ``text`` as a quoted prefix term, all required."""
    return " ".join(f'"{t}"*' for t in _TERM.findall(text))


RANK_WINDOW = 500  # relevance ranks at most this many of the newest matches (see search)


def search(
    conn: sqlite3.Connection,
    query: str,
    *,
    now: float,
    content_type: str | None,
    min_size: int | None,
    max_size: int | None,
    tag: str | None,
    sort: str,
    limit: int,
) -> list[FileInfo]:
    """FTS5 over name, description and tags, then filters, sort and limit.

    Relevance (bm25) is computed over all matches when there are at most
    :data:`RANK_WINDOW`; for a term matching more files, over the newest
    ``RANK_WINDOW`` matches (unless the filters then leave fewer than ``limit``,
    when every match is ranked). That keeps a common word fast at 100k files.
    """
    if sort not in SORTS:
        raise InvalidArgumentError(f"sort must be one of {', '.join(SORTS)}")
    limit = _limit(limit)
    for v, what in ((min_size, "min_size"), (max_size, "max_size")):
        if v is not None and (not isinstance(v, int) or v < 0):
            raise InvalidArgumentError(f"{what} must be a non-negative integer")
    where = ["(f.expires IS NULL OR f.expires > ? OR f.pinned = 1)"]
    args: list = [now]
    if content_type:
        where.append("f.content_type >= ? AND f.content_type < ?")
        args += [content_type, content_type + "\U0010ffff"]
    if min_size is not None:
        where.append("f.size >= ?")
        args.append(min_size)
    if max_size is not None:
        where.append("f.size <= ?")
        args.append(max_size)
    if tag:
        where.append("f.fid IN (SELECT fid FROM file_tags WHERE tag = ?)")
        args.append(tag.strip())
    terms = fts_query(query or "")
    order = {
        "name": "f.name COLLATE NOCASE ASC, f.fid",
        "size": "f.size DESC, f.fid",
        "created": "f.created DESC, f.fid DESC",
        "relevance": "files_fts.rank, f.created DESC" if terms else "f.created DESC, f.fid DESC",
    }[sort]
    cols = ", ".join("f." + c.strip() for c in _COLUMNS.split(","))
    try:
        if not terms:
            sql = f"SELECT {cols} FROM files f WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ?"
            return [_info(r) for r in conn.execute(sql, [*args, limit])]
        sql = (
            f"SELECT {cols} FROM files_fts JOIN files f ON f.fid = files_fts.rowid "
            f"WHERE files_fts MATCH ? AND {' AND '.join(where)}{{window}} ORDER BY {order} LIMIT ?"
        )
        if sort == "relevance":
            # bm25 costs ~1 us per matching row: for a very common term, rank only the
            # newest RANK_WINDOW matches (fall back to all if filters leave too few).
            edge = conn.execute(
                "SELECT rowid FROM files_fts WHERE files_fts MATCH ? "
                "ORDER BY rowid DESC LIMIT 1 OFFSET ?",
                (terms, RANK_WINDOW - 1),
            ).fetchone()
            if edge is not None:
                windowed = sql.format(window=" AND files_fts.rowid >= ?")
                rows = conn.execute(windowed, [terms, *args, edge[0], limit]).fetchall()
                if len(rows) >= limit:
                    return [_info(r) for r in rows]
        return [_info(r) for r in conn.execute(sql.format(window=""), [terms, *args, limit])]
    except sqlite3.OperationalError as exc:
        raise InvalidArgumentError(f"invalid search query {query!r}: {exc}") from None


def record_access(conn: sqlite3.Connection, hits: dict[str, tuple[float, int]]) -> None:
    conn.executemany(
        "UPDATE files SET accessed = max(accessed, ?), access_count = access_count + ? "
        "WHERE cid = ?",
        [(t, n, cid) for cid, (t, n) in hits.items()],
    )


__all__ = [
    "SORTS",
    "NewFile",
    "check_description",
    "check_tags",
    "fid_of",
    "fts_query",
    "get",
    "ls",
    "record_access",
    "search",
    "upsert_many",
]
