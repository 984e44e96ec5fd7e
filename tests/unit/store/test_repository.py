"""Opening repositories: init, reopen, config, clear one-line errors."""

from __future__ import annotations

import asyncio
import os

import pytest

from hashmesh.errors import NotFoundError, NotInitialisedError, StorageError
from hashmesh.store import schema
from hashmesh.store.api import Store


def test_open_missing_repository(tmp_path):
    with pytest.raises(NotInitialisedError) as exc:
        asyncio.run(Store.open(tmp_path / "nope"))
    assert str(exc.value) == f"no hashmesh repository at {tmp_path / 'nope'} (run `hashmesh init`)"


def test_init_creates_layout_and_reopens(tmp_path):
    async def main() -> None:
        s = await Store.init(tmp_path / "r")
        owner = s.owner
        info = await s.put_bytes(b"persist me")
        await s.close()
        assert (tmp_path / "r" / "index.sqlite").is_file()
        assert (tmp_path / "r" / "node.key").is_file()
        assert (tmp_path / "r" / "blocks").is_dir()
        (tmp_path / "r" / "config.toml").write_text('[store]\ncapacity = "10MiB"\n')
        async with await Store.open(tmp_path / "r") as s2:
            assert s2.owner == owner and len(owner) == 64
            assert s2.config.capacity == 10 * 1024 * 1024
            assert await s2.read(info.id) == b"persist me"
        async with await Store.init(tmp_path / "r") as s3:  # init on existing: opens
            assert await s3.read(info.id) == b"persist me"

    asyncio.run(main())


def test_schema_version_recorded(tmp_path):
    async def main() -> None:
        s = await Store.init(tmp_path / "r")
        await s.close()

    asyncio.run(main())
    conn = schema.connect(tmp_path / "r" / "index.sqlite")
    assert schema.current_version(conn) == schema.SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert schema.migrate(conn) == schema.SCHEMA_VERSION  # idempotent
    conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StorageError):
        schema.migrate(conn)
    conn.close()


def test_missing_input_path(env, tmp_path):
    with pytest.raises(NotFoundError):
        env.run(env.store.put_file(tmp_path / "absent.bin"))
    with pytest.raises(NotFoundError):
        env.run(env.store.put_path(tmp_path / "absent"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_permission_denied_is_one_line(env, tmp_path):
    p = tmp_path / "secret.bin"
    p.write_bytes(b"x")
    p.chmod(0)
    with pytest.raises(StorageError) as exc:
        env.run(env.store.put_file(p))
    assert "permission denied" in str(exc.value) and "\n" not in str(exc.value)
