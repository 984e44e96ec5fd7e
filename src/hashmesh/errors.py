"""The one exception tree of hashmesh, split by who is at fault.

::

    HashmeshError                      everything hashmesh raises on purpose
    ├── UsageError                     the caller's misuse
    │   ├── InvalidIdError             a malformed content id or node id
    │   ├── InvalidArgumentError       a bad option value (size, TTL, address, ...)
    │   └── NotInitialisedError        no repository at the given path
    ├── NotFoundError                  a well-formed id or path that is not there
    ├── CapacityError                  a capacity limit or a full disk; nothing was written
    ├── StorageError                   the local disk or database failed (I/O, permission)
    ├── IntegrityError                 stored or received bytes do not match their id
    ├── PeerError                      a peer sent bytes we cannot accept
    │   ├── DecodeError                garbage, truncated, oversized or wrongly typed message
    │   ├── RecordError                a DHT record that fails validation
    │   └── HandshakeError             a peer failed to prove its identity
    └── NetworkError                   a peer or the network did not cooperate
        ├── PeerUnavailableError       could not connect, or the connection dropped
        ├── RequestTimeoutError        no answer before the deadline
        ├── PeerBusyError              the peer refused a request: over its rate limit
        └── QuorumError                fewer peers acknowledged a write than required

The CLI maps this tree to one-line messages and exit codes in one table
(``hashmesh.cli``); the HTTP API maps it to status codes in one table.
"""

from __future__ import annotations


class HashmeshError(Exception):
    """Base of every error hashmesh raises on purpose."""


class UsageError(HashmeshError):
    """The caller asked for something that cannot be done as asked."""


class InvalidIdError(UsageError):
    """A content id or node id is malformed."""


class InvalidArgumentError(UsageError):
    """An argument or option has a value that is not allowed."""


class NotInitialisedError(UsageError):
    """No hashmesh repository exists at the given path."""


class NotFoundError(HashmeshError):
    """A well-formed id, name or path that is not present."""


class CapacityError(HashmeshError):
    """A write would exceed the capacity limit or the free disk space.

    Raised before anything is written.
    """

    def __init__(self, message: str, *, need: int = 0, free: int = 0) -> None:
        super().__init__(message)
        self.need = need
        self.free = free


class StorageError(HashmeshError):
    """The local disk or database failed (I/O error, permission denied)."""


class IntegrityError(HashmeshError):
    """Bytes do not match the id they were stored or sent under."""

    def __init__(self, message: str, *, block_id: str | None = None) -> None:
        super().__init__(message)
        self.block_id = block_id


class PeerError(HashmeshError):
    """A peer sent bytes we cannot accept."""


class DecodeError(PeerError):
    """A message is garbage, truncated, oversized or wrongly typed."""


class RecordError(PeerError):
    """A DHT record fails validation (wrong hash, bad signature, stale, expired)."""


class HandshakeError(PeerError):
    """A peer failed to prove the node id it claims."""


class NetworkError(HashmeshError):
    """A peer or the network did not cooperate."""


class PeerUnavailableError(NetworkError):
    """Could not connect to a peer, or the connection dropped."""


class RequestTimeoutError(NetworkError):
    """A request got no answer before its deadline."""


class PeerBusyError(NetworkError):
    """The peer refused a request because the requester is over its rate limit."""


class QuorumError(NetworkError):
    """Fewer peers acknowledged a write than the write quorum requires."""


__all__ = [
    "CapacityError",
    "DecodeError",
    "HandshakeError",
    "HashmeshError",
    "IntegrityError",
    "InvalidArgumentError",
    "InvalidIdError",
    "NetworkError",
    "NotFoundError",
    "NotInitialisedError",
    "PeerBusyError",
    "PeerError",
    "PeerUnavailableError",
    "QuorumError",
    "RecordError",
    "RequestTimeoutError",
    "StorageError",
    "UsageError",
]
