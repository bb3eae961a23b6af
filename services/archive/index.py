"""The Xapian schema: which terms and values a message becomes (after notmuch's schema).

Text fields are indexed twice, with their prefix (for `from:alice`) and without (for a
bare `alice`), with positions so "phrases" match. Boolean terms are lowercased, so
`has:Attachment` and `has:attachment` are the same filter.

Xapian refuses a term longer than 245 bytes, and with it every change not yet committed
(the whole batch). So every term made here or in a query goes through term(), which bounds
it in bytes; words come from the TermGenerator, which skips words over MAX_WORD_BYTES.
A message whose document still cannot be built or added is indexed with less of itself
(document_at(): headers only, then what the store recorded at intake, then its digest
alone) and flagged has:extraction-failure with the reason.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import TYPE_CHECKING

import xapian

if TYPE_CHECKING:  # search and the web import this module; extraction (lxml) they need not
    from services.archive.extract import Extracted

# Probabilistic (free text) fields: search keyword -> term prefix.
TEXT_PREFIXES = {
    "from": "F",
    "to": "XTO",        # every recipient: To, Cc, Bcc headers and the envelope
    "cc": "XCC",
    "bcc": "XBCC",      # Bcc header and envelope recipients the headers do not show
    "subject": "S",
    "body": "XB",
    "attachment": "XA",  # text extracted from attachments
    "filename": "XFN",
}
# Boolean (exact) fields: search keyword -> term prefix.
BOOLEAN_PREFIXES = {
    "has": "K",         # has:attachment, has:extraction-failure
    "type": "XMT",      # MIME type of any part, e.g. type:application/pdf
    "source": "XSRC",   # smtp, journal:NAME, import, mirror
    "origin": "XORIG",  # node id of the appliance that archived it first
    "digest": "Q",      # the unique id term: Q + SHA-256 hex
}
# Long texts keep positions once, in their unprefixed copy: "phrases" match in them, and
# body:/attachment: match words and wildcards. Positions are most of an index's size and
# of its indexing time, and phrase searches are rarely scoped to one part of a message.
UNPOSITIONED_PREFIXES = {TEXT_PREFIXES["body"], TEXT_PREFIXES["attachment"]}
# Exact addresses (From, To, Cc, Bcc headers, envelope recipients), lowercased: the filter
# that limits a user to their own mail. Words would not do: "alice@example.com" as words
# also matches bob.alice@example.com.
ADDRESS_PREFIX = "XADDR"
MAX_TERM_BYTES = 245     # Xapian's limit (glass backend), prefix included
TERM_DIGEST_HEX = 32     # 128 bits of SHA-256 end a term that had to be shortened
# The TermGenerator's own limit (its default, set explicitly): longer "words" (base64 runs,
# CJK runs without spaces) are skipped; with prefixes of at most 5 bytes, far below 245.
MAX_WORD_BYTES = 64
# Less of a message, for a document that could not be built or added whole (document_at).
DOCUMENT_LEVELS = ("whole", "headers only", "stored metadata only", "digest only")
SLOT_DATE = 0      # sent date (Date header, else received time), sortable_serialise(epoch)
SLOT_SIZE = 1      # raw size in bytes
SLOT_RECEIVED = 2  # when this appliance stored it
BODY_TEXT_LIMIT = 4 * 1024 * 1024  # a pathological body is indexed up to here


def term(prefix: str, value: str) -> str:
    """The Xapian term `prefix` + `value`: valid UTF-8 (lone surrogates become '?') of at most
    MAX_TERM_BYTES bytes. Every term the index adds or a query looks up is made here.

    A longer one keeps as much of its start as fits (cut on a character boundary) and ends
    in '#' and TERM_DIGEST_HEX hex digits of the SHA-256 of the whole term. So it stays
    exact and stable: the same value always gives the same term, two values that differ
    anywhere give different terms. A plain cut would not do: the access filter looks up
    exact address terms, and two long addresses sharing their first 240 bytes would then
    read each other's mail. The readable start keeps prefix wildcards working."""
    whole = clean(prefix + value)
    data = whole.encode("utf-8")
    if len(data) <= MAX_TERM_BYTES:
        return whole
    digest = hashlib.sha256(data).hexdigest()[:TERM_DIGEST_HEX]
    start = data[:MAX_TERM_BYTES - len(digest) - 1].decode("utf-8", "ignore")
    return f"{start}#{digest}"


def term_generator() -> xapian.TermGenerator:
    """The generator of the index's word terms (no stemming; words over MAX_WORD_BYTES skipped)."""
    generator = xapian.TermGenerator()
    generator.set_max_word_length(MAX_WORD_BYTES)
    return generator


def id_term(digest: str) -> str:
    return term(BOOLEAN_PREFIXES["digest"], digest)


def address_term(address: str) -> str:
    return term(ADDRESS_PREFIX, address.lower())


def addresses_of(summary, envelope_recipients: list[str]) -> set[str]:
    """Every address a message was from or to, lowercased: From, To, Cc and Bcc headers
    (`summary`: services.archive.mime.MessageSummary) and the envelope recipients."""
    shown = summary.from_addrs + summary.to + summary.cc + summary.bcc
    found = {_bare_address(display) for display in shown}
    found |= {recipient.strip().lower() for recipient in envelope_recipients}
    return {address for address in found if address}


def _bare_address(display: str) -> str:
    """The address of mime.display_addresses' "Name <addr>" or "addr"."""
    if display.endswith(">") and "<" in display:
        return display[display.rindex("<") + 1:-1]
    return display


def sent_date(meta: dict) -> float:
    return meta.get("sent_date") or meta.get("received") or 0.0


def document_at(level: int, digest: str, meta: dict, extracted: Extracted, reason: str | None,
                generator: xapian.TermGenerator) -> tuple[xapian.Document, Extracted]:
    """The document of a message at one of DOCUMENT_LEVELS (0: whole; 1: headers only; 2:
    what the store recorded at intake; 3: digest, dates and size), and what it was made of.
    `reason` says why a lower level would not do; from level 1 on it is among the failures
    the document is flagged with. Raises whatever building raises."""
    from services.archive.extract import Extracted, unread
    if level == 0:
        return build_document(digest, meta, extracted, generator), extracted
    failed = "; ".join([*extracted.failures, reason or "indexing failed"])
    if level == 1:
        content = Extracted(extracted.summary, "", [], failed=failed)
    else:
        content = unread(failed)
    if level == 2:
        return build_document(digest, meta, content, generator), content
    return build_document(digest, _bare(meta), content, generator), content


def _bare(meta: dict) -> dict:
    """Only what a document needs and no header: its number, size and dates."""
    return {key: meta[key] for key in ("number", "size", "received", "sent_date") if key in meta}


def build_document(digest: str, meta: dict, extracted: Extracted,
                   generator: xapian.TermGenerator) -> xapian.Document:
    """One Xapian document for one stored message and its extracted text."""
    document = xapian.Document()
    generator.set_document(document)
    summary = _with_stored_headers(extracted.summary, meta)
    header_recipients = summary.to + summary.cc + summary.bcc
    shown = {_bare_address(display).lower() for display in summary.to + summary.cc}
    hidden = [r for r in meta.get("recipients", []) if r.strip().lower() not in shown]
    fields = [
        ("from", summary.from_addrs), ("to", header_recipients + meta.get("recipients", [])),
        ("cc", summary.cc), ("bcc", summary.bcc + hidden), ("subject", [summary.subject]),
        ("body", [extracted.body[:BODY_TEXT_LIMIT]]),
        ("attachment", [a.text for a in extracted.attachments]),
        ("filename", [a.filename for a in extracted.attachments if a.filename]),
    ]
    for name, texts in fields:
        for text in texts:
            _index_text(generator, text, TEXT_PREFIXES[name])
    _add_boolean_terms(document, digest, meta, extracted, summary)
    date = sent_date(meta)
    document.add_value(SLOT_DATE, xapian.sortable_serialise(date))
    document.add_value(SLOT_SIZE, xapian.sortable_serialise(meta.get("size", 0)))
    document.add_value(SLOT_RECEIVED, xapian.sortable_serialise(meta.get("received", 0)))
    document.set_data(json.dumps({
        "digest": digest, "date": date, "from": meta.get("from", ""),
        "subject": meta.get("subject", ""), "size": meta.get("size", 0),
        "attachments": len(extracted.attachments),
        "failed": "; ".join(extracted.failures) or None,
    }))
    return document


def _with_stored_headers(summary, meta: dict):
    """The summary, its missing From and Subject taken from the store's metadata (parsed at
    intake): what a message none of whose content could be read is found by."""
    if summary.from_addrs or summary.subject or not (meta.get("from") or meta.get("subject")):
        return summary
    return dataclasses.replace(summary, subject=meta.get("subject") or "",
                               from_addrs=[meta["from"]] if meta.get("from") else [])


def clean(text: str) -> str:
    """Valid UTF-8 for Xapian: lone surrogates (from undecodable 8-bit headers) become '?'."""
    return text.encode("utf-8", "replace").decode("utf-8")


def _index_text(generator: xapian.TermGenerator, text: str, prefix: str) -> None:
    if text:
        text = clean(text)
        if prefix in UNPOSITIONED_PREFIXES:
            generator.index_text_without_positions(text, 1, prefix)
        else:
            generator.index_text(text, 1, prefix)
        generator.index_text(text)
        generator.increase_termpos()  # no phrase across two fields


def _add_boolean_terms(document: xapian.Document, digest: str, meta: dict, extracted,
                       summary) -> None:
    document.add_boolean_term(id_term(digest))
    terms = {("source", meta.get("source", "").split(":")[0]), ("source", meta.get("source", "")),
             ("origin", meta.get("origin", ""))}
    terms |= {("type", a.mime_type) for a in extracted.attachments}
    for address in addresses_of(summary, meta.get("recipients", [])):
        document.add_boolean_term(address_term(address))
    if extracted.attachments:
        terms.add(("has", "attachment"))
    if extracted.failures:
        terms.add(("has", "extraction-failure"))
    for field_name, value in terms:
        if value:
            document.add_boolean_term(boolean_term(field_name, value))


def boolean_term(field_name: str, value: str) -> str:
    """The term of `field_name:value` for a boolean field (BOOLEAN_PREFIXES), lowercased."""
    return term(BOOLEAN_PREFIXES[field_name], value.lower())
