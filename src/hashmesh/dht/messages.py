"""DHT wire messages as frozen dataclasses (the in-memory form; see codec.py for bytes).

Every message carries ``rpc_id`` (an unsigned 64-bit request id chosen by the
requester and echoed by the response) and ``sender`` (the sender's contact, so
the receiver can update its routing table).

Requests and their one legal response type::

    Ping          -> Pong
    FindNode      -> Nodes
    FindValue     -> Value       (record, or None plus closer peers)
    Store         -> StoreAck
    StoreMany     -> StoreAck    (a holder's republish batch)
    AddProvider   -> StoreAck
    ProvideMany   -> StoreAck    (many keys, the sender the provider)
    GetProviders  -> Providers
    FindMany      -> FoundMany   (many keys' closest peers, and records if asked)

Constructors do not validate (they are hot in the simulator); the codec checks
every field of bytes from the wire, and :func:`peer_id_ok` checks a contact's id.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from hashmesh.dht.records import ProviderRecord, Record, SignedRecord, ValueRecord
from hashmesh.identity import puzzle_ok
from hashmesh.ids import NodeId, blake3_digest


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """A contact: a key-derived node id plus the address the node listens on."""

    public_key: bytes
    host: str
    port: int
    node_id: NodeId

    @classmethod
    def make(cls, public_key: bytes, host: str, port: int) -> PeerInfo:
        """A contact whose id is derived from ``public_key``."""
        return cls(public_key, host, port, NodeId.from_public_key(public_key))

    @property
    def id(self) -> bytes:
        """The raw 32-byte node id."""
        return self.node_id.value

    def __repr__(self) -> str:
        return f"PeerInfo({self.node_id.short()}@{self.host}:{self.port})"


@lru_cache(maxsize=1 << 18)
def _key_hashes_to(public_key: bytes, node_id: bytes) -> bool:
    return len(public_key) == 32 and blake3_digest(public_key) == node_id


def peer_id_ok(peer: PeerInfo) -> bool:
    """True if ``peer.node_id`` is BLAKE3 of its public key (cached per key)."""
    return _key_hashes_to(peer.public_key, peer.node_id.value)


@lru_cache(maxsize=1 << 18)
def _puzzle_cached(node_id: bytes, difficulty: int) -> bool:
    return puzzle_ok(NodeId(node_id), difficulty)


def peer_puzzle_ok(peer: PeerInfo, difficulty: int) -> bool:
    """True if ``peer``'s id solves the S/Kademlia static puzzle (cached)."""
    return difficulty <= 0 or _puzzle_cached(peer.node_id.value, difficulty)


# --- requests ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ping:
    rpc_id: int
    sender: PeerInfo


@dataclass(frozen=True, slots=True)
class FindNode:
    rpc_id: int
    sender: PeerInfo
    target: bytes


@dataclass(frozen=True, slots=True)
class FindValue:
    rpc_id: int
    sender: PeerInfo
    key: bytes


@dataclass(frozen=True, slots=True)
class Store:
    """Hold ``record`` for ``ttl`` seconds (0 = the receiver's default; capped by it)."""

    rpc_id: int
    sender: PeerInfo
    record: Record
    ttl: float = 0.0


MAX_BATCH_RECORDS = 256  # records in one StoreMany (the codec's message cap still applies)
BATCH_VALUE_BYTES = 40 * 1024  # value bytes a republisher packs into one StoreMany


@dataclass(frozen=True, slots=True)
class StoreMany:
    """Hold each ``(record, ttl)`` of ``items``: a holder's republish batch to one peer.

    Republishing sends one of these per peer and region instead of one ``Store``
    per record, so its message count grows with the regions a node covers, not
    with the number of records it holds. Answered by one ``StoreAck`` (ok if every
    record was accepted; ``reason`` names the first refusal).
    """

    rpc_id: int
    sender: PeerInfo
    items: tuple[tuple[Record, float], ...]


MAX_BATCH_KEYS = 128  # keys in one FindMany


@dataclass(frozen=True, slots=True)
class FindMany:
    """FindNode (or, with ``want_values``, FindValue) for up to MAX_BATCH_KEYS keys at once.

    Batched lookups send one of these per peer and round instead of one request per
    key: many keys in one region share their closest peers.
    """

    rpc_id: int
    sender: PeerInfo
    keys: tuple[bytes, ...]
    want_values: bool = False


@dataclass(frozen=True, slots=True)
class ProvideMany:
    """AddProvider for up to MAX_BATCH_KEYS keys at once, the sender being the provider.

    Batched announcements (``provide_many``, republishing what a node provides) send
    one of these per peer instead of one ``AddProvider`` per key. Answered by one
    ``StoreAck`` (ok if every key was accepted; ``reason`` names the first refusal).
    """

    rpc_id: int
    sender: PeerInfo
    keys: tuple[bytes, ...]
    expires: float


@dataclass(frozen=True, slots=True)
class AddProvider:
    """Announce that ``provider`` (which must be the sender) serves ``key`` until ``expires``."""

    rpc_id: int
    sender: PeerInfo
    key: bytes
    provider: PeerInfo
    expires: float


@dataclass(frozen=True, slots=True)
class GetProviders:
    rpc_id: int
    sender: PeerInfo
    key: bytes


# --- responses --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pong:
    rpc_id: int
    sender: PeerInfo


@dataclass(frozen=True, slots=True)
class Nodes:
    rpc_id: int
    sender: PeerInfo
    peers: tuple[PeerInfo, ...]


@dataclass(frozen=True, slots=True)
class Value:
    """Answer to FindValue: the record if held (then ``peers`` is usually empty), else closer peers."""

    rpc_id: int
    sender: PeerInfo
    record: Record | None
    peers: tuple[PeerInfo, ...]


@dataclass(frozen=True, slots=True)
class StoreAck:
    rpc_id: int
    sender: PeerInfo
    ok: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class FoundMany:
    """Answer to FindMany, for a prefix of its keys (at least one).

    ``peers`` is a table shared by all answers; ``entries[i]`` answers ``keys[i]`` with
    the record if one was asked for and is held, else with the indices (into ``peers``)
    of the closest peers known. Keys past ``len(entries)`` did not fit in one message:
    the requester asks again.
    """

    rpc_id: int
    sender: PeerInfo
    peers: tuple[PeerInfo, ...]
    entries: tuple[tuple[Record | None, tuple[int, ...]], ...]


@dataclass(frozen=True, slots=True)
class Providers:
    rpc_id: int
    sender: PeerInfo
    providers: tuple[PeerInfo, ...]
    peers: tuple[PeerInfo, ...]


Request = (
    Ping
    | FindNode
    | FindValue
    | Store
    | StoreMany
    | AddProvider
    | GetProviders
    | FindMany
    | ProvideMany
)
Response = Pong | Nodes | Value | StoreAck | Providers | FoundMany
Message = Request | Response

REQUEST_TYPES: tuple[type, ...] = (
    Ping,
    FindNode,
    FindValue,
    Store,
    StoreMany,
    AddProvider,
    GetProviders,
    FindMany,
    ProvideMany,
)
RESPONSE_TYPES: tuple[type, ...] = (Pong, Nodes, Value, StoreAck, Providers, FoundMany)

#: The one legal response type of each request type.
RESPONSE_FOR: dict[type, type] = {
    Ping: Pong,
    FindNode: Nodes,
    FindValue: Value,
    Store: StoreAck,
    StoreMany: StoreAck,
    AddProvider: StoreAck,
    GetProviders: Providers,
    FindMany: FoundMany,
    ProvideMany: StoreAck,
}

__all__ = [
    "BATCH_VALUE_BYTES",
    "MAX_BATCH_KEYS",
    "MAX_BATCH_RECORDS",
    "REQUEST_TYPES",
    "RESPONSE_FOR",
    "RESPONSE_TYPES",
    "AddProvider",
    "FindMany",
    "FindNode",
    "FindValue",
    "FoundMany",
    "GetProviders",
    "Message",
    "Nodes",
    "PeerInfo",
    "Ping",
    "Pong",
    "ProvideMany",
    "ProviderRecord",
    "Providers",
    "Record",
    "Request",
    "Response",
    "SignedRecord",
    "Store",
    "StoreAck",
    "StoreMany",
    "Value",
    "ValueRecord",
    "peer_id_ok",
    "peer_puzzle_ok",
]
