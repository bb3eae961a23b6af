"""SMTP intake (aiosmtpd): journaling, gateway relay and Exchange envelope journaling.

The handler answers 250 only after the message is durable in the store; 451 4.3.1 while
intake must wait (IntakeGate: the index behind, a disk low; trusted servers keep a reserved
share of the backlog), 452 4.3.1 when a write finds no room (RFC 5321 4.2.2's insufficient
system storage; nothing of it is stored, the sender retries), 552 above the model's size
limit, 5xx with the reason for senders the AcceptancePolicy refuses. Sessions beyond the
model's limits (SessionSlots: per client address, a share reserved for trusted servers)
get 421 and retry later, as from any busy MTA; so does a session silent for
smtp.first_command_seconds before its first command or smtp.idle_seconds after. A message
takes at most MAX_RECIPIENTS recipients: RCPT beyond them gets 452 4.5.3 and the client
sends the rest in another transaction (RFC 5321 4.5.3.1.10). No AUTH is offered: who may
hand in mail is decided by address (AcceptancePolicy), never by a password.

Memory (models.yaml smtp.data_memory_mb has the arithmetic): DATA is spooled (smtp_data:
at most 1 MiB in memory per session, the rest on disk), and a message is read back as
bytes for the store only once MemoryBudget grants what storing it takes.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from aiosmtpd.smtp import SMTP, TLSSetupException, syntax

from firmware.models import SmtpLimits

from services.common.config import SmtpConfig
from services.intake.gate import IntakeGate, submit_message
from services.intake.acceptance import AcceptancePolicy
from services.intake.memory_budget import MemoryBudget, memory_to_store
from services.intake.smtp_data import IN_MEMORY_BYTES, READ_LIMIT_BYTES, DataSpool, receive_data
from services.intake.smtp_sessions import NoSessionSlot, SessionSlot, SessionSlots
from services.archive.space import is_out_of_space
from services.archive.store import Envelope, OutOfSpace, PutOutcome, Store

log = logging.getLogger(__name__)
# aiosmtpd's logger: it logs each command of a session at INFO (five records a message,
# a fifth of the event loop's time with 8 clients); its warnings and errors still show.
AIOSMTPD_LOG = "mail.log"
# Recipients of one transaction. RFC 5321 4.5.3.1.8 asks a server to take at least 100;
# 1,000 is Postfix's smtpd_recipient_limit. Without a limit one session sending a million
# RCPT commands grew the SMTP process by 600 MB and the indexer by gigabytes.
MAX_RECIPIENTS = 1000


class ArchiveHandler:
    def __init__(self, store: Store, config: SmtpConfig, gate: IntakeGate, limits: SmtpLimits):
        self.store, self.gate = store, gate
        self.policy = AcceptancePolicy(config)
        self.journal_recipient = (config.journal_recipient or "").lower()
        # Hashing, the header summary and compression run beside the event loop. A message
        # held in memory is prepared by one thread, in turn: threads preparing several at
        # once only take the GIL from each other (and from the event loop), which cost a
        # sixth more CPU a message. A message spooled to disk has a thread of its own, so
        # one that takes long never holds up the others.
        self.quick = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smtp-put")
        self.executor = ThreadPoolExecutor(max_workers=limits.concurrency,
                                           thread_name_prefix="smtp-put-large")
        self.memory = MemoryBudget(limits.data_memory_bytes)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # aiosmtpd reads commands one line at a time, so pipelined commands are answered in
        # order; saying so lets gateways send MAIL, RCPT and DATA in one round trip.
        session.host_name = hostname
        offered = [line for line in responses if not line[4:].upper().startswith("AUTH")]
        return offered[:-1] + ["250-PIPELINING"] + offered[-1:]

    async def handle_exception(self, error: Exception) -> str:
        """aiosmtpd's hook for an exception in a session: a client that fails the TLS
        handshake (garbage after STARTTLS, a scanner) is one warning line, not a traceback;
        anything else is logged whole, as aiosmtpd would."""
        if isinstance(error, TLSSetupException):
            log.warning("STARTTLS handshake failed: %s", error.__cause__ or error)
            return "454 4.7.0 TLS not available"  # not sent: aiosmtpd closes the session
        log.exception("SMTP session exception")
        return f"500 Error: ({error.__class__.__name__}) {error}"  # as aiosmtpd answers

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        refusal = self.policy.refuse_sender(session.peer[0])
        if refusal:
            return f"550 5.7.1 {refusal}"
        # Refused before the message is sent: refused mail never takes the room left.
        waits = self.gate.room_reason()
        if waits:
            return f"451 4.3.1 {waits}; try again later"
        too_large = self.gate.room_reason(_declared_size(mail_options))
        if too_large:
            return f"452 4.3.1 {too_large}; try again later"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        refusal = self.policy.refuse_recipient(session.peer[0], address)
        if refusal:
            return f"550 5.7.1 {refusal}"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return f"452 4.5.3 too many recipients: at most {MAX_RECIPIENTS} a message"
        waits = self.gate.room_reason()
        if waits:
            return f"451 4.3.1 {waits}; try again later"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        trusted = self.policy.trusted(session.peer[0])
        reason = self.gate.reason(trusted=trusted)
        if reason:
            return f"451 4.3.1 {reason}; try again later"
        if envelope.spool.error is not None:
            if is_out_of_space(envelope.spool.error, server.spool_dir):
                return (f"452 4.3.1 there is no room to spool the message "
                        f"({envelope.spool.error.strerror}); try again later")
            return (f"451 4.3.0 the message could not be spooled "
                    f"({envelope.spool.error.strerror or envelope.spool.error}); try again later")
        recipients = [r for r in envelope.rcpt_tos if r.lower() != self.journal_recipient]
        try:
            outcome = await self._store(envelope.spool,
                                        Envelope(envelope.mail_from or None, recipients),
                                        self._journaled(trusted, envelope.rcpt_tos, recipients))
        except OutOfSpace as full:  # nothing was written: the sender keeps it and retries
            log.warning("a message from %s waits: %s", session.peer[0], full)
            return f"452 4.3.1 {full.brief}; try again later"
        except Exception:
            log.exception("could not archive a message from %s", session.peer)
            return "451 4.3.0 the message could not be archived; try again later"
        log.info("archived %s from %s (%s)", outcome.digest, session.peer[0], outcome.status,
                 extra={"MESSAGE_DIGEST": outcome.digest})
        return f"250 2.0.0 archived {outcome.digest[:16]}"

    def _journaled(self, trusted: bool, rcpt_tos: list[str], recipients: list[str]) -> bool:
        """Whether a journal report in this transaction is the journaling server's, to be
        unwrapped: a trusted server sent it to the journal recipient alone. A report that
        a trusted gateway relays to anyone else is mail in transit, whose headers any
        sender on the Internet wrote: unwrapping it would archive the message it claims
        instead of the one delivered. Without a journal recipient configured, every report
        a trusted server sends is taken as journaling, as before that key (start_smtp
        warns)."""
        if not trusted:
            return False
        if not self.journal_recipient:
            return True
        return bool(rcpt_tos) and not recipients

    async def _store(self, spool: DataSpool, envelope: Envelope, journaled: bool) -> PutOutcome:
        """The message stored durably, once the memory storing takes is granted: a worker
        thread hashes, summarizes and compresses it and hands it to the group commit,
        whose thread tells this loop when it is durable (no thread waits for the commit)."""
        amount = await self.memory.take(memory_to_store(spool.size))
        loop = asyncio.get_running_loop()
        durable = loop.create_future()

        def settle(outcome: Future) -> None:  # in the thread that ends the put
            _call_soon(loop, self._settled, outcome, durable, amount)

        try:
            lane = self.quick if spool.size <= IN_MEMORY_BYTES else self.executor
            lane.submit(self._submit, spool, envelope, journaled, settle)
        except BaseException:
            self.memory.give_back(amount)
            raise
        return await durable

    def _submit(self, spool: DataSpool, envelope: Envelope, journaled: bool,
                settle: Callable[[Future], None]) -> None:
        try:
            outcome = submit_message(self.store, spool.take(), envelope, "smtp", journaled)
        except BaseException as exc:  # e.g. the session closed the spool: settled all the same
            outcome = Future()
            outcome.set_exception(exc)
        outcome.add_done_callback(settle)

    def _settled(self, outcome: Future, durable: asyncio.Future, amount: int) -> None:
        # Memory is given back when the put ends, not when the session does: a client that
        # hangs up does not stop the put, and its memory is in use until then.
        self.memory.give_back(amount)
        if durable.done():  # the session went away meanwhile
            return
        if outcome.exception() is not None:
            durable.set_exception(outcome.exception())
        else:
            durable.set_result(outcome.result())


def _declared_size(mail_options: list[str]) -> int:
    """The SIZE= a client declared at MAIL FROM (RFC 1870), in bytes; 0 if none."""
    for option in mail_options:
        name, _, value = option.partition("=")
        if name.upper() == "SIZE" and value.isdigit():
            return int(value)
    return 0


def _call_soon(loop: asyncio.AbstractEventLoop, callback, *args) -> None:
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:  # the loop is closed: at shutdown nobody waits for the budget
        pass


# RFC 5321 4.1.2's Path in its everyday shape, <dot-atom@dot-atom> and maybe parameters
# after white space: read with one regular expression, as aiosmtpd's email-package parser
# reads it (a third of the event loop's time went there); any other shape (quoted local
# part, address literal, source route, comment, non-ASCII, <>) goes to that parser.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATEXT}(?:\.{_ATEXT})*"
_EVERYDAY_PATH = re.compile(rf"<({_DOT_ATOM}@{_DOT_ATOM})>(?:[ \t]+([^\s(].*))?", re.DOTALL)


def everyday_path(arg: str) -> tuple[str, str] | None:
    """(address, parameters) of a MAIL FROM or RCPT TO argument in the everyday shape,
    exactly as aiosmtpd's SMTP._getaddr reads it; None for any other shape."""
    match = _EVERYDAY_PATH.fullmatch(arg)
    return (match[1], match[2] or "") if match else None


class LimitedSMTP(SMTP):
    """aiosmtpd's SMTP within the model's limits: sessions (SessionSlots, 421 beyond
    them), a first-command and an idle timeout, and DATA spooled instead of in memory.
    A session that delivers nothing cannot be held without end: past JUNK_COMMAND_LIMIT
    commands that deliver nothing (NOOP, RSET, VRFY, EXPN, HELP) or ERROR_LIMIT error
    replies since its last message, it gets 421 and is closed (Postfix's
    smtpd_junk_command_limit and smtpd_hard_error_limit). Under stress (SessionSlots.
    stressed) an untrusted session's timeouts are smtp.stress_idle_seconds at most, and in
    DATA only STRESS_DATA_BYTES or more in a timeout restart it."""

    # Commands are short; DATA lines of any length are read in pieces (smtp_data), so this
    # only sizes the read buffer of a session (at most twice this, plus one read).
    line_length_limit = READ_LIMIT_BYTES
    HEARD_FROM_SECONDS = 1.0  # how often bytes arriving in DATA restart the idle timer
    JUNK_COMMAND_LIMIT = 100
    ERROR_LIMIT = 20
    STRESS_DATA_BYTES = 1024

    def __init__(self, handler, slots: SessionSlots, spool_dir: Path,
                 first_command_seconds: float, stress_idle_seconds: float = 10.0, **options):
        super().__init__(handler, **options)
        self.slots, self.spool_dir = slots, spool_dir
        self.first_command_seconds = first_command_seconds
        self.stress_idle_seconds = stress_idle_seconds
        self._slot: SessionSlot | None = None
        self._refused, self._heard_at = False, 0.0
        self._receiving_data = False
        self._junk = self._errors = 0  # since the session's last message
        self._bytes_heard = 0  # in DATA since the timer last restarted

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        found = None if self.local_part_limit else everyday_path(arg)
        return found if found is not None else super()._getaddr(arg)

    def connection_made(self, transport) -> None:
        starting = self.transport is None  # not the STARTTLS upgrade of a running session
        if starting:
            peer = transport.get_extra_info("peername") or ("",)
            try:
                self._slot = self.slots.take(str(peer[0]))
            except NoSessionSlot as refusal:
                self._refused = True
                transport.write(f"421 4.3.2 {refusal}; try again later\r\n".encode())
                transport.close()
                return
        super().connection_made(transport)
        if starting:  # aiosmtpd's timer restarts at smtp.idle_seconds with each command
            self._reset_timeout(self.first_command_seconds)

    def connection_lost(self, error) -> None:
        if self._refused:
            return
        if self._slot is not None:
            self.slots.give_back(self._slot)
            self._slot = None
        super().connection_lost(error)

    def _reset_timeout(self, duration: float | None = None) -> None:
        if self._stressed():
            duration = min(duration or self._timeout_duration, self.stress_idle_seconds)
        self._bytes_heard = 0
        super()._reset_timeout(duration)

    def _stressed(self) -> bool:
        slot = getattr(self, "_slot", None)  # None before __init__ is through
        return slot is not None and not slot.trusted and self.slots.stressed()

    async def push(self, status) -> None:
        await super().push(status)
        text = status if isinstance(status, str) else status.decode("ascii", "replace")
        if text.startswith("5"):
            self._errors += 1
            if self._errors > self.ERROR_LIMIT:
                await self._close_with("421 4.7.0 too many errors in this session; closing")

    async def _count_junk(self) -> bool:
        """One more command that delivers nothing; True (and the session closed) past
        JUNK_COMMAND_LIMIT of them since its last message."""
        self._junk += 1
        if self._junk <= self.JUNK_COMMAND_LIMIT:
            return False
        await self._close_with("421 4.7.0 too many commands that deliver nothing; closing")
        return True

    async def _close_with(self, reply: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            await super().push(reply)
            self._handler_coroutine.cancel()
            self.transport.close()

    @syntax("NOOP [ignored]")
    async def smtp_NOOP(self, arg: str) -> None:
        if not await self._count_junk():
            await super().smtp_NOOP(arg)

    @syntax("RSET")
    async def smtp_RSET(self, arg: str) -> None:
        if not await self._count_junk():
            await super().smtp_RSET(arg)

    @syntax("VRFY <address>")
    async def smtp_VRFY(self, arg: str) -> None:
        if not await self._count_junk():
            await super().smtp_VRFY(arg)

    async def smtp_EXPN(self, arg: str) -> None:
        if not await self._count_junk():
            await super().smtp_EXPN(arg)

    @syntax("HELP [command]")
    async def smtp_HELP(self, arg: str) -> None:
        if not await self._count_junk():
            await super().smtp_HELP(arg)

    def _timeout_cb(self) -> None:
        # RFC 5321 4.5.3.2: the server may close a silent session; 421 says why.
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"421 4.4.2 nothing heard in time; closing\r\n")
        super()._timeout_cb()

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA, but into a DataSpool: the handler gets envelope.spool."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        if not self.spool_dir.is_dir():  # made at start-up, unless the disk was full then
            with contextlib.suppress(OSError):  # if not, the spool says why (DataSpool.error)
                self.spool_dir.mkdir(parents=True)
        spool = DataSpool(self.spool_dir)
        self._receiving_data = True
        try:
            received = await receive_data(self._reader, spool, self.data_size_limit,
                                          self._heard_from)
            self._receiving_data = False
            self._timeout_handle.cancel()  # the client waits for our reply: it is not idle
            if received.too_big:
                status = f"552 5.3.4 the message is larger than {self.data_size_limit} bytes"
            else:
                self.envelope.spool = spool
                status = await self._call_handler_hook("DATA")
        finally:
            self._receiving_data = False
            spool.close()
        self._set_post_data_state()
        self._reset_timeout()
        if status.startswith("250"):  # a message delivered: the session earns its keep
            self._junk = self._errors = 0
        await self.push(status)

    def data_received(self, data: bytes) -> None:
        # receive_data takes DATA in pieces that end at a ".\r\n" or 64 KiB: a slow sender
        # may take longer than the idle timeout to fill one, so bytes restart it as they
        # arrive, as the network delivers them.
        super().data_received(data)
        if self._receiving_data:
            self._heard_from(len(data))

    @syntax("AUTH <mechanism>")
    async def smtp_AUTH(self, arg: str) -> None:
        """Not offered (the EHLO reply leaves it out): aiosmtpd would take LOGIN and PLAIN
        with no authenticator and refuse every attempt, without limit."""
        await self.push("502 5.5.1 AUTH is not offered: mail is accepted by the sending "
                        "server's address")

    def _heard_from(self, size: int = 0) -> None:
        self._bytes_heard += size
        if self._stressed() and self._bytes_heard < self.STRESS_DATA_BYTES:
            return  # under stress a byte now and then does not keep a session
        now = self.loop.time()
        if now - self._heard_at >= self.HEARD_FROM_SECONDS:
            self._heard_at = now
            self._reset_timeout()


def make_spool_dir(spool_dir: Path) -> None:
    """Make the spool folder; on a full disk (ENOSPC) log it and go on: a message then
    fails to spool (intake refuses mail on a full disk anyway) until there is room."""
    try:
        spool_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if not is_out_of_space(exc, spool_dir.parent):
            raise
        log.warning("cannot make the SMTP spool folder %s: %s; made once there is room",
                    spool_dir, exc.strerror or exc)


def tls_context(config: SmtpConfig) -> ssl.SSLContext | None:
    if config.tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.tls.cert, config.tls.key)
    return context


async def start_smtp(config: SmtpConfig, store: Store, gate: IntakeGate, limits: SmtpLimits,
                     spool_dir: Path) -> asyncio.AbstractServer:
    """Listen on config.listen within the model's `limits`, spooling DATA under spool_dir;
    returns the running server."""
    # The handler's "archived <digest> from <address>" line is the record of each message.
    logging.getLogger(AIOSMTPD_LOG).setLevel(logging.WARNING)
    if config.trusted_servers and not config.journal_recipient:
        log.warning("smtp.journal_recipient is not set: journal reports from trusted servers "
                    "are unwrapped whatever their recipients, also one a gateway relays from "
                    "the Internet; set it to the address Exchange journals to")
    handler = ArchiveHandler(store, config, gate, limits)
    slots = SessionSlots(limits, handler.policy.trusted)
    context = tls_context(config)
    make_spool_dir(Path(spool_dir))
    host, _, port = config.listen.rpartition(":")
    loop = asyncio.get_running_loop()

    def protocol():
        return LimitedSMTP(handler, slots, Path(spool_dir), config.first_command_seconds,
                           config.stress_idle_seconds, data_size_limit=limits.max_message_bytes, timeout=config.idle_seconds,
                           tls_context=context, hostname=None, ident="archiver ESMTP",
                           enable_SMTPUTF8=True, loop=loop)

    server = await loop.create_server(protocol, host=host.strip("[]") or None, port=int(port),
                                      reuse_address=True)
    log.info("SMTP intake listening on %s", config.listen)
    return server
