"""The following indexer (the service's) commits a backlog as import does, without waiting
out FOLLOW_COMMIT_SECONDS between commits, and spaces its commits only while it follows
a trickle of intake: a mirror peer's copies after a cut link are indexed at import's pace,
and searches during live intake are still not overtaken again and again."""
import types

import pytest

from services.archive import indexer as indexer_module
from services.archive.archive import Archive
from services.archive.indexer import BATCH_MESSAGES, Indexer
from services.archive.search import search
from services.archive.store import Envelope

pytestmark = pytest.mark.integration


def copies(start: int, count: int) -> list[tuple]:
    """Mirror copies (put_many items) of short messages."""
    return [(f"From: peer@example.org\r\nTo: audit@example.net\r\nSubject: copy {n}\r\n"
             f"Message-ID: <copy{n}@example.org>\r\n\r\nbacklogged words {n}\r\n".encode(),
             Envelope(None, ["audit@example.net"]), "mirror:peer", "peer-node")
            for n in range(start, start + count)]


def test_a_backlog_is_committed_without_waiting_and_a_trickle_still_waits(tmp_path,
                                                                          monkeypatch):
    waits = []  # the waits the indexer asks for before its commits, in seconds
    monkeypatch.setattr(indexer_module, "time", types.SimpleNamespace(
        monotonic=indexer_module.time.monotonic, sleep=waits.append))
    # A spacing no commit could outlast: any commit that waits for it asks for a wait.
    monkeypatch.setattr(indexer_module, "FOLLOW_COMMIT_SECONDS", 3600.0)
    archive = Archive(tmp_path)
    backlog = 2 * BATCH_MESSAGES  # two full batches
    archive.store.put_many(copies(0, backlog))
    with archive.extraction_pool() as pool:
        indexer = Indexer(archive.store, archive.index_dir(), pool)
        rounds = iter([False, True])
        indexer.follow(stop=lambda: next(rounds))  # one round of following: the backlog
        assert search(archive.index_dir(), "backlogged").total == backlog
        assert [wait for wait in waits if wait > 0] == []
        archive.store.put_many(copies(backlog, 3))  # then a trickle
        rounds = iter([False, True])
        indexer.follow(stop=lambda: next(rounds))
        assert search(archive.index_dir(), "backlogged").total == backlog + 3
        assert len([wait for wait in waits if wait > 3000]) == 1
        indexer.close()
    archive.close()
