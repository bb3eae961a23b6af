"""The Xapian schema: which terms and values a message becomes (after notmuch's schema).

Text fields are indexed with their prefix and positions (for `from:alice`,
`body:"race condition"`); the short ones once more without prefix or positions, and a bare
`alice` is looked up there and under the body's and attachments' prefixes
(BARE_WORD_PREFIXES, services.archive.terms); words are cut and folded by
services.archive.words. Boolean terms are lowercased,
so `has:Attachment` and `has:attachment` are the same filter. SCHEMA_VERSION names what
this code indexes; an index of an older version is rebuilt (services.archive.reindex).

Xapian refuses a term longer than 245 bytes, and with it every change not yet committed
(the whole batch). So every term made here or in a query goes through term(), which bounds
it in bytes; word terms come from services.archive.terms, which caps words far below that.
A message whose document still cannot be built or added is indexed with less of itself
(document_at(): headers only, then what the store recorded at intake, then its digest
alone) and flagged has:extraction-failure with the reason; so is one whose text a limit cut
(a reason starting PARTLY_INDEXED), so that a search that finds nothing can be trusted for
every message not so flagged.
"""
from __future__ import annotations

import dataclasses
import json
import re

from typing import TYPE_CHECKING

import xapian

from services.archive.addresses import lowercase_ascii
from services.archive.terms import MAX_TERM_BYTES, DocumentTerms, term
from services.archive.words import fold_whole

if TYPE_CHECKING:  # search and the web import this module; extraction (lxml) they need not
    from services.archive.extract import Extracted

# Probabilistic (free text) fields: search keyword -> term prefix.
TEXT_PREFIXES = {
    "from": "F",
    "to": "XTO",        # To, Cc, Resent-To, Resent-Cc recipients (to: matches bcc's too)
    "cc": "XCC",        # Cc and Resent-Cc
    "bcc": "XBCC",      # Bcc, Resent-Bcc and envelope recipients the headers do not show
    "subject": "S",
    "body": "XB",
    "attachment": "XA",  # text extracted from attachments
    "filename": "XFN",
}
# Boolean (exact) fields: search keyword -> term prefix.
BOOLEAN_PREFIXES = {
    "has": "K",         # has:attachment, has:extraction-failure, has:encrypted
    "type": "XMT",      # MIME type of any attachment (from content, and as declared)
    "source": "XSRC",   # smtp, journal:NAME, import, mirror
    "origin": "XORIG",  # node id of the appliance that archived it first
    "digest": "Q",      # the unique id term: Q + SHA-256 hex
}
# Long text, indexed under its prefix only: a bare word is looked up without prefix (the
# short fields' copy) and under these (BARE_WORD_PREFIXES).
LONG_TEXT_FIELDS = ("body", "attachment")
BARE_WORD_PREFIXES = ("", *(TEXT_PREFIXES[name] for name in LONG_TEXT_FIELDS))
# Where a word may be for a searcher who may not see hidden recipients (Bcc and Resent-Bcc
# fields, envelope recipients no To or Cc field shows: all of them under bcc's prefix, none
# under to's since schema 5; services.archive.query.Reader): every field but bcc.
SHOWN_WORD_PREFIXES = tuple(prefix for name, prefix in TEXT_PREFIXES.items() if name != "bcc")
HAS_VALUES = {"attachment", "extraction-failure", "encrypted"}  # has:VALUE; any other is a query error
# The kinds of source the store records (Store.put's source: "smtp" from services.intake.smtp,
# "import" from archiver import, "journal:NAME" from a journal mailbox, "mirror:NODE" from a
# mirror peer), each indexed both whole and as its kind (document_terms). source:VALUE takes a
# kind, or KIND:NAME for the kinds that carry a name; any other is a query error.
SOURCE_KINDS = ("smtp", "import", "journal", "mirror")
NAMED_SOURCE_KINDS = ("journal", "mirror")
DIGEST_HEX = 64  # digest:VALUE is a SHA-256 in hex; anything else is a query error
# 1: Xapian's TermGenerator. 2: ICU words, folding, CJK n-grams, positions per field,
# address and file name forms (services.archive.words, services.archive.terms). 3: sort
# keys of sender and subject (SLOT_FROM, SLOT_SUBJECT); recipients in the summary. 4: body
# and attachment text without the unprefixed copy (LONG_TEXT_FIELDS). 5: to's prefix holds
# the To and Cc recipients only (the hidden ones are under bcc's), the summary counts them
# ("shown"), and the exact terms of the sender and hidden recipients (SENDER_PREFIX,
# HIDDEN_PREFIX). 6: the Resent- recipients (RFC 5322 3.6.6) as To, Cc and Bcc are:
# Resent-To and Resent-Cc shown (to:, cc:), Resent-Bcc hidden (bcc:, HIDDEN_PREFIX), all
# of them whose mail it is (ADDRESS_PREFIX); schema 5 has none of them.
SCHEMA_VERSION = 6
RECIPIENTS_APART_SCHEMA = 5  # the first whose to: prefix holds no hidden recipient
WORDS_SCHEMA = 2  # the first schema whose terms are ICU words (query.Context.legacy before)
SCHEMA_KEY = "schema_version"  # Xapian metadata; an index without it is version 1
# Xapian metadata: the store's arrival-log position the index has caught up with (decimal);
# committed with each batch, so it is where the index is in the snapshot a reader opens.
CURSOR_KEY = "arrival_seq"
ADDRESS_FIELDS = ("from", "to", "cc", "bcc")
# Exact addresses (From, To, Cc, Bcc headers and their Resent- kin, envelope recipients),
# lowercased in ASCII
# (services.archive.addresses.lowercase_ascii): the filter
# that limits a user to their own mail. Words would not do: "alice@example.com" as words
# also matches bob.alice@example.com.
ADDRESS_PREFIX = "XADDR"
# The same exact addresses of the From field alone, and of the hidden recipients alone (Bcc
# and Resent-Bcc fields, envelope recipients the shown fields do not show): which mail a
# user sent, and where they were a hidden recipient themselves
# (services.archive.query.Reader). Folded terms would not do: ｃarol@ (fullwidth) folds to
# carol@, and is not carol.
SENDER_PREFIX, HIDDEN_PREFIX = "XSENDER", "XHIDDEN"
# Less of a message, for a document that could not be built or added whole (document_at).
DOCUMENT_LEVELS = ("whole", "headers only", "stored metadata only", "digest only")
SLOT_DATE = 0      # sent date (services.archive.message_date), sortable_serialise(epoch)
SLOT_SIZE = 1      # raw size in bytes
SLOT_RECEIVED = 2  # when this appliance stored it
SLOT_FROM = 3      # the sender as shown, folded (sort_key): results sorted by sender
SLOT_SUBJECT = 4   # the subject without Re:/Fwd: prefixes, folded: sorted by subject
SORT_KEY_CHARS = 80
SUMMARY_RECIPIENTS = 3  # recipients named in a document's summary; the rest are counted
# Reply and forward prefixes of common mail clients, in several languages, repeated.
REPLY_PREFIXES = re.compile(r"^(\s*(re|fwd?|aw|wg|sv|vs|tr|antw|rif|r)(\[\d+\])?\s*:)+\s*",
                            re.IGNORECASE)
# Starts each reason a limit cut a message's text for (the body's, an attachment's, a
# forwarded message's: services.archive.extract): has:extraction-failure finds these
# messages too, `archiver show` lists them as "cut:". Not a failure to read: the part that
# was read is indexed, the rest is not, and a search for it must not be trusted to find it.
PARTLY_INDEXED = "partly indexed: "


# The most body text a document takes, in bytes of UTF-8, whatever the model's text cap:
# extract cuts a body at the smaller of the two (extract.body_cut, which flags the cut); the
# slice here bounds any other body handed in (in characters: never fewer than the bytes).
BODY_TEXT_LIMIT = 4 * 1024 * 1024
# Distinct terms one message's document holds at most (build_bounded_document): each costs
# the indexer some 500 bytes until its commit (the document, then Xapian's uncommitted
# postings), so that a message of 2 MiB of distinct words (a body and attachments at the
# model 450's caps) took its import 70 MB past the 256 MB bound, its fields and file names
# at their limits with it (review rv59 D1). Mail's text has far fewer: a megabyte of prose
# some 20,000. The header fields and file names a message can have (at extract's limits,
# FILENAME_INDEX_BYTES) stay well inside it; the body's and attachments' text is cut to fit.
MAX_DOCUMENT_TERMS = 150_000
# An attachment a full document took nothing of still gives it its start: its first
# ATTACHMENT_START_CHARACTERS (to the white space before), while the document holds fewer
# than MAX_DOCUMENT_TERMS + ATTACHMENT_START_TERMS terms (one large file first left the
# files after it unfound even by their first words: reviews rv60, rv61).
ATTACHMENT_START_CHARACTERS = 1024
ATTACHMENT_START_TERMS = 25_000
# Bytes of UTF-8 of an attachment's name indexed: a file system's longest name (NAME_MAX);
# a longer one is found by its start (a thousand names of megabytes were a document's most).
FILENAME_INDEX_BYTES = 255


# Terms that say where a document's id (its store number) lies, for index_walk.within on
# an index of several shards (services.archive.shards): Xapian 1.4's Python bindings cannot
# clone a posting source for each shard, so there a set of ids is a query of these terms.
NUMBER_PREFIX = "XDOCN"  # + the document id
BLOCK_PREFIX = "XDOCB"   # + (id - 1) // ID_BLOCK: each block of ID_BLOCK consecutive ids
ID_BLOCK = 1000


def number_terms(number: int) -> tuple[str, str]:
    """The terms of document id `number` (>= 1): its own and its block's."""
    return f"{NUMBER_PREFIX}{number}", f"{BLOCK_PREFIX}{(number - 1) // ID_BLOCK}"


def id_term(digest: str) -> str:
    return term(BOOLEAN_PREFIXES["digest"], digest)


def address_term(address: str, prefix: str = ADDRESS_PREFIX) -> str:
    """The exact term of `address` (lowercased in ASCII) under ADDRESS_PREFIX, or under
    SENDER_PREFIX or HIDDEN_PREFIX."""
    return term(prefix, lowercase_ascii(address))


# The address fields every recipient is shown, and those only the sender sees (RFC 5322
# 3.6.3; 3.6.6: the Resent- fields of a resent copy work as To, Cc and Bcc do).
SHOWN_FIELDS = ("to", "cc", "resent-to", "resent-cc")
HIDDEN_FIELDS = ("bcc", "resent-bcc")


def shown_addresses(summary) -> set[str]:
    """The addresses of a message's To, Cc, Resent-To and Resent-Cc fields (the strict
    parser's, lowercased in ASCII): the recipients every recipient is shown."""
    return {address for name in SHOWN_FIELDS
            for address in summary.header_addresses.get(name, [])}


def hidden_addresses(summary, envelope_recipients: list[str]) -> set[str]:
    """The hidden recipients of a message, lowercased in ASCII: its Bcc and Resent-Bcc
    fields' addresses (read by the strict parser) and the envelope recipients no shown
    field (SHOWN_FIELDS) names."""
    found = {address for name in HIDDEN_FIELDS
             for address in summary.header_addresses.get(name, [])}
    found |= {lowercase_ascii(r.strip()) for r in envelope_recipients} - shown_addresses(summary)
    return {address for address in found if address}


def addresses_of(summary, envelope_recipients: list[str]) -> set[str]:
    """Every address a message was from or to, lowercased in ASCII: the From, To, Cc, Bcc
    and Resent-To, -Cc, -Bcc addresses of `summary` (services.archive.mime.MessageSummary,
    read by the one strict parser, services.archive.addresses) and the envelope recipients.
    Never a display name, a comment or text: this set is who may read the message
    (services.web.access)."""
    found = {address for shown in summary.header_addresses.values() for address in shown}
    found |= {lowercase_ascii(recipient.strip()) for recipient in envelope_recipients}
    return {address for address in found if address}


def sent_date(meta: dict) -> float:
    """The message's date (services.archive.message_date); the arrival time for metadata
    that has none, 0.0 for none at all (a digest-only document). 0 is a date (1970), not a
    missing one."""
    if meta.get("sent_date") is not None:
        return meta["sent_date"]
    return meta.get("received") or 0.0


def document_at(level: int, digest: str, meta: dict, extracted: Extracted,
                reason: str | None) -> tuple[xapian.Document, Extracted]:
    """The document of a message at one of DOCUMENT_LEVELS (0: whole; 1: headers only; 2:
    what the store recorded at intake; 3: digest, dates and size), and what it was made of.
    `reason` says why a lower level would not do; from level 1 on it is among the failures
    the document is flagged with. Raises whatever building raises."""
    from services.archive.extract import Extracted, unread
    if level == 0:
        return build_bounded_document(digest, meta, extracted)
    failed = "; ".join([*extracted.failures, reason or "indexing failed"])
    if level == 1:
        content = Extracted(extracted.summary, "", [], failed=failed)
    else:
        content = unread(failed)
    if level == 2:
        return build_document(digest, meta, content), content
    return build_document(digest, _bare(meta), content), content


def _bare(meta: dict) -> dict:
    """Only what a document needs and no header: its number, size and dates."""
    return {key: meta[key] for key in ("number", "size", "received", "sent_date") if key in meta}


def schema_version(database: xapian.Database) -> int | None:
    """The schema an index was built with; None for an empty index without one (a new
    index). An index written before versions were recorded is version 1."""
    recorded = database.get_metadata(SCHEMA_KEY)
    if recorded:
        return int(recorded)
    return 1 if database.get_doccount() else None


def build_document(digest: str, meta: dict, extracted: Extracted) -> xapian.Document:
    """One Xapian document for one stored message and its extracted text (Extracted): what
    build_bounded_document builds."""
    return build_bounded_document(digest, meta, extracted)[0]


def build_bounded_document(digest: str, meta: dict, extracted: Extracted
                           ) -> tuple[xapian.Document, Extracted]:
    """One Xapian document for one stored message and its extracted text, and what it holds
    of that text: `extracted`, or when the body's and attachments' text (added in that
    order) took it past MAX_DOCUMENT_TERMS distinct terms, a copy of it with those texts
    cut where the document stopped taking them (each cut flagged PARTLY_INDEXED)."""
    document = xapian.Document()
    terms = DocumentTerms(document)
    summary = _with_stored_headers(extracted.summary, meta)
    shown = shown_addresses(summary)
    hidden = [r for r in meta.get("recipients", []) if lowercase_ascii(r.strip()) not in shown]
    cc = summary.cc + summary.resent_cc
    fields = [
        ("from", summary.from_addrs), ("to", summary.to + summary.resent_to + cc),
        ("cc", cc), ("bcc", summary.bcc + summary.resent_bcc + hidden),
        ("subject", [summary.subject]),
        ("filename", [_name_start(a.filename) for a in extracted.attachments if a.filename]),
    ]
    for name, texts in fields:
        for text in texts:
            _index_text(terms, name, text)
    body = extracted.body[:BODY_TEXT_LIMIT]
    kept = [_index_long_text(terms, "body", body)]
    kept += [_index_long_text(terms, "attachment", a.text) for a in extracted.attachments]
    kept[1:] = [start or _index_start(terms, a.text)
                for a, start in zip(extracted.attachments, kept[1:])]
    terms.finish()
    as_indexed = _as_indexed(extracted, body, kept)
    _add_boolean_terms(document, digest, meta, as_indexed, summary)
    date = sent_date(meta)
    document.add_value(SLOT_DATE, xapian.sortable_serialise(date))
    document.add_value(SLOT_SIZE, xapian.sortable_serialise(meta.get("size", 0)))
    document.add_value(SLOT_RECEIVED, xapian.sortable_serialise(meta.get("received", 0)))
    document.add_value(SLOT_FROM, sort_key(meta.get("from", "")))
    document.add_value(SLOT_SUBJECT, sort_key(REPLY_PREFIXES.sub("", meta.get("subject", ""))))
    recipients, shown = _recipients(summary, meta)
    document.set_data(json.dumps({
        "digest": digest, "date": date, "from": clean(meta.get("from", "")),
        "to": recipients[:SUMMARY_RECIPIENTS], "recipients": len(recipients), "shown": shown,
        "subject": clean(meta.get("subject", "")), "size": meta.get("size", 0),
        "attachments": len(extracted.attachments),
        "failed": "; ".join(as_indexed.failures) or None,
    }))
    return document, as_indexed


def _index_start(terms: DocumentTerms, text: str) -> str:
    """The start of an attachment's `text` the full document took (_index_long_text): its
    first ATTACHMENT_START_CHARACTERS, cut at white space, within ATTACHMENT_START_TERMS."""
    start = text[:ATTACHMENT_START_CHARACTERS]
    if len(start) < len(text):
        start = start[:max(start.rfind(" "), start.rfind("\n")) + 1]
    if not start.strip():
        return ""
    added = terms.add_long_text(TEXT_PREFIXES["attachment"], clean(start),
                                MAX_DOCUMENT_TERMS + ATTACHMENT_START_TERMS)
    return text[:added]


def _index_long_text(terms: DocumentTerms, name: str, text: str) -> str:
    """The start of `text` (the body's or an attachment's) the document took, all of it
    but past MAX_DOCUMENT_TERMS (DocumentTerms.add_long_text)."""
    if not text:
        return text
    added = terms.add_long_text(TEXT_PREFIXES[name], clean(text), MAX_DOCUMENT_TERMS)
    return text[:added]


def _as_indexed(extracted: Extracted, body: str, kept: list[str]) -> Extracted:
    """`extracted`, or where the document left words of its `body` (its indexed start) or
    of its attachments' texts out, a copy of it holding `kept` of them (in that order),
    each such cut flagged."""
    from services.archive.extract import words_past
    texts = [body, *(a.text for a in extracted.attachments)]
    left_out = [words_past(text, len(start)) for text, start in zip(texts, kept)]
    if not any(left_out):
        return extracted
    attachments = [dataclasses.replace(a, text=start, cut=_terms_cut(a.cut, start)) if cut
                   else a for a, start, cut in zip(extracted.attachments, kept[1:],
                                                   left_out[1:])]
    if left_out[0]:
        return dataclasses.replace(extracted, body=kept[0],
                                   cut=_terms_cut(extracted.cut, kept[0]),
                                   attachments=attachments)
    return dataclasses.replace(extracted, attachments=attachments)


def _terms_cut(cut: str | None, kept: str) -> str:
    """`cut` and why a text of which the document took `kept` was cut (or not indexed)."""
    why = (f"{PARTLY_INDEXED}text {'cut' if kept else 'not indexed'}: a message's document "
           f"holds at most {MAX_DOCUMENT_TERMS} distinct terms (the body's words first, then "
           "the attachments')")
    return f"{cut}; {why}" if cut else why


def _name_start(name: str) -> str:
    return name.encode("utf-8", "replace")[:FILENAME_INDEX_BYTES].decode("utf-8", "ignore")


def sort_key(text: str) -> bytes:
    """A value that sorts `text` as people expect: case and accents folded, whitespace
    collapsed, at most SORT_KEY_CHARS characters (UTF-8; code point order)."""
    return fold_whole(" ".join(text.split())[:SORT_KEY_CHARS]).encode("utf-8", "replace")


def _recipients(summary, meta: dict) -> tuple[list[str], int]:
    """The shown recipients (SHOWN_FIELDS: To, Cc, Resent-To, Resent-Cc), then the hidden
    ones (Bcc, Resent-Bcc, envelope recipients no header shows), as displayed, once; and how
    many of them are shown (the first ones)."""
    def pairs(name: str) -> list[tuple[str, str]]:
        displayed = getattr(summary, name.replace("-", "_"))
        return list(zip(displayed, summary.header_addresses.get(name, [])))
    envelope = [(recipient, recipient.strip().lower()) for recipient in meta.get("recipients", [])]
    headers = [pair for name in SHOWN_FIELDS + HIDDEN_FIELDS for pair in pairs(name)]
    found, seen = [], set()
    for display, address in headers + envelope:
        if address and address not in seen:
            seen.add(address)
            found.append(clean(display))
    return found, len(shown_addresses(summary) - {""})


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


def _index_text(terms: DocumentTerms, name: str, text: str) -> None:
    if text:
        text, prefix = clean(text), TEXT_PREFIXES[name]
        if name in ADDRESS_FIELDS:
            terms.add_address(prefix, text)
        elif name == "filename":
            terms.add_filename(prefix, text)
        else:
            terms.add_text(prefix, text, unprefixed=name not in LONG_TEXT_FIELDS)


def _add_boolean_terms(document: xapian.Document, digest: str, meta: dict, extracted,
                       summary) -> None:
    document.add_boolean_term(id_term(digest))
    terms = {("source", meta.get("source", "").split(":")[0]), ("source", meta.get("source", "")),
             ("origin", meta.get("origin", ""))}
    terms |= {("type", a.mime_type) for a in extracted.attachments}
    terms |= {("type", a.declared_type) for a in extracted.attachments if a.declared_type}
    for address in addresses_of(summary, meta.get("recipients", [])):
        document.add_boolean_term(address_term(address))
    for address in summary.header_addresses.get("from", []):
        document.add_boolean_term(address_term(address, SENDER_PREFIX))
    for address in hidden_addresses(summary, meta.get("recipients", [])):
        document.add_boolean_term(address_term(address, HIDDEN_PREFIX))
    if extracted.attachments:
        terms.add(("has", "attachment"))
    if extracted.failures:
        terms.add(("has", "extraction-failure"))
    if extracted.encrypted or any(a.encrypted for a in extracted.attachments):
        terms.add(("has", "encrypted"))
    for field_name, value in terms:
        if value:
            document.add_boolean_term(boolean_term(field_name, value))


def boolean_term(field_name: str, value: str) -> str:
    """The term of `field_name:value` for a boolean field (BOOLEAN_PREFIXES), lowercased."""
    return term(BOOLEAN_PREFIXES[field_name], value.lower())
