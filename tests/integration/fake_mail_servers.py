"""Small fake IMAP4rev1 and POP3 servers for hostile-server tests of the journal puller.

Each serves a few messages on 127.0.0.1 from a thread, in plain text, and answers as a
well-behaved server would unless a test replaces a command's handler (`handlers`): a handler
gets the session, the tag (IMAP) and the arguments, and writes whatever it likes with
session.send. The servers record what was really removed (`expunged`, `deleted`) so a test
can check that nothing unarchived left. Every socket has a timeout and every handler thread
is a daemon: a test ends even when the client under test misbehaves.
"""
from __future__ import annotations

import socketserver
import threading
from typing import Callable

SOCKET_TIMEOUT = 15


def message(n: int, body: bytes | None = None) -> bytes:
    """A small message, CRLF line ends, unique per n."""
    return (b"From: a@example.com\r\nTo: j@example.com\r\nSubject: fake %d\r\n"
            b"Message-ID: <fake-%d@example.com>\r\n\r\n" % (n, n)
            + (body if body is not None else b"body of message %d\r\n" % n))


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class _Fake:
    """Runs a handler class on a free port; use as a context manager."""

    def __init__(self, handler_class):
        owner = self

        class Handler(handler_class):
            fake = owner
        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.lock = threading.Lock()
        self.handlers: dict[str, Callable] = {}
        self.commands: list[str] = []

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class _Session(socketserver.StreamRequestHandler):
    fake: _Fake

    def send(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()

    def setup(self):
        self.request.settimeout(SOCKET_TIMEOUT)
        super().setup()


# -- IMAP ------------------------------------------------------------------------------------

class FakeImap(_Fake):
    """An IMAP4rev1 server on one folder: messages {uid: bytes}; `flagged` UIDs start with
    \\Deleted (another client's doing); `uidplus` says whether UID EXPUNGE exists."""

    def __init__(self, messages: dict[int, bytes], uidplus: bool = True,
                 flagged: set[int] = frozenset()):
        super().__init__(_ImapSession)
        self.messages = dict(sorted(messages.items()))
        self.flags = {uid: {"\\Deleted"} if uid in flagged else set() for uid in messages}
        self.uidplus = uidplus
        self.expunged: list[int] = []

    def seq(self, uid: int) -> int:
        return list(self.messages).index(uid) + 1

    def uids(self, uid_set: str) -> list[int]:
        """UIDs of a UID set (RFC 3501 sequence-set over UIDs) that exist."""
        largest = max(self.messages, default=0)
        return [uid for uid in self.messages if _in_set(uid, uid_set, largest)]


def _in_set(n: int, number_set: str, largest: int) -> bool:
    for part in number_set.split(","):
        low, _, high = part.partition(":")
        low_n = largest if low == "*" else int(low)
        high_n = low_n if not high else largest if high == "*" else int(high)
        if min(low_n, high_n) <= n <= max(low_n, high_n):
            return True
    return False


def fetch_response(seq: int, uid: int, body: bytes) -> bytes:
    """A correct answer to UID FETCH (UID RFC822.SIZE BODY.PEEK[])."""
    return b"* %d FETCH (UID %d RFC822.SIZE %d BODY[] {%d}\r\n%s)\r\n" % (
        seq, uid, len(body), len(body), body)


class _ImapSession(_Session):
    fake: FakeImap

    def handle(self):
        self.send(b"* OK fake IMAP ready\r\n")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            tag, _, rest = line.decode().rstrip("\r\n").partition(" ")
            words = rest.split(" ")
            name = words[0].upper()
            if name == "UID":
                name = "UID " + words[1].upper()
                words = words[1:]
            self.fake.commands.append(name)
            handler = self.fake.handlers.get(name) or getattr(
                type(self), "do_" + name.replace(" ", "_"), None)
            if handler is None:
                self.send(b"%s BAD unknown\r\n" % tag.encode())
            elif handler(self, tag.encode(), words[1:]) == "bye":
                return

    def ok(self, tag: bytes) -> None:
        self.send(b"%s OK done\r\n" % tag)

    def do_CAPABILITY(self, tag, args):
        caps = b"IMAP4rev1" + (b" UIDPLUS" if self.fake.uidplus else b"")
        self.send(b"* CAPABILITY " + caps + b"\r\n")
        self.ok(tag)

    def do_LOGIN(self, tag, args):
        self.ok(tag)

    def do_NOOP(self, tag, args):
        self.ok(tag)

    def do_SELECT(self, tag, args):
        self.send(b"* %d EXISTS\r\n* OK [UIDVALIDITY 777] ok\r\n* FLAGS (\\Deleted \\Seen)\r\n"
                  % len(self.fake.messages))
        self.send(b"%s OK [READ-WRITE] selected\r\n" % tag)

    do_EXAMINE = do_SELECT

    def do_LOGOUT(self, tag, args):
        self.send(b"* BYE bye\r\n")
        self.ok(tag)
        return "bye"

    def do_UID_SEARCH(self, tag, args):
        """UID SEARCH [seq-set] ALL|DELETED."""
        seqs = args[0] if args and args[0][:1].isdigit() else "1:*"
        wanted = [word.upper() for word in args if not word[:1].isdigit()]
        uids = [uid for n, uid in enumerate(self.fake.messages, 1)
                if _in_set(n, seqs, len(self.fake.messages))
                and ("DELETED" not in wanted or "\\Deleted" in self.fake.flags[uid])]
        self.send(b"* SEARCH" + b"".join(b" %d" % uid for uid in uids) + b"\r\n")
        self.ok(tag)

    def do_UID_FETCH(self, tag, args):
        for uid in self.fake.uids(args[0]):
            self.send(fetch_response(self.fake.seq(uid), uid, self.fake.messages[uid]))
        self.ok(tag)

    def do_UID_STORE(self, tag, args):
        for uid in self.fake.uids(args[0]):
            self.fake.flags[uid].add("\\Deleted")
        self.ok(tag)

    def do_UID_EXPUNGE(self, tag, args):
        self._expunge(self.fake.uids(args[0]))
        self.ok(tag)

    def do_EXPUNGE(self, tag, args):
        self._expunge(list(self.fake.messages))
        self.ok(tag)

    def _expunge(self, uids: list[int]) -> None:
        for uid in sorted(uids, reverse=True):
            if "\\Deleted" in self.fake.flags[uid]:
                self.send(b"* %d EXPUNGE\r\n" % self.fake.seq(uid))
                del self.fake.messages[uid]
                self.fake.expunged.append(uid)


# -- POP3 ------------------------------------------------------------------------------------

class FakePop3(_Fake):
    """A POP3 server: messages as (UIDL, bytes) in message-number order; DELE takes effect at
    QUIT (RFC 1939), `deleted` lists the UIDLs removed so."""

    def __init__(self, messages: list[tuple[str, bytes]]):
        super().__init__(_Pop3Session)
        self.messages = {n: pair for n, pair in enumerate(messages, 1)}
        self.deleted: list[str] = []


def multiline(data: bytes) -> bytes:
    """`data` as a multi-line answer: dot-stuffed at each line start (after any LF, as
    servers storing bare LF do), ended by ".CRLF" (a final CRLF added when data lacks one)."""
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    lines = data.split(b"\n")[:-1]
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\n"
                    for line in lines) + b".\r\n"


class _Pop3Session(_Session):
    fake: FakePop3

    def handle(self):
        self.marked: set[int] = set()
        self.send(b"+OK fake POP3 ready\r\n")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            words = line.decode().split()
            name = words[0].upper()
            self.fake.commands.append(name)
            handler = self.fake.handlers.get(name) or getattr(type(self), "do_" + name, None)
            if handler is None:
                self.send(b"-ERR unknown\r\n")
            elif handler(self, words[1:]) == "bye":
                return

    def live(self) -> list[int]:
        return [n for n in self.fake.messages if n not in self.marked]

    def do_USER(self, args):
        self.send(b"+OK\r\n")

    do_PASS = do_NOOP = do_USER

    def do_UIDL(self, args):
        self.send(b"+OK\r\n" + b"".join(b"%d %s\r\n" % (n, self.fake.messages[n][0].encode())
                                        for n in self.live()) + b".\r\n")

    def do_LIST(self, args):
        self.send(b"+OK\r\n" + b"".join(b"%d %d\r\n" % (n, len(self.fake.messages[n][1]))
                                        for n in self.live()) + b".\r\n")

    def do_RETR(self, args):
        n = int(args[0])
        if n not in self.live():
            self.send(b"-ERR no such message\r\n")
            return
        self.send(b"+OK\r\n" + multiline(self.fake.messages[n][1]))

    def do_DELE(self, args):
        self.marked.add(int(args[0]))
        self.send(b"+OK\r\n")

    def do_QUIT(self, args):
        for n in sorted(self.marked):
            self.fake.deleted.append(self.fake.messages.pop(n)[0])
        self.send(b"+OK bye\r\n")
        return "bye"
