import hashlib
import random
import threading

import lmdb
import pytest

from services.archive.store import (DELETIONS_RECORDED_FROM, AmbiguousDigest, Envelope, NotFound,
                                    Store, StoreFullError)

GiB = 1024**3


def message(n: int, body: str = "hello", headers: str = "", message_id: str | None = None) -> bytes:
    mid = message_id or f"<m{n}@example.com>"
    return (f"From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: note {n}\r\n"
            f"Message-ID: {mid}\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\n{headers}\r\n"
            f"{body} {n}\r\n").encode()


@pytest.fixture
def store(tmp_path):
    opened = Store(tmp_path / "store", map_size=GiB)
    yield opened
    opened.close()


def test_put_returns_the_sha256_and_get_returns_the_exact_bytes(store):
    raw = message(1) + b"\x00\xff 8-bit \r\n no final newline"
    digest = store.put(raw, Envelope("j@example.com", ["bob@example.com"]), "smtp")
    assert digest == hashlib.sha256(raw).hexdigest()
    assert store.get(digest) == raw
    meta = store.meta(digest)
    assert meta["message_id"] == "m1@example.com" and meta["source"] == "smtp"
    assert meta["size"] == len(raw) and 0 < meta["stored_size"]
    assert meta["recipients"] == ["bob@example.com"] and meta["sender"] == "j@example.com"
    assert meta["sent_date"] == 1704103200.0 and meta["origin"] == store.node_id


def test_the_same_bytes_are_stored_once(store):
    digests = {store.put(message(1)) for _ in range(3)}
    assert len(digests) == 1
    assert store.counters()["messages"] == 1 and store.counters()["duplicates"] == 2
    assert store.log_end("arrival") == 1


def test_a_repeated_delivery_with_other_recipients_merges_them(store):
    raw = message(1)
    first = store.put_outcome(raw, Envelope(None, ["a@example.com"]), "smtp")
    again = store.put_outcome(raw, Envelope(None, ["b@example.com", "a@example.com"]), "smtp")
    assert (first.status, again.status) == ("new", "merged")
    assert store.meta(first.digest)["recipients"] == ["a@example.com", "b@example.com"]
    assert store.log_end("arrival") == 2  # re-indexed with the new recipients


def test_other_bytes_with_the_same_message_id_are_kept_apart_and_found_by_it(store):
    first = store.put(message(1), Envelope(None, ["a@example.com"]), "smtp")
    relayed = store.put(message(1, headers="Received: from relay2\r\n"), None, "smtp")
    assert relayed != first and store.get(relayed) == message(1, headers="Received: from relay2\r\n")
    assert sorted(store.digests_for_message_id("m1@example.com")) == sorted([first, relayed])


def test_local_mail_goes_to_both_logs_and_peer_copies_only_to_arrival(store):
    local = store.put(message(1), source="smtp")
    copied = store.put(message(2), source="mirror:peer1")
    assert [d for _, d in store.log_after("arrival", 0, 10)] == [local, copied]
    assert [d for _, d in store.log_after("outbox", 0, 10)] == [local]
    assert store.log_after("arrival", 1, 10) == [(2, copied)]


def test_cursors_persist_across_reopening(tmp_path):
    first = Store(tmp_path / "s", map_size=GiB)
    first.set_cursor("peer:b", 42)
    node = first.node_id
    first.close()
    again = Store(tmp_path / "s", map_size=GiB)
    assert again.cursor("peer:b") == 42 and again.cursor("never") == 0 and again.node_id == node
    again.close()


def test_concurrent_puts_share_commits(store):
    batches = []
    apply_batch = store._apply_batch
    store._apply_batch = lambda batch: batches.append(len(batch)) or apply_batch(batch)
    threads = [threading.Thread(target=lambda k=k: [store.put(message(k * 100 + i))
                                                     for i in range(20)]) for k in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(batches) == 320 and store.counters()["messages"] == 320
    assert len(batches) < 320  # some commits carried several puts


def test_unknown_and_malformed_digests_are_not_found(store):
    with pytest.raises(NotFound, match="no message with digest"):
        store.get("0" * 64)
    with pytest.raises(NotFound, match="not a message digest"):
        store.meta("xyz")


def test_verify_names_a_corrupt_message(store):
    good, bad = store.put(message(1)), store.put(message(2))
    assert store.verify() == []
    with store.env.begin(write=True) as txn:  # flip the stored bytes behind the store's back
        txn.put(bytes.fromhex(bad), store._compressor().compress(b"tampered"), db=store.db["raw"])
    assert store.verify() == [{"digest": bad, "problem": "content does not match its digest"}]
    assert store.get(good) == message(1)


def test_check_lists_the_first_corrupt_messages_and_counts_them_all(store):
    """It kept every one: a badly damaged store's check grew without bound."""
    from services.archive.store import MISSING_SHOWN
    digests = store.put_many([(message(n), None, "import") for n in range(MISSING_SHOWN + 20)])
    with store.env.begin(write=True) as txn:
        for outcome in digests:
            txn.put(bytes.fromhex(outcome.digest), store._compressor().compress(b"x"),
                    db=store.db["raw"])
    found = store.check()
    assert len(found.corrupt) == MISSING_SHOWN and found.corrupt_entries == MISSING_SHOWN + 20


def test_check_tells_a_deletion_by_the_store_from_a_message_gone_missing(store):
    kept, deleted, lost = (store.put(message(n)) for n in range(3))
    store.delete([deleted])
    assert (store.check().missing_entries, store.check().uncounted) == (0, 0)
    with store.env.begin(write=True) as txn:  # gone behind the store's back
        for name in ("raw", "meta"):
            txn.delete(bytes.fromhex(lost), db=store.db[name])
    found = store.check()
    assert (found.corrupt, found.counted, found.raw, found.meta) == ([], 2, 1, 1)
    assert found.uncounted == 1 and found.log_entries == 4
    assert found.missing == [{"digest": lost, "seq": 3, "problem": (
        "arrival-log entry 3 stored it; it is not in the store and no deletion of it is "
        "recorded")}] and found.missing_entries == 1
    store.put(message(1))  # stored again after its deletion, then lost too
    with store.env.begin(write=True) as txn:
        for name in ("raw", "meta"):
            txn.delete(bytes.fromhex(deleted), db=store.db[name])
    assert [m["digest"] for m in store.check().missing] == [lost, deleted]
    store.set_setting(DELETIONS_RECORDED_FROM, 6)  # as if older firmware wrote entries 1-5
    older = store.check()
    assert [m["digest"] for m in older.missing] == [] and older.log_unverifiable == 2
    assert store.verify() == [] and store.get(kept) == message(0)


def test_a_full_store_refuses_new_mail_and_keeps_what_it_has(tmp_path):
    small = Store(tmp_path / "small", map_size=8 * 1024 * 1024)
    kept = small.put(message(0))
    big = message(1, body="x" * 1000) + bytes(range(256)) * 20000  # ~5 MB, incompressible-ish
    import os
    big += os.urandom(6 * 1024 * 1024)
    with pytest.raises(StoreFullError, match="is full .* everything stored is kept"):
        small.put(big)
    assert small.get(kept) == message(0) and small.counters()["messages"] == 1
    assert small.verify() == []
    small.set_cursor("still", 1)  # small writes still fit in the reserve
    small.close()


# --- dates and their evidence -------------------------------------------------------------

def test_the_from_line_date_reaches_the_metadata_as_evidence(store):
    undated = b"From: a@example.com\r\nSubject: undated\r\n\r\nbody\r\n"
    digest = store.put(undated, source="import", from_line_date=1709620269.0)
    meta = store.meta(digest)
    assert (meta["sent_date"], meta["date_source"]) == (1709620269.0, "mbox-from-line")
    assert meta["from_line_date"] == 1709620269.0
    (outcome,) = store.put_many([(undated + b"x", None, "import", None, None)])
    meta = store.meta(outcome.digest)
    assert (meta["sent_date"], meta["date_source"]) == (meta["received"], "arrival")
    assert store.meta(store.put(message(1)))["date_source"] == "date-header"


def test_record_indexed_writes_header_metadata_read_anew_and_moves_the_message_id(store):
    digest = store.put(message(1))
    store.record_indexed(1, {digest: ["a.pdf"]}, header_changes={
        digest: {"message_id": "new@example.com", "subject": "read anew",
                 "size": 1}})  # not a header field: ignored
    meta = store.meta(digest)
    assert (meta["message_id"], meta["subject"], meta["attachments"]) == (
        "new@example.com", "read anew", ["a.pdf"])
    assert meta["size"] == len(message(1))
    assert store.digests_for_message_id("new@example.com") == [digest]
    assert store.digests_for_message_id("m1@example.com") == []


# --- digest prefixes ----------------------------------------------------------------------

def colliding_messages(digits: int) -> tuple[bytes, bytes]:
    """Two messages whose digests share their first `digits` hex digits (a birthday search)."""
    seen = {}
    n = 0
    while True:
        raw = message(n)
        prefix = hashlib.sha256(raw).hexdigest()[:digits]
        if prefix in seen:
            return seen[prefix], raw
        seen[prefix] = raw
        n += 1


def test_a_unique_prefix_of_eight_or_more_hex_digits_names_a_message(store):
    digest = store.put(message(1))
    store.put(message(2))
    for prefix in (digest[:8], digest[:8].upper(), digest[:33], digest):
        assert store.resolve(prefix) == digest
    for bad in (digest[:7], "", "xyz12345", digest + "0", "g" * 64):
        with pytest.raises(NotFound, match="not a message digest"):
            store.resolve(bad)
    with pytest.raises(NotFound, match="no message with a digest starting 00000000"):
        store.resolve("00000000" if not digest.startswith("00000000") else "ffffffff")


def test_an_ambiguous_prefix_names_the_messages_it_could_mean(store):
    first, second = colliding_messages(8)
    digests = sorted(store.put(raw) for raw in (first, second))
    with pytest.raises(AmbiguousDigest, match=f"{digests[0][:8]} is ambiguous: it starts the "
                                              f"digests of {digests[0]}, {digests[1]}; give"):
        store.resolve(digests[0][:8])
    longer = next(n for n in range(9, 64) if digests[0][:n] != digests[1][:n])
    assert store.resolve(digests[1][:longer]) == digests[1]


def test_kept_readings_never_take_the_reserve_kept_for_bookkeeping(tmp_path):
    """Readings are derived: recorded only where there is room beside the reserve, so a
    store that mail has filled can still commit cursors and settings."""
    from services.archive.store import RESERVE_BYTES
    small = Store(tmp_path / "small", map_size=RESERVE_BYTES + 3 * 1024 * 1024)
    try:
        digests = []
        with pytest.raises(StoreFullError):
            for n in range(100):
                digests.append(small.put(random.Random(n).randbytes(200_000)))
        left = small.space_left()
        assert left >= 0
        reading = random.Random(1).randbytes(left + 2 * 1024 * 1024)  # fits only the reserve
        small.record_indexed(None, {}, readings={digests[0]: reading})
        assert small.reading(digests[0]) is None
        assert small.space_left() >= 0
        small.record_indexed(None, {}, readings={digests[1]: b"small"})
        assert small.reading(digests[1]) == b"small"
    finally:
        small.close()


def test_a_copy_keeps_the_reading_it_came_with_only_when_it_is_new(store):
    """A mirror copy's reading (services.archive.readings, from the peer) is kept in the
    copy's own transaction; a copy of a message stored already keeps the reading it has."""
    first, second = message(1), message(2)
    here = store.put(first, Envelope(None, ["bob@example.com"]), "smtp")
    store.record_indexed(None, {}, readings={here: b"reading made here"})
    outcomes = store.put_many([(first, Envelope(None, ["bob@example.com"]), "mirror:b", "b"),
                               (second, Envelope(None, ["bob@example.com"]), "mirror:b", "b")],
                              {here: b"the peer's reading",
                               hashlib.sha256(second).hexdigest(): b"the peer's reading 2"})
    assert [outcome.status for outcome in outcomes] == ["duplicate", "new"]
    assert store.reading(here) == b"reading made here"
    assert store.reading(outcomes[1].digest) == b"the peer's reading 2"


def test_a_copy_is_stored_even_when_its_reading_finds_no_room(tmp_path):
    """The reading is derived: a copy that fits is stored (and can be acknowledged)
    whether or not its reading fits beside it and the reserve."""
    from services.archive.store import RESERVE_BYTES
    small = Store(tmp_path / "small", map_size=RESERVE_BYTES + 3 * 1024 * 1024)
    try:
        raw = random.Random(2).randbytes(1_000_000)
        reading = random.Random(3).randbytes(small.space_left())  # fits alone, not beside raw
        [outcome] = small.put_many([(raw, None, "mirror:b", "b")],
                                   {hashlib.sha256(raw).hexdigest(): reading})
        assert outcome.status == "new" and small.get(outcome.digest) == raw
        assert small.reading(outcome.digest) is None and small.space_left() >= 0
    finally:
        small.close()
