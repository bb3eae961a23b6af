"""A zip member's bytes as zipfile reads them, expanded no faster than they are asked for.

zipfile's reader of a deflated member asks zlib for at most the bytes wanted, but its
readers of bzip2 (APPNOTE 4.4.5 method 12) and LZMA (method 14) members expand each chunk
of compressed bytes they read whole: 342 bytes of bzip2 (a member whose header claims 1,000
bytes) were 557 MiB in the extraction worker before any read limit could cut them (review
r26 F4). open_member reads such a member's compressed bytes through zipfile (as a stored
member of their size) and expands them with the library's own max_length, giving what
zipfile gives: cut at the header's size, its CRC-32 checked at its end.
"""
from __future__ import annotations

import bz2
import copy
import io
import lzma
import struct
import zipfile
import zlib
from typing import BinaryIO, Iterator

RAW_CHUNK_BYTES = 64 * 1024  # compressed bytes read at a time
EXPANDED_ELSEWHERE = (zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)


def open_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> BinaryIO:
    """archive.open(info), but a bzip2 or LZMA member expanded at most the bytes each read
    asks for. Raises what archive.open raises (zipfile.BadZipFile, NotImplementedError,
    ValueError, OSError...); reading raises zipfile.BadZipFile("Bad CRC-32 ...") as
    zipfile's does, and what bz2 and lzma raise of a damaged stream."""
    if info.compress_type not in EXPANDED_ELSEWHERE:
        return archive.open(info)
    compressed = copy.copy(info)
    compressed.compress_type = zipfile.ZIP_STORED
    compressed.file_size = info.compress_size
    del compressed.CRC  # (of the expanded bytes: checked by _Expanding)
    return io.BufferedReader(_Expanding(archive.open(compressed), info))


class _Expanding(io.RawIOBase):
    """The expanded bytes of a bzip2 or LZMA member whose compressed bytes `raw` gives."""

    def __init__(self, raw: BinaryIO, info: zipfile.ZipInfo):
        super().__init__()
        self._raw, self._name, self._expected_crc = raw, info.filename, info.CRC
        self._left = info.file_size  # zipfile cuts a member at its header's size
        self._crc = 0
        self._lzma = info.compress_type == zipfile.ZIP_LZMA
        self._decompressor = None  # made at the first read (LZMA's reads its properties)
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        """Up to len(buffer) bytes, each piece expanded into it as it comes (a read of a
        member of 32 MiB holds it once); fewer only at the member's end."""
        wanted, done = min(len(buffer), self._left), 0
        with memoryview(buffer).cast("B") as target:
            for piece in self._expanded(wanted) if wanted > 0 and not self._ended else ():
                target[done:done + len(piece)] = piece
                self._crc = zlib.crc32(piece, self._crc)
                done += len(piece)
        self._left -= done
        if not done or self._left <= 0:
            self._end()
        return done

    def _expanded(self, wanted: int) -> Iterator[bytes]:
        """Pieces of up to `wanted` bytes in all, fewer only where the compressed bytes
        end."""
        if self._decompressor is None:
            self._decompressor = _lzma_decompressor(self._raw) if self._lzma \
                else bz2.BZ2Decompressor()
        decompressor = self._decompressor
        while decompressor is not None and wanted > 0 and not decompressor.eof:
            data = b""
            if decompressor.needs_input:
                data = self._raw.read(RAW_CHUNK_BYTES)
                if not data:
                    return
            piece = decompressor.decompress(data, max_length=wanted)
            wanted -= len(piece)
            yield piece

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            if self._crc != self._expected_crc:
                raise zipfile.BadZipFile(f"Bad CRC-32 for file {self._name!r}")

    def close(self) -> None:
        self._raw.close()
        super().close()


def _lzma_decompressor(raw: BinaryIO) -> lzma.LZMADecompressor | None:
    """The decompressor of an LZMA member as zipfile reads its format (a version, the size
    of the properties, the properties, then raw LZMA1), or None when they are cut short."""
    head = raw.read(4)
    if len(head) < 4:
        return None
    size = struct.unpack("<H", head[2:4])[0]
    properties = raw.read(size)
    if len(properties) < size:
        return None
    return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[
        lzma._decode_filter_properties(lzma.FILTER_LZMA1, properties)])
