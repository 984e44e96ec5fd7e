"""Pins the public Python API: adding or removing a name is a deliberate act."""

import hashmesh

EXPECTED = {
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
}


def test_all_is_pinned() -> None:
    assert set(hashmesh.__all__) == EXPECTED


def test_every_exported_name_resolves() -> None:
    for name in hashmesh.__all__:
        assert getattr(hashmesh, name) is not None, name


def test_errors_share_one_root() -> None:
    for name in hashmesh.__all__:
        obj = getattr(hashmesh, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, hashmesh.HashmeshError), name
