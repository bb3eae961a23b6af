"""Mail files on disk: what `archiver import` reads and `archiver export` writes.

Reading (`iter_mail`, `count_mail`) takes Maildir folders, mbox files, single messages
(.eml or any other regular file), zip files and directories holding any mix of those.
A file's content says what it is, not its name: "From " at the start makes an mbox,
"PK\3\4" a zip, anything else one message. Zip members are read the same way, so the
zip `write_zip` makes imports again, and so does an export with its manifest (whose
manifest files are skipped) and Google Takeout's zip of an mbox. Every
message comes out as the bytes that were on disk, because the store keeps and hashes
exactly those. A file that cannot be read becomes an item with an error; the run goes on.

Walking a directory: a directory with cur/ and new/ is a Maildir; its messages are the
files in cur/ and new/ (tmp/ holds deliveries in progress, names starting with "." are
not messages), and its subdirectories are searched for more Maildirs (Maildir++ ".Sent",
Dovecot's fs layout) while loose files there (dovecot.index, subscriptions) are skipped.
In any other directory every regular file is mail, and hidden entries (.git, .DS_Store)
are skipped. Paths named by the caller are always read, hidden or not. Symlinks are
followed; a directory reached twice is read once.

mbox dialect: mboxrd, both ways. Writing puts one ">" before every line matching
"^>*From "; reading takes one ">" off every line matching "^>+From ". So write_mbox ->
iter_mail gives back every message byte-exact, except what mbox cannot carry at all:

  * a message that does not end with a line ending gets one (CRLF if the message uses
    CRLF, else LF), because the blank line that separates messages has to start on a
    line of its own. An empty message comes back as a single LF.

Everything else survives, CRLF line endings included: mbox lines are split on LF only
and the separator we add is LF, so a CRLF message is never converted. zip keeps every
message byte-exact, final line ending or not.

Python's mailbox.mbox quotes mboxo-style ("From " only) on write and never unquotes on
read; a reader like that would add a ">" to a body line on every export -> import round
trip, so we unquote. The price is mboxo's own ambiguity: a body line that read ">From "
before an mboxo writer (Python, mutt) quoted nothing comes back as "From ". Like
mailbox.mbox, every line starting with "From " separates messages, and one blank line
(LF or CRLF) before it is the separator, not part of the message.
"""
from __future__ import annotations

import email.parser
import email.policy
import email.utils
import errno
import os
import re
import stat
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from services.common.atomic_file import atomic_output

MBOX_SEPARATOR = b"\nFrom "
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members, an empty zip
READ_CHUNK = 1 << 20  # mboxes are read a MiB at a time, never whole
MAILDIR_PARTS = ("cur", "new")
# The files an evidence export adds beside its mail (services.archive.evidence): skipped
# on import when all of them are at the root of a zip or of a folder (an unpacked export).
EXPORT_MANIFEST_FILES = ("manifest.csv", "export.json", "SHA256SUMS")

# Damaged, encrypted or oddly compressed members; the run goes on with the next one.
ZIP_MEMBER_ERRORS = (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError,
                     EOFError, ValueError, OSError)

_QUOTED_FROM = re.compile(rb"^>(>*From )", re.MULTILINE)
_FROM_TO_QUOTE = re.compile(rb"^(>*From )", re.MULTILINE)
_HEADER_END = re.compile(rb"\n\r?\n")
_PLAIN_ADDRESS = re.compile(r"[!-~]+")  # printable ASCII without spaces, as a From_ line needs


@dataclass(frozen=True)
class MailItem:
    """One message found on disk, or why a file could not give one."""
    label: str  # the file; "FILE#N" for the N-th message (from 1) of an mbox; "ZIP#MEMBER"
    raw: bytes | None = None
    error: str | None = None


@dataclass(frozen=True)
class _Found:
    path: Path
    error: str | None = None
    in_maildir: bool = False  # a Maildir file is one message: counting need not open it


class _NotReadable(Exception):
    """A path that is there but holds no bytes to read (FIFO, device, directory)."""


# --- reading ----------------------------------------------------------------------------

def iter_mail(paths: Iterable[Path | str]) -> Iterator[MailItem]:
    """Every message under `paths`, in a stable order, as the bytes on disk."""
    for found in _walk(paths):
        yield from _read_found(found)


def count_mail(paths: Iterable[Path | str]) -> int:
    """How many items iter_mail will yield, for a progress bar; does not parse messages.

    Exact but for files that change meanwhile: Maildir files count one each unopened,
    mbox files count their separator lines, zips their members.
    """
    return sum(_count_found(found) for found in _walk(paths))


def _read_found(found: _Found) -> Iterator[MailItem]:
    label = str(found.path)
    if found.error:
        yield MailItem(label, error=found.error)
        return
    try:
        with _open_regular(found.path) as stream:
            yield from _read_stream(stream, label)
    except (OSError, _NotReadable) as exc:
        yield MailItem(label, error=_describe(exc, found.path))


def _read_stream(stream: BinaryIO, label: str) -> Iterator[MailItem]:
    """The messages in a file or a zip member, told apart by content, never by name."""
    kind = _sniff(stream)
    if kind == "empty":  # kept as it is, like any bad input: an empty message
        yield MailItem(label, raw=b"")
    elif kind == "mbox":
        yield from _read_mbox(stream, label)
    elif kind == "zip":
        yield from _read_zip(stream, label)
    else:
        yield _single_message(stream.read(), label)


def _count_found(found: _Found) -> int:
    if found.error or found.in_maildir:
        return 1
    try:
        with _open_regular(found.path) as stream:
            return _count_stream(stream)
    except (OSError, _NotReadable):
        return 1


def _count_stream(stream: BinaryIO) -> int:
    kind = _sniff(stream)
    if kind == "mbox":
        return _count_mbox(stream)
    if kind == "zip":
        return _count_zip(stream)
    return 1


def _single_message(raw: bytes, label: str) -> MailItem:
    if not raw:
        return MailItem(label, error="empty message")
    return MailItem(label, raw=raw)


def _open_regular(path: Path) -> BinaryIO:
    """Open a regular file for reading; anything else is refused without blocking on it."""
    _refuse_irregular(os.stat(path), path)
    # O_NONBLOCK: if a FIFO took the file's place since stat, opening must not hang.
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        _refuse_irregular(os.fstat(descriptor), path)
    except _NotReadable:
        os.close(descriptor)
        raise
    return os.fdopen(descriptor, "rb")


def _refuse_irregular(status: os.stat_result, path: Path) -> None:
    if stat.S_ISREG(status.st_mode):
        return
    kinds = {stat.S_ISDIR: "a directory", stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket",
             stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device"}
    kind = next((name for test, name in kinds.items() if test(status.st_mode)), "special")
    raise _NotReadable(f"not a regular file ({kind})")


def _describe(exc: Exception, path: Path) -> str:
    if isinstance(exc, _NotReadable):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno == errno.ENOENT:
        return "dangling symlink" if os.path.islink(path) else "no such file"
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot read: {exc.strerror.lower()}"
    return f"cannot read: {exc}"


def _sniff(stream: BinaryIO) -> str:
    """What a file holds, told by its first bytes."""
    start = stream.read(5)
    stream.seek(0)
    if not start:
        return "empty"
    if start.startswith(b"From "):
        return "mbox"
    if start[:4] in ZIP_MAGIC:
        return "zip"
    return "message"


# --- walking ------------------------------------------------------------------------------

def _walk(paths: Iterable[Path | str]) -> Iterator[_Found]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]  # one path, not the characters of its name
    visited: set[tuple[int, int]] = set()
    for path in map(Path, paths):
        if path.is_dir():
            yield from _walk_directory(path, visited, loose_files_are_mail=True)
        else:
            yield _Found(path)  # reading it says what it is, or why it cannot be read


def _walk_directory(directory: Path, visited: set[tuple[int, int]],
                    loose_files_are_mail: bool) -> Iterator[_Found]:
    try:
        status = directory.stat()
    except OSError as exc:
        yield _Found(directory, _describe(exc, directory))
        return
    if (status.st_dev, status.st_ino) in visited:  # a symlink loop, or a tree named twice
        return
    visited.add((status.st_dev, status.st_ino))
    maildir = _is_maildir(directory)
    if maildir:
        yield from _maildir_messages(directory)
    loose_files_are_mail = loose_files_are_mail and not maildir
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except OSError as exc:
        yield _Found(directory, _describe(exc, directory))
        return
    unpacked_export = {entry.name for entry in entries}.issuperset(EXPORT_MANIFEST_FILES)
    for entry in entries:
        if maildir and entry.name in MAILDIR_PARTS + ("tmp",):
            continue
        if loose_files_are_mail and entry.name.startswith("."):
            continue
        if unpacked_export and entry.name in EXPORT_MANIFEST_FILES:
            continue  # an unpacked export's manifest: what its mail is, not mail
        if _is_directory(entry):
            yield from _walk_directory(Path(entry.path), visited, loose_files_are_mail)
        elif loose_files_are_mail:
            yield _Found(Path(entry.path))


def _maildir_messages(maildir: Path) -> Iterator[_Found]:
    for part in MAILDIR_PARTS:
        folder = maildir / part
        try:
            names = sorted(name for name in os.listdir(folder) if not name.startswith("."))
        except OSError as exc:
            yield _Found(folder, _describe(exc, folder))
            continue
        for name in names:
            yield _Found(folder / name, in_maildir=True)


def _is_maildir(directory: Path) -> bool:
    # tmp/ is not required: Maildirs copied by rsync or kept in git often lack it.
    return all((directory / part).is_dir() for part in MAILDIR_PARTS)


def _is_directory(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False  # reading it as a file then reports the problem


# --- mbox ---------------------------------------------------------------------------------

def _read_mbox(stream: BinaryIO, label: str) -> Iterator[MailItem]:
    number = 0
    try:
        for block in _mbox_blocks(stream):
            number += 1
            yield _single_message(_message_from_block(block), f"{label}#{number}")
    except OSError as exc:
        yield MailItem(f"{label}#{number + 1}", error=f"read error: {exc.strerror or exc}")


def _mbox_blocks(stream: BinaryIO) -> Iterator[bytes]:
    """Split an mbox into blocks that each begin with a From_ line, a chunk at a time.

    Memory holds one chunk plus the message being read, whatever the mbox's size.
    """
    buffer = bytearray()
    start = 0  # where the current block begins in buffer
    searched = 0  # no separator starts in buffer[start:searched]
    while chunk := stream.read(READ_CHUNK):
        del buffer[:start]  # once per chunk, so small messages do not shift the buffer
        searched -= start
        start = 0
        buffer += chunk
        while (found := buffer.find(MBOX_SEPARATOR, max(searched, start))) >= 0:
            yield bytes(buffer[start:found + 1])
            start = found + 1
        # A separator may straddle this chunk and the next one.
        searched = max(start, len(buffer) - len(MBOX_SEPARATOR) + 1)
    if start < len(buffer):
        yield bytes(buffer[start:])


def _message_from_block(block: bytes) -> bytes:
    line_end = block.find(b"\n")
    message = block[line_end + 1:] if line_end >= 0 else b""
    message = _without_separator_line(message)
    if b">From " in message:
        message = _QUOTED_FROM.sub(rb"\1", message)
    return message


def _without_separator_line(message: bytes) -> bytes:
    """Drop the blank line that ends a block: it separates messages, it is not theirs."""
    for blank in (b"\n", b"\r\n"):
        if message == blank or message.endswith(b"\n" + blank):
            return message[:-len(blank)]
    return message


def _count_mbox(stream: BinaryIO) -> int:
    separators = 0
    tail = b""
    while chunk := stream.read(READ_CHUNK):
        window = tail + chunk
        separators += window.count(MBOX_SEPARATOR)
        tail = window[-(len(MBOX_SEPARATOR) - 1):]  # too short to hold a whole separator
    return separators + 1


# --- zip ----------------------------------------------------------------------------------

def _read_zip(stream: BinaryIO, label: str) -> Iterator[MailItem]:
    """Each member is read like a file: an export's .eml files, or Google Takeout's mbox."""
    try:
        archive = zipfile.ZipFile(stream)
    except zipfile.BadZipFile as exc:
        yield MailItem(label, error=f"damaged zip file ({exc})")
        return
    with archive:
        for member in _zip_members(archive):
            member_label = f"{label}#{member.filename}"
            try:
                with archive.open(member) as member_stream:
                    yield from _read_stream(member_stream, member_label)
            except ZIP_MEMBER_ERRORS as exc:
                yield MailItem(member_label, error=f"cannot read zip member: {exc}")


def _count_zip(stream: BinaryIO) -> int:
    try:
        with zipfile.ZipFile(stream) as archive:
            return sum(_count_zip_member(archive, member) for member in _zip_members(archive))
    except zipfile.BadZipFile:
        return 1


def _count_zip_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> int:
    try:
        with archive.open(member) as member_stream:
            return _count_stream(member_stream)
    except ZIP_MEMBER_ERRORS:
        return 1


def _zip_members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The members that may be mail: not folders, and not the manifest files of an
    evidence export (services.archive.evidence), which describe its mail."""
    members = [member for member in archive.infolist() if not member.is_dir()]
    names = {member.filename for member in members}
    if names.issuperset(EXPORT_MANIFEST_FILES):
        members = [member for member in members if member.filename not in EXPORT_MANIFEST_FILES]
    return members


# --- writing ------------------------------------------------------------------------------

def write_zip(messages: Iterable[tuple[str, bytes]], path: Path) -> int:
    """Write (name, raw) pairs as NAME.eml members of a zip, every byte kept; returns how
    many were written."""
    with atomic_output(Path(path), suffix=".part") as output:
        return write_zip_to(messages, output)


def write_zip_to(messages: Iterable[tuple[str, bytes]], output: BinaryIO) -> int:
    """write_zip to a stream; it need not be seekable (the web UI streams exports)."""
    names = _UniqueNames()
    when = time.localtime()[:6]
    with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, raw in messages:
            member = zipfile.ZipInfo(names.claim(name), date_time=when)
            member.compress_type = zipfile.ZIP_DEFLATED
            member.external_attr = 0o644 << 16  # readable once unpacked; default is 0600
            archive.writestr(member, raw)
    return len(names.taken)


def write_mbox(messages: Iterable[tuple[str, bytes]], path: Path) -> int:
    """Write (name, raw) pairs as an mboxrd file (mbox keeps no names); returns how many
    were written."""
    with atomic_output(Path(path), suffix=".part") as output:
        return write_mbox_to(messages, output)


def write_mbox_to(messages: Iterable[tuple[str, bytes]], output: BinaryIO) -> int:
    """write_mbox to a stream."""
    written = 0
    for _name, raw in messages:
        output.write(_from_line(raw))
        output.write(_with_final_line_ending(_quote_from_lines(raw)))
        output.write(b"\n")  # the blank line after every message, the last one too
        written += 1
    return written


def _quote_from_lines(raw: bytes) -> bytes:
    return _FROM_TO_QUOTE.sub(rb">\1", raw) if b"From " in raw else raw


def _with_final_line_ending(raw: bytes) -> bytes:
    if raw.endswith(b"\n"):
        return raw
    if raw.endswith(b"\r"):
        return raw + b"\n"
    return raw + (b"\r\n" if b"\r\n" in raw else b"\n")


def _from_line(raw: bytes) -> bytes:
    """"From SENDER DATE", the form mutt's and Python's readers expect, ASCII only."""
    end = _HEADER_END.search(raw)
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(
        raw[:end.start() + 1] if end else raw)
    sent = time.asctime(_sent_time(headers.get("Date")))
    return f"From {_envelope_sender(headers)} {sent}\n".encode("ascii")


def _envelope_sender(headers) -> str:
    for field in ("Return-Path", "Sender", "From"):
        address = email.utils.parseaddr(str(headers.get(field, "")))[1]
        if address and _PLAIN_ADDRESS.fullmatch(address):
            return address
    return "MAILER-DAEMON"


def _sent_time(date_header) -> time.struct_time:
    """The Date header in UTC; the time of export when it is missing or unreadable."""
    try:
        sent = email.utils.parsedate_to_datetime(str(date_header))
        if sent.tzinfo is None:
            return sent.timetuple()  # "-0000": the zone is unknown, the time is UTC
        return time.gmtime(sent.timestamp())
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return time.gmtime()


class _UniqueNames:
    """Member names safe to unpack anywhere: no paths, no clashes even case-insensitively."""

    def __init__(self):
        self.taken: set[str] = set()

    def claim(self, name: str) -> str:
        stem = re.sub(r"[^A-Za-z0-9._@+=-]", "_", name).lstrip(".")[:200] or "message"
        if stem.lower().endswith(".eml"):
            stem = stem[:-4]
        candidate, number = f"{stem}.eml", 1
        while candidate.lower() in self.taken:
            number += 1
            candidate = f"{stem}-{number}.eml"
        self.taken.add(candidate.lower())
        return candidate
