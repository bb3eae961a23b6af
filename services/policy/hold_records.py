"""What each litigation hold recorded: the digests its search matched when it was placed and
just before each edit of its search, kept as a grow-only set per hold in the store's own
LMDB databases, so that no cost grows with how many a hold recorded:

  hold_records  hold id NUL 32 digest bytes -> b""     (the records, sorted by digest)
  hold_sums     hold id -> count (8 bytes, big-endian) + fingerprint (32 bytes)

The fingerprint is the sum modulo 2**256 of the recorded digests (each a SHA-256, so
uniformly spread): order-independent and kept up to date as records are added, so that
two mirror peers tell whether a hold's records agree from its count and fingerprint alone
(services.mirror.hold_sync), and held_at_placement is one lookup.

Only removing the hold (a tombstone in services.policy.replicated) drops its records, and
only a hold that yields its id to another (services.policy.hold_identity) moves them;
records for a hold that is removed, or not known here, are never taken from a peer. Each
write of records also moves the holds generation, so a retention deletion decided before
it is checked again (services.policy.retention).
"""
from __future__ import annotations

import json
import re
import struct
from typing import Iterable, Iterator, NamedTuple

from firmware.errors import ArchiverError

from services.archive.store import Store

RECORDS, SUMS = "hold_records", "hold_sums"
HOLD_PREFIX = b"hold:"  # the hold's entry in the replicated settings
GENERATION_KEY = b"\x00holds-generation"  # in the replicated database
# In the replicated database, node-local: how many times what a hold holds here was taken
# out of what an exchange of hold records with a mirror peer sees: a query superseded
# (services.policy.replicated) or a hold's records dropped or moved to another id (below).
# It only grows and is durable (services.policy.peer_copies).
SUPERSEDES_KEY = b"\x00held-superseded-count"
CHUNK = 10_000  # records written (or read) per transaction: a bounded write under the lock
MODULUS = 1 << 256
HOLD_ID_LIMIT = 100  # characters
DIGEST = re.compile(r"[0-9a-f]{64}")


class BadHoldRecords(ArchiverError):
    """A hold id or digest that cannot name a record (from a peer, or old data)."""


class Summary(NamedTuple):
    count: int
    fingerprint: str  # 64 hex digits

    def to_json(self) -> list:
        return [self.count, self.fingerprint]


EMPTY = Summary(0, "0" * 64)


def check_hold_id(hold_id: str) -> bytes:
    """The hold id as key bytes; BadHoldRecords for one that cannot be a key part."""
    if not isinstance(hold_id, str) or not hold_id or "\0" in hold_id \
            or len(hold_id) > HOLD_ID_LIMIT:
        raise BadHoldRecords(f"hold id {quoted(hold_id)}: expected 1 to {HOLD_ID_LIMIT} "
                             "characters without NUL")
    return hold_id.encode()


def digest_bytes(digest: str) -> bytes:
    """A message digest (64 lowercase hex digits, as the store names messages) as its 32
    bytes; BadHoldRecords otherwise. Only the one spelling: records are compared as text
    too (services.mirror.hold_sync), so "AB..." or "ab ab ..." must not pass for "ab..."."""
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
        raise BadHoldRecords(f"{quoted(digest)} is not a message digest (64 hex digits)")
    return bytes.fromhex(digest)


def quoted(value, limit: int = 80) -> str:
    """`value` as an error message shows it: a peer's 80 MB string is not sent back."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def is_hold_id(hold_id) -> bool:
    try:
        check_hold_id(hold_id)
    except BadHoldRecords:
        return False
    return True


def is_digest(digest) -> bool:
    try:
        digest_bytes(digest)
    except BadHoldRecords:
        return False
    return True


def _prefix(hold_id: str) -> bytes:
    return check_hold_id(hold_id) + b"\0"


def _read_sum(store: Store, txn, hold_key: bytes) -> tuple[int, int]:
    data = txn.get(hold_key, db=store.db[SUMS])
    if data is None:
        return 0, 0
    return struct.unpack(">Q", data[:8])[0], int.from_bytes(data[8:], "big")


def is_live(store: Store, txn, hold_id: str) -> bool:
    """Whether hold `hold_id` has a live (not removed) entry in the replicated settings."""
    entry = txn.get(HOLD_PREFIX + hold_id.encode(), db=store.db["replicated"])
    return entry is not None and not json.loads(entry)["deleted"]


def is_removed(store: Store, txn, hold_id: str) -> bool:
    """Whether hold `hold_id` has a tombstone (a hold being placed has no entry yet)."""
    entry = txn.get(HOLD_PREFIX + hold_id.encode(), db=store.db["replicated"])
    return entry is not None and json.loads(entry)["deleted"]


def is_known(store: Store, txn, hold_id: str) -> bool:
    """Whether this node knows the id `hold_id`: an entry (a live hold or a tombstone) or
    records (of a placement cut short) under it."""
    hold_key = check_hold_id(hold_id)
    return (txn.get(HOLD_PREFIX + hold_key, db=store.db["replicated"]) is not None
            or txn.get(hold_key, db=store.db[SUMS]) is not None)


def bump_generation(store: Store, txn) -> None:
    """Holds changed: a retention deletion decided before must be checked again."""
    _increment(store, txn, GENERATION_KEY)


def count_supersede(store: Store, txn) -> None:
    """What a hold holds here left what an exchange of hold records sees (SUPERSEDES_KEY),
    in the write transaction `txn` that makes that change."""
    _increment(store, txn, SUPERSEDES_KEY)


def _increment(store: Store, txn, key: bytes) -> None:
    """Add one to the count under `key` in the replicated database (0 when never set)."""
    db = store.db["replicated"]
    txn.put(key, str(int(txn.get(key, db=db) or b"0") + 1).encode(), db=db)


def add_in(store: Store, txn, hold_id: str, digests: Iterable[str]) -> int:
    """Record `digests` (hex) for `hold_id` in the write transaction `txn`, with its count
    and fingerprint; returns how many were new. Raises BadHoldRecords (nothing written by
    the caller's transaction then, if it lets it end it)."""
    hold_key = check_hold_id(hold_id)
    prefix, db = hold_key + b"\0", store.db[RECORDS]
    count, total = _read_sum(store, txn, hold_key)
    added = 0
    for digest in digests:
        raw = digest_bytes(digest)
        if txn.put(prefix + raw, b"", db=db, overwrite=False):
            added += 1
            total = (total + int.from_bytes(raw, "big")) % MODULUS
    if added:
        txn.put(hold_key, struct.pack(">Q", count + added) + total.to_bytes(32, "big"),
                db=store.db[SUMS])
        bump_generation(store, txn)
    return added


def add(store: Store, hold_id: str, digests: Iterable[str], live_only: bool = True) -> int:
    """Record `digests` for `hold_id` in one durable transaction; with `live_only` (what a
    peer sends), only while the hold is live here: records of a removed or unknown hold are
    not taken (0). Returns how many were new. Raises BadHoldRecords, OutOfSpace."""
    with store.writing() as txn:
        if live_only and not is_live(store, txn, hold_id):
            return 0
        return add_in(store, txn, hold_id, digests)


def drop_in(store: Store, txn, hold_id: str) -> int:
    """Drop every record of `hold_id` in the write transaction `txn` (the hold is removed,
    or its records move: move_in); returns how many. Counted (count_supersede): a peer
    exchanging hold records with this node meanwhile may have walked past them."""
    hold_key = check_hold_id(hold_id)
    if txn.get(hold_key, db=store.db[SUMS]) is None:
        return 0
    prefix, dropped = hold_key + b"\0", 0
    with txn.cursor(db=store.db[RECORDS]) as cursor:
        if cursor.set_range(prefix):
            while cursor.key().startswith(prefix):
                dropped += 1
                if not cursor.delete():  # moves to the next; False at the end
                    break
    txn.delete(hold_key, db=store.db[SUMS])
    bump_generation(store, txn)
    count_supersede(store, txn)
    return dropped


def move_in(store: Store, txn, source: str, target: str) -> int:
    """Move every record of hold `source` to hold `target` in the write transaction `txn`
    (a hold that yields its id to another: services.policy.hold_identity); returns how
    many were new to `target`. All in one transaction, unlike CHUNK-sized writes: it is
    only done on an id clash, and the records must never be under neither id."""
    prefix = _prefix(source)
    with txn.cursor(db=store.db[RECORDS]) as cursor:
        found = [key[len(prefix):].hex() for key in _keys_from(cursor, prefix)]
    drop_in(store, txn, source)
    return add_in(store, txn, target, found)


def _keys_from(cursor, prefix: bytes) -> Iterator[bytes]:
    """The keys of `cursor`'s database that start with `prefix`, ascending."""
    if cursor.set_range(prefix):
        for key in cursor.iternext(values=False):
            if not key.startswith(prefix):
                return
            yield key


def summary(store: Store, hold_id: str, txn=None) -> Summary:
    """Count and fingerprint of what `hold_id` recorded (EMPTY when nothing)."""
    if txn is None:
        with store.env.begin() as txn:
            return summary(store, hold_id, txn)
    count, total = _read_sum(store, txn, check_hold_id(hold_id))
    return Summary(count, total.to_bytes(32, "big").hex())


def summaries(store: Store) -> dict[str, Summary]:
    """Hold id -> Summary of every live hold that recorded something: one entry per hold."""
    found = {}
    with store.env.begin() as txn, txn.cursor(db=store.db[SUMS]) as cursor:
        for key in cursor.iternext(values=False):
            hold_id = key.decode()
            if is_live(store, txn, hold_id):
                found[hold_id] = summary(store, hold_id, txn)
    return found


def contains(store: Store, hold_id: str, digest: str, txn=None) -> bool:
    """Whether `hold_id` recorded message `digest` (one lookup)."""
    if txn is None:
        with store.env.begin() as txn:
            return contains(store, hold_id, digest, txn)
    try:
        key = _prefix(hold_id) + digest_bytes(digest)
    except BadHoldRecords:
        return False
    return txn.get(key, db=store.db[RECORDS]) is not None


def recorded_among(store: Store, hold_ids: Iterable[str], digests: Iterable[str]) -> set[str]:
    """Those of `digests` that any of `hold_ids` recorded: one lookup per pair, on one
    read transaction."""
    digests, found = list(digests), set()
    with store.env.begin() as txn:
        for hold_id in hold_ids:
            found.update(digest for digest in digests
                         if digest not in found and contains(store, hold_id, digest, txn))
    return found


def page(store: Store, hold_id: str, after: str | None, limit: int) -> list[str]:
    """Up to `limit` digests `hold_id` recorded, ascending, after digest `after` (None:
    from the first). Raises BadHoldRecords."""
    prefix = _prefix(hold_id)
    start = prefix + (digest_bytes(after) + b"\0" if after is not None else b"")
    found = []
    with store.env.begin() as txn, txn.cursor(db=store.db[RECORDS]) as cursor:
        if cursor.set_range(start):
            for key in cursor.iternext(values=False):
                if not key.startswith(prefix) or len(found) >= limit:
                    break
                found.append(key[len(prefix):].hex())
    return found


def iterate(store: Store, hold_id: str, after: str | None = None, upto: str | None = None,
            chunk: int = CHUNK) -> Iterator[str]:
    """Every digest `hold_id` recorded, ascending, after `after` and up to `upto` (both
    hex, None: no bound), read `chunk` at a time, each chunk on its own read transaction
    (none is held open while the caller works)."""
    while True:
        found = page(store, hold_id, after, chunk)
        for digest in found:
            if upto is not None and digest > upto:
                return
            yield digest
        if len(found) < chunk:
            return
        after = found[-1]
