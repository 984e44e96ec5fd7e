"""Block files and exports past the page cache (O_DIRECT), and the buffered fallback."""

import errno
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hashmesh.store import direct
from hashmesh.store.direct import ALIGN, DIRECT_MIN, BlockFiles, Output

O_DIRECT = getattr(os, "O_DIRECT", 0)
SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# sizes around the alignment and the direct threshold, split into header + payload
sizes = st.one_of(
    st.integers(0, 3 * ALIGN),
    st.integers(DIRECT_MIN - 2 * ALIGN, DIRECT_MIN + 2 * ALIGN),
    st.integers(DIRECT_MIN, 3 * 1024 * 1024),
)


def takes_direct(path) -> bool:
    """Whether the file system under ``path`` accepts O_DIRECT."""
    if not O_DIRECT:
        return False
    probe = path / ".probe"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | O_DIRECT, 0o644)
    except OSError:
        return False
    os.close(fd)
    probe.unlink()
    return True


@SETTINGS
@given(size=sizes, cut=st.integers(0, 64), seed=st.integers(0, 2**32 - 1), use=st.booleans())
def test_block_file_round_trip(tmp_path_factory, size, cut, seed, use) -> None:
    d = tmp_path_factory.mktemp("bf")
    data = (seed.to_bytes(4, "big") * (size // 4 + 1))[:size]
    files = BlockFiles(direct=use)
    path = d / "block"
    cut = min(cut, size)
    files.write(path, (data[:cut], memoryview(data)[cut:]))
    assert os.path.getsize(path) == size  # the padding is cut off again
    assert path.read_bytes() == data
    assert files.read(path) == data
    assert files.direct == (use and takes_direct(d))  # no fallback where O_DIRECT works


def test_write_refuses_an_existing_file(tmp_path) -> None:
    files = BlockFiles()
    (tmp_path / "b").write_bytes(b"x")
    with pytest.raises(FileExistsError):
        files.write(tmp_path / "b", (os.urandom(DIRECT_MIN),))
    assert (tmp_path / "b").read_bytes() == b"x"


@pytest.mark.skipif(not O_DIRECT, reason="no O_DIRECT on this platform")
def test_a_file_system_without_o_direct_falls_back_to_buffered_io(tmp_path, monkeypatch) -> None:
    real_open = os.open

    def refusing_open(path, flags, *args):  # as tmpfs and some FUSE mounts answer
        if flags & O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)

    monkeypatch.setattr(direct.os, "open", refusing_open)
    data = os.urandom(DIRECT_MIN + 5)
    files = BlockFiles()
    files.write(tmp_path / "b", (b"h", data))
    assert not files.direct
    assert files.read(tmp_path / "b") == b"h" + data
    with Output(tmp_path / "out") as out:
        out.write(data)
    assert (tmp_path / "out").read_bytes() == data


@pytest.mark.skipif(not O_DIRECT, reason="no O_DIRECT on this platform")
def test_reads_fall_back_when_o_direct_is_refused_at_open(tmp_path, monkeypatch) -> None:
    data = os.urandom(DIRECT_MIN * 2)
    BlockFiles(direct=False).write(tmp_path / "b", (data,))
    real_open = os.open

    def refusing_open(path, flags, *args):
        if flags & O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)

    monkeypatch.setattr(direct.os, "open", refusing_open)
    files = BlockFiles()
    assert files.read(tmp_path / "b") == data
    assert not files.direct


def test_a_full_disk_is_an_error_not_a_fallback(tmp_path, monkeypatch) -> None:
    if not takes_direct(tmp_path):
        pytest.skip("this file system does not take O_DIRECT")

    def full(*_args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(direct.os, "pwrite", full)
    files = BlockFiles()
    with pytest.raises(OSError) as info:
        files.write(tmp_path / "b", (os.urandom(DIRECT_MIN),))
    assert info.value.errno == errno.ENOSPC
    assert files.direct  # the disk is full; O_DIRECT itself still works


def test_a_missing_file_is_not_found(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        BlockFiles().read(tmp_path / "nothing")


@SETTINGS
@given(
    pieces=st.lists(st.integers(0, 40_000), min_size=0, max_size=12),
    stage=st.sampled_from([ALIGN, 2 * ALIGN, 64 * 1024]),
)
def test_output_writes_every_piece_in_order(tmp_path_factory, pieces, stage) -> None:
    d = tmp_path_factory.mktemp("out")
    blobs = [os.urandom(n) for n in pieces]
    out = Output(d / "f")
    out.STAGE = stage  # a small stage: many aligned flushes, then the tail
    with out:
        for b in blobs:
            out.write(b)
    assert (d / "f").read_bytes() == b"".join(blobs)


def test_output_of_a_failed_export_is_not_flushed(tmp_path) -> None:
    with pytest.raises(RuntimeError), Output(tmp_path / "f") as out:
        out.write(os.urandom(DIRECT_MIN * 2))
        raise RuntimeError("a chunk could not be read")
    assert os.path.getsize(tmp_path / "f") == 0  # all of it was still staged


def test_output_refuses_an_existing_file(tmp_path) -> None:
    (tmp_path / "f").write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        Output(tmp_path / "f")
    assert (tmp_path / "f").read_bytes() == b"keep"
