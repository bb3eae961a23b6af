"""Text of a message for the index: body and attachment text (text, HTML, PDF, DOCX, XLSX,
attached messages), and the sandboxed worker pool that runs it under time and memory limits.

extract() is pure and never raises on bad input; a file a library cannot read becomes an
attachment with an error. What extract() cannot survive (a parser that loops, a zip bomb,
a crash in C code) is the pool's business. Before a library parses an attachment, the
worker tells the pool the attachment's SHA-256; when the worker then times out, runs out of
memory or dies, the pool blames that attachment, remembers the failure by its SHA-256
(services.archive.extraction_memo) and reads the message again without it; the next message
carrying the same attachment costs a lookup. A failure no attachment explains gives the
message fallback() (headers and plain body only), in a fresh worker under the same limits;
if even that fails, the message is indexed from what the store recorded at intake.
"""
from __future__ import annotations

import binascii
import contextvars
import hashlib
import io
import logging
import multiprocessing
import os
import multiprocessing.connection
import quopri
import re
import resource
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from email.message import Message
from typing import Callable, Iterable, Iterator

import lxml.html

from services.archive import mime
from services.archive.extraction_memo import ExtractionMemo, MemoryMemo

FALLBACK_BODY_BYTES = 1024 * 1024
FALLBACK_PARSE_BYTES = 4 * 1024 * 1024
MAX_FAILURES = 20               # reasons kept per message
MAX_NESTED_MESSAGES = 5         # message/rfc822 inside message/rfc822 ... deeper ones: headers only
PDF_MIME = "application/pdf"
DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
TYPE_OF_EXTENSION = {".pdf": PDF_MIME, ".docx": DOCX_MIME, ".xlsx": XLSX_MIME,
                     ".txt": "text/plain", ".htm": "text/html", ".html": "text/html",
                     ".eml": "message/rfc822"}
# Block elements end a line, so "<p>a</p><p>b</p>" gives two words, not "ab".
HTML_BLOCKS = ("p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table",
               "blockquote", "pre", "hr", "dt", "dd", "section", "article", "header", "footer")
HTML_INVISIBLE = ("script", "style", "head", "title")


@dataclass
class AttachmentText:
    filename: str | None
    mime_type: str
    text: str
    error: str | None = None


@dataclass
class Extracted:
    summary: mime.MessageSummary
    body: str
    attachments: list[AttachmentText] = field(default_factory=list)
    failed: str | None = None       # why only a fallback could be produced, if so

    @property
    def failures(self) -> list[str]:
        """Why something could not be read: the message's reason, then each attachment's
        ("NAME: reason"), at most MAX_FAILURES of them; empty when all was read."""
        found = [self.failed] if self.failed else []
        found += [f"{a.filename or a.mime_type}: {a.error}" for a in self.attachments
                  if a.error and a.error != self.failed]
        return found[:MAX_FAILURES]


def unread(reason: str) -> Extracted:
    """A message none of whose content could be read: the index takes its headers from the
    store's metadata (recorded at intake) instead."""
    summary = mime.MessageSummary(None, None, [], [], [], [], "", [], False)
    return Extracted(summary, "", [], failed=reason)


class AttachmentGuard:
    """Asked before a library parses an attachment, told how it went after. This one lets
    everything be read; the worker's asks its pool, which remembers failures."""

    def before(self, sha256_hex: str) -> str | None:
        """Why reading these bytes failed before (then they are not read), or None."""
        return None

    def after(self, sha256_hex: str, error: str | None) -> None:
        """The library read them (error None) or raised `error`."""


_guard = contextvars.ContextVar("attachment_guard", default=AttachmentGuard())


def extract(raw: bytes, cap_bytes: int, guard: AttachmentGuard | None = None) -> Extracted:
    """Body and attachment text of a raw message; each attachment's text at most cap_bytes
    of UTF-8. Raises only MemoryError (the pool turns it into a fallback)."""
    token = _guard.set(guard or AttachmentGuard())
    try:
        return _extract(raw, cap_bytes)
    finally:
        _guard.reset(token)


def _extract(raw: bytes, cap_bytes: int) -> Extracted:
    message = mime.parse_message(raw)
    if any(isinstance(defect, mime.NestingTooDeep) for defect in message.defects):
        return fallback(raw, "MIME structure nested too deeply; headers and raw body only")
    body, attachments = _body_and_attachments(message, cap_bytes, nesting=0)
    return Extracted(mime.summarize_message(message), body, attachments)


def fallback(raw: bytes, reason: str) -> Extracted:
    """What can be had without reading attachments: the summary, the first plain-text body
    (or the raw body) up to 1 MB, and the attachments by name and type with no text; all
    from the first FALLBACK_PARSE_BYTES of the message, so that its time and memory do not
    grow with the message (parsing takes some twenty times a message's size in memory)."""
    message = mime.parse_message(raw[:FALLBACK_PARSE_BYTES])
    body_part = next((part for part in mime.iter_parts(message, into_messages=False)
                      if _is_body(part) and part.get_content_type() == "text/plain"), None)
    if body_part is not None:  # (not `if body_part`: a Message without headers is falsy)
        body = _part_text(body_part, FALLBACK_BODY_BYTES)
    else:
        body = _raw_body_text(raw)
    attachments = [AttachmentText(mime.filename_of(part), _mime_type(part), "", reason)
                   for part in mime.iter_parts(message, into_messages=False)
                   if mime.is_attachment(part)]
    return Extracted(mime.summarize_message(message), body, attachments, failed=reason)


def _raw_body_text(raw: bytes) -> str:
    """Everything after the header block, decoded by guess, up to the fallback limit."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        if separator in raw:
            body = raw.split(separator, 1)[1][:FALLBACK_BODY_BYTES]
            return truncate_utf8(mime.decode_text(body, None), FALLBACK_BODY_BYTES)
    return ""


def _body_and_attachments(message: Message, cap_bytes: int, nesting: int,
                          read_attachments: bool = True):
    plain, html, attachments = [], [], []
    for part in mime.iter_parts(message, into_messages=False):
        if _is_container(part, message):
            continue
        if mime.is_attachment(part):
            if read_attachments:
                attachments.append(_attachment(part, cap_bytes, nesting))
        elif part.get_content_type() == "text/html":
            html.append(_html_to_text(_part_bytes(part), _safe_charset(part)))
        else:
            plain.append(_part_text(part, None))
    # HTML is the body only when there is no plain-text alternative to it.
    body = "\n".join(plain) if any(text.strip() for text in plain) else "\n".join(html)
    return body, attachments


def body_text(raw: bytes, parse_limit: int | None = None) -> str:
    """The body's text as the index reads it (its plain text, else its HTML as text),
    reading no attachment: cheap enough for every hit of a page of results. Only the
    first `parse_limit` bytes are parsed when given (a body comes before attachments).
    Never raises on bad input."""
    message = mime.parse_message(raw[:parse_limit] if parse_limit else raw)
    return _body_and_attachments(message, 0, 0, read_attachments=False)[0]


def _is_container(part: Message, root: Message) -> bool:
    """A multipart, or the root itself; an attached message/rfc822 is a leaf here."""
    return part.is_multipart() and (part is root or part.get_content_maintype() != "message")


def _is_body(part: Message) -> bool:
    """A text leaf that is no attachment."""
    return not part.is_multipart() and not mime.is_attachment(part)


def _attachment(part: Message, cap_bytes: int, nesting: int) -> AttachmentText:
    filename, mime_type = mime.filename_of(part), _mime_type(part)
    effective = effective_type(mime_type, filename)
    try:
        if effective in LIBRARY_READERS:
            text, error = _read_with_library(LIBRARY_READERS[effective], _part_bytes(part),
                                             cap_bytes)
            return AttachmentText(filename, mime_type, text, error)
        pieces = _attachment_pieces(part, effective, cap_bytes, nesting)
        return AttachmentText(filename, mime_type, join_capped(pieces, cap_bytes))
    except MemoryError:
        raise
    except Exception as exc:  # a broken file is that attachment's problem, not the message's
        return AttachmentText(filename, mime_type, "", _error_text(exc))


def _read_with_library(reader: Callable[[bytes], Iterable[str]], data: bytes,
                       cap_bytes: int) -> tuple[str, str | None]:
    """(text, error) of a document a third-party parser reads, unless the guard knows it
    fails: then ("", the reason it failed before)."""
    guard, sha256_hex = _guard.get(), hashlib.sha256(data).hexdigest()
    known = guard.before(sha256_hex)
    if known is not None:
        return "", known
    try:
        text, error = join_capped(reader(data), cap_bytes), None
    except MemoryError:
        raise
    except Exception as exc:
        text, error = "", _error_text(exc)
    guard.after(sha256_hex, error)
    return text, error


def _error_text(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def reads_text_of(mime_type: str, filename: str | None) -> bool:
    """Whether extract() reads text out of an attachment of this type and name (else it
    is searchable by its name and type only)."""
    effective = effective_type(mime_type, filename)
    return effective in LIBRARY_READERS or effective.startswith("text/") \
        or effective == "message/rfc822"


def inner_message(part: Message) -> Message:
    """The message inside a message/rfc822 part, also when a mailer encoded it."""
    return _inner_message(part)


def effective_type(mime_type: str, filename: str | None) -> str:
    """The type extract() reads a part as: the declared one, or for a generic one the one
    its file name's extension says (mailers send documents as application/octet-stream)."""
    if mime_type in ("application/octet-stream", "application/x-zip-compressed",
                     "application/zip", "binary/octet-stream") and filename:
        extension = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
        return TYPE_OF_EXTENSION.get(extension, mime_type)
    return mime_type


def _attachment_pieces(part: Message, mime_type: str, cap_bytes: int,
                       nesting: int) -> Iterable[str]:
    if mime_type == "message/rfc822":
        return [_nested_message_text(part, cap_bytes, nesting + 1)]
    if mime_type == "text/html":
        return [_html_to_text(_part_bytes(part), _safe_charset(part))]
    if mime_type.startswith("text/"):
        # Each character is at most 4 bytes in any codec, so this prefix holds the cap.
        return [_part_text(part, 4 * cap_bytes)]
    return []  # images, archives, unknown binaries: searchable by name and type only


def _nested_message_text(part: Message, cap_bytes: int, nesting: int) -> str:
    inner = _inner_message(part)
    lines = [f"{name}: {mime.decode_header_text(mime.header(inner, name))}"
             for name in ("From", "To", "Subject")]
    if nesting > MAX_NESTED_MESSAGES:
        return "\n".join(lines)
    body, attachments = _body_and_attachments(inner, cap_bytes, nesting)
    return "\n".join([*lines, "", body, *(a.text for a in attachments if a.text)])


def _inner_message(part: Message) -> Message:
    payload = part.get_payload()
    inner = payload[0] if isinstance(payload, list) and payload else None
    encoding = str(part.get("content-transfer-encoding", "")).strip().lower()
    if isinstance(inner, Message) and encoding not in ("base64", "quoted-printable"):
        return inner
    # RFC 2046 forbids encoding a message/rfc822 part, yet some mailers do; the parser then
    # took the encoded text for a message. Re-encode what it saw, decode, parse again.
    try:
        source = inner.as_bytes() if isinstance(inner, Message) else _part_bytes(part)
        if encoding == "base64":
            source = binascii.a2b_base64(source)
        elif encoding == "quoted-printable":
            source = quopri.decodestring(source)
    except (binascii.Error, ValueError, TypeError, LookupError):
        return inner if isinstance(inner, Message) else Message()
    return mime.parse_message(source)


# pypdf, python-docx and openpyxl are imported where used: they take a third of a second
# to import, which every CLI command would pay; the workers' fork server imports them once.
PRELOADED = ("pypdf", "docx", "openpyxl")

def _pdf_pieces(data: bytes) -> Iterator[str]:
    import pypdf
    reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted:
        reader.decrypt("")  # most "encrypted" PDFs only restrict printing; others raise here
    for page in reader.pages:
        yield page.extract_text() + "\n"


def _docx_pieces(data: bytes) -> Iterator[str]:
    import docx
    document = docx.Document(io.BytesIO(data))
    for paragraph in document.paragraphs:
        yield paragraph.text + "\n"
    for table in document.tables:
        for row in table.rows:
            yield "\t".join(cell.text for cell in row.cells) + "\n"


def _xlsx_pieces(data: bytes) -> Iterator[str]:
    import openpyxl
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # openpyxl warns about styles and extensions it skips
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        for sheet in book.worksheets:
            yield sheet.title + "\n"
            for row in sheet.iter_rows(values_only=True):
                cells = [str(value) for value in row if value is not None]
                if cells:
                    yield "\t".join(cells) + "\n"
    finally:
        book.close()


# Third-party parsers, each a hostile input's way to loop or to eat memory: these are what
# the pool's memo of failures guards.
LIBRARY_READERS = {PDF_MIME: _pdf_pieces, DOCX_MIME: _docx_pieces, XLSX_MIME: _xlsx_pieces}


def _html_to_text(data: bytes, charset: str | None) -> str:
    # lxml is given UTF-8 bytes: str input refuses NULs and XML encoding declarations.
    text = mime.decode_text(data, charset)
    if not text.strip():
        return ""
    parser = lxml.html.HTMLParser(encoding="utf-8")
    # Empty on lxml.etree.ParserError, e.g. for a document of only comments.
    root = mime.safely(lambda: lxml.html.document_fromstring(
        text.encode("utf-8", "replace"), parser=parser), None)
    if root is None:
        return ""
    for element in list(root.iter(*HTML_INVISIBLE)):
        element.drop_tree()
    for element in root.iter(*HTML_BLOCKS):
        element.tail = "\n" + (element.tail or "")
    return _tidy_whitespace(root.text_content())


def _tidy_whitespace(text: str) -> str:
    """One line per block, single spaces: the layout of HTML source means nothing."""
    text = re.sub(r"[^\S\n]+", " ", text)
    return re.sub(r" *\n[\s]*", "\n", text).strip()


def _part_bytes(part: Message) -> bytes:
    data = mime.safely(lambda: part.get_payload(decode=True), None)
    return data if isinstance(data, bytes) else b""


def _part_text(part: Message, limit_bytes: int | None) -> str:
    data = _part_bytes(part)
    if limit_bytes is not None:
        data = data[:limit_bytes]
    return mime.decode_text(data, _safe_charset(part))


def _safe_charset(part: Message) -> str | None:
    return mime.safely(part.get_content_charset, None)


def _mime_type(part: Message) -> str:
    return mime.safely(part.get_content_type, "application/octet-stream")


def join_capped(pieces: Iterable[str], cap_bytes: int) -> str:
    """Join text pieces, stopping once cap_bytes of UTF-8 are reached (so a 500-page PDF is
    not read to the end for a 256 KB cap)."""
    taken, size = [], 0
    for piece in pieces:
        taken.append(piece)
        size += len(piece.encode("utf-8", "replace"))
        if size >= cap_bytes:
            break
    return truncate_utf8("".join(taken), cap_bytes)


def truncate_utf8(text: str, cap_bytes: int) -> str:
    """At most cap_bytes of UTF-8, cut on a character boundary; lone surrogates (which some
    PDF fonts produce and UTF-8 cannot carry) become '?'."""
    data = text[:cap_bytes].encode("utf-8", "replace")[:cap_bytes]
    return data.decode("utf-8", "ignore")


# --- the sandboxed pool -------------------------------------------------------------------

READY = b"ready"
EXTRACT, FALLBACK = "extract", "fallback"
# Reads of one message before it gets the fallback: the second one skips the attachment the
# first was blamed on, so the rest of the message is still read.
ATTEMPTS = 2


@dataclass
class _Job:
    index: int                       # position in extract_many's list
    raw: bytes
    digest: str                      # SHA-256 of raw (the store's digest)
    attempts: int = 0
    fallback_reason: str | None = None  # set: the worker gives fallback() for this reason


@dataclass
class _Running:
    job: _Job
    deadline: float                  # time.monotonic()
    reading: str | None = None       # SHA-256 of the attachment a library is reading now


class ExtractionPool:
    """Worker processes that run extract() under a time limit and an address-space limit,
    and remember by SHA-256 what could not be read (`memo`: an ExtractionMemo keeps it in
    the store across restarts; by default it lasts as long as the pool).

    Bounds: one message costs at most ATTEMPTS + 1 time limits of one worker the first time
    (two reads, then the fallback) and a memo lookup per attachment every later time; a
    worker never holds more than memory_mb; the pool process itself never parses mail.

    Workers are started with 'forkserver', not 'fork': a forked indexer would hand its LMDB
    map and Xapian state to the child, and RLIMIT_AS would count the whole LMDB map.
    """

    def __init__(self, cap_bytes: int, workers: int = 1, timeout_s: float = 20.0,
                 memory_mb: int = 512, memo: ExtractionMemo | MemoryMemo | None = None):
        self.cap_bytes, self.timeout_s, self.memory_mb = cap_bytes, timeout_s, memory_mb
        self.memo = memo if memo is not None else MemoryMemo()
        # For status, metrics and tests: workers killed at their time limit, workers
        # started again (after a timeout, out of memory, a crash), failures known already.
        self.timeouts = self.worker_restarts = self.memo_hits = 0
        self._context = multiprocessing.get_context("forkserver")
        # The fork server imports the extraction libraries once, so a worker restarted after
        # a timeout is a cheap fork and a time limit counts reading, not importing (takes
        # effect only if the fork server is not yet running).
        self._context.set_forkserver_preload(["services.archive.extract", *PRELOADED])
        self._workers = [self._start_worker() for _ in range(max(1, workers))]

    @classmethod
    def for_model(cls, profile, memo: ExtractionMemo | None = None) -> ExtractionPool:
        """A pool sized for a model profile (firmware.models.ModelProfile): its attachment
        text cap and extraction limits, and at most two workers (one per core of the
        smallest appliances)."""
        return cls(profile.attachment_text_bytes, workers=min(2, os.cpu_count() or 1),
                   timeout_s=profile.extraction.timeout_s,
                   memory_mb=profile.extraction.memory_mb, memo=memo)

    def __enter__(self) -> ExtractionPool:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def extract_many(self, raws: list[bytes]) -> list[Extracted]:
        """Results in the order of raws. Never raises for a message: one that times out, runs
        out of memory or kills its worker is read again without the attachment blamed, or
        gets fallback(), or at worst unread(); the worker is replaced."""
        results: list[Extracted | None] = [None] * len(raws)
        waiting = deque(job for index, raw in enumerate(raws)
                        if (job := self._plan(index, raw, results)) is not None)
        running: dict[int, _Running] = {}  # worker slot -> the job it works on
        while waiting or running:
            for slot in range(len(self._workers)):
                if slot not in running and waiting:
                    self._dispatch(slot, waiting.popleft(), running, waiting, results)
            self._collect(running, waiting, results)
        return results

    @property
    def worker_pids(self) -> list[int]:
        """For status and metrics (memory of the workers), and for tests."""
        return [worker.process.pid for worker in self._workers]

    def close(self) -> None:
        for worker in self._workers:
            worker.stop(kill=False)
        self._workers = []

    def _start_worker(self) -> _Worker:
        return _Worker(self._context, self.cap_bytes, self.memory_mb)

    def _plan(self, index: int, raw: bytes, results: list) -> _Job | None:
        """The job for one message, as far as its known failures allow; None when even its
        fallback failed before (its result is then set here)."""
        job = _Job(index, raw, hashlib.sha256(raw).hexdigest())
        if (reason := self.memo.failure(_fallback_key(job.digest))) is not None:
            self.memo_hits += 1
            results[index] = unread(reason)
            return None
        if (reason := self.memo.failure(job.digest)) is not None:
            self.memo_hits += 1
            job.fallback_reason = reason
        return job

    def _dispatch(self, slot: int, job: _Job, running: dict, waiting: deque,
                  results: list) -> None:
        if not self._workers[slot].process.is_alive():
            self._restart(slot)  # died idle (e.g. the OOM killer): start afresh
        running[slot] = _Running(job, time.monotonic() + self.timeout_s)
        mode = EXTRACT if job.fallback_reason is None else FALLBACK
        try:
            self._workers[slot].connection.send((mode, job.fallback_reason))
            self._workers[slot].connection.send_bytes(job.raw)
        except OSError:  # it gave up reading the message (too big for its memory limit)
            if _said_something(self._workers[slot].connection):
                self._hear(slot, running, waiting, results)  # why: ("failed", ...)
            else:
                self._failed(slot, running, waiting, results, "worker died")

    def _collect(self, running: dict, waiting: deque, results: list) -> None:
        """Wait for the first word from a worker or the first deadline; hear out every worker
        that spoke, then settle those past their deadline."""
        if not running:
            return
        next_deadline = min(entry.deadline for entry in running.values())
        connections = {self._workers[slot].connection: slot for slot in running}
        ready = multiprocessing.connection.wait(
            list(connections), timeout=max(0.0, next_deadline - time.monotonic()))
        for connection in ready:
            slot = connections[connection]
            entry = running[slot]
            while running.get(slot) is entry and connection.poll():
                self._hear(slot, running, waiting, results)
        now = time.monotonic()
        for slot, entry in list(running.items()):
            if now >= entry.deadline:
                self.timeouts += 1
                self._failed(slot, running, waiting, results,
                             f"timed out after {self.timeout_s:g} s")

    def _hear(self, slot: int, running: dict, waiting: deque, results: list) -> None:
        """One word from a worker: about to read an attachment, done reading it, or done."""
        connection, entry = self._workers[slot].connection, running[slot]
        try:
            kind, payload = connection.recv()
        except (EOFError, OSError):
            code = self._workers[slot].exit_code()
            self._failed(slot, running, waiting, results, f"worker died (exit code {code})")
            return
        if kind == "reading":
            entry.reading = payload
            known = self.memo.failure(payload)
            self.memo_hits += known is not None
            try:
                connection.send(known)
            except OSError:
                pass  # it died; its end-of-file is heard next
        elif kind == "read":
            if payload is not None:  # the library raised: as good as known for next time
                self.memo.remember_failure(entry.reading, payload)
            entry.reading = None
        elif kind == "ok":
            results[entry.job.index] = payload
            del running[slot]
        else:
            self._failed(slot, running, waiting, results, payload)

    def _failed(self, slot: int, running: dict, waiting: deque, results: list,
                problem: str) -> None:
        """The worker in `slot` timed out, ran out of memory or died: replace it, remember
        what was to blame, and decide what the message gets next."""
        entry = running.pop(slot)
        self._restart(slot)
        job, reason = entry.job, f"attachment extraction {problem}"
        if job.fallback_reason is not None:  # even the fallback failed: headers from intake
            reason = f"{job.fallback_reason}; the fallback {problem} too"
            self.memo.remember_failure(_fallback_key(job.digest), reason)
            results[job.index] = unread(reason)
            return
        if entry.reading is not None:
            self.memo.remember_failure(entry.reading, reason)
            job.attempts += 1
            if job.attempts < ATTEMPTS:
                waiting.appendleft(job)  # again, without the attachment to blame
                return
        else:  # nothing to blame but the message as a whole
            self.memo.remember_failure(job.digest, reason)
        job.fallback_reason = reason
        waiting.appendleft(job)

    def _restart(self, slot: int) -> None:
        self._workers[slot].stop(kill=True)
        self._workers[slot] = self._start_worker()
        self.worker_restarts += 1


def _said_something(connection) -> bool:
    try:
        return connection.poll()
    except OSError:
        return False


def _fallback_key(digest: str) -> str:
    """The memo's key for "even the fallback failed on this message"."""
    return hashlib.sha256(b"fallback\0" + digest.encode()).hexdigest()


class _Worker:
    STARTUP_TIMEOUT_S = 60.0

    def __init__(self, context, cap_bytes: int, memory_mb: int):
        self.connection, child_end = context.Pipe()
        self.process = context.Process(target=_serve, args=(child_end, cap_bytes, memory_mb),
                                       name="extract-worker", daemon=True)
        self.process.start()
        child_end.close()
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        """A message's time limit must not include the worker's start-up."""
        try:
            if self.connection.poll(self.STARTUP_TIMEOUT_S) and \
                    self.connection.recv_bytes() == READY:
                return
        except (EOFError, OSError):
            pass
        code = self.exit_code()
        self.stop(kill=True)
        raise RuntimeError(f"extraction worker did not start (exit code {code})")

    def exit_code(self) -> int | None:
        self.process.join(timeout=1)
        return self.process.exitcode

    def stop(self, kill: bool) -> None:
        """kill=False lets an idle worker exit by itself on end-of-file (it gets a second);
        kill=True is for one that is stuck on a message or already dead."""
        self.connection.close()
        if not kill:
            self.process.join(timeout=1)
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.process.close()


def _serve(connection, cap_bytes: int, memory_mb: int) -> None:
    """Worker main loop: (mode, fallback reason) and a message in; ("reading", SHA-256) and
    ("read", error) around each attachment a library parses; one ("ok", Extracted) or
    ("failed", why) out."""
    _limit_memory(memory_mb)
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # malformed PDFs are routine here
    connection.send_bytes(READY)
    guard = _PoolGuard(connection)
    while True:
        try:
            mode, reason = connection.recv()
            raw = connection.recv_bytes()
        except EOFError:
            return
        except MemoryError:  # the message alone is too big for the limit; the pipe is now
            connection.send(("failed", f"ran out of memory (limit {memory_mb} MB)"))
            return           # out of step: start afresh
        try:
            result = fallback(raw, reason) if mode == FALLBACK else extract(raw, cap_bytes, guard)
            reply = ("ok", result)
        except MemoryError:
            reply = ("failed", f"ran out of memory (limit {memory_mb} MB)")
        except Exception as exc:  # extract() should not raise; if it does, say what it was
            reply = ("failed", f"failed: {type(exc).__name__}: {exc}"[:500])
        del raw
        connection.send(reply)
        if reply[0] == "failed":
            return  # a MemoryError can leave a library half-initialised: start afresh


class _PoolGuard(AttachmentGuard):
    """The worker's guard: asks the pool, which remembers failures by SHA-256."""

    def __init__(self, connection):
        self.connection = connection

    def before(self, sha256_hex: str) -> str | None:
        self.connection.send(("reading", sha256_hex))
        return self.connection.recv()

    def after(self, sha256_hex: str, error: str | None) -> None:
        self.connection.send(("read", error))


def _limit_memory(memory_mb: int) -> None:
    limit = memory_mb * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
