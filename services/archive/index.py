"""The Xapian schema: which terms and values a message becomes (after notmuch's schema).

Text fields are indexed twice (services.archive.terms): with their prefix and positions
(for `from:alice`, `body:"race condition"`) and without prefix or positions (for a bare
`alice`); words are cut and folded by services.archive.words. Boolean terms are lowercased,
so `has:Attachment` and `has:attachment` are the same filter. SCHEMA_VERSION names what
this code indexes; an index of an older version is rebuilt (services.archive.reindex).
"""
from __future__ import annotations

import json

import xapian

from services.archive.terms import DocumentTerms

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
HAS_VALUES = {"attachment", "extraction-failure"}  # has:VALUE; any other is a query error
# 1: Xapian's TermGenerator. 2: ICU words, folding, CJK n-grams, positions per field,
# address and file name forms (services.archive.words, services.archive.terms).
SCHEMA_VERSION = 2
SCHEMA_KEY = "schema_version"  # Xapian metadata; an index without it is version 1
ADDRESS_FIELDS = ("from", "to", "cc", "bcc")
# Exact addresses (From, To, Cc, Bcc headers, envelope recipients), lowercased: the filter
# that limits a user to their own mail. Words would not do: "alice@example.com" as words
# also matches bob.alice@example.com.
ADDRESS_PREFIX = "XADDR"
ADDRESS_TERM_LIMIT = 200  # Xapian terms end at 245 bytes; no real address is this long
SLOT_DATE = 0      # sent date (Date header, else received time), sortable_serialise(epoch)
SLOT_SIZE = 1      # raw size in bytes
SLOT_RECEIVED = 2  # when this appliance stored it
BODY_TEXT_LIMIT = 4 * 1024 * 1024  # a pathological body is indexed up to here


def id_term(digest: str) -> str:
    return "Q" + digest


def address_term(address: str) -> str:
    return ADDRESS_PREFIX + address.lower()


def addresses_of(summary, envelope_recipients: list[str]) -> set[str]:
    """Every address a message was from or to, lowercased: From, To, Cc and Bcc headers
    (`summary`: services.archive.mime.MessageSummary) and the envelope recipients."""
    shown = summary.from_addrs + summary.to + summary.cc + summary.bcc
    found = {_bare_address(display) for display in shown}
    found |= {recipient.strip().lower() for recipient in envelope_recipients}
    return {address for address in found if address and len(address) <= ADDRESS_TERM_LIMIT}


def _bare_address(display: str) -> str:
    """The address of mime.display_addresses' "Name <addr>" or "addr"."""
    if display.endswith(">") and "<" in display:
        return display[display.rindex("<") + 1:-1]
    return display


def sent_date(meta: dict) -> float:
    return meta.get("sent_date") or meta["received"]


def schema_version(database: xapian.Database) -> int | None:
    """The schema an index was built with; None for an empty index without one (a new
    index). An index written before versions were recorded is version 1."""
    recorded = database.get_metadata(SCHEMA_KEY)
    if recorded:
        return int(recorded)
    return 1 if database.get_doccount() else None


def build_document(digest: str, meta: dict, extracted) -> xapian.Document:
    """One Xapian document for one stored message and its extracted text."""
    document = xapian.Document()
    terms = DocumentTerms(document)
    summary = extracted.summary
    header_recipients = summary.to + summary.cc + summary.bcc
    hidden = [r for r in meta.get("recipients", [])
              if not any(r.lower() in shown.lower() for shown in summary.to + summary.cc)]
    fields = [
        ("from", summary.from_addrs), ("to", header_recipients + meta.get("recipients", [])),
        ("cc", summary.cc), ("bcc", summary.bcc + hidden), ("subject", [summary.subject]),
        ("body", [extracted.body[:BODY_TEXT_LIMIT]]),
        ("attachment", [a.text for a in extracted.attachments]),
        ("filename", [a.filename for a in extracted.attachments if a.filename]),
    ]
    for name, texts in fields:
        for text in texts:
            _index_text(terms, name, text)
    terms.finish()
    _add_boolean_terms(document, digest, meta, extracted)
    date = sent_date(meta)
    document.add_value(SLOT_DATE, xapian.sortable_serialise(date))
    document.add_value(SLOT_SIZE, xapian.sortable_serialise(meta["size"]))
    document.add_value(SLOT_RECEIVED, xapian.sortable_serialise(meta["received"]))
    document.set_data(json.dumps({
        "digest": digest, "date": date, "from": meta.get("from", ""),
        "subject": meta.get("subject", ""), "size": meta["size"],
        "attachments": len(extracted.attachments), "failed": extracted.failed,
    }))
    return document


def clean(text: str) -> str:
    """Valid UTF-8 for Xapian: lone surrogates (from undecodable 8-bit headers) become '?'."""
    return text.encode("utf-8", "replace").decode("utf-8")


def _index_text(terms: DocumentTerms, name: str, text: str) -> None:
    if text:
        text, prefix = clean(text), TEXT_PREFIXES[name]
        if name in ADDRESS_FIELDS:
            terms.add_address(prefix, text)
        elif name == "filename":
            terms.add_filename(prefix, text)
        else:
            terms.add_text(prefix, text)


def _add_boolean_terms(document: xapian.Document, digest: str, meta: dict, extracted) -> None:
    document.add_boolean_term(id_term(digest))
    terms = {("source", meta.get("source", "").split(":")[0]), ("source", meta.get("source", "")),
             ("origin", meta.get("origin", ""))}
    terms |= {("type", a.mime_type) for a in extracted.attachments}
    for address in addresses_of(extracted.summary, meta.get("recipients", [])):
        document.add_boolean_term(clean(address_term(address)))
    if extracted.attachments:
        terms.add(("has", "attachment"))
    if extracted.failed:
        terms.add(("has", "extraction-failure"))
    for field_name, value in terms:
        if value:
            document.add_boolean_term(BOOLEAN_PREFIXES[field_name] + clean(value.lower()[:100]))
