"""Litigation hold ids against a real store and index: a new hold never takes the id of a
hold this node knows (live, released, or records left by a placement cut short), so its
records are never dropped by an old hold's tombstone nor mixed with another hold's.

The random source is forced to draw an id again (what an 8-hex-digit id, 32 bits, did
by chance among some tens of thousands of holds): each draw, by the older release's
uuid.uuid4().hex or by secrets.token_hex, gives the next id of a list."""
import datetime as dt
import json
import re
import secrets
import time
import uuid
from types import SimpleNamespace

import pytest

from services.archive.archive import Archive
from services.policy import hold_coverage, hold_records, holds, retention, saved_searches
from services.policy.replicated import Replicated
from tests.integration.policy.test_retention import (  # noqa: F401 (archive: a fixture)
    ADMIN, DAY, archive, put_and_index, remaining)

pytestmark = pytest.mark.integration
HELD_COUNT, CHUNK = 50, 20  # a placement of three chunks, the last one of 10
FIRST, SECOND, THIRD = "0badc0de" * 2, "5eed5eed" * 2, "feedface" * 2
LEFT = "ab" * 32  # a digest recorded by a placement cut short


def draws(monkeypatch, ids: list[str]) -> None:
    """Each id the code draws is the next of `ids`, whichever source it draws from."""
    pending = iter(ids)
    monkeypatch.setattr(uuid, "uuid4", lambda: SimpleNamespace(hex=next(pending)))
    monkeypatch.setattr(secrets, "token_hex", lambda nbytes=None: next(pending))


def recent_mail(count: int, now: float) -> dict[str, bytes]:
    """`count` messages sent ten days before `now`, named recentN."""
    sent = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(now - 10 * DAY))
    return {f"recent{n}": (f"From: lawyer@x.com\nTo: bob@example.com\nSubject: memo {n}\n"
                           f"Date: {sent}\nMessage-ID: <ids{n}@example.com>\n\nbody {n}\n"
                           ).encode() for n in range(count)}


def test_a_hold_placed_over_a_released_holds_id_records_and_keeps_every_match(
        archive, monkeypatch):
    """The old placement drew the released hold's id again: its first chunks were not
    recorded (a tombstone's id takes no records), only the last one, with the entry. The
    search ("the last 30 days") no longer matches that mail 60 days on, so retention then
    deleted all but the last chunk of what the hold had been placed on."""
    monkeypatch.setattr(hold_records, "CHUNK", CHUNK)
    now = time.time()
    digests = put_and_index(archive, recent_mail(HELD_COUNT, now))
    saved_searches.save(archive.replicated, "month", "date:30d", ADMIN)
    draws(monkeypatch, [FIRST, FIRST, SECOND])
    released = holds.add(archive.replicated, archive.index_dir(), "month", None, ADMIN)
    holds.remove(archive.replicated, released, ADMIN)
    placed = holds.add(archive.replicated, archive.index_dir(), "month", None, ADMIN)
    hold = holds.all_holds(archive.replicated)[placed]
    assert hold["held_at_placement"] == HELD_COUNT
    assert set(holds.recorded(archive.replicated, placed)) == set(digests.values())
    later = now + 60 * DAY
    assert hold_coverage.covered(archive.replicated, archive.index_dir(), placed, hold,
                                 now=later) == HELD_COUNT
    archive.replicated.put(retention.ENABLED, True)
    retention.set_global(archive.replicated, 30)
    report = retention.run(archive.store, archive.index_dir(), archive.replicated, ADMIN,
                           now=later)
    assert (report.held, report.deleted) == (HELD_COUNT, 0)
    assert remaining(archive, digests) == sorted(digests)
    assert placed != released


def test_a_new_hold_takes_no_id_this_node_knows(archive, monkeypatch):
    """Drawn again: a live hold's id (the old placement replaced that hold, search and
    all), a released one's, and one a placement cut short left records under (the old
    placement took them as its own). The new hold gets the fourth id drawn."""
    put_and_index(archive, recent_mail(3, time.time()))
    saved_searches.save(archive.replicated, "month", "date:30d", ADMIN)
    saved_searches.save(archive.replicated, "other", "memo", ADMIN)
    draws(monkeypatch, [FIRST, SECOND, FIRST, SECOND, THIRD, "c0ffee00" * 2])
    live = holds.add(archive.replicated, archive.index_dir(), "other", None, ADMIN)
    released = holds.add(archive.replicated, archive.index_dir(), "other", None, ADMIN)
    holds.remove(archive.replicated, released, ADMIN)
    hold_records.add(archive.store, THIRD, [LEFT], live_only=False)  # cut short
    until = dt.date(2100, 1, 1)
    placed = holds.add(archive.replicated, archive.index_dir(), "month", until, ADMIN)
    assert placed == "c0ffee00" * 2
    shown = holds.all_holds(archive.replicated)
    assert shown[live]["saved"] == "other" and shown[live]["until"] is None
    assert shown[placed]["saved"] == "month" and shown[placed]["held_at_placement"] == 3
    assert LEFT not in set(holds.recorded(archive.replicated, placed))


def test_new_hold_ids_are_16_hex_digits_and_old_8_digit_ones_still_work(archive):
    """64 random bits (two peers placing holds at once do not draw one id in practice);
    a hold an older release placed, with its 8-hex-digit id, is listed and removed."""
    put_and_index(archive, recent_mail(2, time.time()))
    saved_searches.save(archive.replicated, "month", "date:30d", ADMIN)
    placed = {holds.add(archive.replicated, archive.index_dir(), "month", None, ADMIN)
              for _ in range(20)}
    assert len(placed) == 20 and all(re.fullmatch(r"[0-9a-f]{16}", hold) for hold in placed)
    archive.replicated.put("hold:1a2b3c4d", {"saved": "month", "until": None, "by": "t",
                                             "created": 1.5e9, "held": ["ab" * 32]})
    assert holds.all_holds(archive.replicated)["1a2b3c4d"]["held_at_placement"] == 1
    holds.remove(archive.replicated, "1a2b3c4d", ADMIN)
    assert "1a2b3c4d" not in holds.all_holds(archive.replicated)


def test_the_cli_places_16_digit_ids_and_still_lists_and_removes_old_8_digit_ones(
        archiver, tmp_path):
    folder = tmp_path / "mail"
    folder.mkdir()
    for name, raw in recent_mail(2, time.time()).items():
        (folder / f"{name}.eml").write_bytes(raw)
    data = tmp_path / "data"
    archiver("import", "--data", data, "--json", folder, check=0)
    archiver("search", "--save", "month", "date:30d", "--data", data, check=0)
    placed = archiver("hold", "add", "--saved", "month", "--data", data, check=0).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{16}", placed)
    opened = Archive(data, 450)
    try:  # as an older release placed it: 8 hex digits, its records in the entry
        Replicated(opened.store).put("hold:1a2b3c4d", {
            "saved": "month", "until": None, "by": "t", "created": 1.5e9, "held": [LEFT]})
    finally:
        opened.close()
    listed = archiver("hold", "list", "--json", "--data", data, check=0).stdout
    counts = {hold["id"]: hold["held_at_placement"] for hold in map(json.loads,
                                                                    listed.splitlines())}
    assert counts == {placed: 2, "1a2b3c4d": 1}
    removed = archiver("hold", "remove", "1a2b3c4d", "--data", data, check=0)
    assert removed.stdout.strip() == "removed hold 1a2b3c4d"
    listed = archiver("hold", "list", "--data", data, check=0).stdout
    assert listed.startswith(placed) and "1a2b3c4d" not in listed
