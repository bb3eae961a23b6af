"""A seekable binary file read as bytes are: code written for bytes (cms_der's and
tnef_stream's walks of headers, Base64File's pieces) reads a file of tens of MB through it
a slice at a time, never holding it whole.

A walk reads a few bytes at each header (9 for a TNEF attribute, 2 to 6 for a DER element),
header after header: each read of the file (a Base64File decodes a piece of base64 for it)
would cost some microseconds, so the bytes around a small read are kept (WINDOW_BYTES of
them) and the next small read taken from them when it falls there.
"""
from __future__ import annotations

import io
from collections.abc import Iterator
from typing import BinaryIO

WINDOW_BYTES = 1 << 16  # read at once for a small slice, and kept for the next ones


class FileBytes:
    """The bytes of a seekable binary file `file` (its first `size` bytes: by default all
    of it, measured by seeking to its end): len() is that size, [start:stop] the bytes
    there (bytes, clipped as a slice of bytes is; a step other than 1 raises ValueError),
    [index] the byte there as an int (IndexError past the end). Each slice is read when
    asked for; the file's position is this object's to move. Not thread-safe."""

    def __init__(self, file: BinaryIO, size: int | None = None):
        self.file = file
        self.size = file.seek(0, io.SEEK_END) if size is None else size
        self._window = (0, b"")  # (where it starts, the bytes kept)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: slice | int) -> bytes | int:
        if isinstance(key, slice):
            start, stop, step = key.indices(self.size)
            if step != 1:
                raise ValueError("FileBytes slices take no step")
            return self._read(start, max(start, stop))
        index = key + self.size if key < 0 else key
        if not 0 <= index < self.size:
            raise IndexError("FileBytes index out of range")
        return self._read(index, index + 1)[0]

    def startswith(self, prefix: bytes) -> bool:
        return self[:len(prefix)] == prefix

    def _read(self, start: int, stop: int) -> bytes:
        """The bytes from `start` to `stop` (both within the size)."""
        at, kept = self._window
        if at <= start and stop <= at + len(kept):
            return kept[start - at:stop - at]
        if stop - start > WINDOW_BYTES:  # a large read: given as it is, not kept
            return self._read_file(start, stop - start)
        self._window = (start, self._read_file(start, min(WINDOW_BYTES, self.size - start)))
        return self._window[1][:stop - start]

    def _read_file(self, start: int, count: int) -> bytes:
        self.file.seek(start)
        return self.file.read(count)


def spliced_chunks(source: bytes | FileBytes, pieces: list[tuple[int, int] | bytes],
                   size: int) -> Iterator[bytes]:
    """The bytes `pieces` stand for, in order, a chunk of at most `size` bytes at a time:
    each piece is the source's bytes from start to end ((start, end)), or bytes of its own
    (given whole)."""
    for piece in pieces:
        if isinstance(piece, bytes):
            yield piece
            continue
        for at in range(piece[0], piece[1], size):
            yield source[at:min(at + size, piece[1])]
