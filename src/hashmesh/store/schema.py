"""The SQLite schema of ``<repo>/index.sqlite`` and its migrations.

One database holds the metadata index *and* the bytes of small blocks, so a
batch of small puts commits blocks and index rows in one transaction with one
WAL fsync. Connections use WAL mode and ``synchronous=FULL``: a committed
transaction survives SIGKILL and power loss.

Version history (``schema_version.version``):

1. blocks, block_data, held_blocks, files (+FTS5), file_tags, file_blocks, totals, meta.

:func:`migrate` brings any older database to :data:`SCHEMA_VERSION` step by
step inside one transaction; a newer database than this code knows is refused.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hashmesh.errors import StorageError

SCHEMA_VERSION = 1

_V1 = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE totals(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO totals VALUES ('blocks', 0), ('plain', 0), ('stored', 0);

-- kind: 0 raw chunk, 1 manifest; flags: 1 = zstd; inline: 1 = stored form in block_data,
-- 0 = file blocks/<hex>
CREATE TABLE blocks(
    digest BLOB PRIMARY KEY,
    kind INTEGER NOT NULL,
    size INTEGER NOT NULL,
    stored INTEGER NOT NULL,
    flags INTEGER NOT NULL,
    inline INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE block_data(digest BLOB PRIMARY KEY, data BLOB NOT NULL);
CREATE TRIGGER blocks_ai AFTER INSERT ON blocks BEGIN
    UPDATE totals SET value = value + 1 WHERE key = 'blocks';
    UPDATE totals SET value = value + NEW.size WHERE key = 'plain';
    UPDATE totals SET value = value + NEW.stored WHERE key = 'stored';
END;
CREATE TRIGGER blocks_ad AFTER DELETE ON blocks BEGIN
    UPDATE totals SET value = value - 1 WHERE key = 'blocks';
    UPDATE totals SET value = value - OLD.size WHERE key = 'plain';
    UPDATE totals SET value = value - OLD.stored WHERE key = 'stored';
    DELETE FROM block_data WHERE digest = OLD.digest;
END;

-- raw blocks kept for the network layer (put_block), never collected while held
CREATE TABLE held_blocks(digest BLOB PRIMARY KEY, kind INTEGER NOT NULL) WITHOUT ROWID;

CREATE TABLE files(
    fid INTEGER PRIMARY KEY,
    cid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    kind TEXT NOT NULL,
    description TEXT NOT NULL,
    tags TEXT NOT NULL,
    created REAL NOT NULL,
    accessed REAL NOT NULL,
    access_count INTEGER NOT NULL,
    owner TEXT NOT NULL,
    expires REAL,
    pinned INTEGER NOT NULL,
    nblocks INTEGER NOT NULL
);
CREATE INDEX files_created ON files(created);
CREATE INDEX files_name ON files(name);
CREATE INDEX files_size ON files(size);
CREATE INDEX files_ctype ON files(content_type);
CREATE INDEX files_expires ON files(expires) WHERE expires IS NOT NULL;
CREATE TABLE file_tags(tag TEXT NOT NULL, fid INTEGER NOT NULL, PRIMARY KEY(tag, fid))
    WITHOUT ROWID;
CREATE INDEX file_tags_fid ON file_tags(fid);
-- every block a file needs (chunks, its manifests, nested entries), once per file
CREATE TABLE file_blocks(fid INTEGER NOT NULL, digest BLOB NOT NULL, PRIMARY KEY(fid, digest))
    WITHOUT ROWID;
CREATE INDEX file_blocks_digest ON file_blocks(digest);

CREATE VIRTUAL TABLE files_fts USING fts5(
    name, description, tags, content='files', content_rowid='fid',
    tokenize='unicode61 remove_diacritics 2'
);
-- inserts into files_fts are made by index.upsert_many (batched; faster than a trigger)
CREATE TRIGGER files_ad AFTER DELETE ON files BEGIN
    INSERT INTO files_fts(files_fts, rowid, name, description, tags)
        VALUES ('delete', OLD.fid, OLD.name, OLD.description, OLD.tags);
    DELETE FROM file_tags WHERE fid = OLD.fid;
    DELETE FROM file_blocks WHERE fid = OLD.fid;
END;
CREATE TRIGGER files_au AFTER UPDATE OF name, description, tags ON files BEGIN
    INSERT INTO files_fts(files_fts, rowid, name, description, tags)
        VALUES ('delete', OLD.fid, OLD.name, OLD.description, OLD.tags);
    INSERT INTO files_fts(rowid, name, description, tags)
        VALUES (NEW.fid, NEW.name, NEW.description, NEW.tags);
END;
"""

# version -> script that upgrades from version - 1
MIGRATIONS: dict[int, str] = {1: _V1}


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the index with the durability pragmas every connection needs."""
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
        conn.execute("PRAGMA page_size=16384")  # before anything is written: 4 KiB blobs fit a page
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute("PRAGMA cache_size=-65536")
        conn.execute("PRAGMA temp_store=MEMORY")
        if readonly:
            conn.execute("PRAGMA query_only=1")
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open index {path}: {exc}") from None
    return conn


def current_version(conn: sqlite3.Connection) -> int:
    row = conn.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name='schema_version'"
    ).fetchone()
    if row is None:
        return 0
    got = conn.execute("SELECT version FROM schema_version").fetchone()
    return int(got[0]) if got else 0


def migrate(conn: sqlite3.Connection) -> int:
    """Upgrade the schema to :data:`SCHEMA_VERSION`; return the version found."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = current_version(conn)
        if found > SCHEMA_VERSION:
            raise StorageError(
                f"index schema version {found} is newer than this hashmesh ({SCHEMA_VERSION})"
            )
        if found == 0:
            conn.execute("CREATE TABLE schema_version(version INTEGER NOT NULL)")
            conn.execute("INSERT INTO schema_version VALUES (0)")
        for version in range(found + 1, SCHEMA_VERSION + 1):
            for statement in _split(MIGRATIONS[version]):
                conn.execute(statement)
            conn.execute("UPDATE schema_version SET version = ?", (version,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found


def _split(script: str) -> list[str]:
    """Split a DDL script into statements (triggers contain inner semicolons)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "connect", "current_version", "migrate"]
