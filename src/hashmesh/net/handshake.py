"""In-band identity proof, run right after the TLS 1.3 handshake (sans-I/O).

Both sides send at once a HELLO frame, then, on receiving the peer's HELLO, a
PROOF frame; application frames may follow a side's PROOF. Payloads::

    HELLO  version u8 (= 1) | Ed25519 public key (32) | fresh random nonce (32)
    PROOF  Ed25519 signature (64) by the node key over the transcript below

    transcript = CONTEXT                      b"hashmesh/transport/v1 proof\\0"
                 || signer role               b"D" (dialer) or b"L" (listener)
                 || fp(dialer certificate)    BLAKE3-256 of the DER certificate
                 || fp(listener certificate)
                 || dialer public key || listener public key
                 || dialer nonce || listener nonce

Each side builds the transcript from what *its own* TLS session shows (its own
certificate, ``getpeercert(binary_form=True)``), so a proof relayed through a
man in the middle that terminates TLS on both sides is over different
fingerprints and fails. The verifier's own fresh nonce makes a replayed proof
fail; the role byte makes a reflected one fail. The receiver also requires that
the HELLO key is the key in the peer's TLS certificate, that the peer's nonce
differs from its own, that the peer is not itself, that the key meets the id
puzzle difficulty, and (dialer only) that BLAKE3(key) is the node id it expected.
Any failure is a :class:`HandshakeError`; the connection is then closed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from hashmesh.errors import HandshakeError
from hashmesh.identity import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, Identity, puzzle_ok, verify_signature
from hashmesh.ids import NodeId
from hashmesh.net.tls import certificate_public_key, fingerprint

VERSION = 1
CONTEXT = b"hashmesh/transport/v1 proof\x00"
NONCE_SIZE = 32
HELLO_SIZE = 1 + PUBLIC_KEY_SIZE + NONCE_SIZE
DIALER = b"D"
LISTENER = b"L"


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """A peer whose node id was proven on this connection."""

    node_id: NodeId
    public_key: bytes
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        return self.node_id.short()


def transcript(
    signer: bytes,
    dialer_fp: bytes,
    listener_fp: bytes,
    dialer_key: bytes,
    listener_key: bytes,
    dialer_nonce: bytes,
    listener_nonce: bytes,
) -> bytes:
    """The bytes a side signs (``signer`` is DIALER or LISTENER)."""
    if signer not in (DIALER, LISTENER):
        raise HandshakeError("bad handshake role")
    return b"".join(
        (
            CONTEXT,
            signer,
            dialer_fp,
            listener_fp,
            dialer_key,
            listener_key,
            dialer_nonce,
            listener_nonce,
        )
    )


def encode_hello(public_key: bytes, nonce: bytes) -> bytes:
    return bytes([VERSION]) + public_key + nonce


def decode_hello(payload: bytes) -> tuple[bytes, bytes]:
    """(public key, nonce) of a HELLO payload."""
    if len(payload) != HELLO_SIZE:
        raise HandshakeError(f"hello of {len(payload)} bytes, expected {HELLO_SIZE}")
    if payload[0] != VERSION:
        raise HandshakeError(f"unsupported transport version {payload[0]}")
    return payload[1 : 1 + PUBLIC_KEY_SIZE], payload[1 + PUBLIC_KEY_SIZE :]


class Handshake:
    """One side's handshake state: hello() -> receive_hello() -> receive_proof()."""

    def __init__(
        self,
        identity: Identity,
        *,
        dialer: bool,
        own_cert: bytes,
        peer_cert: bytes,
        expected: NodeId | None = None,
        difficulty: int = 0,
        nonce: bytes | None = None,
    ) -> None:
        self._identity = identity
        self._dialer = dialer
        self._own_fp = fingerprint(own_cert)
        self._peer_fp = fingerprint(peer_cert)
        self._peer_cert_key = certificate_public_key(peer_cert)
        self._expected = expected
        self._difficulty = difficulty
        self._nonce = nonce if nonce is not None else secrets.token_bytes(NONCE_SIZE)
        self._peer_key: bytes | None = None
        self._peer_nonce: bytes | None = None

    def hello(self) -> bytes:
        """The HELLO payload to send first."""
        return encode_hello(self._identity.public_key, self._nonce)

    def _transcript(self, signer: bytes) -> bytes:
        if self._peer_key is None or self._peer_nonce is None:
            raise HandshakeError("proof before hello")
        me, peer = self._identity.public_key, self._peer_key
        if self._dialer:
            return transcript(
                signer, self._own_fp, self._peer_fp, me, peer, self._nonce, self._peer_nonce
            )
        return transcript(
            signer, self._peer_fp, self._own_fp, peer, me, self._peer_nonce, self._nonce
        )

    def receive_hello(self, payload: bytes) -> bytes:
        """Check the peer's HELLO; return the PROOF payload to send."""
        if self._peer_key is not None:
            raise HandshakeError("second hello")
        key, nonce = decode_hello(payload)
        node_id = NodeId.from_public_key(key)
        if key != self._peer_cert_key:
            raise HandshakeError("hello key differs from the TLS certificate key")
        if key == self._identity.public_key:
            raise HandshakeError("connected to self")
        if nonce == self._nonce:
            raise HandshakeError("peer echoed our nonce")
        if self._expected is not None and node_id != self._expected:
            raise HandshakeError(f"peer is {node_id.short()}, expected {self._expected.short()}")
        if not puzzle_ok(node_id, self._difficulty):
            raise HandshakeError(f"peer id {node_id.short()} does not solve the id puzzle")
        self._peer_key, self._peer_nonce = key, nonce
        return self._identity.sign(self._transcript(DIALER if self._dialer else LISTENER))

    def receive_proof(self, payload: bytes) -> PeerIdentity:
        """Check the peer's PROOF; return the proven identity."""
        if len(payload) != SIGNATURE_SIZE:
            raise HandshakeError(f"proof of {len(payload)} bytes, expected {SIGNATURE_SIZE}")
        message = self._transcript(LISTENER if self._dialer else DIALER)
        if self._peer_key is None or not verify_signature(self._peer_key, payload, message):
            raise HandshakeError("identity proof does not verify for this TLS session")
        return PeerIdentity(NodeId.from_public_key(self._peer_key), self._peer_key)


__all__ = [
    "CONTEXT",
    "DIALER",
    "HELLO_SIZE",
    "LISTENER",
    "NONCE_SIZE",
    "VERSION",
    "Handshake",
    "PeerIdentity",
    "decode_hello",
    "encode_hello",
    "transcript",
]
