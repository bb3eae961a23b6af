"""What Apple Mail (macOS) leaves for an import, made up: .emlx files (its store's
Messages/*.emlx and *.partial.emlx, as services.archive.apple_mail describes them) and the
files beside them ("Export Mailbox..." bundles' Info.plist and table_of_contents, MailData's
SQLite Envelope Index and property lists), which an import reads as any file."""
from __future__ import annotations

import os
import plistlib
import struct
import zipfile
from pathlib import Path

FROM_LINE = b"From MAILER-DAEMON Mon Jan  1 00:00:00 2024\n"
NEXT_TOC_MAGIC = b"\x00\x0d\x97\x58"


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


def emlx_trailer(received: int = 1704189600, partial: bool = False) -> bytes:
    """Apple's property list after an .emlx's message, as Apple Mail writes it."""
    meta = {"date-received": received, "flags": 8590195713 if not partial else 17213623424,
            "remote-id": "50750", "date-last-viewed": received + 3600,
            "conversation-id": 40117, "subject": "Q4 figures & <draft>",
            "sender": "Alice <alice@example.com>", "to": "bob@example.com",
            "original-mailbox": "imap://bob@imap.example.com/INBOX"}
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


INBOX_DATA = "V10/ACCOUNT/INBOX.mbox/UUID/Data/0/1"  # where a store keeps Messages/


def store_inbox(tree: Path, words: list[str], partial_word: str) -> tuple[list[bytes], bytes]:
    """A store's INBOX under `tree` (V10/...): an .emlx of message(word) for each of `words`
    (CRLF from the second), a .partial.emlx of partial_message(partial_word), and the
    mailbox's Info.plist (binary). Returns the messages and the partial one."""
    stored = [message(word, crlf=number > 0) for number, word in enumerate(words)]
    for number, raw in enumerate(stored, start=101):
        write(tree / INBOX_DATA, f"Messages/{number}.emlx", emlx(raw))
    partial = partial_message(partial_word)
    write(tree / INBOX_DATA, "Messages/201.partial.emlx", emlx(partial))
    write(tree, "V10/ACCOUNT/INBOX.mbox/Info.plist", info_plist(binary=True))
    return stored, partial


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
