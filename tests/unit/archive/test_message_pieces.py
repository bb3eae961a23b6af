"""A large stored message goes to an extraction worker piece by piece (Store.pieces,
extract._send_job), decompressed as the pipe takes it: the indexer never holds it whole.
A 94 MB message's import peaked with the indexer's decompressed copy (94 MB) beside the
worker's; the worker reads the same frame as before.

1. Store.pieces gives get()'s bytes, its size first, for every size around a piece's; its
   read transaction ends when it is closed; a frame without its size, or one that gives
   other than its size (a truncated frame decompresses to less without an error), is
   CorruptMessage; the compressed bytes read through are let go from the process's
   memory as they are read.
2. The pool gives for pieces what it gives for bytes (messages with attachments, large
   bodies, a message too big for the worker's memory limit), holds at most a few pieces of
   a 24 MiB message, and after a frame that breaks part way through it restarts the
   worker (left in the middle of a frame) and reads the next message right.
3. The indexer reads a large message as pieces: a 24 MiB message is indexed and found
   while the indexing process allocates far less than it.
"""
from __future__ import annotations

import hashlib
import os
import tracemalloc

import pytest
import zstandard

from services.archive import mapped, store as store_module
from services.archive.extract import ExtractionPool
from services.archive.indexer import Indexer
from services.archive.search import search
from services.archive.store import PIECE_BYTES, CorruptMessage, NotFound, Store
from tests.unit.archive.test_extract import CAP, mail, pdf_with_text

MiB = 1024 * 1024
SMALL_PIECE = 4096


@pytest.fixture
def store(tmp_path):
    opened = Store(tmp_path / "store", map_size=1 << 30)
    yield opened
    opened.close()


def text_message(size: int, first_word: str = "zebrafinch") -> bytes:
    """A message of about `size` bytes: one 8-bit text body starting with `first_word`."""
    head = (f"From: a@example.org\r\nTo: b@example.com\r\nSubject: big {size}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
            f"\r\n{first_word} ").encode()
    line = "Grüße aus Köln, Wörter über Wörter\r\n".encode()
    return head + line * max(0, (size - len(head)) // len(line))


def active_readers(store: Store) -> int:
    """Read transactions open on the store now (LMDB's reader table: ended ones show '-')."""
    rows = store.env.readers().splitlines()[1:]
    return sum(1 for row in rows if row.split() and row.split()[-1] != "-")


def put_raw(store: Store, digest: str, compressed: bytes) -> None:
    """Replace a stored message's compressed bytes (a damaged store)."""
    with store.env.begin(write=True) as txn:
        txn.put(store_module._key(digest), compressed, db=store.db["raw"])


# --- 1. Store.pieces ----------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, SMALL_PIECE - 1, SMALL_PIECE, SMALL_PIECE + 1,
                                  3 * SMALL_PIECE + 7, 200_000])
def test_pieces_give_the_stored_bytes_and_their_size(store, size):
    raw = text_message(size)
    digest = store.put(raw)
    with store.pieces(digest, piece_bytes=SMALL_PIECE) as pieces:
        assert pieces.size == len(raw)
        taken = list(pieces)
    assert b"".join(taken) == raw == store.get(digest)
    assert all(len(piece) <= SMALL_PIECE for piece in taken)


def test_the_read_transaction_lasts_until_closed(store):
    digest = store.put(text_message(50_000))
    assert active_readers(store) == 0
    pieces = store.pieces(digest, piece_bytes=SMALL_PIECE)
    assert active_readers(store) == 1
    next(iter(pieces))
    pieces.close()
    assert active_readers(store) == 0
    pieces.close()  # twice is harmless


def test_an_unknown_digest_is_not_found_and_holds_no_transaction(store):
    with pytest.raises(NotFound):
        store.pieces("ab" * 32)
    assert active_readers(store) == 0


def test_a_frame_without_its_size_is_corrupt(store):
    raw = text_message(20_000)
    digest = store.put(raw)
    put_raw(store, digest, zstandard.ZstdCompressor(write_content_size=False).compress(raw))
    with pytest.raises(CorruptMessage, match="does not say its size"):
        store.pieces(digest)
    assert active_readers(store) == 0


def test_a_truncated_frame_is_corrupt_not_a_shorter_message(store):
    raw = text_message(400_000)
    digest = store.put(raw)
    compressed = zstandard.ZstdCompressor().compress(raw)
    put_raw(store, digest, compressed[:len(compressed) // 2])
    with store.pieces(digest, piece_bytes=SMALL_PIECE) as pieces:
        with pytest.raises(CorruptMessage, match=f"its frame says {len(raw)}"):
            b"".join(pieces)
    assert active_readers(store) == 0


# --- 2. the pool --------------------------------------------------------------------------


def reader_of(store: Store, digest: str, piece_bytes: int = SMALL_PIECE):
    return lambda: store.pieces(digest, piece_bytes=piece_bytes)


def test_the_pool_reads_pieces_as_it_reads_bytes(store):
    raws = [mail().as_bytes(),
            mail(body="Quarterly figures attached.",
                 attachments=[(pdf_with_text("revenue forecast"), "application/pdf", "q.pdf")]
                 ).as_bytes(),
            text_message(3 * MiB), text_message(PIECE_BYTES + 1),
            mail(body="x", attachments=[(bytes(range(256)) * 8192, "application/octet-stream",
                                         "blob.bin")]).as_bytes()]
    digests = [store.put(raw) for raw in raws]
    with ExtractionPool(CAP, workers=2) as pool:
        from_bytes = pool.extract_many(raws)
        from_pieces = pool.extract_many([reader_of(store, digest) for digest in digests],
                                        digests=digests)
        assert pool.worker_restarts == 0
    assert from_pieces == from_bytes
    assert "zebrafinch" in from_pieces[2].body


def test_the_pool_holds_pieces_of_a_large_message_never_all_of_it(store):
    raw = text_message(24 * MiB)
    digest = store.put(raw)
    del raw
    with ExtractionPool(CAP, workers=1) as pool:
        peaks = {}
        for name, source in (("pieces", reader_of(store, digest, PIECE_BYTES)),
                             ("whole", lambda: store.get(digest))):
            tracemalloc.start()
            try:
                (extracted,) = pool.extract_many([source], digests=[digest])
                peaks[name] = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert extracted.body.startswith("zebrafinch")
    assert peaks["whole"] >= 24 * MiB  # what the test tells apart
    assert peaks["pieces"] < 4 * MiB, peaks


def test_a_frame_broken_part_way_restarts_the_worker_and_the_next_message_is_read(store):
    raw = text_message(3 * MiB)
    broken = store.put(raw)
    compressed = zstandard.ZstdCompressor().compress(raw)
    put_raw(store, broken, compressed[:len(compressed) // 2])
    good = mail(body="After the broken one.").as_bytes()
    good_digest = store.put(good)
    with ExtractionPool(CAP, workers=1) as pool:
        with pytest.raises(CorruptMessage):
            pool.extract_many([reader_of(store, broken, 64 * 1024)], digests=[broken])
        assert pool.worker_restarts == 1
        (after,) = pool.extract_many([reader_of(store, good_digest)], digests=[good_digest])
        assert pool.extract_many([good]) == [after]
    assert "After the broken one." in after.body
    assert active_readers(store) == 0


def test_a_message_too_big_for_the_worker_gets_its_headers_from_pieces_too(store):
    """As test_extract's 64 MB message: the worker gives up reading it and so does its
    fallback; the headers come from the pieces joined (the header block may be long)."""
    line = b"sixty-four megabytes of text, line after line\n"
    big = (b"Subject: big\nFrom: a@example.org\nTo: Bob <bob@example.com>\n\n"
           + line * (64 * MiB // len(line)))
    digest = store.put(big)
    assert digest == hashlib.sha256(big).hexdigest()
    with ExtractionPool(CAP, workers=1, memory_mb=128) as pool:
        (from_bytes,) = pool.extract_many([big])
    with ExtractionPool(CAP, workers=1, memory_mb=128) as pool:
        (from_pieces,) = pool.extract_many([reader_of(store, digest, PIECE_BYTES)],
                                           digests=[digest])
    assert from_pieces == from_bytes
    assert from_pieces.failed.endswith("the fallback ran out of memory (limit 128 MB) too")
    assert from_pieces.summary.header_addresses == {"from": ["a@example.org"],
                                                    "to": ["bob@example.com"]}
    assert active_readers(store) == 0


# --- 3. the indexer -----------------------------------------------------------------------


def test_the_indexer_reads_a_large_message_in_pieces(store, tmp_path):
    digest = store.put(text_message(24 * MiB, first_word="kingfisher"))
    store.put(mail(body="A small one beside it.").as_bytes())
    with ExtractionPool(CAP, workers=1) as pool, \
            Indexer(store, tmp_path / "index", pool) as indexer:
        tracemalloc.start()
        try:
            indexer.catch_up()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 12 * MiB, peak  # store.get's copy alone was 24 MiB
    results = search(tmp_path / "index", "kingfisher")
    assert [hit.digest for hit in results.hits] == [digest]
    assert active_readers(store) == 0


def test_the_compressed_bytes_read_through_do_not_stay_mapped_in(store):
    """The compressed bytes are read from the store's map: a 100 MiB message of random data
    mapped 76 MB into the indexer while it was sent. They are let go as they are read."""
    raw = text_message(1000) + os.urandom(16 * MiB)
    digest = store.put(raw)
    store.release_pages()
    start, grown = mapped.resident_file_bytes(), 0
    with store.pieces(digest) as pieces:
        grown = mapped.resident_file_bytes() - start  # (py-lmdb's get touches all of it)
        for _ in pieces:
            grown = max(grown, mapped.resident_file_bytes() - start)
    assert 0 < grown < store_module.MAPPED_BYTES + 2 * PIECE_BYTES, grown
