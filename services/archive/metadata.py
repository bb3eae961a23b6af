"""The store's metadata that is read from a message's own headers, in one place.

The store derives it at put; the indexer derives it again from the raw bytes (`changes`)
before it indexes a message whose metadata an older reading wrote (READING below the
current one), and `archiver reindex` does it for every message: so reindex brings messages
stored by older code up to the current reading (dates and their source, sender, subject,
Message-ID), and the index's sent-date slot follows. What is not in the bytes is kept in
the metadata as evidence for that: the mbox From_ line's date and the arrival time.

Bump READING whenever header_metadata reads some message differently (a new date rule, a
decoding fix): the indexer service then refreshes old metadata on its own as it meets it.
"""
from __future__ import annotations

from services.archive import message_date, mime

# The fields header_metadata() gives; everything else in the metadata (envelope, arrival,
# sizes, source, origin, attachment names) is not read from the headers.
HEADER_FIELDS = ("message_id", "sent_date", "date_source", "from", "subject", "reading")
# The version of header_metadata's reading (2: WHATWG charsets, RFC 2047 joined as bytes;
# 3: raw 8-bit header bytes in the message's declared or detected charset, ISO-2022 escapes;
# 4: years as RFC 5322 4.3 reads them, so a Date in the year 0000 is no longer 2000)
READING = 4
SUBJECT_LIMIT = 300  # characters kept in the metadata; the index has the whole subject


def header_metadata(raw: bytes, from_line_date: float | None, arrival: float) -> dict:
    """The HEADER_FIELDS of a raw RFC 5322 message, read from its header block only.

    `from_line_date`: epoch seconds of the mbox From_ line it was filed under, or None;
    `arrival`: epoch seconds it was stored, the date of last resort (services.archive.
    dates). Never raises on bad input.
    """
    message = mime.parse_headers(raw)
    message_id, senders, subject = mime.summarize_origin(message)
    sent, source = message_date.message_date(message, from_line_date, arrival)
    return {"message_id": message_id, "sent_date": sent, "date_source": source,
            "from": senders[0] if senders else "",
            "subject": subject[:SUBJECT_LIMIT], "reading": READING}


def refreshed(meta: dict, raw: bytes) -> dict:
    """The HEADER_FIELDS of a stored message as this code reads it, from its raw bytes and
    the evidence its metadata kept; metadata written by older code lacks date_source."""
    return header_metadata(raw, meta.get("from_line_date"), meta["received"])


def is_current(meta: dict) -> bool:
    """Whether the current reading wrote this metadata (then `changes` would find none)."""
    return meta.get("reading", 0) >= READING


def changes(meta: dict, raw: bytes) -> dict:
    """The HEADER_FIELDS whose values `refreshed` reads differently from `meta`: {} when the
    metadata is up to date."""
    current = refreshed(meta, raw)
    return {name: value for name, value in current.items() if meta.get(name) != value}
