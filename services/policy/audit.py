"""The audit log: who did what, when. Searches, views, exports, deletions, policy and hold
changes and logins are appended to a hash chain in the store, so that an edited, removed
or reordered entry is detected by `archiver audit verify`.

Entry n holds the hash of entry n-1; the head (count and last hash) is kept beside the
chain, so cutting entries off its end is detected too.
"""
from __future__ import annotations

import getpass
import hashlib
import json
import os
import struct
import time
from dataclasses import dataclass

from firmware.errors import ArchiverError

from services.archive.store import Store

HEAD_KEY = b"\x00head"
GENESIS = "0" * 64


@dataclass(frozen=True)
class Actor:
    name: str
    role: str  # admin, auditor or user


class PermissionDenied(ArchiverError):
    exit_code = 4


def cli_actor() -> Actor:
    """Who runs the CLI: root (the appliance console) and the service user are admins."""
    name = os.environ.get("SUDO_USER") or getpass.getuser()
    role = "admin" if os.geteuid() == 0 or getpass.getuser() == "archiver" else "auditor"
    return Actor(name, role)


def require_admin(actor: Actor, doing: str) -> None:
    """Raise PermissionDenied (exit 4) unless `actor` is an admin; `doing` says what was
    asked ("changes retention"), as the web API's admin-only endpoints refuse it."""
    if actor.role != "admin":
        raise PermissionDenied(f"only an admin {doing} ({actor.name} is {actor.role})")


def record(store: Store, actor: Actor, action: str, **details) -> None:
    """Append one entry, durably, chained to the one before."""
    with store.writing() as txn:
        record_in(store, txn, actor, action, **details)


def record_in(store: Store, txn, actor: Actor, action: str, **details) -> None:
    """record() inside the caller's write transaction `txn`, so that the entry is durable
    exactly when the change it records is (a deletion and its entry: both or neither)."""
    db = store.db["audit"]
    count, previous = _head(txn, db)
    entry = {"seq": count + 1, "time": time.time(), "who": actor.name, "role": actor.role,
             "action": action, "details": details, "previous": previous}
    entry["hash"] = entry_hash(entry)
    txn.put(struct.pack(">Q", count + 1), json.dumps(entry).encode(), db=db)
    txn.put(HEAD_KEY, json.dumps([count + 1, entry["hash"]]).encode(), db=db)


def entries(store: Store, limit: int | None = None) -> list[dict]:
    """The audit entries, oldest first; with `limit` (1 or more), only the newest `limit`,
    read from the log's end: `audit show` costs the entries it shows, not the whole log
    (every search adds one)."""
    with store.env.begin() as txn, txn.cursor(db=store.db["audit"]) as cursor:
        if not limit:
            return [json.loads(value) for key, value in cursor if key != HEAD_KEY]
        newest = []
        if cursor.last():
            for key, value in cursor.iterprev():
                if key != HEAD_KEY:
                    newest.append(json.loads(value))
                    if len(newest) == limit:
                        break
    return newest[::-1]


def entries_after(store: Store, count: int, limit: int) -> list[dict]:
    """At most `limit` entries after entry `count`, oldest first."""
    found = []
    with store.env.begin() as txn, txn.cursor(db=store.db["audit"]) as cursor:
        if cursor.set_range(struct.pack(">Q", count + 1)):
            for key, value in cursor:
                if len(found) == limit:
                    break
                if key != HEAD_KEY:  # entries stored past it are read too: sent, and seen
                    found.append(json.loads(value))
    return found


def count(store: Store) -> int:
    """How many entries the log holds (not its head's count: a cut log holds fewer)."""
    with store.env.begin() as txn:
        stored = txn.stat(store.db["audit"])["entries"]
        return stored - (txn.get(HEAD_KEY, db=store.db["audit"]) is not None)


def head(store: Store) -> tuple[int, str]:
    """(count, hash of the last entry) as the log's head records them."""
    with store.env.begin() as txn:
        return _head(txn, store.db["audit"])


def verify(store: Store) -> list[str]:
    """Every break in the chain, in words; empty when the log is intact."""
    problems, previous, expected_seq = [], GENESIS, 1
    with store.env.begin() as txn, txn.cursor(db=store.db["audit"]) as cursor:
        count, head_hash = _head(txn, store.db["audit"])
        stored = [(key, json.loads(value)) for key, value in cursor if key != HEAD_KEY]
    for key, entry in stored:
        if not isinstance(entry, dict):
            problems.append(f"an entry after entry {expected_seq - 1} is no entry")
            continue
        seq = entry.get("seq")
        if type(seq) is not int or not 0 < seq < 2 ** 64 or key != struct.pack(">Q", seq):
            # The firmware stores entry n under n (8 bytes, big-endian); one stored
            # elsewhere is read in another order by whoever reads after an entry (the
            # anchor a mirror peer holds), so that the two may see different logs.
            problems.append(f"entry {seq!r} is not stored where entry {seq!r} belongs")
            seq = seq if type(seq) is int else None
        if seq != expected_seq:
            problems.append(f"entry {expected_seq} is missing (found {seq} next)")
        if entry.get("previous") != previous:
            problems.append(f"entry {seq} does not follow the entry before it")
        if entry_hash(entry) != entry.get("hash"):
            problems.append(f"entry {seq} was changed after it was written")
        previous, expected_seq = entry.get("hash"), (seq or expected_seq) + 1
    if expected_seq - 1 != count or previous != head_hash:
        problems.append(f"the log should end at entry {count}; entries were removed from its end"
                        if expected_seq - 1 < count else "the log does not end where its head says")
    return problems


def _head(txn, db) -> tuple[int, str]:
    data = txn.get(HEAD_KEY, db=db)
    return tuple(json.loads(data)) if data else (0, GENESIS)


def entry_hash(entry: dict) -> str:
    """The SHA-256 (hex) an entry's "hash" must be: of the entry without it, as sorted JSON."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
