"""A zip written in one pass to a stream that need not be seekable, in memory that does
not grow with the number of members: each member's central directory record is spooled
to an unnamed temporary file as soon as the member is written, and copied out at the end.

Python's zipfile keeps a ZipInfo per member until close (about 540 bytes each: over half
a GB for an export of a million messages); this writer keeps a counter.

The format is PKWARE's APPNOTE.TXT (6.3.x), as Python's zipfile writes it to an
unseekable stream: a local file header whose CRC-32 and sizes are zero (general purpose
flag bit 3), the deflated data (method 8), a data descriptor with the CRC-32 and sizes
(section 4.3.9), then the central directory (4.3.12) and the end of central directory
record (4.3.16). ZIP64 (4.3.14, 4.3.15, 4.5.3) where a size or offset passes 2**31 - 1
(zipfile's limit: some readers take these fields as signed) or there are more than 65,535
members.
"""
from __future__ import annotations

import datetime as dt
import struct
import tempfile
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

ZIP64_LIMIT = (1 << 31) - 1           # as zipfile.ZIP64_LIMIT
MAX_ENTRIES = 0xFFFF                  # the end record's 16-bit member counts
DEFLATED = 8
DATA_DESCRIPTOR_FLAG = 0x08           # CRC-32 and sizes follow the data
UTF8_FLAG = 0x800                     # the name is UTF-8 (APPNOTE appendix D)
UNIX = 3                              # "version made by", upper byte: UNIX
VERSION_DEFAULT, VERSION_ZIP64 = 20, 45
UNIX_FILE_0644 = 0o644 << 16         # rw-r--r-- once unpacked (zipfile's default: 0600)
ZIP64_EXTRA = 0x0001
LOCAL_HEADER = struct.Struct("<4sHHHHHLLLHH")
DATA_DESCRIPTOR = struct.Struct("<4sLLL")
DATA_DESCRIPTOR64 = struct.Struct("<4sLQQ")
CENTRAL_HEADER = struct.Struct("<4s4B4HL2L5H2L")  # as zipfile.structCentralDir
END64 = struct.Struct("<4sQHHLLQQQQ")
END64_LOCATOR = struct.Struct("<4sLQL")
END = struct.Struct("<4sHHHHLLH")
COPY_CHUNK = 1024 * 1024


class ZipStream:
    """A zip being written to `output` (any object with write(bytes)). Use as a context
    manager: leaving it normally writes the central directory; leaving it on an exception
    writes nothing more. Either way the spool, an unnamed file in `spool_dir` (the data
    disk, not a RAM /tmp; None: tempfile's default), is gone."""

    def __init__(self, output: BinaryIO, spool_dir: Path | str | None = None):
        self._output = output
        self.offset = 0                   # bytes written to output so far
        self.entries = 0
        self._central = tempfile.TemporaryFile(dir=spool_dir, prefix="export-zip-")
        self._when = _dos_time(dt.datetime.now())

    def __enter__(self) -> "ZipStream":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        try:
            if kind is None:
                self._write_central_directory()
        finally:
            self._central.close()

    def add(self, name: str, data: bytes) -> None:
        """Write the member `name` holding `data`."""
        with self.member(name, zip64=len(data) * 1.05 > ZIP64_LIMIT) as writer:
            writer.write(data)

    @contextmanager
    def member(self, name: str, zip64: bool = False) -> Iterator["_MemberWriter"]:
        """A writer for the member `name`, written as it goes; `zip64`: it may pass 2 GiB
        (else ValueError when it does). Members must be written one after the other."""
        encoded, flags = _name_bytes(name)
        header_offset = self.offset
        extra = struct.pack("<HHQQ", ZIP64_EXTRA, 16, 0, 0) if zip64 else b""
        limit = 0xFFFFFFFF if zip64 else 0
        version = VERSION_ZIP64 if zip64 else VERSION_DEFAULT
        self._write(LOCAL_HEADER.pack(b"PK\x03\x04", version, flags, DEFLATED, *self._when,
                                      0, limit, limit, len(encoded), len(extra))
                    + encoded + extra)
        writer = _MemberWriter(self._write)
        yield writer
        crc, compressed, size = writer.finish()
        if not zip64 and max(compressed, size) > ZIP64_LIMIT:
            raise ValueError(f"{name}: {size} bytes, more than a member without ZIP64 holds")
        descriptor = DATA_DESCRIPTOR64 if zip64 else DATA_DESCRIPTOR
        self._write(descriptor.pack(b"PK\x07\x08", crc, compressed, size))
        self._central.write(self._central_record(encoded, flags, zip64, crc, compressed,
                                                 size, header_offset))
        self.entries += 1

    def _central_record(self, encoded: bytes, flags: int, zip64: bool, crc: int,
                        compressed: int, size: int, header_offset: int) -> bytes:
        """The member's central directory file header (APPNOTE 4.3.12): a field past
        ZIP64_LIMIT is 0xFFFFFFFF there and its value in the ZIP64 extra field (4.5.3),
        in the order uncompressed size, compressed size, local header offset."""
        wide = [value for value in (size, compressed, header_offset) if value > ZIP64_LIMIT]
        extra = (struct.pack(f"<HH{len(wide)}Q", ZIP64_EXTRA, 8 * len(wide), *wide)
                 if wide else b"")
        version = VERSION_ZIP64 if zip64 or wide else VERSION_DEFAULT

        def narrow(value: int) -> int:
            return 0xFFFFFFFF if value > ZIP64_LIMIT else value
        return CENTRAL_HEADER.pack(
            b"PK\x01\x02", version, UNIX, version, 0, flags, DEFLATED, *self._when, crc,
            narrow(compressed), narrow(size), len(encoded), len(extra), 0, 0, 0,
            UNIX_FILE_0644, narrow(header_offset)) + encoded + extra

    def _write_central_directory(self) -> None:
        """Copy the spooled central directory out, then the end records (APPNOTE 4.3.14
        to 4.3.16; the ZIP64 ones only where a count, size or offset needs them)."""
        start, size = self.offset, self._central.tell()
        self._central.seek(0)
        while chunk := self._central.read(COPY_CHUNK):
            self._write(chunk)
        if self.entries > MAX_ENTRIES or max(start, size) > ZIP64_LIMIT:
            end64 = self.offset
            self._write(END64.pack(b"PK\x06\x06", END64.size - 12, VERSION_ZIP64,
                                   VERSION_ZIP64, 0, 0, self.entries, self.entries, size,
                                   start))
            self._write(END64_LOCATOR.pack(b"PK\x06\x07", 0, end64, 1))
        count = min(self.entries, MAX_ENTRIES)
        self._write(END.pack(b"PK\x05\x06", 0, 0, count, count, min(size, 0xFFFFFFFF),
                             min(start, 0xFFFFFFFF), 0))

    def _write(self, data: bytes) -> None:
        self._output.write(data)
        self.offset += len(data)


class _MemberWriter:
    """Deflates what it is given into the zip, keeping the CRC-32 and both sizes."""

    def __init__(self, write):
        self._write = write
        self._deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        self.crc = self.size = self.compressed = 0

    def write(self, data: bytes) -> int:
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)
        self._emit(self._deflate.compress(data))
        return len(data)

    def finish(self) -> tuple[int, int, int]:
        """(CRC-32, compressed size, uncompressed size) once the deflate stream is ended."""
        self._emit(self._deflate.flush())
        return self.crc, self.compressed, self.size

    def _emit(self, data: bytes) -> None:
        if data:
            self._write(data)
            self.compressed += len(data)


def _name_bytes(name: str) -> tuple[bytes, int]:
    """A member name as stored and its flags: ASCII as is, else UTF-8 with bit 11 set."""
    try:
        return name.encode("ascii"), DATA_DESCRIPTOR_FLAG
    except UnicodeEncodeError:
        return name.encode("utf-8"), DATA_DESCRIPTOR_FLAG | UTF8_FLAG


def _dos_time(when: dt.datetime) -> tuple[int, int]:
    """(time, date) in MS-DOS format (APPNOTE 4.4.6): 2-second steps, years from 1980."""
    return ((when.hour << 11) | (when.minute << 5) | (when.second // 2),
            ((max(when.year, 1980) - 1980) << 9) | (when.month << 5) | when.day)
