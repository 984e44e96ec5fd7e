"""Golden vectors for the DHT wire format (docs/protocol.md, "DHT messages").

tests/vectors/dht_messages.json holds the hex of each message built from the fixed
inputs below. The test re-encodes the inputs and compares, and decodes the hex back.
Regenerate only on a deliberate format change (bump codec.VERSION):
``python -m tests.unit.dht.test_vectors > tests/vectors/dht_messages.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hashmesh.dht import codec
from hashmesh.dht.messages import (
    AddProvider,
    FindMany,
    FindNode,
    FindValue,
    FoundMany,
    GetProviders,
    Nodes,
    PeerInfo,
    Ping,
    Pong,
    ProvideMany,
    Providers,
    Store,
    StoreAck,
    StoreMany,
    Value,
)
from hashmesh.dht.records import SignedRecord, ValueRecord, validate
from hashmesh.identity import Identity

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "dht_messages.json"


def fixed_messages() -> dict[str, object]:
    """Every message type, built from fixed inputs (Ed25519 signing is deterministic)."""
    owner = Identity.from_private_bytes(bytes(range(32)))
    a = PeerInfo.make(owner.public_key, "192.0.2.1", 7400)
    b = PeerInfo.make(bytes(range(32, 64)), "2001:db8::1", 7401)
    c = PeerInfo.make(bytes(range(64, 96)), "node-c.example", 65535)
    key = bytes(range(100, 132))
    immutable = ValueRecord.of(b"hello hashmesh")
    signed = SignedRecord.create(
        owner.public_key, b"profile", 7, 1_900_000_000.0, b"mutable value", owner.sign
    )
    return {
        "ping": Ping(1, a),
        "pong": Pong(1, b),
        "find_node": FindNode(2, a, key),
        "nodes": Nodes(2, b, (a, c)),
        "find_value": FindValue(3, a, immutable.key),
        "value_found": Value(3, b, immutable, ()),
        "value_signed": Value(4, b, signed, ()),
        "value_missing": Value(5, b, None, (c,)),
        "store": Store(6, a, immutable, 3600.0),
        "store_signed": Store(7, a, signed, 0.0),
        "store_many": StoreMany(10, a, ((immutable, 3600.0), (signed, 0.0))),
        "store_ack": StoreAck(6, b, True, ""),
        "store_nack": StoreAck(7, b, False, "record store full"),
        "add_provider": AddProvider(8, a, key, a, 1_900_000_000.5),
        "get_providers": GetProviders(9, b, key),
        "providers": Providers(9, c, (a,), (b,)),
        "max_rpc_id": Ping(2**64 - 1, a),
        "find_many": FindMany(11, a, (key, immutable.key), True),
        "found_many": FoundMany(11, b, (a, c), ((None, (1, 0)), (immutable, ()))),
        "provide_many": ProvideMany(12, a, (key, immutable.key), 1_900_000_000.5),
    }


def render() -> str:
    out = {
        "format": "hashmesh DHT message, msgpack, see docs/protocol.md#dht-messages",
        "version": codec.VERSION,
        "vectors": {name: codec.encode(m).hex() for name, m in fixed_messages().items()},
    }
    return json.dumps(out, indent=2, sort_keys=True) + "\n"


def _stored() -> dict:
    return json.loads(VECTORS.read_text())


def test_file_matches_version() -> None:
    data = _stored()
    assert data["version"] == codec.VERSION
    assert set(data["vectors"]) == set(fixed_messages())


@pytest.mark.parametrize("name", sorted(fixed_messages()))
def test_encode_matches_golden(name: str) -> None:
    assert codec.encode(fixed_messages()[name]).hex() == _stored()["vectors"][name]


@pytest.mark.parametrize("name", sorted(fixed_messages()))
def test_decode_golden(name: str) -> None:
    msg = codec.decode(bytes.fromhex(_stored()["vectors"][name]))
    assert msg == fixed_messages()[name]
    record = getattr(msg, "record", None)
    if record is not None:
        validate(record, now=1_800_000_000.0)


if __name__ == "__main__":
    print(render(), end="")
