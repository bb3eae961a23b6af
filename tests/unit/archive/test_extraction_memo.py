"""services.archive.extraction_memo: failures by SHA-256, durable in the store and bounded."""
import hashlib

import lmdb
import pytest

from services.archive import extraction_memo
from services.archive.extraction_memo import ExtractionMemo, MemoryMemo, TextMemo
from services.archive.store import Store

MAP = 64 * 1024**2


def sha(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


@pytest.fixture
def store(tmp_path):
    opened = Store(tmp_path / "store", MAP)
    yield opened
    opened.close()


def test_a_failure_survives_reopening_the_store(tmp_path):
    store = Store(tmp_path / "store", MAP)
    ExtractionMemo(store).remember_failure(sha(1),
                                           "attachment extraction used more than 20 s of CPU")
    store.close()
    again = Store(tmp_path / "store", MAP)
    memo = ExtractionMemo(again)
    assert memo.failure(sha(1)) == "attachment extraction used more than 20 s of CPU"
    assert memo.failure(sha(2)) is None and len(memo) == 1
    again.close()


def test_the_oldest_failures_are_forgotten_beyond_the_capacity(store):
    memo = ExtractionMemo(store, capacity=3)
    for n in range(5):
        memo.remember_failure(sha(n), f"reason {n}")
    assert [memo.failure(sha(n)) for n in range(5)] == [None, None, "reason 2", "reason 3",
                                                        "reason 4"]
    assert len(memo) == 3
    memo.remember_failure(sha(2), "again")  # remembered anew: now the youngest
    memo.remember_failure(sha(5), "reason 5")
    assert [memo.failure(sha(n)) for n in (2, 3, 4, 5)] == ["again", None, "reason 4", "reason 5"]
    assert len(memo) == 3


def test_a_failure_of_another_firmware_version_is_tried_again(store, monkeypatch):
    ExtractionMemo(store).remember_failure(sha(1), "old pypdf looped")
    monkeypatch.setattr(extraction_memo, "current_version", lambda: "9.9.9.999")
    assert ExtractionMemo(store).failure(sha(1)) is None


def test_a_reason_is_bounded_in_bytes(store):
    memo = ExtractionMemo(store)
    memo.remember_failure(sha(1), "é" * 10_000)
    assert memo.failure(sha(1)) == "é" * (extraction_memo.REASON_BYTES // 2)


def test_an_old_store_gains_the_memo_and_keeps_everything_else(tmp_path):
    """A store written before the memo existed (no "extraction" database) opens as before."""
    path = tmp_path / "store"
    env = lmdb.open(str(path), map_size=MAP, max_dbs=16)
    meta = env.open_db(b"meta")
    with env.begin(write=True) as txn:
        txn.put(b"k" * 32, b'{"size": 1}', db=meta)
    env.close()
    store = Store(path, MAP)
    ExtractionMemo(store).remember_failure(sha(1), "why")
    with store.env.begin() as txn:
        assert txn.get(b"k" * 32, db=store.db["meta"]) == b'{"size": 1}'
    assert ExtractionMemo(store).failure(sha(1)) == "why"
    store.close()


def test_the_in_memory_memo_is_bounded_too():
    memo = MemoryMemo(capacity=2)
    for n in range(3):
        memo.remember_failure(sha(n), str(n))
    assert [memo.failure(sha(n)) for n in range(3)] == [None, "1", "2"] and len(memo) == 2


def test_text_read_before_is_found_by_its_key_least_recently_used_first_out():
    memo = TextMemo(capacity_bytes=400)
    for n in range(4):
        memo.remember(f"k{n}", "x" * 60)  # 62 bytes each with its key
    assert memo.text("k0") == "x" * 60    # now the most recently used
    for n in range(4, 8):
        memo.remember(f"k{n}", "y" * 60)
    assert memo.size <= 400 and len(memo) == 6
    assert memo.text("k0") == "x" * 60 and memo.text("k1") is None and memo.text("k7")


def test_a_text_of_more_than_a_quarter_of_the_memo_is_not_kept():
    memo = TextMemo(capacity_bytes=400)
    memo.remember("small", "a")
    memo.remember("big", "é" * 60)  # 120 bytes of UTF-8: more than 100
    assert memo.text("big") is None and memo.text("small") == "a" and memo.size == 6
