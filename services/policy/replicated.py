"""Replicated settings: saved searches, retention policies and litigation holds.

Each entry carries a hybrid logical clock stamp (wall milliseconds, counter, node id);
merging keeps, per key, the entry with the larger stamp (last writer wins), so peers that
exchange their entries in any order and any number of times agree. A deletion is an entry
too (a tombstone), so it wins over older writes instead of being undone by them.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from services.archive.store import Store

CLOCK_KEY = b"\x00clock"  # the last stamp this node issued, kept in the same database


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

    def put(self, key: str, value: Any) -> None:
        self._write(key, value, deleted=False)

    def delete(self, key: str) -> None:
        self._write(key, None, deleted=True)

    def _write(self, key: str, value: Any, deleted: bool) -> None:
        with self.store.writing() as txn:
            last = txn.get(CLOCK_KEY, db=self.db)
            stamp = _next_stamp(Stamp.from_json(json.loads(last)) if last else None,
                                self.store.node_id)
            txn.put(CLOCK_KEY, json.dumps(stamp.to_json()).encode(), db=self.db)
            entry = {"value": value, "deleted": deleted, "stamp": stamp.to_json()}
            txn.put(key.encode(), json.dumps(entry).encode(), db=self.db)
            self._bump_generation(txn, key)

    def _bump_generation(self, txn, key: str) -> None:
        """Holds carry a generation so a deletion can tell it was overtaken (retention)."""
        if key.startswith("hold:"):
            generation = int(txn.get(b"\x00holds-generation", db=self.db) or b"0") + 1
            txn.put(b"\x00holds-generation", str(generation).encode(), db=self.db)

    def holds_generation(self, txn=None) -> int:
        if txn is None:
            with self.store.env.begin() as txn:
                return self.holds_generation(txn)
        return int(txn.get(b"\x00holds-generation", db=self.db) or b"0")

    def _entry(self, key: str) -> dict | None:
        with self.store.env.begin() as txn:
            data = txn.get(key.encode(), db=self.db)
        return json.loads(data) if data else None

    # -- replication ---------------------------------------------------------------------

    def export(self) -> dict[str, dict]:
        """Every entry with its stamp, tombstones included, for a peer to merge."""
        with self.store.env.begin() as txn, txn.cursor(db=self.db) as cursor:
            return {key.decode(): json.loads(data) for key, data in cursor
                    if not key.startswith(b"\x00")}

    def merge(self, entries: dict[str, dict]) -> int:
        """Take every entry newer than ours; returns how many were taken."""
        taken = 0
        with self.store.writing() as txn:
            for key, entry in entries.items():
                ours = txn.get(key.encode(), db=self.db)
                if ours is None or _stamp(entry) > _stamp(json.loads(ours)):
                    txn.put(key.encode(), json.dumps(entry).encode(), db=self.db)
                    self._bump_generation(txn, key)
                    taken += 1
            self._observe(txn, [_stamp(entry) for entry in entries.values()])
        return taken

    def _observe(self, txn, stamps: list[Stamp]) -> None:
        """A hybrid clock never runs behind what it has seen: a change made here after a
        merge must win over the merged entries, whatever the wall clocks say."""
        last = txn.get(CLOCK_KEY, db=self.db)
        seen = max(stamps + ([Stamp.from_json(json.loads(last))] if last else []), default=None)
        if seen is not None:
            txn.put(CLOCK_KEY, json.dumps(seen.to_json()).encode(), db=self.db)

    def digest(self, prefix: str = "") -> str:
        """A fingerprint of the live values under `prefix` (to tell whether peers agree)."""
        canonical = json.dumps(self.items(prefix), sort_keys=True).encode()
        return hashlib.sha256(canonical).hexdigest()[:16]


def _stamp(entry: dict) -> Stamp:
    return Stamp.from_json(entry["stamp"])
