"""Exports that stand up as evidence: the messages, and a manifest that says what each
file is, who exported what and when, and the SHA-256 of every file.

An export is one zip, whichever its format (the web UI's download and `archiver export`
write the same):

    messages/<digest>.eml   format "zip": each message byte-exact as received
    messages.mbox           format "mbox": every message in one mboxrd file (not byte-exact:
                            export.json's "mbox" says how to get each message back)
    manifest.csv            one row per message (MANIFEST_COLUMNS), in export order
    export.json             who exported what and when (ExportInfo), how many messages
    SHA256SUMS              the SHA-256 of every other file, as sha256sum(1) writes it, so
                            `sha256sum -c SHA256SUMS` checks an unpacked export

The zip is written in one pass (services.archive.zip_stream), in memory that does not grow
with the number of messages: manifest.csv, SHA256SUMS and the zip's central directory are
spooled to unnamed files while the messages are written, and copied in at the end.

The digest of SHA256SUMS is the manifest's digest: it covers every file, the CSV and
export.json included, and is what the audit log records (services.policy.exports).

manifest.csv is RFC 4180 CSV in UTF-8. A cell a spreadsheet would take for a formula
(beginning with = + - @, a tab or a carriage return) gets a leading apostrophe: mail is
from strangers, and a subject "=HYPERLINK(...)" must stay text on an auditor's screen.
"""
from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import io
import json
import tempfile
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from services.archive.mailfiles import EXPORT_MANIFEST_FILES, write_mbox_to
from services.archive.mime import (decode_header_text, parse_headers, safely,
                                   summarize_headers)
from services.archive.zip_stream import ZipStream

FORMATS = ("zip", "mbox")
MANIFEST_COLUMNS = ("file", "digest", "message_id", "date", "from", "to", "cc", "subject",
                    "size", "archived_at", "source")
MESSAGES_FOLDER = "messages"
MBOX_NAME = "messages.mbox"
# mboxrd cannot keep every message byte-exact; what a third party does to check each one.
MBOX_RECIPE = ("messages.mbox is mboxrd: each message follows its From_ line and is followed "
               "by a blank line; lines are split at LF only (a bare CR is part of its line), "
               "a line matching ^>*From  (with the space) got one more '>', and a message "
               "not ending in a line break got one. To check a message against its digest "
               "in manifest.csv: take the bytes between its From_ line and that blank line, "
               "unquote (remove one '>' from each line, split at LF, matching ^>+From  with "
               "the space), and cut it to its size in manifest.csv. The zip format keeps "
               "each message byte-exact.")
MANIFEST_NAME, INFO_NAME, SUMS_NAME = EXPORT_MANIFEST_FILES
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ExportInfo:
    """Who exports what, and when. Exactly one of `query` and `selection` is set: the
    query whose matches are exported, or the digests chosen one by one."""
    export_id: str
    created: float            # epoch seconds
    exported_by: str
    role: str
    node: str
    format: str               # one of FORMATS
    query: str | None = None
    selection: tuple[str, ...] | None = None
    timezone: str = "UTC"     # the days a query's date: means
    # The index a query's matches were read from: {"index_revision", "last_document"}
    # (services.archive.search_snapshot.AsOf); None for a selection.
    as_of: dict | None = None

    def described(self) -> str:
        """What was exported, in words (for the audit log and error messages)."""
        if self.selection is not None:
            return f"{len(self.selection)} selected messages"
        return f"the query {self.query!r}" if self.query else "every message"


@dataclass
class ExportResult:
    """What was written: `messages` exported, the SHA-256 (hex) by name of the files other
    than messages/*.eml (manifest.csv, export.json, messages.mbox: each message's is in
    SHA256SUMS only, so that a million of them are not kept in memory), and the
    manifest's digest (that of SHA256SUMS)."""
    messages: int
    files: dict[str, str] = field(default_factory=dict)
    manifest_sha256: str = ""

    def audit_details(self, info: ExportInfo) -> dict:
        details = {"export": info.export_id, "format": info.format,
                   "messages": self.messages, "manifest_sha256": self.manifest_sha256,
                   "manifest_csv_sha256": self.files.get(MANIFEST_NAME)}
        if info.selection is not None:
            details["selection"] = list(info.selection)
        else:
            details["query"] = info.query or ""
            if info.as_of is not None:
                details["as_of"] = info.as_of
        return details


class EmptyExport(ValueError):
    """Nothing matched: no export is written (an empty zip would say nothing true)."""


def write_export(messages: Iterable[tuple[str, bytes, dict]], output: BinaryIO,
                 info: ExportInfo, spool_dir: Path | str | None = None) -> ExportResult:
    """Write the export of `messages` ((digest, raw bytes, store metadata) triples, in the
    order they are to appear; a query's each once, as search_snapshot gives them; a
    selection's repeats are left out) to `output`, a binary stream that need not be
    seekable (the web UI streams it). Memory does not grow with the number of messages:
    the manifest rows, the checksums and the zip's central directory are spooled to
    unnamed files in `spool_dir` (on the data disk; None: tempfile's default folder),
    gone when the export ends, however it ends. Raises EmptyExport, before writing
    anything, when `messages` is empty; ValueError for a format not in FORMATS; OSError
    when the spool folder or the output cannot be written."""
    if info.format not in FORMATS:
        raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {info.format!r}")
    items = iter(messages)
    first = next(items, None)
    if first is None:
        raise EmptyExport(f"nothing to export: {info.described()} matches no message "
                          "you may read")
    result = ExportResult(0)
    with contextlib.ExitStack() as stack:
        archive = stack.enter_context(ZipStream(output, spool_dir))
        files = stack.enter_context(_ExportFiles(archive, result, spool_dir))
        chained = _once(_chain(first, items), info)
        if info.format == "zip":
            _write_eml_files(files, chained)
        else:
            _write_mbox(files, chained)
        files.copy(MANIFEST_NAME, files.manifest.spooled())
        files.add(INFO_NAME, _info_bytes(info, result))
        result.manifest_sha256 = files.write_sums()
    return result


def manifest_row(file: str, digest: str, raw: bytes, meta: dict) -> dict:
    """One row of manifest.csv (MANIFEST_COLUMNS) for a message; dates ISO 8601 UTC,
    addresses as the headers give them, separated by "; "."""
    summary = summarize_headers(raw)
    headers = parse_headers(raw)
    return {"file": file, "digest": digest,
            "message_id": meta.get("message_id") or summary.message_id or "",
            "date": iso_utc(meta.get("sent_date") or summary.sent_date),
            "from": _addresses(summary.from_addrs, headers, "from"),
            "to": _addresses(summary.to, headers, "to"),
            "cc": _addresses(summary.cc, headers, "cc"), "subject": summary.subject,
            "size": len(raw), "archived_at": iso_utc(meta.get("received")),
            "source": meta.get("source", "")}


def _addresses(parsed: list[str], headers: Message, name: str) -> str:
    """The addresses as read, or the header's own text when none could be read from it
    (e.g. "From: @x@example.org"): a manifest keeps what the message says."""
    if parsed:
        return "; ".join(parsed)
    values = safely(lambda: headers.get_all(name), None) or []
    return "; ".join(decode_header_text(value).strip() for value in values
                     if isinstance(value, str))


def sums_of(text: str) -> dict[str, str]:
    """SHA256SUMS read back: file name -> hex digest (for checking an export)."""
    found = {}
    for line in text.splitlines():
        digest, _, name = line.partition("  ")
        if name:
            found[name] = digest
    return found


def spreadsheet_safe(value) -> str:
    """A CSV cell no spreadsheet takes for a formula (see the module docstring)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


# -- writing ------------------------------------------------------------------------------

class _ManifestRows:
    """manifest.csv's rows as they are added, spooled to an unnamed file in `folder`."""

    def __init__(self, folder: Path | str | None):
        # errors="replace": metadata stored by releases before 2026-12 may hold lone
        # surrogates (8-bit bytes in a malformed encoded-word), which UTF-8 cannot carry
        self.file = io.TextIOWrapper(tempfile.TemporaryFile(dir=folder, prefix="export-csv-"),
                                     encoding="utf-8", errors="replace", newline="")
        self.writer = csv.DictWriter(self.file, MANIFEST_COLUMNS, lineterminator="\r\n")
        self.writer.writeheader()

    def add(self, row: dict) -> None:
        self.writer.writerow({key: spreadsheet_safe(value) for key, value in row.items()})

    def spooled(self) -> BinaryIO:
        """The CSV's bytes (UTF-8), read from the start."""
        self.file.flush()
        self.file.buffer.seek(0)
        return self.file.buffer

    def close(self) -> None:
        self.file.close()


class _ExportFiles:
    """The export's members as they are written into `archive`: each file's SHA-256 goes
    to a spooled SHA256SUMS, the manifest's rows to a spooled manifest.csv; `result`
    counts the messages and keeps the digests of the files other than messages."""

    def __init__(self, archive: ZipStream, result: ExportResult, folder: Path | str | None):
        self.archive, self.result = archive, result
        self.sums = tempfile.TemporaryFile(dir=folder, prefix="export-sums-")
        try:
            self.manifest = _ManifestRows(folder)
        except BaseException:
            self.sums.close()
            raise

    def __enter__(self) -> "_ExportFiles":
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.manifest.close()
        finally:
            self.sums.close()

    def message(self, name: str, data: bytes) -> None:
        """A message's member, its SHA-256 kept only in the spooled SHA256SUMS."""
        self.archive.add(name, data)
        self.checksum(name, hashlib.sha256(data).hexdigest())

    def add(self, name: str, data: bytes) -> None:
        self.archive.add(name, data)
        self.result.files[name] = self.checksum(name, hashlib.sha256(data).hexdigest())

    def copy(self, name: str, source: BinaryIO) -> None:
        """The member `name` holding what `source` reads."""
        hashing = hashlib.sha256()
        with self.archive.member(name, zip64=True) as member:
            while chunk := source.read(CHUNK):
                hashing.update(chunk)
                member.write(chunk)
        self.result.files[name] = self.checksum(name, hashing.hexdigest())

    def checksum(self, name: str, digest: str) -> str:
        self.sums.write(f"{digest}  {name}\n".encode())
        return digest

    def write_sums(self) -> str:
        """Write SHA256SUMS (every file so far, in the order written); its SHA-256."""
        self.sums.seek(0)
        hashing = hashlib.sha256()
        with self.archive.member(SUMS_NAME, zip64=True) as member:
            while chunk := self.sums.read(CHUNK):
                hashing.update(chunk)
                member.write(chunk)
        return hashing.hexdigest()


def _once(messages: Iterator, info: ExportInfo) -> Iterator:
    """A selection's messages each once, however often it names one (the set is as big
    as the selection, which `info` holds already); a query's as they come: its snapshot
    gives each once, and a set of every digest of a million-message export would not be
    bounded."""
    if info.selection is None:
        yield from messages
        return
    seen = set()
    for digest, raw, meta in messages:
        if digest not in seen:
            seen.add(digest)
            yield digest, raw, meta


def _write_eml_files(files: _ExportFiles, messages) -> None:
    for digest, raw, meta in messages:
        name = f"{MESSAGES_FOLDER}/{digest}.eml"
        files.message(name, raw)
        files.manifest.add(manifest_row(name, digest, raw, meta))
        files.result.messages += 1


def _write_mbox(files: _ExportFiles, messages) -> None:
    """One mbox member, written as it goes (no message is held longer than its turn)."""
    result = files.result

    def counted() -> Iterator[tuple[str, bytes]]:
        for digest, raw, meta in messages:
            result.messages += 1
            files.manifest.add(manifest_row(f"{MBOX_NAME}#{result.messages}", digest, raw,
                                            meta))
            yield digest, raw

    hashing = hashlib.sha256()
    with files.archive.member(MBOX_NAME, zip64=True) as member:
        write_mbox_to(counted(), _HashingWriter(member, hashing))
    result.files[MBOX_NAME] = files.checksum(MBOX_NAME, hashing.hexdigest())


class _HashingWriter:
    def __init__(self, output, hashing):
        self.output, self.hashing = output, hashing

    def write(self, data: bytes) -> int:
        self.hashing.update(data)
        return self.output.write(data)


def _info_bytes(info: ExportInfo, result: ExportResult) -> bytes:
    document = {
        "export": info.export_id, "created": iso_utc(info.created),
        "exported_by": info.exported_by, "role": info.role, "node": info.node,
        "format": info.format, "timezone": info.timezone,
        "query": info.query if info.selection is None else None,
        "selection": list(info.selection) if info.selection is not None else None,
        "messages": result.messages,
        "as_of": _as_of(info.as_of),
        "files": {"manifest": MANIFEST_NAME, "checksums": SUMS_NAME,
                  "messages": MBOX_NAME if info.format == "mbox" else MESSAGES_FOLDER + "/"},
        "columns": list(MANIFEST_COLUMNS),
        "note": "cells of manifest.csv that begin with = + - @ are prefixed with ' so that "
                "spreadsheets show them as text",
    }
    if info.format == "mbox":
        document["mbox"] = MBOX_RECIPE
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _as_of(as_of: dict | None) -> dict | None:
    """What export.json says of the moment a query's matches were read."""
    if as_of is None:
        return None
    return {**as_of, "note": "the messages the query matched in the index when the export "
                             f"began (revision {as_of['index_revision']}, document ids up to "
                             f"{as_of['last_document']}), each once, newest first; mail "
                             "indexed after is not in it, mail deleted while the export was "
                             "written is left out"}


def _chain(first, rest) -> Iterator:
    yield first
    yield from rest


def iso_utc(epoch) -> str:
    """Epoch seconds as ISO 8601 UTC ("2024-01-31T09:00:00Z"); "" for none."""
    if not epoch:
        return ""
    return dt.datetime.fromtimestamp(float(epoch), dt.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
