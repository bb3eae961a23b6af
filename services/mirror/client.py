"""Copies what this system archives to one peer: a cursor over the outbox log, batches
acknowledged only when durable on the peer, retried forever with capped backoff.

State per peer (services.mirror.state): connected, offline (unreachable, wrong secret, ...),
refused (another model or firmware; the reason in words) or waiting (the peer, or this
system, has no room to store now: a full disk). A refusal or a wait keeps the queue and is
retried like an outage, so copying resumes by itself once both run the same firmware, or
once there is room again.
A hello from any peer cuts the backoff short (retry_now): a peer that boots again, or comes
back with new firmware, is copied to at once rather than after up to mirror.retry_cap_seconds.

A peer whose certificate is not pinned here, or that does not know this system's, is paired
with first (services.mirror.pairing); if the secrets differ that fails, and status says so.
The peer's node id is the one its pinned certificate proves, not what its hello says.
Each hello exchanges the replicated settings, then what holds recorded where the peer's
count or fingerprint differs (services.mirror.hold_sync, in bounded pages); status keeps
the bytes of the last hello and how many records went each way. An exchange through which
the peer held no superseded query (none in its hello reply, and its count of supersedes
the same in its answer to the settled word) lets retention here go on to the peer's copies
stored before its hello (services.policy.peer_copies); and, the other way, this node tells
the peer how many superseded queries it held (read after the peer's settings were merged
here, plus those superseded since), so that the peer lets go of this node's copies there
(hold_sync.SETTLED_PATH).
"""
from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from dataclasses import dataclass
from typing import Callable

import aiohttp

from firmware.compat import may_mirror
from firmware.models import load_models

from services.archive import readings
from services.common.config import MirrorConfig
from services.mirror import hold_sync
from services.mirror.pairing import PairingFailed, pair
from services.mirror.protocol import AUDIT_PATH, Hello, MirroredMessage, encode_batch
from services.mirror.state import PeerStatus, cursor_name, load_status, save_status
from services.mirror.trust import (NodeIdentity, PeerCertificateResponse,
                                   describe_tls_failure, not_paired, pairing_context,
                                   presented_node_id)
from services.policy import audit_anchor, peer_copies
from services.policy.hold_records import BadHoldRecords
from services.policy.replicated import HOLD_PREFIX, Replicated, Superseding
from services.policy.retention_clock import live_arrival
from services.archive.store import NotFound, OutOfSpace, Store

log = logging.getLogger(__name__)
BATCH_MESSAGES = 200
BATCH_BYTES = 16 * 1024 * 1024  # raw bytes and readings; a batch ends past it
# A kept reading (services.archive.readings) is sent with its message when of this
# firmware's version and at most this big, so that the peer indexes the copy from it, as
# a reindex does (measured: about a third less extraction work on the bench corpus). The
# bound keeps a batch under what the peer takes (its largest message plus 32 MiB: a batch
# holds under BATCH_BYTES before its last message, that message, and its reading).
READING_BYTES = 8 * 1024 * 1024
# While nothing waits to be copied, the outbox is looked at again after IDLE_POLL_SECONDS,
# then twice as long each time up to IDLE_POLL_MOST_SECONDS: an idle appliance looks about
# once a second per peer (each look costs tens of ms of CPU on an emulated VM), and mail
# after a quiet spell waits at most that long to be copied.
IDLE_POLL_SECONDS = 0.3
IDLE_POLL_MOST_SECONDS = 1.2
INTAKE_YIELD_SECONDS = 0.05


class PeerRefused(Exception):
    pass


class PeerWaits(Exception):
    """The peer cannot store now (503: its disk is low, ...) and asks to be sent it later.
    `answer`: the 503's JSON object, if any (the settled word's still carries a count)."""

    def __init__(self, reason: str, answer: dict | None = None):
        super().__init__(reason)
        self.answer = answer


class NotPaired(Exception):
    """The peer's certificate is not pinned here, or ours is not there."""


@dataclass(frozen=True)
class Trust:
    """What a client proves itself with and checks the peer against."""
    context: ssl.SSLContext               # trust.client_context: pinned certificates only
    identity: NodeIdentity
    secret: str
    pins: Callable[[], dict]              # node id -> pinned certificate PEM, as of now
    on_paired: Callable[[str, str], None]  # pins a peer that proved the secret


SHIPPED = MirrorConfig()  # archiver.yaml's mirror section as shipped


@dataclass(frozen=True)
class Timers:
    """How long a client waits, in seconds: archiver.yaml's mirror.retry_first_seconds,
    retry_cap_seconds, rehello_seconds and read_timeout_seconds (why each default is what
    it is: services.common.config.MirrorConfig); tests set them shorter to wait less."""
    retry_first: float = SHIPPED.retry_first_seconds  # before the first retry of a failed peer
    retry_cap: float = SHIPPED.retry_cap_seconds      # the longest wait between retries
    rehello: float = SHIPPED.rehello_seconds          # between hellos to a connected peer
    read_timeout: float = SHIPPED.read_timeout_seconds  # a reply, until the peer is gone

    @classmethod
    def of(cls, section: MirrorConfig | None) -> Timers:
        """The timers a mirror section sets (None: no mirror section, the defaults)."""
        section = section or SHIPPED
        return cls(section.retry_first_seconds, section.retry_cap_seconds,
                   section.rehello_seconds, section.read_timeout_seconds)


class MirrorClient:
    def __init__(self, store: Store, peer: str, hello: Hello, trust: Trust,
                 intake_busy=lambda: False, timers: Timers = Timers()):
        self.store, self.peer, self.hello = store, peer, hello
        self.trust, self.intake_busy, self.timers = trust, intake_busy, timers
        self.url = f"https://{peer}"
        self.status = load_status(store, peer)
        self.replicated = Replicated(store)
        self._retry_now = asyncio.Event()

    def retry_now(self) -> None:
        """Cut a backoff short: a peer said hello, so it is up again (or upgraded)."""
        self._retry_now.set()

    async def run(self, stop: asyncio.Event) -> None:
        backoff, paired_now = self.timers.retry_first, False
        while not stop.is_set():
            self._retry_now.clear()
            try:
                async with self._session(self.trust.context) as session:
                    await self._handshake(session)
                    backoff, paired_now = self.timers.retry_first, False
                    await self._copy_until(stop, session)
            except PeerRefused as refusal:
                self._record("refused", str(refusal))
            except PeerWaits as wait:
                self._record("waiting", f"the peer cannot store now: {wait}")
            except OutOfSpace as full:  # a copy the peer has is sent again: it is idempotent
                self._record("waiting", f"this system cannot record its copying: {full.brief}")
            except (NotPaired, aiohttp.ClientError, ssl.SSLError, OSError,
                    asyncio.TimeoutError) as exc:
                # Pair once, then try again at once; a pairing that does not help waits.
                if not paired_now and _wants_pairing(exc):
                    paired_now = await self._pair(exc)
                    if paired_now:
                        continue
                else:
                    self._record("offline", failure_reason(exc))
            except Exception as exc:  # noqa: BLE001 - a peer's answer is hostile until read
                # Whatever a peer's answer made raise must not end this client for good
                # (the service gathers its clients only when it stops): said, and retried.
                log.exception("mirror peer %s: unexpected failure", self.peer,
                              extra={"PEER": self.peer})
                self._record("offline", f"unexpected failure: {type(exc).__name__}: "
                             f"{str(exc)[:200]}")
            paired_now = False
            if not stop.is_set():
                await _sleep_unless(stop, backoff, self._retry_now)
                backoff = min(backoff * 2, self.timers.retry_cap)

    def _session(self, context: ssl.SSLContext) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(ssl=context, limit=1)
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10,
                                        sock_read=self.timers.read_timeout)
        return aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     headers=self.hello.headers(),
                                     response_class=PeerCertificateResponse)

    async def _pair(self, why: BaseException) -> bool:
        """Pair with the peer (SPAKE2 over the secret) and pin its certificate; records
        why not and returns False when that fails."""
        unpaired = failure_reason(why) if not isinstance(why, NotPaired) else str(why)
        try:
            async with self._session(pairing_context()) as session:
                server = await pair(session, self.url, self.trust.identity, self.trust.secret)
        except PairingFailed as exc:
            self._record("offline", f"authentication failed: pairing failed: {exc}")
            return False
        except (aiohttp.ClientError, ssl.SSLError, OSError, asyncio.TimeoutError) as exc:
            self._record("offline", f"authentication failed: {unpaired}; pairing failed: "
                         f"{failure_reason(exc).removeprefix('authentication failed: ')}")
            return False
        try:
            self.trust.on_paired(server.node, server.pem)
        except OutOfSpace as full:  # paired again at the next try, once there is room
            self._record("waiting", f"this system cannot record the pairing: {full.brief}")
            return False
        log.info("mirror peer %s: paired with node %s", self.peer, server.node,
                 extra={"PEER": self.peer})
        return True

    async def _handshake(self, session: aiohttp.ClientSession) -> None:
        """Introduce ourselves and exchange the replicated settings (last writer wins)."""
        stored = await asyncio.to_thread(self.store.last_number)  # before the peer's reply
        offer = json.dumps({**self.hello.to_json(), "settings": self.replicated.export()})
        async with session.post(f"{self.url}/v1/hello", data=offer.encode(),
                                headers={"Content-Type": "application/json"}) as response:
            node = presented_node_id(response.peer_certificate, self.trust.pins())
            body = await response.read()  # kept: json() reads it from here
            reply = await response.json()
        self.status.handshake_bytes = len(offer.encode()) + len(body)
        if response.status == 403 and reply.get("pair"):
            raise NotPaired(f"the peer has not paired with this system: {reply.get('reason')}")
        if node is None:  # TLS accepted a certificate that is no longer pinned
            raise NotPaired("the peer's certificate is no longer the one paired with")
        if response.status == 409:
            self._compare_settings(reply)
            raise PeerRefused(reply.get("reason", "the peer refused to mirror"))
        response.raise_for_status()
        await asyncio.to_thread(self.replicated.merge, dict(reply.get("settings") or {}), node)
        # After the peer's edits are merged, before this node's records are given to it
        superseding_here = await asyncio.to_thread(self.replicated.superseding)
        peer = Hello.from_json(reply)
        verdict = may_mirror(self.hello.identity(), peer.identity(), load_models())
        if not verdict.allowed:
            self._compare_settings(reply)
            raise PeerRefused(verdict.reason)
        if self.status.node and node != self.status.node:  # before its log is taken
            moved = await asyncio.to_thread(audit_anchor.renamed, self.store,
                                            self.status.node, node, self.peer)
            if moved is not None:
                log.warning("mirror peer %s was node %s and is now node %s: %s", self.peer,
                            self.status.node, node, moved["broken"], extra={"PEER": self.peer})
            self.status.node = node  # said once: the anchor moved with it
        if "hold_records" in reply:  # a peer of a release before hold records has none
            await self._exchange_hold_records(session, reply["hold_records"], node)
            try:
                answer, waits = await self._tell_settled(session, reply, superseding_here), None
            except PeerWaits as exc:  # the peer could not write its side (its store full)
                answer, waits = exc.answer, exc  # its count, read before: still settles here
            if _held_nothing_superseded(reply, answer):
                await asyncio.to_thread(peer_copies.settled_through, self.store, node, stored)
            if waits is not None:
                raise waits
        if "audit_anchor" in reply:  # nor one before audit anchors
            await self._anchor_audit_log(session, reply["audit_anchor"])
        self._compare_settings(reply)
        if peer.node != node:
            log.warning("mirror peer %s says it is %s; its certificate proves %s", self.peer,
                        peer.node, node, extra={"PEER": self.peer})
        self.status.node, self.status.model, self.status.version = node, peer.model, peer.version
        self.status.one_way = not reply.get("copies_back", False)
        if self.status.state != "waiting":  # waiting ends when a batch is taken, not at hello
            self._record("connected", self._connected_reason())

    async def _exchange_hold_records(self, session: aiohttp.ClientSession, theirs,
                                     node: str) -> None:
        """Both sides end with the union of what each hold recorded (hold_sync)."""
        live = {key[len(HOLD_PREFIX):] for key in self.replicated.items(HOLD_PREFIX)}
        pending = self.replicated.records_pending()  # what merges so far wait for
        try:
            differing = await asyncio.to_thread(hold_sync.differing, self.store, live, theirs)
            done = await hold_sync.exchange(self.store, lambda path, document: self._post_json(
                session, path, document), differing)
        except BadHoldRecords as exc:
            raise PeerRefused(f"the peer sent malformed hold records: {exc}") from exc
        await asyncio.to_thread(self.replicated.records_settled, pending, node)
        self.status.hold_records_taken += done.taken
        self.status.hold_records_given += done.given
        if done.taken or done.given:
            log.info("mirror peer %s: %d hold records taken, %d given (%d holds)", self.peer,
                     done.taken, done.given, done.holds, extra={"PEER": self.peer})

    async def _tell_settled(self, session: aiohttp.ClientSession, reply: dict,
                            before: Superseding) -> dict | None:
        """Tell the peer this exchange of hold records has ended (hold_sync.SETTLED_PATH):
        the superseded queries held here from the hello on (`before`: as read after the
        peer's settings were merged), so that it lets go of this node's copies there only
        if none. Returns its answer, None if it has no copies_through (an older release);
        raises PeerWaits (its `answer` the 503's, which still carries the peer's count)
        when the peer could not write its own side of it."""
        through = reply.get("copies_through")
        if type(through) is not int:
            return None
        # A query superseded since may have been settled again already, its records written
        # after the exchange walked past them: each counts as held. "supersedes_since" says
        # that the count covers the exchange to its end (the release before sent only what
        # it read at the hello, which the peer's server does not settle by).
        since = await asyncio.to_thread(lambda: self.replicated.superseding().supersede_count)
        since -= before.supersede_count
        return await self._post_json(session, hold_sync.SETTLED_PATH,
                                     {"through": through, "superseded": before.held_now + since,
                                      "supersedes_since": since,
                                      "records_pending": reply.get("records_pending")})

    async def _anchor_audit_log(self, session: aiohttp.ClientSession, theirs) -> None:
        """Send the peer this node's audit head and entries after the anchor it holds, a
        page at a time, until it holds the head (services.policy.audit_anchor). What the
        peer says is hostile until read: an anchor that is no [count, hash] with a count
        this log could reach refuses the peer, in words, rather than end this client."""
        count = _anchor_count(theirs[0] if isinstance(theirs, list) and theirs else None)
        while True:
            request = await asyncio.to_thread(audit_anchor.request_json, self.store, count)
            found = await self._post_json(session, AUDIT_PATH, request)
            if not isinstance(found, dict):
                raise PeerRefused(f"the peer answered its audit anchor with {_shown(found)}")
            broken = found.get("broken")
            after = _anchor_count(found.get("count"))
            self.status.audit_anchored = after
            self.status.audit_broken = str(broken)[:1000] if broken else None
            if broken or not request["entries"] or after == count:
                return
            count = after

    async def _post_json(self, session: aiohttp.ClientSession, path: str, document: dict
                         ) -> dict:
        async with session.post(f"{self.url}{path}", json=document) as response:
            await _check_answer(response)
            return await response.json()

    def _connected_reason(self) -> str:
        if self.status.one_way:
            return "one-way: the peer does not copy back (it has not joined this system)"
        return ""

    def _compare_settings(self, reply: dict) -> None:
        """Saved searches, retention policies and holds should be equal on both sides."""
        theirs = reply.get("settings_digest")
        self.status.settings_differ = bool(theirs) and theirs != self.replicated.digest()

    async def _copy_until(self, stop: asyncio.Event, session: aiohttp.ClientSession) -> None:
        greeted, idle = time.monotonic(), IDLE_POLL_SECONDS
        while not stop.is_set():
            if time.monotonic() - greeted > self.timers.rehello:
                await self._handshake(session)
                greeted = time.monotonic()
            if self.intake_busy():  # local intake comes first; copying only slows down
                await asyncio.sleep(INTAKE_YIELD_SECONDS)
            last_seq, batch = await asyncio.to_thread(self._next_batch)
            if last_seq is None:
                await _sleep_unless(stop, idle)
                idle = min(2 * idle, IDLE_POLL_MOST_SECONDS)
                continue
            idle = IDLE_POLL_SECONDS
            if batch:
                await self._send(session, batch)
            self.store.set_cursor(cursor_name(self.peer), last_seq)
            self.status.copied += len(batch)
            self.status.last_success = time.time()
            save_status(self.store, self.peer, self.status)
            if self.status.state == "waiting":  # the peer took it: there is room again
                self._record("connected", self._connected_reason())

    def _next_batch(self) -> tuple[int | None, list[MirroredMessage]]:
        entries = self.store.log_after("outbox", self.store.cursor(cursor_name(self.peer)),
                                       BATCH_MESSAGES)
        batch, size, last_seq = [], 0, None
        for seq, digest in entries:
            last_seq = seq
            try:
                meta, raw = self.store.meta(digest), self.store.get(digest)
            except NotFound:
                continue  # deleted before it was copied (retention): nothing to send
            reading = self._reading(digest)
            batch.append(MirroredMessage(digest, raw, meta.get("sender"), meta["recipients"],
                                         meta["origin"], meta.get("from_line_date"), reading,
                                         live_arrival(meta)))
            size += len(raw) + len(reading or b"")
            if size >= BATCH_BYTES:
                break
        return last_seq, batch

    def _reading(self, digest: str) -> bytes | None:
        """The kept reading to send with a message, or None (none kept, of another
        version, or larger than READING_BYTES: the peer then reads the message itself)."""
        reading = self.store.reading(digest)
        if reading is None or not readings.is_current(reading) or len(reading) > READING_BYTES:
            return None
        return reading

    async def _send(self, session: aiohttp.ClientSession, batch: list[MirroredMessage]) -> None:
        body = await asyncio.to_thread(encode_batch, batch)
        async with session.post(f"{self.url}/v1/messages", data=body) as response:
            await _check_answer(response)

    def _record(self, state: str, reason: str) -> None:
        if state != self.status.state or reason != self.status.reason:
            log.info("mirror peer %s: %s %s", self.peer, state, reason,
                     extra={"PEER": self.peer})
        if state == "connected" and self.status.state != "connected":
            self.status.connected_since = time.time()
        elif state != "connected":
            self.status.connected_since = None
        self.status.state, self.status.reason = state, reason
        if state != "connected":
            self.status.last_error, self.status.last_error_time = reason, time.time()
        try:
            save_status(self.store, self.peer, self.status)
        except OutOfSpace as full:  # the state is in the log; it is recorded once there is room
            log.warning("mirror peer %s: status not recorded: %s", self.peer, full)


def _held_nothing_superseded(reply: dict, answer: dict | None) -> bool:
    """Whether the peer held no superseded query from its hello `reply` to its `answer`
    to the settled word, after the exchange: none when it replied, and no query superseded
    there since (its count of supersedes the same in both). Not known (False) when either
    does not say: an older release, or a peer that could not merge our settings."""
    held_now, before = reply.get("holds_superseded"), reply.get("supersedes")
    after = answer.get("supersedes") if isinstance(answer, dict) else None
    # The count only grows from 0: a negative one is malformed, and says nothing.
    return type(held_now) is int and type(before) is int and type(after) is int \
        and held_now == 0 and before == after and before >= 0


def _anchor_count(value) -> int:
    """A peer's anchor count of this log; PeerRefused unless a whole number from 0 on."""
    if type(value) is not int or not 0 <= value < 2 ** 63:
        raise PeerRefused(f"the peer sent a malformed audit anchor: {_shown(value)}")
    return value


def _shown(value) -> str:
    return repr(value)[:80]


async def _check_answer(response: aiohttp.ClientResponse) -> None:
    """Raise what a request's answer other than 200 means: NotPaired, PeerRefused,
    PeerWaits, aiohttp.ClientResponseError."""
    if response.status == 403:
        raise NotPaired((await response.json()).get("reason", "not paired"))
    if response.status == 409:
        raise PeerRefused((await response.json()).get("reason", "refused"))
    if response.status in (503, 507):  # 507: what a peer of the release before says
        raise PeerWaits(await _reason_of(response), await _json_object(response))
    response.raise_for_status()


async def _json_object(response: aiohttp.ClientResponse) -> dict | None:
    """The answer's JSON object, None if it has none."""
    try:
        found = await response.json()
    except (aiohttp.ContentTypeError, ValueError):
        return None
    return found if isinstance(found, dict) else None


async def _reason_of(response: aiohttp.ClientResponse) -> str:
    try:
        return str((await response.json()).get("reason") or response.reason)
    except (aiohttp.ContentTypeError, ValueError):
        return f"{response.status} {response.reason}"


def _wants_pairing(exc: BaseException) -> bool:
    return isinstance(exc, NotPaired) or not_paired(_root_cause(exc))


def failure_reason(exc: BaseException) -> str:
    """Why a peer could not be reached, in words; TLS failures are authentication failures
    (a wrong secret, or something that is no mirror peer)."""
    cause = _root_cause(exc)
    if isinstance(cause, asyncio.TimeoutError):
        return "unreachable: no answer in time"
    if isinstance(cause, aiohttp.ClientResponseError):
        return f"the peer answered {cause.status} {cause.message}"
    if isinstance(cause, aiohttp.ServerDisconnectedError):
        return "authentication failed or the peer went away: it closed the connection"
    words = describe_tls_failure(cause)
    proven_wrong = "certificate" in words or "secret" in words
    return f"authentication failed: {words}" if proven_wrong else words


def _root_cause(exc: BaseException) -> BaseException:
    """aiohttp wraps the ssl and socket errors that say what happened."""
    for attribute in ("certificate_error", "os_error"):
        inner = getattr(exc, attribute, None)
        if isinstance(inner, BaseException):
            return inner
    return exc.__cause__ if isinstance(exc.__cause__, (ssl.SSLError, OSError)) else exc


async def _sleep_unless(stop: asyncio.Event, seconds: float,
                        woken: asyncio.Event | None = None) -> None:
    """Sleep `seconds`, or less if `stop` (or `woken`) is set meanwhile."""
    events = [event for event in (stop, woken) if event is not None]
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
