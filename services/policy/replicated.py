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

A peer's entry is checked before it is merged (refusal()): its key, stamp and, for a hold,
a saved search or a retention setting, the shape of its value (services.policy.hold_values,
services.policy.retention_values). One of another
shape, or a hold that a chain of clashes would move more than hold_identity.MOVES times,
is refused alone, with a warning in the log, and ours is kept: no entry a peer sends fails
the merge of the others, or replaces a hold by what no reader can take for one.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

from firmware.errors import ArchiverError

from services.archive.space import OutOfSpace
from services.archive.store import Store, _log_end_in as store_log_end
from services.policy import hold_identity, hold_records, hold_values, retention_values

log = logging.getLogger(__name__)
CLOCK_KEY = b"\x00clock"  # the last stamp this node issued, kept in the same database
HOLD_PREFIX, OLD_HELD = "hold:", "held"  # an older release kept a hold's records in "held"
SAVED_PREFIX = "saved:"  # services.policy.saved_searches.PREFIX (which imports this module)
RECORDS_PENDING_KEY = b"\x00hold-records-pending"  # see Replicated._await_records
# The count of RECORDS_PENDING_KEY an exchange's end settled: that count is never given
# again (a settled word echoed late, or twice, cannot end a later merge's wait)
RECORDS_SETTLED_KEY = b"\x00hold-records-settled"
# Whose records are awaited: {peer node id ("" when not known): the count of its last merge
# awaiting them}; an exchange with one peer ends only that peer's wait (records_settled)
RECORDS_WAITING_KEY = b"\x00hold-records-waiting"
MIGRATED_KEY = b"\x00holds-records"  # set once no hold entry carries "held" any more
# Node-local: queries a held saved search had before it was changed (here or by a peer),
# still held until this node recorded what they matched (see Replicated._supersede).
SUPERSEDED_KEY = b"\x00held-superseded-queries"
# Node-local: how many times what a hold holds here left what an exchange of hold records
# sees: an old query kept in SUPERSEDED_KEY (_supersede), superseded queries dropped or
# renamed (_prune_superseded, _rename_superseded), a hold's records dropped or moved (_move;
# hold_records.drop_in). It only grows and is durable, so a mirror peer that read it before
# and after an exchange of hold records knows whether any of that happened in between,
# even a query settled again or a restart in between (services.policy.peer_copies).
SUPERSEDES_KEY = hold_records.SUPERSEDES_KEY
_migrated: "weakref.WeakSet[Store]" = weakref.WeakSet()  # stores checked by this process


DELETE = object()  # write_all: a tombstone under that key


class Superseding(NamedTuple):
    """What Replicated.superseding() reads in one transaction."""
    held_now: int         # superseded queries held now (len(superseded()))
    supersede_count: int  # SUPERSEDES_KEY: times a hold's holding left an exchange's view


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

    def items(self, prefix: str, txn=None) -> dict[str, Any]:
        """Live values whose key starts with `prefix`, by key (in `txn`, or a read of its
        own)."""
        if txn is None:
            with self.store.env.begin() as txn:
                return self.items(prefix, txn)
        found = {}
        with txn.cursor(db=self.db) as cursor:
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

    def delete(self, key: str, guard: Callable | None = None, also: Callable | None = None
               ) -> None:
        """Write a tombstone under `key`; a hold's names the hold it removes
        (hold_identity.tombstone_value). `guard(txn, entry)`, if given, is called first in
        the same transaction with our entry under `key` (None: none): what it raises ends
        the transaction, nothing written (a release of a hold that changed meanwhile).
        `also(txn)`, as put's (the change's audit entry)."""
        self._write(key, None, deleted=True, also=also, guard=guard)

    def write_all(self, changes: dict[str, Any], also: Callable | None = None) -> None:
        """Write each of `changes` (key -> value; DELETE for a tombstone) and `also(txn)`
        in one transaction: several settings changed at once, and their audit entry, are
        durable together or not at all."""
        with self.store.writing() as txn:
            for key, value in changes.items():
                self._write_in(txn, key, None if value is DELETE else value,
                               deleted=value is DELETE)
            if also is not None:
                also(txn)

    def _write(self, key: str, value: Any, deleted: bool, also: Callable | None = None,
               new: bool = False, guard: Callable | None = None) -> None:
        with self.store.writing() as txn:
            self._write_in(txn, key, value, deleted, new, guard)
            if also is not None:
                also(txn)

    def _write_in(self, txn, key: str, value: Any, deleted: bool, new: bool = False,
                  guard: Callable | None = None) -> None:
        ours = self._entry(key, txn)
        if guard is not None:
            guard(txn, ours)
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
        self._supersede(txn, key, ours, entry)
        txn.put(key.encode(), json.dumps(entry).encode(), db=self.db)
        self._bump_generation(txn, key)
        self._keep_records(txn, key, entry, held)
        if deleted and key.startswith(HOLD_PREFIX):
            self._prune_superseded(txn)

    def _bump_generation(self, txn, key: str) -> None:
        """Holds carry a generation so a deletion can tell it was overtaken (retention).
        A saved search moves it too, whatever is built on it: a hold reads its query, so
        an edit (here or a peer's, merged) widening a held search must send a deletion
        decided on the old query back to be checked again. So does a retention setting
        (enabled, a policy's days): a deletion decided before is checked again under it."""
        if key.startswith((HOLD_PREFIX, SAVED_PREFIX, retention_values.PREFIX)):
            hold_records.bump_generation(self.store, txn)

    def _supersede(self, txn, key: str, ours: dict | None, entry: dict) -> None:
        """Saved search `key` goes from our entry `ours` to `entry` (an edit here, a peer's
        merged, or a deletion): while holds live here are built on it, its old query is
        kept in SUPERSEDED_KEY with their ids, in the same transaction. Recording what the
        old query matched before the change (holds.keep_current_matches) sees only what
        is indexed, and a peer's edit records only what the peer indexed: mail stored here
        but not indexed yet would be let go. A superseded query holds like the hold's own
        (retention) until this node, its index caught up, has recorded what it matches
        (holds.settle_superseded)."""
        if not key.startswith(SAVED_PREFIX) or ours is None or ours["deleted"] \
                or not _is_saved_search(ours.get("value")):
            return
        old = ours["value"]["query"]
        if not entry["deleted"] and _is_saved_search(entry.get("value")) \
                and entry["value"]["query"] == old:
            return
        name = key[len(SAVED_PREFIX):]
        holding = sorted(hold_key[len(HOLD_PREFIX):] for hold_key, value
                         in self.items(HOLD_PREFIX, txn).items()
                         if isinstance(value, dict) and value.get("saved") == name)
        if not holding:
            return
        at = store_log_end(txn, self.store.db["arrival"])
        pending = self.superseded(txn)
        for kept in pending:
            if kept["saved"] == name and kept["query"] == old:  # the same old query again
                kept["holds"] = sorted(set(kept["holds"]).union(holding))
                kept["at"] = max(kept.get("at", at), at)
                break
        else:
            pending.append({"saved": name, "query": old, "holds": holding, "at": at})
        self._put_superseded(txn, pending)
        # Counted whether new or merged into a kept one: either holds more than before.
        hold_records.count_supersede(self.store, txn)

    def _put_superseded(self, txn, pending: list[dict]) -> None:
        if pending:
            txn.put(SUPERSEDED_KEY, json.dumps(pending).encode(), db=self.db)
        else:
            txn.delete(SUPERSEDED_KEY, db=self.db)

    def _prune_superseded(self, txn) -> None:
        """Superseded queries hold only for holds still live: a hold's tombstone takes its
        id out of them, and an entry whose holds are all gone goes (in `txn`)."""
        pending = self.superseded(txn)
        if not pending:
            return
        live = {key[len(HOLD_PREFIX):] for key in self.items(HOLD_PREFIX, txn)}
        kept = [{**entry, "holds": [hold_id for hold_id in entry["holds"] if hold_id in live]}
                for entry in pending]
        kept = [entry for entry in kept if entry["holds"]]
        if kept != pending:
            self._put_superseded(txn, kept)
            hold_records.count_supersede(self.store, txn)

    def superseded(self, txn=None) -> list[dict]:
        """The superseded queries still held: [{"saved", "query", "holds": [hold ids],
        "at": the arrival log's end when it was superseded}] ("at" may lack in an entry
        written by an earlier version: then it settles once the index has caught up)."""
        if txn is None:
            with self.store.env.begin() as txn:
                return self.superseded(txn)
        data = txn.get(SUPERSEDED_KEY, db=self.db)
        return json.loads(data) if data else []

    def superseding(self, txn=None) -> Superseding:
        """How many superseded queries are held now and how many times a hold's holding
        here left what an exchange of hold records sees (SUPERSEDES_KEY), read together
        (in `txn`, or a read of its own)."""
        if txn is None:
            with self.store.env.begin() as txn:
                return self.superseding(txn)
        return Superseding(len(self.superseded(txn)), self._counter(SUPERSEDES_KEY, txn))

    def settle_superseded(self, txn, done: dict) -> None:
        """Superseded query `done` (as superseded() gives it) was recorded by its holds:
        no longer held by query (in the write transaction `txn`, with its last records)."""
        pending = self.superseded(txn)
        if done in pending:
            pending.remove(done)
            self._put_superseded(txn, pending)
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

    def _await_records(self, txn, key: str, entry: dict, node: str) -> None:
        """A peer's hold, or saved search (which a hold may use), is merged here before the
        records that go with it (services.mirror.hold_sync pages them after the hello): a
        hold's records of what its search matched before it was narrowed, or at placement.
        Until an exchange of records has ended after this, retention must not read holds
        from searches alone (services.policy.retention), or it could delete held mail.
        The records are `node`'s (the peer merged from): only an exchange with it ends the
        wait; another peer's need not carry them."""
        if not entry["deleted"] and key.startswith((HOLD_PREFIX, SAVED_PREFIX)):
            count = self._counter(RECORDS_PENDING_KEY, txn) + 1
            txn.put(RECORDS_PENDING_KEY, str(count).encode(), db=self.db)
            self._put_waiting(txn, {**self._waiting(txn), node: count})

    def _waiting(self, txn) -> dict[str, int]:
        """RECORDS_WAITING_KEY; a wait an earlier release left (a count above the settled
        one, no such key) is nobody's in particular ("")."""
        data = txn.get(RECORDS_WAITING_KEY, db=self.db)
        if data is not None:
            return json.loads(data)
        count = self._counter(RECORDS_PENDING_KEY, txn)
        return {"": count} if count > self._counter(RECORDS_SETTLED_KEY, txn) else {}

    def _put_waiting(self, txn, waiting: dict[str, int]) -> None:
        txn.put(RECORDS_WAITING_KEY, json.dumps(waiting).encode(), db=self.db)
        if not waiting:  # what an earlier release reads: nothing pending
            txn.put(RECORDS_SETTLED_KEY, txn.get(RECORDS_PENDING_KEY, db=self.db) or b"0",
                    db=self.db)

    def records_pending(self, txn=None) -> int:
        """0 when no merged hold or saved search awaits its records; else a count that
        grows with each such merge (for records_settled), never given twice."""
        if txn is None:
            with self.store.env.begin() as txn:
                return self.records_pending(txn)
        return self._counter(RECORDS_PENDING_KEY, txn) if self._waiting(txn) else 0

    def records_settled(self, pending: int, node: str | None = None) -> bool:
        """An exchange of hold records with peer `node` that began when records_pending()
        was `pending` has ended: the wait for that peer's records merged by then ends
        (and one nobody's in particular, from an earlier release). Without `node`: every
        wait ends unless another merge came meanwhile. True when nothing waits any more.
        The count goes on (it is not reset), so an old `pending` echoed again never
        matches a later merge's."""
        if pending == 0:
            return True  # nothing was waiting
        with self.store.writing() as txn:
            waiting = self._waiting(txn)
            if node is None:
                if self.records_pending(txn) != pending:
                    return False
                waiting = {}
            else:
                waiting = {who: count for who, count in waiting.items()
                           if not (who in (node, "") and count <= pending)}
            self._put_waiting(txn, waiting)
            return not waiting

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

    def merge(self, entries: dict[str, dict], node: str = "") -> int:
        """Take every entry newer than ours; returns how many were taken. A hold entry
        with an older release's "held" list adds that list to the hold's records while the
        hold is live here, whichever entry wins. A hold entry that is a different hold
        from ours under its id (hold_identity.clash) is kept too, under another id. An
        entry refusal() refuses, or that would move holds more than hold_identity.MOVES
        times, is left out (logged; ours kept); the others are merged. `node`: the peer
        they came from, whose records a merged hold or saved search waits for."""
        taken, seen, refused = 0, [], []
        with self.store.writing() as txn:
            for key, entry in entries.items():
                try:
                    taken += self._merge_entry(txn, key, entry, node)
                except _Refused as why:
                    refused.append((key, why))
                    continue
                seen.append(_stamp(entry))
            self._observe(txn, seen)
        _log_refused(refused)
        return taken

    def _merge_entry(self, txn, key: str, entry: dict, node: str = "") -> bool:
        """Merge one peer's `entry` under `key` in `txn`: whether it was taken. Raises
        _Refused, before anything is written, for an entry refusal() refuses or one that
        cannot be placed (_placement)."""
        problem = self.refusal(key, entry)
        if problem is not None:
            raise _Refused(problem)
        entry, held = _split_held(key, entry)
        slot, moves = self._placement(txn, key, entry)
        for source, target, ours in moves:
            self._move(txn, source, target, ours)
        return self._take(txn, slot, entry, held, node)

    def refusal(self, key, entry) -> str | None:
        """Why a peer's `entry` for `key` cannot be merged, in words; None when it can: a
        key LMDB takes (UTF-8, at most its key size; not bookkeeping), an entry {"value",
        "deleted": bool, "stamp": [wall ms, counter, node]}, and for a hold (an id
        hold_records takes), a saved search or a retention setting a value of its shape
        (hold_values, retention_values)."""
        problem = _key_problem(key, self.store.env.max_key_size()) or _entry_problem(entry)
        if problem is not None or not key.startswith(
                (HOLD_PREFIX, SAVED_PREFIX, retention_values.PREFIX)):
            return problem
        if key.startswith(retention_values.PREFIX):
            return None if entry["deleted"] else retention_values.problem(key, entry["value"])
        if key.startswith(SAVED_PREFIX):
            return None if entry["deleted"] or _is_saved_search(entry["value"]) else \
                'expected a saved search {"query": text}'
        if not hold_records.is_hold_id(key[len(HOLD_PREFIX):]):
            return f"not a hold id (1 to {hold_records.HOLD_ID_LIMIT} characters, no NUL)"
        if entry["deleted"]:
            return hold_values.tombstone_problem(entry.get("value"))
        return hold_values.problem(_split_held(key, entry)[0]["value"])

    def _take(self, txn, key: str, entry: dict, held: list[str], node: str = "") -> bool:
        """Merge `entry` (`held`: its older release's list) under `key` in `txn`: it
        replaces ours if its stamp is larger. Whether it did."""
        winner = self._entry(key, txn)
        taken = winner is None or _stamp(entry) > _stamp(winner)
        if taken:
            self._supersede(txn, key, winner, entry)
            txn.put(key.encode(), json.dumps(entry).encode(), db=self.db)
            self._bump_generation(txn, key)
            self._await_records(txn, key, entry, node)
            if entry["deleted"] and key.startswith(HOLD_PREFIX):
                self._prune_superseded(txn)
            winner = entry
        if winner["deleted"] or held:
            self._keep_records(txn, key, winner, held)
        return taken

    def _placement(self, txn, key: str, entry: dict
                   ) -> tuple[str, list[tuple[str, str, dict]]]:
        """Where a peer's `entry` for `key` is merged, and which of our holds move first to
        make room: (its key, [(from key, to key, our entry)] in the order to move them).
        Its key is `key`, unless ours there is a different hold (hold_identity.clash):
        then the later created keeps it, and the other goes on to its moved key, and so
        on while that too holds a different hold. Only reads; raises _Refused when that
        takes more than hold_identity.MOVES steps or comes back to a key (a chain of
        entries made to clash: ours stay where they are)."""
        if not key.startswith(HOLD_PREFIX):
            return key, []
        steps: list[tuple[str | None, str, dict]] = []  # (from, to, entry) as settled
        source, at, moving, visited = None, key, entry, set()
        while True:
            if len(visited) > hold_identity.MOVES or at in visited:
                raise _Refused(f"its id clashes with a chain of more than "
                               f"{hold_identity.MOVES} other holds")
            visited.add(at)
            ours = self._entry(at, txn)
            if ours is None or not hold_identity.clash(ours, moving):
                break
            if hold_identity.keeps_id(ours, moving):
                at = hold_identity.moved_key(at, moving)
                continue
            steps.append((source, at, moving))  # `moving` takes `at`; ours moves on
            source, at, moving = at, hold_identity.moved_key(at, ours), ours
        steps.append((source, at, moving))
        return steps[0][1], [step for step in reversed(steps[1:])]

    def _move(self, txn, source: str, target: str, ours: dict) -> None:
        """Move our hold entry `ours` under `source`, and its records, to `target` (merged
        there as a peer's entry, keeping its stamp), and the superseded queries it holds,
        leaving `source` free."""
        log.warning("two holds share the id %s: the one created earlier is now %s",
                    source[len(HOLD_PREFIX):], target[len(HOLD_PREFIX):])
        txn.delete(source.encode(), db=self.db)
        # Counted even with no records to move: a peer exchanging hold records with this
        # node meanwhile walks the id `source`, not `target` (SUPERSEDES_KEY).
        hold_records.count_supersede(self.store, txn)
        if hold_records.is_hold_id(source[len(HOLD_PREFIX):]):
            hold_records.move_in(self.store, txn, source[len(HOLD_PREFIX):],
                                 target[len(HOLD_PREFIX):])
        self._rename_superseded(txn, source[len(HOLD_PREFIX):], target[len(HOLD_PREFIX):])
        self._take(txn, target, ours, [])

    def _rename_superseded(self, txn, source_id: str, target_id: str) -> None:
        """Our hold `source_id` moved to `target_id`: the superseded queries it holds by
        name it there (the peer's hold taking `source_id` held none of them)."""
        pending = self.superseded(txn)
        renamed = [{**entry, "holds": sorted({target_id if hold_id == source_id else hold_id
                                              for hold_id in entry["holds"]})}
                   for entry in pending]
        if renamed != pending:
            self._put_superseded(txn, renamed)
            hold_records.count_supersede(self.store, txn)

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


REFUSALS_LOGGED = 3  # refused entries named in a merge's one warning (a peer re-sends them)


def _log_refused(refused: list[tuple[str, "_Refused"]]) -> None:
    """One warning for a merge's refused entries (how many, and why for the first few):
    a peer re-sends them at every hello, so a line each would grow the log without bound."""
    if refused:
        log.warning("%d of a peer's settings are refused, ours kept: %s%s", len(refused),
                    "; ".join(f"{hold_records.quoted(key)}: {why}"
                              for key, why in refused[:REFUSALS_LOGGED]),
                    "; ..." if len(refused) > REFUSALS_LOGGED else "")


class _Refused(Exception):
    """A peer's entry that is not merged (why, in words)."""


def _stamp(entry: dict) -> Stamp:
    return Stamp.from_json(entry["stamp"])


def _key_problem(key, limit: int) -> str | None:
    """Why `key` cannot be a replicated setting's key in LMDB (`limit`: its key size)."""
    if not isinstance(key, str) or not key or key.startswith("\x00"):
        return "expected a setting's name"
    try:
        size = len(key.encode())
    except UnicodeEncodeError:
        return "the name is not UTF-8 text"
    return None if size <= limit else f"the name is longer than {limit} bytes"


def _entry_problem(entry) -> str | None:
    """Why `entry` is not {"value", "deleted": true|false, "stamp": [wall ms, counter,
    node]} (two non-negative integers and a text; "value" may be left out of a tombstone),
    in words; None when it is."""
    if not isinstance(entry, dict) \
            or ("value" not in entry and entry.get("deleted") is not True):
        return 'expected {"value", "deleted", "stamp"}'
    if not isinstance(entry.get("deleted"), bool):
        return "deleted: expected true or false"
    stamp = entry.get("stamp")
    if not (isinstance(stamp, list) and len(stamp) == 3
            and all(type(part) is int and part >= 0 for part in stamp[:2])
            and isinstance(stamp[2], str)):
        return "stamp: expected [wall milliseconds, counter, node]"
    return None


def _is_saved_search(value) -> bool:
    return isinstance(value, dict) and isinstance(value.get("query"), str)


def _split_held(key: str, entry: dict) -> tuple[dict, list[str]]:
    """A hold entry without an older release's "held" list, and that list ([] if none)."""
    value = entry.get("value")
    if not key.startswith(HOLD_PREFIX) or not isinstance(value, dict) or OLD_HELD not in value:
        return entry, []
    held = value[OLD_HELD] if isinstance(value[OLD_HELD], list) else []
    return ({**entry, "value": {k: v for k, v in value.items() if k != OLD_HELD}},
            [digest for digest in held if hold_records.is_digest(digest)])
