"""The Xapian schema: which terms and values a message becomes (after notmuch's schema).

Text fields are indexed twice, with their prefix (for `from:alice`) and without (for a
bare `alice`), with positions so "phrases" match. Boolean terms are lowercased, so
`has:Attachment` and `has:attachment` are the same filter.
"""
from __future__ import annotations

import json

import xapian

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
ADDRESS_TERM_LIMIT = 200  # bytes: Xapian terms end at 245; no real address is this long
SLOT_DATE = 0      # sent date (Date header, else received time), sortable_serialise(epoch)
SLOT_SIZE = 1      # raw size in bytes
SLOT_RECEIVED = 2  # when this appliance stored it
BODY_TEXT_LIMIT = 4 * 1024 * 1024  # a pathological body is indexed up to here


def id_term(digest: str) -> str:
    return "Q" + digest


def address_term(address: str) -> str:
    return ADDRESS_PREFIX + address.lower()


def addresses_of(summary, envelope_recipients: list[str]) -> set[str]:
    """Every address a message was from or to, lowercased: the From, To, Cc and Bcc
    addresses of `summary` (services.archive.mime.MessageSummary, read by the one strict
    parser, services.archive.addresses) and the envelope recipients. Never a display name,
    a comment or text: this set is who may read the message (services.web.access)."""
    found = {address for shown in summary.header_addresses.values() for address in shown}
    found |= {recipient.strip().lower() for recipient in envelope_recipients}
    return {address for address in found
            if address and len(address.encode("utf-8", "replace")) <= ADDRESS_TERM_LIMIT}


def sent_date(meta: dict) -> float:
    return meta.get("sent_date") or meta["received"]


def build_document(digest: str, meta: dict, extracted, generator: xapian.TermGenerator
                   ) -> xapian.Document:
    """One Xapian document for one stored message and its extracted text."""
    document = xapian.Document()
    generator.set_document(document)
    summary = extracted.summary
    header_recipients = summary.to + summary.cc + summary.bcc
    shown = set(summary.header_addresses.get("to", []) + summary.header_addresses.get("cc", []))
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


def _index_text(generator: xapian.TermGenerator, text: str, prefix: str) -> None:
    if text:
        text = clean(text)
        if prefix in UNPOSITIONED_PREFIXES:
            generator.index_text_without_positions(text, 1, prefix)
        else:
            generator.index_text(text, 1, prefix)
        generator.index_text(text)
        generator.increase_termpos()  # no phrase across two fields


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
