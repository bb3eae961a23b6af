"""The single Xapian writer: follows the store's arrival log and indexes in batches, each
shard of the index (services.archive.shards) written by a thread of its own.

The arrival-log position is Xapian metadata committed in the same commit as the batch, so a
SIGKILL at any point leaves index and position agreeing: on restart the writer redoes
exactly the batch that was not committed. Documents are replaced by their digest term, so a
message that arrives again (merged recipients) still has one document.

No message stops the writer: a document that cannot be built, or that Xapian refuses, is
indexed with less of the message (services.archive.index.document_at) and flagged
has:extraction-failure with the reason, which the store's metadata keeps too. Only room
does: a commit is begun only where it fits on the index's disk, and on a low disk the
writer waits for room rather than index any message without its text (Indexer._commit).
"""
from __future__ import annotations

import fcntl
import logging
import math
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import xapian

from firmware.errors import ArchiverError

from services.archive import heap, metadata, readings, shards, unsynced
from services.archive.extract import ExtractionPool
from services.archive.index import (CURSOR_KEY, DOCUMENT_LEVELS, SCHEMA_KEY, SCHEMA_VERSION,
                                    document_at, id_term, number_terms, schema_version)
from services.archive.index_reader import read_index
from services.archive.space import FULL_BELOW_BYTES, OutOfSpace, size_in_words
from services.archive.store import PIECE_BYTES, MessagePieces, NotFound, Store

log = logging.getLogger("archiver")
BATCH_MESSAGES = 500
# The memory of the batches in flight, by default (a model's is its indexing.memory_mb):
# half of it for the messages the extraction workers read at once (services.archive.
# extract.budget_for_model); a batch is at most an eighth of it in message bytes (its
# documents, about as big on the bench corpus, are held until written, and the next
# batch's while this one is written; the messages themselves are read from the store only
# as a worker takes each, never a batch of them at once); and a commit whenever the text added since
# the last one reaches MEMORY_PER_TEXT_BYTE-th of it (Xapian keeps uncommitted changes in
# memory: measured 22 bytes per byte of text on the bench corpus).
# Larger commits are not cheaper: each add costs Xapian more the more is uncommitted (0.41
# ms a plain message in commits of 25, 0.61 in commits of 110 to 440), as much as a commit
# saves. Writing the shards alone (two threads; the 450's 48 MiB, so 768 KiB of text a
# commit at 64; bench corpus without attachments), 48 took 3-7% more CPU than 64, 32 took
# 4-24% more, 16 24% more, 128 4% more; with attachments 32 to 96 were alike; whole
# imports at 32 were no cheaper and held 5-12 MB more (Pss). That holds up to some 20,000
# messages; past it a commit costs more the larger the index (it rewrites the last chunk of
# each posting list it touches, spread over more blocks), so larger commits pay: importing
# 80,000 plain messages at 48 MiB took 176 s at 64, 153 s at 48, 147 s at 32 (tree Pss 207,
# 208, 218 MB); at 5,000 and 20,000 all three were alike. Hence the 450's 64 MiB.
MEMORY_BYTES = 64 * 1024 * 1024
MEMORY_PER_TEXT_BYTE = 64
# ... or whenever the documents added since reach a MEMORY_PER_TERM-th of it in terms (each
# distinct term of each document: Xapian's changes cost some 400 bytes for a term no other
# document has). Header fields count no text, and CJK makes about two terms every 3 bytes:
# 60 messages of 60 KB Subjects of distinct words were one commit, an import of 909 MB
# (review rv60). The bench corpus makes some 110,000 terms a MiB of text, so its commits
# are bounded by text as before (131,072 terms on the 450; at 384, 20 messages of 256 KB
# To fields made 253 MB, at 512 227 MB).
MEMORY_PER_TERM = 512
BATCH_SHARE = 8
# What is read is copied out of the store's map; the pages stay mapped in, some 300 KB
# per message on the bench corpus (the kernel maps 64 KB around each page LMDB reads: two
# B-tree leaves and the value's own pages; MADV_RANDOM does not change it), until the
# store lets go of them (Store.release_pages_if_grown, after every read: at most
# store.MAPPED_BYTES and one message then).
# While following live intake, commits are at least this far apart (a batch waits out the
# rest before its commit; what arrives meanwhile goes into the next, larger batch). A
# search open on one revision fails once two more are committed (services.archive.
# index_reader reads it again): so any search shorter than this is never overtaken, where
# a commit per message let the indexer overtake a slow one again and again.
# A full batch (the log held more than BATCH_MESSAGES or batch_bytes: a backlog, such as
# a mirror peer's copies after a cut link) is committed without waiting, as import does:
# its commits are as large as memory allows already, so waiting would not make them fewer,
# only later (measured: the wait was a quarter of a 2,000-message catch-up on 2 cores).
FOLLOW_COMMIT_SECONDS = 0.5
# While nothing arrives, the follower looks again after FOLLOW_IDLE_SECONDS, then twice as
# long each time up to FOLLOW_IDLE_MOST_SECONDS: an idle appliance looks twice a second, not
# five times (each look costs some 40 ms of CPU on an emulated 2-core VM), and a change
# after a quiet spell (a message, a deletion) reaches search at most 0.3 s later than it
# did (1 s let a search right after a retention run still list the deleted message).
FOLLOW_IDLE_SECONDS = 0.2
FOLLOW_IDLE_MOST_SECONDS = 0.5
# A commit is begun only with room for what it may write on the index's disk, because
# Xapian 1.4 cannot be let meet a full disk there: the value streams are written by a
# destructor (Glass::ValueUpdater, in GlassDatabase::set_revision_number), so the
# DatabaseError of a write refused for ENOSPC ends the whole process (std::terminate)
# instead of being raised. What a commit takes, measured (statvfs before and after each
# commit of an import into a new index): up to 22 bytes per byte of the serialised
# documents (29.4 MB for 1.32 MB, the bench corpus with attachments), 2.9 for documents of
# little text; deleting a document rewrites a block of postings per term, at most (10.2 KB
# per document in a commit of 1,000 deletions, whose blocks are shared; 1 MB and more for
# one alone). It is an estimate, not a bound (a first
# commit after a compaction can take more): what an abort costs is a restart of the
# indexer, by systemd or `archiver run`, from the last commit.
COMMIT_DISK_PER_DOCUMENT_BYTE = 24
COMMIT_DISK_PER_DOCUMENT = 8192
COMMIT_DISK_PER_TERM_DELETED = 8192  # a Xapian block
STORED_METADATA_LEVEL = DOCUMENT_LEVELS.index("stored metadata only")


class IndexerBusy(ArchiverError):
    exit_code = 3


class NoRoomToCommit(OutOfSpace):
    """The index's disk has less room than the next commit may take (COMMIT_DISK_PER_...),
    or is low and has no room for the message's whole document; nothing of the commit was
    written. `need_bytes`: the free bytes at which it would be begun."""

    def __init__(self, path: Path, need_bytes: int, free_bytes: int):
        super().__init__(f"the index's disk has {size_in_words(free_bytes)} free; its next "
                         f"commit may take up to {size_in_words(need_bytes)} ({path})")
        self.path, self.need_bytes = path, need_bytes

    def fits_now(self) -> bool:
        """Whether the commit would be begun now (the disk measured again)."""
        try:
            return _free_bytes(self.path) >= self.need_bytes
        except OSError:
            return False


class _Refused(Exception):
    """Xapian refused a document, and with it every change of its shard not yet committed."""

    def __init__(self, digest: str, level: int, reason: str):
        super().__init__(reason)
        self.digest, self.level, self.reason = digest, level, reason


class _RefusedMany(Exception):
    """Shards refused documents (_Refused each), at once."""

    def __init__(self, refusals: list[_Refused]):
        super().__init__(", ".join(refusal.reason for refusal in refusals))
        self.refusals = refusals


@dataclass
class IndexStatus:
    stored: int
    indexed: int
    pending: int
    position: int
    log_end: int


class IndexLock:
    """Only one process writes the index: the indexer service, or import/reindex on the CLI."""

    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / "indexer.lock"
        self._fd: int | None = None

    def acquire(self, wait: bool) -> bool:
        """Take the lock: True; False when another process holds it (and not `wait`).
        Raises OSError when its file cannot be made (ENOSPC on a full disk)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            return False
        return True

    @property
    def held(self) -> bool:
        return self._fd is not None

    @property
    def fd(self) -> int | None:
        """The open file that holds the lock (flock), None when not held."""
        return self._fd

    def adopt(self, fd: int) -> None:
        """Hold the lock through `fd`, an open file of it that another process holding the
        lock handed over (the flock belongs to the open file, not to a process)."""
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass
class Batch:
    """One slice of the arrival log on its way into the index."""
    entries: list[tuple[int, str]]                  # (seq, digest) as logged
    full: bool = False  # cut at BATCH_MESSAGES or batch_bytes: a backlog, not a trickle
    # digest, meta, and the raw bytes when they were read already (else None: the
    # extraction pool reads them from the store when a worker takes the message)
    present: list[tuple[str, dict, bytes | None]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # deleted since they arrived
    extracted: list = field(default_factory=list)
    # digest -> header metadata the current code reads differently from the stored one
    header_changes: dict[str, dict] = field(default_factory=dict)
    # digest -> what reading it gave before, as the store kept it (services.archive.readings)
    readings: dict[str, bytes] = field(default_factory=dict)
    # What the index held of its digests before any of its writes, once looked up
    # (Indexer._held; None: not yet): valid until the batch is written, and a batch, a
    # commit part (_parts), is written once.
    held: _Held | None = None

    @property
    def last_seq(self) -> int:
        return self.entries[-1][0]


# Per shard: the id term of each of a batch's digests that has documents there -> those
# documents, (docid, their count of terms), as found by Indexer._documents_of.
_Held = list[dict[str, list[tuple[int, int]]]]


@dataclass
class _Progress:
    """What committed batches tell the store (Store.record_indexed's arguments)."""
    seq: int | None                                  # None: not the live index
    names: dict[str, list[str]]                      # digest -> attachment names
    failures: dict[str, list[str]]                   # digest -> what could not be read
    header_changes: dict[str, dict]                  # digest -> header metadata read anew
    readings: dict[str, bytes]                       # digest -> what reading it gave

    def then(self, later: "_Progress") -> "_Progress":
        """This progress and a later batch's, as one; the later one wins per digest."""
        return _Progress(later.seq, {**self.names, **later.names},
                         {**self.failures, **later.failures},
                         {**self.header_changes, **later.header_changes},
                         {**self.readings, **later.readings})


class Indexer:
    """Writes one index. `live`: it is the index searches use, so its progress is the
    store's "indexer" cursor (intake's backlog); an index being rebuilt beside it is not.

    The index is in shards (services.archive.shards), written at once, each by one thread
    at a time, so that writing keeps up with the extraction workers; a new index gets as many shards
    as the pool has workers. A commit commits every shard but the first, then the first
    with the arrival-log position: the position only moves once every shard holds the
    batch; in a backlog every shard at once, the first with the position of the commit
    before (_commit_shards). A crash between leaves shards ahead of the position, and the
    batch written again comes to the same (documents replaced by number, deleted by
    digest term)."""

    def __init__(self, store: Store, index_dir: Path, pool: ExtractionPool, live: bool = True,
                 memory_bytes: int = MEMORY_BYTES, synced: bool = True,
                 shard_count: int | None = None, low_below_bytes: int = 0):
        """`memory_bytes`: what the batches in flight may hold (a model's indexing.memory_mb).
        `synced=False`: commits skip fsync (an index nobody searches yet: a rebuild); the
        index carries services.archive.unsynced's mark until close() settles it.
        Header metadata an older reading wrote is derived anew from the message's bytes as
        it is indexed (services.archive.metadata); metadata of the current reading is what
        reading the bytes again would give, so it is not read again (nor by a reindex).
        `shard_count`: the shards of a new index (default: the pool's workers); an existing
        index keeps its own. `low_below_bytes`: free bytes below which the index's disk is
        low (the model's intake.min_free_disk_mb); a message whose commit does not fit is
        indexed without its text only on a disk that is not low (_without_text)."""
        self.store, self.index_dir, self.pool, self.live = store, Path(index_dir), pool, live
        self.low_below_bytes = low_below_bytes
        self.batch_bytes = memory_bytes // BATCH_SHARE
        self.commit_text_bytes = memory_bytes // MEMORY_PER_TEXT_BYTE
        self.commit_terms = memory_bytes // MEMORY_PER_TERM
        self.synced = synced
        self._flags = xapian.DB_CREATE_OR_OPEN | (0 if synced else xapian.DB_NO_SYNC)
        if not synced:
            self.index_dir.mkdir(parents=True, exist_ok=True)
            unsynced.mark(self.index_dir)  # on disk before the first commit that is not
        self.shards = shards.open_shards(self.index_dir, self._flags) or shards.create(
            self.index_dir, shard_count or len(pool.worker_pids), self._flags)
        if schema_version(self.shards[0]) is None:  # a new, empty index: this code's schema
            self.shards[0].set_metadata(SCHEMA_KEY, str(SCHEMA_VERSION))
            self.shards[0].commit()
        # One thread a shard writes it (a single shard: the calling thread).
        self._writers = ThreadPoolExecutor(len(self.shards), thread_name_prefix="shard") \
            if len(self.shards) > 1 else None
        # What the index committed and the store has yet to record, merged over batches.
        self._unrecorded: _Progress | None = None
        self._committed_at = 0.0  # time.monotonic() of the last commit
        # The end of a commit every shard holds, which shard 0's position does not say yet.
        self._lagging: int | None = None

    @property
    def database(self) -> xapian.WritableDatabase | None:
        """The first shard: the index's metadata (schema, position) and revision."""
        return self.shards[0] if self.shards else None

    def document_count(self) -> int:
        """Documents in the index, over every shard (committed or not)."""
        return sum(shard.get_doccount() for shard in self.shards)

    def position(self) -> int:
        value = self.shards[0].get_metadata(CURSOR_KEY)
        return int(value) if value else 0

    def index_batch(self) -> int:
        """Index the next batch of the arrival log; return how many log entries it took."""
        batch = self._read(self.position())
        if batch.entries:
            self._write(self._extract(batch))
        return len(batch.entries)

    def catch_up(self, progress: Callable[[int], None] | None = None,
                 between: Callable[[], bool] | None = None, spacing: float = 0.0) -> int:
        """Index everything logged so far. The next batch is read and extracted (in the
        worker processes) while this one is written, so both cores stay busy.
        `between()` runs between batches, while the extraction pool is idle; when it
        returns True, catching up stops after the batch at hand. `spacing`: the least
        seconds between two commits (FOLLOW_COMMIT_SECONDS while following) of a batch
        that is not full; a full one (a backlog) is committed without waiting.
        `progress(n)` runs after each commit, with the n log entries it committed (a
        batch's carried rest counts with the commit that takes it). Returns how many log
        entries were indexed."""
        done, carried = 0, None
        with ThreadPoolExecutor(1, thread_name_prefix="prefetch") as prefetch:
            upcoming = prefetch.submit(self._read_and_extract, self.position())
            while (batch := upcoming.result()).entries:
                stopping = between is not None and between()
                if not stopping:
                    upcoming = prefetch.submit(self._read_and_extract, batch.last_seq)
                # Only what this batch brought may be carried: a rest carried again and
                # again (batches of little text) would grow without bound.
                carry_from = batch.entries[0][0] if batch.full and not stopping else None
                carried = self._write(_joined(carried, batch), 0.0 if batch.full else spacing,
                                      carry_from, committed=progress)
                done += len(batch.entries)
                if stopping:
                    break
            if carried is not None:  # the log ended after a full batch
                self._write(carried, committed=progress)
        self._commit_lagging_position()  # when the log ended with a full batch's commit
        return done

    def follow(self, stop: Callable[[], bool], idle_sleep: float = FOLLOW_IDLE_SECONDS,
               on_batch: Callable[[int], None] | None = None,
               caught_up: Callable[[], object] | None = None,
               sleep: Callable[[float], object] = time.sleep) -> None:
        """Index what arrives until stop() is true: a trickle in commits at least
        FOLLOW_COMMIT_SECONDS apart, a backlog (full batches) as import does. While the
        log brings nothing, it is looked at again after `idle_sleep` seconds, then after
        twice as long each time, up to FOLLOW_IDLE_MOST_SECONDS (never less than
        `idle_sleep`); `sleep(seconds)` waits.
        `caught_up()` runs each time the indexer has caught up with the arrival log (never
        between the batches of a backlog), with nothing uncommitted (the service's
        compaction: services.archive.live_compaction)."""
        idle = idle_sleep
        while not stop():
            count = self.catch_up(on_batch, spacing=FOLLOW_COMMIT_SECONDS)
            if caught_up is not None:
                caught_up()
            if count:
                idle = idle_sleep
            else:
                sleep(idle)
                idle = max(idle_sleep, min(2 * idle, FOLLOW_IDLE_MOST_SECONDS))

    def _read_and_extract(self, after_seq: int) -> Batch:
        return self._extract(self._read(after_seq))

    def _read(self, after_seq: int) -> Batch:
        batch, total = Batch([]), 0
        logged = self.store.log_after("arrival", after_seq, BATCH_MESSAGES)
        batch.full = len(logged) == BATCH_MESSAGES
        seen: set[str] = set()  # present or missing: a set, where a scan of the batch per
        # entry cost 500,000 steps a 2,000 (some 50 ms under the GIL the pool answers by)
        for seq, digest in logged:
            batch.entries.append((seq, digest))
            if digest in seen:
                continue  # arrived twice in one batch: index it once
            seen.add(digest)
            try:
                meta = self.store.meta(digest)
                raw = None if metadata.is_current(meta) else self.store.get(digest)
            except NotFound:
                batch.missing.append(digest)
                continue
            if raw is not None:  # old archives: their metadata brought up to this reading
                changes = metadata.changes(meta, raw)
                if changes:
                    batch.header_changes[digest] = changes
                    meta = {**meta, **changes}
            batch.present.append((digest, meta, raw))
            if (reading := self.store.reading(digest)) and readings.is_current(reading):
                batch.readings[digest] = reading
            total += meta["size"]
            if total >= self.batch_bytes:
                batch.full = True
                break
        self.store.release_pages()
        return batch

    def _extract(self, batch: Batch) -> Batch:
        """Extract the batch's messages (the pool reads each from the store as a worker
        takes it); one deleted meanwhile joins the batch's missing ones."""
        extracted = self.pool.extract_many(
            [raw if raw is not None else self._reader(digest, meta["size"])
             for digest, meta, raw in batch.present],
            [meta for _, meta, _ in batch.present], [digest for digest, _, _ in batch.present],
            [batch.readings.get(digest) for digest, _, _ in batch.present])
        batch.readings = {}  # read back into documents: no longer needed
        present = [(digest, meta, None) for digest, meta, _ in batch.present]  # read
        batch.present, batch.extracted = [], []
        for entry, content in zip(present, extracted):
            if content is None:
                batch.missing.append(entry[0])
            else:
                batch.present.append(entry)
                batch.extracted.append(content)
        self.store.release_pages()
        return batch

    def _reader(self, digest: str, size: int) -> Callable[[], bytes | MessagePieces | None]:
        """A message's bytes, read from the store when called; None once it is deleted. One
        of more than a piece is given as its pieces (Store.pieces), decompressed while the
        pool sends them to a worker: the indexer then never holds a large message whole."""
        def read() -> bytes | MessagePieces | None:
            try:
                return self.store.pieces(digest) if size > PIECE_BYTES else self.store.get(digest)
            except NotFound:
                return None
        return read

    def _write(self, batch: Batch, spacing: float = 0.0, carry_from: int | None = None,
               committed: Callable[[int], None] | None = None) -> Batch | None:
        """Write the batch in commits of at most commit_text_bytes of text each, at least
        `spacing` seconds apart. With `carry_from` (a backlog: the next batch is on its
        way), its last run of messages, when it has less text than that and all its log
        entries are at `carry_from` or later, is not written but returned, for the caller
        to write with the next batch (_joined): a commit costs much the same for 20
        messages as for 200, and one batch in two ended in such a run. Nothing of it is
        in the index then, so Xapian's changes stay as bounded, and what is held is at
        most one batch. `committed(n)` runs after each commit, with its n log entries
        (before the store is told, which may fail on a full disk: the commit stands)."""
        parts = list(_parts(batch, self.commit_text_bytes, terms=self.commit_terms))
        rest = parts.pop() if carry_from is not None and parts[-1].entries[0][0] >= carry_from \
            and _text_size(parts[-1]) < self.commit_text_bytes \
            and _terms(parts[-1]) < self.commit_terms else None
        pending = deque(parts)
        while pending:
            part = pending.popleft()
            if len(part.entries) > 1 and self._room_short_by(part) > 0:
                # Near a full disk: in smaller commits, each begun only where it fits.
                pending.extendleft(reversed(list(
                    _parts(part, math.inf, (len(part.entries) + 1) // 2))))
                continue
            self._commit(part, spacing, carry_from is not None)
            heap.trim()  # each thread's malloc arena keeps what a commit freed (10 CJK
            # messages: 204 MB in main untrimmed, 133 trimmed after each commit)
            try:
                if committed is not None:
                    committed(len(part.entries))
            finally:  # told even when showing progress fails (a full disk's stderr)
                self.record_progress()
        heap.trim()  # a long run's memory would else creep up with what batches left free
        return rest

    def _commit(self, batch: Batch, spacing: float = 0.0, lag: bool = False) -> None:
        """Replace each document by its store number (any other of its digest dropped), then
        commit the batch and its log position (_commit_shards; with `lag`, the position
        of the commit before: a backlog's next commit follows). When Xapian refuses a document it
        drops the whole uncommitted batch, so the batch is written again, that message with
        less. Begun only with room for it on the index's disk (COMMIT_DISK_PER_DOCUMENT_BYTE;
        _write cuts a batch that does not fit into smaller ones): a message that does not fit
        alone on a disk that is not low is indexed without its text (DOCUMENT_LEVELS'
        stored metadata, flagged), so that one long message cannot hold up the others;
        NoRoomToCommit, nothing written, on a low disk or when even that does not fit."""
        refused: dict[str, tuple[int, str]] = {}  # digest -> (level, why)
        if (short := self._room_short_by(batch)) > 0:
            refused = self._without_text(batch, short)
        held = self._held(batch)
        while True:
            try:
                written = self._add_all(batch, refused, held)
                break
            except _RefusedMany as refusals:  # written again on every shard: idempotent
                refused.update({refusal.digest: (refusal.level, refusal.reason)
                                for refusal in refusals.refusals})
                # A shard that refused dropped its uncommitted changes, the others kept
                # theirs (old documents deleted, the batch's own added): what each holds
                # now is what the next attempt deletes.
                held = self._documents_of(batch)
        time.sleep(max(0.0, self._committed_at + spacing - time.monotonic()))
        self._commit_shards(batch.last_seq, lag)
        self._committed_at = time.monotonic()
        names = {digest: [a.filename for a in content.attachments if a.filename]
                 for digest, content in written.items()}
        failures = {digest: content.failures for digest, content in written.items()}
        kept = {digest: content.reading for digest, content in written.items()
                if content.reading}
        progress = _Progress(batch.last_seq if self.live else None, names, failures,
                             batch.header_changes, kept)
        self._unrecorded = progress if self._unrecorded is None \
            else self._unrecorded.then(progress)

    def _commit_shards(self, last_seq: int, lag: bool) -> None:
        """Commit every shard's changes, the position moved to log entry `last_seq` once
        every shard holds them: the other shards first, then shard 0 with the position.
        With `lag` (a backlog: the commit of the next batch follows), every shard at once,
        shard 0 with the position of the commit before, which every shard holds by now:
        shard 0's commit no longer waits for the others' to end (#20), and each shard
        still commits once (a reader's revision lasts until the second commit after it).
        A crash leaves the position a commit behind: that commit is written again."""
        if lag and len(self.shards) > 1:
            if self._lagging is not None:
                self.shards[0].set_metadata(CURSOR_KEY, str(self._lagging))
            self._on_shards(range(len(self.shards)), lambda k: self.shards[k].commit())
            self._lagging = last_seq
            return
        self._on_shards(range(1, len(self.shards)), lambda k: self.shards[k].commit())
        self._commit_position(last_seq)

    def _commit_lagging_position(self) -> None:
        """Commit the position of the last commit, when shard 0 lags behind it."""
        if self._lagging is not None:
            self._commit_position(self._lagging)

    def _commit_position(self, seq: int) -> None:
        """Commit shard 0 with the position `seq`, which every shard holds the log up to."""
        self.shards[0].set_metadata(CURSOR_KEY, str(seq))
        self.shards[0].commit()
        self._lagging = None

    def _without_text(self, batch: Batch, short: int) -> dict[str, tuple[int, str]]:
        """For a batch of one message whose commit may not fit, `short` bytes short: its
        document at the stored-metadata level (digest -> (level, why)), when that fits on a
        disk that is not low; raises NoRoomToCommit otherwise. On a low disk it is the disk,
        not the message, that is short of room: every message would lose its text there
        (and a search for its words would find nothing), so indexing waits for room."""
        need = self._room_for(batch, whole=False)
        free = _free_bytes(self.index_dir)
        whole = max(need, free + short)
        if len(batch.present) != 1:
            raise NoRoomToCommit(self.index_dir, whole, free)
        enough = max(need, self.low_below_bytes)  # to go on without its text
        if free < enough:  # begun once either fits: a pause need not wait for the whole
            raise NoRoomToCommit(self.index_dir, min(whole, enough), free)
        why = (f"indexed without its text: the index's disk had {size_in_words(free)} free, "
               f"its whole document may take {size_in_words(free + short)}")
        return {batch.present[0][0]: (STORED_METADATA_LEVEL, why)}

    def _room_for(self, batch: Batch, whole: bool = True) -> int:
        """Bytes the index's disk must have free for committing `batch` (not `whole`: its
        documents without their text)."""
        documents = sum(_document_bytes(content) for content in batch.extracted) if whole else 0
        return (FULL_BELOW_BYTES + COMMIT_DISK_PER_DOCUMENT_BYTE * documents
                + COMMIT_DISK_PER_DOCUMENT * len(batch.present)
                + COMMIT_DISK_PER_TERM_DELETED * self._terms_deleted(batch))

    def _terms_deleted(self, batch: Batch) -> int:
        """Terms of the documents the batch deletes or replaces, over every shard: deleting
        a document rewrites the postings of each of its terms, once however often its
        digest is logged (stored, deleted, stored again...)."""
        terms = _id_terms(batch)
        return sum(count for documents in self._held(batch) for term in terms
                   for _, count in documents.get(term, ()))

    def _held(self, batch: Batch) -> _Held:
        """What the index holds of the batch's digests (_Held), looked up the first time
        it is asked for, before the batch is written: the room check and the writes of
        a commit part share one lookup."""
        if batch.held is None:
            batch.held = self._documents_of(batch)
        return batch.held

    def _documents_of(self, batch: Batch) -> _Held:
        """Per shard, the id term of each of the batch's digests (present or missing) that
        has documents there -> [(docid, its count of terms)], as the shard is now,
        uncommitted changes included. One look a digest a shard; a new message has none."""
        terms = set(_id_terms(batch))
        return [{term: [(posting.docid, shard.get_document(posting.docid).termlist_count())
                        for posting in shard.postlist(term)]
                 for term in terms if shard.term_exists(term)}  # 1.8 us; a postlist 4.5
                for shard in self.shards]

    def _room_short_by(self, batch: Batch) -> int:
        """Bytes the index's disk lacks for committing `batch` (0 or less: it fits)."""
        return self._room_for(batch) - _free_bytes(self.index_dir)

    def record_progress(self) -> None:
        """Tell the store what the index committed (status, attachment names, failures,
        header metadata; Xapian's position is the truth). Kept until the store takes it:
        its disk may be full."""
        if self._unrecorded is not None:
            progress = self._unrecorded
            try:
                self.store.record_indexed(progress.seq, progress.names, progress.failures,
                                          progress.header_changes, progress.readings)
            except Exception:
                progress.readings = {}  # derived, and what fills a full disk: not kept
                raise
            self._unrecorded = None

    def _add_all(self, batch: Batch, refused: dict, held: _Held) -> dict:
        """Every change of the batch, uncommitted, each shard's by its own thread; digest ->
        what each document was made of. `held`: what the shards hold of the batch's
        digests now (_documents_of), all of it deleted. Raises _RefusedMany when shards
        refused documents (each dropped its uncommitted changes: the caller writes the
        batch again)."""
        count = len(self.shards)
        # Any document of a digest is dropped from every shard first: a message deleted
        # and stored again has a new number, maybe on another shard, and its old document
        # is gone only if the indexer read the deletion before the message came back.
        # By document id, only where there is one (a delete by term looks it up again,
        # 21 us a shard for each digest of a batch, nearly all new).
        mine: list[list[int]] = [[] for _ in range(count)]
        for at, (_, meta, _) in enumerate(batch.present):
            mine[shards.shard_of(meta["number"], count)].append(at)

        def write(k: int) -> dict:
            for docid in sorted({docid for documents in held[k].values()
                                 for docid, _ in documents}):  # once: one may hold 2 ids
                self.shards[k].delete_document(docid)
            written = {}
            for at in mine[k]:
                (digest, meta, _), extracted = batch.present[at], batch.extracted[at]
                level, reason = refused.get(digest, (0, None))
                try:
                    written[digest] = self._add(k, digest, meta, extracted, level, reason)
                except _Refused as refusal:  # the shard's changes are gone: no use going on
                    raise _RefusedMany([refusal]) from None
            return written

        results = self._on_shards(range(count), write)
        return {digest: content for written in results for digest, content in written.items()}

    def _on_shards(self, numbers: range, work: Callable[[int], object]) -> list:
        """work(k) for each shard k of `numbers`, each in its shard's thread, all at once;
        their results. Raises _RefusedMany with every shard's refusals, else the first
        other error (once every shard's work is over: none is left writing)."""
        if self._writers is None:
            return [work(k) for k in numbers]
        futures = [self._writers.submit(work, k) for k in numbers]
        results, refusals, failure = [], [], None
        for future in futures:
            try:
                results.append(future.result())
            except _RefusedMany as refused:
                refusals.extend(refused.refusals)
            except BaseException as exc:  # noqa: BLE001 - raised below, once all are done
                failure = failure or exc
        if failure is not None:
            raise failure
        if refusals:
            raise _RefusedMany(refusals)
        return results

    def _add(self, shard: int, digest: str, meta: dict, extracted, level: int,
             reason: str | None):
        """Add one message's document to shard `shard` at `level`, or at the first level
        above it that can be built; raise _Refused when Xapian refuses it (the caller then
        starts over)."""
        while True:
            try:
                document, content = _document(level, digest, meta, extracted, reason)
            except Exception as exc:  # MemoryError included: the document was the big thing
                level, reason = self._less(digest, level, "building", exc)
                continue
            try:
                for term in number_terms(meta["number"]):  # for index_walk.within
                    document.add_boolean_term(term)
                self.shards[shard].replace_document(
                    shards.local_id(meta["number"], len(self.shards)), document)
            except xapian.LogicError as exc:  # this document's fault, e.g. a term too long
                raise _Refused(digest, *self._less(digest, level, "adding", exc)) from None
            return content

    @staticmethod
    def _less(digest: str, level: int, step: str, exc: BaseException) -> tuple[int, str]:
        """The next level down for a message whose document failed at `level`; raise the
        error itself when even the digest-only document fails (that is no message's fault)."""
        if level + 1 >= len(DOCUMENT_LEVELS):
            raise exc
        reason = f"indexing failed {step} the document: {type(exc).__name__}: {exc}"[:500]
        log.warning("message %s indexed %s: %s", digest, DOCUMENT_LEVELS[level + 1], reason)
        return level + 1, reason

    def abandon_writes(self) -> None:
        """Drop whatever a failed write (a full disk) left half done and close the index;
        reopen() goes on from the last commit, which holds the position in the log."""
        for shard in self.shards:
            _drop_uncommitted(shard)
            try:
                shard.close()
            except xapian.Error:
                pass
        self.shards = []  # and with the objects go their write locks

    def reopen(self) -> None:
        """Open the index again after abandon_writes(); a no-op while it is open."""
        if not self.shards:
            self.shards = shards.open_shards(self.index_dir, self._flags)

    def move_to(self, index_dir: Path) -> None:
        """Write the index in `index_dir` from now on: a copy of this one, holding its
        position in the arrival log (services.archive.live_compaction); this one is
        closed first."""
        self._close_shards()  # the writer threads stay: the copy has the same shards
        self.index_dir = Path(index_dir)
        self.reopen()

    def close(self) -> None:
        """Close the index; one written without fsync is written to disk and unmarked
        (services.archive.unsynced.settle; OSError when that fails, the mark kept)."""
        self._close_shards()
        if self._writers is not None:
            self._writers.shutdown()
            self._writers = None
        if not self.synced:
            unsynced.settle(self.index_dir)

    def _close_shards(self) -> None:
        """Close each shard. What it has not committed (a batch an error cut short) is
        dropped: Xapian's close() would commit it, without its log position, and on a full
        disk that commit could end the process (COMMIT_DISK_PER_DOCUMENT_BYTE)."""
        for shard in self.shards:
            _drop_uncommitted(shard)
            shard.close()
        self.shards = []

    def __enter__(self) -> "Indexer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _drop_uncommitted(shard: xapian.WritableDatabase) -> None:
    """Drop every change of `shard` since its last commit (a failed flush leaves changes
    pending, which close() would commit)."""
    try:
        shard.begin_transaction(False)  # False: begun without committing first
        shard.cancel_transaction()
    except xapian.Error:
        pass  # Xapian dropped them itself and closed the shard


def _free_bytes(path: Path) -> int:
    """Room an unprivileged writer has on the filesystem of `path` (statvfs f_bavail)."""
    found = os.statvfs(path)
    return found.f_bavail * found.f_frsize


def _document(level: int, digest: str, meta: dict, extracted, reason: str | None):
    """The whole document as the extraction worker built it, else document_at()'s."""
    if level == 0 and extracted.document is not None:
        return xapian.Document.unserialise(extracted.document), extracted
    return document_at(level, digest, meta, extracted, reason)


def _joined(earlier: Batch | None, later: Batch) -> Batch:
    """A run of messages carried over (Indexer._write) and the batch read after it, as one
    batch. A message in both is indexed as the later batch has it: with the metadata it
    has now (merged recipients) if present in both, not at all if the later batch found it
    deleted, and indexed if the later batch found it stored again after a deletion. What
    the earlier batch read anew of a superseded message's headers is dropped with it: it
    may be of a copy deleted since."""
    if earlier is None:
        return later
    present_later = {digest for digest, _, _ in later.present}
    superseded = present_later | set(later.missing)
    kept = [(entry, content) for entry, content in zip(earlier.present, earlier.extracted)
            if entry[0] not in superseded]
    return Batch(earlier.entries + later.entries, later.full,
                 [entry for entry, _ in kept] + later.present,
                 # one found deleted by both is deleted once (its terms counted once)
                 [digest for digest in earlier.missing if digest not in superseded]
                 + later.missing,
                 [content for _, content in kept] + later.extracted,
                 {**{digest: changes for digest, changes in earlier.header_changes.items()
                     if digest not in superseded}, **later.header_changes})


def _id_terms(batch: Batch) -> list[str]:
    """The id terms of the batch's digests, missing ones first, each once (a digest is
    listed once in `missing` and `present`; a set would lose the order)."""
    return list(dict.fromkeys([id_term(digest) for digest in batch.missing]
                              + [id_term(digest) for digest, _, _ in batch.present]))


def _document_bytes(content) -> int:
    """The size of a message's serialised document (its text's, where the worker built
    none): what its commit writes grows with it."""
    return len(content.document) if content.document is not None else content.text_size()


def _text_size(batch: Batch) -> int:
    return sum(content.text_size() for content in batch.extracted)


def _terms(batch: Batch) -> int:
    return sum(_document_terms(content) for content in batch.extracted)


def _document_terms(content) -> int:
    """The distinct terms of a message's document, as the worker that built it counted
    them; where it built none, its text's bytes (no text makes more terms than bytes)."""
    return content.terms if content.terms is not None else content.text_size()


def _parts(batch: Batch, text_bytes: float, entries: int | None = None,
           terms: float = math.inf) -> Iterator[Batch]:
    """The batch as consecutive runs of its log entries, each run's extracted text at most
    `text_bytes` and its documents' terms at most `terms` (or a single message's), so that
    Xapian's uncommitted changes stay bounded: a run ends before a message that would take
    it past either, not after (two messages of just under it would be a commit of twice as
    much); and of at most `entries` log entries each, when given."""
    pending = {digest: (meta, content) for (digest, meta, _), content
               in zip(batch.present, batch.extracted)}
    deleted = set(batch.missing)  # each deleted with its first entry, once (its terms
    # counted once in the room for the commit, however often it was logged)
    part, size, held = Batch([]), 0, 0
    for seq, digest in batch.entries:
        document = pending.pop(digest, None)  # at its first entry in the batch
        if document and part.present and (size + document[1].text_size() > text_bytes
                                          or held + _document_terms(document[1]) > terms):
            yield part
            part, size, held = Batch([]), 0, 0
        part.entries.append((seq, digest))
        if document:  # its document goes with this entry
            meta, content = document
            part.present.append((digest, meta, None))
            part.extracted.append(content)
            if digest in batch.header_changes:
                part.header_changes[digest] = batch.header_changes[digest]
            size += content.text_size()
            held += _document_terms(content)
        elif digest in deleted:
            deleted.discard(digest)
            part.missing.append(digest)
        if size >= text_bytes or held >= terms or len(part.entries) == entries:
            yield part
            part, size, held = Batch([]), 0, 0
    if part.entries:
        yield part


def status(store: Store, index_dir: Path) -> IndexStatus:
    indexed, position = read_index(index_dir, lambda database: (
        database.get_doccount(), int(database.get_metadata(CURSOR_KEY) or 0)), absent=(0, 0))
    end = store.log_end("arrival")
    return IndexStatus(stored=store.counters()["messages"], indexed=indexed,
                       pending=end - position, position=position, log_end=end)
