"""SMTP intake (aiosmtpd): journaling, gateway relay and Exchange envelope journaling.

The handler answers 250 only after the message is durable in the store; 4xx while intake
must wait (IntakeGate), 552 above the model's size limit (aiosmtpd's data_size_limit),
5xx with the reason for senders the AcceptancePolicy refuses. Sessions beyond the model's
SMTP concurrency get 421 and retry later, as from any busy MTA.
"""
from __future__ import annotations

import asyncio
import logging
import ssl
from concurrent.futures import ThreadPoolExecutor

from aiosmtpd.smtp import SMTP

from services.common.config import SmtpConfig
from services.intake.gate import IntakeGate, archive_message
from services.intake.acceptance import AcceptancePolicy
from services.archive.store import Envelope, OutOfSpace, Store

log = logging.getLogger(__name__)


class ArchiveHandler:
    def __init__(self, store: Store, config: SmtpConfig, gate: IntakeGate, workers: int):
        self.store, self.gate = store, gate
        self.policy = AcceptancePolicy(config)
        self.journal_recipient = (config.journal_recipient or "").lower()
        # Durable puts block on a group commit; they wait in threads, not in the event loop.
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="smtp-put")

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # aiosmtpd reads commands one line at a time, so pipelined commands are answered in
        # order; saying so lets gateways send MAIL, RCPT and DATA in one round trip.
        session.host_name = hostname
        return responses[:-1] + ["250-PIPELINING"] + responses[-1:]

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        refusal = self.policy.refuse_sender(session.peer[0])
        if refusal:
            return f"550 5.7.1 {refusal}"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        refusal = self.policy.refuse_recipient(session.peer[0], address)
        if refusal:
            return f"550 5.7.1 {refusal}"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        reason = self.gate.reason()
        if reason:
            return f"451 4.3.1 {reason}; try again later"
        recipients = [r for r in envelope.rcpt_tos if r.lower() != self.journal_recipient]
        loop = asyncio.get_running_loop()
        try:
            outcome = await loop.run_in_executor(
                self.executor, archive_message, self.store, envelope.original_content,
                Envelope(envelope.mail_from or None, recipients), "smtp",
                self.policy.trusted(session.peer[0]))
        except OutOfSpace as full:  # nothing was written: the sender keeps it and retries
            log.warning("a message from %s waits: %s", session.peer[0], full)
            return f"452 4.3.1 {full.brief}; try again later"
        except Exception:
            log.exception("could not archive a message from %s", session.peer)
            return "451 4.3.0 the message could not be archived; try again later"
        log.info("archived %s from %s (%s)", outcome.digest, session.peer[0], outcome.status,
                 extra={"MESSAGE_DIGEST": outcome.digest})
        return f"250 2.0.0 archived {outcome.digest[:16]}"


class SessionSlots:
    def __init__(self, limit: int):
        self.limit, self.active = limit, 0


class LimitedSMTP(SMTP):
    """aiosmtpd's SMTP, refusing sessions beyond the model's concurrency with 421."""

    # RFC 5321 allows 1000 octets a line, but real mail breaks it (unwrapped HTML, long
    # headers); an archive must keep such mail rather than bounce it.
    line_length_limit = 1024 * 1024

    def __init__(self, handler, slots: SessionSlots, **options):
        super().__init__(handler, **options)
        self.slots, self._holds_slot, self._refused = slots, False, False

    def connection_made(self, transport) -> None:
        starting = self.transport is None  # not the STARTTLS upgrade of a running session
        if starting and self.slots.active >= self.slots.limit:
            self._refused = True
            transport.write(b"421 4.3.2 too many connections; try again later\r\n")
            transport.close()
            return
        if starting:
            self.slots.active += 1
            self._holds_slot = True
        super().connection_made(transport)

    def connection_lost(self, error) -> None:
        if self._refused:
            return
        if self._holds_slot:
            self.slots.active -= 1
            self._holds_slot = False
        super().connection_lost(error)


def tls_context(config: SmtpConfig) -> ssl.SSLContext | None:
    if config.tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.tls.cert, config.tls.key)
    return context


async def start_smtp(config: SmtpConfig, store: Store, gate: IntakeGate, concurrency: int,
                     max_message_bytes: int) -> asyncio.AbstractServer:
    """Listen on config.listen; returns the running server."""
    handler = ArchiveHandler(store, config, gate, workers=concurrency)
    slots = SessionSlots(concurrency)
    context = tls_context(config)
    host, _, port = config.listen.rpartition(":")
    loop = asyncio.get_running_loop()

    def protocol():
        return LimitedSMTP(handler, slots, data_size_limit=max_message_bytes,
                           tls_context=context, hostname=None, ident="archiver ESMTP",
                           enable_SMTPUTF8=True, loop=loop)

    server = await loop.create_server(protocol, host=host.strip("[]") or None, port=int(port),
                                      reuse_address=True)
    log.info("SMTP intake listening on %s", config.listen)
    return server
