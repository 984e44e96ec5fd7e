"""DHT records: immutable values, signed mutable records, provider records.

Rules (one table, :data:`RULES`, applied by :func:`validate`):

- ``ValueRecord``: ``key == BLAKE3(value)``; ``len(value) <= MAX_VALUE_BYTES``.
- ``SignedRecord``: ``key == BLAKE3(public_key || salt)``; ``len(salt) <= MAX_SALT_BYTES``;
  value size as above; ``expires > now``; the Ed25519 ``signature`` by ``public_key``
  verifies over :func:`signing_bytes` (a versioned msgpack array of every other field).
- A signed record with a *lower* ``seq`` never replaces a held one with a higher ``seq``;
  an equal ``seq`` with different content is refused too (first writer wins).

Failures raise :class:`RecordError`. Checks run on store (a peer's STORE) and on read
(a FIND_VALUE answer). Expiry is always judged against the caller's ``now``.

:class:`RecordStore` is a node's local store: records and provider records with
local expiry times, plus when each record was last received (for the
"skip republishing what a peer just republished to me" optimisation).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import msgpack

from hashmesh.errors import RecordError
from hashmesh.identity import verify_signature
from hashmesh.ids import blake3_digest

if TYPE_CHECKING:
    from hashmesh.dht.messages import PeerInfo

MAX_VALUE_BYTES = 32 * 1024
MAX_SALT_BYTES = 64
SIGNING_DOMAIN = "hashmesh/dht-signed-record/1"


@dataclass(frozen=True, slots=True)
class ValueRecord:
    """An immutable value stored under ``key = BLAKE3(value)``."""

    key: bytes
    value: bytes

    @classmethod
    def of(cls, value: bytes) -> ValueRecord:
        return cls(blake3_digest(value), bytes(value))


@dataclass(frozen=True, slots=True)
class SignedRecord:
    """A mutable record under ``key = BLAKE3(public_key || salt)``, signed by its owner."""

    key: bytes
    public_key: bytes
    salt: bytes
    seq: int
    expires: float
    value: bytes
    signature: bytes

    @classmethod
    def create(
        cls,
        public_key: bytes,
        salt: bytes,
        seq: int,
        expires: float,
        value: bytes,
        sign: Callable[[bytes], bytes],
    ) -> SignedRecord:
        """Build and sign a record with ``sign`` (the owner's Ed25519 signing function)."""
        expires = float(expires)
        sig = sign(signing_bytes(public_key, salt, seq, expires, value))
        return cls(mutable_key(public_key, salt), public_key, salt, seq, expires, value, sig)


Record = ValueRecord | SignedRecord


@dataclass(frozen=True, slots=True)
class ProviderRecord:
    """``provider`` serves the content under ``key`` until ``expires``."""

    key: bytes
    provider: PeerInfo
    expires: float


def mutable_key(public_key: bytes, salt: bytes) -> bytes:
    """The DHT key of a signed record."""
    return blake3_digest(public_key + salt)


def signing_bytes(public_key: bytes, salt: bytes, seq: int, expires: float, value: bytes) -> bytes:
    """The canonical bytes a signed record's signature covers."""
    return msgpack.packb(
        [SIGNING_DOMAIN, public_key, salt, seq, float(expires), value], use_bin_type=True
    )


@lru_cache(maxsize=1 << 14)
def _signature_ok(public_key: bytes, signature: bytes, message: bytes) -> bool:
    return verify_signature(public_key, signature, message)


def _check_value(record: ValueRecord, now: float) -> None:
    if len(record.value) > MAX_VALUE_BYTES:
        raise RecordError(f"value larger than {MAX_VALUE_BYTES} bytes")
    if blake3_digest(record.value) != record.key:
        raise RecordError("value does not hash to its key")


def _check_signed(record: SignedRecord, now: float) -> None:
    if len(record.value) > MAX_VALUE_BYTES:
        raise RecordError(f"value larger than {MAX_VALUE_BYTES} bytes")
    if len(record.salt) > MAX_SALT_BYTES:
        raise RecordError(f"salt longer than {MAX_SALT_BYTES} bytes")
    if not 0 <= record.seq < 1 << 64:
        raise RecordError("sequence number out of range")
    if record.expires <= now:
        raise RecordError("record expired")
    if mutable_key(record.public_key, record.salt) != record.key:
        raise RecordError("key is not BLAKE3(public key + salt)")
    msg = signing_bytes(record.public_key, record.salt, record.seq, record.expires, record.value)
    if not _signature_ok(record.public_key, record.signature, msg):
        raise RecordError("bad signature")


#: The rules table: record type -> its check.
RULES: dict[type, Callable[..., None]] = {ValueRecord: _check_value, SignedRecord: _check_signed}


def validate(record: object, now: float, key: bytes | None = None) -> None:
    """Raise :class:`RecordError` unless ``record`` is valid at ``now`` (under ``key`` if given)."""
    rule = RULES.get(type(record))
    if rule is None:
        raise RecordError("unknown record type")
    if key is not None and record.key != key:  # type: ignore[attr-defined]
        raise RecordError("record is not stored under the requested key")
    rule(record, now)


def check_replace(old: Record, new: Record) -> bool:
    """Whether ``new`` may replace the held ``old`` (same key); RecordError if it is stale.

    Returns False when ``new`` is the same record (nothing to change).
    """
    if old == new:
        return False
    if isinstance(old, SignedRecord) and isinstance(new, SignedRecord):
        if new.seq < old.seq:
            raise RecordError(f"stale sequence number {new.seq} < {old.seq}")
        if new.seq == old.seq:
            raise RecordError(f"sequence number {new.seq} already used for other content")
        return True
    if isinstance(old, ValueRecord) and isinstance(new, ValueRecord):
        return False  # same key => same value (checked by validate)
    raise RecordError("record kind differs from the held one")


class _Held:
    __slots__ = ("expires", "received", "record")

    def __init__(self, record: Record, expires: float, received: float) -> None:
        self.record = record
        self.expires = expires
        self.received = received


class RecordStore:
    """A node's local records and provider records, expiring by ``now``.

    Two heaps of expiry times (records; provider records) let :meth:`expire` drop
    what has expired without scanning what has not: a full store refusing puts,
    or the maintenance timer, costs O(log n) per expired entry instead of O(n) per
    call. Entries are never removed from a heap early; one whose record was
    refreshed, replaced or removed since is skipped when popped, and a heap grown
    past twice the live entries it held when last rebuilt is rebuilt (amortised O(1)).
    """

    __slots__ = (
        "_pheap",
        "_pheap_cap",
        "_providers",
        "_records",
        "_rheap",
        "_rheap_cap",
        "max_providers_per_key",
        "max_records",
    )

    def __init__(self, max_records: int, max_providers_per_key: int) -> None:
        self._records: dict[bytes, _Held] = {}
        self._providers: dict[bytes, dict[bytes, ProviderRecord]] = {}
        self._rheap: list[tuple[float, bytes]] = []  # (expires, key)
        self._pheap: list[tuple[float, bytes, bytes]] = []  # (expires, key, provider id)
        self._rheap_cap = self._pheap_cap = 64  # rebuild past these sizes (then 2 x live)
        self.max_records = max_records
        self.max_providers_per_key = max_providers_per_key

    def _due_record(self, key: bytes, expires: float) -> None:
        heapq.heappush(self._rheap, (expires, key))
        if len(self._rheap) > self._rheap_cap:
            self._rheap = [(h.expires, k) for k, h in self._records.items()]
            heapq.heapify(self._rheap)
            self._rheap_cap = 2 * len(self._rheap) + 64

    def _due_provider(self, rec: ProviderRecord) -> None:
        heapq.heappush(self._pheap, (rec.expires, rec.key, rec.provider.node_id.value))
        if len(self._pheap) > self._pheap_cap:
            self._pheap = [
                (r.expires, key, pid)
                for key, per_key in self._providers.items()
                for pid, r in per_key.items()
            ]
            heapq.heapify(self._pheap)
            self._pheap_cap = 2 * len(self._pheap) + 64

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, key: object) -> bool:
        return key in self._records

    def put(self, record: Record, now: float, ttl: float, *, received: bool = True) -> bool:
        """Validate and hold ``record`` for ``ttl`` seconds; return True if anything changed.

        ``received`` marks a store that came from a peer (used to skip republishing).
        Raises :class:`RecordError` for an invalid or stale record and when the store is full.
        """
        validate(record, now)
        expires = now + ttl
        if isinstance(record, SignedRecord):
            expires = min(expires, record.expires)
        held = self._records.get(record.key)
        if held is not None and held.expires > now:
            replace = check_replace(held.record, record)
            if replace:
                held.record = record
            before = held.expires
            held.expires = max(held.expires, expires) if not replace else expires
            if held.expires != before:
                self._due_record(record.key, held.expires)
            if received:
                held.received = now
            return replace
        if held is None and len(self._records) >= self.max_records:
            self.expire(now)
            if len(self._records) >= self.max_records:
                raise RecordError("record store full")
        self._records[record.key] = _Held(record, expires, now if received else float("-inf"))
        self._due_record(record.key, expires)
        return True

    def get(self, key: bytes, now: float) -> Record | None:
        held = self._records.get(key)
        if held is None:
            return None
        if held.expires <= now:
            del self._records[key]
            return None
        return held.record

    def remaining(self, key: bytes, now: float) -> float:
        """Seconds the held record under ``key`` has left (0 if none)."""
        held = self._records.get(key)
        return max(0.0, held.expires - now) if held is not None else 0.0

    def received_at(self, key: bytes) -> float:
        held = self._records.get(key)
        return held.received if held is not None else float("-inf")

    def remove(self, key: bytes) -> None:
        self._records.pop(key, None)

    def keys(self) -> list[bytes]:
        return list(self._records)

    def items(self, now: float) -> Iterator[tuple[bytes, Record]]:
        """Live ``(key, record)`` pairs."""
        for key, held in list(self._records.items()):
            if held.expires > now:
                yield key, held.record

    def add_provider(self, rec: ProviderRecord, now: float) -> None:
        """Hold a provider record; RecordError if expired, if the key has too many
        providers, or if a new key would take the store past ``max_records`` keys."""
        if rec.expires <= now:
            raise RecordError("provider record expired")
        if rec.key not in self._providers and len(self._providers) >= self.max_records:
            self.expire(now)
            if len(self._providers) >= self.max_records:
                raise RecordError("provider store full")
        per_key = self._providers.setdefault(rec.key, {})
        pid = rec.provider.node_id.value
        if pid not in per_key and len(per_key) >= self.max_providers_per_key:
            for k in [k for k, r in per_key.items() if r.expires <= now]:
                del per_key[k]
            if len(per_key) >= self.max_providers_per_key:
                raise RecordError("too many providers for this key")
        per_key[pid] = rec
        self._due_provider(rec)

    def providers(self, key: bytes, now: float, limit: int) -> list[PeerInfo]:
        per_key = self._providers.get(key)
        if not per_key:
            return []
        out = [r.provider for r in per_key.values() if r.expires > now]
        return out[:limit]

    def provider_keys(self) -> list[bytes]:
        return list(self._providers)

    def expire(self, now: float) -> int:
        """Drop expired records and provider records; return how many were dropped."""
        dropped = 0
        rheap, records = self._rheap, self._records
        while rheap and rheap[0][0] <= now:
            _, key = heapq.heappop(rheap)
            held = records.get(key)
            if held is not None and held.expires <= now:  # else refreshed: a later entry
                del records[key]
                dropped += 1
        pheap, providers = self._pheap, self._providers
        while pheap and pheap[0][0] <= now:
            _, key, pid = heapq.heappop(pheap)
            per_key = providers.get(key)
            rec = per_key.get(pid) if per_key is not None else None
            if per_key is not None and rec is not None and rec.expires <= now:
                del per_key[pid]
                dropped += 1
                if not per_key:
                    del providers[key]
        return dropped


__all__ = [
    "MAX_SALT_BYTES",
    "MAX_VALUE_BYTES",
    "RULES",
    "ProviderRecord",
    "Record",
    "RecordStore",
    "SignedRecord",
    "ValueRecord",
    "check_replace",
    "mutable_key",
    "signing_bytes",
    "validate",
]
