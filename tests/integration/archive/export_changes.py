"""Mail indexed and deleted while an export is being written: the real store and index are
changed once a given number of messages have been read from the store (Store.get), where
intake and retention could change them between two pages of an export that paged through
search results by offset (500 a page). Shared by the CLI's and the web UI's export tests."""
from __future__ import annotations

import email.utils
import itertools
from pathlib import Path
from typing import Callable

from services.archive.extract import ExtractionPool
from services.archive.indexer import Indexer
from services.archive.search import search
from services.archive.store import Store

DAY = 86400
START = 1_700_000_000  # 2023-11-14: the bulk mail's dates count from here
# More matches than one page of the offset paging (500), so that paging crosses a page.
BULK = 700
READS_BEFORE_CHANGE = 100  # the change comes while the first page is being written


def bulk_mail(n: int, days: float, to: str = "alice@example.com", word: str = "bulk"
              ) -> bytes:
    """Message `n` of a bulk of mail, sent `days` after START; its subject has `word`."""
    date = email.utils.formatdate(START + days * DAY)
    return (f"From: carol@example.com\r\nTo: {to}\r\nSubject: {word} {n}\r\n"
            f"Message-ID: <{word}{n}@example.com>\r\nDate: {date}\r\n\r\n"
            f"Message {n} of the {word}.\r\n").encode()


def bulk(count: int, to_others_every: int = 0, word: str = "bulk", first: int = 0
         ) -> list[bytes]:
    """`count` bulk messages, two a day (pairs with the same date: ties), every
    `to_others_every`th to dave@example.com instead of alice."""
    return [bulk_mail(n, n // 2, "dave@example.com" if to_others_every
                      and n % to_others_every == 0 else "alice@example.com", word)
            for n in range(first, first + count)]


def index_now(store: Store, index_dir: Path) -> None:
    """Index what the store logged (stored and deleted mail), with the real indexer."""
    with ExtractionPool(1 << 20, workers=1) as pool:
        indexer = Indexer(store, index_dir, pool)
        try:
            indexer.catch_up()
        finally:
            indexer.close()


def in_order(index_dir: Path, query: str, within=None) -> list[str]:
    """The digests `query` matches now, newest first (as a search lists them)."""
    return [hit.digest for hit in search(index_dir, query, 100_000, within=within).hits]


def change_after_reads(monkeypatch, reads: int, change: Callable[[Store], None]) -> list:
    """Run change(store) once, right after the `reads`th message read from any Store
    (Store.get) from now on; returns a list that holds True once it ran."""
    original, count, done = Store.get, [0], []

    def get(store: Store, digest: str) -> bytes:
        raw = original(store, digest)
        count[0] += 1
        if count[0] == reads and not done:
            change(store)
            done.append(True)
        return raw
    monkeypatch.setattr(Store, "get", get)
    return done


class AddMailMeanwhile:
    """A change storing and indexing `count` new messages with `word` in their subjects: a
    third newer than all the bulk, a third older, a third among it; `added`: their
    digests, once it ran. Each run's messages are new ones."""
    numbers = itertools.count(90_000)

    def __init__(self, index_dir: Path, word: str, count: int = 60,
                 to: str = "alice@example.com"):
        self.index_dir, self.word, self.count, self.to = index_dir, word, count, to
        self.added: list[str] = []

    def __call__(self, store: Store) -> None:
        for n in range(self.count):
            days = (-30 - n, 10_000 + n, 100 + n / 7)[n % 3]
            self.added.append(store.put(bulk_mail(next(self.numbers), days, self.to,
                                                  self.word), source="smtp"))
        index_now(store, self.index_dir)


def delete_mail_meanwhile(index_dir: Path, doomed: list[str]) -> Callable[[Store], None]:
    """A change deleting `doomed` (digests) from the store and the index, as retention
    does."""
    def change(store: Store) -> None:
        assert len(store.delete(doomed)) == len(doomed)
        index_now(store, index_dir)
    return change
