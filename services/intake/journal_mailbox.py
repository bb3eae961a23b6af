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
import re
import ssl
import threading
from dataclasses import dataclass, field
from typing import Callable, Protocol

from services.common.config import JournalAccount
from services.intake.gate import archive_message
from services.intake.imap_fetch import Refused, body_of
from services.intake.journal_wire import (
    COMMAND_SECONDS, BoundedIMAP4, BoundedIMAP4_SSL, BoundedPOP3, BoundedPOP3_SSL, Limits,
    MessageTooLarge, SessionAborted, Watchdog)
from services.archive.store import Envelope, OutOfSpace, PutOutcome, Store

log = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 5
MAX_RETRY_SECONDS = 300
# POP3 deletes only when a session ends with QUIT; a fresh session after this many
# deletions keeps an outage from sending a long poll's messages round again.
POP3_DELETES_PER_SESSION = 100
# A message whose fetch breaks the session this many polls in a row is left on the server
# (until `archiver journal poll --retry-left`): a transient outage retries, a poisonous
# answer is passed by, after a restart too.
FETCH_ATTEMPTS = 3
REMEMBERED = 1000  # messages left on the server (and fetches that broke) an account keeps
# Without UIDPLUS, messages flagged \Deleted are expunged together every this many.
IMAP_EXPUNGE_EVERY = 100
# A SEARCH asks for this many message numbers at a time (answer < 600 kB).
SEARCH_CHUNK = 50_000
MAX_UID = 2 ** 32 - 1
MAX_MESSAGES = 10_000_000  # more in one folder: a broken or hostile server's count
_NZ_NUMBER = re.compile(rb"[1-9][0-9]{0,9}")
# Without a model's profile (tests): the largest message of the largest model.
DEFAULT_MAX_MESSAGE_BYTES = 100 * 1024 * 1024


@dataclass
class PollResult:
    fetched: int = 0      # messages taken from the server this poll
    imported: int = 0     # of them, new to the archive (or new recipients for a message)
    duplicates: int = 0   # of them, already archived (taken before, or by a peer)
    error: str | None = None
    paused: str | None = None  # why intake asked this poll to stop early; not an error
    # what was left on the server, or not done, and why (the poll went on with the rest)
    problems: list[str] = field(default_factory=list)


class Mailbox(Protocol):
    """One session with the server; messages are named by keys stable across sessions."""

    problems: list[str]  # what the session could not do as asked, in words

    def keys(self) -> list[str]: ...
    def fetch(self, key: str) -> bytes | None: ...  # None: no longer on the server
    def delete(self, key: str) -> None: ...
    def close(self, clean: bool) -> None: ...


class JournalPuller:
    def __init__(self, account: JournalAccount, store: Store,
                 gate: Callable[[], str | None] = lambda: None, connect_timeout: float = 30,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 command_seconds: float = COMMAND_SECONDS):
        """`gate()` says why intake must pause (or None); connect_timeout bounds each read
        (seconds), command_seconds each command; max_message_bytes is the model's largest
        message (models.yaml smtp.max_message_mb): larger ones stay on the server."""
        self.account, self.store, self.gate = account, store, gate
        self.connect_timeout, self.command_seconds = connect_timeout, command_seconds
        self.limits = Limits.for_largest_message(max_message_bytes)
        # key -> why it stays on the server (too large, its fetch broke the session
        # FETCH_ATTEMPTS times): skipped by later polls, after a restart too: the account's
        # status keeps both, read at the start of each poll (`archiver journal poll
        # --retry-left` forgets them, for the service's next poll too).
        self.left_on_server: dict[str, str] = {}
        self.broken_fetches: dict[str, int] = {}  # key -> polls in a row its fetch broke
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
        """One session: take what the mailbox holds. Errors end up in the result (and the
        account's status), never raised."""
        result = PollResult()
        self._record_start()
        with Watchdog(self._stop, self.command_seconds) as watchdog:
            try:
                self._poll(watchdog, result)
            except Exception as exc:  # the server, the network or TLS: retried next poll
                result.error = watchdog.why or describe(exc)
                log.warning("journal %s: %s", self.account.name, result.error,
                            extra={"ACCOUNT": self.account.name})
        self._record(result)
        return result

    def _poll(self, watchdog: Watchdog, result: PollResult) -> None:
        mailbox = open_mailbox(self.account, self.connect_timeout, self.limits, watchdog)
        try:
            self._take_all(mailbox, result)
        except BaseException:
            result.problems += mailbox.problems
            mailbox.close(clean=False)
            raise
        mailbox.close(clean=True)
        result.problems += mailbox.problems

    def _take_all(self, mailbox: Mailbox, result: PollResult) -> None:
        skip = self.store.journal_taken(self.account.name) if self.account.keep_on_server \
            else set()
        keys = mailbox.keys()
        self._forget_gone(keys)
        for key in keys:
            if key in skip:
                continue
            if key in self.left_on_server:
                result.problems.append(f"{key} left on the server: {self.left_on_server[key]}")
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
        try:
            raw = mailbox.fetch(key)
        except Refused as refused:  # left on the server; the others go on
            result.problems.append(f"{key} left on the server: {refused}")
            return True
        except MessageTooLarge as big:  # the session is unusable after it
            self.left_on_server[key] = str(big)
            raise
        except Exception as exc:  # one message that always breaks the session must not
            self._count_broken_fetch(key, exc)  # hold up the rest for good
            raise
        self.broken_fetches.pop(key, None)
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

    def _forget_gone(self, keys: list[str]) -> None:
        """What was left or broke is forgotten once it is no longer on the server."""
        present = set(keys)
        self.left_on_server = {k: v for k, v in self.left_on_server.items() if k in present}
        self.broken_fetches = {k: v for k, v in self.broken_fetches.items() if k in present}

    def retry_left(self) -> int:
        """Forget what was left on the server, so the next poll tries it again; returns how
        many were left. Recorded in the account's status at once."""
        count = len(account_status(self.store, self.account.name)["left_on_server"])
        self.left_on_server, self.broken_fetches = {}, {}
        self._save_state({**account_status(self.store, self.account.name),
                          "left_on_server": {}, "broken_fetches": {}})
        return count

    def _count_broken_fetch(self, key: str, exc: Exception) -> None:
        self.broken_fetches[key] = tries = self.broken_fetches.get(key, 0) + 1
        if tries >= FETCH_ATTEMPTS and not self._stop.is_set():
            self.left_on_server[key] = (f"the session broke while fetching it {tries} times"
                                        f" ({describe(exc)})")

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

    def _record_start(self) -> None:
        """Status says a poll runs (and since when) while it does: a stalled one shows.
        What was left on the server is read back from it."""
        state = account_status(self.store, self.account.name)
        self.left_on_server = dict(state["left_on_server"])
        self.broken_fetches = dict(state["broken_fetches"])
        self._save_state({**state, "state": f"polling since {_now()}"})

    def _record(self, result: PollResult) -> None:
        state = account_status(self.store, self.account.name)
        now = _now()
        state["last_poll"] = now
        state["imported_total"] += result.imported
        state["duplicates_total"] += result.duplicates
        state["problems"] = result.problems[:20]
        state["left_on_server"] = _newest(self.left_on_server)
        state["broken_fetches"] = _newest(self.broken_fetches)
        if result.error:
            state.update(state="error", last_error=result.error, last_error_at=now)
        elif result.paused:
            state.update(state=f"paused: {result.paused}", last_success=now)
        elif result.problems:
            state.update(state=f"ok, with {len(result.problems)} problem(s): "
                               f"{result.problems[0]}", last_success=now)
        else:
            state.update(state="ok", last_success=now)
        self._save_state(state)

    def _save_state(self, state: dict) -> None:
        try:
            self.store.set_journal_state(self.account.name, state)
        except OutOfSpace as full:  # the poll's outcome is in the log; the next one records
            log.warning("journal %s: status not recorded: %s", self.account.name, full,
                        extra={"ACCOUNT": self.account.name})


def account_status(store: Store, account: str) -> dict:
    """An account's status as last recorded; last_error stays after recovery (state says)."""
    return {"state": "not polled yet", "last_poll": None, "last_success": None,
            "last_error": None, "last_error_at": None, "imported_total": 0,
            "duplicates_total": 0, "problems": [], "left_on_server": {}, "broken_fetches": {},
            **store.journal_state(account)}


def _newest(found: dict) -> dict:
    """The REMEMBERED newest entries of `found` (insertion order): a status stays small."""
    return dict(list(found.items())[-REMEMBERED:])


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe(exc: Exception) -> str:
    """An error in words an operator can act on (imaplib and poplib carry bytes)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"the server's TLS certificate is not trusted ({exc.verify_message})"
    if isinstance(exc, (MessageTooLarge, SessionAborted)):
        return f"{exc}; session ended, nothing of it deleted"
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


def open_mailbox(account: JournalAccount, timeout: float, limits: Limits,
                 watchdog: Watchdog) -> Mailbox:
    """A session with the account's server: `timeout` (seconds) bounds each read, `limits`
    what the server may send, `watchdog` each command. Raises what connecting raises."""
    if account.protocol == "imap":
        return ImapMailbox(account, timeout, limits, watchdog)
    return Pop3Mailbox(account, timeout, limits, watchdog)


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
    """One IMAP session on the account's folder (RFC 3501); keys are "UIDVALIDITY:UID".

    Without UIDPLUS (RFC 4315) a message cannot be expunged alone: deletions are flagged and
    expunged together, and only when every message flagged \\Deleted in the folder is one
    this session archived (someone else's flagged message may not be archived yet)."""

    def __init__(self, account: JournalAccount, timeout: float, limits: Limits,
                 watchdog: Watchdog):
        self.problems: list[str] = []
        self.flagged: set[int] = set()  # flagged \Deleted here, not yet expunged
        self.watchdog = watchdog
        self.client = self._connect(account, timeout, limits, watchdog)
        _dropping_on_error(self.client.shutdown, lambda: self._open_folder(account))

    @staticmethod
    def _connect(account: JournalAccount, timeout: float, limits: Limits,
                 watchdog: Watchdog) -> BoundedIMAP4:
        bounds = dict(timeout=timeout, limits=limits, watchdog=watchdog)
        if account.tls == "tls":
            return BoundedIMAP4_SSL(account.host, account.port,
                                    ssl_context=tls_context(account), **bounds)
        client = BoundedIMAP4(account.host, account.port, **bounds)
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
        if not validity or not validity.isdigit():
            raise MailboxError("the server sent no UIDVALIDITY for the folder")
        self.uidvalidity = validity.decode()
        # Capabilities grow after login (UIDPLUS is not announced before it).
        _, capabilities = self.client.capability()
        self.uidplus = b"UIDPLUS" in (capabilities[-1] or b"").upper().split()

    def keys(self) -> list[str]:
        return [f"{self.uidvalidity}:{uid}" for uid in self._search("ALL")]

    def _search(self, criteria: str) -> list[int]:
        """UIDs matching `criteria`, searched a chunk of message numbers at a time: one
        answer for a large folder outgrows any sane line limit (150k UIDs ~ 1 MB)."""
        uids: dict[int, None] = {}
        count = self.client.messages
        if count > MAX_MESSAGES:  # searched a chunk at a time, it would take days of commands
            raise MailboxError(f"the server says the folder holds {count} messages; more "
                               f"than {MAX_MESSAGES} is not a mailbox this puller reads")
        for first in range(1, count + 1, SEARCH_CHUNK):
            if self.watchdog.stop.is_set():
                raise SessionAborted("stopped: the service is shutting down")
            last = "*" if first + SEARCH_CHUNK > count else str(first + SEARCH_CHUNK - 1)
            _, found = _ok(self.client.uid("SEARCH", f"{first}:{last}", criteria), "search")
            uids.update(dict.fromkeys(self._uids_in(found)))
        return list(uids)

    def _uids_in(self, found: list) -> list[int]:
        """The UIDs of SEARCH answers: only nz-numbers (RFC 3501); a set like "1,2,3" or
        "1:*" used verbatim in UID STORE/EXPUNGE would name other messages."""
        uids, odd = [], []
        for token in b" ".join(item for item in found if isinstance(item, bytes)).split():
            if _NZ_NUMBER.fullmatch(token) and int(token) <= MAX_UID:
                uids.append(int(token))
            else:
                odd.append(token.decode("ascii", "replace")[:40])
        if odd:
            self.problems.append(f"ignored what is not a UID in the server's SEARCH answer: "
                                 f"{', '.join(odd[:3])}")
        return uids

    def fetch(self, key: str) -> bytes | None:
        """The message's bytes exactly as BODY[] of its UID; None: no longer on the server.
        Raises Refused when the answer is anything else (imap_fetch says what)."""
        uid = _uid(key)
        typ, data = self.client.uid("FETCH", uid, "(UID RFC822.SIZE BODY.PEEK[])")
        if typ == "NO":  # e.g. [EXPUNGEISSUED]: a peer's session took it meanwhile
            log.warning("IMAP message %s skipped: %s", key, _text(data))
            return None
        _ok((typ, data), "fetch")
        return body_of(data, int(uid))

    def delete(self, key: str) -> None:
        uid = _uid(key)
        _ok(self.client.uid("STORE", uid, "+FLAGS.SILENT", r"(\Deleted)"), "store \\Deleted")
        if self.uidplus:  # UID EXPUNGE removes exactly this message
            _ok(self.client.uid("EXPUNGE", uid), "expunge")
            return
        self.flagged.add(int(uid))
        if len(self.flagged) >= IMAP_EXPUNGE_EVERY:
            self._expunge_if_all_archived(final=False)

    def _expunge_if_all_archived(self, final: bool) -> None:
        """A plain EXPUNGE removes every \\Deleted message: only when each was archived here.
        (Another client flagging one between the search and the EXPUNGE cannot be ruled out
        without UIDPLUS; the window is one round trip.)"""
        if not self.flagged:
            return
        others = set(self._search("DELETED")) - self.flagged
        if others:
            if final:
                self.problems.append(
                    f"not expunged: {len(others)} message(s) flagged \\Deleted by another "
                    f"client, not archived (UIDs {', '.join(map(str, sorted(others)[:5]))}); "
                    f"the archived ones stay flagged until then")
            return
        _ok(self.client.expunge(), "expunge")
        self.flagged.clear()

    def close(self, clean: bool) -> None:
        try:
            if clean:
                self._expunge_if_all_archived(final=True)
            self.client.logout()
        except Exception:
            _quietly(self.client.shutdown)
            if clean:
                raise


class Pop3Mailbox:
    """POP3 sessions (RFC 1939; deletions take effect at QUIT); keys are the server's UIDLs,
    or "UIDL (message N)" for a UIDL the server gives more than one message."""

    def __init__(self, account: JournalAccount, timeout: float, limits: Limits,
                 watchdog: Watchdog):
        self.account, self.timeout = account, timeout
        self.limits, self.watchdog = limits, watchdog
        self.problems: list[str] = []
        self._open()

    def _open(self) -> None:
        self.client = self._connect()
        _dropping_on_error(self.client.close, self._login_and_list)
        self.deletions = 0
        self.in_step = True  # False once an answer was cut short: QUIT would be misread

    def _connect(self) -> BoundedPOP3:
        account = self.account
        bounds = dict(timeout=self.timeout, limits=self.limits, watchdog=self.watchdog)
        if account.tls == "tls":
            return BoundedPOP3_SSL(account.host, account.port, context=tls_context(account),
                                   **bounds)
        client = BoundedPOP3(account.host, account.port, **bounds)
        if account.tls == "starttls":  # refused by the server: an error, never plaintext
            _dropping_on_error(client.close, lambda: client.stls(context=tls_context(account)))
        return client

    def _login_and_list(self) -> None:
        self.client.user(self.account.user)
        self.client.pass_(self.account.password)
        listing = self.client.multiline("UIDL", self.limits.message_bytes)
        by_uidl: dict[str, list[int]] = {}
        for line in listing.splitlines():
            words = line.split()
            if len(words) < 2 or not _NZ_NUMBER.fullmatch(words[0]):
                self.problems.append(f"ignored a malformed UIDL line: {_text([line])[:60]!r}")
                continue
            by_uidl.setdefault(words[1].decode("ascii", "replace"), []).append(int(words[0]))
        self.sizes = self._sizes()
        self.numbers = {}  # key -> message number in this session
        for uidl, numbers in by_uidl.items():
            if len(numbers) == 1:
                self.numbers[uidl] = numbers[0]
                continue
            # Every one is taken: the UIDL cannot tell them apart (nor remember them).
            self.problems.append(f"UIDL {uidl!r} names {len(numbers)} messages; each is taken")
            self.numbers.update({f"{uidl} (message {n})": n for n in numbers})

    def _sizes(self) -> dict[int, int]:
        """Message number -> size in octets from LIST (RFC 1939); {} if the server's LIST
        is unusable: RETR's own cap still holds then."""
        try:
            listing = self.client.multiline("LIST", self.limits.message_bytes)
        except poplib.error_proto as exc:
            if not isinstance(exc.args[0], bytes):
                raise
            return {}
        sizes = {}
        for line in listing.splitlines():
            words = line.split()
            if len(words) >= 2 and words[0].isdigit() and words[1].isdigit():
                sizes[int(words[0])] = int(words[1])
        return sizes

    def keys(self) -> list[str]:
        return list(self.numbers)

    def fetch(self, key: str) -> bytes | None:
        number = self.numbers.get(key)
        if number is None:
            return None
        if self.sizes.get(number, 0) > self.limits.message_bytes:  # left, session kept
            raise Refused(f"{self.sizes[number]} octets (LIST), over the largest message"
                          f" taken ({self.limits.message_bytes} bytes)")
        try:
            return self._retr(number)
        except poplib.error_proto as exc:
            if exc.args[0] == "-ERR EOF" or not isinstance(exc.args[0], bytes):
                raise  # the connection ended (or poplib's own complaint)
            # The server said -ERR: typically a peer's session deleted it meanwhile.
            log.warning("journal %s: message %s skipped: %s", self.account.name, key,
                        describe(exc), extra={"ACCOUNT": self.account.name})
            return None

    def _retr(self, number: int) -> bytes:
        self.in_step = False
        try:
            raw = self.client.multiline(f"RETR {number}", self.limits.message_bytes)
        except poplib.error_proto as exc:
            self.in_step = isinstance(exc.args[0], bytes)  # the server's -ERR line: in step
            raise
        listed = self.sizes.get(number)
        if listed is not None and len(raw) < listed:
            # A dot line the server did not stuff ends the answer early: what is left of the
            # message is still on the wire, so the session is out of step (no QUIT: it would
            # commit this session's deletions on a misread stream).
            raise MailboxError(f"message {number}: the server sent {len(raw)} octets where "
                               f"LIST said {listed} (a line '.' not dot-stuffed?)")
        self.in_step = True
        return raw

    def delete(self, key: str) -> None:
        self.client.dele(self.numbers.pop(key))
        self.deletions += 1
        if self.deletions >= POP3_DELETES_PER_SESSION:
            self.client.quit()
            self._open()

    def close(self, clean: bool) -> None:
        # Whatever was deleted is stored, so QUIT (which commits it) is right even after an
        # error; a failed QUIT leaves the deletions undone, which a clean poll must report.
        # After an answer cut short the server's next line is not QUIT's: drop the line.
        try:
            if not self.in_step or self.client.out_of_step:
                raise MailboxError("session ended mid-answer")
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
