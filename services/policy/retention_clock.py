"""When a message's retention starts: evidence its sender cannot set.

The Date header is written by the sender, so a retention counted from it lets anyone
choose when their mail expires: dated 1971 it goes at the next run, dated 2199 never. Mail
this appliance received live (SMTP journaling, "smtp"; a journal mailbox, "journal:NAME")
counts from its arrival here instead, which only the appliance's clock sets. Imported mail
("import") counts from its message date (services.archive.message_date), since a migration
of 2015 mail must expire by 2015 dates, but never from later than its import. A mirror copy
("mirror:NODE") counts as its origin does: from the live arrival the origin sent with it
(`origin_received`, services.mirror.protocol), else, for a copy of imported mail or one
stored by firmware that did not send it, by the imported mail's rule.
"""
from __future__ import annotations

from services.archive.index import sent_date

LIVE_SOURCES = ("smtp", "journal")  # source kinds (the part before ":") received live
ORIGIN_RECEIVED = "origin_received"  # a mirror copy's metadata: the origin's live arrival


def live_arrival(meta: dict) -> float | None:
    """Epoch seconds at which the appliance that first archived the message received it
    live, from its store metadata (Store.meta); None for imported mail, and for a mirror
    copy whose origin did not say (a copy of imported mail, or older firmware's)."""
    kind = meta.get("source", "import").partition(":")[0]
    if kind in LIVE_SOURCES:
        return meta["received"]
    if kind == "mirror":
        return meta.get(ORIGIN_RECEIVED)
    return None


def retention_start(meta: dict) -> float:
    """Epoch seconds from which retention counts a stored message's age, from its store
    metadata (Store.meta): its live arrival (live_arrival), else its message date
    (services.archive.index.sent_date) but no later than its arrival on this appliance.
    Raises KeyError only for metadata without "received" from a live source."""
    live = live_arrival(meta)
    if live is not None:
        return live
    arrival = meta.get("received")
    date = sent_date(meta)
    return date if arrival is None else min(date, arrival)
