"""Receives copies from peers: checks each request's identity against the compatibility
rule, stores every message of a batch durably, and only then answers 200.

Only a paired peer (its certificate pinned, services.mirror.trust) may say hello or send a
batch; anyone else may only pair (services.mirror.pairing). A peer is the node id its
certificate was pinned under: what its hello or headers claim does not change that.

Copies are stored with source "mirror:<peer node>" and their original origin, so they are
indexed here but never copied on (no echo, nothing twice with three or more peers), and
with the origin's live arrival, where their retention starts as it does on the origin.
The peer's reading of a copy (services.archive.readings) is kept with it, in the same
transaction, when the copy is new here and the reading of this firmware's version: the
indexer builds the copy's document from it, as a reindex does. It is not decoded here
(that is the sandboxed extraction worker's job, which reads the message itself when the
reading is damaged), and the copy is acknowledged whether or not it was kept.
While intake here must wait (a disk low, the store full, the index behind) a batch gets 503
with Retry-After and nothing of it is stored; the peer keeps it queued. Batches are read
and stored BATCHES_AT_ONCE at a time, whoever sends them: each is held whole in memory (up
to the largest message + 32 MiB, and its messages decoded beside it), so N peers, or one
peer's retries, must not take N times that. A batch that waits BATCH_WAIT_SECONDS for its
turn gets a 503 too (its body read and dropped, never held), and is sent again later.
The hello reply carries the count and fingerprint of what each hold recorded; a peer whose
differ walks and adds to them in bounded pages (services.mirror.hold_sync). It says how many
superseded queries this node still holds by (read after the peer's settings are merged),
and how many times a query was ever superseded here, which the answer to the peer's
settled word says again: once none held and none superseded between the two, the peer's
retention may let go of this node's copies that the exchange of records covers
(services.policy.peer_copies). It carries the peer's audit-log anchor here
too; the peer sends its entries after it (POST /v1/audit: services.policy.audit_anchor).
"""
from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web

from firmware.compat import may_mirror
from firmware.models import load_models

from services.archive import readings
from services.mirror import hold_sync
from services.mirror.pairing import PairingServer
from services.mirror.protocol import AUDIT_PATH, Hello, ProtocolError, decode_batch
from services.mirror.trust import proven_node_id
from services.policy import audit_anchor, peer_copies
from services.policy.hold_records import BadHoldRecords
from services.policy.replicated import Replicated
from services.archive.store import Envelope, OutOfSpace, Store

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 30  # what a peer is told to wait while intake here must wait
# Batches held in memory at once. One: the store takes one write transaction at a time
# anyway (LMDB), so a second batch would only overlap its upload with the first's commit,
# at the cost of another largest message + 32 MiB (132 MiB and its decoded copy on a 450
# of 1 GiB). A pair has one sender, which sends a batch only once the last is answered.
BATCHES_AT_ONCE = 1
# How long a batch waits for its turn before it gets 503, well within the client's read
# timeout (archiver.yaml mirror.read_timeout_seconds), so that it is told "later"
# rather than cut off; and the Retry-After it is given then.
BATCH_WAIT_SECONDS = 10.0
BUSY_RETRY_AFTER_SECONDS = 5


NOT_PAIRED = ("this system has not paired with yours (or no longer trusts the certificate "
              "it paired with): pair again")


class MirrorServer:
    def __init__(self, store: Store, hello: Hello, copies_back_to, max_message_bytes: int,
                 pairing: PairingServer, pins, peer_greeted=lambda: None,
                 intake_waits=lambda: None):
        self.store, self.hello = store, hello
        self.pairing, self.pins = pairing, pins  # pins(): node id -> pinned certificate
        self.intake_waits = intake_waits  # why intake must wait now (IntakeGate.reason), or None
        self.peer_greeted = peer_greeted  # a peer is up: our clients may retry at once
        self.replicated = Replicated(store)  # saved searches, policies and holds
        self.copies_back_to = copies_back_to  # node id -> bool: do we copy to that node?
        self.max_batch_bytes = max_message_bytes + 32 * 1024 * 1024
        self._json_pages = asyncio.Lock()  # hold-record and audit pages: read one by one
        self._batches = asyncio.Semaphore(BATCHES_AT_ONCE)  # batches held in memory
        # node id -> the largest "copies_through" a hello reply gave it (since this start,
        # and since its last hello whose merge failed: _note_copies_through),
        # and the records_pending() counts its hello replies gave it, read after its
        # settings were merged (the newest few)
        self._copies_through: dict[str, int] = {}
        self._records_pending: dict[str, list[int]] = {}

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_batch_bytes)
        app.router.add_post("/v1/hello", self.handle_hello)
        app.router.add_post("/v1/messages", self.handle_messages)
        app.router.add_post(hold_sync.PAGE_PATH, self.handle_hold_records_page)
        app.router.add_post(hold_sync.ADD_PATH, self.handle_hold_records_add)
        app.router.add_post(hold_sync.SETTLED_PATH, self.handle_hold_records_settled)
        app.router.add_post(AUDIT_PATH, self.handle_audit)
        self.pairing.add_routes(app)
        return app

    def _peer_node(self, request: web.Request) -> str | None:
        """The node id the peer's pinned certificate proves, or None (not paired)."""
        return proven_node_id(request.transport.get_extra_info("ssl_object"), self.pins())

    def _refusal(self, peer: Hello) -> web.Response | None:
        # The rule is symmetric; it is asked from the peer's side, so the reason reads right
        # in the peer's status ("this system" is the peer there).
        verdict = may_mirror(peer.identity(), self.hello.identity(), load_models())
        if verdict.allowed:
            return None
        return web.json_response({**self.hello.to_json(), "refused": True,
                                  "reason": verdict.reason,
                                  "settings_digest": self.replicated.digest()}, status=409)

    async def handle_hello(self, request: web.Request) -> web.Response:
        node = self._peer_node(request)
        if node is None:
            return web.json_response({"reason": NOT_PAIRED, "pair": True}, status=403)
        try:
            document = await request.json()
            peer = Hello.from_json(document)
            request_settings = dict(document.get("settings") or {})
        except (ProtocolError, ValueError, TypeError, AttributeError) as exc:
            return web.json_response({"reason": str(exc)}, status=400)
        except RecursionError:  # json: a document nested too deeply
            return web.json_response({"reason": "the hello is nested too deeply"}, status=400)
        if peer.node != node:
            log.warning("peer %s says it is %s in its hello; it is taken as %s", node,
                        peer.node, node)
        refusal = self._refusal(peer)
        if refusal is not None:
            log.info("refused mirroring with %s: %s", node, refusal.text)
            return refusal
        # Only a peer this one mirrors with may cut our clients' backoff short: the rule is
        # symmetric, so a refused peer would refuse them too, and two refused peers each
        # answering the other's hello with one of their own said hello every 50 ms.
        self.peer_greeted()
        # The copies stored here so far reached the peer before it reads, after this reply,
        # how many superseded queries it holds (handle_hold_records_settled).
        through = await asyncio.to_thread(self.store.last_number)
        try:
            taken = await asyncio.to_thread(self.replicated.merge, request_settings, node)
        except OutOfSpace as full:  # taken at a later hello, once there is room
            log.warning("replicated settings from %s not taken now: %s", node, full)
            taken = None
        self._note_copies_through(node, through, merged=taken is not None)
        if taken:
            log.info("took %d replicated settings from %s", taken, node)
        # Read before the records' summaries, so that "none" means whatever the old queries
        # held is in the records the peer is then given; None (unknown) while the peer's
        # edits are not merged here (services.policy.peer_copies). The count of supersedes
        # too: the peer compares it with the one its settled word is answered with, since
        # a peer's merge during the exchange can supersede a query here.
        held_now, supersede_count = (None, None) if taken is None else \
            await asyncio.to_thread(self.replicated.superseding)
        pending = await asyncio.to_thread(self.replicated.records_pending)
        self._records_pending[node] = [*self._records_pending.get(node, [])[-7:], pending]
        return web.json_response({**self.hello.to_json(),
                                  "copies_back": self.copies_back_to(node),
                                  "settings": self.replicated.export(),
                                  "settings_digest": self.replicated.digest(),
                                  "holds_superseded": held_now,
                                  "supersedes": supersede_count,
                                  "copies_through": through,
                                  "records_pending": pending,
                                  "hold_records": hold_sync.summaries_json(self.store),
                                  "audit_anchor": audit_anchor.hello_json(self.store, node)})

    def _note_copies_through(self, node: str, through: int, merged: bool) -> None:
        """A settled word settles only copies a hello whose merge was taken gave: a hold
        the peer placed, not merged here, takes no records here (hold_sync), so its
        exchange covers nothing of it. A failed merge forgets the earlier number too: the
        settled word names its hello only by the number, which may be the same."""
        if merged:
            self._copies_through[node] = max(through, self._copies_through.get(node, 0))
        else:
            self._copies_through.pop(node, None)

    def _not_welcome(self, request: web.Request) -> web.Response | None:
        """Why a request after the hello is not taken (not paired, a bad hello in its
        headers, refused), or None."""
        if self._peer_node(request) is None:  # never the X-Archiver-Node header's claim
            return web.json_response({"reason": NOT_PAIRED, "pair": True}, status=403)
        try:
            peer = Hello.from_headers(request.headers)
        except ProtocolError as exc:
            return web.json_response({"reason": str(exc)}, status=400)
        return self._refusal(peer)

    async def handle_hold_records_page(self, request: web.Request) -> web.Response:
        return await self._hold_records(request, hold_sync.read_page)

    async def handle_hold_records_add(self, request: web.Request) -> web.Response:
        return await self._hold_records(request, hold_sync.take_page)

    async def _hold_records(self, request: web.Request, handle) -> web.Response:
        """A page of hold records read or taken (services.mirror.hold_sync)."""
        return await self._json_request(request, hold_sync.MAX_BODY_BYTES,
                                        "a page of hold records", (BadHoldRecords,),
                                        lambda node, document: handle(self.store, document))

    async def handle_hold_records_settled(self, request: web.Request) -> web.Response:
        """The peer's exchange of hold records begun by its hello has ended: {"through":
        the hello reply's "copies_through", "records_pending": its "records_pending",
        "superseded": how many superseded queries the peer held, read after it merged
        this node's settings, plus those superseded there since, "supersedes_since": those
        since (saying that "superseded" covers the exchange to its end)}. None: its copies
        stored here through that number are covered by the records here (peer_copies), as
        when this node's own client hears it (a one-way peer has none); and what the
        hello's merge made retention here wait for (records_pending) has come. Answers
        {"settled": whether that moved, "supersedes": Replicated.superseding's count}; a
        503 when this node cannot write its side (its store full) carries the count too."""
        return await self._json_request(request, 1024, "a settled exchange", (BadHoldRecords,),
                                        self._take_settled)

    def _take_settled(self, node: str, document: dict) -> dict | web.Response:
        through, superseded = document.get("through"), document.get("superseded")
        since = document.get("supersedes_since")
        if type(through) is not int or type(superseded) is not int or through < 0 \
                or superseded < 0:
            raise BadHoldRecords("expected {\"through\", \"superseded\"}: whole numbers")
        # Read first, after the peer's exchange ended: the peer's own settling needs it
        # unchanged since this node's hello reply (services.mirror.client), and gets it
        # even if the writes below fail.
        supersede_count = self.replicated.superseding().supersede_count
        # Without "supersedes_since" (the release before) "superseded" was read once at the
        # peer's hello, blind to supersedes during the exchange: not settled by it.
        # "superseded" includes "supersedes_since": one that says more is malformed.
        settled = type(since) is int and 0 <= since <= superseded and superseded == 0 \
            and through <= self._copies_through.get(node, -1)
        try:
            if settled:
                peer_copies.settled_through(self.store, node, through)
            # An exchange begun after the peer's hello was merged here has ended: what the
            # merged holds and saved searches waited for is here
            # (Replicated._await_records), unless another merge came since (records_settled
            # checks); the count is the one this exchange's hello reply gave (two sessions
            # of the peer at once each end their own wait only).
            pending = document.get("records_pending")
            if type(pending) is int and pending in self._records_pending.get(node, []):
                self.replicated.records_settled(pending, node)
        except OutOfSpace as full:  # this node's marker does not move; the peer's may
            log.warning("the settled word of %s not kept now: %s", node, full)
            return _retry_later(full.brief, answer={"settled": False,
                                                    "supersedes": supersede_count})
        return {"settled": settled, "supersedes": supersede_count}

    async def handle_audit(self, request: web.Request) -> web.Response:
        """The peer's audit head and entries after its anchor here (audit_anchor.take);
        answers the anchor after them."""
        return await self._json_request(request, audit_anchor.MAX_BODY_BYTES,
                                        "a page of audit entries", (audit_anchor.BadEntries,),
                                        self._take_audit_entries)

    def _take_audit_entries(self, node: str, document: dict) -> dict:
        found = audit_anchor.take(self.store, node, document.get("head"),
                                  document.get("entries"))
        if found["broken"]:
            log.warning("the audit log of mirror peer %s is broken: %s", node, found["broken"])
        return found

    async def _json_request(self, request: web.Request, limit: int, what: str, errors,
                            answer) -> web.Response:
        """A JSON object from a paired peer, of at most `limit` bytes, answered with
        `answer(node, document)` (run in a thread); `errors` it raises, and malformed JSON,
        are a 400, a full store a 503. Who asks is checked before the body is read: a
        stranger must not make this server buffer what it sends. Pages are read and parsed
        one at a time, whoever sends (a body of empty objects parses to some 250 times its
        size); one that waits BATCH_WAIT_SECONDS for its turn is told to send it later."""
        refused = self._not_welcome(request)
        if refused is not None:
            return refused
        try:
            await asyncio.wait_for(self._json_pages.acquire(), BATCH_WAIT_SECONDS)
        except asyncio.TimeoutError:
            await _drain(request, limit)
            return _retry_later("busy with other pages from mirror peers",
                                BUSY_RETRY_AFTER_SECONDS)
        try:
            return await self._answer_json(request, limit, what, errors, answer)
        finally:
            self._json_pages.release()

    async def _answer_json(self, request: web.Request, limit: int, what: str, errors,
                           answer) -> web.Response:
        """_json_request's reading and answering, its turn taken (self._json_pages)."""
        body = await _body_within(request, limit)
        if body is None:
            return web.json_response({"reason": f"{what} is at most {limit} bytes"},
                                     status=413)
        try:
            document = await asyncio.to_thread(json.loads, body)
            if not isinstance(document, dict):
                raise ValueError("expected a JSON object")
            found = await asyncio.to_thread(answer, self._peer_node(request), document)
            return found if isinstance(found, web.Response) else web.json_response(found)
        except (ValueError, RecursionError, *errors) as exc:  # json's: ValueErrors
            return web.json_response({"reason": str(exc)[:300]}, status=400)
        except OutOfSpace as full:
            return _retry_later(full.brief)

    async def handle_messages(self, request: web.Request) -> web.Response:
        refused = self._not_welcome(request)
        if refused is not None:
            return refused
        sender_node = self._peer_node(request)
        try:
            await asyncio.wait_for(self._batches.acquire(), BATCH_WAIT_SECONDS)
        except asyncio.TimeoutError:
            # the peer is still sending it: read to its end, none of it held
            await _drain(request, self.max_batch_bytes)
            return _retry_later("busy storing other batches from mirror peers",
                                BUSY_RETRY_AFTER_SECONDS)
        try:
            return await self._take_batch(request, sender_node)
        finally:
            self._batches.release()

    async def _take_batch(self, request: web.Request, sender_node: str) -> web.Response:
        """A batch read whole and stored durably (its turn taken: self._batches)."""
        body = await request.read()  # read even when refused: the peer is still sending it
        waits = self.intake_waits()
        if waits:
            return _retry_later(waits)
        try:
            stored = await asyncio.to_thread(self._store_batch, body, sender_node)
        except ProtocolError as exc:
            return web.json_response({"reason": str(exc)}, status=400)
        except OutOfSpace as full:
            return _retry_later(full.brief)
        return web.json_response({"stored": stored})

    def _store_batch(self, body: bytes, sender_node: str) -> int:
        messages = list(decode_batch(body))  # all checked before anything is stored
        items = [(m.raw, Envelope(m.sender, m.recipients), f"mirror:{sender_node}", m.origin,
                  m.from_line_date, m.origin_received) for m in messages]
        kept = {m.digest: m.reading for m in messages
                if m.reading is not None and readings.is_current(m.reading)}
        self.store.put_many(items, kept)
        return len(items)


def _retry_later(reason: str, seconds: int = RETRY_AFTER_SECONDS,
                 answer: dict | None = None) -> web.Response:
    """503 with Retry-After (RFC 9110 15.6.4, 10.2.3) of `seconds`: nothing of the batch was
    stored; the peer keeps it queued (services.mirror.client.PeerWaits). `answer`: what
    the peer may still act on (the settled word's)."""
    return web.json_response({**(answer or {}), "reason": reason, "retry_after": seconds},
                             status=503, headers={"Retry-After": str(seconds)})


async def _drain(request: web.Request, limit: int) -> None:
    """Read the request's body to its end, a chunk at a time, keeping none of it; at most
    `limit` bytes (a longer one is cut off with the connection, as aiohttp does)."""
    read = 0
    while read <= limit and (chunk := await request.content.readany()):
        read += len(chunk)


async def _body_within(request: web.Request, limit: int) -> bytes | None:
    """The request's body, or None once it is longer than `limit` bytes (the rest unread)."""
    if (request.content_length or 0) > limit:
        return None
    body = bytearray()
    while chunk := await request.content.read(limit + 1 - len(body)):
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
