"""Each mirror peer's audit log, anchored here, so that an auditor can trust a peer's
`audit verify`: whoever rewrites the whole of an appliance's log on its disk, every hash
recomputed, passes the chain check there, but not the anchor its peer holds.

The anchor of a peer is where its log was last seen to reach: (count, hash of entry
`count`). At each hello the peer learns its anchor here (the hello reply's `audit_anchor`)
and sends its head and the entries after it, at most PAGE at a time (POST /v1/audit
{"head": [count, hash], "entries": [...]}); they are taken only when they continue the
chain from the anchor, each hash recomputed, and the anchor moves to the last of them. A
head below the anchor (the log was cut), a head at it with another hash, or entries that do
not continue it (an entry at or before it was changed since) move nothing and mark the
anchor broken, for good: `archiver audit verify` here says so and exits 1, and only
`archiver audit accept-peer NODE` (an admin, on the record: after the peer's data disk was
replaced, say) anchors that peer afresh.

A page wholly before the anchor (entries all older than it: a request retried after a
timeout, or a second client's, that arrives after another moved the anchor past it) is
stale, not a cut log: it is checked against the hashes of the last RECENT entries anchored
(kept beside the anchor) and moves nothing when it matches them; one that differs from an
anchored entry breaks the anchor. An empty page whose head is behind the anchor is what a
cut log sends, and breaks it still.
"""
from __future__ import annotations

import json
import struct
import time

from firmware.errors import ArchiverError

from services.archive.store import Store
from services.policy import audit

PAGE = 1000  # entries per request
# A page's JSON is parsed whole before its length is checked, and JSON costs up to ~21
# times its bytes in Python ("{}," is 3 bytes, an empty dict 64): a paired peer's 32 MiB
# of empty objects took ~850 MB, most of a model 450. The longest entries the firmware
# writes are an export's selection (the web UI's 1 MiB body) and a query given to the CLI
# (at most 128 KiB): a 4 MiB body holds either, and costs at most ~90 MB.
PAGE_BYTES = 1024 * 1024  # and their JSON, past the first entry (an export's may be long)
MAX_BODY_BYTES = 4 * 1024 * 1024  # what the server reads of a request
SETTING = "audit.anchor."  # + peer node id: {"count", "hash", "at", "broken", "heard"}
# The hashes of the last RECENT entries anchored, + peer node id: the seq of the first (8
# bytes, big-endian), then each SHA-256, 32 bytes: what a stale page is checked against.
RECENT_SETTING = "audit.recent."
RECENT = 2 * PAGE
_SEQ = struct.Struct(">Q")
_HASH_BYTES = 32
GENESIS = {"count": 0, "hash": audit.GENESIS, "at": None, "broken": None, "heard": None}
# "heard": when the peer last sent its head (kept to the minute: a write per peer per
# minute, not per hello). A peer not heard from for STALE_SECONDS is named in verify's
# warnings: what it logged since is anchored nowhere here, whatever its own verify says
# (its mirror stopped or firewalled, or it came back under another node id).
HEARD_EVERY = 60
STALE_SECONDS = 3600


class BadEntries(ArchiverError):
    """A request that is no head and list of audit entries (a 400)."""


def anchor(store: Store, peer: str) -> dict:
    """Where `peer`'s log was last seen to reach here: {"count", "hash", "at" (epoch
    seconds or None), "broken" (why it no longer continues, or None)}."""
    return {**GENESIS, **store.setting(SETTING + peer, {})}


def anchors(store: Store) -> dict[str, dict]:
    """The anchor of every peer that sent entries, by node id."""
    return {name[len(SETTING):]: {**GENESIS, **value}
            for name, value in store.settings_with_prefix(SETTING).items()}


def verified(store: Store) -> dict:
    """The audit log here checked (audit.verify), and the logs of the mirror peers anchored
    here: {"entries": count, "intact": bool, "problems": [text], "warnings": [text],
    "peers": {node: anchor}}; a broken anchor is a problem too, a peer not heard from for
    STALE_SECONDS a warning (intact stays true: it may only be offline)."""
    problems = audit.verify(store)
    peers = anchors(store)
    problems += [f"mirror peer {node}: {found['broken']}"
                 for node, found in sorted(peers.items()) if found["broken"]]
    now, warnings = time.time(), []
    for node, found in sorted(peers.items()):
        last = found["heard"] or found["at"]
        if not found["broken"] and (last is None or now - last > STALE_SECONDS):
            since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(last)) if last \
                else "it was anchored"
            warnings.append(f"mirror peer {node} has not sent its audit log since {since}: "
                            "what it logged since is anchored nowhere here")
    return {"entries": audit.count(store), "intact": not problems, "problems": problems,
            "warnings": warnings,
            "peers": peers}


def hello_json(store: Store, peer: str) -> list:
    """What the hello reply to `peer` carries: [count, hash] of its anchor here."""
    found = anchor(store, peer)
    return [found["count"], found["hash"]]


def request_json(store: Store, count: int) -> dict:
    """The request (POST /v1/audit) that sends a peer this node's head and its entries after
    entry `count`, the anchor the peer holds: at most PAGE entries and PAGE_BYTES of their
    JSON (one entry at least)."""
    entries, size = [], 0
    for entry in audit.entries_after(store, count, PAGE):
        size += len(json.dumps(entry))
        if entries and size > PAGE_BYTES:
            break
        entries.append(entry)
    return {"head": list(audit.head(store)), "entries": entries}


def take(store: Store, peer: str, head, entries) -> dict:
    """Move `peer`'s anchor over `entries` (its entries after the anchor, oldest first) when
    they continue its chain and its `head` ([count, hash] of its last entry) is not behind
    the anchor; mark it broken when not. A stale page (wholly before the anchor: a request
    sent again, or another client's, after the anchor moved past it) that matches the
    entries anchored changes nothing; one that differs from them marks it broken. Returns
    the anchor after. Raises BadEntries for a head or page of the wrong shape, before
    anything changes."""
    if not (isinstance(head, list) and len(head) == 2 and type(head[0]) is int
            and isinstance(head[1], str)):
        raise BadEntries("head: expected [count, hash] of the last entry")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries) \
            or len(entries) > PAGE:
        raise BadEntries(f"entries: expected a list of at most {PAGE} audit entries")
    key = (SETTING + peer).encode()
    with store.writing() as txn:  # read and moved in one transaction: one move at a time
        stored = txn.get(key, db=store.db["settings"])
        found = {**GENESIS, **(json.loads(stored) if stored else {})}
        if found["broken"]:
            return found
        entries = _past_anchor(found, entries)
        recent_key = (RECENT_SETTING + peer).encode()
        recent = _recent_hashes(txn.get(recent_key, db=store.db["settings"]), found)
        if _is_stale(found, entries):
            problem = _disagreement(recent, head, entries)
            if not problem:
                return found  # taken already: a no-op
        else:
            problem = _behind(found, head) or _discontinuity(found, entries)
        now = time.time()
        if not problem and not entries:
            if stored is not None and not now - (found["heard"] or 0) < HEARD_EVERY:
                found["heard"] = now
                txn.put(key, json.dumps(found).encode(), db=store.db["settings"])
            return found
        found["heard"] = now
        if problem:
            found["broken"] = f"{problem} (seen {_now_text()})"
        else:
            found.update(count=entries[-1]["seq"], hash=entries[-1]["hash"], at=time.time())
            recent.update((entry["seq"], entry["hash"]) for entry in entries)
            txn.put(recent_key, _packed(recent), db=store.db["settings"])
        txn.put(key, json.dumps(found).encode(), db=store.db["settings"])
    return found


def accept(store: Store, peer: str, actor: audit.Actor) -> dict:
    """Forget `peer`'s anchor (broken or not), so that its log is anchored afresh from its
    next entries on, and record who did, in one transaction. Returns the anchor forgotten;
    raises ArchiverError when none was held."""
    was = store.setting(SETTING + peer)
    if was is None:
        raise ArchiverError(f"no audit log of a mirror peer {peer!r} is anchored here "
                            "(audit verify lists those that are)")
    with store.writing() as txn:
        txn.delete((SETTING + peer).encode(), db=store.db["settings"])
        txn.delete((RECENT_SETTING + peer).encode(), db=store.db["settings"])
        audit.record_in(store, txn, actor, "audit-accept-peer", node=peer,
                        anchored=was.get("count"), broken=was.get("broken"))
    return {**GENESIS, **was}


def renamed(store: Store, old: str, new: str, where: str) -> dict | None:
    """The mirror peer at `where` (an address in mirror.peers) was node `old` and now
    proves it is node `new`. The node id is only what the store on the peer's data disk
    says: a log rewritten there under a new node id would be anchored afresh, from
    nothing, while `old`'s anchor stayed intact and never moved again. So `old`'s anchor
    (when one is held) becomes `new`'s, broken: a new log, or the old one under another
    name, for an admin to accept (accept-peer `new`: its data disk was replaced). Returns
    `new`'s anchor then, or None when `old`'s log was not anchored here."""
    if old == new:
        return None
    with store.writing() as txn:
        settings = store.db["settings"]
        stored = txn.get((SETTING + old).encode(), db=settings)
        if stored is None:
            return None
        was = {**GENESIS, **json.loads(stored)}
        new_shown = new if len(new) <= 100 else new[:100] + "..."  # the peer's words
        found = {**was, "broken": (
            f"the mirror peer at {where}, whose log was anchored here as node {old} "
            f"(entry {was['count']}), now says it is node {new_shown}: a new log, or its log "
            f"rewritten under another name (seen {_now_text()}); if its data disk was "
            f"replaced, accept it: archiver audit accept-peer {new_shown}")}
        if len((SETTING + new).encode()) > store.env.max_key_size():  # it is anchored
            # nowhere here (its requests fail): the old anchor says so where it is
            txn.put((SETTING + old).encode(), json.dumps(found).encode(), db=settings)
            return found
        txn.put((SETTING + new).encode(), json.dumps(found).encode(), db=settings)
        txn.delete((SETTING + old).encode(), db=settings)
        txn.delete((RECENT_SETTING + old).encode(), db=settings)
    return found


def _behind(found: dict, head: list) -> str | None:
    """Why a peer's head says its log no longer reaches its anchor, or None."""
    count, last = head
    if count < found["count"]:
        return (f"its log ends at entry {count}, before entry {found['count']} anchored "
                "here: entries were removed")
    if count == found["count"] and last != found["hash"]:
        return f"its entry {count}, anchored here, was changed"
    return None


def _is_stale(found: dict, entries: list[dict]) -> bool:
    """Whether `entries` (past _past_anchor) are a page wholly before the anchor: some, each
    with a numeric seq, the last of them older than the anchored entry."""
    seqs = [entry.get("seq") for entry in entries]
    return bool(seqs) and all(type(seq) is int for seq in seqs) and seqs[-1] < found["count"]


def _disagreement(recent: dict[int, str], head: list, entries: list[dict]) -> str | None:
    """Why a stale page (_is_stale) is not a prefix of the log anchored here, or None:
    an entry or the head's entry differs from the one anchored under its seq (`recent`:
    {seq: hash} of the last RECENT entries anchored), an entry does not match its own
    hash, or the head is before the page's own entries. Entries older than `recent` reach
    cannot be compared; they move nothing either."""
    count, last = head
    if count < entries[-1]["seq"]:
        return (f"its log ends at entry {count}, before entry {entries[-1]['seq']} it sent: "
                "entries were removed")
    for entry in entries:
        seq = entry["seq"]
        if audit.entry_hash(entry) != entry.get("hash"):
            return f"its entry {seq} does not match its own hash"
        if seq in recent and recent[seq] != entry["hash"]:
            return f"its entry {seq}, anchored here, was changed"
    if count in recent and recent[count] != last:
        return f"its entry {count}, anchored here, was changed"
    return None


def _recent_hashes(stored: bytes | None, found: dict) -> dict[int, str]:
    """{seq: hash} of the last RECENT entries anchored (RECENT_SETTING's value), the
    anchored entry always among them; only it for an anchor kept before they were."""
    recent = {}
    if stored and len(stored) >= _SEQ.size and (len(stored) - _SEQ.size) % _HASH_BYTES == 0:
        first = _SEQ.unpack_from(stored)[0]
        for index in range(_SEQ.size, len(stored), _HASH_BYTES):
            recent[first + (index - _SEQ.size) // _HASH_BYTES] = \
                stored[index:index + _HASH_BYTES].hex()
    if recent.get(found["count"]) != found["hash"]:  # another anchor's (accepted afresh)
        recent = {}
    recent[found["count"]] = found["hash"]
    return recent


def _packed(recent: dict[int, str]) -> bytes:
    """RECENT_SETTING's value of `recent` ({seq: hash}, consecutive seqs): its last RECENT."""
    seqs = sorted(recent)[-RECENT:]
    return _SEQ.pack(seqs[0]) + b"".join(bytes.fromhex(recent[seq]) for seq in seqs)


def _past_anchor(found: dict, entries: list[dict]) -> list[dict]:
    """`entries` less those the anchor covers already, when they hold the anchored entry
    itself, unchanged: a page sent again (the peer named twice in mirror.peers, a client
    that timed out and said hello again before its first page was taken) is the same log,
    no rewrite. Otherwise `entries` as they came (_discontinuity says what is wrong)."""
    for position, entry in enumerate(entries):
        seq = entry.get("seq")
        if type(seq) is int and seq == found["count"]:
            same = entry.get("hash") == found["hash"] == audit.entry_hash(entry)
            return entries[position + 1:] if same else entries
    return entries


def _discontinuity(found: dict, entries: list[dict]) -> str | None:
    """Why `entries` do not continue the chain anchored at `found`, or None."""
    count, previous = found["count"], found["hash"]
    for entry in entries:
        seq = entry.get("seq")
        if type(seq) is not int or seq != count + 1 or entry.get("previous") != previous:
            shown = repr(seq)[:40]  # the peer's, as it came
            return (f"its log no longer continues from entry {found['count']} anchored here: "
                    f"entry {shown} follows another entry (rewritten or cut)")
        if audit.entry_hash(entry) != entry.get("hash"):
            return f"its entry {seq} does not match its own hash"
        count, previous = seq, entry["hash"]
    return None


def _now_text() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
