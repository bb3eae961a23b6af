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


def test_one_batch_counts_and_logs_exactly_as_its_puts_one_at_a_time(tmp_path):
    """A batch keeps its counters and log ends while it runs and writes them once: new
    messages, a duplicate, a merge, peer copies (arrival log only) and deletions in it end
    up as the same counters, document numbers and logs as put one by one."""
    items = [(message(1), Envelope(None, ["a@example.com"]), "smtp"),
             (message(2), None, "mirror:peer", "peer"),
             (message(1), Envelope(None, ["a@example.com"]), "smtp"),     # duplicate
             (message(3), None, "import"),
             (message(1), Envelope(None, ["b@example.com"]), "smtp"),     # merged
             (message(4), None, "journal:exchange")]
    batched, single = Store(tmp_path / "batched", GiB), Store(tmp_path / "single", GiB)
    try:
        batched.put_many(items)
        for item in items:
            single.put_many([item])
        for store in (batched, single):
            store.delete([store.put(message(5), None, "smtp"), store.put(message(6), None, "smtp")])

        def state(store):
            digests = sorted(store.digests())
            counters = {name: value for name, value in store.counters_with_prefix("").items()
                        if name != "last_archived"}  # a time in seconds: may differ by one
            return (counters, [store.meta(d)["number"] for d in digests],
                    store.log_after("arrival", 0, 100), store.log_after("outbox", 0, 100))
        assert state(batched) == state(single)
        assert batched.counters()["messages"] == 4 and batched.counters()["duplicates"] == 1
        assert len(batched.log_after("arrival", 0, 100)) == 5 + 2 + 2  # new, merge, puts, deletes
    finally:
        batched.close()
        single.close()
