"""The sans-I/O Kademlia core (signatures only in this commit; behaviour follows)."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Sequence

from hashmesh.config import DhtConfig
from hashmesh.dht.events import Event
from hashmesh.dht.messages import Message, PeerInfo
from hashmesh.dht.records import Record, RecordStore
from hashmesh.dht.routing import RoutingTable
from hashmesh.ids import NodeId


class Protocol:
    """One Kademlia node's brain: feed it input, drain its output."""

    def __init__(
        self,
        me: PeerInfo,
        config: DhtConfig,
        rng: random.Random,
        *,
        sign: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.me = me
        self.config = config
        self.rng = rng
        self.sign = sign
        self.routing_table = RoutingTable(me.node_id, config)
        self.records = RecordStore(config.max_records, config.max_providers_per_key)
        self._out: list[tuple[PeerInfo, Message]] = []
        self._events: deque[Event] = deque()
        self._next_op = 1

    @property
    def node_id(self) -> NodeId:
        return self.me.node_id

    def peers(self) -> list[PeerInfo]:
        return list(self.routing_table.peers())

    def receive(self, peer: PeerInfo, message: Message, now: float) -> None:
        pass

    def delivery_failed(self, peer: PeerInfo, rpc_id: int, now: float) -> None:
        pass

    def handle_timer(self, now: float) -> None:
        pass

    def _op(self) -> int:
        op = self._next_op
        self._next_op += 1
        return op

    def bootstrap(self, seeds: Sequence[PeerInfo], now: float) -> int:
        return self._op()

    def lookup(self, target: bytes, now: float) -> int:
        return self._op()

    def put(self, record: Record, now: float) -> int:
        return self._op()

    def get(self, key: bytes, now: float) -> int:
        return self._op()

    def provide(self, key: bytes, now: float) -> int:
        return self._op()

    def find_providers(self, key: bytes, now: float) -> int:
        return self._op()

    def leave(self, now: float) -> None:
        pass

    def messages_to_send(self) -> list[tuple[PeerInfo, Message]]:
        out, self._out = self._out, []
        return out

    def get_timer(self) -> float | None:
        return None

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None
