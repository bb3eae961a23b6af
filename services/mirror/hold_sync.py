"""Mirroring what litigation holds recorded (services.policy.hold_records), in requests of
bounded size whatever a hold recorded.

The hello reply carries, per live hold, the count and fingerprint of its records
(`hold_records` in services.mirror.server). For each hold live here whose count or
fingerprint differs, the client walks the peer's records in pages of at most PAGE digests,
ascending (POST /v1/hold-records/page {"hold", "after", "limit"} -> {"digests"}): it
records each page here, and sends the peer, in pages of at most PAGE (POST
/v1/hold-records/add {"hold", "digests"} -> {"taken"}), what it recorded itself in the
range the page covers (after the last digest before it, through the page's last; through
the end after the last page) that the page lacks. So one walk leaves both with the union,
and each request and reply stays under PAGE digests (some 300 KB of JSON). Both sides take
records only for a hold live there: a removed hold's records are never taken back.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Awaitable, Callable

from services.archive.store import Store
from services.policy import hold_records
from services.policy.hold_records import BadHoldRecords, Summary

PAGE = 4096  # digests per request or reply
MAX_PAGE = 10_000  # the most a server gives or takes in one request
MAX_BODY_BYTES = 2 * 1024 * 1024  # a request's body: MAX_PAGE digests as JSON are ~0.7 MB
PAGE_PATH, ADD_PATH = "/v1/hold-records/page", "/v1/hold-records/add"
# After an exchange, the client tells the server how many superseded queries it held
# (read after the server's settings were merged, plus "supersedes_since": those superseded
# since, without which the server does not settle) and echoes the server's hello
# "copies_through"; the server answers with its count of supersedes, read first (a 503
# when it cannot write its side carries it too): {"through", "superseded",
# "supersedes_since", "records_pending"} -> {"settled", "supersedes"}
# (services.policy.peer_copies).
SETTLED_PATH = "/v1/hold-records/settled"

Post = Callable[[str, dict], Awaitable[dict]]  # path, JSON document -> the JSON reply


@dataclass
class Exchanged:
    taken: int = 0  # records new here
    given: int = 0  # records new on the peer
    holds: int = 0  # holds whose records differed


def summaries_json(store: Store) -> dict[str, list]:
    """What the hello reply carries: hold id -> [count, fingerprint] of each live hold
    that recorded something."""
    return {hold_id: found.to_json() for hold_id, found in hold_records.summaries(store).items()}


def differing(store: Store, live_holds: set[str], theirs: dict) -> list[str]:
    """The holds live here whose records differ from `theirs` (summaries_json of the
    peer), by id. Raises BadHoldRecords for a malformed `theirs`."""
    if not isinstance(theirs, dict):
        raise BadHoldRecords("hold_records: expected an object of hold id -> [count, fingerprint]")
    mine = hold_records.summaries(store)
    return sorted(hold_id for hold_id in live_holds
                  if _summary(theirs.get(hold_id)) != mine.get(hold_id, hold_records.EMPTY))


def _summary(value) -> Summary:
    if value is None:
        return hold_records.EMPTY
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], int)
            and isinstance(value[1], str)):
        raise BadHoldRecords(f"hold_records: expected [count, fingerprint], got {value!r}")
    return Summary(value[0], value[1])


async def exchange(store: Store, post: Post, hold_ids: list[str]) -> Exchanged:
    """Leave this system and the peer (reached through `post`) with the union of what
    each of `hold_ids` recorded on either. Raises what `post` raises, BadHoldRecords for a
    malformed reply, OutOfSpace when this store cannot take the records."""
    done = Exchanged(holds=len(hold_ids))
    for hold_id in hold_ids:
        after = None
        while True:
            reply = await post(PAGE_PATH, {"hold": hold_id, "after": after, "limit": PAGE})
            page = _digests(reply, PAGE, after)
            if page:
                done.taken += await asyncio.to_thread(hold_records.add, store, hold_id, page)
            last = page[-1] if len(page) == PAGE else None  # None: the peer has no more
            done.given += await _give(store, post, hold_id, after, last, set(page))
            if last is None:
                break
            after = last
    return done


async def _give(store: Store, post: Post, hold_id: str, after: str | None,
                upto: str | None, theirs: set[str]) -> int:
    """Send the peer what `hold_id` recorded here after `after` through `upto` (None: no
    bound) that is not in `theirs`, PAGE at a time; returns how many it took."""
    given = 0
    while True:
        mine = await asyncio.to_thread(hold_records.page, store, hold_id, after, PAGE)
        within = [digest for digest in mine if upto is None or digest <= upto]
        missing = [digest for digest in within if digest not in theirs]
        if missing:
            given += int((await post(ADD_PATH, {"hold": hold_id, "digests": missing}))
                         .get("taken", 0))
        if len(within) < PAGE:
            return given
        after = within[-1]


def _digests(reply: dict, limit: int, after: str | None) -> list[str]:
    """The digests of a page the peer sent: at most `limit`, each a digest, in strictly
    ascending order after `after`, else BadHoldRecords (a page that repeats itself would
    keep exchange() walking forever)."""
    digests = reply.get("digests") if isinstance(reply, dict) else None
    if not isinstance(digests, list) or len(digests) > limit \
            or not all(hold_records.is_digest(digest) for digest in digests):
        raise BadHoldRecords(f"a page of hold records: expected at most {limit} digests")
    bounds = ([after] if after is not None else []) + digests
    if any(earlier >= later for earlier, later in zip(bounds, bounds[1:])):
        raise BadHoldRecords("a page of hold records: expected digests in ascending order, "
                             "after the page before")
    return digests


def read_page(store: Store, document: dict) -> dict:
    """The server's side of PAGE_PATH. Raises BadHoldRecords for a malformed request."""
    hold_id, after, limit = document.get("hold"), document.get("after"), document.get("limit")
    if not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise BadHoldRecords(f"limit: expected 1 to {MAX_PAGE} digests, got {limit!r}")
    if after is not None:
        hold_records.digest_bytes(after)
    return {"digests": hold_records.page(store, hold_id, after, limit)
            if _live(store, hold_id) else []}


def take_page(store: Store, document: dict) -> dict:
    """The server's side of ADD_PATH: records the digests while the hold is live here.
    Raises BadHoldRecords for a malformed request, OutOfSpace."""
    hold_id, digests = document.get("hold"), document.get("digests")
    if not isinstance(digests, list) or len(digests) > MAX_PAGE:
        raise BadHoldRecords(f"digests: expected a list of at most {MAX_PAGE}")
    hold_records.check_hold_id(hold_id)
    for digest in digests:
        hold_records.digest_bytes(digest)
    return {"taken": hold_records.add(store, hold_id, digests)}


def _live(store: Store, hold_id) -> bool:
    hold_records.check_hold_id(hold_id)
    with store.env.begin() as txn:
        return hold_records.is_live(store, txn, hold_id)
