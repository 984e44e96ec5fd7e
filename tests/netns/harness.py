"""Linux network namespaces for multi-host tests.

Topology (everything lives in namespaces this harness creates; the root
namespace's network is never touched)::

    hub namespace:   br-a ==trunk== br-b        (two bridges joined by a veth pair)
                      |  |            |  |
    host namespaces: h0 h1 ...       hk hk+1 ...  (each: eth0 = 10.88.0.(i+1)/24)

Cutting the trunk splits the network in two halves; healing it joins them.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=20)


def unavailable_reason() -> str | None:
    """Why namespaces can't be made here, or None if they can."""
    if os.geteuid() != 0:
        return "network namespace tests need root"
    if shutil.which("ip") is None:
        return "iproute2 ('ip') is not installed"
    name = "hmprobe" + secrets.token_hex(3)
    try:
        run("ip", "netns", "add", name)
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"cannot create a network namespace: {exc}"
    try:
        run("ip", "netns", "exec", name, "ip", "link", "add", "b0", "type", "bridge")
    except subprocess.CalledProcessError as exc:
        return f"cannot create a bridge inside a namespace: {exc.stderr.strip()}"
    finally:
        run("ip", "netns", "del", name, check=False)
    return None


@dataclass
class Network:
    """N hosts in two halves on a bridged, splittable network."""

    hosts: int
    split_at: int
    tag: str = field(default_factory=lambda: secrets.token_hex(2))
    names: list[str] = field(default_factory=list)

    @property
    def hub(self) -> str:
        return f"hm{self.tag}hub"

    def address(self, i: int) -> str:
        return f"10.88.0.{i + 1}"

    def create(self) -> Network:
        hub = self.hub
        run("ip", "netns", "add", hub)
        self._hub("ip", "link", "set", "lo", "up")
        for br in ("bra", "brb"):
            self._hub("ip", "link", "add", br, "type", "bridge")
            self._hub("ip", "link", "set", br, "up")
        self._hub("ip", "link", "add", "trunka", "type", "veth", "peer", "name", "trunkb")
        self._hub("ip", "link", "set", "trunka", "master", "bra")
        self._hub("ip", "link", "set", "trunkb", "master", "brb")
        self.heal()
        for i in range(self.hosts):
            ns = f"hm{self.tag}h{i}"
            self.names.append(ns)
            run("ip", "netns", "add", ns)
            self._hub(
                "ip", "link", "add", f"p{i}", "type", "veth", "peer", "name", "eth0", "netns", ns
            )
            self._hub("ip", "link", "set", f"p{i}", "master", "bra" if i < self.split_at else "brb")
            self._hub("ip", "link", "set", f"p{i}", "up")
            self.exec(i, "ip", "link", "set", "lo", "up")
            self.exec(i, "ip", "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
            self.exec(i, "ip", "link", "set", "eth0", "up")
        return self

    def _hub(self, *args: str) -> None:
        run("ip", "netns", "exec", self.hub, *args)

    def exec(self, i: int, *args: str) -> subprocess.CompletedProcess[str]:
        return run("ip", "netns", "exec", self.names[i], *args)

    def prefix(self, i: int) -> list[str]:
        """Command prefix that runs a program inside host ``i``."""
        return ["ip", "netns", "exec", self.names[i]]

    def cut(self) -> None:
        """Split the network: hosts [0, split_at) and [split_at, hosts) can't reach each other."""
        for end in ("trunka", "trunkb"):
            self._hub("ip", "link", "set", end, "down")

    def heal(self) -> None:
        for end in ("trunka", "trunkb"):
            self._hub("ip", "link", "set", end, "up")

    def destroy(self) -> None:
        for ns in [*self.names, self.hub]:
            run("ip", "netns", "del", ns, check=False)
        self.names.clear()

    def __enter__(self) -> Network:
        try:
            return self.create()
        except BaseException:
            self.destroy()
            raise

    def __exit__(self, *exc: object) -> None:
        self.destroy()


def tcp_reachable(net: Network, src: int, dst: int, port: int) -> bool:
    """True if host ``src`` can open a TCP connection to ``dst:port`` within 1 s."""
    code = (
        "import socket,sys\n"
        "s=socket.socket(); s.settimeout(1)\n"
        f"sys.exit(0 if s.connect_ex(('{net.address(dst)}', {port})) == 0 else 1)\n"
    )
    import sys

    return run(*net.prefix(src), sys.executable, "-c", code, check=False).returncode == 0


def spawn(net: Network, i: int, argv: Sequence[str], **kw: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*net.prefix(i), *argv], **kw)  # type: ignore[call-overload]
