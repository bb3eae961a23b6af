"""Replicated settings: saved searches, retention policies and litigation holds.

Each entry carries a hybrid logical clock stamp (wall milliseconds, counter, node id);
merging keeps, per key, the entry with the larger stamp (last writer wins), so peers that
exchange their entries in any order and any number of times agree. A deletion is an entry
too (a tombstone), so it wins over older writes instead of being undone by them.

Litigation holds ("hold:ID") keep what they recorded outside their entry, in
services.policy.hold_records: an entry is only the hold's own fields. A hold entry that
still carries the old "held" list of digests (written by an older release, here or on a
peer) has that list moved into the records: when a peer's entry is merged, when one is
written, and for a whole store once, the first time Replicated opens it (migrate_holds;
while a full store keeps it from that, holds.recorded_among still reads the lists).
A hold's tombstone drops its records in the transaction that writes it, and names the hold
it removes; two different holds under one id (an id clash) are both kept, the later
created keeping the id (services.policy.hold_identity).
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable

from firmware.errors import ArchiverError

from services.archive.space import OutOfSpace
from services.archive.store import Store
from services.policy import hold_identity, hold_records

log = logging.getLogger(__name__)
CLOCK_KEY = b"\x00clock"  # the last stamp this node issued, kept in the same database
HOLD_PREFIX, OLD_HELD = "hold:", "held"  # an older release kept a hold's records in "held"
SAVED_PREFIX = "saved:"  # services.policy.saved_searches.PREFIX (which imports this module)
RECORDS_PENDING_KEY = b"\x00hold-records-pending"  # see Replicated._await_records
MIGRATED_KEY = b"\x00holds-records"  # set once no hold entry carries "held" any more
_migrated: "weakref.WeakSet[Store]" = weakref.WeakSet()  # stores checked by this process


class KeyTaken(ArchiverError):
    """A new entry's key already has an entry (live or a tombstone)."""


@dataclass(frozen=True, order=True)
class Stamp:
    wall_ms: int
    counter: int
    node: str

    def to_json(self) -> list:
        return [self.wall_ms, self.counter, self.node]

    @classmethod
    def from_json(cls, value: list) -> "Stamp":
        return cls(int(value[0]), int(value[1]), str(value[2]))


def _next_stamp(last: Stamp | None, node: str) -> Stamp:
    now = int(time.time() * 1000)
    if last is None or now > last.wall_ms:
        return Stamp(now, 0, node)
    return Stamp(last.wall_ms, last.counter + 1, node)


class Replicated:
    def __init__(self, store: Store):
        self.store, self.db = store, store.db["replicated"]
        if store not in _migrated:
            try:
                self.migrate_holds()
                _migrated.add(store)
            except OutOfSpace as full:  # tried again by the next Replicated of the store
                log.warning("holds' recorded lists not migrated yet: %s", full)

    def get(self, key: str, default: Any = None) -> Any:
        entry = self._entry(key)
        return default if entry is None or entry["deleted"] else entry["value"]

    def items(self, prefix: str) -> dict[str, Any]:
        """Live values whose key starts with `prefix`, by key."""
        found = {}
        with self.store.env.begin() as txn, txn.cursor(db=self.db) as cursor:
            if cursor.set_range(prefix.encode()):
                for key, data in cursor:
                    if not key.startswith(prefix.encode()):
                        break
                    if key.startswith(b"\x00"):
                        continue  # the clock and the holds generation: bookkeeping
                    entry = json.loads(data)
                    if not entry["deleted"]:
                        found[key.decode()] = entry["value"]
        return found

    def put(self, key: str, value: Any, also: Callable | None = None, new: bool = False
            ) -> None:
        """Write `value` under `key`; `also(txn)`, if given, writes more in the same
        transaction (a hold's last records with its entry). With `new`, raises KeyTaken
        (nothing written) if `key` has an entry, a tombstone included."""
        self._write(key, value, deleted=False, also=also, new=new)

    def delete(self, key: str) -> None:
        """Write a tombstone under `key`; a hold's names the hold it removes
        (hold_identity.tombstone_value)."""
        self._write(key, None, deleted=True)

    def _write(self, key: str, value: Any, deleted: bool, also: Callable | None = None,
               new: bool = False) -> None:
        with self.store.writing() as txn:
            ours = self._entry(key, txn)
            if new and ours is not None:
                raise KeyTaken(f"{key!r} is taken")
            if deleted and key.startswith(HOLD_PREFIX):
                value = hold_identity.tombstone_value(ours)
            last = txn.get(CLOCK_KEY, db=self.db)
            stamp = _next_stamp(Stamp.from_json(json.loads(last)) if last else None,
                                self.store.node_id)
            txn.put(CLOCK_KEY, json.dumps(stamp.to_json()).encode(), db=self.db)
            entry, held = _split_held(key, {"value": value, "deleted": deleted,
                                            "stamp": stamp.to_json()})
            txn.put(key.encode(), json.dumps(entry).encode(), db=self.db)
            self._bump_generation(txn, key)
            self._keep_records(txn, key, entry, held)
            if also is not None:
                also(txn)

    def _bump_generation(self, txn, key: str) -> None:
        """Holds carry a generation so a deletion can tell it was overtaken (retention)."""
        if key.startswith(HOLD_PREFIX):
            hold_records.bump_generation(self.store, txn)

    def _keep_records(self, txn, key: str, winner: dict, held: list[str]) -> None:
        """A hold's records after its entry `winner` was written or kept: dropped with a
        tombstone, else `held` (an older release's list) added."""
        hold_id = key[len(HOLD_PREFIX):]
        if not key.startswith(HOLD_PREFIX) or not hold_records.is_hold_id(hold_id):
            return  # no records can name such a hold
        if winner["deleted"]:
            hold_records.drop_in(self.store, txn, hold_id)
        elif held:
            hold_records.add_in(self.store, txn, hold_id, held)

    def _await_records(self, txn, key: str, entry: dict) -> None:
        """A peer's hold, or saved search (which a hold may use), is merged here before the
        records that go with it (services.mirror.hold_sync pages them after the hello): a
        hold's records of what its search matched before it was narrowed, or at placement.
        Until an exchange of records has ended after this, retention must not read holds
        from searches alone (services.policy.retention), or it could delete held mail."""
        if not entry["deleted"] and key.startswith((HOLD_PREFIX, SAVED_PREFIX)):
            txn.put(RECORDS_PENDING_KEY, str(self.records_pending(txn) + 1).encode(),
                    db=self.db)

    def records_pending(self, txn=None) -> int:
        """0 when no merged hold or saved search awaits its records; else a count that
        grows with each such merge (for records_settled)."""
        return self._counter(RECORDS_PENDING_KEY, txn)

    def records_settled(self, pending: int) -> bool:
        """An exchange of hold records that began when records_pending() was `pending` has
        ended: clear the mark unless another merge came meanwhile. True when cleared."""
        with self.store.writing() as txn:
            if self.records_pending(txn) != pending:
                return False
            txn.delete(RECORDS_PENDING_KEY, db=self.db)
            return True

    def holds_generation(self, txn=None) -> int:
        return self._counter(hold_records.GENERATION_KEY, txn)

    def _counter(self, key: bytes, txn=None) -> int:
        """A bookkeeping count of this database (0 when never set), in `txn` or a read of
        its own."""
        if txn is None:
            with self.store.env.begin() as txn:
                return self._counter(key, txn)
        return int(txn.get(key, db=self.db) or b"0")

    def migrate_holds(self) -> int:
        """Move the "held" lists of hold entries written by an older release into
        services.policy.hold_records, each hold in one transaction with its entry (kept
        under its stamp: no change to replicate); once done, remembered in the store.
        Returns how many entries were migrated."""
        with self.store.env.begin() as txn:
            if txn.get(MIGRATED_KEY, db=self.db) is not None:
                return 0
            keys = []
            with txn.cursor(db=self.db) as cursor:
                if cursor.set_range(HOLD_PREFIX.encode()):
                    for key, data in cursor:
                        if not key.startswith(HOLD_PREFIX.encode()):
                            break
                        if b'"held"' in data:
                            keys.append(key)
        for key in keys:
            with self.store.writing() as txn:
                entry, held = _split_held(key.decode(), json.loads(txn.get(key, db=self.db)))
                txn.put(key, json.dumps(entry).encode(), db=self.db)
                self._keep_records(txn, key.decode(), entry, held)
        with self.store.writing() as txn:
            txn.put(MIGRATED_KEY, b"1", db=self.db)
        return len(keys)

    def _entry(self, key: str, txn=None) -> dict | None:
        """The entry under `key` ({"value", "deleted", "stamp"}; None: none), in `txn` or a
        read of its own."""
        if txn is None:
            with self.store.env.begin() as txn:
                return self._entry(key, txn)
        data = txn.get(key.encode(), db=self.db)
        return json.loads(data) if data else None

    # -- replication ---------------------------------------------------------------------

    def export(self) -> dict[str, dict]:
        """Every entry with its stamp, tombstones included, for a peer to merge. Holds'
        records are not in it (services.mirror.hold_sync exchanges them)."""
        with self.store.env.begin() as txn, txn.cursor(db=self.db) as cursor:
            return {key.decode(): json.loads(data) for key, data in cursor
                    if not key.startswith(b"\x00")}

    def merge(self, entries: dict[str, dict]) -> int:
        """Take every entry newer than ours; returns how many were taken. A hold entry
        with an older release's "held" list adds that list to the hold's records while the
        hold is live here, whichever entry wins. A hold entry that is a different hold
        from ours under its id (hold_identity.clash) is kept too, under another id."""
        taken = 0
        with self.store.writing() as txn:
            for key, entry in entries.items():
                entry, held = _split_held(key, entry)
                taken += self._take(txn, self._slot(txn, key, entry), entry, held)
            self._observe(txn, [_stamp(entry) for entry in entries.values()])
        return taken

    def _take(self, txn, key: str, entry: dict, held: list[str]) -> bool:
        """Merge `entry` (`held`: its older release's list) under `key` in `txn`: it
        replaces ours if its stamp is larger. Whether it did."""
        winner = self._entry(key, txn)
        taken = winner is None or _stamp(entry) > _stamp(winner)
        if taken:
            txn.put(key.encode(), json.dumps(entry).encode(), db=self.db)
            self._bump_generation(txn, key)
            self._await_records(txn, key, entry)
            winner = entry
        if winner["deleted"] or held:
            self._keep_records(txn, key, winner, held)
        return taken

    def _slot(self, txn, key: str, entry: dict) -> str:
        """The key a peer's `entry` for `key` is merged under: `key`, unless ours there is
        a different hold (hold_identity.clash). Then the later created keeps `key`: ours
        is moved away (_move) or `entry` goes to its moved key (and so on, if that too
        holds a different hold)."""
        ours = self._entry(key, txn) if key.startswith(HOLD_PREFIX) else None
        if ours is None or not hold_identity.clash(ours, entry):
            return key
        if hold_identity.keeps_id(ours, entry):
            return self._slot(txn, hold_identity.moved_key(key, entry), entry)
        self._move(txn, key, ours)
        return key

    def _move(self, txn, key: str, ours: dict) -> None:
        """Move our hold entry `ours` under `key`, and its records, to its moved key
        (merged there as a peer's entry, keeping its stamp), leaving `key` free."""
        target = self._slot(txn, hold_identity.moved_key(key, ours), ours)
        log.warning("two holds share the id %s: the one created earlier is now %s",
                    key[len(HOLD_PREFIX):], target[len(HOLD_PREFIX):])
        txn.delete(key.encode(), db=self.db)
        if hold_records.is_hold_id(key[len(HOLD_PREFIX):]):
            hold_records.move_in(self.store, txn, key[len(HOLD_PREFIX):],
                                 target[len(HOLD_PREFIX):])
        self._take(txn, target, ours, [])

    def _observe(self, txn, stamps: list[Stamp]) -> None:
        """A hybrid clock never runs behind what it has seen: a change made here after a
        merge must win over the merged entries, whatever the wall clocks say."""
        last = txn.get(CLOCK_KEY, db=self.db)
        seen = max(stamps + ([Stamp.from_json(json.loads(last))] if last else []), default=None)
        if seen is not None:
            txn.put(CLOCK_KEY, json.dumps(seen.to_json()).encode(), db=self.db)

    def digest(self, prefix: str = "") -> str:
        """A fingerprint of the live values under `prefix` (to tell whether peers agree),
        holds' records (their counts and fingerprints) included where holds are."""
        values = self.items(prefix)
        if HOLD_PREFIX.startswith(prefix) or prefix.startswith(HOLD_PREFIX):
            values["\x00hold-records"] = {
                hold_id: found.to_json() for hold_id, found
                in hold_records.summaries(self.store).items()
                if (HOLD_PREFIX + hold_id).startswith(prefix)}
        canonical = json.dumps(values, sort_keys=True).encode()
        return hashlib.sha256(canonical).hexdigest()[:16]


def _stamp(entry: dict) -> Stamp:
    return Stamp.from_json(entry["stamp"])


def _split_held(key: str, entry: dict) -> tuple[dict, list[str]]:
    """A hold entry without an older release's "held" list, and that list ([] if none)."""
    value = entry.get("value")
    if not key.startswith(HOLD_PREFIX) or not isinstance(value, dict) or OLD_HELD not in value:
        return entry, []
    held = value[OLD_HELD] if isinstance(value[OLD_HELD], list) else []
    return ({**entry, "value": {k: v for k, v in value.items() if k != OLD_HELD}},
            [digest for digest in held if hold_records.is_digest(digest)])
