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


END_OF_DATA = b"\r\n.\r\n"  # the lone dot's line; its CR LF before it is the data's
DOT_LINE = b"\r\n."  # a line that starts with a dot: stuffed (RFC 5321 4.5.2), or the end
LINE_START = b"\r\n"  # only CR LF starts a line (a bare LF or CR does not)
YIELD_EVERY_PIECES = 64  # a piece that ends soon after the last one has not waited for bytes


async def receive_data(reader: asyncio.StreamReader, spool: DataSpool, limit: int | None,
                       heard_from: Callable[[], None]) -> DataResult:
    """Read DATA up to the lone dot into `spool`, calling heard_from() as bytes arrive (the
    idle timer). Past `limit` bytes the rest is read and dropped (552 later, RFC 5321
    4.2.5: the reply comes after the data). Raises what the reader raises on a lost
    connection.

    The bytes are read in pieces, not line by line: up to the next line that starts with a
    dot (a stuffed line or the end, rare in between) or READ_LIMIT_BYTES, each unstuffed
    with one bytes.replace (C speed), so a message costs a few steps of the event loop
    however many lines it has. Where the bytes read so far end in a beginning of
    END_OF_DATA, exactly as many bytes are read as would complete it (_deciding_bytes),
    never more: the next command may follow at once. `context`, the wire's last bytes
    before a piece, says whether the piece starts a line and ends the data, also when a
    piece boundary falls inside CR LF . CR LF."""
    context, size, pieces = LINE_START, 0, 0  # the data starts a line
    held = b""  # a CR that ends the bytes read and may be the end's: written once it is not
    while True:
        deciding = _deciding_bytes(context)
        if deciding:
            piece = await reader.readexactly(deciding)
        else:
            piece = await _read_to_a_dot_line(reader)
        heard_from()
        ends = bool(deciding) and (context + piece).endswith(END_OF_DATA)
        seen = context[-len(LINE_START):] + piece
        if ends:  # ". CR LF" goes, and `held` (its CR); its dot went if read before
            seen = seen[:len(seen) - min(len(piece), len(END_OF_DATA) - len(LINE_START))]
        # RFC 5321 4.5.2: the first dot of each line goes. A dot removed is always past the
        # two bytes before the piece, so cutting them off leaves exactly this piece's bytes.
        data = seen.replace(DOT_LINE, LINE_START)[len(LINE_START):]
        context = (context + piece)[-len(END_OF_DATA):]
        if not ends:
            data = held + data
            held = data[-1:] if context.endswith(END_OF_DATA[:-1]) else b""
            data = data[:len(data) - len(held)]
        size += len(data)
        if limit is None or size <= limit:
            spool.write(data)
        if ends:
            break
        pieces += 1
        if pieces % YIELD_EVERY_PIECES == 0:  # a sender of many tiny lines lets others in
            await asyncio.sleep(0)
    spool.flush()
    return DataResult(size, limit is not None and size > limit)


def _deciding_bytes(context: bytes) -> int:
    """How many bytes to read after `context` to know whether END_OF_DATA ends there: when
    `context` ends in a beginning of it, the rest of it; else 0. Never past the end: if
    the data ends there, exactly that many bytes are left of it; if not, more are."""
    for length in range(len(END_OF_DATA) - 1, 0, -1):
        if context.endswith(END_OF_DATA[:length]):
            return len(END_OF_DATA) - length
    return 0


async def _read_to_a_dot_line(reader: asyncio.StreamReader) -> bytes:
    """The bytes up to and with the next DOT_LINE, or at most READ_LIMIT_BYTES without one;
    never a piece that ends inside a DOT_LINE."""
    try:
        return await reader.readuntil(DOT_LINE)
    except asyncio.LimitOverrunError as over:  # no dot line near: take what came
        # over.consumed never cuts a DOT_LINE in two; fewer bytes never do either.
        return await reader.read(min(over.consumed, READ_LIMIT_BYTES))
