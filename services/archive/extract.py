"""Text of a message for the index: body and attachment text (text, HTML, PDF, DOCX, XLSX,
.doc, .xls, RTF, OpenDocument), the files inside containers (forwarded messages, TNEF,
zip, S/MIME signed-data; MAX_NESTED_CONTAINERS deep, as the web's views open them) as
attachments of their own, types from content, and the sandboxed worker pool that runs it
under time and memory limits. Files uuencoded in a text body or sent as x-uuencode parts
(services.archive.uuencode) are attachments like MIME ones, their encoded lines out of
the body, by mime's rule of a message's files (above mime.is_body_text), which the web's
views read too; a bounce's delivery status fields
(RFC 3464, RFC 6533) are body text.

extract() is pure and never raises on bad input; a file a library cannot read becomes an
attachment with an error. What extract() cannot survive (a parser that loops, a zip bomb,
a crash in C code) is the pool's business. Before a library parses an attachment, the
worker tells the pool the attachment's SHA-256; when the worker then times out, runs out of
memory or dies, the pool blames that attachment, remembers the failure by its SHA-256
(services.archive.extraction_memo) and reads the message again without it; the next message
carrying the same attachment costs a lookup. A failure no attachment explains gives the
message fallback() (headers and plain body only), in a fresh worker under the same limits;
if even that fails, the message is indexed from its header block, as intake reads it.
What a library did read, the pool keeps too (in memory, bounded: extraction_memo.TextMemo),
so the same document in the next message costs a lookup as well.
"""
from __future__ import annotations

import contextvars
import dataclasses
import hashlib
import io
import itertools
import logging
import multiprocessing
import os
import multiprocessing.connection
import multiprocessing.forkserver
import multiprocessing.reduction
import re
import resource
import signal
import struct
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from email import errors
from email.message import Message
from typing import TYPE_CHECKING, BinaryIO, Callable, Iterable, Iterator

from services.archive import (charsets, containers, cpu_time, documents, file_bytes,
                              filetypes, header_blocks, heap, html_text, mime, mime_parts,
                              pdf_text_server, transfer_encoding, uuencode)
from services.archive.extraction_memo import ExtractionMemo, MemoryMemo, TextMemo
from services.archive.index import BODY_TEXT_LIMIT, PARTLY_INDEXED

if TYPE_CHECKING:  # (the store's LMDB is kept out of the workers this module runs in)
    from services.archive.store import MessagePieces

FALLBACK_BODY_BYTES = 1024 * 1024
FALLBACK_PARSE_BYTES = 4 * 1024 * 1024
MAX_FAILURES = 20               # reasons kept per message (the last says how many more)
# Containers (forwarded messages, zip, TNEF, S/MIME signed-data) opened inside one another,
# by the indexer and the views alike (opens_nested): one inside more than this many others
# is listed, not opened (a forward's From, To and Subject are indexed, flagged
# AttachmentText.cut); each level opened costs work a hostile message could multiply.
MAX_NESTED_CONTAINERS = 4
# The same rule counted in messages, the stored one among them (a forward's cut says it so).
MAX_NESTED_MESSAGES = MAX_NESTED_CONTAINERS + 1
NESTED_TOO_DEEP = (f"not opened: nested deeper than {MAX_NESTED_CONTAINERS} containers "
                   "(forwarded messages, zip, TNEF, S/MIME)")
# Characters of an S/MIME part's smime-type parameter (a sender's text, up to 16 KB) its
# error says, printable ones only ("encrypted: S/MIME <kind>", recorded and shown).
SMIME_TYPE_SHOWN = 64
# The text the index takes from all of one message's attachments together (the files inside
# containers, forwarded messages and uuencoded files included), in attachment text caps;
# each one's at most one cap, in the order they are read. One document's text stays in the
# indexer's memory until its commit: each file a cap of its own, 1,000 attachments of 90 KB
# took an import on the model 450 to 5.3 GB of distinct words, 358 MB of repeated ones
# (review rv59). Distinct terms, the costly part (some 500 bytes each), are bounded by the
# document (index.MAX_DOCUMENT_TERMS); this bounds its positions: on the 450, one-letter
# words at the body's cap and this one made 138 MB tree Pss, any of the kinds 200-215 MB.
MESSAGE_ATTACHMENT_TEXT_CAPS = 4
WORD = re.compile(r"\w+")
PGP_ARMOR = "-----BEGIN PGP MESSAGE-----"
_PGP_ARMOR_BYTES = re.compile(re.escape(PGP_ARMOR.encode("ascii")))  # (takes a memoryview)
PDF_MIME = "application/pdf"
# Text types a parser reads (lxml, unrtf): guarded like documents, by SHA-256.
GUARDED_TEXT_TYPES = {"text/html", "text/rtf"}
# A base64 attachment of at least this many bytes that is read for its type only, a zip or a
# READ_FROM_A_FILE document is decoded a piece at a time (_large_file).
LARGE_FILE_BYTES = 1 << 20
DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MESSAGE = "message/rfc822"  # a forwarded message (RFC 2046 5.2.1)
# Documents whose readers take a seekable file as well as bytes (the PDF server is sent one
# a chunk at a time; python-docx and openpyxl read a zip): a large one is read through a
# transfer_encoding.Base64File, never decoded whole (_large_file).
READ_FROM_A_FILE = (PDF_MIME, DOCX_MIME, XLSX_MIME)
TYPE_OF_EXTENSION = {".pdf": PDF_MIME, ".docx": DOCX_MIME, ".xlsx": XLSX_MIME,
                     ".txt": "text/plain", ".htm": "text/html", ".html": "text/html",
                     ".eml": "message/rfc822"}
# The machine-readable part of a report (RFC 6522): blocks of fields, no message. A bounce's
# delivery status (RFC 3464), a read receipt's disposition (RFC 8098), an abuse report's
# feedback (RFC 5965), and RFC 6533's UTF-8 kin of the first two: their fields are body text,
# the part a file of its own. (The parser reads a delivery status as blocks, the others as
# a message whose header is their first block: the fields are made whole either way.)
REPORT_TYPES = ("message/delivery-status", "message/global-delivery-status",
                "message/disposition-notification", "message/global-disposition-notification",
                "message/feedback-report")
UTF8_REPORT_TYPES = ("message/global-delivery-status", "message/global-disposition-notification")
GLOBAL_MESSAGE = "message/global"  # RFC 6532 3.5: a forwarded message, UTF-8 allowed
_UNFOLD = re.compile(r"\n[ \t]+")  # a folded field's line break (RFC 5322 2.2.3)
# Runs of blank lines, made one. After _UNFOLD no line starts with white space, so they
# are runs of line breaks: no repeated group, which would keep a record a repeat.
_BLANK_LINES = re.compile(r"\n\n\n+")
# Block elements end a line, so "<p>a</p><p>b</p>" gives two words, not "ab": the elements
# the HTML standard renders as blocks (its Rendering section: display block, list-item,
# table parts), and table cells, which a browser sets apart ("<td>Total</td><td>42</td>"
# had read "Total42", neither word found: invoices and newsletters lay out so).
HTML_BLOCKS = frozenset({
    "p", "div", "br", "hr", "pre", "blockquote", "address", "center", "dialog", "figure",
    "figcaption", "form", "fieldset", "legend", "listing", "main", "plaintext", "search", "xmp",
    "details", "summary", "h1", "h2", "h3", "h4", "h5", "h6", "hgroup", "section", "article",
    "aside", "nav", "header", "footer", "ul", "ol", "dir", "menu", "li", "dl", "dt", "dd",
    "table", "caption", "thead", "tbody", "tfoot", "tr", "td", "th"})
# Not "head": libxml2 2.9 keeps an element it does not know (Word's <o:p>, <st1:place>, <x>)
# that follows a <meta>, <link> or <title> of no <head> inside the head it opened for them,
# where a browser ends the head and shows it in the body (HTML's "in head" insertion mode);
# text libxml2 leaves in a head is such an element's, else whitespace.
HTML_INVISIBLE = frozenset({"script", "style", "title"})
# Characters of HTML text a message's reading holds untidied (_HtmlTexts): what it holds
# beyond tidying each part at once is at most 64-256 KB (1-4 bytes a character); a usual
# HTML alternative's text is a few KB. Each message being read holds its own: a forwarded or
# signed message read inside one that holds some adds its (at most MAX_NESTED_MESSAGES + 1
# at once, 1.5 MB; measured 1.3 MB over 08cc065 for 6 levels of 64 Ki astral characters).
UNTIDIED_HELD_CHARACTERS = 64 * 1024
# Bytes of a large HTML attachment's source read for its text (_large_text), in text caps:
# libxml2 holds a comment, a script or an attribute's value whole, and an element for
# each start tag left open (a 55 MiB alt="..." took a worker to 237 MB beside the message,
# 11 million <div> to 252 MB and 27 s); read so far, they are 8 MiB on the model 450.
HTML_SOURCE_FACTOR = 8
# HTML text of a message's body held for the index, in read_text_bytes of its cap
# (_HtmlTexts): with no plain text the index takes the first cap of it; beside a plain-text
# alternative, the words the HTML alone has, which a few caps of it hold for any real mail.
HTML_HELD_FACTOR = 4
# Bytes a pattern _found_in_pieces looks for may match at most (PGP_ARMOR is 27).
FOUND_SPAN = 64
# Characters of HTML text a _TidiedText holds untidied at most (and one write's more).
TIDIED_PIECE = 256 * 1024
# _tidy_whitespace's runs of whitespace without a line break, but a lone space: one that is
# no space, or a space and more.
SPACE_RUNS_TO_TIDY = re.compile(r"[^\S\n ][^\S\n]*| [^\S\n]+")
# Its line breaks with spaces before or whitespace after (a line break alone stays as it is).
LINE_BREAKS_TO_TIDY = re.compile(r" +\n\s*|\n\s+")


@dataclass
class AttachmentText:
    filename: str | None
    mime_type: str                      # from the content where the declaration was wrong
    text: str
    error: str | None = None            # why its text could not be read, if so
    declared_type: str | None = None    # as declared, when the content says otherwise
    container: str | None = None        # the file it was found in (forwarded message, zip...)
    encrypted: bool = False             # needs a key or password we do not have
    # Why its text is only partly indexed (a limit cut it: PARTLY_INDEXED + why), if so.
    cut: str | None = None


@dataclass
class Extracted:
    summary: mime.MessageSummary
    body: str
    attachments: list[AttachmentText] = field(default_factory=list)
    failed: str | None = None       # why only a fallback could be produced, if so
    encrypted: bool = False         # the body holds an inline PGP message (RFC 4880 armor)
    # The message's whole Xapian document (services.archive.index.build_document),
    # serialised, when the pool was asked to build it and could.
    document: bytes | None = None
    # UTF-8 bytes of body and attachment text read, set when the pool dropped the text
    # itself because `document` holds it (so the indexer's process never holds it).
    text_bytes: int | None = None
    # This reading as the store keeps it (services.archive.readings), set by the pool for
    # a message it read whole and built the document of: the indexer stores it.
    reading: bytes | None = None
    # Why the body is only partly indexed (over the text cap: body_cut), or its parts.
    cut: str | None = None
    # Distinct terms of `document` (Xapian's termlist_count), set with it: what its commit
    # holds in the indexer's memory grows with them (services.archive.indexer._parts).
    terms: int | None = None

    def text_size(self) -> int:
        """UTF-8 bytes of body and attachment text read (what the index takes of it)."""
        if self.text_bytes is not None:
            return self.text_bytes
        return _utf8_len(self.body) + sum(_utf8_len(a.text) for a in self.attachments)

    def without_text(self) -> Extracted:
        """This result with body and attachment text dropped (text_bytes says how much there
        was): what the indexer needs once `document` is built. Changes it in place."""
        self.text_bytes = self.text_size()
        self.body = ""
        for attachment in self.attachments:
            attachment.text = ""
        return self

    @property
    def errors(self) -> list[str]:
        """Why something could not be read: the message's reason, then each attachment's
        ("NAME: reason"); empty when all was read (whether or not a limit cut its text)."""
        found = [self.failed] if self.failed else []
        found += [f"{a.filename or a.mime_type}: {a.error}" for a in self.attachments
                  if a.error and a.error != self.failed]
        return found

    @property
    def failures(self) -> list[str]:
        """Why the message's text is not indexed whole: its errors, then the limits that cut
        its text (each starting PARTLY_INDEXED, after "NAME: " for an attachment), at most
        MAX_FAILURES of them (the last then says how many more there are); empty when all
        was read and indexed. What has:extraction-failure flags and `archiver show` lists."""
        found = self.errors
        found += [self.cut] if self.cut else []
        found += [f"{a.filename or a.mime_type}: {a.cut}" for a in self.attachments if a.cut]
        if len(found) > MAX_FAILURES:
            more = len(found) - MAX_FAILURES + 1
            found = [*found[:MAX_FAILURES - 1], f"and {more} more reasons"]
        return found


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "replace"))


def unread(reason: str) -> Extracted:
    """A message none of whose content could be read: the index takes its headers from the
    store's metadata (recorded at intake) instead."""
    summary = mime.MessageSummary(None, None, [], [], [], [], "", [], False)
    return Extracted(summary, "", [], failed=reason)


class AttachmentGuard:
    """Asked before a library parses an attachment, told how it went after. This one lets
    everything be read; the worker's asks its pool, which remembers failures, and text
    read before."""

    def known(self, key: str, sha256_hex: str) -> tuple[str | None, str | None]:
        """Before a library parses an attachment's bytes (SHA-256 `sha256_hex`): (the text
        read before from the content `key` names (text_key()), None), else (None, why
        reading these bytes failed before, or None: then they are read next)."""
        return None, None

    def after(self, sha256_hex: str, error: str | None) -> None:
        """The library read them (error None) or raised `error`."""

    def read(self, key: str, text: str) -> None:
        """The library read `text` from the content `key` names."""


_guard = contextvars.ContextVar("attachment_guard", default=AttachmentGuard())


NESTED_TOO_DEEPLY = "MIME structure nested too deeply; headers and raw body only"
# The header text the index takes of one message (within_index_limits), in bytes of UTF-8.
# A byte of a Subject costs the indexer more than one of the body (its words are terms
# twice, with and without the subject prefix): a Subject of 1 MiB of distinct words took
# 137 MB, a body of as many 101 MB. No real Subject comes near the limit.
SUBJECT_TEXT_LIMIT = 64 * 1024
# The addresses the index takes the words of (names and addresses as displayed): each costs
# some ten terms, 5 KB of the indexer's memory until its commit (72,632 Cc fields took 410
# MB). One left out is still found by its exact address when the intake's header block
# holds it (mime.header_addresses): only its words are not searched.
ADDRESS_TEXT_LIMIT = 256 * 1024
INDEX_ADDRESS_LIMIT = 5_000
INDEXED_ADDRESS_FIELDS = ("from_addrs", "to", "cc", "bcc", "resent_to", "resent_cc",
                          "resent_bcc")


@dataclass
class Parsed:
    """What extract_parsed() reads of a message: its tree and its summary. It refers to the
    message's bytes only through a payload held as a view into them (mimetree.HeldPayload:
    an 8-bit payload that is most of the message), so that a caller can let its own
    reference go before the parts' payloads are decoded: the bytes are then freed, or
    held once, by the view, instead of beside a copy as large as the message."""
    message: Message
    summary: mime.MessageSummary
    # Why its header text is only partly indexed (within_index_limits), if so.
    cut: str | None = None


def parse(raw: bytes | list[bytes]) -> Parsed | None:
    """The Parsed of a raw message, or None when its MIME structure is nested too deeply
    (fallback(raw, NESTED_TOO_DEEPLY) reads it then, as extract() does). `raw` may be a
    list holding it alone, as mime.parse_message takes it (the list then holds what is
    left of it: what the summary and a fallback read). Raises only MemoryError."""
    given = raw if isinstance(raw, list) else [raw]
    message = mime.parse_message(given, held=True)
    raw = given[0]
    if any(isinstance(defect, mime.NestingTooDeep) for defect in message.defects):
        return None
    summary, cut = within_index_limits(mime.summarize_parsed(message, raw))
    return Parsed(message, summary, _joined(fields_cut(message), cut))


def fields_cut(message: Message) -> str | None:
    """Why a message's header fields are only partly read (PARTLY_INDEXED + why): a value
    of a field the summary reads is longer than mime.FIELD_VALUE_LIMIT (mime.fields_cut);
    None if none is."""
    names = mime.fields_cut(message)
    if not names:
        return None
    return (f"{PARTLY_INDEXED}the {', '.join(names)} field read to its first "
            f"{mime.FIELD_VALUE_LIMIT} bytes")


def within_index_limits(summary: mime.MessageSummary) -> tuple[mime.MessageSummary,
                                                                str | None]:
    """`summary` with no more header text than the index takes of one message: its Subject
    at most SUBJECT_TEXT_LIMIT bytes of UTF-8 (truncate_on_a_word); its addresses as
    displayed (INDEXED_ADDRESS_FIELDS, in that order) while they fit in ADDRESS_TEXT_LIMIT
    bytes and number at most INDEX_ADDRESS_LIMIT. And why, if it was cut (PARTLY_INDEXED).
    header_addresses (whose mail it is) are kept whole."""
    subject = truncate_on_a_word(summary.subject, SUBJECT_TEXT_LIMIT)
    room, count, kept, left_out = ADDRESS_TEXT_LIMIT, 0, {}, 0
    for name in INDEXED_ADDRESS_FIELDS:
        kept[name] = []
        for shown in getattr(summary, name):
            size = _utf8_len(shown)
            if count < INDEX_ADDRESS_LIMIT and size <= room:
                kept[name].append(shown)
                room, count = room - size, count + 1
            else:
                left_out += 1
    cuts = []
    if subject != summary.subject:
        cuts.append(f"{PARTLY_INDEXED}subject cut at {SUBJECT_TEXT_LIMIT} bytes, of "
                    f"{_utf8_len(summary.subject)}")
    if left_out:
        cuts.append(f"{PARTLY_INDEXED}{left_out} addresses not indexed by their words: past "
                    f"the first {INDEX_ADDRESS_LIMIT} or {ADDRESS_TEXT_LIMIT} bytes of them")
    if not cuts:
        return summary, None
    return dataclasses.replace(summary, subject=subject, **kept), "; ".join(cuts)


def extract(raw: bytes, cap_bytes: int, guard: AttachmentGuard | None = None) -> Extracted:
    """Body and attachment text of a raw message; the body's text and each attachment's at
    most cap_bytes of UTF-8 (the model's text cap; the body's never past BODY_TEXT_LIMIT),
    a cut one saying so (Extracted.cut, AttachmentText.cut). Raises only MemoryError (the
    pool turns it into a fallback)."""
    parsed = parse(raw)
    if parsed is None:
        return fallback(raw, NESTED_TOO_DEEPLY)
    return extract_parsed(parsed, cap_bytes, guard)


def extract_parsed(parsed: Parsed, cap_bytes: int,
                   guard: AttachmentGuard | None = None) -> Extracted:
    """extract() of a message already parse()d."""
    token = _guard.set(guard or AttachmentGuard())
    try:
        return _extract(parsed, cap_bytes)
    finally:
        _guard.reset(token)


def _extract(parsed: Parsed, cap_bytes: int) -> Extracted:
    message = parsed.message
    budget = _message_budget(cap_bytes)
    unread = budget.unread_text
    body, attachments = _body_and_attachments(message, cap_bytes, 0, budget)
    indexed = truncate_on_a_word(body, min(cap_bytes, BODY_TEXT_LIMIT))
    return Extracted(parsed.summary, indexed, attachments,
                     encrypted=PGP_ARMOR in body or unread.pgp_armor,
                     cut=_joined(parsed.cut, parts_cut(message),
                                 body_cut(body, indexed, cap_bytes, unread),
                                 attachments_cut(budget)))


@dataclass
class UnreadText:
    """What a message's body text parts hold past what was decoded of them (the first
    text of read_text_bytes(cap) of each: a body of 90 MB is not held as text for the 1 MB
    the index takes), counted in pieces: its size in UTF-8 bytes, whether it holds more than white
    space, and whether an OpenPGP message's armor line (PGP_ARMOR)."""
    utf8_bytes: int = 0
    words: bool = False
    pgp_armor: bool = False
    parts: int = 0  # text parts read in part

    def count_apart(self, text: str) -> None:
        """Count `text`, the whole text of a part of the body not held (past what the body
        holds of its kind) and not of a plain text read in part (`parts` stays)."""
        self.utf8_bytes += _utf8_len(text)
        self.words = self.words or words_past(text, 0)
        self.pgp_armor = self.pgp_armor or PGP_ARMOR in text

    def count(self, pieces: Iterable[str], before: str) -> None:
        """Count `pieces`, the text that goes on from `before` (an armor line may span)."""
        carried, read_whole = before[1 - len(PGP_ARMOR):], True
        for piece in pieces:
            if read_whole and piece:
                self.parts, read_whole = self.parts + 1, False
            self.utf8_bytes += _utf8_len(piece)
            self.words = self.words or words_past(piece, 0)
            spanned = carried + piece
            self.pgp_armor = self.pgp_armor or PGP_ARMOR in spanned
            carried = spanned[1 - len(PGP_ARMOR):]


def _message_budget(cap_bytes: int) -> containers.ReadBudget:
    budget = containers.ReadBudget(text_bytes=MESSAGE_ATTACHMENT_TEXT_CAPS * cap_bytes)
    budget.unread_text = UnreadText()
    return budget


def read_text_bytes(cap_bytes: int) -> int:
    """The UTF-8 bytes of a text read for a cut at cap_bytes: the cap, and the characters
    past it truncate_on_a_word looks at (a word's run, at most 4 bytes a character)."""
    return cap_bytes + 4 * (WORD_RUN_LIMIT + 1)


def parts_cut(message: Message) -> str | None:
    """Why the message's parts past mime_parts.MAX_PARTS or MAX_DEPTH are not read as parts
    (their text is read as text parts, one for each cut: services.archive.mime_parts), or
    None when all were."""
    for defect in message.defects:
        if isinstance(defect, mime_parts.PartsNotParsed):
            return (f"{PARTLY_INDEXED}{defect}; their text is indexed as plain text, "
                    "their attachments are not read")
    return None


def body_cut(body: str, indexed: str, cap_bytes: int,
             unread: UnreadText | None = None) -> str | None:
    """Why the index takes only `indexed` of this body text (its first cap_bytes of UTF-8,
    the model's text cap, or BODY_TEXT_LIMIT if less, less the word the cut falls in:
    truncate_on_a_word), or None when it loses no word (white space alone past the cut). The
    body has the attachments' cap because one document's text stays in the indexer's
    memory until its commit (services.archive.indexer): bodies of megabytes took the
    importing process past the model 450's 256 MB (some 22 bytes of Xapian's memory a
    byte of text; review r18 F1). `unread`: what the body's text parts hold past `body`,
    counted (the cut then says the size of both; beside a plain text read in part, the
    words only an HTML alternative has are those not in the part read)."""
    unread = unread or UnreadText()
    if not words_past(body, len(indexed)) and not unread.words:
        return None
    limit = (f"{cap_bytes} bytes, the text cap (attachment_text_kb)"
             if cap_bytes <= BODY_TEXT_LIMIT else f"{BODY_TEXT_LIMIT} bytes, the body text limit")
    return (f"{PARTLY_INDEXED}body text cut at {limit}, of "
            f"{_utf8_len(body) + unread.utf8_bytes}; "
            "the rest is not indexed")


def attachments_cut(budget: containers.ReadBudget) -> str | None:
    """Why some attachments of the message are not indexed (past MESSAGE_ATTACHMENTS)."""
    if not budget.attachments_passed:
        return None
    return (f"{PARTLY_INDEXED}{budget.attachments_passed} attachments past the first "
            f"{containers.MESSAGE_ATTACHMENTS} not read")


def cap_cut(cap_bytes: int) -> str:
    """Why an attachment's text holds only its first cap_bytes (the model's text cap)."""
    return (f"{PARTLY_INDEXED}text cut at {cap_bytes} bytes, the attachment text cap "
            "(attachment_text_kb); the rest is not indexed")


def fallback(raw: bytes, reason: str) -> Extracted:
    """What can be had without reading attachments: the summary, the first plain-text body
    (or the raw body) up to 1 MB, and the attachments by name and type with no text; all
    from the first FALLBACK_PARSE_BYTES of the message, so that its time and memory do not
    grow with the message (parsing takes some twenty times a message's size in memory).
    The header fields, as always, from mime.header_block (well inside that cut)."""
    # Bounded first: the first megabytes of a message padded with header lines are header.
    message = mime.parse_message(header_blocks.bounded(raw)[:FALLBACK_PARSE_BYTES])
    body_part = next((part for part in mime.iter_parts(message, into_messages=False)
                      if _is_body(part) and part.get_content_type() == "text/plain"), None)
    if body_part is not None:  # (not `if body_part`: a Message without headers is falsy)
        body = _part_text(body_part, FALLBACK_BODY_BYTES)
    else:
        body = _raw_body_text(raw)
    attachments = [AttachmentText(mime.filename_of(part), _mime_type(part), "", reason)
                   for part in mime.iter_parts(message, into_messages=False)
                   if mime.is_attachment(part)]
    summary, cut = within_index_limits(mime.summarize_parsed(message, raw))
    return Extracted(summary, body, attachments, failed=reason,
                     cut=_joined(fields_cut(message), cut))


def _raw_body_text(raw: bytes) -> str:
    """Everything after the header block, decoded by guess, up to the fallback limit."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        if separator in raw:
            body = raw.split(separator, 1)[1][:FALLBACK_BODY_BYTES]
            return truncate_utf8(mime.decode_text(body, None), FALLBACK_BODY_BYTES)
    return ""


def _body_and_attachments(message: Message, cap_bytes: int, nesting: int,
                          budget: containers.ReadBudget | None = None,
                          container: str | None = None,
                          read_attachments: bool = True) -> tuple[str, list[AttachmentText]]:
    """The body text of a message and its attachments, those inside forwarded messages,
    TNEF, zip and S/MIME signed-data included (each found one names its `container`);
    with `read_attachments` False, the body text alone and no attachment. Of each text
    part the text the cap needs (of BODY_TEXT_LIMIT with none: read_text_bytes) is read, the
    rest counted into budget.unread_text (UnreadText)."""
    budget = budget or _message_budget(cap_bytes)
    parts_in_part_before = budget.unread_text.parts
    plain = _PlainTexts(read_text_bytes(cap_bytes or BODY_TEXT_LIMIT))
    attachments, statuses = [], set()  # statuses: where in plain.texts
    html = _HtmlTexts(cap_bytes or BODY_TEXT_LIMIT, budget.unread_text)
    pgp_encrypted = _parts_of_multipart_encrypted(message)
    for part in mime.message_parts(message):
        if _mime_type(part) in REPORT_TYPES:  # text of the body, still an attachment
            statuses.add(len(plain.texts))    # (of no text) as it always was
            plain.append(report_text(part))
        if _is_container(part, message):
            continue
        if mime.is_attachment(part):
            if not read_attachments or not _take_attachment(part, budget):
                continue
            entries, body = _attachment(part, cap_bytes, nesting, budget, container)
            if id(part) in pgp_encrypted:
                entries[0].encrypted, entries[0].error = True, "encrypted (PGP/MIME)"
            attachments += entries
            if body:
                plain.append(body)
        elif part.get_content_type() == "text/html":
            html.read(part)
        else:
            text, files = _text_part(part, budget if read_attachments else None,
                                     plain.text_bytes, budget.unread_text, plain.has_room())
            plain.append(text)
            entries, bodies = _uuencoded_files(files, cap_bytes, nesting, budget, container)
            attachments += entries
            plain.extend(bodies)
    read_whole = budget.unread_text.parts == parts_in_part_before
    return _body_with_html(plain.texts, statuses, html, read_whole,
                           budget.unread_text.words), attachments


class _PlainTexts:
    """The plain texts of a message's body (its text parts', its reports' fields, its
    attachments' that are body text), in order, and how much of the message's text they
    still have room for: `text_bytes` of UTF-8 in all (read_text_bytes of the cap: the
    index takes a body's first cap bytes, so a text part past them is counted, not read:
    _text_part not kept). Held whole, 20,000 text parts of 84 MiB were their text, and
    that joined, beside the message in one worker (#20: 297 MB)."""

    def __init__(self, text_bytes: int):
        self.texts: list[str] = []
        self.text_bytes = text_bytes
        self.used = 0  # UTF-8 bytes of texts, with the line break that joins each to the next

    def append(self, text: str) -> None:
        self.texts.append(text)
        self.used += _utf8_len(text) + 1

    def extend(self, texts: list[str]) -> None:
        for text in texts:
            self.append(text)

    def has_room(self) -> bool:
        """Whether the next text part's text is kept (else it is counted: _text_part). The
        last one kept may take the texts past text_bytes, by its text_bytes at most."""
        return self.used < self.text_bytes


def _body_with_html(plain: list[str], statuses: set[int], html: _HtmlTexts,
                    plain_read_whole: bool, rest_words: bool) -> str:
    """The body text of a message's `plain` texts (those at `statuses` a delivery status's
    fields) and its HTML parts' texts. Beside plain text read in part (not
    `plain_read_whole`: past the cap already), no word of the HTML is added: which of its
    words the rest of the plain text holds is not known (review r21 F3). Plain text read
    in part is no text only if its rest has no word either (`rest_words`; review r22 F2:
    a start of white space)."""
    # HTML is the body when there is no plain-text alternative to it; where there is, the
    # words only the HTML has are indexed too (what the recipient saw may be either).
    # A delivery status's fields are no plain-text alternative to the HTML: a bounce whose
    # readable part is HTML alone has it whole, and the fields take no word from it.
    words_unread = rest_words and not plain_read_whole
    plain_text = "\n".join(plain)
    if not plain_text.strip() and not words_unread:
        return html.text()
    alternative = "\n".join(text for at, text in enumerate(plain) if at not in statuses)
    if not alternative.strip() and not words_unread:
        html_body = html.text()
        return html_body + "\n" + plain_text if html_body.strip() else plain_text
    extra = html.words_not_in(alternative) if plain_read_whole else ""
    return plain_text + "\n" + extra if extra else plain_text


class _HtmlTexts:
    """The texts of a message's HTML parts, each read where the part is (_html_layout) but
    tidied (_tidy_whitespace) only when the text is wanted: beside a plain-text alternative
    only its words are, and tidying changes no word (it turns runs of whitespace, never a
    word character, into one space or line break). Untidied texts are held up to
    UNTIDIED_HELD_CHARACTERS in all; past that each is tidied at once, as before (a message
    of many parts of megabytes of whitespace must fit a worker's memory limit). Tidied
    texts are held up to HTML_HELD_FACTOR times read_text_bytes(cap_bytes) characters; the
    parts past that are read and counted into `unread` (their words make the body partly
    indexed), not held: 10,000 HTML parts of 4 KiB each were all held, with their plain
    alternatives, in one worker (#20)."""

    def __init__(self, cap_bytes: int = BODY_TEXT_LIMIT, unread: UnreadText | None = None):
        self.texts: list[str] = []
        self.tidied = bytearray()  # 1 where texts holds the part's text tidied (a byte a part)
        self.untidied_characters = 0  # held untidied
        self.tidied_characters = 0  # held tidied
        self.held_limit = HTML_HELD_FACTOR * read_text_bytes(cap_bytes)
        self.cap_bytes, self.unread = cap_bytes, unread or UnreadText()

    def read(self, part: Message) -> None:
        large = _large_html_part(part, self.cap_bytes, self.unread)
        text = large if large is not None else \
            _html_layout(_part_bytes(part), _safe_charset(part))
        tidied = large is not None \
            or self.untidied_characters + len(text) > UNTIDIED_HELD_CHARACTERS
        if self.tidied_characters >= self.held_limit:
            self.unread.count_apart(text if tidied else _tidy_whitespace(text))
            return
        if tidied:
            text = text if large is not None else _tidy_whitespace(text)
            self.tidied_characters += len(text)
        else:
            self.untidied_characters += len(text)
        self.texts.append(text)
        self.tidied.append(tidied)

    def text(self) -> str:
        """The parts' texts, tidied, one line apart."""
        for at, tidied in enumerate(self.tidied):
            if not tidied:  # in place: the untidied text goes as its tidied one comes
                self.texts[at], self.tidied[at] = _tidy_whitespace(self.texts[at]), True
        return "\n".join(self.texts)

    def words_not_in(self, reference: str) -> str:
        """words_not_in of the parts' texts, tidied or not (tidying changes no word)."""
        return words_not_in(self.texts, reference)


def _large_html_part(part: Message, cap_bytes: int, unread: UnreadText) -> str | None:
    """The tidied text of a large HTML part of the body (a held payload of LARGE_FILE_BYTES
    or more, base64, quoted-printable or of no transfer encoding) as a large HTML
    attachment's is read (_text_start): from its bytes decoded a piece at a time, its
    text's first read_text_bytes(cap_bytes) from HTML_SOURCE_FACTOR * cap_bytes of source
    at most (when some source is left unread, `unread` says it holds words: the body is
    partly indexed). A 60 MiB HTML body was its bytes, its text decoded and laid out, each
    whole: 404 MB. None for any other part: _HtmlTexts reads it whole."""
    held = transfer_encoding.held_bytes(part)
    if held is None or len(held) < LARGE_FILE_BYTES \
            or transfer_encoding.decoded_pieces(part) is None:
        return None
    source_left = []
    text = "".join(_text_start("text/html", transfer_encoding.decoded_pieces(part),
                               _safe_charset(part), cap_bytes, source_left))
    unread.words = unread.words or bool(source_left)
    return text


def _take_attachment(part: Message, budget: containers.ReadBudget) -> bool:
    """Whether the message may read one more attachment (MESSAGE_ATTACHMENTS); counts it,
    or counts it as passed: each of its files, when it is an x-uuencode one of two or more
    (mime's rule, UUENCODED_ATTACHMENT; the web lists them all; review r5 F4)."""
    if budget.attachments <= 0:
        found = _attachment_split(part, 0)  # (keeps no file: counts them)
        budget.attachments_passed += max(1, found.count if found is not None else 1)
        return False
    budget.attachments -= 1
    return True


def _text_part(part: Message, budget: containers.ReadBudget | None, text_bytes: int,
               unread: UnreadText, kept: bool = True
               ) -> tuple[str, list[tuple[str | None, _FileData]]]:
    """A part of body text (mime.is_body_text): its text, and the uuencoded files in it
    (mime.body_text_split; of a large part, uuencode.split_pieces: _large_text_part), each
    (name, data), as many as `budget` lets the message read (the rest are counted as
    passed; None: none are read), their encoded lines out of the text. A part whose
    transfer encoding is x-uuencode is read so too. Its text is its start, text_bytes of
    UTF-8 (charsets.decode_document_start), the rest counted into `unread`; not `kept`, its
    text is "", all of it counted (read as it would be, so that what is counted is the same
    text)."""
    charset = _safe_charset(part)
    keep = max(0, budget.attachments) if budget is not None else 0
    large = _large_text_part(part, charset, text_bytes, unread, keep, kept)
    if large is not None:
        text, found = large
    else:
        found = mime.body_text_split(part, keep, view=True)
        text, rest = charsets.decode_document_start(found.text, charset, text_bytes)
        text = _start_kept(text, rest, kept, unread)
        # An armor line is ASCII: in bytes the start's codec misreads (review r22 F3: a
        # start shaped as UTF-32, the rest not) it is still one.
        unread.pgp_armor = unread.pgp_armor or \
            _PGP_ARMOR_BYTES.search(found.text) is not None
    if budget is not None:
        budget.attachments -= len(found.files)
        budget.attachments_passed += found.more
    return text, [(mime.uuencoded_name(file.name, charset), _file_data(file))
                  for file in found.files]


# A uuencoded file's data as extraction reads it: its bytes, or (of a large part read a
# piece at a time) where it is (_found_block_file reads it so).
_FileData = bytes | uuencode.FoundBlock


def _file_data(file: uuencode.File | uuencode.FoundBlock) -> _FileData:
    return file if isinstance(file, uuencode.FoundBlock) else file.data


def _large_text_part(part: Message, charset: str | None, text_bytes: int,
                     unread: UnreadText, keep: int, kept: bool = True
                     ) -> tuple[str, uuencode.PiecesSplit] | None:
    """_text_part of a large part of body text (a held payload of LARGE_FILE_BYTES or more,
    base64, quoted-printable, x-uuencode or of no transfer encoding): (its text, its
    uuencoded files, the first `keep` of them kept) read from its bytes a piece at a time
    (_large_source), never decoded whole: its text's start without the blocks taken
    (uuencode.text_pieces), the rest counted into `unread`; its files found by
    uuencode.split_pieces, only when a line begins a block. A 60 MiB quoted-printable body
    was decoded whole to look for uuencoded files in it (262 MB); a body holding a 52 MiB
    file uuencoded was copied, and the file decoded and copied (307 to 390 MB). None for
    any other part: _text_part reads it whole."""
    source = _large_source(part)
    if source is None:
        return None
    begins, armor = _found_in_pieces(source(), (uuencode.BEGIN_LINE, _PGP_ARMOR_BYTES))
    found = uuencode.split_pieces(source, keep, filetypes.SNIFF_BYTES) if begins \
        else uuencode.PiecesSplit()

    def text_source() -> Iterable[bytes]:  # (the text without the blocks taken)
        return uuencode.text_pieces(source(), found.taken) if found.taken else source()
    if found.taken:
        armor = _found_in_pieces(text_source(), (_PGP_ARMOR_BYTES,))[0]
    text, rest = charsets.decode_document_pieces(text_source(), charset, text_bytes)
    text = _start_kept(text, rest, kept, unread)
    unread.pgp_armor = unread.pgp_armor or armor  # (see _text_part)
    return text, found


def _large_source(part: Message) -> uuencode.Source | None:
    """The pieces a large part's bytes are read in (a held payload of LARGE_FILE_BYTES or
    more), as mime.body_text_split splits it: an x-uuencode one's as they came
    (transfer_encoding.uuencoded_pieces), any other's decoded (decoded_pieces: base64,
    quoted-printable or none); None for any other part."""
    held = transfer_encoding.held_bytes(part)
    if held is None or len(held) < LARGE_FILE_BYTES:
        return None
    if transfer_encoding.uuencoded_pieces(part) is not None:
        return lambda: transfer_encoding.uuencoded_pieces(part)
    if transfer_encoding.decoded_pieces(part) is None:
        return None
    return lambda: transfer_encoding.decoded_pieces(part)


def _attachment_split(part: Message, keep: int
                      ) -> uuencode.Split | uuencode.PiecesSplit | None:
    """mime.attachment_split(part, keep); of a large attachment sent x-uuencode, read a
    piece at a time (uuencode.split_pieces: _large_source), never copied or decoded
    whole."""
    source = _large_source(part)
    if source is None or transfer_encoding.uuencoded_pieces(part) is None:
        return mime.attachment_split(part, keep)
    return uuencode.split_pieces(source, 1 + max(0, keep), filetypes.SNIFF_BYTES)


def _start_kept(start: str, rest: Iterator[str], kept: bool, unread: UnreadText) -> str:
    """The text a part of body text gives: `start`, the text of its first bytes, `rest`
    counted into `unread`; not `kept` (the body's earlier parts hold all the index takes:
    _PlainTexts) "", its start counted too."""
    if kept:
        unread.count(rest, start)
        return start
    unread.count(itertools.chain([start], rest), "")
    return ""


def _found_in_pieces(pieces: Iterable[bytes], patterns: tuple[re.Pattern, ...]
                     ) -> list[bool]:
    """Whether each of `patterns` (of bytes, matching at most FOUND_SPAN bytes) is found
    in the bytes `pieces` join to, preceded by a line break (a pattern may begin with
    one), read a piece at a time: a match across two pieces is found too."""
    found, carried = [False] * len(patterns), b"\n"
    for piece in pieces:
        window = carried + piece
        found = [was or pattern.search(window) is not None
                 for was, pattern in zip(found, patterns)]
        carried = window[-FOUND_SPAN:]
    return found


def report_text(part: Message) -> str:
    """The fields of a report part (REPORT_TYPES: a bounce's blocks, one for the message, one
    for each recipient; a read receipt's or an abuse report's one block), a line each
    ("Final-Recipient: rfc822; x@example.org", folded lines unfolded), a blank line after
    each block; text that is no field kept as it is. The parser reads a delivery status as
    blocks of fields (services.archive.mimetree), the others as a message (its first block
    the header); their text is made whole again and decoded (a transfer encoding, UTF-8 for
    RFC 6533's; never read as UTF-16 or -32). Never raises but MemoryError."""
    try:
        source = report_bytes(part)
        charset = "utf-8" if _mime_type(part) in UTF8_REPORT_TYPES else _safe_charset(part)
        # Fields are ASCII or UTF-8 by the reports' RFCs: bytes that look like a byte-order
        # mark or UTF-16 are bad bytes of a field, not a document's encoding.
        text = charsets.decode(source, charset)
    except MemoryError:
        raise
    except Exception:  # noqa: BLE001 - a part the parser left in a shape not foreseen
        return ""
    text = _UNFOLD.sub(" ", text.replace("\r\n", "\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


def report_bytes(part: Message) -> bytes:
    """The content of a report part (REPORT_TYPES) made whole
    from the parser's blocks (_status_source: line ends LF, as the parser keeps them) and
    transfer-decoded: its file where the stored bytes cannot be located
    (services.web.forwarded). Raises what a parser's odd shape raises (callers guard)."""
    source = _status_source(part)
    encoding = transfer_encoding.encoding_of(part.get("content-transfer-encoding", ""))
    decode = transfer_encoding.DECODERS.get(encoding)
    return decode(source) if decode is not None else source


def _status_source(part: Message) -> bytes:
    """The text of a report part as it was, from the parser's blocks (each a
    Message: its fields, then any text it had, a blank line after each). Payloads as the
    parser kept them (get_payload() would make each 8-bit byte a U+FFFD)."""
    payload = part._payload
    if isinstance(payload, str):
        return transfer_encoding.payload_bytes(payload)
    return b"\n".join(transfer_encoding.payload_bytes(_block_text(block))
                      for block in (payload if isinstance(payload, list) else [])
                      if isinstance(block, Message))


def _block_text(block: Message) -> str:
    """A status block's fields, then its text: what followed a line that is no field, or
    (a block whose Content-Type field names a message or a multipart) the fields and text
    of the parts the parser read in it, blocks' depth bounded by the parser's."""
    fields = "".join(f"{name}: {value}\n" for name, value in block.raw_items())
    inner = block._payload
    if isinstance(inner, list):
        text = "\n".join(_block_text(part) for part in inner if isinstance(part, Message))
    else:
        text = inner if isinstance(inner, str) else ""
    return fields + "\n" + text if fields and text else fields or text


def words_not_in(texts: list[str], reference: str) -> str:
    """The words of texts (in order, once each) that reference lacks, ignoring case; as of
    the texts joined, but without joining them (a word never spans two texts one line apart)."""
    if not texts:  # most mail has no HTML beside its plain text: no reference to read
        return ""
    known, extra = set(WORD.findall(reference.casefold())), []
    for text in texts:
        for word in WORD.findall(text):
            folded = word.casefold()
            if folded not in known:
                known.add(folded)
                extra.append(word)
    return " ".join(extra)


def _parts_of_multipart_encrypted(message: Message) -> set[int]:
    """id() of the parts of every multipart/encrypted (RFC 1847, PGP/MIME: RFC 3156)."""
    found = set()
    for part in mime.iter_parts(message, into_messages=False):
        if part.get_content_type() == "multipart/encrypted":
            payload = part.get_payload()
            found |= {id(child) for child in payload if isinstance(child, Message)} \
                if isinstance(payload, list) else set()
    return found


def body_text(raw: bytes, parse_limit: int | None = None) -> str:
    """The body's text as the index reads it (its plain text, and the words only its HTML
    has), reading no attachment: cheap enough for every hit of a page of results. Only the
    first `parse_limit` bytes are parsed when given (a body comes before attachments).
    Never raises on bad input."""
    message = mime.parse_message(raw[:parse_limit] if parse_limit else raw)
    return _body_and_attachments(message, 0, 0, read_attachments=False)[0]


def _is_container(part: Message, root: Message) -> bool:
    """A multipart, or the root itself but a forward sent as a file (its one attachment:
    mime.whole_body_is_attachment); an attached message/rfc822 is a leaf here."""
    if not part.is_multipart():
        return False
    if part is root:
        return not mime.whole_body_is_attachment(root)
    return part.get_content_maintype() != "message"


def _is_body(part: Message) -> bool:
    """A text leaf that is no attachment."""
    return not part.is_multipart() and not mime.is_attachment(part)


def _attachment(part: Message, cap_bytes: int, nesting: int, budget: containers.ReadBudget,
                container: str | None) -> tuple[list[AttachmentText], str]:
    """The attachment, the files found inside it, and body text it carries (the signed
    content of S/MIME signed-data) as ([entries], body)."""
    # x-uuencode: every file of it (mime's rule, UUENCODED_ATTACHMENT); the first file is
    # the part's own (read below, as it always was). The text around its blocks is no
    # body text (it is stored, and the web does not show it either)
    found = _attachment_split(part, budget.attachments)
    entries, body = _within_text_budget(budget, cap_bytes, lambda: _first_file(
        part, found, cap_bytes, nesting, budget, container))
    if found is None or not found.files:
        return entries, body
    charset = _safe_charset(part)
    more = found.files[1:]
    taken = more[:max(0, budget.attachments)]
    budget.attachments -= len(taken)
    budget.attachments_passed += len(more) - len(taken) + found.more
    inner, bodies = _uuencoded_files(
        [(mime.uuencoded_name(file.name, charset), _file_data(file)) for file in taken],
        cap_bytes, nesting, budget, container)
    return entries + inner, "\n".join(text for text in (body, *bodies) if text)


def _uuencoded_files(files: list[tuple[str | None, _FileData]], cap_bytes: int,
                     nesting: int, budget: containers.ReadBudget, container: str | None
                     ) -> tuple[list[AttachmentText], list[str]]:
    """Files uuencoded in a part, each (name, data), read as attachments of no declared
    type: (their entries, the body texts they carry, none empty)."""
    entries, bodies = [], []
    for name, data in files:
        inner, body = _within_text_budget(budget, cap_bytes, lambda: _file(
            name, "application/octet-stream", data, cap_bytes, nesting, budget, container))
        entries += inner
        if body:
            bodies.append(body)
    return entries, bodies


def _first_file(part: Message, found: uuencode.Split | uuencode.PiecesSplit | None,
                cap_bytes: int, nesting: int, budget: containers.ReadBudget,
                container: str | None
                ) -> tuple[list[AttachmentText], str]:
    """The attachment as one file (of an x-uuencode one, `found`: its first file, which its
    begin line may name; its content when no block decodes), and the files inside it."""
    filename, declared = mime.filename_of(part), _mime_type(part)
    if _declared_message(declared, filename):
        return _forwarded(part, filename, cap_bytes, nesting, budget, container), ""
    whole = found.files[0] if found is not None and found.files else None
    if whole is not None:
        data = _file_data(whole)
        filename = filename or mime.uuencoded_name(whole.name, _safe_charset(part))
    else:
        large = _large_file(part, filename, declared, cap_bytes, nesting, budget, container) \
            or _large_text(part, filename, declared, cap_bytes, container)
        if large is not None:
            return large
        data = _part_bytes(part)
    smime_type = mime.safely(lambda: part.get_param("smime-type"), None)
    return _file(filename, declared, data, cap_bytes, nesting, budget, container,
                 smime_type if isinstance(smime_type, str) else None, _safe_charset(part))


def _large_file(part: Message, filename: str | None, declared: str, cap_bytes: int,
                nesting: int, budget: containers.ReadBudget, container: str | None
                ) -> tuple[list[AttachmentText], str] | None:
    """What _file makes of a large base64 attachment (its entries, the body text it
    carries), made without decoding it whole: of a type read for nothing but its type and
    SHA-256 (an image, a video, an unknown binary: not _reads_content), from its bytes
    decoded a piece at a time (transfer_encoding.base64_pieces); of a zip, a TNEF, a
    READ_FROM_A_FILE document (PDF, .docx, .xlsx) or S/MIME (_large_cms), through a
    seekable file that decodes the piece its reader asks for
    (transfer_encoding.Base64File). A 73 MiB file of random data was 73 MiB in the worker
    beside the 100 MiB message; a 70 MiB zip was that and all its members. None for any
    other part: _file reads it from its bytes."""
    pieces = transfer_encoding.base64_pieces(part, LARGE_FILE_BYTES)
    if pieces is None:
        return None
    digest = hashlib.sha256()
    start = _start_of(pieces, filetypes.SNIFF_BYTES, digest)
    if containers.may_be_cms(start):  # (is_cms reads the whole: through the file)
        return _large_cms(part, filename, declared, cap_bytes, nesting, budget, container,
                          pieces, digest)
    mime_type = read_type(declared, filename, start)
    from_a_file = mime_type in containers.ZIP_TYPES or mime_type in READ_FROM_A_FILE \
        or mime_type in containers.TNEF_TYPES
    if _reads_content(mime_type) and not from_a_file:
        return None
    sha256_hex = None  # (the failure memo's key: nothing a zip is read for is remembered)
    if mime_type not in containers.ZIP_TYPES:
        sha256_hex = _rest_digested(pieces, digest)
    entry = _entry(filename, declared, mime_type, container)
    if from_a_file:
        source = transfer_encoding.Base64File(transfer_encoding.held_bytes(part))
        inner, _ = _guarded(entry, lambda: _file_contents(
            entry, source, cap_bytes, nesting, budget, None, _safe_charset(part), sha256_hex))
        return [entry, *inner], ""
    entry.text, entry.error, _ = _read_with_library(
        lambda _: [], b"", cap_bytes, f"{mime_type};{_safe_charset(part) or ''}", sha256_hex)
    return [entry], ""


def _large_text(part: Message, filename: str | None, declared: str, cap_bytes: int,
                container: str | None) -> tuple[list[AttachmentText], str] | None:
    """What _file makes of a large text attachment (a held payload of LARGE_FILE_BYTES or
    more read as text/*, RTF but: plain text, HTML...), made from its bytes decoded a piece
    at a time (transfer_encoding.decoded_pieces: base64, quoted-printable or none), never
    whole: the text the cap wants is read (_text_start), no more. A 70 MiB HTML file was
    its bytes, its text decoded and laid out, each whole (a worker of 400 MB); a 60 MiB
    text quoted-printable its bytes. None for any other part: _file reads it from its
    bytes."""
    held = transfer_encoding.held_bytes(part)
    pieces = transfer_encoding.decoded_pieces(part) \
        if held is not None and len(held) >= LARGE_FILE_BYTES else None
    if pieces is None:
        return None
    digest = hashlib.sha256()
    mime_type = read_type(declared, filename, _start_of(pieces, filetypes.SNIFF_BYTES, digest))
    if not mime_type.startswith("text/") or mime_type in documents.RTF_TYPES:
        return None
    entry = _entry(filename, declared, mime_type, container)
    _read_text_pieces(entry, lambda: transfer_encoding.decoded_pieces(part),
                      _safe_charset(part), cap_bytes, lambda: _rest_digested(pieces, digest))
    return [entry], ""


def _read_text_pieces(entry: AttachmentText, pieces: Callable[[], Iterable[bytes]],
                      charset: str | None, cap_bytes: int, sha256_hex: Callable[[], str]
                      ) -> None:
    """Sets the text (and cut) of a text file's `entry` (its mime_type text/*, RTF but)
    from pieces of its bytes (each call of `pieces` a new iterator from its start), as
    _file would from its bytes: the text the cap wants is read (_text_start), no more.
    `sha256_hex`: the SHA-256 of its bytes, asked only for a type the guard reads."""
    mime_type, source_left = entry.mime_type, []  # (an HTML source read in part)

    def text(_) -> Iterable[str]:
        return _text_start(mime_type, pieces(), charset, cap_bytes, source_left)
    if mime_type in GUARDED_TEXT_TYPES:  # (the guard knows a file by its SHA-256)
        entry.text, entry.error, cut = _read_with_library(
            text, b"", cap_bytes, f"{mime_type};{charset or ''}", sha256_hex(),
            lambda: bool(source_left))
    else:
        entry.text, cut = capped_text(text(None), cap_bytes)
    entry.cut = html_source_cut(cap_bytes) if source_left and cut else \
        cap_cut(cap_bytes) if cut else None


def _text_start(mime_type: str, pieces: Iterable[bytes], charset: str | None,
                cap_bytes: int, source_left: list) -> Iterable[str]:
    """_file_pieces of a text file (text/*, RTF but) given as pieces of its bytes, in which
    the text past what capped_text reads for cap_bytes is not read: of HTML, its tidied
    text's first read_text_bytes(cap_bytes) (_TidiedText), whose end, one character of
    white space at most at a time, says whether words go on past the cap, read from its
    first HTML_SOURCE_FACTOR * cap_bytes of source at most (one item added to
    `source_left` when some of it was left unread: its words are not known)."""
    start, rest = charsets.decode_document_pieces(pieces, charset, read_text_bytes(cap_bytes))
    if mime_type != "text/html":
        return itertools.chain([start], rest)
    sink = _TidiedText(read_text_bytes(cap_bytes))
    if mime.safely(lambda: html_text.read_into(itertools.chain([start], rest), HTML_BLOCKS,
                                               HTML_INVISIBLE, sink,
                                               HTML_SOURCE_FACTOR * cap_bytes), False):
        source_left.append(True)
    return [sink.text()]


def html_source_cut(cap_bytes: int) -> str:
    """Why an HTML attachment's text holds only what its first bytes of source give."""
    return (f"{PARTLY_INDEXED}text read from the first {HTML_SOURCE_FACTOR * cap_bytes} "
            f"bytes of its HTML source ({HTML_SOURCE_FACTOR} times the attachment text cap, "
            "attachment_text_kb); the rest is not indexed")


def _large_cms(part: Message, filename: str | None, declared: str, cap_bytes: int,
               nesting: int, budget: containers.ReadBudget, container: str | None,
               pieces: Iterator[bytes], digest) -> tuple[list[AttachmentText], str] | None:
    """_large_file() of an attachment that may be a CMS object (its start: `digest` has
    the pieces before `pieces`): read as S/MIME (read_type of its whole, a seekable file
    of it), from its payload spilled to a file (transfer_encoding.spilled_payload): the
    content of signed-data, held to be read as a message, is not held beside the message
    whose bytes the payload was a view into. None when it is read as another type."""
    sha256_hex = _rest_digested(pieces, digest)
    mime_type = read_type(declared, filename, file_bytes.FileBytes(
        transfer_encoding.Base64File(transfer_encoding.held_bytes(part))))
    if mime_type not in containers.CMS_TYPES:
        return None
    source = transfer_encoding.Base64File(file_bytes.FileBytes(
        transfer_encoding.spilled_payload(part)))
    smime_type = mime.safely(lambda: part.get_param("smime-type"), None)
    entry = _entry(filename, declared, mime_type, container)
    inner, body = _guarded(entry, lambda: _file_contents(
        entry, source, cap_bytes, nesting, budget,
        smime_type if isinstance(smime_type, str) else None, _safe_charset(part), sha256_hex))
    return [entry, *inner], body


def _rest_digested(pieces: Iterator[bytes], digest) -> str:
    """The SHA-256 (hex) `digest` (a hashlib hash) gives once fed the rest of `pieces`."""
    for piece in pieces:
        digest.update(piece)
    return digest.hexdigest()


def _start_of(pieces: Iterator[bytes], size: int, digest) -> bytes:
    """The first `size` bytes the pieces join to (fewer when they are fewer), the pieces
    taken for them (and no more) fed to `digest` (a hashlib hash): the rest of the
    iterator is the rest of the content."""
    start = bytearray()
    for piece in pieces:
        digest.update(piece)
        start += piece
        if len(start) >= size:
            break
    return bytes(start[:size])


def _reads_content(mime_type: str) -> bool:
    """Whether _file reads more of a file of `mime_type` than its type and SHA-256: a
    container it opens, or text (_file_pieces: its own, or a library's reading)."""
    return (mime_type in containers.CMS_TYPES or mime_type in containers.TNEF_TYPES
            or mime_type in containers.ZIP_TYPES or mime_type == MESSAGE
            or mime_type.startswith("text/") or documents.handles(mime_type)
            or mime_type in (DOCX_MIME, XLSX_MIME))


def _entry(filename: str | None, declared: str, mime_type: str,
           container: str | None) -> AttachmentText:
    """A file's entry, without its text yet: read as `mime_type` (read_type), declared
    (or named) as another type when the two differ."""
    declared = _type_of_extension(declared, filename)
    return AttachmentText(filename, mime_type, "", container=container,
                          declared_type=declared if declared != mime_type else None)


def _file(filename: str | None, declared: str, data: _FileData, cap_bytes: int,
          nesting: int, budget: containers.ReadBudget, container: str | None,
          smime_type: str | None = None, charset: str | None = None
          ) -> tuple[list[AttachmentText], str]:
    """One file, by its type from content (libmagic) where the declaration is generic or
    wrong: its own entry first, then the entries of the files it contains. `data`: its
    bytes, or a uuencoded file found in pieces (_found_block_file reads a large one of a
    type read for its type or text alone a piece at a time; any other is decoded whole)."""
    if isinstance(data, uuencode.FoundBlock):
        read = _found_block_file(filename, declared, data, cap_bytes, container, charset)
        if read is not None:
            return read
        data = data.data()
    mime_type = read_type(declared, filename, data)
    entry = _entry(filename, declared, mime_type, container)
    inner, body = _guarded(entry, lambda: _file_contents(
        entry, data, cap_bytes, nesting, budget, smime_type, charset))
    return [entry, *inner], body


def _found_block_file(filename: str | None, declared: str, block: uuencode.FoundBlock,
                      cap_bytes: int, container: str | None, charset: str | None
                      ) -> tuple[list[AttachmentText], str] | None:
    """What _file makes of a large uuencoded file found in pieces (a FoundBlock of
    LARGE_FILE_BYTES or more), made from its size, SHA-256 and first bytes (found as it was
    decoded) and, of text (text/*, RTF but), its data decoded again a piece at a time
    (_read_text_pieces): of a type read for its type and SHA-256 alone (as _large_file
    reads a large base64 one) or for its text. A 52 MiB file was decoded whole, and copied.
    None for any other (a container, a document, a message, S/MIME): _file reads its
    bytes."""
    if block.size < LARGE_FILE_BYTES or containers.may_be_cms(block.head):
        return None
    mime_type = read_type(declared, filename, block.head)
    is_text = mime_type.startswith("text/") and mime_type not in documents.RTF_TYPES
    if _reads_content(mime_type) and not is_text:
        return None
    entry = _entry(filename, declared, mime_type, container)
    if is_text:
        _read_text_pieces(entry, block.pieces, charset, cap_bytes, lambda: block.sha256_hex)
    else:
        entry.text, entry.error, _ = _read_with_library(
            lambda _: [], b"", cap_bytes, f"{mime_type};{charset or ''}", block.sha256_hex)
    return [entry], ""


def _guarded(entry: AttachmentText, read: Callable[[], tuple[list[AttachmentText], str]]
             ) -> tuple[list[AttachmentText], str]:
    """read()'s (entries inside the file, body text it carries), or none when it raises:
    a broken file is that attachment's problem (entry.error), not the message's."""
    try:
        return read()
    except MemoryError:
        raise
    except documents.Encrypted as exc:
        entry.encrypted, entry.error = True, f"encrypted: {exc}"
    except Exception as exc:
        entry.error = _error_text(exc)
    return [], ""


def _file_contents(entry: AttachmentText, data: bytes | BinaryIO, cap_bytes: int,
                   nesting: int, budget: containers.ReadBudget, smime_type: str | None,
                   charset: str | None, sha256_hex: str | None = None
                   ) -> tuple[list[AttachmentText], str]:
    """_file's reading of a file of entry.mime_type: its text set on the entry, (the
    entries of the files inside it, the body text it carries) returned. `data`: its bytes,
    or for a zip, a TNEF, S/MIME or a READ_FROM_A_FILE document a seekable file of them,
    with the SHA-256 (hex) of all but a zip's (`sha256_hex`: _read_with_library's, and
    what a tool's run is counted and remembered by)."""
    mime_type = entry.mime_type
    if mime_type in containers.CMS_TYPES:
        return _cms(entry, data, smime_type, cap_bytes, nesting, budget, sha256_hex)
    if mime_type in containers.TNEF_TYPES:
        return _tnef(entry, data, cap_bytes, nesting, budget, sha256_hex), ""
    if mime_type in containers.ZIP_TYPES:
        return _zip(entry, data, cap_bytes, nesting, budget), ""
    if mime_type == "message/rfc822":
        return _forwarded_bytes(entry, data, cap_bytes, nesting, budget), ""
    if mime_type.startswith("text/") and mime_type not in GUARDED_TEXT_TYPES:
        entry.text, cut = capped_text(_file_pieces(mime_type, data, cap_bytes, charset),
                                      cap_bytes)
    else:  # a parser or tool reads it: a known hostile file is not read again
        entry.text, entry.error, cut = _read_with_library(
            lambda d: _file_pieces(mime_type, d, cap_bytes, charset), data, cap_bytes,
            f"{mime_type};{charset or ''}", sha256_hex)
    entry.cut = cap_cut(cap_bytes) if cut else None
    return [], ""


def _read_with_library(reader: Callable[[bytes | BinaryIO], Iterable[str]],
                       data: bytes | BinaryIO, cap_bytes: int, how: str,
                       sha256_hex: str | None = None, left: Callable[[], bool] | None = None
                       ) -> tuple[str, str | None, bool]:
    """(text, error, whether cap_bytes cut the text) of a document a parser or tool reads
    (`how`: its type and charset), unless the guard knows it: then (the text read before,
    None, whether it was cut), or ("", the reason it failed before, False).
    `sha256_hex`: the SHA-256 of the content (64 hex digits) when `data` is not all of it
    (a reader that reads none of it) or is a file of it. documents.Encrypted passes
    through (a verdict, not a failure). `left`: whether the reader left text unread
    besides what the cap cut (then the text is cut all the same)."""
    guard = _guard.get()
    sha256_hex = sha256_hex or hashlib.sha256(data).hexdigest()
    key = text_key(sha256_hex, how, cap_bytes)
    remembered, known = guard.known(key, sha256_hex)
    if remembered is not None:
        # Text cut at the cap is remembered with CUT_MARK after it (never in capped text).
        cut = remembered.endswith(CUT_MARK)
        return (remembered[:-len(CUT_MARK)] if cut else remembered), None, cut
    if known is not None:
        return "", known, False
    cut = False
    try:
        (text, cut), error = capped_text(reader(data), cap_bytes), None
        cut = cut or (left is not None and left())
    except MemoryError:
        raise
    except documents.Encrypted:
        guard.after(sha256_hex, None)
        raise
    except Exception as exc:
        text, error = "", _error_text(exc)
    guard.after(sha256_hex, error)
    if error is None:
        guard.read(key, text + CUT_MARK if cut else text)
    return text, error, cut


def text_key(sha256_hex: str, how: str, cap_bytes: int) -> str:
    """What names one reading of some content: its SHA-256, its type and charset, the cap."""
    return f"{sha256_hex};{how};{cap_bytes}"


def _error_text(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def container_problem(exc: Exception) -> str:
    """Why a container (zip, TNEF, S/MIME signed-data) could not be opened, in the words
    extraction records for it (its failure: "NAME: " and this): what the views say of it
    (services.web.message_tree). `exc`: what services.archive.containers raised
    (ValueError, tools.ToolFailed)."""
    return _error_text(exc)


def _declared_message(declared: str, filename: str | None) -> bool:
    """Whether an attachment part is read as a forwarded message by its fields alone:
    message/rfc822 or message/global (RFC 6532 3.5: one whose fields may be UTF-8; the
    views open both, review r11), or application/octet-stream named .eml (_first_file)."""
    return declared in (MESSAGE, GLOBAL_MESSAGE) or (declared == "application/octet-stream"
                                                     and _extension(filename) == ".eml")


def read_type(declared: str, filename: str | None, data: bytes) -> str:
    """The type extract() reads a file as (_file): the declared type, or for a generic one
    the one its name's extension says, as libmagic's reading of `data` confirms or
    overrules it (filetypes.effective_type); a CMS object, which libmagic cannot tell, is
    S/MIME by its DER (containers.is_cms), under any name."""
    return filetypes.effective_type(_type_of_extension(declared, filename),
                                    _content_type(data))


def _content_type(data: bytes) -> str:
    """The type `data` is by its content: libmagic's, or S/MIME's where it cannot tell."""
    found = filetypes.content_type(data)
    if found in filetypes.VAGUE_DETECTIONS and containers.is_cms(data):
        return containers.CMS_TYPES[0]
    return found


def read_type_of(part: Message, content: bytes) -> str:
    """The type extract() reads file `part` as (_file: read_type): an attachment by its
    declared type and name, a uuencoded file or a container's member (a mime.FoundFile) by
    those extraction reads it by (FoundFile.declared, its name); `content`: its decoded
    bytes (mime.attachment_content), which libmagic reads where the declaration is generic
    or contradicted. What the views open as a container (a TNEF, a zip, S/MIME: the types
    of containers.TNEF_TYPES, ZIP_TYPES, CMS_TYPES), as the indexer does: a winmail.dat
    in a zip is a TNEF by its content (review r11 F6). Never raises but MemoryError."""
    declared = part.declared[0] if isinstance(part, mime.FoundFile) else _mime_type(part)
    return read_type(declared, mime.attachment_name(part), content)


def reads_as_message(part: Message, content: bytes | None = None) -> bool:
    """Whether extract() reads attachment `part` (or a uuencoded file or a container's
    member: a mime.FoundFile, as a part of its type) as a forwarded message, an RFC 5322
    message whose text and files are the message's: by its fields (_declared_message),
    else by the type it reads its file as (read_type of its name, as attachment_name gives
    it, and its `content`: mime.attachment_content, decoded here when not given). libmagic
    reads the content only where it could decide: of a type a content of message/rfc822
    would not overrule, no content makes a message. A FoundFile is read by the fields
    extraction reads it by (FoundFile.declared: none for a found file, whose .eml name
    makes no message but by its content). Never raises but MemoryError."""
    declared, fields_name = part.declared if isinstance(part, mime.FoundFile) \
        else (_mime_type(part), mime.filename_of(part))
    if _declared_message(declared, fields_name):
        return True
    name = mime.attachment_name(part)
    typed = _type_of_extension(declared, name)
    if typed != MESSAGE and filetypes.effective_type(typed, MESSAGE) != MESSAGE:
        return False  # (effective_type answers one of the two types it is given)
    if content is None:
        content = part.data if isinstance(part, mime.FoundFile) \
            else mime.attachment_content(part)
    return read_type(declared, name, content) == MESSAGE


def reads_text_of(mime_type: str, filename: str | None) -> bool:
    """Whether extract() reads text out of an attachment of this declared type and name
    (else it is searchable by its name and type only). By declaration and extension:
    extract() itself also asks libmagic, which may find more."""
    effective = effective_type(mime_type, filename)
    return (effective.startswith("text/") or effective == "message/rfc822"
            or effective in (DOCX_MIME, XLSX_MIME) or documents.handles(effective))


def inner_message(part: Message) -> Message:
    """The message inside a message/rfc822 part, also when a mailer encoded it."""
    return _inner_message(part)


def effective_type(mime_type: str, filename: str | None) -> str:
    """The type a part is shown as: the declared one, or for a generic one the one its
    file name's extension says (mailers send documents as application/octet-stream)."""
    return _type_of_extension(mime_type, filename)


def _type_of_extension(declared: str, filename: str | None) -> str:
    """Mailers send documents as application/octet-stream; the extension is a hint that
    libmagic then confirms or overrules."""
    if declared in filetypes.GENERIC_TYPES | {"application/zip", "application/x-zip-compressed"}:
        extension = _extension(filename)
        return TYPE_OF_EXTENSION.get(extension) or documents.TYPE_OF_EXTENSION.get(
            extension, declared)
    return declared


def _extension(filename: str | None) -> str:
    return "." + filename.rsplit(".", 1)[-1].lower() if filename and "." in filename else ""


def _file_pieces(mime_type: str, data: bytes | BinaryIO, cap_bytes: int,
                 charset: str | None = None) -> Iterable[str]:
    """The text of a file of `mime_type`, in pieces; `data` a seekable file only for
    READ_FROM_A_FILE types."""
    if mime_type == "text/html":
        return [_html_to_text(data, charset)]
    if mime_type.startswith("text/") and mime_type not in documents.RTF_TYPES:
        start, rest = charsets.decode_document_start(data, charset,
                                                     read_text_bytes(cap_bytes))
        return itertools.chain([start], rest)  # (capped_text reads the rest for a word)
    if documents.handles(mime_type):
        return [documents.text_of(mime_type, data)]
    if mime_type == DOCX_MIME:
        return _docx_pieces(data)
    if mime_type == XLSX_MIME:
        return _xlsx_pieces(data)
    return []  # images, unknown binaries: searchable by name and type only (the types
    # _reads_content says are read for nothing: keep the two together)


def _member_entries(entry: AttachmentText, members: list[containers.Member], cap_bytes: int,
                    nesting: int, budget: containers.ReadBudget) -> list[AttachmentText]:
    """Entries for the files of a container, read within the message's text budget."""
    found = []
    for member in members:
        if not member.readable():
            found.append(AttachmentText(member.name, _type_of_extension(
                "application/octet-stream", member.name), "", member.problem,
                container=entry.filename, encrypted=member.encrypted))
            continue
        entries, _ = _within_text_budget(budget, cap_bytes, lambda: _file(
            member.name, "application/octet-stream", member.content(), cap_bytes, nesting + 1,
            budget, entry.filename or entry.mime_type))
        found += entries
    return found


def _within_text_budget(budget: containers.ReadBudget, cap_bytes: int,
                        read: Callable[[], tuple[list[AttachmentText], str]]
                        ) -> tuple[list[AttachmentText], str]:
    """read() of one file, (its entry, then the entries of the files inside it; the body text
    it carries), its own text then kept within what all of the message's attachments have
    left (budget.text_bytes: MESSAGE_ATTACHMENT_TEXT_CAPS caps of cap_bytes, spent in the
    order they are read), and spent. A file is read at its whole cap even so: its text is
    remembered by its SHA-256 and the cap (AttachmentGuard), so that the same file in
    another message is not read again."""
    entries, body = read()
    entry, left = entries[0], max(0, budget.text_bytes)
    kept = truncate_on_a_word(entry.text, left)
    kept_bytes = _utf8_len(kept)
    if words_past(entry.text, len(kept)):
        entry.cut = _shared_cut(entry.cut, kept_bytes, cap_bytes)
    entry.text = kept
    budget.text_bytes -= kept_bytes
    return entries, body


def _shared_cut(cut: str | None, kept_bytes: int, cap_bytes: int) -> str:
    """The cut of a file whose text the message's attachments' budget cut at kept_bytes:
    `cut` (AttachmentText.cut) with what says the cap cut it (cap_cut, html_source_cut)
    made this."""
    done = f"text cut at {kept_bytes} bytes" if kept_bytes else "text not indexed"
    shared = (f"{PARTLY_INDEXED}{done}: all attachments of a message "
              f"share {MESSAGE_ATTACHMENT_TEXT_CAPS * cap_bytes} bytes of text "
              f"({MESSAGE_ATTACHMENT_TEXT_CAPS} x attachment_text_kb), used up by those "
              "before it; the rest is not indexed")
    for own in (cap_cut(cap_bytes), html_source_cut(cap_bytes)):
        if cut and own in cut:
            return cut.replace(own, shared)
    return _joined(cut, shared)


def opens_nested(nesting: int) -> bool:
    """Whether a container (zip, TNEF, S/MIME signed-data, a forwarded message) inside
    `nesting` others (0: a file of the stored message) is opened: MAX_NESTED_CONTAINERS,
    the one rule of the indexer and the views (services.web.message_tree)."""
    return nesting <= MAX_NESTED_CONTAINERS


def _not_opened(entry: AttachmentText, kind: str, data: bytes | BinaryIO, nesting: int,
                budget: containers.ReadBudget, sha256_hex: str | None = None) -> bool:
    """Whether container `entry` of `kind` ("zip", or containers.TOOL_KINDS) stays closed:
    nested too deep (opens_nested), or past the message's tool runs
    (containers.ReadBudget.tool_refusal, by `sha256_hex`: the SHA-256 of `data`, computed
    when not given, which it must be for a file); then its error says why."""
    if not opens_nested(nesting):
        entry.error = NESTED_TOO_DEEP
    elif kind in containers.TOOL_KINDS:
        entry.error = budget.tool_refusal(kind, sha256_hex or hashlib.sha256(data).hexdigest())
    return entry.error is not None


def _zip(entry, data, cap_bytes, nesting, budget) -> list[AttachmentText]:
    if _not_opened(entry, "zip", data, nesting, budget):
        return []
    members, problem = containers.zip_members(data, budget)
    entry.error = problem
    entry.encrypted = any(member.encrypted for member in members)
    return _member_entries(entry, members, cap_bytes, nesting, budget)


def _tnef(entry, data, cap_bytes, nesting, budget, sha256_hex=None) -> list[AttachmentText]:
    """winmail.dat: its body text becomes this entry's text, its files entries of their own.
    `data`: its bytes, or a seekable file of them with their SHA-256 (hex)."""
    if _not_opened(entry, "tnef", data, nesting, budget, sha256_hex):
        return []
    body, files, entry.error = containers.tnef_read(data, budget, sha256_hex)
    if body is not None and body.data:
        body_type = {".rtf": "application/rtf", ".html": "text/html"}.get(
            _extension(body.name), "text/plain")
        entry.text, cut = capped_text(_file_pieces(body_type, body.data, cap_bytes), cap_bytes)
        entry.cut = cap_cut(cap_bytes) if cut else None
    return _member_entries(entry, files, cap_bytes, nesting, budget)


def _cms(entry, data, smime_type, cap_bytes, nesting, budget, sha256_hex=None):
    """S/MIME: signed-data is unwrapped and read as the body and attachments it holds;
    enveloped (encrypted) data is marked encrypted. `data`: its bytes, or a seekable file
    of them with their SHA-256 (hex): its content is then parsed holding its large
    payloads as views (mime.parse_message's `held`), as a worker parses a message."""
    whole = data if isinstance(data, bytes) else file_bytes.FileBytes(data)
    kind = containers.cms_kind(whole, smime_type)
    if containers.holds_no_content(whole, kind):
        return [], ""  # certificates, or a signature whose entity is beside it: a plain file
    if kind is None:
        raise ValueError("not a CMS object (RFC 5652): no content type it names")
    if kind == "compressed-data":
        raise ValueError("not opened: compressed S/MIME (RFC 3274) is not read")
    if containers.is_sealed(kind):
        shown = "".join(filter(str.isprintable, kind))[:SMIME_TYPE_SHOWN]
        raise documents.Encrypted(f"S/MIME {shown or 'unknown CMS content'}")
    if _not_opened(entry, "signed-data", data, nesting, budget, sha256_hex):
        return [], ""
    inner = mime.parse_message(containers.signed_content(data, sha256_hex),
                               held=whole is not data)
    return _inner_entries(inner, entry, cap_bytes, nesting, budget)


def _inner_entries(inner: Message, entry: AttachmentText, cap_bytes: int, nesting: int,
                   budget: containers.ReadBudget) -> tuple[list[AttachmentText], str]:
    body, attachments = _body_and_attachments(inner, cap_bytes, nesting + 1, budget,
                                              entry.filename or entry.mime_type)
    entry.cut = _joined(entry.cut, parts_cut(inner))  # a message parsed on its own says
    return attachments, body                          # its own cut (mime_parts)


def _joined(*cuts: str | None) -> str | None:
    return "; ".join(cut for cut in cuts if cut) or None


def _forwarded(part: Message, filename: str | None, cap_bytes: int, nesting: int,
               budget: containers.ReadBudget, container: str | None) -> list[AttachmentText]:
    """A forwarded message: its headers and body are this entry's text; its attachments,
    and those of the containers in them (opens_nested), are attachments of the message
    too."""
    entry = AttachmentText(filename, "message/rfc822", "", container=container)
    try:
        return [entry, *_forwarded_message(entry, _inner_message(part), cap_bytes, nesting,
                                           budget)]
    except MemoryError:
        raise
    except Exception as exc:
        entry.error = f"{type(exc).__name__}: {exc}"[:500]
        return [entry]


def _forwarded_bytes(entry, data, cap_bytes, nesting, budget) -> list[AttachmentText]:
    return _forwarded_message(entry, mime.parse_message(data), cap_bytes, nesting, budget)


def _forwarded_message(entry: AttachmentText, inner: Message, cap_bytes: int, nesting: int,
                       budget: containers.ReadBudget) -> list[AttachmentText]:
    declared = mime.charsets_of(inner)
    lines = [f"{name}: {mime.decode_header_text(mime.header(inner, name), declared)}"
             for name in ("From", "To", "Subject")]
    if not opens_nested(nesting):
        entry.text = "\n".join(lines)
        entry.cut = (f"{PARTLY_INDEXED}a forwarded message nested deeper than "
                     f"{MAX_NESTED_MESSAGES} levels: only its From, To and Subject are indexed, "
                     "not its body, its attachments or the messages it forwards")
        return []
    outer_unread, budget.unread_text = budget.unread_text, UnreadText()
    try:  # (its body's text is this entry's, not the message's)
        attachments, body = _inner_entries(inner, entry, cap_bytes, nesting, budget)
        unread = budget.unread_text
    finally:
        budget.unread_text = outer_unread
    entry.text, cut = capped_text(["\n".join([*lines, "", body])], cap_bytes)
    cut = cut or unread.words
    entry.cut = _joined(entry.cut, cap_cut(cap_bytes) if cut else None)
    return attachments


def _inner_message(part: Message) -> Message:
    if isinstance(part, mime.FoundFile):  # a uuencoded .eml file: its bytes (review r5 F6)
        if "_inner_message" not in part.__dict__:  # (its bytes do not change: parsed once)
            part.__dict__["_inner_message"] = mime.parse_message(part.data)
        return part.__dict__["_inner_message"]
    payload = part.get_payload()
    inner = payload[0] if isinstance(payload, list) and payload else None
    encoding = transfer_encoding.encoding_of(part.get("content-transfer-encoding", ""))
    if isinstance(inner, Message) and encoding not in ("base64", "quoted-printable"):
        return inner
    if not isinstance(inner, Message):  # an .eml attachment: its content, decoded once
        return mime.parse_message(_part_bytes(part))
    # RFC 2046 forbids encoding a message/rfc822 part, yet some mailers do; the parser then
    # took the encoded text for a message. Re-encode what it saw, decode, parse again.
    try:
        source = _seen_source(inner)
        if encoding == "base64":
            source = transfer_encoding.decode_base64(source)
        elif encoding == "quoted-printable":
            source = transfer_encoding.decode_quoted_printable(source)
    except (ValueError, TypeError, LookupError):
        return inner
    return mime.parse_message(source)


def _seen_source(inner: Message) -> bytes:
    """The encoded text the parser took for a message, as it was: where a line that is no
    header ended its header block (a quoted-printable soft line break in a long Subject),
    the parser's message, made bytes again, has a blank line there that the text had not,
    and decoding kept it: the Subject cut, the fields after it read as body."""
    source = inner.as_bytes()
    if any(isinstance(defect, errors.MissingHeaderBodySeparatorDefect)
           for defect in inner.defects):
        blank = source.find(b"\n\n")
        if blank >= 0:
            source = source[:blank + 1] + source[blank + 2:]
    return source


# python-docx and openpyxl are imported where used: they take a third of a second to
# import, which every CLI command would pay; the workers' fork server imports them once.
PRELOADED = ("services.archive.docx_text", "openpyxl")

def _docx_pieces(data: bytes | BinaryIO) -> Iterator[str]:
    from services.archive.docx_text import docx_pieces
    return docx_pieces(data)


def _xlsx_pieces(data: bytes | BinaryIO) -> Iterator[str]:
    import openpyxl
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # openpyxl warns about styles and extensions it skips
        book = openpyxl.load_workbook(io.BytesIO(data) if isinstance(data, bytes) else data,
                                      read_only=True, data_only=True)
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


def _html_to_text(data: bytes, charset: str | None) -> str:
    """The text of an HTML document: one line per block, single spaces."""
    return html_document_text(mime.decode_text(data, charset))


def html_document_text(document: str) -> str:
    """The text of a decoded HTML document as the index reads it (what the web's reader
    shows of HTML-only mail): one line per block, single spaces, no script, style, head or
    title. Raises MemoryError where it does not fit, never gives part of the text."""
    return _tidy_whitespace(_document_layout(document))


def _html_layout(data: bytes, charset: str | None) -> str:
    """The text of an HTML document as its source lays it out, a line break after each
    block, untidied ("" for a document of no element or only whitespace). Its memory is the
    document's and the text's, not a tree's (services.archive.html_text); raises
    MemoryError where they do not fit, never gives part of the text."""
    return _document_layout(mime.decode_text(data, charset))


def _document_layout(document: str) -> str:
    """_html_layout of the decoded document."""
    if not document or document.isspace():  # (isspace is strip's whitespace, no copy)
        return ""
    # "" where lxml raises (as the tree's parse did on a document of only comments); a
    # MemoryError is raised on (mime.safely)
    return mime.safely(
        lambda: html_text.layout(document, HTML_BLOCKS, HTML_INVISIBLE), "")


class _TidiedText:
    """An html_text.Sink: the text written to it tidied (_tidy_whitespace) as it comes,
    `full` once it holds `limit` UTF-8 bytes of tidied text. Text is held untidied up to
    TIDIED_PIECE characters and then tidied up to its last character that is no white
    space (tidying turns each run of white space into one space or line break, never
    across a word), the run after it held as the character it tidies to: the pieces
    tidied each on their own join to the whole text tidied."""

    def __init__(self, limit: int):
        self.limit, self.size, self.full = limit, 0, False
        self.tidied: list[str] = []
        self.untidied = io.StringIO()
        self.untidied_characters = 0

    def write(self, text: str) -> None:
        self.untidied.write(text)
        self.untidied_characters += len(text)
        if self.untidied_characters >= TIDIED_PIECE:
            self._tidy(ended=False)

    def text(self) -> str:
        """All that was written, tidied (_tidy_whitespace of it joined)."""
        self._tidy(ended=True)
        return "".join(self.tidied).strip()

    def _tidy(self, ended: bool) -> None:
        text = self.untidied.getvalue()
        end = len(text) if ended else len(text.rstrip())
        tidied = LINE_BREAKS_TO_TIDY.sub("\n", SPACE_RUNS_TO_TIDY.sub(" ", text[:end]))
        self.tidied.append(tidied)
        self.size += _utf8_len(tidied)
        self.full = self.size >= self.limit
        # the white space after it held as the one character it tidies to (megabytes of
        # line breaks are one, whatever follows)
        tail = text[end:]
        self.untidied = io.StringIO()
        self.untidied_characters = self.untidied.write(("\n" if "\n" in tail else " ")
                                                       if tail else "")


def _tidy_whitespace(text: str) -> str:
    """One line per block, single spaces: the layout of HTML source means nothing. Gives
    what c13b992's two substitutions (every run of whitespace but line breaks to a space,
    then every line break with the spaces around it to one) gave: runs that are one space
    already, and line breaks alone, are not matched, so not rebuilt (half the time, and
    fewer pieces in memory for a text of many words or lines)."""
    text = SPACE_RUNS_TO_TIDY.sub(" ", text)
    return LINE_BREAKS_TO_TIDY.sub("\n", text).strip()


def _part_bytes(part: Message) -> bytes:
    return transfer_encoding.decoded_payload(part)


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
    return capped_text(pieces, cap_bytes)[0]


# Marks remembered text (AttachmentGuard.read) that the cap cut: a lone surrogate, which
# capped text never holds (truncate_utf8 makes each one '?').
CUT_MARK = "\ud800"


def capped_text(pieces: Iterable[str], cap_bytes: int) -> tuple[str, bool]:
    """join_capped(), and whether the cap cut text off: more than whitespace past cap_bytes,
    in the pieces read or those left unread."""
    taken, size, iterator = [], 0, iter(pieces)
    for piece in iterator:
        taken.append(piece)
        size += len(piece.encode("utf-8", "replace"))
        if size > cap_bytes:  # (at the cap, the next piece says whether a word goes on)
            break
    joined = "".join(taken)
    text = truncate_on_a_word(joined, cap_bytes)  # a prefix of joined
    return text, words_past(joined, len(text)) or any(piece.strip() for piece in iterator)


_NOT_WHITE_SPACE = re.compile(r"\S")  # (white space as str.isspace() has it)


def words_past(text: str, position: int) -> bool:
    """Whether `text` holds more than white space from `position` on (found, not copied:
    what is past a cut can be megabytes)."""
    return _NOT_WHITE_SPACE.search(text, position) is not None


# A cut inside a run of this many characters or fewer (no white space) drops the run: its
# first letters would be a term the text does not hold. A longer run is no word a search
# types (base64, a hash), and dropping it could drop most of a text without white space.
WORD_RUN_LIMIT = 64


def truncate_on_a_word(whole: str, cap_bytes: int) -> str:
    """truncate_utf8(whole, cap_bytes), less the word it ends inside of when that word (its
    run of characters without white space, in `whole`) is at most WORD_RUN_LIMIT long:
    "... fill confidential" cut at "... fill con" is "... fill "."""
    cut = truncate_utf8(whole, cap_bytes)  # (as long in characters as its prefix of whole)
    end = len(cut)
    if end == len(whole) or not cut or whole[end].isspace() or cut[-1].isspace():
        return cut
    start, stop = end, end
    while start > 0 and not cut[start - 1].isspace() and stop - start <= WORD_RUN_LIMIT:
        start -= 1
    while stop < len(whole) and not whole[stop].isspace() and stop - start <= WORD_RUN_LIMIT:
        stop += 1
    return cut[:start] if stop - start <= WORD_RUN_LIMIT else cut


def truncate_utf8(text: str, cap_bytes: int) -> str:
    """At most cap_bytes of UTF-8, cut on a character boundary; lone surrogates (which some
    PDF fonts produce and UTF-8 cannot carry) become '?'."""
    data = text[:cap_bytes].encode("utf-8", "replace")[:cap_bytes]
    return data.decode("utf-8", "ignore")


# --- the sandboxed pool -------------------------------------------------------------------

READY = b"ready"
# How a worker is to read a message: extract() it, give its fallback(), or build its
# document from the reading the store kept of it (services.archive.readings).
EXTRACT, FALLBACK, READ_BACK = "extract", "fallback", "read back"
# Text of documents kept by a pool that is not sized for a model (a model's: an eighth of
# its indexing.memory_mb), so that the same attachment is read by its library once.
TEXT_MEMO_BYTES = 8 * 1024 * 1024
# Words and tokens an extraction worker keeps cached (services.archive.words), some 4 MB.
# 32768 missed fewer tokens on the bench corpora (16384 misses one in ten) but no CPU
# difference showed on an import of 10,000, while its peak Pss went from 252 to 256 MB,
# the model 450's bound.
WORKER_CACHED_WORDS = 16384
# A worker gives its heap's free memory back (heap.trim) after a message of at least
# TRIM_AFTER_BYTES, and after every TRIM_EVERY messages: parsing a large message leaves tens
# of MB free but resident (a worker's Pss 50-60 MB untrimmed, 30-40 MB trimmed, on the bench
# corpus), while after a small one trimming only makes the next message fault the same
# pages in again (measured: trimming after each of 5,000 plain bench messages cost the
# workers about 1.5 s of CPU, most of it in the kernel).
TRIM_AFTER_BYTES = 64 * 1024
TRIM_EVERY = 32
# Reads of one message before it gets the fallback: the second one skips the attachment the
# first was blamed on, so the rest of the message is still read.
ATTEMPTS = 2
# A message's time limit counts the CPU its worker and the readers that worker runs use
# (cpu_time.tree_usage), not the time it waits for a core (see cpu_time). Reading a tree's
# use costs some 50 us, as much as handing a small message over, so it is first read once a
# message has been read for CPU_CHECK_S: that second is counted as a second of CPU (one
# reader computes at a time), the kernel's count from then on; then at least every
# cpu_time.LOOK_S. A read blocked (neither computing nor ready to) for BLOCKED_FACTOR times
# its limit stops all the same.
CPU_CHECK_S = 1.0
BLOCKED_FACTOR = 10
# What reading a message costs a worker beyond its resting memory, estimated from its size
# (measured on the bench corpus, 2 MB messages with PDF, DOCX, XLSX and forwarded messages:
# 13-27 MB; a document library's parse alone some 6-8 MB): the message, its parsed tree
# with decoded parts, a library's tree of a document, the text and the document built.
WORKER_MESSAGE_BYTES = 8 * 1024 * 1024
WORKER_BYTES_PER_MESSAGE_BYTE = 8


def extraction_cost(size: int) -> int:
    """Estimated bytes a worker holds while reading a message of `size` bytes (the pool's
    memory budget admits messages by it)."""
    return WORKER_MESSAGE_BYTES + WORKER_BYTES_PER_MESSAGE_BYTE * size


@dataclass
class _Job:
    index: int                       # position in extract_many's list
    source: bytes | Callable[[], bytes | MessagePieces | None]  # the message, or where to
                                                                # read it from
    digest: str                      # SHA-256 of raw (the store's digest)
    cost: int                        # extraction_cost() of its size
    metadata: dict | None = None     # the store's: the worker builds the document with it
    reading: bytes | None = None     # kept by the store: read back instead of extracted
    attempts: int = 0
    fallback_reason: str | None = None  # set: the worker gives fallback() for this reason


@dataclass
class _Running:
    job: _Job
    started: float                   # time.monotonic()
    next_check: float                # when its worker is looked at next (time.monotonic())
    blocked: cpu_time.BlockedClock
    cpu_base: float | None = None    # the worker's tree CPU at its first check, less the
                                     # seconds before it (counted as CPU)
    reading: str | None = None       # SHA-256 of the attachment a library is reading now


class ExtractionPool:
    """Worker processes that run extract() under a time limit and an address-space limit,
    and remember by SHA-256 what could not be read (`memo`: an ExtractionMemo keeps it in
    the store across restarts; by default it lasts as long as the pool).

    Time limit: a read of one message stops when it has used `timeout_s` seconds of CPU (its
    worker and the readers the worker runs together), or when it has been blocked (waiting
    without computing, cpu_time.BlockedClock) for `blocked_s` seconds (by default
    BLOCKED_FACTOR times timeout_s). The scheduler may keep it waiting for a core as long
    as it likes (the indexer runs at the idle policy): that counts against neither.
    Bounds: one message costs at most ATTEMPTS + 1 time limits of one worker the first time
    (two reads, then the fallback) and a memo lookup per attachment every later time; a
    worker never holds more than memory_mb; the pool process itself never parses mail.
    Memory: the messages being read at once cost at most `budget_bytes` together (each its
    extraction_cost()): a message is given to an idle worker only when its cost fits what
    the others leave of the budget, or when no other is being read (a message costing
    more than the whole budget is then read alone); the pool holds the bytes of only the
    messages the workers are reading.

    Workers are started with 'forkserver', not 'fork': a forked indexer would hand its LMDB
    map and Xapian state to the child, and RLIMIT_AS would count the whole LMDB map.
    """

    def __init__(self, cap_bytes: int, workers: int = 1, timeout_s: float = 20.0,
                 memory_mb: int = 512, memo: ExtractionMemo | MemoryMemo | None = None,
                 text_memo_bytes: int = TEXT_MEMO_BYTES, budget_bytes: int | None = None,
                 blocked_s: float | None = None):
        """`timeout_s`: CPU seconds a message's read may use; `blocked_s`: seconds it may
        be blocked (None: BLOCKED_FACTOR * timeout_s); `budget_bytes`: what the messages
        being read at once may cost (None: no bound but the workers' count)."""
        self.cap_bytes, self.timeout_s, self.memory_mb = cap_bytes, timeout_s, memory_mb
        self.blocked_s = blocked_s if blocked_s is not None else BLOCKED_FACTOR * timeout_s
        self.budget_bytes = budget_bytes
        # The extraction_cost() of the messages being read now, and the most it has been
        # (for metrics and tests: never above budget_bytes but for a message read alone).
        self.admitted_bytes = self.peak_admitted_bytes = 0
        self.memo = memo if memo is not None else MemoryMemo()
        self.texts = TextMemo(text_memo_bytes)
        # For status, metrics and tests: workers killed at their time limit, workers
        # started again (after a timeout, out of memory, a crash), failures known already,
        # documents whose text was read before.
        self.timeouts = self.worker_restarts = self.memo_hits = self.text_memo_hits = 0
        self._context = multiprocessing.get_context("forkserver")
        # The fork server imports the extraction libraries once, so a worker restarted after
        # a timeout is a cheap fork and a time limit counts reading, not importing (takes
        # effect only if the fork server is not yet running).
        self._context.set_forkserver_preload(["services.archive.extract",
                                              "services.archive.index",
                                              "services.archive.readings", *PRELOADED])
        self._workers = [self._start_worker() for _ in range(max(1, workers))]

    @classmethod
    def for_model(cls, profile, memo: ExtractionMemo | None = None) -> ExtractionPool:
        """A pool sized for a model profile (firmware.models.ModelProfile): its attachment
        text cap and extraction limits, its indexing.workers (no more than there are
        cores), and its share of indexing.memory_mb (budget_for_model)."""
        return cls(profile.attachment_text_bytes,
                   workers=min(profile.indexing.workers, os.cpu_count() or 1),
                   timeout_s=profile.extraction.timeout_s,
                   memory_mb=profile.extraction.memory_mb, memo=memo,
                   text_memo_bytes=profile.indexing.memory_bytes // 8,
                   budget_bytes=budget_for_model(profile))

    def __enter__(self) -> ExtractionPool:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def extract_many(self, raws: list[bytes | Callable[[], bytes | None]],
                     metadata: list[dict] | None = None, digests: list[str] | None = None,
                     readings: list[bytes | None] | None = None) -> list[Extracted | None]:
        """Results in the order of raws. Never raises for a message: one that times out, runs
        out of memory or kills its worker is read again without the attachment blamed, or
        gets fallback(), or at worst headers_only(); the worker is replaced. With `metadata`
        (the store's, one per raw, with "number" and "size"), the worker also builds each
        message's Xapian document from what it read (Extracted.document, its text then
        dropped: Extracted.without_text), so that parsing, word breaking and building all
        run beside the indexer, in the sandbox.
        A raw may be a function giving the bytes or their pieces (store.MessagePieces, sent
        as they are decompressed), called when a worker is ready for them (None: the
        message is gone, and so is its result); its `digests` entry (SHA-256 hex
        of the bytes) is then required, and its metadata's "size" sizes its cost.
        `readings` (with `metadata`): per message, what the store kept of reading it before
        (services.archive.readings) or None; a worker builds the document from it instead of
        reading the message, unless it is stale (then the message is read). A message read
        whole here gets its reading in Extracted.reading, for the store to keep."""
        results: list[Extracted | None] = [None] * len(raws)
        metadata = metadata or [None] * len(raws)
        readings = readings or [None] * len(raws)
        waiting = deque(job for index, raw in enumerate(raws)
                        if (job := self._plan(index, raw, metadata[index],
                                              digests[index] if digests else None, results,
                                              readings[index]))
                        is not None)
        running: dict[int, _Running] = {}  # worker slot -> the job it works on
        try:
            while waiting or running:
                for slot in range(len(self._workers)):
                    if slot not in running and waiting and self._admits(waiting[0], running):
                        self._dispatch(slot, waiting.popleft(), running, waiting, results)
                self._collect(running, waiting, results)
        except BaseException:
            self._abandon(running)
            raise
        return results

    def _abandon(self, running: dict) -> None:
        """What raised in extract_many (a source's store read, the memo's write) goes to the
        caller; the workers still reading its messages are replaced, their memory given
        back: their answers would else be taken for the next call's messages."""
        for slot in list(running):
            self._settled(slot, running)
            self._restart(slot)

    def _admits(self, job: _Job, running: dict) -> bool:
        """Whether the memory budget lets `job` be read beside those running."""
        return (self.budget_bytes is None or not running
                or self.admitted_bytes + job.cost <= self.budget_bytes)

    @property
    def worker_pids(self) -> list[int]:
        """For status and metrics (memory of the workers), and for tests."""
        return [worker.process.pid for worker in self._workers]

    def close(self) -> None:
        for worker in self._workers:
            worker.stop(kill=False)
        self._workers = []

    @staticmethod
    def end_fork_server() -> None:
        """End the fork server the workers were forked from (it holds the extraction
        libraries, some 35 MB); the next pool started starts it again. For a process that
        needs the memory back while it has no pool (an import storing a message of the
        model's largest size): multiprocessing keeps its fork server for the life of the
        process, and has no public call to end it. Call it with every pool closed."""
        fork_server = multiprocessing.forkserver._forkserver
        if hasattr(fork_server, "_stop"):  # (CPython's own tests call it; 3.11 has it)
            fork_server._stop()

    def _start_worker(self) -> _Worker:
        return _Worker(self._context, self.cap_bytes, self.memory_mb)

    def _plan(self, index: int, source, metadata: dict | None, digest: str | None,
              results: list, reading: bytes | None = None) -> _Job | None:
        """The job for one message, as far as its known failures allow; None when even its
        fallback failed before (its result is then set here)."""
        if _is_bytes(source):
            size, digest = len(source), digest or hashlib.sha256(source).hexdigest()
        else:
            size = (metadata or {}).get("size", 0)  # unknown: the least a message costs
        job = _Job(index, source, digest, extraction_cost(size), metadata,
                   reading if metadata is not None else None)
        if (reason := self.memo.failure(_fallback_key(job.digest))) is not None:
            self.memo_hits += 1
            results[index] = headers_only(source, reason)
            return None
        if (reason := self.memo.failure(job.digest)) is not None:
            self.memo_hits += 1
            job.fallback_reason = reason
        return job

    def _dispatch(self, slot: int, job: _Job, running: dict, waiting: deque,
                  results: list) -> None:
        if self._workers[slot].died_idle():
            self._restart(slot)  # e.g. the OOM killer: start afresh, the job is not to blame
        mode = (FALLBACK if job.fallback_reason is not None
                else READ_BACK if job.reading is not None else EXTRACT)
        raw = (job.reading if mode == READ_BACK
               else job.source if _is_bytes(job.source) else job.source())
        if raw is None:
            return  # gone since it was planned: its result stays None
        self._admit(slot, job, running)
        try:
            _send_job(self._workers[slot].connection,
                      (mode, job.fallback_reason, job.metadata, job.digest), raw)
        except OSError:  # it gave up reading the message (too big for its memory limit)
            if _said_something(self._workers[slot].connection):
                self._hear(slot, running, waiting, results)  # why: ("failed", ...)
            else:
                self._failed(slot, running, waiting, results, "worker died")

    def _admit(self, slot: int, job: _Job, running: dict) -> None:
        now = time.monotonic()
        running[slot] = _Running(job, now, now + min(CPU_CHECK_S, self.timeout_s),
                                 cpu_time.BlockedClock(now))
        self.admitted_bytes += job.cost
        self.peak_admitted_bytes = max(self.peak_admitted_bytes, self.admitted_bytes)

    def _settled(self, slot: int, running: dict) -> _Running:
        """The worker in `slot` is done with its job (read, failed or killed)."""
        entry = running.pop(slot)
        self.admitted_bytes -= entry.job.cost
        return entry

    def _collect(self, running: dict, waiting: deque, results: list) -> None:
        """Wait for the first word from a worker or the first time a limit is to be checked;
        hear out every worker that spoke, then settle those past a time limit."""
        if not running:
            return
        next_check = min(entry.next_check for entry in running.values())
        connections = {self._workers[slot].connection: slot for slot in running}
        ready = multiprocessing.connection.wait(
            list(connections), timeout=max(0.0, next_check - time.monotonic()))
        for connection in ready:
            slot = connections[connection]
            entry = running[slot]
            self._hear(slot, running, waiting, results)  # ready: it has said something
            while running.get(slot) is entry and connection.poll():
                self._hear(slot, running, waiting, results)
        now = time.monotonic()
        for slot, entry in list(running.items()):
            if now >= entry.next_check and (problem := self._past_limit(slot, entry, now)):
                self.timeouts += 1
                self._failed(slot, running, waiting, results, problem)

    def _past_limit(self, slot: int, entry: _Running, now: float) -> str | None:
        """Which time limit the read in `slot` is past (a problem for _failed), or None and
        when to look again: within cpu_time.LOOK_S, and no sooner than its CPU could reach
        its limit on two cores."""
        try:
            usage = cpu_time.tree_usage(self._workers[slot].process.pid)
        except ProcessLookupError:  # dead: its pipe says so next
            usage = None
        if usage is not None and entry.cpu_base is None:  # the first look: all of it CPU
            entry.cpu_base = usage.cpu_s - min(now - entry.started, CPU_CHECK_S)
        cpu_left = self.timeout_s - (usage.cpu_s - entry.cpu_base if usage else 0.0)
        if cpu_left <= 0:
            return f"used more than {self.timeout_s:g} s of CPU"
        if entry.blocked.add(usage, now) >= self.blocked_s:
            return f"was blocked for {self.blocked_s:g} s"
        entry.next_check = now + max(min(cpu_left / 2, cpu_time.LOOK_S), 0.05)
        return None

    def _hear(self, slot: int, running: dict, waiting: deque, results: list) -> None:
        """One word from a worker: about to read an attachment, done reading it, or done."""
        connection, entry = self._workers[slot].connection, running[slot]
        try:
            kind, payload = connection.recv()
        except (EOFError, OSError):
            code = self._workers[slot].exit_code()
            self._failed(slot, running, waiting, results, f"worker died (exit code {code})")
            return
        if kind == "known?":
            self._known_word(connection, entry, *payload)
        elif kind == "read":
            if payload is not None:  # the library raised: as good as known for next time
                self.memo.remember_failure(entry.reading, payload)
            entry.reading = None
        elif kind == "text":  # what a library read from some content: (key, text)
            self.texts.remember(*payload)
        elif kind == "ok":
            results[entry.job.index] = payload
            self._settled(slot, running)
        elif kind == "stale":  # the kept reading is of no use: read the message itself
            entry.job.reading = None
            waiting.appendleft(self._settled(slot, running).job)
        else:
            self._failed(slot, running, waiting, results, payload)

    def _known_word(self, connection, entry: _Running, key: str, sha256_hex: str) -> None:
        """A worker asks, before a library parses an attachment, for the text read before
        from it (AttachmentGuard.known): (text, None) when there is some; else it is about
        to read these bytes (the ones a timeout then blames), and gets (None, the failure
        known)."""
        text = self.texts.text(key)
        self.text_memo_hits += text is not None
        failure = None
        if text is None:
            entry.reading = sha256_hex
            failure = self.memo.failure(sha256_hex)
            self.memo_hits += failure is not None
        _answer(connection, (text, failure))

    def _failed(self, slot: int, running: dict, waiting: deque, results: list,
                problem: str) -> None:
        """The worker in `slot` timed out, ran out of memory or died: replace it, remember
        what was to blame, and decide what the message gets next."""
        entry = self._settled(slot, running)
        self._restart(slot)
        job, reason = entry.job, f"attachment extraction {problem}"
        if job.reading is not None:  # building from the kept reading failed: read the message
            job.reading = None
            waiting.appendleft(job)
            return
        if job.fallback_reason is not None:  # even the fallback failed: headers from intake
            reason = f"{job.fallback_reason}; the fallback {problem} too"
            self.memo.remember_failure(_fallback_key(job.digest), reason)
            results[job.index] = headers_only(job.source, reason)
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


def headers_only(source, reason: str) -> Extracted:
    """unread(reason), with the summary of the message's header block as intake reads it
    (mime.summarize_headers: at most mime.SUMMARY_HEADER_LIMIT bytes, parsed here, never
    the message): whose mail it is, its recipients included, stays known when neither a
    worker nor its fallback could read the message. `source`: the message's bytes, or a
    function that reads them (None: no longer stored)."""
    extracted = unread(reason)
    raw = source if _is_bytes(source) else _whole(source())
    if raw:
        extracted.summary = mime.summarize_headers(raw)
    return extracted


def _whole(raw):
    """The bytes a source's function gave: as they are, or its pieces joined (how far
    summarize_headers reads depends on where the header block ends)."""
    if raw is None or _is_bytes(raw):
        return raw
    with raw:
        return b"".join(raw)


def _is_bytes(source) -> bool:
    """Whether an extract_many source is the message itself (else a function giving it)."""
    return isinstance(source, (bytes, bytearray, memoryview))


def _send_job(connection, header: tuple, raw) -> None:
    """connection.send(header) then connection.send_bytes(raw), in one system call: the
    same bytes on the wire (multiprocessing's frames: a 4-byte big-endian length, or -1
    and an 8-byte one from 2 GiB on, then the data), so the worker reads them as before,
    but it is woken once a message, not twice, and the bytes are not copied. `raw`: the
    message's bytes, or its pieces (store.MessagePieces: its `size`, then its pieces as
    they are decompressed; closed here), whose frame is written piece by piece: the pool
    then holds a piece of a large message, never all of it. Raises OSError as send()
    does (the worker died or gave up reading), and what reading the pieces raises (the
    worker is then part way through a frame: it must be restarted)."""
    pickled = multiprocessing.reduction.ForkingPickler.dumps(header)
    framed_header = [*_frame_header(len(pickled)), pickled]
    fd = connection.fileno()
    if _is_bytes(raw):
        data = memoryview(raw).cast("B")  # framed by its bytes, not its items (send_bytes)
        _write_all(fd, [*framed_header, *_frame_header(data.nbytes), data])
        return
    with raw:
        _write_all(fd, [*framed_header, *_frame_header(raw.size)])
        for piece in raw:
            _write_all(fd, [piece])


def _write_all(fd: int, buffers: list) -> None:
    """os.writev(fd, buffers) until all of them is written: a signal can cut a blocking
    write short, and a pipe takes at most its capacity at a time."""
    views = [memoryview(buffer) for buffer in buffers]
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views.pop(0))
        if written:
            views[0] = views[0][written:]


def _frame_header(size: int) -> list[bytes]:
    """What multiprocessing.connection.Connection.send_bytes writes before `size` bytes."""
    if size > 0x7fffffff:
        return [struct.pack("!i", -1), struct.pack("!Q", size)]
    return [struct.pack("!i", size)]


def _said_something(connection) -> bool:
    try:
        return connection.poll()
    except OSError:
        return False


def _fallback_key(digest: str) -> str:
    """The memo's key for "even the fallback failed on this message"."""
    return hashlib.sha256(b"fallback\0" + digest.encode()).hexdigest()


def _answer(connection, value) -> None:
    """Answer a worker's question; one that died meanwhile is heard next as end-of-file."""
    try:
        connection.send(value)
    except OSError:
        pass


def budget_for_model(profile) -> int:
    """The extraction memory budget of a model (firmware.models.ModelProfile): half its
    indexing.memory_mb (the other half is the indexer's, services.archive.indexer)."""
    return profile.indexing.memory_bytes // 2


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

    def died_idle(self) -> bool:
        """Whether this worker, between jobs, is dead. An idle worker says nothing
        unprompted, so a word waiting from it is the end-of-file of its death; its pipe is
        asked beside the process's sentinel because that stays quiet (is_alive() says True)
        until the fork server has reaped the worker and reported its exit."""
        try:  # one poll of both, where poll() then is_alive() made two (each a wait())
            return bool(multiprocessing.connection.wait(
                [self.connection, self.process.sentinel], timeout=0))
        except (OSError, ValueError):  # closed: as asked one at a time
            return _said_something(self.connection) or not self.process.is_alive()

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
    """An extraction worker's life: _serve_messages(), then its PDF text server ended and
    waited for (so its CPU is counted as the worker's children's). It ends quietly when the
    process that sent it work is killed (its end of the pipe reset), not with a traceback,
    and ignores SIGINT (its process group's Ctrl-C: whoever started it stops it)."""
    # Ctrl-C at a terminal signals the whole process group: the importer or indexer that
    # started this worker stops it; a KeyboardInterrupt here would only print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _serve_messages(connection, cap_bytes, memory_mb)
    except (ConnectionResetError, BrokenPipeError):
        pass  # whoever sent the work is gone (killed): there is no one to answer
    finally:
        pdf_text_server.stop()


def _serve_messages(connection, cap_bytes: int, memory_mb: int) -> None:
    """Worker main loop: (mode, fallback reason, metadata or None, digest) and a message
    (READ_BACK: the store's reading of it) in; ("known?", (text key, SHA-256)) before each
    attachment a library would parse (answered: the text read before, else the failure
    known, else it is read), ("read", error) after it and ("text", (key, text)) when it
    was read; one ("ok", Extracted), ("stale", why: the reading is of no use) or
    ("failed", why) out."""
    from services.archive import readings, words
    _limit_memory(memory_mb)
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # malformed PDFs are routine here
    words.bound_cached_words(WORKER_CACHED_WORDS)  # each would else keep up to 31 MB
    connection.send_bytes(READY)
    guard = _PoolGuard(connection)
    read = 0
    while True:
        try:
            mode, reason, metadata, digest = connection.recv()
            received = [connection.recv_bytes()]  # (emptied by _read_message)
            size = len(received[0])
        except EOFError:
            return
        except MemoryError:  # the message alone is too big for the limit; the pipe is now
            connection.send(("failed", f"ran out of memory (limit {memory_mb} MB)"))
            return           # out of step: start afresh
        try:
            reply = ("ok", _read_message(mode, received, reason, cap_bytes, guard))
        except readings.StaleReading as exc:
            reply = ("stale", str(exc))
        except MemoryError:
            reply = ("failed", f"ran out of memory (limit {memory_mb} MB)")
        except Exception as exc:  # extract() should not raise; if it does, say what it was
            reply = ("failed", f"failed: {type(exc).__name__}: {exc}"[:500])
        del received
        if reply[0] == "ok" and metadata is not None:
            reply = ("ok", _with_document(reply[1], digest, metadata, mode == EXTRACT,
                                          cap_bytes))
        connection.send(reply)
        if reply[0] == "failed":
            return  # a MemoryError can leave a library half-initialised: start afresh
        del reply
        read += 1
        if trims_after(size, read):
            heap.trim()


def trims_after(size: int, read: int) -> bool:
    """Whether a worker gives its heap's free memory back (heap.trim) after the `read`-th
    message it read (counted from 1), of `size` bytes: after a large one, and after every
    TRIM_EVERY-th (see TRIM_AFTER_BYTES)."""
    return size >= TRIM_AFTER_BYTES or read % TRIM_EVERY == 0


def _read_message(mode: str, received: list[bytes], reason: str | None, cap_bytes: int,
                  guard: AttachmentGuard) -> Extracted:
    """A worker's reading of one message, as `mode` says (EXTRACT, FALLBACK, READ_BACK), of
    the bytes `received` holds, which it takes from it: in EXTRACT, once the message is
    parsed, only a payload held as a view refers to them (Parsed), and they are freed
    before the parts' payloads are decoded unless one does (a message of 80 MB: 80 MB
    less at the worker's peak). Raises
    readings.StaleReading for a kept reading it cannot use."""
    from services.archive import readings  # it imports this module
    data = received.pop()
    if mode == READ_BACK:
        return readings.decode(data, cap_bytes)
    if mode == FALLBACK:
        return fallback(data, reason)
    given = [data]
    del data  # (the parse frees what it need not keep of it: mime.parse_message)
    parsed = parse(given)
    if parsed is None:
        return fallback(given.pop(), NESTED_TOO_DEEPLY)
    del given
    return extract_parsed(parsed, cap_bytes, guard)


class _PoolGuard(AttachmentGuard):
    """The worker's guard: asks the pool, which remembers failures and text by SHA-256."""

    def __init__(self, connection):
        self.connection = connection

    def known(self, key: str, sha256_hex: str) -> tuple[str | None, str | None]:
        # One question, not one for the text and one for a failure: the worker waits for
        # each answer, and the pool's answer waits for its process's turn (its GIL).
        self.connection.send(("known?", (key, sha256_hex)))
        return self.connection.recv()

    def after(self, sha256_hex: str, error: str | None) -> None:
        self.connection.send(("read", error))

    def read(self, key: str, text: str) -> None:
        self.connection.send(("text", (key, text)))


def _with_document(content: Extracted, digest: str, metadata: dict, keep_reading: bool,
                   cap_bytes: int) -> Extracted:
    """`content` with its whole document (services.archive.index.build_bounded_document:
    what that cut to fit is cut in it too) serialised in Extracted.document, its text then
    dropped (the document holds it: not sent, not held); with `keep_reading` (it was read
    from the message), its reading too. `content` as it was when the document cannot be
    built here: the indexer then builds it, or less of it, itself."""
    from services.archive import readings
    from services.archive.index import build_bounded_document
    try:
        document, content = build_bounded_document(digest, metadata, content)
        serialised, terms = document.serialise(), document.termlist_count()
    except (Exception, MemoryError):  # noqa: BLE001 - the indexer says why, at its level
        return content
    del document
    reading = readings.encode(content, cap_bytes) if keep_reading else None
    content.document, content.terms = serialised, terms
    content.without_text()
    content.reading = reading
    return content


def _limit_memory(memory_mb: int) -> None:
    limit = memory_mb * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
