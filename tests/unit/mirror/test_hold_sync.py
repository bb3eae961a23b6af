"""What a peer sends in the exchange of hold records is checked before it is believed
(services.mirror.hold_sync): a page must move forward, a digest has one spelling, and an
error does not repeat a peer's huge value. The peer here is a script of hostile replies;
the store is a real LMDB store."""
import asyncio
import hashlib

import pytest

from services.archive.store import Store
from services.mirror import hold_sync
from services.policy import hold_records
from services.policy.hold_records import BadHoldRecords
from services.policy.replicated import Replicated

HOLD = {"saved": "case", "until": None, "by": "root"}


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "store", map_size=1 << 30)
    Replicated(store).put("hold:h1", HOLD)
    yield store
    store.close()


def digests(count: int) -> list[str]:
    return sorted(hashlib.sha256(str(n).encode()).hexdigest() for n in range(count))


def peer_answering(*pages: list[str]):
    """A peer whose page replies are `pages`, in turn, then the last one forever."""
    asked = []

    async def post(path: str, document: dict) -> dict:
        asked.append((path, document))
        if path == hold_sync.PAGE_PATH:
            return {"digests": pages[min(len(asked) - 1, len(pages) - 1)]}
        return {"taken": 0}

    return post, asked


@pytest.mark.parametrize("pages", [
    [digests(hold_sync.PAGE)] * 2,                                 # the same page again
    [digests(hold_sync.PAGE), digests(hold_sync.PAGE)[:1]],        # a page going back
    [list(reversed(digests(3)))],                                  # one out of order
    [digests(2)[:1] * 2],                                          # one digest twice
], ids=["repeated", "backwards", "descending", "twice"])
def test_a_page_that_does_not_move_forward_ends_the_exchange(store, pages):
    post, asked = peer_answering(*pages)
    with pytest.raises(BadHoldRecords, match="ascending"):
        asyncio.run(hold_sync.exchange(store, post, ["h1"]))
    assert len(asked) <= 3  # not walked forever


@pytest.mark.parametrize("spelling", [
    "AB" * 32, "ab " * 21 + "a", " " + "ab" * 32, "ab" * 32 + "\n", "ab" * 31, "xy" * 32,
])
def test_a_digest_has_one_spelling(spelling):
    assert not hold_records.is_digest(spelling)
    assert hold_records.is_digest("ab" * 32)


def test_an_error_does_not_repeat_a_huge_value():
    with pytest.raises(BadHoldRecords) as raised:
        hold_records.digest_bytes("a" * 10_000_000)
    assert len(str(raised.value)) < 200
    with pytest.raises(BadHoldRecords) as raised:
        hold_records.check_hold_id("h" * 10_000_000)
    assert len(str(raised.value)) < 200
