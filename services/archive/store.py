"""The archive store: every message, durably, in one LMDB environment.

Named databases:
  raw       digest -> zstd(raw bytes)              (digest = SHA-256 of the raw bytes)
  meta      digest -> JSON metadata                (envelope, dates, sizes, source, origin)
  msgid     Message-ID -> digest (duplicates)      (repeated journal deliveries merge)
  arrival   seq -> digest                          (the indexer follows it)
  outbox    seq -> digest                          (locally archived; mirror cursors follow it)
  cursors   name -> seq                            (durable positions in the logs)
  counters  name -> integer                        (totals kept in the same transactions)
  settings  name -> JSON                           (node id; replicated settings later)
  journal   state|ACCOUNT -> JSON                  (journal puller status per account)
            taken|ACCOUNT|KEY -> ""                (what keep_on_server took; | is NUL)
  extraction  SHA-256 -> why reading it failed  (services.archive.extraction_memo)
  reading   digest -> what reading it gave         (services.archive.readings; derived,
                                                    kept once indexed, or as a mirror
                                                    peer sent it; deleted with it)
  hold_records, hold_sums  what each litigation hold recorded, and its count
                           (services.policy.hold_records)
  deleted   digest -> seq                          (the arrival-log entry of its last
                                                    deletion: verify tells a message deleted
                                                    by the store from one that went missing)

A put is acknowledged only after the transaction holding it is committed and synced;
concurrent puts share one commit (group commit).
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
import time
import uuid
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

import lmdb
import zstandard

from firmware.errors import ArchiverError

from services.archive import mapped
from services.archive.group_commit import GroupCommitter
from services.archive.metadata import HEADER_FIELDS, header_metadata
from services.archive.space import OutOfSpace, is_out_of_space, size_in_words

DATABASES = ("raw", "meta", "msgid", "arrival", "outbox", "cursors", "counters", "settings",
             "journal", "replicated", "audit", "extraction", "reading", "hold_records",
             "hold_sums", "deleted")
COMPRESSION_LEVEL = 3
UNCHANGED = object()  # what Store.update_setting's change gives to leave a setting as it is
T = TypeVar("T")
# Head-room kept free in the map so a full store can still commit cursors and settings.
RESERVE_BYTES = 4 * 1024 * 1024
# What a kept reading may take beyond its bytes: a B-tree entry and its last page's rest.
READING_OVERHEAD_BYTES = 4096
# The store's pages a process may hold mapped in, at most, before it lets go of them
# (Store.release_pages), measured as the growth of its file-backed resident memory since
# the last release: every page LMDB reads through its map stays resident, and the kernel
# maps in up to 64 KB of cached neighbours with it, so a batch of random lookups in a large
# store (import's puts, the indexer's bookkeeping) mapped in 50 to 130 MB before its end.
# Checked after every read and every message of a write: the bound holds whatever the
# store's size, give or take one value (a message's compressed bytes).
MAPPED_BYTES = 4 * 1024 * 1024
# Bytes of a stored message decompressed at a time by Store.pieces (what the indexer holds
# of a large message while it hands it to an extraction worker).
PIECE_BYTES = 1024 * 1024
MIN_PREFIX = 8  # hex digits of a digest prefix (git's default abbreviation is 7)
AMBIGUOUS_SHOWN = 5  # digests an ambiguous prefix error names, at most
# The node-local setting holding the first arrival-log position whose deletions the
# "deleted" database records (set when firmware that records them first opens the store):
# a message gone that an earlier entry names may have been deleted by older firmware.
DELETIONS_RECORDED_FROM = "deletions_recorded_from"
MISSING_SHOWN = 100  # corrupt messages, and arrival-log entries naming a missing message,
# that verify lists at most (of each kind; all are counted)


class StoreFullError(OutOfSpace):
    """The store has reached the model's storage capacity; what it holds is kept."""
    brief = "the archive store is full"


class DiskFullError(OutOfSpace):
    """The store's disk is full (ENOSPC, or LMDB's short write on an all but full disk)."""


class NotFound(ArchiverError, KeyError):
    def __str__(self) -> str:  # KeyError's would quote the message
        return str(self.args[0]) if self.args else "not found"


class DeletionConflict(ArchiverError):
    pass


class AmbiguousDigest(ArchiverError):
    """A digest prefix that starts the digests of more than one message."""


class CorruptMessage(ArchiverError):
    """A stored message's compressed bytes do not give what their zstd frame says."""


@dataclass
class Envelope:
    sender: str | None = None
    recipients: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PutOutcome:
    digest: str
    status: str  # "new", "duplicate" (same bytes, nothing new), "merged" (new recipients)


@dataclass(frozen=True)
class Prepared:
    """A message made ready to store (Store.prepare): what a put writes, without its bytes."""
    digest: bytes
    compressed: bytes
    meta: dict


def digest_of(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _seq_key(seq: int) -> bytes:
    return struct.pack(">Q", seq)


def _seq_of(key: bytes) -> int:
    return struct.unpack(">Q", key)[0]


def _log_end_in(txn, db) -> int:
    """The sequence number of the last entry of the log `db` in `txn`; 0 when it is empty."""
    with txn.cursor(db=db) as cursor:
        return _seq_of(cursor.key()) if cursor.last() else 0


class Store:
    def __init__(self, path: str | Path, map_size: int, readonly: bool = False):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.map_size = map_size
        # LMDB maps the file once, at open, for as long as the environment is open: its
        # address is found once (release_pages). Never env.set_mapsize(): it moves the map,
        # and release_pages would then drop whatever is mapped at the old address.
        self.env, self._map = mapped.mapping_made_by(self.path / "data.mdb", lambda: lmdb.open(
            str(self.path), map_size=map_size, max_dbs=len(DATABASES) + 4, subdir=True,
            readonly=False, sync=True, metasync=True, max_readers=256, lock=True))
        self.db = {name: self.env.open_db(name.encode(), dupsort=(name == "msgid"))
                   for name in DATABASES}
        self._local = threading.local()  # zstd contexts are not thread-safe
        self._committer: GroupCommitter | None = None
        self._starting = threading.Lock()  # one committer, however many threads put at once
        self._resident_file_after_release = mapped.resident_file_bytes()
        self.node_id = self._ensure_node_id()
        self._ensure_deletions_recorded()

    # -- writing -----------------------------------------------------------------------

    def put(self, raw: bytes, envelope: Envelope | None = None, source: str = "import",
            origin: str | None = None, from_line_date: float | None = None,
            origin_received: float | None = None) -> str:
        """Store `raw` durably; return its SHA-256 digest. Safe from many threads at once.
        `from_line_date`: epoch seconds of the mbox From_ line `raw` was filed under (import,
        mirror copies), evidence of its date when its headers have none. `origin_received`
        (mirror copies): epoch seconds its origin received it live, where its retention
        starts (services.policy.retention_clock); kept in the metadata when given."""
        return self.put_outcome(raw, envelope, source, origin, from_line_date,
                                origin_received).digest

    def put_outcome(self, raw: bytes, envelope: Envelope | None = None, source: str = "import",
                    origin: str | None = None, from_line_date: float | None = None,
                    origin_received: float | None = None) -> PutOutcome:
        return self.put_future(raw, envelope, source, origin, from_line_date,
                               origin_received).result()

    def put_future(self, raw: bytes, envelope: Envelope | None = None, source: str = "import",
                   origin: str | None = None, from_line_date: float | None = None,
                   origin_received: float | None = None) -> Future:
        """put_outcome() without waiting for the commit: `raw` is hashed, summarized and
        compressed in this thread, then the Future gets the PutOutcome (or the error, e.g.
        OutOfSpace) once the group commit holding it is durable (GroupCommitter)."""
        prepared = self.prepare(raw, envelope, source, origin, from_line_date,
                                origin_received)
        with self._starting:
            if self._committer is None:
                self._committer = GroupCommitter(self._apply_batch, name="store-commit")
        return self._committer.submit_future(prepared)

    def put_many(self, items: Iterable[tuple], readings: dict[str, bytes] | None = None
                 ) -> list[PutOutcome]:
        """Store a batch in one durable transaction (bulk import, mirror copies): items are
        (raw, envelope, source), (raw, envelope, source, origin), (raw, envelope, source,
        origin, from_line_date) or (raw, envelope, source, origin, from_line_date,
        origin_received), as put() takes them. `readings`: digest -> what reading the message gave
        elsewhere (a mirror peer's, services.archive.readings, unchecked here), kept in the
        same transaction for each message new to the store, while there is room beside
        the batch and the reserve (derived data: one not kept is read from the message)."""
        return self.put_prepared([self.prepare(*item) for item in items], readings)

    def put_prepared(self, batch: list[Prepared], readings: dict[str, bytes] | None = None
                     ) -> list[PutOutcome]:
        """put_many() of messages prepared already (prepare()): a caller that gathers a
        batch holds each message compressed, not its bytes (bulk import: a 100 MiB message
        of random data was its bytes, their compressed copy and LMDB's copy of that at
        once). Raises OutOfSpace as put_many, nothing of the batch stored then."""
        outcomes = self._apply_batch(batch, readings or {})
        self.release_pages()  # a bulk writer maps in some 40% of what it writes: let go
        return outcomes

    def prepare(self, raw: bytes, envelope: Envelope | None = None, source: str = "import",
                origin: str | None = None, from_line_date: float | None = None,
                origin_received: float | None = None) -> Prepared:
        """What put() stores of `raw` (its SHA-256, zstd frame and metadata: meta["size"]
        is len(raw)), made in the caller's thread, for put_prepared(). Arguments as put()'s;
        "received" is the time of this call."""
        # Hashing, parsing and compressing happen in the caller's thread, in parallel;
        # only the LMDB writes are serialized.
        envelope = envelope or Envelope()
        received = time.time()
        compressed = self._compressor().compress(raw)
        meta = {
            **header_metadata(raw, from_line_date, received),  # services.archive.metadata
            "received": received, "size": len(raw), "stored_size": len(compressed),
            "sender": envelope.sender, "recipients": sorted(set(envelope.recipients)),
            "source": source, "origin": origin or self.node_id,
            "from_line_date": from_line_date,
            "attachments": [],  # filled in by the indexer
        }
        if origin_received is not None:  # only copies have one: the key says it was sent
            meta["origin_received"] = origin_received
        return Prepared(hashlib.sha256(raw).digest(), compressed, meta)

    def _compressor(self) -> zstandard.ZstdCompressor:
        if not hasattr(self._local, "compressor"):
            self._local.compressor = zstandard.ZstdCompressor(level=COMPRESSION_LEVEL)
        return self._local.compressor

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        """This thread's (one is not safe to share): making one per message took some
        13 us of the 14 us a 5 KB message takes to decompress."""
        if not hasattr(self._local, "decompressor"):
            self._local.decompressor = zstandard.ZstdDecompressor()
        return self._local.decompressor

    def _apply_batch(self, batch: list[Prepared], readings: dict[str, bytes] | None = None
                     ) -> list[PutOutcome | Exception]:
        with self.writing() as txn:
            totals = _Totals(txn, self.db)
            outcomes = []
            for item in batch:
                outcomes.append(self._put_in(txn, item, totals))
                self.release_pages_if_grown()
            if readings:
                new = {outcome.digest for outcome in outcomes if outcome.status == "new"}
                self._keep_readings(txn, {digest: reading for digest, reading
                                          in readings.items() if digest in new},
                                    written=sum(len(item.compressed) for item in batch))
            totals.write()
            return outcomes

    @contextmanager
    def writing(self) -> Iterator[lmdb.Transaction]:
        """A write transaction, committed and synced when the block ends. Raises
        StoreFullError at the model's capacity and DiskFullError when the disk is full; then
        nothing of the transaction is written and everything stored before is kept."""
        try:
            with self.env.begin(write=True) as txn:
                yield txn
        except lmdb.MapFullError:
            raise StoreFullError(
                f"the store at {self.path} is full ({self.map_size // 1024**3} GiB, the model's "
                "storage capacity): new mail is refused, everything stored is kept") from None
        except lmdb.Error as exc:
            if not is_out_of_space(exc, self.path):
                raise
            found = os.statvfs(self.path)
            free = size_in_words(found.f_bavail * found.f_frsize)
            brief = f"the store's disk is full ({free} free)"
            raise DiskFullError(f"{brief}: nothing more can be written until there is room",
                                brief) from exc

    def _put_in(self, txn, item: Prepared, totals: _Totals) -> PutOutcome:
        key, meta = item.digest, item.meta
        existing = txn.get(key, db=self.db["meta"])
        if existing is None:
            self._check_room(len(item.compressed))
            txn.put(key, item.compressed, db=self.db["raw"])
            meta["number"] = totals.add("numbers", 1)  # the index's document id
            self._write_meta(txn, key, meta)
            if meta["message_id"]:
                txn.put(_message_id_key(meta["message_id"]), key, db=self.db["msgid"])
            totals.add("messages", 1)
            totals.add("raw_bytes", meta["size"])
            totals.add("stored_bytes", meta["stored_size"])
            self._count_archived(txn, meta, totals)
            _append_logs(totals, key, local=not meta["source"].startswith("mirror"))
            return PutOutcome(key.hex(), "new")
        return self._merge_in(txn, key, json.loads(existing), meta, totals)

    def _merge_in(self, txn, key: bytes, old: dict, new: dict, totals: _Totals) -> PutOutcome:
        """The same bytes again: keep the one copy; add envelope recipients it lacked."""
        merged = sorted(set(old["recipients"]) | set(new["recipients"]))
        totals.add("dedup_bytes", new["size"])  # bytes not stored a second time
        marked = _mark_copy(old, new, totals)
        if merged == old["recipients"]:
            totals.add("duplicates", 1)
            if marked:
                self._write_meta(txn, key, old)
            return PutOutcome(key.hex(), "duplicate")
        old["recipients"] = merged
        old["sender"] = old["sender"] or new["sender"]
        self._write_meta(txn, key, old)
        _append_logs(totals, key, local=not new["source"].startswith("mirror"))
        return PutOutcome(key.hex(), "merged")

    def _check_room(self, needed: int) -> None:
        if needed > self.space_left():
            raise lmdb.MapFullError("store full")

    def space_left(self) -> int:
        """Bytes the store may still grow by (its map, less the reserve for bookkeeping)."""
        used = (self.env.info()["last_pgno"] + 1) * self.env.stat()["psize"]
        return self.map_size - RESERVE_BYTES - used

    def _write_meta(self, txn, key: bytes, meta: dict) -> None:
        txn.put(key, json.dumps(meta, separators=(",", ":")).encode(), db=self.db["meta"])

    def _count_archived(self, txn, meta: dict, totals: _Totals) -> None:
        """The status counters (appliance MIB): archived by source kind, per UTC hour and
        day, and when last; in the put's transaction, so they agree with the store."""
        when = time.gmtime(meta["received"])
        for name in (f"archived:{meta['source'].partition(':')[0]}",
                     time.strftime("archived_hour:%Y%m%d%H", when),
                     time.strftime("archived_day:%Y%m%d", when)):
            totals.add(name, 1)
        # Bytes stored and deleted per UTC day: the store's size on any past day is today's
        # less what came since, plus what went (services.web.charts draws it).
        totals.add(time.strftime("stored_bytes_day:%Y%m%d", when), meta["stored_size"])
        txn.put(b"last_archived", str(int(meta["received"])).encode(), db=self.db["counters"])

    # -- deleting ----------------------------------------------------------------------

    def delete(self, digests: list[str], still_valid: Callable | None = None,
               also: Callable | None = None) -> list[dict]:
        """Delete messages (raw bytes, metadata, Message-ID entry) in one durable transaction;
        the arrival log tells the indexer to drop their documents. `still_valid(txn)` is
        asked inside that transaction; if it says no (e.g. holds changed since the batch was
        chosen), nothing is deleted and DeletionConflict is raised. `also(txn, deleted)`
        writes in the same transaction what must be durable with the deletion (its audit
        entry). Returns the metadata of the messages deleted (those still stored)."""
        with self.writing() as txn:
            if still_valid is not None and not still_valid(txn):
                raise DeletionConflict("the deletion was overtaken by a change of holds")
            totals = _Totals(txn, self.db)
            deleted = [meta for digest in digests
                       if (meta := self._delete_in(txn, _key(digest), totals))]
            totals.write()
            if also is not None:
                also(txn, deleted)
        return deleted

    def _delete_in(self, txn, key: bytes, totals: _Totals) -> dict | None:
        stored = txn.get(key, db=self.db["meta"])
        if stored is None:
            return None
        meta = json.loads(stored)
        txn.delete(key, db=self.db["raw"])
        txn.delete(key, db=self.db["meta"])
        txn.delete(key, db=self.db["reading"])
        if meta.get("message_id"):
            txn.delete(_message_id_key(meta["message_id"]), key, db=self.db["msgid"])
        totals.add("messages", -1)
        totals.add("raw_bytes", -meta["size"])
        totals.add("stored_bytes", -meta["stored_size"])
        totals.add(time.strftime("deleted_bytes_day:%Y%m%d", time.gmtime()), meta["stored_size"])
        seq = totals.append("arrival", key)
        # Some 50 bytes a deleted message: what lets verify tell this deletion from a loss.
        txn.put(key, _seq_key(seq), db=self.db["deleted"])
        return {"digest": key.hex(), **meta}

    # -- reading -----------------------------------------------------------------------

    def get(self, digest: str) -> bytes:
        """The raw bytes exactly as received. Raises NotFound."""
        # Decompressed from the map itself (buffers=True: no copy of the compressed bytes,
        # some 40 MB of a 90 MB message), so within the transaction that keeps it valid.
        with self.env.begin(buffers=True) as txn:
            compressed = txn.get(_key(digest), db=self.db["raw"])
            raw = None if compressed is None else self._decompressor().decompress(compressed)
        self.release_pages_if_grown()
        if raw is None:
            raise NotFound(f"no message with digest {digest}")
        return raw

    def pieces(self, digest: str, piece_bytes: int = PIECE_BYTES) -> MessagePieces:
        """The raw bytes of `digest` as get() gives them, but decompressed `piece_bytes` at a
        time as they are iterated (MessagePieces: its size known first), for a reader
        that passes them on and need not hold them all (the extraction pool's pipe to a
        worker: a 90 MB message is then never whole in the indexer). Raises NotFound. A
        context manager: its read transaction (which keeps the compressed bytes valid)
        stays open until it is closed."""
        txn = self.env.begin(buffers=True)
        try:
            compressed = txn.get(_key(digest), db=self.db["raw"])
            if compressed is None:
                raise NotFound(f"no message with digest {digest}")
            # py-lmdb's get touches every page of a value (with the GIL released, so that
            # reading it faults none in later): let them go until they are read
            self.release_pages_if_grown()
            return MessagePieces(txn, compressed, piece_bytes, self.release_pages_if_grown)
        except BaseException:
            txn.abort()
            raise

    def resolve(self, digest_or_prefix: str) -> str:
        """The full digest of the one message whose digest starts with `digest_or_prefix`
        (at least MIN_PREFIX hex digits, as git takes them); raises NotFound when there is
        none or it is not hex, AmbiguousDigest when several messages share the prefix."""
        prefix = digest_or_prefix.strip().lower()
        if len(prefix) == 64:
            _key(prefix)  # not hex: NotFound naming the form
            return prefix
        if not (MIN_PREFIX <= len(prefix) < 64 and all(c in "0123456789abcdef" for c in prefix)):
            raise NotFound(f"{digest_or_prefix!r} is not a message digest (64 hex digits) "
                           f"nor a prefix of one ({MIN_PREFIX} to 63 hex digits)")
        low = bytes.fromhex(prefix.ljust(64, "0"))
        found = []
        with self.env.begin() as txn, txn.cursor(db=self.db["meta"]) as cursor:
            if cursor.set_range(low):
                for key in cursor.iternext(values=False):
                    if not key.hex().startswith(prefix) or len(found) > AMBIGUOUS_SHOWN:
                        break
                    found.append(key.hex())
        if not found:
            raise NotFound(f"no message with a digest starting {prefix}")
        if len(found) > 1:
            more = " and more" if len(found) > AMBIGUOUS_SHOWN else ""
            raise AmbiguousDigest(f"{prefix} is ambiguous: it starts the digests of "
                                  f"{', '.join(found[:AMBIGUOUS_SHOWN])}{more}; give more digits")
        return found[0]

    def meta_in(self, txn, digest: str) -> dict | None:
        """The metadata of message `digest` as read in `txn` (a write transaction's, say);
        None when it is not stored."""
        data = txn.get(_key(digest), db=self.db["meta"])
        return None if data is None else {"digest": digest, **json.loads(data)}

    def meta(self, digest: str) -> dict:
        with self.env.begin() as txn:
            data = txn.get(_key(digest), db=self.db["meta"])
        self.release_pages_if_grown()
        if data is None:
            raise NotFound(f"no message with digest {digest}")
        return {"digest": digest, **json.loads(data)}

    def database_bytes(self, name: str) -> int:
        """The bytes the named database (one of DATABASES) takes in the store file: its
        pages, as LMDB counts them."""
        with self.env.begin() as txn:
            stat = txn.stat(self.db[name])
        return stat["psize"] * (stat["branch_pages"] + stat["leaf_pages"] + stat["overflow_pages"])

    def reading(self, digest: str) -> bytes | None:
        """What reading the message gave when it was last indexed (services.archive.
        readings: its version is the caller's to check), or None when none is kept."""
        with self.env.begin() as txn:
            found = txn.get(_key(digest), db=self.db["reading"])
        self.release_pages_if_grown()
        return found

    def __contains__(self, digest: str) -> bool:
        with self.env.begin() as txn:
            return txn.get(_key(digest), db=self.db["meta"]) is not None

    def digests_for_message_id(self, message_id: str) -> list[str]:
        with self.env.begin() as txn, txn.cursor(db=self.db["msgid"]) as cursor:
            if not cursor.set_key(_message_id_key(message_id)):
                return []
            return [value.hex() for value in cursor.iternext_dup()]

    def digests(self) -> Iterator[str]:
        with self.env.begin() as txn, txn.cursor(db=self.db["meta"]) as cursor:
            for key in cursor.iternext(keys=True, values=False):
                yield key.hex()

    def counters(self) -> dict[str, int]:
        with self.env.begin() as txn, txn.cursor(db=self.db["counters"]) as cursor:
            found = {key.decode(): int(value) for key, value in cursor}
        return {name: found.get(name, 0)
                for name in ("messages", "raw_bytes", "stored_bytes", "duplicates")}

    def last_number(self) -> int:
        """The number (metadata "number", or a peer's in "copies") the newest message, or
        peer's copy of a message stored before, stored here was given; 0 when none was.
        Numbers are given in the order puts commit, so every message or copy stored after
        this is read has a larger one (a number given to a copy is no document's id)."""
        with self.env.begin() as txn:
            return int(txn.get(b"numbers", db=self.db["counters"]) or 0)

    def counters_with_prefix(self, prefix: str) -> dict[str, int]:
        """Counters whose names start with `prefix` (e.g. "archived_day:"), prefix removed."""
        found = {}
        with self.env.begin() as txn, txn.cursor(db=self.db["counters"]) as cursor:
            if cursor.set_range(prefix.encode()):
                for key, value in cursor:
                    if not key.startswith(prefix.encode()):
                        break
                    found[key.decode()[len(prefix):]] = int(value)
        return found

    def release_pages(self) -> None:
        """Drop the pages of the store this process has mapped in from its resident memory
        (services.archive.mapped): they stay in the page cache, and reading them again
        maps them again. A process that reads the whole store (the indexer) would else
        hold the store's size in RSS; one that writes a lot (bulk import), some 40% of what
        it wrote (the kernel maps page-cache neighbours of each page LMDB reads)."""
        used = (self.env.info()["last_pgno"] + 1) * self.env.stat()["psize"]
        mapped.release_ranges(self._map, used)
        self._resident_file_after_release = mapped.resident_file_bytes()

    def release_pages_if_grown(self) -> None:
        """release_pages() once this process's file-backed resident memory has grown by
        MAPPED_BYTES since the last release (what reading mapped in, libraries loaded
        meanwhile included): a read costs a look at a counter (mapped.resident_file_bytes),
        and the store's pages a process holds stay under MAPPED_BYTES and one value,
        whatever the store's size. Safe inside a transaction: a page let go is mapped in
        again, unchanged, when LMDB reads it next."""
        if mapped.resident_file_bytes() - self._resident_file_after_release >= MAPPED_BYTES:
            self.release_pages()

    # -- logs and cursors ----------------------------------------------------------------

    def log_after(self, log: str, seq: int, limit: int) -> list[tuple[int, str]]:
        """Up to `limit` entries of `log` after position `seq`, oldest first."""
        found = []
        with self.env.begin() as txn, txn.cursor(db=self.db[log]) as cursor:
            if cursor.set_range(_seq_key(seq + 1)):
                for key, value in cursor:
                    found.append((_seq_of(key), value.hex()))
                    if len(found) >= limit:
                        break
        return found

    def log_end(self, log: str) -> int:
        with self.env.begin() as txn:
            return _log_end_in(txn, self.db[log])

    def cursor(self, name: str) -> int:
        with self.env.begin() as txn:
            value = txn.get(name.encode(), db=self.db["cursors"])
        return int(value) if value else 0

    def set_cursor(self, name: str, seq: int) -> None:
        with self.writing() as txn:
            txn.put(name.encode(), str(seq).encode(), db=self.db["cursors"])

    def _keep_readings(self, txn, readings: dict[str, bytes], written: int = 0) -> None:
        """Put each reading of a message still stored, while there is room for it beside
        the reserve and the `written` bytes `txn` holds already: derived data never takes
        the room messages and bookkeeping need (a reading not kept is read again from its
        message)."""
        room = self.space_left() - written
        for digest, reading in readings.items():
            key = bytes.fromhex(digest)
            if txn.get(key, db=self.db["meta"]) is None:
                continue  # deleted meanwhile
            room -= len(reading) + READING_OVERHEAD_BYTES
            if room < 0:
                return
            txn.put(key, reading, db=self.db["reading"])
            self.release_pages_if_grown()

    def record_indexed(self, seq: int | None, attachment_names: dict[str, list[str]],
                       failures: dict[str, list[str]] | None = None,
                       header_changes: dict[str, dict] | None = None,
                       readings: dict[str, bytes] | None = None) -> None:
        """The indexer's progress (seq; None: an index being rebuilt, not the live one's)
        and what it read, in one transaction: attachment names from its full parse; per
        digest, why parts of it could not be read (metadata key "extraction_failures",
        absent when nothing failed); header metadata
        (services.archive.metadata.HEADER_FIELDS) that the current code reads differently
        from the stored metadata; and what reading a message gave
        (services.archive.readings.encode), kept for the next time it is indexed."""
        failures, header_changes = failures or {}, header_changes or {}
        with self.writing() as txn:
            if seq is not None:
                txn.put(b"indexer", str(seq).encode(), db=self.db["cursors"])
            self._keep_readings(txn, readings or {})
            for digest in attachment_names.keys() | header_changes.keys():
                key = bytes.fromhex(digest)
                stored = txn.get(key, db=self.db["meta"])
                if stored is None:
                    continue  # deleted meanwhile
                meta = json.loads(stored)
                changed = {name: value for name, value in header_changes.get(digest, {}).items()
                           if name in HEADER_FIELDS and meta.get(name) != value}
                names = attachment_names.get(digest, meta.get("attachments"))
                if meta.get("attachments") != names:
                    changed["attachments"] = names
                if digest in attachment_names:  # this parse's verdict replaces the last one
                    failed = failures.get(digest) or None
                    if meta.get("extraction_failures") != failed:
                        changed["extraction_failures"] = failed
                if changed:
                    self._move_message_id(txn, key, meta.get("message_id"),
                                          changed.get("message_id", meta.get("message_id")))
                    updated = {**meta, **changed}
                    if updated.get("extraction_failures") is None:
                        updated.pop("extraction_failures", None)
                    self._write_meta(txn, key, updated)
                self.release_pages_if_grown()
        self.release_pages()  # the indexer's: it would else hold what each batch mapped in

    def _move_message_id(self, txn, key: bytes, old: str | None, new: str | None) -> None:
        """Keep the Message-ID -> digest table right when a Message-ID is read anew."""
        if old == new:
            return
        if old:
            txn.delete(_message_id_key(old), key, db=self.db["msgid"])
        if new:
            txn.put(_message_id_key(new), key, db=self.db["msgid"])

    # -- integrity -----------------------------------------------------------------------

    def verify(self, progress=None) -> list[dict]:
        """Recompute every digest; return the problems found (empty when all is well):
        [{"digest", "problem"}], the first MISSING_SHOWN. check() gives these, how many in
        all, and what is missing."""
        return self.check(progress).corrupt

    def check(self, progress=None) -> "StoreCheck":
        """Everything verify checks, in one read snapshot: each message's bytes against
        its SHA-256 digest (FIPS 180-4) and its metadata; how many messages there are
        against the store's counter; and every arrival-log entry against the store: the
        message it names must be stored, or deleted by the store at or after it (the
        "deleted" database). Streams: memory stays bounded whatever the store's size
        (point lookups per log entry, MISSING_SHOWN entries of a kind kept). `progress(1)` runs per
        message read. Raises lmdb.Error only for a store LMDB cannot read."""
        with self.env.begin() as txn:
            counted = txn.get(b"messages", db=self.db["counters"])  # in the same snapshot
            found = StoreCheck(counted=int(counted) if counted else 0)
            self._check_messages(txn, found, progress)
            self._check_arrivals(txn, found)
        return found

    def _check_messages(self, txn, found: "StoreCheck", progress) -> None:
        decompressor = zstandard.ZstdDecompressor()
        for key, compressed in txn.cursor(db=self.db["raw"]):
            found.raw += 1
            problem = _check_one(decompressor, key, compressed)
            if problem is None and txn.get(key, db=self.db["meta"]) is None:
                problem = "raw bytes without metadata"
            if problem:
                found.note_corrupt(key, problem)
            if progress:
                progress(1)
            self.release_pages_if_grown()
        for key in txn.cursor(db=self.db["meta"]).iternext(values=False):
            found.meta += 1
            if txn.get(key, db=self.db["raw"]) is None:
                found.note_corrupt(key, "metadata without raw bytes")
            self.release_pages_if_grown()

    def _check_arrivals(self, txn, found: "StoreCheck") -> None:
        """Each arrival-log entry in order, by a lookup of its digest: the log is in order
        of arrival, not of digest, so there are no two sorted runs to walk side by side."""
        recorded = txn.get(DELETIONS_RECORDED_FROM.encode(), db=self.db["settings"])
        found.log_checked_from = json.loads(recorded) if recorded else 1
        for seq_key, key in txn.cursor(db=self.db["arrival"]):
            found.log_entries += 1
            self.release_pages_if_grown()
            if txn.get(key, db=self.db["meta"]) is not None:
                continue
            deleted = txn.get(key, db=self.db["deleted"])
            seq = _seq_of(seq_key)
            if deleted is not None and _seq_of(deleted) >= seq:
                continue  # deleted by the store, at this entry or after it
            if seq < found.log_checked_from:
                found.log_unverifiable += 1  # perhaps deleted by firmware that kept no record
                continue
            found.missing_entries += 1
            if len(found.missing) < MISSING_SHOWN:
                found.missing.append({"digest": key.hex(), "seq": seq, "problem": (
                    f"arrival-log entry {seq} stored it; it is not in the store and "
                    "no deletion of it is recorded")})

    @contextmanager
    def digests_in_order(self) -> Iterator[tuple[int, Iterator[bytes]]]:
        """One read snapshot of the store: (the arrival log's end, the digests of the
        messages stored, as 32 bytes each in ascending byte order, the order of their hex
        too). For walking beside another sorted run of digests (the index's)."""
        with self.env.begin() as txn, txn.cursor(db=self.db["meta"]) as cursor:
            yield _log_end_in(txn, self.db["arrival"]), cursor.iternext(keys=True, values=False)

    # -- journal mailboxes ---------------------------------------------------------------

    def journal_state(self, account: str) -> dict:
        """The puller's status of `account` (last poll, last error, totals); {} if never polled."""
        with self.env.begin() as txn:
            data = txn.get(_journal_key("state", account), db=self.db["journal"])
        return json.loads(data) if data else {}

    def set_journal_state(self, account: str, state: dict) -> None:
        with self.writing() as txn:
            txn.put(_journal_key("state", account), json.dumps(state).encode(),
                    db=self.db["journal"])

    def journal_taken(self, account: str) -> set[str]:
        """Keys (IMAP "UIDVALIDITY:UID", POP3 UIDL) of messages taken and left on the server."""
        prefix = _journal_key("taken", account, "")
        with self.env.begin() as txn, txn.cursor(db=self.db["journal"]) as cursor:
            found = set()
            if cursor.set_range(prefix):
                for key in cursor.iternext(values=False):
                    if not key.startswith(prefix):
                        break
                    found.add(key[len(prefix):].decode())
            return found

    def is_taken(self, account: str, key: str) -> bool:
        with self.env.begin() as txn:
            return txn.get(_journal_key("taken", account, key), db=self.db["journal"]) is not None

    def mark_taken(self, account: str, key: str) -> None:
        with self.writing() as txn:
            txn.put(_journal_key("taken", account, key), b"", db=self.db["journal"])

    # -- settings ------------------------------------------------------------------------

    def setting(self, name: str, default=None):
        """A node-local setting (JSON), or `default`."""
        with self.env.begin() as txn:
            value = txn.get(name.encode(), db=self.db["settings"])
        return json.loads(value) if value is not None else default

    def set_setting(self, name: str, value) -> None:
        """Set (or, with None, remove) a node-local setting, durably."""
        with self.writing() as txn:
            if value is None:
                txn.delete(name.encode(), db=self.db["settings"])
            else:
                txn.put(name.encode(), json.dumps(value).encode(), db=self.db["settings"])

    def update_setting(self, name: str, change: Callable[[Any], tuple[Any, T]]) -> T:
        """Read and rewrite a node-local setting in one write transaction, so that no other
        writer, in this process or another, lands between the read and the write (LMDB has
        one writer at a time). `change(value or None)` gives (the new value: None removes
        it, UNCHANGED leaves it; what to return). What `change` raises aborts it."""
        with self.writing() as txn:
            found = txn.get(name.encode(), db=self.db["settings"])
            value, result = change(json.loads(found) if found is not None else None)
            if value is None:
                txn.delete(name.encode(), db=self.db["settings"])
            elif value is not UNCHANGED:
                txn.put(name.encode(), json.dumps(value).encode(), db=self.db["settings"])
        return result

    def settings_with_prefix(self, prefix: str) -> dict:
        """Node-local settings whose names start with `prefix`, by full name."""
        found = {}
        with self.env.begin() as txn, txn.cursor(db=self.db["settings"]) as cursor:
            if cursor.set_range(prefix.encode()):
                for key, value in cursor:
                    if not key.startswith(prefix.encode()):
                        break
                    found[key.decode()] = json.loads(value)
        return found

    def _ensure_deletions_recorded(self) -> None:
        """Note, once, where the arrival log stood when this store first recorded its
        deletions (DELETIONS_RECORDED_FROM): entries before it are not checked for them."""
        if self.setting(DELETIONS_RECORDED_FROM) is None:
            with self.writing() as txn:
                if txn.get(DELETIONS_RECORDED_FROM.encode(), db=self.db["settings"]) is None:
                    end = _log_end_in(txn, self.db["arrival"])
                    txn.put(DELETIONS_RECORDED_FROM.encode(), str(end + 1).encode(),
                            db=self.db["settings"])

    def _ensure_node_id(self) -> str:
        with self.writing() as txn:
            node = txn.get(b"node_id", db=self.db["settings"])
            if node is None:
                node = uuid.uuid4().hex[:12].encode()
                txn.put(b"node_id", node, db=self.db["settings"])
        return node.decode()

    def close(self) -> None:
        if self._committer is not None:
            self._committer.close()
            self._committer = None
        self._map = []  # gone with the environment: never advised again
        mapped.unmapped_by(self.env.close)


@dataclass
class StoreCheck:
    """What Store.check found. `corrupt`: [{"digest", "problem"}], the first MISSING_SHOWN
    of `corrupt_entries` in all; `counted`:
    the store's message counter, `raw` and `meta` the messages found with bytes and with
    metadata; `missing`: the first MISSING_SHOWN arrival-log entries naming a message
    neither stored nor deleted by the store ({"digest", "seq", "problem"}), of
    `missing_entries` in all, of the `log_entries` read; `log_unverifiable`: entries
    before `log_checked_from` (DELETIONS_RECORDED_FROM) whose message is gone, perhaps
    deleted by older firmware, which kept no record of deletions."""
    counted: int = 0
    raw: int = 0
    meta: int = 0
    corrupt: list[dict] = field(default_factory=list)
    corrupt_entries: int = 0
    missing: list[dict] = field(default_factory=list)
    missing_entries: int = 0
    log_entries: int = 0
    log_checked_from: int = 1
    log_unverifiable: int = 0

    def note_corrupt(self, key: bytes, problem: str) -> None:
        self.corrupt_entries += 1
        if len(self.corrupt) < MISSING_SHOWN:
            self.corrupt.append({"digest": key.hex(), "problem": problem})

    @property
    def uncounted(self) -> int:
        """Messages the counter has that were not found (negative: found, not counted)."""
        return self.counted - min(self.raw, self.meta)


class MessagePieces:
    """A stored message's raw bytes in pieces, decompressed as they are taken (Store.pieces).
    `size`: their length in bytes, from the zstd frame's content size (written by every
    put: one-shot compression). Iterated once; close() (or the with block's end) ends its
    read transaction. Iterating raises zstandard.ZstdError for a frame that does not
    decompress, and CorruptMessage when the pieces are not `size` bytes in all."""

    def __init__(self, txn, compressed, piece_bytes: int, release_pages: Callable[[], None]):
        # release_pages: the store's release_pages_if_grown, called as the compressed bytes
        # are read through (their pages were mapped in: 76 MB of a 100 MiB message of
        # random data), and at the end
        self._txn, self._compressed, self._release_pages = txn, compressed, release_pages
        self.piece_bytes = piece_bytes
        self.size = zstandard.frame_content_size(compressed)
        if self.size < 0:  # (no put writes a frame without it; decompress() needs it too)
            raise CorruptMessage("a stored message's zstd frame does not say its size")

    def __iter__(self) -> Iterator[bytes]:
        # Its own decompressor: the store's (one a thread) may be used while this is read.
        decompressor = zstandard.ZstdDecompressor()
        given = 0
        for piece in decompressor.read_to_iter(self._compressed, write_size=self.piece_bytes):
            given += len(piece)
            yield piece
            self._release_pages()
        if given != self.size:
            raise CorruptMessage(f"a stored message is {given} bytes; its frame says {self.size}")

    def close(self) -> None:
        if self._txn is not None:
            self._compressed = None  # (a view into the map, valid only within the txn)
            self._txn.abort()
            self._txn = None
            self._release_pages()

    def __enter__(self) -> MessagePieces:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _mark_copy(old: dict, new: dict, totals: _Totals) -> bool:
    """A mirror peer's copy of a message stored here before, from elsewhere (archived here,
    or another peer's copy): the first such copy from each peer is given a number of its
    own, as a new message is, in old["copies"] (peer node id -> number), so that retention
    keeps it until that peer's holds are known here (services.policy.peer_copies) as it
    keeps a copy new here. Returns whether `old` changed."""
    kind, _, node = new["source"].partition(":")
    if kind != "mirror" or new["source"] == old["source"] or node in old.get("copies", {}):
        return False
    old.setdefault("copies", {})[node] = totals.add("numbers", 1)
    return True


class _Totals:
    """The counters and log ends a batch of puts moves, kept while its transaction runs
    and the counters written once at its end (write()): a batch reads and writes each
    counter once, not once per message."""

    def __init__(self, txn, db: dict):
        self.txn, self.db = txn, db
        self.counters: dict[str, int] = {}
        self.last_seq: dict[str, int] = {}

    def add(self, name: str, delta: int) -> int:
        """The counter `name` moved by `delta`; returns its new value."""
        if name not in self.counters:
            current = self.txn.get(name.encode(), db=self.db["counters"])
            self.counters[name] = int(current) if current else 0
        self.counters[name] += delta
        return self.counters[name]

    def append(self, log: str, value: bytes) -> int:
        """`value` appended to `log` (arrival, outbox); returns its sequence number."""
        if log not in self.last_seq:
            self.last_seq[log] = _log_end_in(self.txn, self.db[log])
        self.last_seq[log] += 1
        self.txn.put(_seq_key(self.last_seq[log]), value, db=self.db[log], append=True)
        return self.last_seq[log]

    def write(self) -> None:
        for name, value in self.counters.items():
            self.txn.put(name.encode(), str(value).encode(), db=self.db["counters"])


def _append_logs(totals: _Totals, key: bytes, local: bool) -> None:
    totals.append("arrival", key)
    if local:  # copies from a peer are never sent on
        totals.append("outbox", key)


def _message_id_key(message_id: str) -> bytes:
    """The msgid table's key of a Message-ID: its UTF-8, at most 500 bytes (LMDB's key
    limit is 511). An 8-bit header decodes to lone surrogates, which strict UTF-8 refuses:
    they are written as their code points ("surrogatepass"), one key for one text."""
    return message_id.encode("utf-8", "surrogatepass")[:500]


def _key(digest: str) -> bytes:
    try:
        key = bytes.fromhex(digest)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise NotFound(f"{digest!r} is not a message digest (64 hex digits)")
    return key


def _journal_key(*parts: str) -> bytes:
    # NUL cannot occur in account names or keys, so one account's keys never run into another's.
    return "\0".join(parts).encode("utf-8", "surrogatepass")[:500]


def _check_one(decompressor, key: bytes, compressed: bytes) -> str | None:
    try:
        raw = decompressor.decompress(compressed)
    except zstandard.ZstdError as exc:
        return f"cannot decompress ({exc})"
    if hashlib.sha256(raw).digest() != key:
        return "content does not match its digest"
    return None
