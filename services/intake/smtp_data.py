"""Receiving one message's DATA (RFC 5321 4.1.1.4) into a spool, never whole in memory.

The first IN_MEMORY_BYTES stay in memory (most mail is smaller); the rest goes to an
unnamed file in the spool directory (O_TMPFILE: it never has a name, so it is gone when
closed, and a crash leaves nothing behind). Lines are unstuffed (RFC 5321 4.5.2) and may be
of any length: a long line is read in pieces, so memory never depends on the sender's line
breaks. Only CR LF . CR LF ends the data (a bare LF never does: no SMTP smuggling).
"""
from __future__ import annotations

import asyncio
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

IN_MEMORY_BYTES = 1024 * 1024
WRITE_BATCH_BYTES = 64 * 1024  # lines are gathered into writes of this size
READ_LIMIT_BYTES = 64 * 1024  # a session's StreamReader limit: it buffers up to twice this
ASYNCIO_READ_BYTES = 256 * 1024  # and one read of the transport more
# What one session receiving DATA holds in memory at most (models.yaml: 1.5 MiB).
SESSION_MEMORY_BYTES = (IN_MEMORY_BYTES + WRITE_BATCH_BYTES + 2 * READ_LIMIT_BYTES
                        + ASYNCIO_READ_BYTES)


class DataSpool:
    """One message's bytes as received: size in bytes, take() them back, close() to free.
    Writing stops being possible after an OSError (a full disk); `error` says which."""

    def __init__(self, directory: Path, in_memory_bytes: int = IN_MEMORY_BYTES):
        self._file = tempfile.SpooledTemporaryFile(max_size=in_memory_bytes, dir=directory)
        self._batch = bytearray()
        self._closing = threading.Lock()
        self.size = 0
        self.error: OSError | None = None

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.error is None:
            self._batch += data
            if len(self._batch) >= WRITE_BATCH_BYTES:
                self.flush()

    def flush(self) -> None:
        try:
            if self.error is None:
                self._file.write(self._batch)
                self._file.flush()  # a full disk fails here, not when the message is read
        except OSError as exc:  # ENOSPC, EIO, a spool directory gone: the message fails
            self.error = exc
        self._batch.clear()

    def take(self) -> bytes:
        """All bytes written (after flush()), and close: the store's thread calls this, the
        session may close() at the same time when its client hangs up. Raises ValueError
        when closed first."""
        with self._closing:
            self._file.seek(0)
            try:
                return self._file.read()
            finally:
                self._file.close()

    def close(self) -> None:
        with self._closing:
            try:
                self._file.close()
            except OSError:  # what could not be written: the message failed (self.error)
                pass


@dataclass
class DataResult:
    size: int          # bytes of the message (after unstuffing), also past the limit
    too_big: bool      # over the limit: what came past it was read and dropped


async def receive_data(reader: asyncio.StreamReader, spool: DataSpool, limit: int | None,
                       heard_from: Callable[[], None]) -> DataResult:
    """Read DATA up to the lone dot into `spool`, calling heard_from() as bytes arrive (the
    idle timer). Past `limit` bytes the rest is read and dropped (552 later, RFC 5321
    4.2.5: the reply comes after the data). Raises what the reader raises on a lost
    connection."""
    at_line_start, size = True, 0
    while True:
        try:
            piece = await reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError as over:  # a long line: take what came of it
            piece = await reader.read(over.consumed)
        heard_from()
        if at_line_start:
            if piece == b".\r\n":
                break
            if piece.startswith(b"."):
                piece = piece[1:]
        at_line_start = piece.endswith(b"\r\n")
        size += len(piece)
        if limit is None or size <= limit:
            spool.write(piece)
    spool.flush()
    return DataResult(size, limit is not None and size > limit)
