"""The Kademlia routing table: 256 k-buckets indexed by the bit length of the XOR distance.

Invariants
----------
- Bucket ``i`` holds peers whose XOR distance ``d`` to our id has ``d.bit_length() == i + 1``;
  our own id is never held. At most ``k`` peers per bucket, least-recently seen first.
- A full bucket never drops a live peer: :meth:`RoutingTable.update` puts the newcomer in
  the bucket's replacement cache and *returns the head* for the caller to ping. Only the
  caller's verdict (:meth:`record_failure` reaching ``max_failures``) evicts it; one
  timeout never does. A removed peer is replaced by the newest admissible replacement.
- Peers whose id fails the static puzzle are never admitted (nor cached).
- IP diversity: at most ``max_per_ip_group_bucket`` peers of one IP group (an IPv4 /24 or
  an IPv6 /48) per bucket and ``max_per_ip_group_table`` per table; 0 disables a limit.
  Loopback and private-network hosts (127/8, 10/8, 172.16/12, 192.168/16, 100.64/10,
  169.254/16, ::1, fc00::/7, fe80::/10) are exempt when ``diversity_exempt_private`` is set
  (the default): a devnet or a LAN puts every node in one /24, and the limit guards
  against Sybils spread over the public Internet, not against the machines of one site.
  Non-IP host names form their own group each.
- Memory: a bucket is three slots (peer list, replacement list or None, last activity);
  peers are the caller's shared :class:`PeerInfo` objects; failure counts live in one
  small dict holding only peers that have failed since they last answered.

The table never sends anything: refresh is reported by :meth:`stale_buckets` and the
protocol issues the lookups.
"""

from __future__ import annotations

import ipaddress
import random
from bisect import bisect_left, insort
from collections.abc import Iterator
from functools import lru_cache

from hashmesh.config import DhtConfig
from hashmesh.dht.messages import PeerInfo, peer_puzzle_ok
from hashmesh.ids import ID_BITS, NodeId

_NEG_INF = float("-inf")


_LOCAL_NETS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    )
)


@lru_cache(maxsize=1 << 18)
def ip_group(host: str) -> tuple[str, bool]:
    """``(group, is_local)`` of a host: IPv4 /24, IPv6 /48, or the host name itself.

    ``is_local`` is true for loopback and private-network addresses (see the header).
    """
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return "name:" + host.lower(), host.lower() == "localhost"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    local = any(ip in net for net in _LOCAL_NETS if net.version == ip.version)
    if ip.version == 4:
        return f"v4:{int(ip) >> 8:x}", local
    return f"v6:{int(ip) >> 80:x}", local


class Bucket:
    """One k-bucket: peers (least-recently seen first) and a replacement cache."""

    __slots__ = ("last_active", "peers", "replacements")

    def __init__(self, now: float) -> None:
        self.peers: list[PeerInfo] = []
        self.replacements: list[PeerInfo] | None = None  # newest last
        self.last_active = now


def _find(peers: list[PeerInfo], node_id: bytes) -> int:
    for i, p in enumerate(peers):
        if p.node_id.value == node_id:
            return i
    return -1


class RoutingTable:
    """Kademlia k-buckets around ``node_id``; see the module docstring for the rules."""

    __slots__ = (
        "_buckets",
        "_cfg",
        "_failures",
        "_made",
        "_me",
        "_me_int",
        "_size",
        "k",
        "node_id",
    )

    def __init__(self, node_id: NodeId, config: DhtConfig) -> None:
        self.node_id = node_id
        self._me = node_id.value
        self._me_int = int.from_bytes(node_id.value, "big")
        self._cfg = config
        self.k = config.k
        self._buckets: list[Bucket | None] = [None] * ID_BITS
        self._made: list[int] = []  # indices of the buckets made so far, ascending
        self._failures: dict[bytes, int] = {}
        self._size = 0

    # --- queries ------------------------------------------------------------

    def __len__(self) -> int:
        return self._size

    def __contains__(self, node_id: object) -> bool:
        if isinstance(node_id, NodeId):
            node_id = node_id.value
        return isinstance(node_id, bytes) and self.get(node_id) is not None

    def index_of(self, node_id: bytes) -> int:
        """Bucket index of ``node_id`` (-1 for our own id)."""
        return (self._me_int ^ int.from_bytes(node_id, "big")).bit_length() - 1

    def get(self, node_id: bytes) -> PeerInfo | None:
        i = self.index_of(node_id)
        b = self._buckets[i] if i >= 0 else None
        if b is None:
            return None
        j = _find(b.peers, node_id)
        return b.peers[j] if j >= 0 else None

    def failures(self, node_id: bytes) -> int:
        return self._failures.get(node_id, 0)

    def peers(self) -> Iterator[PeerInfo]:
        for b in self._buckets:
            if b is not None:
                yield from b.peers

    def bucket(self, index: int) -> list[PeerInfo]:
        """A copy of bucket ``index``'s peers, least-recently seen first."""
        b = self._buckets[index]
        return list(b.peers) if b is not None else []

    def replacements(self, index: int) -> list[PeerInfo]:
        b = self._buckets[index]
        return list(b.replacements or ()) if b is not None else []

    def closest(self, target: bytes, count: int, exclude: bytes | None = None) -> list[PeerInfo]:
        """Up to ``count`` peers closest to ``target`` by XOR, closest first.

        Uses the bucket structure: peers in the target's own bucket are closer than
        those in lower buckets, which are closer than those in higher buckets.
        """
        t = int.from_bytes(target, "big")
        i = (self._me_int ^ t).bit_length() - 1
        buckets = self._buckets
        made = self._made
        cands: list[PeerInfo] = []
        need = count if exclude is None else count + 1  # the excluded one may be among them
        if i >= 0 and buckets[i] is not None:
            cands.extend(buckets[i].peers)  # type: ignore[union-attr]
        if len(cands) < need:
            split = bisect_left(made, i)
            for j in made[:split]:  # the lower buckets: one distance band, all or nothing
                cands.extend(buckets[j].peers)  # type: ignore[union-attr]
            for j in made[split:]:
                if len(cands) >= need:
                    break
                if j != i:
                    cands.extend(buckets[j].peers)  # type: ignore[union-attr]
        if exclude is not None:
            cands = [p for p in cands if p.node_id.value != exclude]
        cands.sort(key=lambda p: int.from_bytes(p.node_id.value, "big") ^ t)
        return cands[:count]

    # --- updates ------------------------------------------------------------

    def update(self, peer: PeerInfo, now: float) -> PeerInfo | None:
        """Record that ``peer`` was seen alive at ``now``.

        Known peers move to the tail; new ones are added if admissible and there is room.
        If the bucket is full, the newcomer goes to the replacement cache and the bucket's
        least-recently seen peer is returned: the caller should ping it and call
        :meth:`record_failure` if it does not answer.
        """
        nid = peer.node_id.value
        i = self.index_of(nid)
        if i < 0:
            return None
        b = self._buckets[i]
        if b is None:
            b = self._make_bucket(i, now)
        peers = b.peers
        j = _find(peers, nid)
        if j >= 0:
            if j != len(peers) - 1 or peers[j] is not peer:
                del peers[j]
                peers.append(peer)
            if self._failures:
                self._failures.pop(nid, None)
            b.last_active = now
            return None
        if not peer_puzzle_ok(peer, self._cfg.puzzle_difficulty):
            return None
        if len(peers) < self.k:
            if not self._diverse(peer, b):
                return None
            peers.append(peer)
            self._size += 1
            b.last_active = now
            return None
        self._add_replacement(b, peer)
        return peers[0]

    def _add_replacement(self, b: Bucket, peer: PeerInfo) -> None:
        size = self._cfg.replacement_cache_size
        if size <= 0:
            return
        reps = b.replacements
        if reps is None:
            reps = b.replacements = []
        j = _find(reps, peer.node_id.value)
        if j >= 0:
            del reps[j]
        elif len(reps) >= size:
            del reps[0]
        reps.append(peer)

    def _diverse(self, peer: PeerInfo, b: Bucket) -> bool:
        cfg = self._cfg
        per_bucket = cfg.max_per_ip_group_bucket
        per_table = cfg.max_per_ip_group_table
        if per_bucket <= 0 and per_table <= 0:
            return True
        group, local = ip_group(peer.host)
        if local and cfg.diversity_exempt_private:
            return True
        if per_bucket > 0:
            n = sum(1 for p in b.peers if ip_group(p.host)[0] == group)
            if n >= per_bucket:
                return False
        if per_table > 0:
            n = sum(1 for p in self.peers() if ip_group(p.host)[0] == group)
            if n >= per_table:
                return False
        return True

    def record_failure(self, node_id: bytes, now: float) -> bool:
        """Count a failed request to ``node_id``; evict it at ``max_failures``. True if evicted."""
        i = self.index_of(node_id)
        b = self._buckets[i] if i >= 0 else None
        if b is None:
            return False
        if _find(b.peers, node_id) < 0:
            if b.replacements:
                j = _find(b.replacements, node_id)
                if j >= 0:
                    del b.replacements[j]
            return False
        n = self._failures.get(node_id, 0) + 1
        if n < self._cfg.max_failures:
            self._failures[node_id] = n
            return False
        self.remove(node_id, now)
        return True

    def remove(self, node_id: bytes, now: float) -> bool:
        """Drop ``node_id`` and promote the newest admissible replacement. True if it was held."""
        i = self.index_of(node_id)
        b = self._buckets[i] if i >= 0 else None
        if b is None:
            return False
        j = _find(b.peers, node_id)
        if j < 0:
            return False
        del b.peers[j]
        self._size -= 1
        self._failures.pop(node_id, None)
        reps = b.replacements
        while reps:
            cand = reps.pop()
            if self._diverse(cand, b):
                b.peers.append(cand)
                self._size += 1
                break
        if reps is not None and not reps:
            b.replacements = None
        return True

    def _make_bucket(self, i: int, now: float) -> Bucket:
        b = self._buckets[i] = Bucket(now)
        insort(self._made, i)
        return b

    # --- refresh ------------------------------------------------------------

    def touch_bucket(self, target: bytes, now: float) -> None:
        """Note a lookup towards ``target`` (it refreshes that bucket)."""
        i = self.index_of(target)
        if i >= 0:
            b = self._buckets[i]
            if b is None:
                b = self._make_bucket(i, now)
            b.last_active = now

    def stale_buckets(self, now: float) -> list[int]:
        """Indices of buckets idle for ``bucket_refresh_interval`` or longer.

        Only buckets from the lowest non-empty one upwards count: lower ones are empty
        because no node is that close. Empty buckets start their idle clock when first seen.
        """
        interval = self._cfg.bucket_refresh_interval
        buckets = self._buckets
        low = next((i for i, b in enumerate(buckets) if b is not None and b.peers), None)
        if low is None:
            return []
        out = []
        for i in range(low, ID_BITS):
            b = buckets[i]
            if b is None:
                self._make_bucket(i, now)
            elif now - b.last_active >= interval:
                out.append(i)
        return out

    def next_refresh_due(self) -> float:
        """Earliest time a bucket may become stale (``-inf`` if some already are)."""
        active = [b.last_active for b in self._buckets if b is not None]
        if not active:
            return float("inf")
        return min(active) + self._cfg.bucket_refresh_interval

    def lowest_nonempty(self) -> int:
        return next((i for i, b in enumerate(self._buckets) if b is not None and b.peers), -1)

    def random_id_in_bucket(self, index: int, rng: random.Random) -> bytes:
        """A uniformly random id that falls in bucket ``index``."""
        d = (1 << index) | (rng.getrandbits(index) if index > 0 else 0)
        return (self._me_int ^ d).to_bytes(32, "big")


__all__ = ["Bucket", "RoutingTable", "ip_group"]
