"""What a devnet waits for: every peer a node's routing table can hold."""

from __future__ import annotations

import random

from hashmesh.config import DhtConfig
from hashmesh.devnet import table_capacity
from hashmesh.dht.messages import PeerInfo
from hashmesh.dht.routing import RoutingTable
from hashmesh.ids import NodeId


def test_capacity_caps_each_bucket_at_k() -> None:
    me = bytes(32)
    far = [bytes([0x80 | i]) + bytes(31) for i in range(25)]  # one bucket, 25 peers
    near = [bytes(31) + bytes([i]) for i in range(1, 4)]  # three small buckets
    assert table_capacity(me, far + near + [me], 20) == 20 + 3


def test_capacity_is_what_a_real_table_holds() -> None:
    rng = random.Random(7)
    cfg = DhtConfig()
    for _ in range(20):
        peers = [PeerInfo.make(rng.randbytes(32), "127.0.0.1", 20000 + i) for i in range(40)]
        me, others = peers[0].id, [p.id for p in peers[1:]]
        table = RoutingTable(NodeId(me), cfg)
        for p in peers[1:]:
            table.update(p, 0.0)
        assert len(table) == table_capacity(me, others, cfg.k)
