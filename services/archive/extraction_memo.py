"""What reading a piece of content cost before: its failures, remembered by SHA-256.

A hostile attachment (a PDF that sends pypdf into an endless loop, a decompression bomb)
costs the extraction worker its whole time limit and a restart. Remembered by the SHA-256
of its bytes, the same attachment in the next message, after a restart of the indexer or
during a reindex costs a lookup instead. The same goes for a whole message whose failure no
single attachment explains (keyed by the message's digest).

Kept in the store's LMDB environment, named database "extraction" (added beside the others;
stores written before it simply gain it, nothing else changes on disk):

  f + SHA-256 (32 bytes)  -> JSON {"reason": str, "firmware": str, "seq": int}
  o + seq (8 bytes, BE)   -> SHA-256                 (oldest first: what is forgotten first)
  seq                     -> the last seq given out

At most `capacity` failures are kept (oldest forgotten first), each reason at most
REASON_BYTES: about 1 KB per entry with LMDB's overhead, so 10 MB for the default capacity.
A failure recorded by another firmware version is not trusted: a new extractor may read what
the old one could not, so it gets one try of its own.
"""
from __future__ import annotations

import json
import struct
from collections import OrderedDict
from typing import TYPE_CHECKING

from firmware.version import current_version

if TYPE_CHECKING:  # the extraction workers import this module; they never open the store
    from services.archive.store import Store

DATABASE = "extraction"
CAPACITY = 10_000
REASON_BYTES = 500
_FAILURE, _ORDER, _SEQ = b"f", b"o", b"seq"


class ExtractionMemo:
    """Failures of extraction by content SHA-256, durable in the store (thread-safe: every
    call is one LMDB transaction)."""

    def __init__(self, store: Store, capacity: int = CAPACITY):
        self.env, self.db = store.env, store.db[DATABASE]
        self.capacity = capacity
        self.firmware = str(current_version())

    def failure(self, sha256_hex: str) -> str | None:
        """Why reading the content with this SHA-256 (64 hex digits) failed before, or None
        when it did not (or only under another firmware version)."""
        with self.env.begin() as txn:
            data = txn.get(_FAILURE + bytes.fromhex(sha256_hex), db=self.db)
        if data is None:
            return None
        record = json.loads(data)
        return record["reason"] if record.get("firmware") == self.firmware else None

    def remember_failure(self, sha256_hex: str, reason: str) -> None:
        """Remember, durably, that reading this content failed and why; forget the oldest
        failure once more than `capacity` are kept."""
        key = bytes.fromhex(sha256_hex)
        reason = reason.encode("utf-8", "replace")[:REASON_BYTES].decode("utf-8", "ignore")
        with self.env.begin(write=True, db=self.db) as txn:
            old = txn.get(_FAILURE + key)
            if old is not None:
                txn.delete(_ORDER + _seq_key(json.loads(old)["seq"]))
            seq = int(txn.get(_SEQ) or b"0") + 1
            txn.put(_SEQ, str(seq).encode())
            txn.put(_ORDER + _seq_key(seq), key)
            txn.put(_FAILURE + key, json.dumps(
                {"reason": reason, "firmware": self.firmware, "seq": seq}).encode())
            self._forget_oldest(txn)

    def __len__(self) -> int:
        with self.env.begin() as txn:
            return (txn.stat(self.db)["entries"] - 1) // 2 if txn.get(_SEQ, db=self.db) else 0

    def _forget_oldest(self, txn) -> None:
        excess = (txn.stat(self.db)["entries"] - 1) // 2 - self.capacity
        if excess <= 0:
            return
        cursor = txn.cursor()
        cursor.set_range(_ORDER)
        for _ in range(excess):
            txn.delete(_FAILURE + cursor.value())
            cursor.delete()  # moves to the next order entry


class MemoryMemo:
    """The same, for the lifetime of one pool only (a pool given no store: tests, tools)."""

    def __init__(self, capacity: int = CAPACITY):
        self.capacity = capacity
        self._failures: OrderedDict[str, str] = OrderedDict()

    def failure(self, sha256_hex: str) -> str | None:
        return self._failures.get(sha256_hex)

    def remember_failure(self, sha256_hex: str, reason: str) -> None:
        self._failures.pop(sha256_hex, None)
        self._failures[sha256_hex] = reason[:REASON_BYTES]
        while len(self._failures) > self.capacity:
            self._failures.popitem(last=False)

    def __len__(self) -> int:
        return len(self._failures)


def _seq_key(seq: int) -> bytes:
    return struct.pack(">Q", seq)


class TextMemo:
    """Text read from documents, by the SHA-256 of their bytes and how they were read (type,
    charset), in memory and least recently used first out, at most `capacity_bytes` of text
    (counted as UTF-8): the same attachment in many messages (a policy PDF mailed to all
    staff, a journaled message once per recipient) is read by its library once. Not
    durable, on purpose: a memory of successes must not outlive the code that read them."""

    def __init__(self, capacity_bytes: int):
        self.capacity_bytes, self.size = capacity_bytes, 0
        self._texts: OrderedDict[str, tuple[str, int]] = OrderedDict()

    def text(self, key: str) -> str | None:
        found = self._texts.get(key)
        if found is None:
            return None
        self._texts.move_to_end(key)
        return found[0]

    def remember(self, key: str, text: str) -> None:
        size = len(text.encode("utf-8", "replace")) + len(key)
        if size > self.capacity_bytes // 4:
            return  # one big text would push out many small ones
        if key in self._texts:
            self.size -= self._texts.pop(key)[1]
        self._texts[key] = (text, size)
        self.size += size
        while self.size > self.capacity_bytes:
            self.size -= self._texts.popitem(last=False)[1][1]

    def __len__(self) -> int:
        return len(self._texts)
