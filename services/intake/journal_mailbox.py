"""The journal-mailbox puller: takes mail from an IMAP or POP3 mailbox into the archive.

A message leaves the server only after the store holds it durably. With keep_on_server
nothing is deleted; the store remembers what was taken (IMAP "UIDVALIDITY:UID", POP3 UIDL)
and skips it from then on. Whatever cuts a poll short between storing and deleting - an
outage, a crash, a peer covering for this system taking the same mail - the message is
simply taken again next time and the store's content addressing makes that a "duplicate".

Messages are archived byte-exact as the server sends them: both protocols send CRLF line
ends, so a message stored with bare LF on the server arrives with CRLF.
"""
from __future__ import annotations

import datetime as dt
import imaplib
import logging
import poplib
import ssl
import threading
from dataclasses import dataclass
from typing import Callable, Protocol

from services.common.config import JournalAccount
from services.intake.gate import archive_message
from services.archive.store import Envelope, OutOfSpace, PutOutcome, Store

log = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 5
MAX_RETRY_SECONDS = 300
# POP3 deletes only when a session ends with QUIT; a fresh session after this many
# deletions keeps an outage from sending a long poll's messages round again.
POP3_DELETES_PER_SESSION = 100
# poplib refuses lines over 2048 bytes; real mail (long HTML lines) has longer ones.
poplib._MAXLINE = max(poplib._MAXLINE, 4 * 1024 * 1024)


@dataclass
class PollResult:
    fetched: int = 0      # messages taken from the server this poll
    imported: int = 0     # of them, new to the archive (or new recipients for a message)
    duplicates: int = 0   # of them, already archived (taken before, or by a peer)
    error: str | None = None
    paused: str | None = None  # why intake asked this poll to stop early; not an error


class Mailbox(Protocol):
    """One session with the server; messages are named by keys stable across sessions."""

    def keys(self) -> list[str]: ...
    def fetch(self, key: str) -> bytes | None: ...  # None: no longer on the server
    def delete(self, key: str) -> None: ...
    def close(self, clean: bool) -> None: ...


class JournalPuller:
    def __init__(self, account: JournalAccount, store: Store,
                 gate: Callable[[], str | None] = lambda: None, connect_timeout: float = 30):
        self.account, self.store, self.gate = account, store, gate
        self.connect_timeout = connect_timeout
        self.source = f"journal:{account.name}"
        self.first_retry, self.max_retry = FIRST_RETRY_SECONDS, MAX_RETRY_SECONDS
        self._stop = threading.Event()

    # -- the service loop ----------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Poll every poll_seconds until `stop` is set; after errors retry sooner, backing off."""
        self._stop = stop
        failures = 0
        while not stop.is_set():
            try:
                result = self.poll_once()
            except Exception:  # a bug in one poll must not end polling for good
                log.exception("journal %s: poll failed", self.account.name,
                              extra={"ACCOUNT": self.account.name})
                result = PollResult(error="internal error (see the log)")
            failures = failures + 1 if result.error else 0
            stop.wait(self.delay_after(failures))

    def delay_after(self, failures: int) -> float:
        """Seconds to the next poll: poll_seconds, or after failures 5 s doubling up to the
        smaller of poll_seconds and 300 s, so an outage is noticed over soon but not hammered."""
        if failures == 0:
            return self.account.poll_seconds
        ceiling = min(self.account.poll_seconds, self.max_retry)
        return min(self.first_retry * 2 ** min(failures - 1, 32), ceiling)

    # -- one poll ------------------------------------------------------------------------

    def poll_once(self) -> PollResult:
        result = PollResult()
        try:
            mailbox = open_mailbox(self.account, self.connect_timeout)
            try:
                self._take_all(mailbox, result)
            except BaseException:
                mailbox.close(clean=False)
                raise
            mailbox.close(clean=True)
        except Exception as exc:  # the server, the network or TLS: retried next poll
            result.error = describe(exc)
            log.warning("journal %s: %s", self.account.name, result.error,
                        extra={"ACCOUNT": self.account.name})
        self._record(result)
        return result

    def _take_all(self, mailbox: Mailbox, result: PollResult) -> None:
        skip = self.store.journal_taken(self.account.name) if self.account.keep_on_server \
            else set()
        for key in mailbox.keys():
            if key in skip:
                continue
            if self._stop.is_set():
                return
            result.paused = self.gate()
            if result.paused:
                return  # the rest stays on the server until intake may go on
            if not self._take(mailbox, key, result):
                return

    def _take(self, mailbox: Mailbox, key: str, result: PollResult) -> bool:
        """Archive one message, then delete or remember it; False: stop this poll."""
        raw = mailbox.fetch(key)
        if raw is None:
            return True  # gone meanwhile: a peer covering for this system took it
        result.fetched += 1
        try:
            outcome = self._archive(raw)
        except OutOfSpace as full:  # it stays on the server until there is room
            result.paused = full.brief
            return False
        if outcome.status == "duplicate":
            result.duplicates += 1
        else:
            result.imported += 1
        return self._delete_or_remember(mailbox, key, result)

    def _delete_or_remember(self, mailbox: Mailbox, key: str, result: PollResult) -> bool:
        """Delete a stored message from the server, or (keep_on_server) remember that it was
        taken; False: stop this poll."""
        if not self.account.keep_on_server:
            mailbox.delete(key)
            return True
        try:
            self.store.mark_taken(self.account.name, key)
        except OutOfSpace as full:  # not remembered: taken again next time, a duplicate then
            result.paused = full.brief
            return False
        return True

    def _archive(self, raw: bytes) -> PutOutcome:
        """Hand one message to intake (journal reports unwrapped); returns once durable."""
        return archive_message(self.store, raw, Envelope(sender=None, recipients=[]), self.source)

    # -- status --------------------------------------------------------------------------

    def _record(self, result: PollResult) -> None:
        state = account_status(self.store, self.account.name)
        now = _now()
        state["last_poll"] = now
        state["imported_total"] += result.imported
        state["duplicates_total"] += result.duplicates
        if result.error:
            state.update(state="error", last_error=result.error, last_error_at=now)
        else:
            state.update(state=f"paused: {result.paused}" if result.paused else "ok",
                         last_success=now)
        try:
            self.store.set_journal_state(self.account.name, state)
        except OutOfSpace as full:  # the poll's outcome is in the log; the next one records
            log.warning("journal %s: status not recorded: %s", self.account.name, full,
                        extra={"ACCOUNT": self.account.name})


def account_status(store: Store, account: str) -> dict:
    """An account's status as last recorded; last_error stays after recovery (state says)."""
    return {"state": "not polled yet", "last_poll": None, "last_success": None,
            "last_error": None, "last_error_at": None, "imported_total": 0,
            "duplicates_total": 0, **store.journal_state(account)}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe(exc: Exception) -> str:
    """An error in words an operator can act on (imaplib and poplib carry bytes)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"the server's TLS certificate is not trusted ({exc.verify_message})"
    if isinstance(exc, TimeoutError):
        return "the server did not answer in time"
    if isinstance(exc, OSError):
        return f"cannot talk to the server: {exc.strerror or exc}"
    detail = exc.args[0] if exc.args else type(exc).__name__
    detail = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
    if isinstance(exc, imaplib.IMAP4.abort) or detail == "-ERR EOF":  # poplib's words for it
        return f"the server closed the connection ({detail})"
    return detail


# -- the protocols ---------------------------------------------------------------------------

class MailboxError(Exception):
    pass


def open_mailbox(account: JournalAccount, timeout: float) -> Mailbox:
    if account.protocol == "imap":
        return ImapMailbox(account, timeout)
    return Pop3Mailbox(account, timeout)


def tls_context(account: JournalAccount) -> ssl.SSLContext:
    # Verified always: against the system's CAs, or only those in the account's ca_file.
    return ssl.create_default_context(cafile=account.ca_file)


def _dropping_on_error(drop: Callable[[], object], setup: Callable[[], object]) -> None:
    """Run `setup` on a fresh connection; if it fails, `drop` the connection and re-raise."""
    try:
        setup()
    except BaseException:
        _quietly(drop)
        raise


def _quietly(drop: Callable[[], object]) -> None:
    """Drop a connection that may be dead already (a failed TLS handshake, a reset): the
    error that killed it is the one worth reporting."""
    try:
        drop()
    except OSError:
        pass


class ImapMailbox:
    """One IMAP session on the account's folder; keys are "UIDVALIDITY:UID"."""

    def __init__(self, account: JournalAccount, timeout: float):
        self.client = self._connect(account, timeout)
        _dropping_on_error(self.client.shutdown, lambda: self._open_folder(account))

    @staticmethod
    def _connect(account: JournalAccount, timeout: float) -> imaplib.IMAP4:
        if account.tls == "tls":
            return imaplib.IMAP4_SSL(account.host, account.port, ssl_context=tls_context(account),
                                     timeout=timeout)
        client = imaplib.IMAP4(account.host, account.port, timeout=timeout)
        if account.tls == "starttls":  # refused by the server: an error, never plaintext
            _dropping_on_error(client.shutdown,
                               lambda: client.starttls(ssl_context=tls_context(account)))
        return client

    def _open_folder(self, account: JournalAccount) -> None:
        self.client.login(account.user, account.password)
        # Read-only when nothing is to be deleted: not even \Seen changes on the server.
        typ, data = self.client.select(_quoted(account.folder), readonly=account.keep_on_server)
        if typ != "OK":
            raise MailboxError(f"cannot open folder {account.folder!r}: {_text(data)}")
        _, (validity,) = self.client.response("UIDVALIDITY")
        if not validity:
            raise MailboxError("the server sent no UIDVALIDITY for the folder")
        self.uidvalidity = validity.decode()
        # Capabilities grow after login (UIDPLUS is not announced before it).
        _, capabilities = self.client.capability()
        self.uidplus = b"UIDPLUS" in capabilities[-1].upper().split()

    def keys(self) -> list[str]:
        _, (found,) = _ok(self.client.uid("SEARCH", None, "ALL"), "search")
        return [f"{self.uidvalidity}:{uid.decode()}" for uid in (found or b"").split()]

    def fetch(self, key: str) -> bytes | None:
        typ, data = self.client.uid("FETCH", _uid(key), "(BODY.PEEK[])")
        if typ == "NO":  # e.g. [EXPUNGEISSUED]: a peer's session took it meanwhile
            log.warning("IMAP message %s skipped: %s", key, _text(data))
            return None
        _ok((typ, data), "fetch")
        for item in data:  # untagged FLAGS updates may come along; the body is a literal
            if isinstance(item, tuple) and b"BODY[]" in item[0]:
                return item[1]
        return None

    def delete(self, key: str) -> None:
        uid = _uid(key)
        _ok(self.client.uid("STORE", uid, "+FLAGS.SILENT", r"(\Deleted)"), "store \\Deleted")
        # UID EXPUNGE removes exactly this message; plain EXPUNGE also removes what a peer
        # flagged, which is fine: a peer flags only what it has stored.
        _ok(self.client.uid("EXPUNGE", uid) if self.uidplus else self.client.expunge(), "expunge")

    def close(self, clean: bool) -> None:
        try:
            self.client.logout()  # deletions are expunged already; nothing to commit
        except Exception:
            _quietly(self.client.shutdown)


class Pop3Mailbox:
    """POP3 sessions (deletions take effect at QUIT); keys are the server's UIDLs."""

    def __init__(self, account: JournalAccount, timeout: float):
        self.account, self.timeout = account, timeout
        self._open()

    def _open(self) -> None:
        self.client = self._connect()
        _dropping_on_error(self.client.close, self._login_and_list)
        self.deletions = 0

    def _connect(self) -> poplib.POP3:
        account = self.account
        if account.tls == "tls":
            return poplib.POP3_SSL(account.host, account.port, timeout=self.timeout,
                                   context=tls_context(account))
        client = poplib.POP3(account.host, account.port, timeout=self.timeout)
        if account.tls == "starttls":  # refused by the server: an error, never plaintext
            _dropping_on_error(client.close, lambda: client.stls(context=tls_context(account)))
        return client

    def _login_and_list(self) -> None:
        self.client.user(self.account.user)
        self.client.pass_(self.account.password)
        _, listing, _ = self.client.uidl()
        self.numbers = {}  # UIDL -> message number in this session
        for line in listing:
            number, uid = line.split()[:2]
            self.numbers[uid.decode()] = int(number)

    def keys(self) -> list[str]:
        return list(self.numbers)

    def fetch(self, key: str) -> bytes | None:
        number = self.numbers.get(key)
        if number is None:
            return None
        try:
            _, lines, _ = self.client.retr(number)
        except poplib.error_proto as exc:
            if not isinstance(exc.args[0], bytes):  # poplib's own: EOF, line too long
                raise
            # The server said -ERR: typically a peer's session deleted it meanwhile.
            log.warning("journal %s: message %s skipped: %s", self.account.name, key,
                        describe(exc), extra={"ACCOUNT": self.account.name})
            return None
        return b"\r\n".join(lines) + b"\r\n"  # poplib strips line ends and dot-stuffing

    def delete(self, key: str) -> None:
        self.client.dele(self.numbers.pop(key))
        self.deletions += 1
        if self.deletions >= POP3_DELETES_PER_SESSION:
            self.client.quit()
            self._open()

    def close(self, clean: bool) -> None:
        # Whatever was deleted is stored, so QUIT (which commits it) is right even after an
        # error; a failed QUIT leaves the deletions undone, which a clean poll must report.
        try:
            self.client.quit()
        except Exception:
            _quietly(self.client.close)
            if clean:
                raise


def _ok(response: tuple, doing: str) -> tuple:
    typ, data = response
    if typ != "OK":
        raise MailboxError(f"IMAP {doing} failed: {_text(data)}")
    return response


def _uid(key: str) -> str:
    return key.rpartition(":")[2]


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(data) -> str:
    return b" ".join(item for item in data if isinstance(item, bytes)).decode("utf-8", "replace")
