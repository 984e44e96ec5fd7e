"""Real node processes on 127.0.0.1 (issue 4): the CLI through running nodes, kills, repair.

One devnet of six ``hashmesh node start`` processes (replication 3) serves the
module; before each test every node that a previous test killed is restarted,
so a failure does not cascade. Node 0 is the bootstrap seed and is never
killed. Files are written through node 1 with the real CLI; holders of each
block are counted with the nodes' ``has_blocks`` control operation, never by
opening a running node's repository. Run with ``-s`` to see measured times.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.netutil import (
    MiB,
    block_ids,
    cli,
    cli_bytes,
    ctl,
    hashmesh_argv,
    holder_counts,
    holdings,
    log_tail,
    put,
    revive,
    terminate,
    wait_for,
    write_config,
    write_random,
)

from hashmesh.devnet import Devnet, free_port_base
from hashmesh.errors import HashmeshError, IntegrityError
from hashmesh.identity import Identity
from hashmesh.ids import ContentId, NodeId
from hashmesh.net import Endpoint, PeerAddress, TransportConfig
from hashmesh.net import blocks as bx
from hashmesh.net.framing import HEADER, FrameType, encode_frame
from hashmesh.net.handshake import Handshake
from hashmesh.net.tls import make_credentials

pytestmark = pytest.mark.slow

N = 6
R = 3
WRITER = 1
READER = 5
REPAIR_BOUND = 40.0  # seconds from a kill -9 to full redundancy again


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    net = Devnet(tmp_path_factory.mktemp("devnet"), N, replication=R)
    try:
        net.start(timeout=60)
        yield net
    finally:
        net.stop()


@pytest.fixture
def net(devnet: Devnet) -> Devnet:
    revive(devnet)
    return devnet


def kill_to_maximise_deficit(net: Devnet, ids: list[str], spare: set[int]) -> tuple[int, int]:
    """SIGKILL the node (outside ``spare``) whose loss leaves most blocks under ``R`` holders."""
    held = holdings(net, ids)

    def deficit(v: int) -> int:
        return sum(1 for b in range(len(ids)) if sum(h[b] for i, h in held.items() if i != v) < R)

    victim = max((i for i in held if i not in spare), key=deficit)
    net.kill(victim)
    return victim, deficit(victim)


# ----------------------------------------------------------------------------- 1. CLI put/get/cat


def test_put_on_one_node_get_and_cat_from_another(net: Devnet, tmp_path: Path) -> None:
    src = tmp_path / "report.bin"
    data = write_random(src, 5 * MiB + 123, seed=1)
    root = put(net, WRITER, src)
    ids = block_ids(net, WRITER, root)
    assert min(holder_counts(net, ids)) >= R  # the write quorum was met for every block
    out = tmp_path / "copy.bin"
    cli(net.nodes[READER].repo, "get", root, "-o", str(out))
    assert out.read_bytes() == data
    assert cli_bytes(net.nodes[3].repo, "cat", root) == data
    assert root in cli(net.nodes[4].repo, "stat", root)


def test_unknown_id_is_a_clean_error(net: Devnet, tmp_path: Path) -> None:
    missing = str(ContentId.of(b"never stored anywhere", ContentId.MANIFEST))
    r = subprocess.run(
        hashmesh_argv(net.nodes[2].repo, "get", missing, "-o", str(tmp_path / "x")),
        capture_output=True,
        timeout=120,
    )
    assert r.returncode != 0
    assert b"Traceback" not in r.stderr
    assert b"not found" in r.stderr.lower()


# ------------------------------------------------------------------- 2./3. kills, then restarts


def test_two_holders_killed_then_restarted(net: Devnet, tmp_path: Path) -> None:
    src = tmp_path / "precious.bin"
    data = write_random(src, 6 * MiB, seed=2)
    root = put(net, WRITER, src)
    ids = block_ids(net, WRITER, root)
    held = holdings(net, ids)
    # kill the writer (it holds every block) and the other node holding the most blocks
    second = max((i for i in held if i not in (0, WRITER, READER)), key=lambda i: sum(held[i]))
    victims = [WRITER, second]
    for v in victims:
        net.kill(v)
    out = tmp_path / "after-kill.bin"
    t0 = time.monotonic()
    cli(net.nodes[READER].repo, "get", root, "-o", str(out))
    print(f"\nread {len(data) >> 20} MiB after 2 kills in {time.monotonic() - t0:.2f} s")
    assert out.read_bytes() == data
    # restart both: they rejoin and still serve what they held
    t0 = time.monotonic()
    for v in victims:
        net.restart(v, timeout=40)
    net.wait_connected(40)
    print(f"restart + rejoin of 2 nodes in {time.monotonic() - t0:.2f} s")
    assert all(ctl(net.nodes[WRITER].repo, "has_blocks", ids=ids))  # kept on disk
    assert cli_bytes(net.nodes[WRITER].repo, "cat", root) == data
    assert cli_bytes(net.nodes[second].repo, "cat", root) == data


def test_put_right_after_a_kill_routes_around_the_dead_node(net: Devnet, tmp_path: Path) -> None:
    """Before health checks notice a death, a put still reaches its write quorum: a failed
    push marks the target down and the block goes to the next closest live node."""
    src = tmp_path / "fresh.bin"
    data = write_random(src, 8 * MiB, seed=4)
    net.kill(3)  # no pause: the writer still believes node 3 is alive
    root = put(net, WRITER, src)
    ids = block_ids(net, WRITER, root)
    assert min(holder_counts(net, ids)) >= R
    assert cli_bytes(net.nodes[READER].repo, "cat", root) == data


# -------------------------------------------------------------------------------- 4. repair


def test_repair_restores_replication_after_kill(net: Devnet, tmp_path: Path) -> None:
    src = tmp_path / "replicated.bin"
    write_random(src, 16 * MiB, seed=3)
    root = put(net, WRITER, src)
    ids = block_ids(net, WRITER, root)
    t0 = time.monotonic()
    victim, deficit = kill_to_maximise_deficit(net, ids, spare={0, WRITER})
    victims = [victim]
    if deficit == 0:  # every block had R+1 copies: a second kill (still <= R-1) makes a gap
        victim, deficit = kill_to_maximise_deficit(net, ids, spare={0, WRITER, victim})
        victims.append(victim)
    assert deficit > 0, "no block was under-replicated after the kills; the test proves nothing"
    counts = wait_for(
        lambda: (c := holder_counts(net, ids)) and min(c) >= R and c,
        REPAIR_BOUND,
        f"{len(ids)} blocks to regain {R} live holders",
        interval=0.25,
    )
    elapsed = time.monotonic() - t0
    print(
        f"\nrepair: {deficit} of {len(ids)} blocks under-replicated after kill -9 of node(s) "
        f"{victims}; {R}+ live holders again after {elapsed:.1f} s (min {min(counts)})"
    )


# ---------------------------------------------------------------------------- 5. resumed get


def stall_one_source(net: Devnet, reader: int, ids: list[str]) -> tuple[int, int] | None:
    """A node to freeze so that ``reader``'s get of ``ids`` stalls on a few blocks.

    The reader asks each missing block of the closest peer in its routing table
    (its first holder); the node chosen is first for the fewest missing blocks, at
    least one, while the others serve at least four. Returns (node, blocks it
    holds up), or None if the missing blocks do not split so.
    """
    repo = net.nodes[reader].repo
    index = {ctl(n.repo, "status")["node_id"]: j for j, n in enumerate(net.nodes)}
    firsts: dict[int, int] = {}
    for block, held in zip(ids, ctl(repo, "has_blocks", ids=ids), strict=True):
        if not held:
            first = index[ctl(repo, "dht_closest", id=block, count=1)[0]["node_id"]]
            firsts[first] = firsts.get(first, 0) + 1
    for node, count in sorted(firsts.items(), key=lambda item: item[1]):
        if sum(firsts.values()) - count >= 4:
            return node, count
    return None


def test_interrupted_get_resumes_without_refetching(net: Devnet, tmp_path: Path) -> None:
    reader = net.nodes[READER]
    # One node is frozen (SIGSTOP) during the first get so that it cannot finish:
    # the blocks the reader asks of it wait for the block timeout while the others
    # arrive. Without it a get may be over before the polling below sees it start.
    for attempt in range(3):
        src = tmp_path / f"large{attempt}.bin"
        data = write_random(src, 64 * MiB, seed=50 + attempt)
        root = put(net, WRITER, src)
        ids = block_ids(net, WRITER, root)
        stall = stall_one_source(net, READER, ids)
        if stall is not None:
            break
    else:
        pytest.fail("3 files' missing blocks all had one first holder")
    frozen = net.nodes[stall[0]]
    before = sum(ctl(reader.repo, "has_blocks", ids=ids))
    out = tmp_path / "large.out"
    assert frozen.proc is not None
    frozen.proc.send_signal(signal.SIGSTOP)
    try:
        getter = subprocess.Popen(
            hashmesh_argv(reader.repo, "get", root, "-o", str(out)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            # kill -9 the reading node once it has fetched a few blocks
            wait_for(
                lambda: sum(ctl(reader.repo, "has_blocks", ids=ids, timeout=5)) >= before + 4,
                60,
                "the reader to fetch its first blocks",
                interval=0.01,
            )
            net.kill(READER)
        finally:
            getter.wait(timeout=60)
    finally:
        frozen.proc.send_signal(signal.SIGCONT)
    assert not out.exists()  # the get was cut short
    left = list(tmp_path.glob(".large.out.hashmesh-*.part"))
    net.restart(READER, timeout=40)
    kept = sum(ctl(reader.repo, "has_blocks", ids=ids))
    t0 = time.monotonic()
    cli(reader.repo, "get", root, "-o", str(out))
    second = len(ids) - kept
    first = len(ids) - before
    print(
        f"\nresume: node {stall[0]} frozen ({stall[1]} blocks); first get fetched "
        f"{kept - before} of {first} missing blocks before kill -9; "
        f"second get fetched the other {second} in {time.monotonic() - t0:.2f} s; "
        f"{len(left)} part file(s) left by the killed get, removed"
    )
    assert out.read_bytes() == data
    assert not list(tmp_path.glob(".large.out.hashmesh-*.part"))  # the killed get's part
    assert kept > before  # blocks fetched before the kill survived the crash
    assert second < first  # so the resumed get fetched fewer


# ------------------------------------------------------------------ 6. seed with the wrong id


def test_seed_naming_another_id_is_refused(net: Devnet, tmp_path: Path) -> None:
    seed = net.nodes[0]
    real = ctl(seed.repo, "status")["node_id"]
    wrong = str(NodeId(bytes(32)))
    port = free_port_base(2, start=net.port + 100)
    procs: list[subprocess.Popen[bytes]] = []
    repos = [tmp_path / "liar-seed", tmp_path / "true-seed"]
    try:
        for repo, node_id, p in zip(repos, [wrong, real], [port, port + 1], strict=True):
            repo.mkdir()
            with open(repo / "node.log", "wb") as log:
                procs.append(
                    subprocess.Popen(
                        hashmesh_argv(
                            repo,
                            "node",
                            "start",
                            "--listen",
                            f"127.0.0.1:{p}",
                            "--bootstrap",
                            f"{node_id}@{seed.address}",
                        ),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                    )
                )
        # control: naming the seed's real id joins the whole devnet
        wait_for(
            lambda: ctl(repos[1], "status")["peers"] >= N, 30, "the correctly seeded node to join"
        )
        wait_for(
            lambda: "skipped" in (repos[0] / "node.log").read_text(errors="replace"),
            30,
            "the node to refuse the seed whose proof names another id",
        )
        assert ctl(repos[0], "status")["peers"] == 0
        assert wrong not in {p["node_id"] for p in ctl(seed.repo, "peers")}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=40)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)


# --------------------------------------------------------------- 7. garbage on the node's port


async def _tls_session(host: str, port: int, expected: NodeId, me: Identity):
    """A hand-driven peer: TLS plus the identity proof, then raw frames."""
    creds = make_credentials(me)
    reader, writer = await asyncio.open_connection(host, port, ssl=creds.client, server_hostname="")
    cert = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    hs = Handshake(me, dialer=True, own_cert=creds.cert_der, peer_cert=cert, expected=expected)
    writer.write(encode_frame(FrameType.HELLO, 0, hs.hello()))
    length, ftype, _ = HEADER.unpack(await reader.readexactly(HEADER.size))
    assert ftype == FrameType.HELLO
    writer.write(
        encode_frame(FrameType.PROOF, 0, hs.receive_hello(await reader.readexactly(length)))
    )
    length, ftype, _ = HEADER.unpack(await reader.readexactly(HEADER.size))
    assert ftype == FrameType.PROOF
    hs.receive_proof(await reader.readexactly(length))
    return reader, writer


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> None:
    async with asyncio.timeout(seconds):
        with contextlib.suppress(ConnectionError, OSError, ssl.SSLError):
            while await reader.read(65536):
                pass


async def _abuse(host: str, port: int, node_id: NodeId, root: ContentId) -> None:
    async def noop(peer, kind, body):  # this endpoint never serves
        return b""

    fast = TransportConfig(handshake_timeout=3.0, connect_timeout=3.0, request_timeout=10.0)
    async with Endpoint(Identity.generate(), noop, fast) as good:
        target = PeerAddress(node_id, host, port)
        assert await good.request(target, bx.Kind.PING, b"", 10) == b""
        # a peer sending a GET with a malformed body, and a PUT whose bytes don't match the id
        with pytest.raises(HashmeshError) as bad_get:
            await good.request(target, bx.Kind.GET, b"\xff" * 7, 10)
        assert "Traceback" not in str(bad_get.value)
        with pytest.raises(IntegrityError):
            await good.request(target, bx.Kind.PUT, bx.encode_put(root, b"not these bytes"), 10)
        # authenticated peers announcing a 1 GiB frame, or an unknown frame type: cut off
        r, w = await _tls_session(host, port, node_id, Identity.generate())
        w.write(HEADER.pack(1 << 30, FrameType.REQUEST, 1))
        await _closed_within(r, 10)
        w.close()
        r, w = await _tls_session(host, port, node_id, Identity.generate())
        w.write(encode_frame(0x66, 1, b"??"))
        await _closed_within(r, 10)
        w.close()
        # the well-behaved connection was never dropped and still works
        assert await good.request(target, bx.Kind.PING, b"", 10) == b""
        assert len(good.pool) == 1


def test_garbage_on_the_port_closes_only_that_connection(net: Devnet, tmp_path: Path) -> None:
    target = net.nodes[2]
    src = tmp_path / "still-served.bin"
    data = write_random(src, 2 * MiB, seed=7)
    root = put(net, WRITER, src)
    node_id = NodeId.parse(ctl(target.repo, "status")["node_id"])
    host, port = target.address.rsplit(":", 1)
    # plain TCP garbage before any handshake: the node closes the socket (bounded wait)
    for junk in (b"\x00" * 10, bytes(range(256)) * 256, b"\x16\x03\x01\xff\xff" + b"A" * 4000):
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.settimeout(15)
            with contextlib.suppress(OSError):
                s.sendall(junk)
            with contextlib.suppress(ConnectionResetError):
                while s.recv(65536):
                    pass
    asyncio.run(_abuse(host, int(port), node_id, ContentId.parse(root)))
    assert target.alive
    out = tmp_path / "served.bin"
    cli(target.repo, "get", root, "-o", str(out))
    assert out.read_bytes() == data
    assert cli_bytes(net.nodes[READER].repo, "cat", root) == data


# ---------------------------------------------------------------- 8. SIGTERM hands data off


def test_sigterm_hands_off_blocks_only_it_holds(tmp_path: Path) -> None:
    """Replication 1: a block whose closest node is the writer lives only there until it
    leaves; a graceful stop must hand it to the next closest node first."""
    small_chunks = "[store]\nchunk_min = 16384\nchunk_avg = 65536\nchunk_max = 262144\n"
    net = Devnet(tmp_path / "r1", 3, replication=1)
    for n in net.nodes:
        write_config(n.repo, small_chunks)
    try:
        net.start(timeout=60)
        src = tmp_path / "solo.bin"
        data = write_random(src, 3 * MiB, seed=8)
        root = put(net, WRITER, src)
        ids = block_ids(net, WRITER, root)
        only_writer = holder_counts(net, ids, exclude=[WRITER]).count(0)
        assert only_writer > 0, "no block lived only on the writer; the test proves nothing"
        t0 = time.monotonic()
        code = terminate(net.nodes[WRITER])
        print(
            f"\nSIGTERM: {only_writer} of {len(ids)} blocks were only on the leaving node; "
            f"exit {code} after {time.monotonic() - t0:.2f} s"
        )
        assert code == 0, log_tail(net.nodes[WRITER])
        assert min(holder_counts(net, ids)) >= 1
        assert cli_bytes(net.nodes[2].repo, "cat", root) == data
    finally:
        net.stop()


def test_devnet_nodes_die_with_a_killed_parent(tmp_path: Path) -> None:
    """kill -9 of the process that started a devnet (no cleanup runs) still stops its nodes."""
    import os
    import signal
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import sys, time
        from hashmesh.devnet import Devnet
        net = Devnet({str(tmp_path / "dn")!r}, 2, replication=1)
        net.start(timeout=60)
        print(" ".join(str(n.proc.pid) for n in net.nodes), flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pids: list[int] = []
    try:
        assert parent.stdout is not None
        pids += [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2
        for pid in pids:
            os.kill(pid, 0)  # running
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)

        def gone(pid: int) -> bool:
            try:  # the nodes were the parent's children; once it died, init reaps them
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"

        wait_for(lambda: all(gone(p) for p in pids), 20, "devnet nodes to stop")
    finally:
        parent.kill()
        with contextlib.suppress(Exception):
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
