"""TLS 1.3 contexts whose certificates carry the node's own Ed25519 key.

Each node presents a leaf certificate whose subject public key is its node key
(Ed25519: OpenSSL 3 accepts it for TLS 1.3 signatures), so the TLS handshake's
CertificateVerify already proves possession of the node key.

Python's :mod:`ssl` has no per-connection verify callback, and OpenSSL refuses
an unknown self-signed *client* certificate when the server asks for one. To
make both sides present a certificate anyway, every leaf is issued by one fixed,
deliberately **public** issuer key derived from :data:`ISSUER_SEED_TEXT`. It is
not a trust anchor: anyone can mint a leaf with it. It only lets OpenSSL's chain
check pass so that both certificates reach the application, where the in-band
handshake (:mod:`hashmesh.net.handshake`) proves the node id and binds the proof
to both certificate fingerprints. Host names are never checked.

Certificates are valid from 2000 to 9999 so that clock skew never matters.
"""

from __future__ import annotations

import datetime
import os
import secrets
import ssl
import tempfile
from dataclasses import dataclass
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
    PublicFormat,
)
from cryptography.x509.oid import NameOID

from hashmesh.errors import HandshakeError
from hashmesh.identity import Identity
from hashmesh.ids import blake3_digest

ISSUER_SEED_TEXT = b"hashmesh transport v1: public certificate issuer, not a secret"
_NOT_BEFORE = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
_NOT_AFTER = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC)
_ISSUER_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hashmesh transport issuer")])


@cache
def _issuer() -> tuple[Ed25519PrivateKey, bytes]:
    """The public issuer key and its (deterministic) self-signed certificate, PEM."""
    key = Ed25519PrivateKey.from_private_bytes(blake3_digest(ISSUER_SEED_TEXT))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_ISSUER_NAME)
        .issuer_name(_ISSUER_NAME)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(_NOT_BEFORE)
        .not_valid_after(_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, None)
    )
    return key, cert.public_bytes(Encoding.PEM)


def make_certificate(identity: Identity) -> x509.Certificate:
    """A leaf certificate for ``identity``'s node key, issued by the public issuer."""
    issuer_key, _ = _issuer()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity.node_id.value.hex())])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(_ISSUER_NAME)
        .public_key(identity.private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_NOT_BEFORE)
        .not_valid_after(_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(issuer_key, None)
    )


def fingerprint(cert_der: bytes) -> bytes:
    """BLAKE3-256 of a certificate's DER bytes."""
    return blake3_digest(cert_der)


def certificate_public_key(cert_der: bytes) -> bytes:
    """The raw Ed25519 public key inside a DER certificate; HandshakeError otherwise."""
    try:
        key = x509.load_der_x509_certificate(cert_der).public_key()
    except ValueError:
        raise HandshakeError("peer certificate is not valid DER") from None
    if not isinstance(key, Ed25519PublicKey):
        raise HandshakeError("peer certificate key is not Ed25519")
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class TlsCredentials:
    """The two TLS contexts of one node and its own certificate (DER)."""

    server: ssl.SSLContext
    client: ssl.SSLContext
    cert_der: bytes


def _context(purpose: int, cert_pem: bytes, key_pem: bytes, password: bytes) -> ssl.SSLContext:
    ctx = ssl.SSLContext(purpose)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=_issuer()[1].decode("ascii"))
    # load_cert_chain only reads files: write the key encrypted under a one-time
    # password that never leaves memory, load it, and delete the file at once.
    fd, path = tempfile.mkstemp(prefix="hashmesh-tls-", suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(cert_pem + key_pem)
        ctx.load_cert_chain(path, password=password)
    finally:
        os.unlink(path)
    return ctx


def make_credentials(identity: Identity) -> TlsCredentials:
    """Server and client TLS 1.3 contexts presenting ``identity``'s certificate."""
    cert = make_certificate(identity)
    password = secrets.token_hex(16).encode("ascii")
    key_pem = identity.private_key.private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(password)
    )
    cert_pem = cert.public_bytes(Encoding.PEM)
    return TlsCredentials(
        server=_context(ssl.PROTOCOL_TLS_SERVER, cert_pem, key_pem, password),
        client=_context(ssl.PROTOCOL_TLS_CLIENT, cert_pem, key_pem, password),
        cert_der=cert.public_bytes(Encoding.DER),
    )


__all__ = [
    "ISSUER_SEED_TEXT",
    "TlsCredentials",
    "certificate_public_key",
    "fingerprint",
    "make_certificate",
    "make_credentials",
]
