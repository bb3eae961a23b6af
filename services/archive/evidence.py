"""Exports that stand up as evidence: the messages, and a manifest that says what each
file is, who exported what and when, and the SHA-256 of every file.

An export is one zip, whichever its format (the web UI's download and `archiver export`
write the same):

    messages/<digest>.eml   format "zip": each message byte-exact as received
    messages.mbox           format "mbox": every message in one mboxrd file
    manifest.csv            one row per message (MANIFEST_COLUMNS), in export order
    export.json             who exported what and when (ExportInfo), how many messages
    SHA256SUMS              the SHA-256 of every other file, as sha256sum(1) writes it, so
                            `sha256sum -c SHA256SUMS` checks an unpacked export

The digest of SHA256SUMS is the manifest's digest: it covers every file, the CSV and
export.json included, and is what the audit log records (services.policy.exports).

manifest.csv is RFC 4180 CSV in UTF-8. A cell a spreadsheet would take for a formula
(beginning with = + - @, a tab or a carriage return) gets a leading apostrophe: mail is
from strangers, and a subject "=HYPERLINK(...)" must stay text on an auditor's screen.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from email.message import Message
from typing import BinaryIO, Iterable, Iterator

from services.archive.mailfiles import EXPORT_MANIFEST_FILES, write_mbox_to
from services.archive.mime import (decode_header_text, parse_headers, safely,
                                   summarize_headers)

FORMATS = ("zip", "mbox")
MANIFEST_COLUMNS = ("file", "digest", "message_id", "date", "from", "to", "cc", "subject",
                    "size", "archived_at", "source")
MESSAGES_FOLDER = "messages"
MBOX_NAME = "messages.mbox"
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
    """What was written: `messages` exported, the SHA-256 (hex) of every file by name, and
    the manifest's digest (that of SHA256SUMS)."""
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
                 info: ExportInfo) -> ExportResult:
    """Write the export of `messages` ((digest, raw bytes, store metadata) triples, in the
    order they are to appear) to `output`, a binary stream that need not be seekable (the
    web UI streams it). Raises EmptyExport, before writing anything, when `messages` is
    empty; ValueError for a format not in FORMATS."""
    if info.format not in FORMATS:
        raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {info.format!r}")
    items = iter(messages)
    first = next(items, None)
    if first is None:
        raise EmptyExport(f"nothing to export: {info.described()} matches no message "
                          "you may read")
    result, rows = ExportResult(0), _ManifestRows()
    with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        chained = _chain(first, items)
        if info.format == "zip":
            _write_eml_files(archive, chained, rows, result)
        else:
            _write_mbox(archive, chained, rows, result)
        _add(archive, MANIFEST_NAME, rows.csv_bytes(), result)
        _add(archive, INFO_NAME, _info_bytes(info, result), result)
        sums = "".join(f"{digest}  {name}\n" for name, digest in result.files.items())
        result.manifest_sha256 = hashlib.sha256(sums.encode()).hexdigest()
        _member(archive, SUMS_NAME, sums.encode())
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
    def __init__(self):
        self.buffer = io.StringIO()
        self.writer = csv.DictWriter(self.buffer, MANIFEST_COLUMNS, lineterminator="\r\n")
        self.writer.writeheader()

    def add(self, row: dict) -> None:
        self.writer.writerow({key: spreadsheet_safe(value) for key, value in row.items()})

    def csv_bytes(self) -> bytes:
        return self.buffer.getvalue().encode("utf-8")


def _write_eml_files(archive: zipfile.ZipFile, messages, rows: _ManifestRows,
                     result: ExportResult) -> None:
    seen = set()
    for digest, raw, meta in messages:
        if digest in seen:
            continue  # one file per message, however often it was asked for
        seen.add(digest)
        name = f"{MESSAGES_FOLDER}/{digest}.eml"
        _add(archive, name, raw, result)
        rows.add(manifest_row(name, digest, raw, meta))
        result.messages += 1


def _write_mbox(archive: zipfile.ZipFile, messages, rows: _ManifestRows,
                result: ExportResult) -> None:
    """One mbox member, written as it goes (no message is held longer than its turn)."""
    hashing = hashlib.sha256()
    with archive.open(_info(MBOX_NAME), "w", force_zip64=True) as member:
        sink = _HashingWriter(member, hashing)

        def counted() -> Iterator[tuple[str, bytes]]:
            seen = set()
            for digest, raw, meta in messages:
                if digest in seen:
                    continue
                seen.add(digest)
                result.messages += 1
                rows.add(manifest_row(f"{MBOX_NAME}#{result.messages}", digest, raw, meta))
                yield digest, raw

        write_mbox_to(counted(), sink)
    result.files[MBOX_NAME] = hashing.hexdigest()


class _HashingWriter:
    def __init__(self, output, hashing):
        self.output, self.hashing = output, hashing

    def write(self, data: bytes) -> int:
        self.hashing.update(data)
        return self.output.write(data)


def _add(archive: zipfile.ZipFile, name: str, data: bytes, result: ExportResult) -> None:
    result.files[name] = hashlib.sha256(data).hexdigest()
    _member(archive, name, data)


def _member(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    archive.writestr(_info(name), data)


def _info(name: str) -> zipfile.ZipInfo:
    member = zipfile.ZipInfo(name, date_time=dt.datetime.now().timetuple()[:6])
    member.compress_type = zipfile.ZIP_DEFLATED
    member.external_attr = 0o644 << 16  # readable once unpacked; the default is 0600
    return member


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
