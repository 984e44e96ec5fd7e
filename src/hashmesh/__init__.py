"""hashmesh: a distributed, content-addressed storage network.

The public Python API. Heavy modules load lazily on first attribute access so
that ``import hashmesh`` (and therefore the CLI) starts fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from hashmesh.errors import (
    CapacityError,
    DecodeError,
    HandshakeError,
    HashmeshError,
    IntegrityError,
    InvalidArgumentError,
    InvalidIdError,
    NetworkError,
    NotFoundError,
    NotInitialisedError,
    PeerError,
    PeerUnavailableError,
    QuorumError,
    RecordError,
    RequestTimeoutError,
    StorageError,
    UsageError,
)
from hashmesh.ids import ContentId, NodeId

__version__ = "0.1.0"

_LAZY = {
    "Store": "hashmesh.store.api",
    "FileInfo": "hashmesh.store.model",
    "DirEntry": "hashmesh.store.model",
    "Stats": "hashmesh.store.model",
    "VerifyReport": "hashmesh.store.model",
    "GcReport": "hashmesh.store.model",
    "Config": "hashmesh.config",
    "StoreConfig": "hashmesh.config",
    "DhtConfig": "hashmesh.config",
    "NodeConfig": "hashmesh.config",
    "Identity": "hashmesh.identity",
    "Node": "hashmesh.node",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hashmesh' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "CapacityError",
    "Config",
    "ContentId",
    "DecodeError",
    "DhtConfig",
    "DirEntry",
    "FileInfo",
    "GcReport",
    "HandshakeError",
    "HashmeshError",
    "Identity",
    "IntegrityError",
    "InvalidArgumentError",
    "InvalidIdError",
    "NetworkError",
    "Node",
    "NodeConfig",
    "NodeId",
    "NotFoundError",
    "NotInitialisedError",
    "PeerError",
    "PeerUnavailableError",
    "QuorumError",
    "RecordError",
    "RequestTimeoutError",
    "Stats",
    "StorageError",
    "Store",
    "StoreConfig",
    "UsageError",
    "VerifyReport",
    "__version__",
]
