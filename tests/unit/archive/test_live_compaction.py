"""When the indexer service compacts the live index (services.archive.live_compaction.due):
grown past GROWTH_FACTOR times, and MIN_GROWTH_BYTES more than, its size before its last
compaction; not again within MIN_INTERVAL_SECONDS; after a skip, only once it has grown
RETRY_FACTOR times; the record of the last compaction round-trips through the store."""
from pathlib import Path

import pytest

from services.archive.archive import Archive
from services.archive.compaction import Record
from services.archive.live_compaction import (GROWTH_FACTOR, MIN_GROWTH_BYTES,
                                              MIN_INTERVAL_SECONDS, RETRY_FACTOR, due,
                                              threshold)

MB = 1024 * 1024
HOUR = 3600.0
NOW = 1_800_000_000.0


def compacted(before: int, after: int, at: float = NOW - 2 * MIN_INTERVAL_SECONDS,
              index: str = "index.2") -> Record:
    return Record(index=index, compacted_at=at, bytes_before=before, bytes_after=after,
                  messages=1000, compactions=1)


def test_an_index_never_compacted_is_compacted_once_it_reaches_the_minimum():
    assert not due(Record(), "index.1", MIN_GROWTH_BYTES - 1, NOW)
    assert due(Record(), "index.1", MIN_GROWTH_BYTES, NOW)
    assert threshold(Record(), "index.1") == MIN_GROWTH_BYTES


@pytest.mark.parametrize("before", [1 * MB, 10 * MB, 71 * MB, 10_000 * MB])
def test_a_compacted_index_is_compacted_again_once_it_has_grown_past_its_size_before(before):
    record = compacted(before, before * 2 // 5)
    at = max(int(GROWTH_FACTOR * before) + 1, before + MIN_GROWTH_BYTES)
    assert threshold(record, "index.2") in (at - 1, at)
    assert not due(record, "index.2", before, NOW)  # swollen back: not for that
    assert not due(record, "index.2", threshold(record, "index.2") - 1, NOW)
    assert due(record, "index.2", threshold(record, "index.2"), NOW)


def test_a_compaction_of_another_index_is_no_baseline_for_this_one():
    """The rebuilt index went live as it was (no room for a copy): it was never compacted."""
    record = compacted(100 * MB, 40 * MB, index="index.2")
    assert threshold(record, "index.3") == MIN_GROWTH_BYTES
    assert due(record, "index.3", 50 * MB, NOW)


def test_not_again_within_the_interval_whatever_the_growth_and_a_clock_set_back_waits_not():
    record = compacted(10 * MB, 4 * MB, at=NOW - MIN_INTERVAL_SECONDS + 60)
    assert not due(record, "index.2", 1000 * MB, NOW)
    assert due(record, "index.2", 1000 * MB, NOW + 60)
    assert due(compacted(10 * MB, 4 * MB, at=NOW + 365 * 24 * HOUR), "index.2", 1000 * MB, NOW)


def test_after_a_skip_it_is_tried_again_only_once_the_index_has_grown():
    record = Record().skipped(Path("data/index.1"), 20 * MB, "no room", NOW - HOUR)
    assert not due(record, "index.1", 20 * MB, NOW)
    assert not due(record, "index.1", int(RETRY_FACTOR * 20 * MB) - 1, NOW)
    assert due(record, "index.1", int(RETRY_FACTOR * 20 * MB) + 1, NOW)
    assert due(record, "index.7", 20 * MB, NOW)  # a skip of another index does not hold


def test_the_record_round_trips_through_the_store_and_counts_compactions(tmp_path):
    archive = Archive(tmp_path / "data", 450)
    try:
        assert Record.load(archive.store) == Record()
        live = archive.index_dir()
        (live / "postlist.glass").write_bytes(b"x" * 3000)
        first = Record.load(archive.store).skipped(live, 9000, "no room", NOW)
        first.save(archive.store)
        second = Record.load(archive.store).compacted(live, 9000, 12, now=NOW + 1)
        second.save(archive.store)
        assert Record.load(archive.store) == second == Record(
            index=live.name, compacted_at=NOW + 1, bytes_before=9000, bytes_after=3000,
            messages=12, compactions=1)  # the skip is over
        Record.load(archive.store).compacted(live, 3000, 12, now=NOW + 2).save(archive.store)
        assert Record.load(archive.store).compactions == 2
    finally:
        archive.close()

