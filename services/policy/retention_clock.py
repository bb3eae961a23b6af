"""When a message's retention starts: evidence its sender cannot set.

The Date header is written by the sender, so a retention counted from it lets anyone
choose when their mail expires: dated 1971 it goes at the next run, dated 2199 never. Mail
this appliance received live (SMTP journaling, "smtp"; a journal mailbox, "journal:NAME")
counts from its arrival here instead, which only the appliance's clock sets. Imported mail
("import") counts from its message date (services.archive.message_date), since a migration
of 2015 mail must expire by 2015 dates, but never from later than its import. A mirror copy
("mirror:NODE") counts as its origin does: from the live arrival the origin sent with it
(`origin_received`, services.mirror.protocol), else, for a copy of imported mail or one
stored by firmware that did not send it, by the imported mail's rule; never from after the
copy arrived here (a peer's clock ahead). An arrival before 1971 is a clock that was wrong
(reset to 1970), not evidence: the message's date decides then, and with no date either
the message is kept (its retention never starts: math.inf).
"""
from __future__ import annotations

import math

from services.archive.index import sent_date
from services.archive.message_date import EARLIEST

LIVE_SOURCES = ("smtp", "journal")  # source kinds (the part before ":") received live
ORIGIN_RECEIVED = "origin_received"  # a mirror copy's metadata: the origin's live arrival


def live_arrival(meta: dict) -> float | None:
    """Epoch seconds at which the appliance that first archived the message received it
    live, from its store metadata (Store.meta); None for imported mail, and for a mirror
    copy whose origin did not say (a copy of imported mail, or older firmware's)."""
    kind = meta.get("source", "import").partition(":")[0]
    if kind in LIVE_SOURCES:
        return meta["received"]
    if kind == "mirror" and meta.get(ORIGIN_RECEIVED) is not None:
        return _from_origin(meta[ORIGIN_RECEIVED], meta.get("received"))
    return None


def _from_origin(origin_received: float, received: float | None) -> float:
    """The origin's live arrival, but not after the copy arrived here (the origin had it
    first): a peer's clock far ahead, or a hostile peer, cannot make a copy never expire."""
    return origin_received if received is None else min(origin_received, received)


def retention_start(meta: dict) -> float:
    """Epoch seconds from which retention counts a stored message's age, from its store
    metadata (Store.meta): its live arrival (live_arrival) if that is after 1971, else its
    message date (services.archive.index.sent_date) but no later than its arrival here;
    math.inf (kept) when neither is after 1971.
    Raises KeyError only for metadata without "received" from a live source."""
    live = live_arrival(meta)
    if live is not None and live >= EARLIEST:
        return live
    # A live arrival before the first e-mail is a clock that was wrong (a reset to 1970 here
    # or on the origin): it would expire the mail at once, so the date's evidence decides.
    arrival = meta.get("received")
    date = sent_date(meta)
    if date < EARLIEST:  # no evidence at all: the date is a 1970 clock's arrival; keep it
        return math.inf
    return date if arrival is None or arrival < EARLIEST else min(date, arrival)
