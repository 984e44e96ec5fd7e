"""Node identity: an Ed25519 key pair whose public key hashes to the node id.

The private key lives in ``<repo>/node.key`` as 32 raw bytes, created with mode
0600 on first use. ``node id = BLAKE3-256(raw public key)``.

An optional S/Kademlia-style static crypto puzzle makes ids costlier to mint:
with difficulty ``c``, an id is accepted only if ``BLAKE3(node id)`` starts
with ``c`` zero bits. Generating a key then takes about ``2**c`` tries, checking
one takes a single hash. Difficulty 0 (the default) accepts every key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from hashmesh.errors import InvalidArgumentError, StorageError
from hashmesh.ids import NodeId, blake3_digest

KEY_FILE = "node.key"
PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
MAX_PUZZLE_TRIES = 1 << 24


def leading_zero_bits(data: bytes) -> int:
    n = int.from_bytes(data, "big")
    return len(data) * 8 - n.bit_length()


def puzzle_ok(node_id: NodeId, difficulty: int) -> bool:
    """True if ``node_id`` solves the static puzzle at ``difficulty``."""
    return difficulty <= 0 or leading_zero_bits(blake3_digest(node_id.value)) >= difficulty


def verify_signature(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Check an Ed25519 signature; False on any malformed input."""
    if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Identity:
    """A node's key pair and the node id derived from it."""

    private_key: Ed25519PrivateKey
    public_key: bytes
    node_id: NodeId

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> Identity:
        key = Ed25519PrivateKey.from_private_bytes(raw)
        pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return cls(key, pub, NodeId.from_public_key(pub))

    @classmethod
    def generate(cls, difficulty: int = 0) -> Identity:
        """A fresh identity solving the static puzzle at ``difficulty``."""
        if difficulty < 0 or difficulty > 24:
            raise InvalidArgumentError("puzzle difficulty must be between 0 and 24")
        for _ in range(MAX_PUZZLE_TRIES):
            ident = cls.from_private_bytes(os.urandom(32))
            if puzzle_ok(ident.node_id, difficulty):
                return ident
        raise InvalidArgumentError(f"no key solved the puzzle at difficulty {difficulty}")

    def private_bytes(self) -> bytes:
        return self.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)

    @classmethod
    def load_or_create(cls, directory: Path, difficulty: int = 0) -> Identity:
        """Load ``directory/node.key``, creating it (mode 0600) if absent."""
        path = Path(directory) / KEY_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            ident = cls.generate(difficulty)
            tmp = path.with_suffix(".tmp")
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(ident.private_bytes())
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except OSError as exc:
                raise StorageError(f"cannot write node key {path}: {exc.strerror}") from None
            return ident
        except OSError as exc:
            raise StorageError(f"cannot read node key {path}: {exc.strerror}") from None
        if len(raw) != 32:
            raise StorageError(f"node key {path} is corrupt (expected 32 bytes)")
        return cls.from_private_bytes(raw)


__all__ = ["Identity", "leading_zero_bits", "puzzle_ok", "verify_signature"]
