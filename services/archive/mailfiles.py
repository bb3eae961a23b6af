"""Mail files on disk: what `archiver import` reads and `archiver export` writes.

Reading (`iter_mail`, `count_mail`) takes Maildir folders, mbox files, single messages,
zip files and directories holding any mix of those (services.archive.mailtree walks them,
never leaving the trees it is given, and a zip's members by the same rules: a zip reads as
the same tree unpacked, but for what no tree holds: a symlink member is read as a file,
members of one name are each read, one that has no name or is a folder holding data
fails). An evidence export (services.archive.evidence), zipped or unpacked, imports again:
its manifest files are listed as skipped. An Apple Mail .emlx is read as its message
(services.archive.apple_mail); every other file of Apple Mail's trees (an exported
bundle's mbox, Info.plist, table_of_contents, property lists, SQLite files, attachments) is
read as any file is. An empty file is skipped as an emptied mailbox,
unless it is a single-message file (below): an empty .eml or Maildir entry is a damaged
message, and fails. Every message comes out as the bytes that were on disk, because the
store keeps and hashes exactly those; a file that gives no message becomes an item with
the reason, and the run goes on.

What a file holds:
  * A single-message file (a .eml file, a Maildir entry under cur/ or new/, a zip member
    named .eml) is exactly one message, whatever its first line says. A leading mbox From_
    line is dropped and its date kept as evidence (services.archive.message_date); no other byte
    changes.
  * Any other file is told by its content, never its name: "PK\\3\\4" makes a zip (its
    members are read the same way, so the zip `write_zip` makes imports again, and so does
    Google Takeout's zip of an mbox), a From_ line at the start (after a byte order mark or
    blank lines, if any) an mbox (services.archive.mbox splits it only at real
    separators), a first line that is a number an Apple Mail .emlx (below), anything else
    one message.
  * An .emlx (Apple Mail's store: Messages/NNN.emlx), told by its content, is one message:
    exactly the bytes its first line counts (as an mbox's From_ line, the count line and
    Apple's property list after the message are not stored; its date-received is not
    kept: apple_mail says why). It is one only if the count fits the file and the start of
    a property list follows the counted bytes; else (a wrong count, one longer than the
    file) it is read as one message, as a file whose first line is a number always was (it
    fails: no header field begins it), the reason saying why it is no .emlx. What follows
    the message is a second item, failed, of the same label unless it is Apple's metadata
    alone, as Apple writes it (apple_mail.trailer_refusal: a property list that may hide
    mail, or the rest of a message a wrong count cut short). A partial one
    (NNN.partial.emlx: its large attachments stored apart) is stored as it is, with a
    warning that says so; it is not reassembled.
  * A message must be mail: its first line (after a dropped From_ line) is an RFC 5322
    header field, as every mail parser reads it. A PDF, a README or random bytes has no
    header field before its first blank line: it is refused with the reason (what libmagic
    says it is) and nothing of it is stored. Malformed mail is still mail, kept byte-exact.
    A message of an mbox is held to the same test (its position and line named when it
    fails), but for one that begins with From_ lines before its header (a message whose
    first line was one, quoted by the export; a doubled envelope line) and one under the
    From_ line the appliance's own export writes for it (mbox_piece_refusal: what the
    appliance stored, mail or not, imports again); one that holds a From_ line followed by a header field with no blank line
    before it (a writer that left the blank line out: messages merged) is stored as it is,
    with a warning naming the lines.

An mbox file may be live: an MTA appending to it under its lock. Each is read up to the
size it had under its lock (services.archive.mbox.Ends, shared by `count_mail` and
`iter_mail` so their counts agree); one locked for longer than the wait is an item that
failed, with the reason, and nothing of it is read.

Limits (issue: nothing read can stop the import): a message (an mbox's, a file's, an
.emlx's by its count, or a zip member's) over `max_bytes` (the model's
smtp.max_message_mb) is an item that failed, never read whole;
zips nest at most MAX_ZIP_DEPTH deep. Only stored and deflated members are read
(ZIP_METHODS_READ: what mail clients, Takeout, zip tools by default and the appliance's own
export write); a member compressed otherwise (bzip2, LZMA, deflate64...) is an item that
failed, naming its method, unread: zipfile inflates bzip2 and LZMA with no bound on one
chunk's output before cutting it to the declared size. Member sizes are the zip's own, and
zipfile inflates a deflated member (or reads a stored one) only as far as it is asked, and a
member is asked for no more than it declares, and never returns more bytes than it declares
(its CRC check fails instead), so what a zip expands to is known before a member is opened. What bounds the work a small zip can cost (each member is inflated twice,
counted and read; a zip inside a zip is copied out once each time, to memory or a temporary
file, and read from the copy, never by seeking in its member) is a budget: a zip given to
import, the zips inside it included, expands to at most MAX_EXPANSION times its own size
plus one message. Deflate itself stops near 1032:1, so no zip of deflated members one level
deep ever runs out of it, however compressible the mail (the appliance's own export of cron
reports, one mbox of near-identical mail or one 5 MB log: export and import move mail
between appliances); what does is amplification past deflate's: zips nested to multiply
it. A member that would take the zip past its budget is refused unread ("a zip bomb?"). A
one-message member over `max_bytes` that expands more than MAX_COMPRESSION_RATIO times
says so too.
"""
from __future__ import annotations

import io
import itertools
import os
import re
import shutil
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from services.archive import apple_mail, mbox
from services.archive.mailtree import (EXPORT_MANIFEST_FILES, EXPORT_MANIFEST_SKIPPED, Found,
                                       Moved, NotReadable, ZipFound, describe,
                                       open_file, walk, walk_zip)
from services.common.atomic_file import atomic_output

MiB = 1024 * 1024
DEFAULT_MAX_BYTES = 100 * MiB  # the largest max_message_mb of models.yaml
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members, an empty zip
MAX_COMPRESSION_RATIO = 100  # mail deflates 3-10x: a message over the limit past this is a bomb
MAX_EXPANSION = 1100  # deflate's own ceiling is ~1032x: past it, amplification is contrived
MAX_ZIP_DEPTH = 2  # a zip in a zip is read (a Takeout export zipped again); no deeper
# A zip inside a zip is copied out once (to memory up to this, then a temporary file) and
# read from there: read where it lies, each seek back inflated its member again from the start.
SPILL_IN_MEMORY = 8 * MiB
# The compression methods read: what mail clients, Google Takeout, Archive Utility, Windows
# and Info-ZIP or 7-Zip write by default (and the appliance's own export: deflate). zipfile
# inflates bzip2 and LZMA members with no bound on what one chunk gives before cutting it to
# the size the member declares (a 473-byte member declaring 4 KB took 400 MB).
ZIP_METHODS_READ = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
ZIP_METHOD_NAMES = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "LZMA", 9: "deflate64",
                    98: "PPMd", 93: "Zstandard", 95: "xz"}
SNIFF_BYTES = mbox.SNIFF_BYTES  # a byte order mark and blank lines, then a From_ line
# A dotlock's content: empty, or a process id and maybe a host name (at most 64 bytes).
DOTLOCK_MAX_BYTES = 64
DOTLOCK_CONTENT = re.compile(rb"\s*(?:\d+(?:[ \t:@]+[A-Za-z0-9.-]+)?\s*)?\x00?")
HEADER_FIELD = mbox.HEADER_FIELD  # what mail begins with

# How an evidence export's manifest files begin (services.archive.evidence writes them; its
# tests check these match): the CSV's header row (evidence.MANIFEST_COLUMNS), export.json's
# first key, SHA256SUMS's first line (empty: an export of nothing is never written).
EXPORT_MANIFEST_SNIFF_BYTES = 4096
EXPORT_MANIFEST_STARTS = {
    "manifest.csv": re.compile(rb"(?:\xef\xbb\xbf)?file,digest,message_id,date,"),
    "export.json": re.compile(rb'\s*\{\s*"export"\s*:'),
    "SHA256SUMS": re.compile(rb"[0-9a-f]{64} [ *]\S"),
}
# Damaged, encrypted or oddly compressed members; the run goes on with the next one.
ZIP_MEMBER_ERRORS = (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError,
                     EOFError, ValueError, OSError)


@dataclass(frozen=True)
class MailItem:
    """One message found on disk, or why a file gives none."""
    label: str  # the file; "FILE#N" for the N-th message (from 1) of an mbox; "ZIP#MEMBER"
    raw: bytes | None = None
    error: str | None = None
    from_line_date: float | None = None  # epoch seconds of the mbox From_ line it came under
    skipped: bool = False  # a symlink not followed: reported, but no failure
    warning: str | None = None  # about a message read (raw): stored, and the reader told


# --- reading ----------------------------------------------------------------------------

def iter_mail(paths: Iterable[Path | str], max_bytes: int = DEFAULT_MAX_BYTES,
              mbox_ends: mbox.Ends | None = None) -> Iterator[MailItem]:
    """Every message under `paths`, in a stable order, as the bytes on disk; a message of
    more than `max_bytes` is an item with an error. An mbox file is read up to its end in
    `mbox_ends` (the one count_mail was given, for the same count; a new one if None).
    Never raises on what it reads."""
    mbox_ends = mbox_ends or mbox.Ends()
    for found in walk(paths):
        yield from _read_found(found, max_bytes, mbox_ends)


def count_mail(paths: Iterable[Path | str], mbox_ends: mbox.Ends | None = None,
               max_bytes: int = DEFAULT_MAX_BYTES) -> int:
    """How many items iter_mail will yield, for a progress bar; does not parse messages.
    Give it iter_mail's `max_bytes`: a zip inside a zip over it is one item, not its members.

    Exact but for files that change meanwhile: single-message files count one each
    unopened, mbox files count their separators up to their end in `mbox_ends` (give
    iter_mail the same: an mbox that grows meanwhile counts what is read), zips their
    members, an .emlx one, or two when what follows its message is refused (its count line
    and what follows the message are read, the message skipped: seeked past in a file,
    inflated in a zip, as reading it does). (In a live Maildir, a message moved from new/
    to cur/ after it was read or counted is read or counted again in cur/; one deleted is
    still one item, reported gone.)
    """
    mbox_ends = mbox_ends or mbox.Ends()
    return sum(_count_found(found, mbox_ends, max_bytes) for found in walk(paths))


def _read_found(found: Found, max_bytes: int, mbox_ends: mbox.Ends) -> Iterator[MailItem]:
    label = str(found.path)
    if found.error:
        yield MailItem(label, error=found.error, skipped=found.skipped)
        return
    try:
        with open_file(found) as stream:
            if skipped := _skipped_by_content(found, stream, _file_size(stream)):
                yield MailItem(label, skipped=True, error=skipped)
            elif found.single_message:
                yield _single_message(stream, label, max_bytes, _file_size(stream))
            elif (kind := _sniff(stream)) == "mbox":  # a file an MTA may be appending to
                end = mbox_ends.end_of(stream, found.path)
                yield from _read_mbox(stream, label, max_bytes, end)
            else:
                yield from _read_stream(stream, label, max_bytes, depth=0, kind=kind)
    except Moved:
        return  # a Maildir message renamed or deleted: its walk lists it again, or reports it
    except mbox.Locked as exc:
        yield MailItem(label, error=str(exc))
    except (OSError, NotReadable) as exc:
        yield MailItem(label, error=describe(exc, found.path))
    except Exception as exc:  # a reader's bug must not end the import: report it, go on
        yield MailItem(label, error=f"cannot read: {type(exc).__name__}: {exc}")


def _skipped_by_content(found: Found | ZipFound, stream: BinaryIO, size: int | None
                       ) -> str | None:
    """Why a file or zip member is listed as skipped, not read, by what it holds: the
    dotlock of the file beside it, an export's manifest file, an emptied mailbox; None if it
    is read. Leaves the stream at its start."""
    if found.dotlock_of and is_dotlock(stream):
        return f"the dotlock of {found.dotlock_of} (held while mail is written to it)"
    if found.export_manifest and is_export_manifest(found.name if isinstance(
            found, ZipFound) else found.path.name, stream):
        return EXPORT_MANIFEST_SKIPPED
    if not found.single_message and size == 0:
        # An mbox emptied by its mail client: nothing to import, nothing wrong (an empty
        # .eml or Maildir entry is a damaged message, and fails).
        return "empty: no mail in it"
    return None


def _read_stream(stream: BinaryIO, label: str, max_bytes: int, depth: int,
                 size: int | None = None, kind: str | None = None,
                 budget: "_Expansion | None" = None) -> Iterator[MailItem]:
    """The messages in a file or a zip member, told apart by content (`kind`, if sniffed
    already), never by name; `budget`: the enclosing zip's, for a member."""
    kind = kind or _sniff(stream)
    if kind == "zip" and size is not None and size > max_bytes:
        # A zip inside a zip is read by seeking, which re-inflates the member each time.
        yield MailItem(label, error=f"a zip inside a zip, {too_large(size, max_bytes)}")
    elif kind == "zip" and depth > 0:  # a zip member: read from a copy (_spilled)
        if depth > MAX_ZIP_DEPTH:
            yield from _read_zip(stream, label, max_bytes, depth, budget)
            return
        try:
            copy = _spilled(stream, size)
        except ZIP_MEMBER_ERRORS as exc:
            yield MailItem(label, error=f"cannot read zip member: {exc}")
            return
        with copy:
            yield from _read_zip(copy, label, max_bytes, depth, budget)
    elif kind == "zip":
        yield from _read_zip(stream, label, max_bytes, depth, budget)
    elif kind == "mbox":
        yield from _read_mbox(stream, label, max_bytes)
    elif kind == "emlx":
        yield from _emlx_message(stream, label, max_bytes, size or _file_size(stream))
    else:
        yield _single_message(stream, label, max_bytes, size or _file_size(stream))


def _count_found(found: Found, mbox_ends: mbox.Ends, max_bytes: int) -> int:
    if found.error or found.single_message:
        return 1
    try:
        with open_file(found) as stream:
            if (kind := _sniff(stream)) == "mbox":
                return mbox.count_entries(stream, mbox_ends.end_of(stream, found.path))
            return _count_stream(stream, 0, max_bytes, kind=kind)
    except Exception:  # reading it will report the problem
        return 1


def _count_stream(stream: BinaryIO, depth: int, max_bytes: int, size: int | None = None,
                  kind: str | None = None, budget: "_Expansion | None" = None) -> int:
    """How many items _read_stream gives for the same stream (and `size`, `max_bytes`,
    a budget in the same state)."""
    kind = kind or _sniff(stream)
    if kind == "mbox":
        return mbox.count_entries(stream)
    if kind == "emlx":
        return _count_emlx(stream, max_bytes, size or _file_size(stream))
    if kind == "zip" and (size is None or size <= max_bytes) and depth <= MAX_ZIP_DEPTH:
        if depth == 0:
            return _count_zip(stream, depth, max_bytes, budget)
        try:
            with _spilled(stream, size) as copy:  # as _read_stream reads it
                return _count_zip(copy, depth, max_bytes, budget)
        except ZIP_MEMBER_ERRORS:
            return 1
    return 1


def _spilled(stream: BinaryIO, size: int | None) -> BinaryIO:
    """A copy of a zip member (`size` bytes, as it declares; already spent from the zip's
    budget) that seeks at no cost: a zip inside a zip is read by seeking (its directory
    at the end, then each member's), and a zip member seeks back by inflating itself again
    from its start, so each member of an inner zip read out of order cost the whole inner
    zip. Copied once, it costs its size, however its members lie."""
    copy = tempfile.SpooledTemporaryFile(max_size=SPILL_IN_MEMORY)
    try:
        stream.seek(0)
        shutil.copyfileobj(stream, copy, 1024 * 1024)
        if size is not None and copy.tell() != size:
            raise zipfile.BadZipFile(f"it holds {copy.tell()} bytes, not the {size} it declares")
        copy.seek(0)
        return copy
    except BaseException:
        copy.close()
        raise


def _sniff(stream: BinaryIO) -> str:
    """What a file holds, told by its first bytes: "zip", "mbox", "emlx" (a first line
    that counts bytes: _emlx_message says whether it is one) or "message"."""
    start = stream.read(SNIFF_BYTES)
    stream.seek(0)
    if start[:4] in ZIP_MAGIC:
        return "zip"
    if mbox.starts_with_from_line(start):
        return "mbox"
    if apple_mail.starts_like_emlx(start):
        return "emlx"
    return "message"


def _emlx_message(stream: BinaryIO, label: str, max_bytes: int, size: int | None
                  ) -> Iterator[MailItem]:
    """The message of an Apple Mail .emlx (apple_mail.read_emlx): its counted bytes, a
    partial one with a warning; or why not. A file whose first line is a number and is no
    .emlx is read as one message, as before (it fails: no header field begins it), and
    the reason says why it is no .emlx. What follows the message, if it is not Apple's
    metadata alone (Emlx.trailer_refused), is a second item, failed, of the same label:
    never lost unsaid."""
    try:
        emlx = apple_mail.read_emlx(stream, size, max_bytes, label.rpartition("/")[2])
    except apple_mail.TooLarge as exc:
        yield MailItem(label, error=f"an Apple Mail .emlx: {too_large(exc.size, max_bytes)}")
        return
    except apple_mail.NotEmlx as exc:
        item = _not_emlx(stream, label, max_bytes, size, exc)
        yield item if item.error is None else MailItem(label, error=(
            f"{item.error}; its first line is a number, as an Apple Mail .emlx begins, but "
            f"{exc}"))
        return
    if refusal := not_mail(emlx.raw):
        yield MailItem(label, error=f"{refusal} (the message of an Apple Mail .emlx)")
    else:
        yield MailItem(label, raw=emlx.raw,
                       warning=apple_mail.PARTIAL_WARNING if emlx.partial else None)
    if emlx.trailer_refused:
        yield MailItem(label, error=emlx.trailer_refused)


def _not_emlx(stream: BinaryIO, label: str, max_bytes: int, size: int | None,
              exc: apple_mail.NotEmlx) -> MailItem:
    """What _single_message makes of a file that begins with a count and is no .emlx. One
    read_emlx read past its count line is not read again (review 183, F3: a second copy of
    its message, a zip member inflated twice): a count line is no header field, so it fails,
    over the limit (its size, or what is left of it, counted unkept) or not mail (what its
    first bytes are, as _single_message says)."""
    if exc.start is None:
        stream.seek(0)
        return _single_message(stream, label, max_bytes, size)
    if size is None:  # counted as _single_message reads: up to one byte over the limit
        size = min(exc.read + _skipped(stream, max_bytes + 1 - exc.read), max_bytes + 1)
    return MailItem(label, error=too_large(size, max_bytes) if size > max_bytes
                    else not_mail(exc.start))


def _skipped(stream: BinaryIO, most: int) -> int:
    """How many bytes of `stream` are read, up to `most`, none kept."""
    done = 0
    while done < most and (chunk := stream.read(min(MiB, most - done))):
        done += len(chunk)
    return done


def _count_emlx(stream: BinaryIO, max_bytes: int, size: int | None) -> int:
    """How many items _emlx_message gives: two if what follows the message is refused,
    told by reading the count line and what follows the message (a file seeks past the
    message; a zip member inflates it, as reading it does)."""
    try:
        emlx = apple_mail.read_emlx(stream, size, max_bytes, "", keep=False)
    except (apple_mail.TooLarge, apple_mail.NotEmlx):
        return 1
    return 2 if emlx.trailer_refused else 1


def _single_message(stream: BinaryIO, label: str, max_bytes: int,
                    size: int | None) -> MailItem:
    """One message: all the bytes of `stream` but a leading From_ line; or why not."""
    if size is not None and size > max_bytes:
        return MailItem(label, error=too_large(size, max_bytes))
    # Asked for no more than its size: a zip member inflates (or reads, stored) as much as
    # it is asked for before cutting to the size it declares, a deflated one that
    # understates its size included.
    first = max_bytes if size is None else min(size, max_bytes)
    raw = stream.read(first + 1)
    if first < len(raw) <= max_bytes:  # a file that grew since its size was taken
        raw += stream.read(max_bytes + 1 - len(raw))
    if len(raw) > max_bytes:  # it grew since, or its size was not known
        return MailItem(label, error=too_large(len(raw), max_bytes))
    raw, from_line = mbox.split_leading_from_line(raw)
    refusal = not_mail(raw)
    if refusal:
        return MailItem(label, error=refusal)
    return MailItem(label, raw=raw, from_line_date=from_line.date if from_line else None)


def is_dotlock(stream: BinaryIO) -> bool:
    """Whether an open "<name>.lock" file holds what a dotlock holds: nothing, or the
    locker's process id (liblockfile, mutt_dotlock), maybe with its host name; a file of
    anything else (a message so named) is not one. Leaves the stream at its start."""
    held = stream.read(DOTLOCK_MAX_BYTES + 1)
    stream.seek(0)
    return len(held) <= DOTLOCK_MAX_BYTES and DOTLOCK_CONTENT.fullmatch(held) is not None


def is_export_manifest(name: str, stream: BinaryIO) -> bool:
    """Whether an open manifest.csv, export.json or SHA256SUMS (`name`, a path or its last
    part) holds what an evidence export writes there (services.archive.evidence): the CSV's
    header row, a JSON object naming the export, sha256sum(1) lines. A message so named is
    not one (it begins with a header field): it is read. Leaves the stream at its start."""
    start = stream.read(EXPORT_MANIFEST_SNIFF_BYTES)
    stream.seek(0)
    pattern = EXPORT_MANIFEST_STARTS.get(name.rpartition("/")[2])
    return pattern is not None and pattern.match(start) is not None


def not_mail(raw: bytes) -> str | None:
    """Why `raw` is not mail, or None if it is: mail begins with a header field."""
    if HEADER_FIELD.match(raw):
        return None
    if not raw.strip():
        return "not mail: empty"
    return f"not mail ({_what_it_is(raw)}): no header field before the first blank line"


def too_large(size: int, max_bytes: int) -> str:
    return (f"{size} bytes, over the limit of {max_bytes // MiB} MiB a message may have "
            "(models.yaml smtp.max_message_mb): not read")


def _what_it_is(raw: bytes) -> str:
    """libmagic's description of some bytes, for the reason a file is refused."""
    try:
        import magic  # Debian's python3-magic (libmagic); only needed for refusals
        return magic.from_buffer(raw[:64 * 1024])
    except Exception:  # no libmagic, or it failed: the reason stands without the name
        return "unknown content"


def _file_size(stream: BinaryIO) -> int | None:
    try:
        return os.fstat(stream.fileno()).st_size
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return None


# --- mbox ---------------------------------------------------------------------------------

def _read_mbox(stream: BinaryIO, label: str, max_bytes: int, end: int | None = None
               ) -> Iterator[MailItem]:
    """The messages of an mbox up to byte `end` (None: all of it; a zip member's)."""
    numbers = itertools.count(1)
    try:
        # map, not a for loop: a loop's variable would hold the last message (up to the
        # model's limit) while the import stores it and waits for its indexing.
        yield from map(lambda entry: _mbox_item(f"{label}#{next(numbers)}", entry, max_bytes),
                       mbox.read_entries(stream, max_bytes, end))
    except (mbox.Rewritten, mbox.Locked) as exc:  # a live mbox: the rest waits for next time
        yield MailItem(f"{label}#{next(numbers)}", error=str(exc))
    except ZIP_MEMBER_ERRORS as exc:  # a read error of the file, or of the zip member
        yield MailItem(f"{label}#{next(numbers)}", error=f"read error: {exc}")


def _mbox_item(label: str, entry: mbox.Entry, max_bytes: int) -> MailItem:
    """One message of an mbox as a MailItem: its bytes to store, or why it is not stored."""
    if entry.raw is None:
        return MailItem(label, error=too_large(entry.size, max_bytes))
    if not entry.raw:
        return MailItem(label, error="empty message")
    if refusal := mbox_piece_refusal(entry):
        return MailItem(label, error=f"{refusal} (the message after the From_ line on line "
                        f"{entry.line})")
    date = entry.from_line.date if entry.from_line else None
    return MailItem(label, raw=entry.raw, from_line_date=date, warning=_unseparated(entry))


# From_ lines a message of an mbox may begin with before its header, at most (an envelope
# line doubled: "From MAILER-DAEMON ...", then ">From alice ...", unquoted to a From_ line).
LEADING_FROM_LINES = 8


def mbox_piece_refusal(entry: mbox.Entry) -> str | None:
    """Why a message of an mbox (entry.raw, unquoted) is not stored, or None if it is.
    The test is the one a .eml of the same bytes is held to (not_mail), for what is plainly
    no mail after a From_ line (binary junk, a PDF, prose in a file that begins like an
    mbox), but two kinds of piece are mail all the same, stored as they are:
      * one that begins with From_ lines and then a header field: a message whose first
        line was a From_ line (SMTP intake stores any bytes; the export quotes it ">From",
        the import unquotes it), or an mbox whose writer doubled the envelope line;
      * one under a From_ line of the form the appliance's own export writes for it
        (mbox.from_line_for: the same sender): whatever the appliance stored, the export
        writes and the import gives back (not-mail mail kept byte-exact by SMTP intake)."""
    refusal = not_mail(entry.raw)
    if refusal is None:
        return None
    rest = entry.raw
    for _ in range(LEADING_FROM_LINES):
        rest, from_line = mbox.split_leading_from_line(rest)
        if from_line is None:
            break
        if HEADER_FIELD.match(rest):
            return None
    if entry.from_line is not None and _as_exported(entry.raw) == entry.from_line.sender:
        return None
    return refusal


def _as_exported(raw: bytes) -> str | None:
    """The sender of the From_ line the appliance's export writes before `raw`."""
    try:
        from_line = mbox.parse_from_line(mbox.from_line_for(raw))
    except Exception:  # the refusal stands; reading goes on
        return None
    return from_line.sender if from_line else None


def _unseparated(entry: mbox.Entry) -> str | None:
    if not entry.unseparated:
        return None
    lines = ", ".join(map(str, entry.unseparated[:10])) + (
        ", ..." if len(entry.unseparated) > 10 else "")
    which = f"line {lines} looks" if len(entry.unseparated) == 1 else f"lines {lines} look"
    return (f"stored as one message (from line {entry.line}), but {which} like a From_ line "
            "and a header field: messages with no blank line before their From_ line? An "
            "mbox splits only after a blank line; the bytes are kept as they are")


# --- zip ----------------------------------------------------------------------------------

class _Expansion:
    """What a zip given to import, with the zips inside it, may still expand to (bytes)."""

    def __init__(self, stream: BinaryIO, max_bytes: int):
        self.left = max_bytes + MAX_EXPANSION * stream.seek(0, io.SEEK_END)
        stream.seek(0)


def _read_zip(stream: BinaryIO, label: str, max_bytes: int, depth: int,
              budget: _Expansion | None = None) -> Iterator[MailItem]:
    """The zip read as the same tree unpacked would be (mailtree.walk_zip): each member
    that may hold mail is read like a file (a .eml member or a Maildir entry as one
    message): an export's .eml files, Google Takeout's mbox, a zipped Maildir; members too
    large or past the zip's budget are refused unread."""
    if depth > MAX_ZIP_DEPTH:
        yield MailItem(label, error=f"a zip nested more than {MAX_ZIP_DEPTH} deep: not read")
        return
    budget = budget or _Expansion(stream, max_bytes)
    try:
        archive = zipfile.ZipFile(stream)
    except ZIP_MEMBER_ERRORS as exc:
        yield MailItem(label, error=f"damaged zip file ({exc})")
        return
    with archive:
        for found in walk_zip(archive.infolist()):
            member, member_label = found.member, f"{label}#{found.name}"
            if member is None or found.error:
                yield MailItem(member_label, error=found.error, skipped=found.skipped)
                continue
            refusal = _member_refusal(member, found.single_message, max_bytes, budget)
            if refusal:
                yield MailItem(member_label, error=refusal)
                continue
            try:
                with archive.open(member) as member_stream:
                    if skipped := _skipped_by_content(found, member_stream, member.file_size):
                        yield MailItem(member_label, skipped=True, error=skipped)
                    elif found.single_message:
                        yield _single_message(member_stream, member_label, max_bytes,
                                              member.file_size)
                    else:
                        yield from _read_stream(member_stream, member_label, max_bytes,
                                                depth + 1, member.file_size, budget=budget)
            except ZIP_MEMBER_ERRORS as exc:
                yield MailItem(member_label, error=f"cannot read zip member: {exc}")


def _member_refusal(member: zipfile.ZipInfo, single_message: bool, max_bytes: int,
                    budget: _Expansion) -> str | None:
    """Why a member is not even opened: it is compressed by a method not read
    (ZIP_METHODS_READ), one message over the limit, or it expands the zip past its budget; a
    member that is opened is spent from the budget."""
    size = member.file_size
    if member.compress_type not in ZIP_METHODS_READ:
        method = ZIP_METHOD_NAMES.get(member.compress_type, f"method {member.compress_type}")
        return (f"compressed with {method} (zip method {member.compress_type}): only stored "
                "and deflated members are read (what mail clients, Takeout and zip tools "
                "write by default; others can inflate past the size they declare): not "
                "read; unzip it and import the folder")
    if single_message and size > max_bytes:
        if size > MAX_COMPRESSION_RATIO * max(member.compress_size, 1):
            return (f"expands {member.compress_size} bytes to {size}, more than "
                    f"{MAX_COMPRESSION_RATIO} times (a zip bomb?): not read")
        return too_large(size, max_bytes)
    if size > budget.left:
        return (f"expands to {size} bytes, past what this zip may expand to in all ({MAX_EXPANSION} "
                "times its size and one message, zips inside it included; a zip bomb?): not read")
    budget.left -= size
    return None


def _count_zip(stream: BinaryIO, depth: int, max_bytes: int,
               budget: _Expansion | None = None) -> int:
    try:
        budget = budget or _Expansion(stream, max_bytes)
        with zipfile.ZipFile(stream) as archive:
            return sum(_count_zip_member(archive, found, depth, max_bytes, budget)
                       for found in walk_zip(archive.infolist()))
    except ZIP_MEMBER_ERRORS:
        return 1


def _count_zip_member(archive: zipfile.ZipFile, found: ZipFound, depth: int,
                      max_bytes: int, budget: _Expansion) -> int:
    if found.member is None or found.error:
        return 1
    # spent as _read_zip spends it, one-message members included
    if _member_refusal(found.member, found.single_message, max_bytes, budget) or \
            found.single_message:
        return 1
    try:
        with archive.open(found.member) as member_stream:
            return _count_stream(member_stream, depth + 1, max_bytes, found.member.file_size,
                                 budget=budget)
    except ZIP_MEMBER_ERRORS:
        return 1


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
    """write_mbox to a stream (mboxrd; services.archive.mbox)."""
    return mbox.write_entries(messages, output)


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
