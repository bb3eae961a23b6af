"""Bounded IMAP and POP3 client sessions for the journal puller: a hostile server can neither
grow this process's memory without limit nor hold a command (or a stopping service) forever.

imaplib and poplib do the protocol; these subclasses add what they lack:
- a cap on a message (an IMAP literal, a POP3 multi-line response) and on a line;
- a cap on the untagged IMAP responses kept for one command, which imaplib otherwise keeps
  across commands (so an old unsolicited FETCH would answer a later UID FETCH): they are
  cleared before each command;
- a watchdog that shuts the socket down when one command has run past its deadline while
  bringing less than a slow link's pace of bytes (socket timeouts bound each read, and a
  server trickling a byte at a time never trips them; a large message on a slow link is
  not cut), or the service is stopping;
- a byte-exact reader of POP3 multi-line responses (RFC 1939 section 3): poplib drops a
  line's leading CR and refuses long lines.
"""
from __future__ import annotations

import contextlib
import imaplib
import poplib
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator

MiB = 1024 * 1024
# Room beyond the model's largest message: line ends a server adds, a journal wrapper.
MESSAGE_SLACK_BYTES = 1 * MiB
# The longest line taken from a server (a SEARCH answer, asked a chunk at a time, is far below).
LINE_BYTES = 4 * MiB
# Untagged responses kept for one command: their text (literals aside) and literals.
UNTAGGED_TEXT_BYTES = 16 * MiB
UNTAGGED_EXTRA_BYTES = 16 * MiB
UNTAGGED_RESPONSES = 100_000
# A command may take this long whatever it brings; past it, it must bring MIN_BYTES_PER_SECOND
# on average since it began (a 100 MiB message takes 3.6 h at that pace, a trickle is cut).
COMMAND_SECONDS = 600
MIN_BYTES_PER_SECOND = 8 * 1024
# A command already running when the service is told to stop gets this long to finish.
STOP_GRACE_SECONDS = 1.0
WATCH_TICK_SECONDS = 0.2
POP3_READ_CHUNK = 64 * 1024
READ_PIECE_BYTES = 64 * 1024  # an IMAP literal is read this much at a time


class MessageTooLarge(Exception):
    """A message (or multi-line answer) over its cap; the session is unusable after it."""


class SessionAborted(Exception):
    """The watchdog ended the session: a command took too long, or the service is stopping."""


@dataclass(frozen=True)
class Limits:
    """Caps for one session, in bytes (responses: a count)."""
    message_bytes: int
    line_bytes: int = LINE_BYTES
    untagged_responses: int = UNTAGGED_RESPONSES
    untagged_text_bytes: int = UNTAGGED_TEXT_BYTES

    @classmethod
    def for_largest_message(cls, max_message_bytes: int) -> "Limits":
        """Limits for a model whose largest message is max_message_bytes (bytes)."""
        return cls(message_bytes=max_message_bytes + MESSAGE_SLACK_BYTES)

    @property
    def untagged_literal_bytes(self) -> int:
        return self.message_bytes + UNTAGGED_EXTRA_BYTES


class Watchdog:
    """Ends a session's socket when a command has run past `command_seconds` (seconds) while
    bringing under MIN_BYTES_PER_SECOND on average, or when `stop` is set while a command
    runs; `why` then says which. Use as a context manager around a session: its thread lives
    as long as the session. Each command runs in `with watchdog.command():`."""

    def __init__(self, stop: threading.Event, command_seconds: float = COMMAND_SECONDS):
        self.stop, self.command_seconds = stop, command_seconds
        self.why: str | None = None
        self._socket_of: Callable[[], socket.socket | None] = lambda: None
        self._started: float | None = None
        self._received = 0  # bytes the running command brought so far
        self._over = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="journal-watchdog",
                                         daemon=True)

    def __enter__(self) -> "Watchdog":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._over.set()
        self._thread.join()

    def watch(self, socket_of: Callable[[], socket.socket | None]) -> None:
        """Watch the socket `socket_of()` returns (it changes with STARTTLS)."""
        self._socket_of = socket_of

    @contextlib.contextmanager
    def command(self) -> Iterator[None]:
        """One command, from now until the block ends: time spent after it (archiving) does
        not count. Raises SessionAborted at once if the watchdog already ended the session."""
        self.arm()
        try:
            yield
        finally:
            self.disarm()

    def arm(self) -> None:
        """A command starts now."""
        if self.why:
            raise SessionAborted(self.why)
        self._received = 0
        self._started = time.monotonic()

    def brought(self, count: int) -> None:
        """The running command brought `count` more bytes (progress, for _why_end)."""
        self._received += count

    def disarm(self) -> None:
        """The command is answered: time spent archiving does not count."""
        self._started = None

    def _watch(self) -> None:
        while not self._over.wait(WATCH_TICK_SECONDS):
            why = self._why_end()
            if why and self.why is None:
                self.why = why
                self._shut()

    def _why_end(self) -> str | None:
        started = self._started
        if started is None:
            return None
        running = time.monotonic() - started
        if self.stop.is_set() and running > STOP_GRACE_SECONDS:
            return "stopped mid-command: the service is shutting down"
        if running > self.command_seconds and \
                self._received < MIN_BYTES_PER_SECOND * running:
            return (f"the server did not complete a command in {running:.0f} s, at under "
                    f"{MIN_BYTES_PER_SECOND // 1024} KiB/s; session ended")
        return None

    def _shut(self) -> None:
        sock = self._socket_of()
        if sock is not None:
            try:  # the blocked read returns at once; closing is left to the session's owner
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


# -- IMAP --------------------------------------------------------------------------------------

class _BoundedImap:
    """Mixin for imaplib.IMAP4 and IMAP4_SSL: caps, untagged responses per command, watchdog.
    `messages` follows the mailbox's message count (EXISTS and EXPUNGE responses)."""

    def __init__(self, *args, limits: Limits, watchdog: Watchdog, **kwargs):
        self.limits, self.watchdog = limits, watchdog
        self.messages = 0
        self._kept = [0, 0, 0]  # responses, text bytes, literal bytes: this command's
        watchdog.watch(lambda: getattr(self, "sock", None))
        with watchdog.command():  # the greeting
            super().__init__(*args, **kwargs)

    def _simple_command(self, name, *args):
        # Untagged responses of earlier commands (an unsolicited FETCH) must never be taken
        # for this command's answer.
        self.untagged_responses.clear()
        self._kept = [0, 0, 0]
        with self.watchdog.command():
            return super()._simple_command(name, *args)

    def _append_untagged(self, typ, dat):
        text, literal = dat if isinstance(dat, tuple) else (dat or b"", b"")
        kept = self._kept = [self._kept[0] + 1, self._kept[1] + len(text),
                             self._kept[2] + len(literal)]
        caps = [self.limits.untagged_responses, self.limits.untagged_text_bytes,
                self.limits.untagged_literal_bytes]
        if any(count > cap for count, cap in zip(kept, caps)):
            raise self.abort(f"the server sent over {caps[0]} untagged responses, {caps[1]}"
                             f" bytes of them or {caps[2]} bytes of literals for one command")
        self._follow_count(typ, dat)
        super()._append_untagged(typ, dat)

    def _follow_count(self, typ, dat) -> None:
        if typ == "EXISTS" and isinstance(dat, bytes) and dat.isdigit():
            self.messages = int(dat)
        elif typ == "EXPUNGE":
            self.messages = max(0, self.messages - 1)

    def read(self, size):
        if size > self.limits.message_bytes:
            raise MessageTooLarge(f"the server announced a {size}-byte message; the largest"
                                  f" taken is {self.limits.message_bytes} bytes")
        parts = []  # in pieces: the watchdog sees a large message arrive, not a stall
        while size > 0:
            part = super().read(min(size, READ_PIECE_BYTES))
            if not part:
                break
            self.watchdog.brought(len(part))
            parts.append(part)
            size -= len(part)
        return b"".join(parts)

    def readline(self):
        line = self.file.readline(self.limits.line_bytes + 1)
        if len(line) > self.limits.line_bytes:
            raise self.abort(f"the server sent a line over {self.limits.line_bytes} bytes")
        return line


class BoundedIMAP4(_BoundedImap, imaplib.IMAP4):
    """imaplib.IMAP4 (RFC 3501) with limits=Limits and watchdog=Watchdog keywords."""


class BoundedIMAP4_SSL(_BoundedImap, imaplib.IMAP4_SSL):
    """imaplib.IMAP4_SSL (RFC 3501) with limits=Limits and watchdog=Watchdog keywords."""


# -- POP3 --------------------------------------------------------------------------------------

class _BoundedPop3:
    """Mixin for poplib.POP3 and POP3_SSL: every command under the watchdog, and multi-line
    answers read byte-exact within a cap (multiline)."""

    def __init__(self, *args, limits: Limits, watchdog: Watchdog, **kwargs):
        self.limits, self.watchdog = limits, watchdog
        watchdog.watch(lambda: getattr(self, "sock", None))
        with watchdog.command():  # the greeting
            super().__init__(*args, **kwargs)

    out_of_step = False  # a reply was neither +OK nor -ERR: the stream was misread

    def _getresp(self):
        try:
            return super()._getresp()
        except poplib.error_proto as exc:
            line = exc.args[0] if exc.args else b""
            if not (isinstance(line, bytes) and line.startswith(b"-ERR")):
                self.out_of_step = True  # e.g. the rest of a message a stray dot line cut
            raise

    def _shortcmd(self, line):
        with self.watchdog.command():
            return super()._shortcmd(line)

    def _longcmd(self, line):
        with self.watchdog.command():
            return super()._longcmd(line)

    def _getlongresp(self):
        # poplib's own (CAPA, LIST, ...) kept every line of an endless answer: bounded here.
        resp = self._getresp()
        body = self._read_multiline(self.limits.line_bytes)
        return resp, body.splitlines(), len(body)

    def multiline(self, command: str, cap: int) -> bytes:
        """Send `command`; after +OK, its multi-line answer as sent (RFC 1939 section 3):
        dot-stuffing undone, the terminating ".CRLF" dropped, every other byte kept (line
        ends, a leading CR). Raises poplib.error_proto (-ERR, EOF), MessageTooLarge over
        `cap` bytes (the session is then unusable)."""
        with self.watchdog.command():
            self._putcmd(command)
            self._getresp()
            return self._read_multiline(cap)

    def _read_multiline(self, cap: int) -> bytes:
        out, at_line_start = bytearray(), True
        while True:
            # In chunks: a line may be longer than any line limit and still be mail.
            chunk = self.file.readline(POP3_READ_CHUNK)
            if not chunk:
                raise poplib.error_proto("-ERR EOF")
            self.watchdog.brought(len(chunk))
            if at_line_start:
                if chunk == b".\r\n":  # RFC 1939: CRLF.CRLF ends it, nothing looser
                    return bytes(out)
                if chunk.startswith(b"."):
                    chunk = chunk[1:]
            at_line_start = chunk.endswith(b"\n")
            out += chunk
            if len(out) > cap:
                raise MessageTooLarge(f"the server sent over {cap} bytes for one message")


class BoundedPOP3(_BoundedPop3, poplib.POP3):
    """poplib.POP3 (RFC 1939) with limits=Limits and watchdog=Watchdog keywords."""


class BoundedPOP3_SSL(_BoundedPop3, poplib.POP3_SSL):
    """poplib.POP3_SSL (RFC 1939) with limits=Limits and watchdog=Watchdog keywords."""
