"""The in-band identity proof, driven without sockets."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from hashmesh.errors import HandshakeError
from hashmesh.identity import Identity
from hashmesh.net.handshake import DIALER, Handshake, transcript
from hashmesh.net.tls import certificate_public_key, fingerprint, make_certificate


def der(ident: Identity) -> bytes:
    return make_certificate(ident).public_bytes(Encoding.DER)


@pytest.fixture(scope="module")
def idents() -> dict[str, Identity]:
    seeds = {"a": 1, "b": 2, "m": 3}
    return {k: Identity.from_private_bytes(bytes([v]) * 32) for k, v in seeds.items()}


@pytest.fixture(scope="module")
def certs(idents: dict[str, Identity]) -> dict[str, bytes]:
    return {k: der(v) for k, v in idents.items()}


def pair(idents, certs, *, seen_by_a="b", seen_by_b="a", expected=None, nonces=(None, None)):
    a = Handshake(
        idents["a"],
        dialer=True,
        own_cert=certs["a"],
        peer_cert=certs[seen_by_a],
        expected=expected,
        nonce=nonces[0],
    )
    b = Handshake(
        idents["b"], dialer=False, own_cert=certs["b"], peer_cert=certs[seen_by_b], nonce=nonces[1]
    )
    return a, b


def test_certificate_carries_node_key(idents, certs) -> None:
    assert certificate_public_key(certs["a"]) == idents["a"].public_key
    assert len(fingerprint(certs["a"])) == 32


def test_success_both_ways(idents, certs) -> None:
    a, b = pair(idents, certs, expected=idents["b"].node_id)
    proof_a = a.receive_hello(b.hello())
    proof_b = b.receive_hello(a.hello())
    assert b.receive_proof(proof_a).node_id == idents["a"].node_id
    assert a.receive_proof(proof_b).node_id == idents["b"].node_id


def test_wrong_expected_id(idents, certs) -> None:
    a, b = pair(idents, certs, expected=idents["m"].node_id)
    with pytest.raises(HandshakeError, match="expected"):
        a.receive_hello(b.hello())


def test_hello_key_must_match_certificate(idents, certs) -> None:
    # The dialer's TLS session shows the relay's certificate, the HELLO is b's.
    a, b = pair(idents, certs, seen_by_a="m")
    with pytest.raises(HandshakeError, match="certificate"):
        a.receive_hello(b.hello())


def test_proof_bound_to_certificate_fingerprints(idents, certs) -> None:
    """A signature over another TLS session's fingerprints does not verify."""
    a, b = pair(idents, certs)
    b.receive_hello(a.hello())
    a_key, b_key = idents["a"].public_key, idents["b"].public_key
    # a's proof as it would be in a session whose listener certificate was a relay's
    forged = idents["a"].sign(
        transcript(
            DIALER,
            fingerprint(certs["a"]),
            fingerprint(certs["m"]),
            a_key,
            b_key,
            a.hello()[33:],
            b.hello()[33:],
        )
    )
    with pytest.raises(HandshakeError, match="does not verify"):
        b.receive_proof(forged)


def test_replayed_proof_fails(idents, certs) -> None:
    a1, b1 = pair(idents, certs)
    b1.receive_hello(a1.hello())
    old_proof = a1.receive_hello(b1.hello())
    assert b1.receive_proof(old_proof).node_id == idents["a"].node_id
    # a new session: same certificates, fresh listener nonce; the old proof is stale
    _, b2 = pair(idents, certs)
    b2.receive_hello(a1.hello())  # attacker replays the old hello too
    with pytest.raises(HandshakeError):
        b2.receive_proof(old_proof)


def test_reflected_proof_fails(idents, certs) -> None:
    a, b = pair(idents, certs)
    own_proof = b.receive_hello(a.hello())
    with pytest.raises(HandshakeError):
        b.receive_proof(own_proof)  # the listener's own proof sent back to it


@pytest.mark.parametrize("bad", [b"", b"\x01" * 10, b"\x02" + b"\x00" * 64])
def test_malformed_hello(idents, certs, bad) -> None:
    a, _ = pair(idents, certs)
    with pytest.raises(HandshakeError):
        a.receive_hello(bad)


def test_order_and_sizes(idents, certs) -> None:
    a, b = pair(idents, certs)
    with pytest.raises(HandshakeError, match="before hello"):
        a.receive_proof(b"\x00" * 64)
    with pytest.raises(HandshakeError, match="bytes"):
        a.receive_proof(b"\x00" * 10)
    a.receive_hello(b.hello())
    with pytest.raises(HandshakeError, match="second hello"):
        a.receive_hello(b.hello())


def test_self_and_echoed_nonce(idents, certs) -> None:
    me = Handshake(idents["a"], dialer=True, own_cert=certs["a"], peer_cert=certs["a"])
    with pytest.raises(HandshakeError, match="self"):
        me.receive_hello(me.hello())
    nonce = b"\x07" * 32
    a, b = pair(idents, certs, nonces=(nonce, nonce))
    with pytest.raises(HandshakeError, match="nonce"):
        a.receive_hello(b.hello())


def test_puzzle_difficulty(idents, certs) -> None:
    a = Handshake(
        idents["a"], dialer=True, own_cert=certs["a"], peer_cert=certs["b"], difficulty=24
    )
    b = Handshake(idents["b"], dialer=False, own_cert=certs["b"], peer_cert=certs["a"])
    with pytest.raises(HandshakeError, match="puzzle"):
        a.receive_hello(b.hello())
