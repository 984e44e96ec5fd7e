"""The node's reports: status, peers, routing table and lookups (plain dicts).

:class:`ReportMixin` is part of :class:`hashmesh.node.Node`; the CLI's
``status``, ``peers``, ``dht table`` and ``dht lookup`` print these.
"""

from __future__ import annotations

import time
from typing import Any

from hashmesh.ids import NodeId
from hashmesh.peering import HEALTH_FAILURES, PeerHealth


class ReportMixin:
    """Status and inspection reports of a running node."""

    async def status(self) -> dict[str, Any]:
        assert self.store is not None and self.planner is not None and self.me is not None
        stats = await self.store.stats()
        return {
            "node_id": str(self.node_id),
            "listen": f"{self.me.host}:{self.me.port}",
            "uptime": round(time.time() - self.started_at, 1),
            "peers": len(self.peers()),
            "live_peers": len(self.live_peers()),
            "replication": self.replication,
            "write_quorum": self.quorum,
            "blocks": stats.blocks,
            "files": stats.files,
            "stored_bytes": stats.stored_bytes,
            "tracked_blocks": len(self._cids),
            "under_replicated": self.planner.under_replicated(),
            "repair_backlog": self.planner.backlog,
            "repaired_blocks": self.repaired_blocks,
            "healed_blocks": self.healed_blocks,
            "audited_bytes": self.audited_bytes,
            "audit_passes": self.audit_passes,
            "last_audit": self.last_audit,
            "dht_messages": {
                "received": self.driver.received,
                "sent": self.driver.sent,
                "dropped": self.driver.dropped,
            },
            "cache_bytes": self._cache_bytes,
        }

    def peer_report(self) -> list[dict[str, Any]]:
        out = []
        for p in self.peers():
            h = self._health.get(p.id, PeerHealth(p))
            out.append(
                {
                    "node_id": str(p.node_id),
                    "address": f"{p.host}:{p.port}",
                    "rtt_ms": round(h.rtt_ms, 2),
                    "last_seen": h.last_seen,
                    "alive": h.failures < HEALTH_FAILURES,
                }
            )
        return out

    def table_report(self) -> list[dict[str, Any]]:
        assert self.driver is not None and self.me is not None
        table = self.driver.protocol.routing_table
        rows = []
        for p in table.peers():
            h = self._health.get(p.id, PeerHealth(p))
            d = self.me.node_id.distance(p.node_id)
            rows.append(
                {
                    "bucket": d.bit_length() - 1,
                    "node_id": str(p.node_id),
                    "address": f"{p.host}:{p.port}",
                    "distance_log2": d.bit_length(),
                    "last_seen": h.last_seen,
                    "rtt_ms": round(h.rtt_ms, 2),
                }
            )
        rows.sort(key=lambda r: (r["bucket"], r["node_id"]))
        return rows

    async def lookup_report(self, key: bytes) -> dict[str, Any]:
        assert self.driver is not None
        t0 = time.perf_counter()
        done = await self.driver.lookup(key)
        return {
            "key": key.hex(),
            "hops": done.hops,
            "messages": done.messages,
            "ms": round((time.perf_counter() - t0) * 1000, 2),
            "closest": [
                {
                    "node_id": str(p.node_id),
                    "address": f"{p.host}:{p.port}",
                    "distance_log2": NodeId(key).distance(p.node_id).bit_length(),
                }
                for p in done.closest
            ],
        }
