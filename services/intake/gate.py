"""What every intake path shares: unwrap journal reports, store durably, and back-pressure.

SMTP and the journal puller hand each message to archive_message(); the store dedups by
content. IntakeGate says when intake must pause (4xx, or leave mail on the server) so
that search never falls far behind and a full disk never loses mail.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from pathlib import Path

from firmware.models import ModelProfile

from services.intake.journal_report import NotAJournalReport, is_journal_report, unwrap
from services.archive.archive import spaces_of
from services.archive.space import Space, size_in_words
from services.archive.store import Envelope, PutOutcome, Store

log = logging.getLogger(__name__)


def archive_message(store: Store, raw: bytes, envelope: Envelope, source: str,
                    from_journaling_source: bool = True) -> PutOutcome:
    """Store one message as it came in; an Exchange journal report becomes its original
    message (byte-exact) with the report's envelope. Returns once durable.

    Only reports from a journaling source (a trusted server, a journal mailbox) are
    unwrapped: anyone else could forge one to plant mail or invent Bcc recipients."""
    return submit_message(store, raw, envelope, source, from_journaling_source).result()


def submit_message(store: Store, raw: bytes, envelope: Envelope, source: str,
                   from_journaling_source: bool = True) -> Future:
    """archive_message() without waiting for the commit: the Future gets the PutOutcome
    (or the error) once durable (Store.put_future)."""
    if from_journaling_source and is_journal_report(raw):
        try:
            report = unwrap(raw)
        except NotAJournalReport as exc:
            log.warning("journal report kept as it is: %s", exc)
        else:
            return store.put_future(report.original, Envelope(report.sender, report.recipients),
                                    source)
    return store.put_future(raw, envelope, source)


# Trusted servers and journal mailboxes keep a reserved share of the index backlog: they
# wait only past this many times index_backlog, so untrusted mail that fills the backlog
# (a hostile attachment that costs its extraction time each time) never locks them out.
TRUSTED_BACKLOG_FACTOR = 2


class IntakeGate:
    """Why intake must wait right now, or None. Checked per message, refreshed each second."""

    REFRESH_SECONDS = 1.0

    def __init__(self, store: Store, profile: ModelProfile, data_dir: Path):
        self.store, self.profile, self.data_dir = store, profile, Path(data_dir)
        self._checked_at, self._reason, self._backlog = 0.0, None, 0
        self._room_bytes = 0  # what intake may write before it waits (_check)

    def reason(self, trusted: bool = False) -> str | None:
        """Why intake from this source must wait (a sentence for a 4xx reply), or None.

        trusted: a trusted server (smtp.trusted_servers) or a journal mailbox; it waits for
        the index only past TRUSTED_BACKLOG_FACTOR x intake.index_backlog messages behind,
        others past intake.index_backlog. A full store or disk stops everyone."""
        self._refresh()
        return self._reason or self._backlog_reason(trusted)

    def room_reason(self, declared_bytes: int = 0) -> str | None:
        """Why intake must wait for room (a disk low or full, the store's capacity full), or
        None; with `declared_bytes` (RFC 1870 SIZE=), also when a message that large would
        take the disks it is spooled and stored on below their low threshold."""
        self._refresh()
        if self._reason or declared_bytes <= self._room_bytes:
            return self._reason
        return (f"the message ({size_in_words(declared_bytes)}) is larger than the room "
                f"left ({size_in_words(max(self._room_bytes, 0))})")

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked_at >= self.REFRESH_SECONDS:
            self._reason, self._backlog = self._check(), self._index_backlog()
            self._checked_at = now

    def _index_backlog(self) -> int:
        return self.store.log_end("arrival") - self.store.cursor("indexer")

    def _backlog_reason(self, trusted: bool) -> str | None:
        limit = self.profile.intake.index_backlog * (TRUSTED_BACKLOG_FACTOR if trusted else 1)
        if self._backlog > limit:
            return f"the index is {self._backlog} messages behind (limit {limit})"
        return None

    def _check(self) -> str | None:
        spaces = [space for space in spaces_of(self.data_dir, self.store,
                                               self.profile.intake.min_free_disk_mb)
                  if space.key != "index_disk"]
        self._room_bytes = min(_room(space) for space in spaces)
        for space in spaces:
            if _intake_waits_for(space):
                return _space_reason(space)
        return None


def _room(space: Space) -> int:
    """Bytes intake may still write to `space` before it waits."""
    return space.free_bytes - (0 if space.key == "store_capacity" else space.low_below_bytes)


def _intake_waits_for(space: Space) -> bool:
    """While a disk the store writes to is low, so the indexer and the bookkeeping keep the
    rest, and while the store's capacity is full; the index's own disk only holds up
    indexing, and the backlog limit holds intake up then."""
    if space.key == "index_disk":
        return False
    return space.state == "full" if space.key == "store_capacity" else space.state != "ok"


def _space_reason(space: Space) -> str:
    """Why intake waits, e.g. "the data disk is low on space (3.2 MiB free, 5.0 MiB needed)"."""
    if space.key == "store_capacity":
        return "the archive store is full"
    free = size_in_words(space.free_bytes)
    if space.state == "full":
        return f"the {space.name} is full ({free} free of {size_in_words(space.total_bytes)})"
    return f"the {space.name} is low on space ({free} free, " \
           f"{size_in_words(space.low_below_bytes)} needed)"
