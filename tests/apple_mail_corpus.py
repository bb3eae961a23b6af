"""What Apple Mail (macOS) leaves for an import, made up: "Export Mailbox..." bundles
(NAME.mbox/ holding mbox, Info.plist in XML or binary, and table_of_contents in older
versions) and its own store (~/Library/Mail/V10: MailData's SQLite and property lists,
accounts' NAME.mbox/UUID/Data/N/N/Messages/*.emlx and *.partial.emlx, Attachments/ beside
Messages/), as services.archive.apple_mail describes them.

Each builder writes files under a root and returns what an import of them must give:
`Expected` (the exact bytes of each message stored, and the labels, relative to the root,
listed as skipped)."""
from __future__ import annotations

import os
import plistlib
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

FROM_LINE = b"From MAILER-DAEMON Mon Jan  1 00:00:00 2024\n"
NEXT_TOC_MAGIC = b"\x00\x0d\x97\x58"


@dataclass
class Expected:
    stored: list[bytes] = field(default_factory=list)   # each message's exact bytes
    skipped: list[str] = field(default_factory=list)    # labels relative to the root
    failed: list[str] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)    # stored with a warning: partial

    def add(self, other: Expected) -> Expected:
        for name in ("stored", "skipped", "failed", "partial"):
            getattr(self, name).extend(getattr(other, name))
        return self

    def under(self, folder: str) -> Expected:
        """The same, its labels relative to the folder above `folder` (built in it)."""
        return Expected(list(self.stored), *([f"{folder}/{label}" for label in labels]
                                             for labels in (self.skipped, self.failed,
                                                            self.partial)))


def message(word: str, crlf: bool = False, body: bytes = b"") -> bytes:
    """A message whose body holds `word` (searchable), its lines ended LF or CRLF."""
    text = (f"From: Alice <alice@example.com>\nTo: bob@example.com\nSubject: {word} report\n"
            f"Date: Tue, 02 Jan 2024 10:00:00 +0000\nMessage-ID: <{word}@example.com>\n\n"
            f"The {word} figures are attached.\n").encode() + body
    return text.replace(b"\n", b"\r\n") if crlf else text


def info_plist(binary: bool) -> bytes:
    settings = {"MailboxDisplayName": "Projects", "IsArchive": False, "SortOrder": 1}
    return plistlib.dumps(settings, fmt=plistlib.FMT_BINARY if binary else plistlib.FMT_XML)


def table_of_contents(messages: int) -> bytes:
    """NeXT Mail's index: a 32-byte big-endian header (magic, count, mbox mtime, 5 words),
    then a record per message (offset, length, flags...)."""
    header = NEXT_TOC_MAGIC + struct.pack(">II5I", messages, 1704067200, 0, 0, 0, 0, 0)
    return header + b"".join(struct.pack(">IIII", 100 * n, 99, 0, 0) for n in range(messages))


SQLITE_PAGE = 4096


def sqlite_database(pages: int = 2) -> bytes:
    """An SQLite database's file as its header makes it (sqlite.org/fileformat2.html): the
    magic, a page size, format versions 1 and 1, no reserved bytes, the payload fractions
    64, 32, 32; whole pages."""
    header = (b"SQLite format 3\x00" + struct.pack(">H", SQLITE_PAGE) + b"\x01\x01\x00"
              + b"\x40\x20\x20")
    return header.ljust(SQLITE_PAGE * pages, b"\x00")


def sqlite_wal(frames: int = 1) -> bytes:
    """A write-ahead log: its 32-byte header (magic, version 3007000, page size), then
    `frames` frames of a 24-byte header and a page."""
    header = struct.pack(">IIII", 0x377F0682, 3007000, SQLITE_PAGE, 0).ljust(32, b"\x00")
    return header + bytes((24 + SQLITE_PAGE) * frames)


def sqlite_shm(blocks: int = 1) -> bytes:
    """A shared-memory index: version 3007000 first (little-endian, as x86 and Apple
    silicon write it), whole 32 KiB blocks."""
    return struct.pack("<I", 3007000).ljust(32768 * blocks, b"\x00")


def emlx_trailer(received: int = 1704189600, partial: bool = False) -> bytes:
    meta = {"date-received": received, "flags": 8590195713 if not partial else 17213623424,
            "remote-id": "50750", "date-last-viewed": 0}
    return plistlib.dumps(meta, fmt=plistlib.FMT_XML)


def emlx(raw: bytes, count: int | None = None, pad: bool = True, trailer: bytes | None = None
         ) -> bytes:
    """An .emlx of `raw`: its count line (padded to 10 as Apple writes it), the message, the
    property list; `count`: a wrong one."""
    number = str(len(raw) if count is None else count).encode()
    line = number.ljust(10) if pad else number
    return line + b"\n" + raw + (emlx_trailer() if trailer is None else trailer)


def partial_message(word: str) -> bytes:
    """A message as a .partial.emlx holds it: its attachment's MIME header kept with
    X-Apple-Content-Length, its body stored apart."""
    return (f"From: Alice <alice@example.com>\nTo: bob@example.com\nSubject: {word} sheet\n"
            f"Date: Tue, 02 Jan 2024 11:00:00 +0000\nMessage-ID: <{word}@example.com>\n"
            "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=B\n\n"
            f"--B\nContent-Type: text/plain\n\nSee the {word} sheet.\n--B\n"
            "Content-Type: application/pdf; name=sheet.pdf\n"
            "Content-Disposition: attachment; filename=sheet.pdf\n"
            "Content-Transfer-Encoding: base64\nX-Apple-Content-Length: 35967\n\n\n"
            "--B--\n").encode()


def write(root: Path, name: str, data: bytes) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def export_bundle(root: Path, name: str, words: list[str], binary_plist: bool = False,
                  with_toc: bool = True, crlf: bool = False) -> Expected:
    """NAME.mbox/ as "Export Mailbox..." writes it: mbox (a From_ line before each message,
    which is not stored), Info.plist, and table_of_contents if `with_toc`."""
    expected = Expected()
    pieces = []
    for word in words:
        raw = message(word, crlf)
        pieces.append(FROM_LINE + raw)
        expected.stored.append(raw)
    newline = b"\r\n" if crlf else b"\n"
    write(root, f"{name}/mbox", newline.join(pieces))
    write(root, f"{name}/Info.plist", info_plist(binary_plist))
    expected.skipped.append(f"{name}/Info.plist")
    if with_toc:
        write(root, f"{name}/table_of_contents", table_of_contents(len(words)))
        expected.skipped.append(f"{name}/table_of_contents")
    return expected


def store_mailbox(root: Path, mailbox: str, words: list[str], crlf: bool = False,
                  partial_words: tuple[str, ...] = ()) -> Expected:
    """An account's mailbox in Apple Mail's store: MAILBOX/Info.plist and
    MAILBOX/UUID/Data/0/1/Messages/N.emlx (N.partial.emlx for `partial_words`, their
    attachments in Attachments/N/2/ beside Messages/, each listed as skipped: no mail in it)."""
    expected = Expected()
    write(root, f"{mailbox}/Info.plist", info_plist(binary=False))
    expected.skipped.append(f"{mailbox}/Info.plist")
    data = f"{mailbox}/7A1C52E0-3B0F-4C38-9E0B-0C6E2F3A9B11/Data/0/1"
    for number, word in enumerate(words, start=101):
        raw = message(word, crlf)
        write(root, f"{data}/Messages/{number}.emlx", emlx(raw))
        expected.stored.append(raw)
    for number, word in enumerate(partial_words, start=201):
        raw = partial_message(word)
        write(root, f"{data}/Messages/{number}.partial.emlx", emlx(raw))
        write(root, f"{data}/Attachments/{number}/2/sheet.pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        expected.skipped.append(f"{data}/Attachments/{number}/2/sheet.pdf")
        expected.stored.append(raw)
        expected.partial.append(f"{data}/Messages/{number}.partial.emlx")
    return expected


def v10_store(root: Path) -> Expected:
    """~/Library/Mail/V10 of two accounts, with MailData's housekeeping and Finder's."""
    expected = Expected()
    for name, data in (("MailData/Envelope Index", sqlite_database()),
                       ("MailData/Envelope Index-wal", sqlite_wal()),
                       ("MailData/Envelope Index-shm", sqlite_shm()),
                       ("MailData/SyncedRules.plist", plistlib.dumps([], fmt=plistlib.FMT_BINARY)),
                       ("MailData/Signatures/AllSignatures.plist", plistlib.dumps([]))):
        write(root, f"V10/{name}", data)
        expected.skipped.append(f"V10/{name}")
    for account in ("0D3E5F47-1111-4C2A-8A51-6B2E0C9D1A01", "IMAP-bob@mail.example.com"):
        write(root, f"V10/{account}/.mboxCache.plist", info_plist(binary=True))
        write(root, f"V10/{account}/.DS_Store", b"\x00\x00\x00\x01Bud1" + bytes(24))
        expected.skipped += [f"V10/{account}/.DS_Store", f"V10/{account}/.mboxCache.plist"]
        tag = account[:4].lower().replace("-", "")
        expected.add(store_mailbox(root, f"V10/{account}/INBOX.mbox",
                                   [f"inbox{tag}lf", f"budget{tag}"]))
        expected.add(store_mailbox(root, f"V10/{account}/Archive.mbox/2023.mbox",
                                   [f"archive{tag}crlf"], crlf=True,
                                   partial_words=(f"partial{tag}",)))
    write(root, "V10/.DS_Store", b"\x00\x00\x00\x01Bud1")
    expected.skipped.append("V10/.DS_Store")
    return expected


def zipped(tree: Path, path: Path) -> Path:
    """`tree` zipped as Archive Utility does (folders' entries, deflated)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for directory, subdirectories, files in sorted(os.walk(tree)):
            relative = Path(directory).relative_to(tree)
            if relative != Path("."):
                archive.write(directory, f"{relative.as_posix()}/")
            for name in sorted(files):
                archive.write(Path(directory) / name, (relative / name).as_posix())
    return path
