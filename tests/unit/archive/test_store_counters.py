"""The status counters the store keeps in each put's transaction (appliance MIB)."""
import time

import pytest

from services.archive.store import Envelope, Store

GiB = 1024**3


def message(n: int) -> bytes:
    return f"From: a@example.com\r\nSubject: {n}\r\nMessage-ID: <c{n}@example.com>\r\n\r\nbody {n}\r\n".encode()


@pytest.fixture
def store(tmp_path):
    opened = Store(tmp_path / "store", map_size=GiB)
    yield opened
    opened.close()


def test_new_messages_count_by_source_kind_hour_and_day(store):
    store.put(message(1), None, "smtp")
    store.put(message(2), None, "journal:exchange")
    store.put(message(3), None, "journal:other")
    store.put_many([(message(4), None, "mirror:abc123", "abc123"), (message(5), None, "import")])
    now = time.gmtime()
    assert store.counters_with_prefix("archived:") == {"smtp": 1, "journal": 2, "mirror": 1,
                                                       "import": 1}
    assert store.counters_with_prefix("archived_hour:") == {time.strftime("%Y%m%d%H", now): 5}
    assert store.counters_with_prefix("archived_day:") == {time.strftime("%Y%m%d", now): 5}
    assert abs(store.counters_with_prefix("last_archived")[""] - time.time()) < 5


def test_duplicates_and_merges_count_as_savings_not_as_archived(store):
    raw = message(1)
    store.put(raw, Envelope(None, ["a@example.com"]), "smtp")
    store.put(raw, Envelope(None, ["a@example.com"]), "smtp")     # duplicate
    store.put(raw, Envelope(None, ["b@example.com"]), "smtp")     # merged recipients
    assert store.counters_with_prefix("archived:") == {"smtp": 1}
    assert store.counters()["duplicates"] == 1
    assert store.counters_with_prefix("dedup_bytes") == {"": 2 * len(raw)}


def test_a_prefix_reads_only_its_own_counters(store):
    store.put(message(1), None, "smtp")
    assert set(store.counters_with_prefix("archived_")) == {time.strftime("hour:%Y%m%d%H", time.gmtime()),
                                                            time.strftime("day:%Y%m%d", time.gmtime())}
    assert store.counters_with_prefix("nothing:") == {}
