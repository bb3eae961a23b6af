"""What reading a message gave, kept so that indexing it again need not read it again.

Reading a message (services.archive.extract: MIME parsing, charsets, HTML, attachments,
containers) is most of what indexing it costs. Its result, the Extracted with its text, is
kept in the store's "reading" database (services.archive.store) once the message is
indexed; a reindex (a new index schema, a rebuild) then builds each document from it
instead of from the raw message. A reading is derived data: the raw message stays the
truth, and a reading that is missing, of another READING_VERSION or unreadable is simply
read again from the message.

Kept only for a message read whole, without failures (a time limit or a memory limit hit
under load may go another way next time). Deleted with its message (Store.delete).

Encoding: READING_VERSION as 2 bytes, big-endian, then zstd(JSON of the Extracted's
summary, body, attachments and encrypted flag).
"""
from __future__ import annotations

import dataclasses
import json
import struct

import zstandard

from services.archive import mime
from services.archive.extract import AttachmentText, Extracted

__all__ = ["READING_VERSION", "StaleReading", "decode", "encode", "is_current"]
# Bump it whenever extract() would read a message differently (what it finds, how text is
# cut, summary fields): every kept reading is then read again from its message.
# tests/unit/archive/test_readings.py fails when the reading code changes without a
# decision about this number.
READING_VERSION = 1
_VERSION = struct.Struct(">H")
_compressor = zstandard.ZstdCompressor(level=3)
_decompressor = zstandard.ZstdDecompressor()


class StaleReading(ValueError):
    """A kept reading this code cannot use (another version, or damaged)."""


def encode(extracted: Extracted) -> bytes | None:
    """The reading of a message as kept (bytes, see the module's docstring), or None when
    it is not kept: the reading had failures, or its text was dropped already."""
    if extracted.failures or extracted.text_bytes is not None or extracted.document is not None:
        return None
    record = {"summary": dataclasses.asdict(extracted.summary), "body": extracted.body,
              "attachments": [dataclasses.asdict(item) for item in extracted.attachments],
              "encrypted": extracted.encrypted}
    data = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8",
                                                                               "surrogatepass")
    return _VERSION.pack(READING_VERSION) + _compressor.compress(data)


def is_current(data: bytes) -> bool:
    """Whether a kept reading is of this code's READING_VERSION."""
    return len(data) >= _VERSION.size and _VERSION.unpack_from(data)[0] == READING_VERSION


def decode(data: bytes) -> Extracted:
    """The Extracted a kept reading holds. Raises StaleReading for another version or
    damaged bytes."""
    if not is_current(data):
        raise StaleReading("a reading of another version")
    try:
        record = json.loads(_decompressor.decompress(data[_VERSION.size:])
                            .decode("utf-8", "surrogatepass"))
        summary = mime.MessageSummary(**record["summary"])
        attachments = [AttachmentText(**item) for item in record["attachments"]]
        return Extracted(summary, record["body"], attachments, encrypted=record["encrypted"])
    except (zstandard.ZstdError, ValueError, KeyError, TypeError) as exc:
        raise StaleReading(f"a damaged reading: {type(exc).__name__}: {exc}") from None
