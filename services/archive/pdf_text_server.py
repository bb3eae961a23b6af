"""pdftotext's text of PDFs from one long-running process (pdf-text-server, built from
pdf_text_server.cc beside this file by image/native.py) instead of a pdftotext process each.

pdftotext spends some 4 of its 7 ms a small PDF starting up: loading and relocating
poppler's 30 libraries. The server starts once per extraction worker and reads each PDF with
the very poppler classes pdftotext uses, so the text and the error lines are pdftotext's,
byte for byte (tests/unit/archive/test_pdf_text_server.py; past 64 KiB of error lines, only
the last error and the last line are kept, so a damaged PDF's reason is still pdftotext's).
Each PDF still gets what services.archive.tools gives a tool run: CPU_S of CPU (the
server's RLIMIT_CPU is moved to what it has used plus CPU_S before each PDF, so a server left
reading by a worker that was killed stops there too), BLOCKED_S blocked (waiting without
computing: cpu_time.BlockedClock), MEMORY_BYTES of address space, OUTPUT_BYTES of text. A
server that is blocked that long, crashes or exceeds a limit is that PDF's failure
(ToolFailed) and is replaced for the next one; one that grew past RECYCLE_RSS_BYTES or read
RECYCLE_DOCUMENTS PDFs is replaced too, so what one PDF left behind in its heap is bounded.
A PDF given as a file (a large attachment, decoded a piece at a time) is copied into the
server's scratch file (unlinked, in the temporary folder; emptied after each PDF), which
poppler reads from as it needs: neither process holds it whole.
Servers are per process: a forked child's copies of its parent's pipes are pointed at
/dev/null at the fork (os.register_at_fork), so the parent's server still ends when the
parent stops it or exits.

Where the program is missing (a tree installed without `make setup`), available() is False
and services.archive.documents runs pdftotext instead.
"""
from __future__ import annotations

import io
import math
import os
import resource
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from services.archive import cpu_time, tools

PROGRAM = Path(sys.prefix) / "libexec" / "archiver" / "pdf-text-server"
NAME = "pdf-text-server"
MAX_PDF_BYTES = (1 << 32) - 1  # a 'b' request's length field (4 bytes); a file's too
RECYCLE_DOCUMENTS = 1000
RECYCLE_RSS_BYTES = 48 * 1024 * 1024
READ, NOT_OPENED, NEEDS_PASSWORD, NO_PAGE = 0, 1, 2, 3  # the reply's status (pdf_text_server.cc)
PDFTOTEXT_EXIT_CODE = {READ: 0, NOT_OPENED: 1, NEEDS_PASSWORD: 1, NO_PAGE: 99}
_LENGTH = struct.Struct(">I")
SEND_CHUNK_BYTES = 1 << 20  # a PDF given as a file is copied in chunks of this size
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Reply:
    """What the server made of one PDF: `status` (READ, NOT_OPENED, NEEDS_PASSWORD,
    NO_PAGE), its `text` (UTF-8 bytes, pages ended by form feeds) and poppler's `errors`
    (pdftotext's lines)."""
    status: int
    text: bytes
    errors: str


def available() -> bool:
    return os.access(PROGRAM, os.X_OK)


def read_pdf(source: bytes | BinaryIO, max_pages: int) -> Reply:
    """The text of the PDF `source` of its first `max_pages` pages, read by this process's
    server (started on first use, thread-safe). `source` is the PDF's bytes, sent to the
    server whole, or a seekable binary file of them (a large attachment, never held whole),
    copied a chunk at a time into the server's scratch file, which the server reads from.
    Raises tools.ToolFailed when it could not be read: timed out, killed at a limit,
    crashed, more than MAX_PDF_BYTES."""
    size = len(source) if isinstance(source, bytes) else source.seek(0, io.SEEK_END)
    if size > MAX_PDF_BYTES:
        raise tools.ToolFailed(f"{NAME}: a PDF of {size} bytes is more than it reads")
    return _server_of_this_process(max_pages).read(source)


class _Server:
    """One pdf-text-server process and the PDFs it has read; replaced when it must be."""

    def __init__(self, max_pages: int):
        self.max_pages = max_pages
        self.lock = threading.Lock()
        self.process: subprocess.Popen | None = None
        self.scratch: BinaryIO | None = None  # the unlinked file a PDF given as a file goes in
        self.documents = 0

    def read(self, source: bytes | BinaryIO) -> Reply:
        with self.lock:
            process = self._running()
            try:
                self._allow_one_more_pdf(process)
                _send(process, self.scratch, source)
                reply = _reply_of(process)
                self.scratch.seek(0)
                self.scratch.truncate()  # the next PDF is written from its start
            except BaseException:
                self._stop(kill=True)
                raise
            self.documents += 1
            if self.documents >= RECYCLE_DOCUMENTS or _rss_bytes(process) > RECYCLE_RSS_BYTES:
                self._stop(kill=False)
            return reply

    def _running(self) -> subprocess.Popen:
        if self.process is not None and self.process.poll() is None:
            return self.process
        self._stop(kill=True)  # it ended between two PDFs: not the next one's fault
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
        self.scratch = tempfile.TemporaryFile(prefix="archiver-pdf-")
        scratch_fd = self.scratch.fileno()
        self.process = subprocess.Popen(
            [str(PROGRAM), str(self.max_pages), str(tools.OUTPUT_BYTES), str(scratch_fd)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            cwd="/", env=env, pass_fds=(scratch_fd,))
        self.documents = 0
        _add_live(self)
        try:
            tools.limit(self.process, but=(resource.RLIMIT_CPU,))  # CPU: _allow_one_more_pdf
        except tools.ToolFailed:
            self._stop(kill=True)
            raise
        return self.process

    def _allow_one_more_pdf(self, process: subprocess.Popen) -> None:
        """RLIMIT_CPU at what the server has used so far plus tools.CPU_S (soft: SIGXCPU
        ends it; the hard limit stays, as only root may raise it again)."""
        try:
            _, hard = resource.prlimit(process.pid, resource.RLIMIT_CPU)
            soft = math.ceil(cpu_time.own_seconds(process.pid)) + tools.CPU_S
            if hard != resource.RLIM_INFINITY:
                soft = min(soft, hard)
            resource.prlimit(process.pid, resource.RLIMIT_CPU, (soft, hard))
        except OSError as exc:  # it ended since _running() looked (ProcessLookupError too)
            raise tools.ToolFailed(f"{NAME}: its CPU limit could not be set ({exc})") from None

    def _stop(self, kill: bool) -> None:
        process, self.process = self.process, None
        scratch, self.scratch = self.scratch, None
        if scratch is not None:
            scratch.close()
        if process is None:
            return
        _remove_live(self)
        if kill:
            process.kill()
        for stream in (process.stdin, process.stdout):
            try:
                stream.close()
            except OSError:
                pass  # a pipe the killed server left unread
        process.wait()


def _send(process: subprocess.Popen, scratch: BinaryIO, source: bytes | BinaryIO) -> None:
    """One request (pdf_text_server.cc's format). PDF bytes are sent as 'b', their length
    and them: the server reads every request whole before it works on it, so this never
    waits on a PDF being read (the three are written apart: joined, they were a copy of a PDF
    of tens of MB). A file is copied from its start into the empty `scratch` file, a chunk at
    a time, and sent as 'f': the server reads it from there as poppler needs it."""
    try:
        if isinstance(source, bytes):
            process.stdin.write(b"b")
            process.stdin.write(_LENGTH.pack(len(source)))
            process.stdin.write(source)
        else:
            source.seek(0)
            shutil.copyfileobj(source, scratch, SEND_CHUNK_BYTES)
            scratch.flush()
            process.stdin.write(b"f")
        process.stdin.flush()
    except (BrokenPipeError, ConnectionResetError):  # it ended reading it (memory limit)
        raise _ended(process) from None


def _reply_of(process: subprocess.Popen) -> Reply:
    """Read one reply (pdf_text_server.cc's format), unless the server is blocked for
    tools.BLOCKED_S first."""
    reader = _Reader(process)
    status = reader.take(1)[0]
    text = reader.take(_LENGTH.unpack(reader.take(4))[0])
    errors = reader.take(_LENGTH.unpack(reader.take(4))[0])
    return Reply(status, text, errors.decode("utf-8", "replace"))


class _Reader:
    """Exact reads from the server's standard output, each raising ToolFailed once the
    server has been blocked for tools.BLOCKED_S (looked at every cpu_time.LOOK_S without
    output) or when it ended (with the signal that ended it)."""

    def __init__(self, process: subprocess.Popen):
        self.process, self.blocked = process, cpu_time.BlockedClock()
        self.fd = process.stdout.fileno()
        self.poll = select.poll()
        self.poll.register(self.fd, select.POLLIN)

    def take(self, size: int) -> bytes:
        chunks, wanted = [], size
        while wanted:
            left = min(cpu_time.LOOK_S, tools.BLOCKED_S - self.blocked.seconds)
            if not self.poll.poll(max(10, int(left * 1000))):
                if self.blocked.look(self.process.pid) >= tools.BLOCKED_S:
                    raise tools.ToolFailed(f"{NAME} was blocked for {tools.BLOCKED_S:g} s")
                continue
            chunk = os.read(self.fd, min(wanted, 1 << 20))
            if not chunk:
                raise _ended(self.process)
            chunks.append(chunk)
            wanted -= len(chunk)
        return b"".join(chunks)


def _ended(process: subprocess.Popen) -> tools.ToolFailed:
    """The failure of a server that ended before its reply, with what ended it."""
    code = process.wait()
    if code < 0:
        return tools.ToolFailed(f"{NAME} was killed by signal {-code}" + tools.limit_hint(-code))
    return tools.ToolFailed(f"{NAME} ended (exit code {code}) before its reply")


def _rss_bytes(process: subprocess.Popen) -> int:
    try:
        return int(Path(f"/proc/{process.pid}/statm").read_bytes().split()[1]) * _PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return 0


_servers: dict[int, _Server] = {}  # by max_pages
_live: set[_Server] = set()  # every server of this process with a process running: stop()'s
_servers_lock = threading.Lock()  # taken after a _Server's own lock, never before it


def _server_of_this_process(max_pages: int) -> _Server:
    with _servers_lock:
        if max_pages not in _servers:
            _servers[max_pages] = _Server(max_pages)
        return _servers[max_pages]


def _add_live(server: _Server) -> None:
    with _servers_lock:
        _live.add(server)


def _remove_live(server: _Server) -> None:
    with _servers_lock:
        _live.discard(server)


def stop() -> None:
    """End this process's servers and wait for them (a worker that exits reaps its own);
    the next read_pdf() starts one again. A thread that took a server before this and reads
    with it after starts a process stop() will know of again."""
    with _servers_lock:
        running = list(_live)
        _servers.clear()
    for server in running:
        with server.lock:
            server._stop(kill=False)


def _forget_servers_in_forked_child() -> None:
    """In a child just forked: its copies of the parent's server pipes point at /dev/null
    instead (else the parent's server never saw end-of-file while the child lives, and
    the parent's stop() waited on it), and it starts servers of its own. Takes no lock:
    another thread of the parent may have held one at the fork."""
    global _servers_lock
    null = os.open(os.devnull, os.O_RDWR)
    for server in list(_live):
        process = server.process
        for stream in (process.stdin, process.stdout) if process is not None else ():
            os.dup2(null, stream.fileno())  # the file objects stay valid, on /dev/null
        if server.scratch is not None:
            server.scratch.close()  # this child's descriptor; the parent's file is untouched
        server.process, server.scratch, server.lock = None, None, threading.Lock()
    os.close(null)
    _live.clear()
    _servers.clear()
    _servers_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_servers_in_forked_child)
