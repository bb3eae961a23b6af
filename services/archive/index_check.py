"""Does the index agree with the store? For `archiver verify`.

Every stored message has one document (a message the indexer could not read whole still
has one, flagged has:extraction-failure), named by its digest term (index.id_term: "Q" and
the SHA-256 in hex); every document's message is stored. That holds only once the index
has taken in the whole arrival log: before, mail just stored has no document yet and mail
just deleted still has one. So the check is made only when the index read is at the end
of the log the store snapshot has, and otherwise says how far behind it is.

Both sides are sorted runs of digests (the index's digest terms in term order, the store's
keys in byte order, which is their hex's order too), walked side by side: memory stays
bounded, whatever the archive's size.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import xapian

from services.archive.index import BOOLEAN_PREFIXES, CURSOR_KEY
from services.archive.index_reader import read_index
from services.archive.store import Store

SHOWN = 100  # digests of each kind a check lists, at most (all are counted)
DIGEST_PREFIX = BOOLEAN_PREFIXES["digest"]


@dataclass
class IndexCheck:
    """`checked`: whether the index was at the store's arrival-log end (`pending`: how many
    entries behind it was, when not). `without_message`: digests of documents whose
    message is not stored (searches find them; show and export cannot), the first SHOWN
    of `without_message_count`; `not_indexed`: digests of stored messages without a
    document, the first SHOWN of `not_indexed_count`."""
    checked: bool = False
    pending: int = 0
    without_message: list[str] = field(default_factory=list)
    without_message_count: int = 0
    not_indexed: list[str] = field(default_factory=list)
    not_indexed_count: int = 0

    def as_json(self) -> dict:
        return {"checked": self.checked, "pending": self.pending,
                "documents_without_message": self.without_message,
                "documents_without_message_count": self.without_message_count,
                "not_indexed": self.not_indexed, "not_indexed_count": self.not_indexed_count}

    @property
    def mismatches(self) -> int:
        return self.without_message_count + self.not_indexed_count


def check(store: Store, index_dir: Path) -> IndexCheck:
    """How the index at `index_dir` (the live index link) and `store` disagree, as above.
    An archive with no index yet counts as one at position 0. Raises
    xapian.DatabaseModifiedError only when the indexer keeps overtaking the walk past
    index_reader.PATIENCE_SECONDS (it then has new mail: run verify again later)."""
    return read_index(index_dir, lambda database: _check(store, database),
                      absent=_unindexed(store))


def _unindexed(store: Store) -> IndexCheck:
    with store.digests_in_order() as (end, _):
        return IndexCheck(pending=end) if end else IndexCheck(checked=True)


def _check(store: Store, database: xapian.Database) -> IndexCheck:
    """One attempt on one revision (read_consistently starts it again on a newer one)."""
    position = int(database.get_metadata(CURSOR_KEY) or 0)
    with store.digests_in_order() as (end, stored):
        if position != end:
            return IndexCheck(pending=max(0, end - position))
        found = IndexCheck(checked=True)
        for digest, in_store in _differences(_releasing(store, stored), _indexed(database)):
            if in_store:
                found.not_indexed_count += 1
                _keep(found.not_indexed, digest.hex())
            else:
                found.without_message_count += 1
                _keep(found.without_message, digest.hex())
        return found


def _releasing(store: Store, digests: Iterator[bytes], every: int = 1024) -> Iterator[bytes]:
    """`digests`, letting go of the store's pages read for them now and then (a walk of
    the whole store would else keep them all resident: Store.release_pages_if_grown)."""
    for count, digest in enumerate(digests):
        if count % every == 0:
            store.release_pages_if_grown()
        yield digest


def _indexed(database: xapian.Database) -> Iterator[bytes]:
    """The digests of the index's documents, ascending, as 32 bytes (as the store's keys)."""
    start = len(DIGEST_PREFIX)
    for item in database.allterms(DIGEST_PREFIX):
        yield bytes.fromhex(item.term[start:].decode("ascii"))


def _differences(stored: Iterator[bytes], indexed: Iterator[bytes]
                 ) -> Iterator[tuple[bytes, bool]]:
    """(digest, whether it is the stored side's) for each digest of one of two ascending
    runs that the other lacks."""
    a, b = next(stored, None), next(indexed, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a < b):
            yield a, True
            a = next(stored, None)
        elif a is None or b < a:
            yield b, False
            b = next(indexed, None)
        else:
            a, b = next(stored, None), next(indexed, None)


def _keep(shown: list[str], digest: str) -> None:
    if len(shown) < SHOWN:
        shown.append(digest)
