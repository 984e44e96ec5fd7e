"""The namespace harness itself: hosts reach each other, a cut splits the halves."""

import subprocess
import sys
import time

from tests.netns.harness import Network, spawn, tcp_reachable

LISTENER = (
    "import socket,time\n"
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('0.0.0.0', 9000)); s.listen(16); s.settimeout(30)\n"
    "end=time.time()+30\n"
    "while time.time()<end:\n"
    "    try: c,_=s.accept(); c.close()\n"
    "    except OSError: break\n"
)


def test_cut_and_heal() -> None:
    with Network(hosts=4, split_at=2) as net:
        servers = [spawn(net, i, [sys.executable, "-c", LISTENER]) for i in range(4)]
        try:
            deadline = time.monotonic() + 10
            while not tcp_reachable(net, 0, 3, 9000):
                assert time.monotonic() < deadline, "hosts never reached each other"
                time.sleep(0.1)
            assert tcp_reachable(net, 0, 1, 9000)
            net.cut()
            assert tcp_reachable(net, 0, 1, 9000)  # same half
            assert tcp_reachable(net, 2, 3, 9000)
            assert not tcp_reachable(net, 0, 3, 9000)  # across the cut
            assert not tcp_reachable(net, 3, 1, 9000)
            net.heal()
            assert tcp_reachable(net, 0, 3, 9000)
        finally:
            for p in servers:
                p.kill()
                p.wait(timeout=10)
    leftovers = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert net.hub not in leftovers
