"""Copies from a mirror peer that retention keeps until what the peer's holds hold of them
is recorded here.

When the saved search a hold is built on changes (here, or on a peer and merged), each
node holds the old query by itself until its own retention run has recorded what it
matches there (Replicated._supersede, holds.settle_superseded); the peer's records then
reach this node at the next exchange of hold records (services.mirror.hold_sync). This
node's old query, once settled here, no longer holds a copy the peer sends after that,
which the peer may still hold by its old query, unsettled there (the peer merged the
edit late, or its run has not come yet); nor does anything here hold what the peer holds
by an old query this node never held. So a copy from a peer is kept here until an
exchange of hold records with that peer has ended that began after the copy was stored
and for which the peer said both: in its hello reply (services.mirror.server), read after
this node's settings were merged there, that it held no superseded query; and, in its
answer to the settled word after the exchange's pages, the same durable count
(Replicated.superseding, hold_records.SUPERSEDES_KEY) as in that reply. The count grows
with every change there that takes what a hold holds out of what the exchange sees: a
query superseded (a third node's edit merged into the peer meanwhile, even one settled
again with records the exchange had walked past), a superseded query dropped or renamed,
a hold's records dropped or moved to another id (a clashing hold merged). What is checked
is only that: no such change on the peer in that window, and its records exchanged. Not
covered: a hold, or an edit, that neither this node nor the exchange has seen yet (placed
on the peer, or merged into it from a third node, and not merged here); like any edit not
merged here yet, retention here cannot know of it. Mail that arrives here from anywhere
else is held by this node's own queries and records, as before; a peer's copy of a message
stored here before (archived here too, or another peer's copy) is such a copy all the
same, numbered when it arrives (Store: meta "copies").

Per peer node, the node-local setting SETTING_PREFIX + node id is the last number
(Store.last_number) up to which its copies are so covered. Only such an exchange moves
it (settled_through), never back: one this node's client begins (the peer's hello reply
says how many it holds and its count; its answer to the settled word, after the exchange,
the count again, read before the peer's own writes, so a 503 from a full peer carries it
too), or one the peer's client begins (it says so once the exchange has ended: how many
it held, read after this node's settings were merged there, plus "supersedes_since", its
count's growth since, without which, as from the release before, nothing moves; and it
echoes the number this node's hello reply gave it: services.mirror.server; a one-way
peer, which this node does not copy to, has no other). The marker and the count are
durable: a restart of either node in the window keeps the copies. A peer that is away,
or keeps a superseded query for long (its index behind, an old query it cannot parse),
keeps its copies here as long; so does a peer no longer mirrored with (`archiver mirror
leave`, or taken out of archiver.yaml): nothing tells this node any more what that peer's
holds hold.
"""
from __future__ import annotations

from typing import Iterable

from services.archive.store import UNCHANGED, NotFound, Store

SETTING_PREFIX = "mirror.copies_settled."
COPY_KIND = "mirror"  # a copy's source is "mirror:<the peer's node id>"


def settled_through(store: Store, node: str, number: int) -> None:
    """The copies from peer `node` numbered up to `number` are covered by what the peer's
    holds recorded, now here too (durably; a lower `number` than before changes nothing).
    Raises OutOfSpace."""
    store.update_setting(SETTING_PREFIX + node, lambda before: (
        number if number > (before or 0) else UNCHANGED, None))


def awaiting(store: Store, digests: Iterable[str]) -> set[str]:
    """Those of `digests` that are copies from a peer not covered yet (numbered after its
    settled_through; a peer never settled: all of its copies). A digest no longer stored
    is not among them."""
    return set().union(*awaiting_by_peer(store, digests).values())


def awaiting_by_peer(store: Store, digests: Iterable[str]) -> dict[str, set[str]]:
    """awaiting's digests by the peer node id they wait for (one that waits for two peers
    under each)."""
    settled = store.settings_with_prefix(SETTING_PREFIX)
    found: dict[str, set[str]] = {}
    for digest in digests:
        try:
            meta = store.meta(digest)
        except NotFound:
            continue
        for node, number in copies_of(meta).items():
            if number > settled.get(SETTING_PREFIX + node, 0):
                found.setdefault(node, set()).add(digest)
    return found


def copy_peers(store: Store, digests: Iterable[str], txn=None) -> dict[str, frozenset[str]]:
    """Digest -> the peers it is a copy from (copies_of), of those of `digests` stored; read
    in `txn` if given. A check by awaiting that read this before holds while this is
    unchanged: a copy of a message stored here can come after it (Store: meta "copies")."""
    found = {}
    for digest in digests:
        meta = store.meta_in(txn, digest) if txn is not None else _meta_or_none(store, digest)
        if meta is not None:
            found[digest] = frozenset(copies_of(meta))
    return found


def _meta_or_none(store: Store, digest: str) -> dict | None:
    try:
        return store.meta(digest)
    except NotFound:
        return None


def copies_of(meta: dict) -> dict[str, int]:
    """Peer node id -> the number its copy of a message (`meta`) was given here: the
    message's own number when it was first stored as that peer's copy, else that of the
    first copy from the peer of the message stored here before (Store: meta "copies")."""
    kind, _, node = meta.get("source", "").partition(":")
    found = dict(meta.get("copies") or {})
    if kind == COPY_KIND:
        found[node] = meta["number"]
    return found
