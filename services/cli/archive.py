"""`archiver import|search|show|export|verify|stats|reindex|serve indexer`: the archive core."""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import sys
from pathlib import Path

from firmware.errors import ArchiverError

from services.policy import audit, editing, exports, saved_searches
from services.archive import compaction, dates, heap, mbox, reindex, search_snapshot
from services.archive.archive import Archive, default_data_dir
from services.policy.audit import cli_actor
from services.archive.index import PARTLY_INDEXED
from services.archive.indexer import IndexerBusy, IndexLock, status
from services.cli.import_indexing import IndexingAlongside
from services.cli.main import print_json_error
from services.common.terminal import line_safe, name_safe
from services.archive.evidence import EmptyExport
from services.archive.mailfiles import MiB, count_mail, iter_mail
from services.archive.mime import summarize_headers
from services.common.atomic_file import OutputExists, new_file_output
from services.common.progress import Progress
from services.policy.replicated import Replicated
from services.archive.search import QuerySyntaxError, Results, explain, search
from services.archive.space import OutOfSpace, is_out_of_space, size_in_words
from services.archive.store import Prepared
from services.common.config import load_config
from services.common.interrupts import ctrl_c_deferred

IMPORT_BATCH = 200  # messages per durable transaction during bulk import, at most
# Message bytes per such transaction, at most, as a share of the model's indexing.memory_mb:
# the batch is held twice (raw and compressed) until it is durable.
IMPORT_BATCH_SHARE = 8
# A message of this share of the model's message limit or more is stored with no extraction
# workers running (what was stored before it indexed first), and indexed before the next is
# read: one of the limit's size (100 MiB on the 450) is held by the import three times over
# while stored (its bytes, their compressed copy, LMDB's), and beside workers went over the
# model's memory bound (#20).
# Smaller ones keep storing and extraction side by side: made room for at a quarter of the
# limit, an import of 26 MiB messages took twice the time (review r25 F3).
ROOM_SHARE = 2


def add_archive_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=None,
                        help=f"data folder (default $ARCHIVER_DATA or /var/lib/archiver)")
    parser.add_argument("--model", type=int, default=None,
                        help="model the archive is sized for (default: this system's)")


def register(commands: argparse._SubParsersAction) -> None:
    def command(name, handler, help_text):
        parser = commands.add_parser(name, help=help_text)
        add_archive_options(parser)
        parser.set_defaults(handler=handler)
        return parser

    p = command("import", cmd_import, "import Maildir folders, mbox files and .eml files")
    p.add_argument("paths", nargs="+", type=Path)
    p.add_argument("--no-index", action="store_true", help="store only; leave indexing to the service")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")

    p = command("search", cmd_search, "search the archive (newest first); save searches")
    p.add_argument("query", nargs="?", default="")
    p.add_argument("--explain", action="store_true",
                   help="print how the query is understood instead of searching")
    p.add_argument("--save", metavar="NAME", help="save the query under NAME instead of searching")
    p.add_argument("--list-saved", action="store_true", help="list the saved searches")
    p.add_argument("--delete-saved", metavar="NAME", help="delete a saved search")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--oldest-first", action="store_true")
    p.add_argument("--json", action="store_true",
                   help='one JSON object per hit, then {"summary": {"total": ...}}')

    p = command("show", cmd_show, "a message's metadata, or its raw bytes")
    p.add_argument("digest", help="its digest, or a unique prefix of it (8 or more hex digits)")
    p.add_argument("--raw", action="store_true", help="the message exactly as received, on stdout")
    p.add_argument("--json", action="store_true")

    p = command("export", cmd_export, "export the messages a query matches, with a manifest "
                                      "(one zip: the messages as .eml files or one mbox, "
                                      "manifest.csv, export.json, SHA256SUMS)")
    p.add_argument("query")
    p.add_argument("--format", choices=["zip", "mbox"], required=True,
                   help="zip: one .eml file per message; mbox: one messages.mbox")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="the zip to write (never overwritten; its folder must exist)")
    p.add_argument("--json", action="store_true")

    p = command("verify", cmd_verify, "recompute every digest and check that nothing is missing "
                                      "from the store or the index (exit 1 naming what)")
    p.add_argument("--json", action="store_true")

    p = command("stats", cmd_stats, "messages stored, indexed and pending; bytes")
    p.add_argument("--json", action="store_true")

    p = command("reindex", cmd_reindex, "rebuild the index from the store")
    p.add_argument("--json", action="store_true")

    p = command("compact", cmd_compact,
                "rewrite the index compacted (after a large import: about 40%% of the size)")
    p.add_argument("--json", action="store_true")


def open_archive(args, create: bool = True) -> Archive:
    """The archive of --data (or $ARCHIVER_DATA); with create=False it must exist already
    (NoArchive otherwise): commands that only read never make an empty one."""
    archive = Archive(args.data or default_data_dir(), args.model)
    if not create:
        archive.require_existing()
    archive.make_data_dir()  # a file or a folder it cannot write in: said before any work
    return archive


def cmd_import(args) -> int:
    archive = open_archive(args)
    counts = {"imported": 0, "duplicates": 0, "merged": 0, "failed": 0, "skipped": 0}
    problems: list[dict] = []  # what failed or was skipped, and why
    mbox_ends = mbox.Ends()  # counted and read up to the same end: the counts agree
    max_bytes = archive.profile.smtp.max_message_mb * MiB
    progress = Progress("importing", total=count_mail(args.paths, mbox_ends=mbox_ends,
                                                      max_bytes=max_bytes),
                        enabled=not args.json)
    batch: list[tuple[str, Prepared]] = []  # (label, the message ready to store)
    batch_bytes = 0  # of the messages in batch
    most_bytes = archive.profile.indexing.memory_bytes // IMPORT_BATCH_SHARE
    room_bytes = max_bytes // ROOM_SHARE

    def flush():
        """Store the batch; a part that finds no room is split, so that all that fits is
        stored. Raises OutOfSpace with the batch left from the first message that does not."""
        nonlocal batch_bytes
        size = len(batch)
        while batch:
            try:
                with ctrl_c_deferred():  # stored is counted: a Ctrl-C comes after both
                    outcomes = archive.store.put_prepared([ready for _, ready in batch[:size]])
                    for outcome in outcomes:
                        counts["imported" if outcome.status == "new" else
                               "duplicates" if outcome.status == "duplicate" else "merged"] += 1
            except OutOfSpace:
                if size == 1:
                    raise
                size = (size + 1) // 2  # nothing of the part was stored: try a smaller one
                continue
            progress.advance(size)
            del batch[:size]
            indexing.arrived()
        batch_bytes = 0

    with IndexingAlongside(archive, quiet=args.json, enabled=not args.no_index) as indexing:
        args.interrupted = lambda: _print_interrupted(args, counts, problems, indexing)
        try:
            # The model's message limit caps every file and zip member import reads.
            for item in iter_mail(args.paths, max_bytes,
                                  mbox_ends=mbox_ends):
                if item.error:
                    outcome = "skipped" if item.skipped else "failed"
                    counts[outcome] += 1
                    problems.append({"item": item.label, "outcome": outcome,
                                     "reason": item.error})
                    print(f"archiver: {outcome} {line_safe(item.label)}: {line_safe(item.error)}",
                          file=sys.stderr)
                    progress.advance()
                    continue
                if item.warning:  # stored, but the operator should look at it
                    problems.append({"item": item.label, "outcome": "warning",
                                     "reason": item.warning})
                    print(f"archiver: warning {line_safe(item.label)}: {line_safe(item.warning)}",
                          file=sys.stderr)
                large = len(item.raw) >= room_bytes
                if large:  # stored with no workers beside it, in a batch of its own
                    flush()
                    indexing.make_room()
                # The batch holds it compressed, its bytes gone once prepared: the indexer
                # reads them back from the store (held here until stored, a 100 MiB message
                # of random data was its bytes, their compressed copy and LMDB's copy of it).
                batch.append((item.label, archive.store.prepare(
                    item.raw, None, "import", from_line_date=item.from_line_date)))
                batch_bytes += len(item.raw)
                del item
                if large or len(batch) >= IMPORT_BATCH or batch_bytes >= most_bytes:
                    flush()  # stores all of the batch, or raises
                if large:  # and indexed before what follows is read
                    indexing.make_room()
            if batch:
                flush()
            heap.trim()  # what storing left free goes back
        except OutOfSpace as full:  # nothing of the batch is stored: the next run goes on there
            progress.finish()
            counts["indexed"] = indexing.stop()
            return _import_stopped(args, archive, counts, problems, full, batch, progress)
        progress.finish()
        try:
            counts["indexed"] = indexing.finish()
        except Exception as exc:
            if not is_out_of_space(exc, archive.data_dir):
                raise
            counts["indexed"] = indexing.indexed
            return _indexing_stopped(args, archive, counts, problems)
    _print_summary(args, counts, problems)
    archive.close()
    return 0 if not counts["failed"] else 1


def _import_stopped(args, archive: Archive, counts: dict, problems: list[dict],
                    full: OutOfSpace, batch: list[tuple[str, Prepared]], progress: Progress) -> int:
    """The one line of an import that stopped at a write that could not be made: how many
    are stored, where it stopped, about how much room the rest needs. Exit 75 (try again)."""
    stored = _stored(counts)
    left = max(progress.total - progress.done, len(batch))
    store = archive.store.counters()
    ratio = store["stored_bytes"] / store["raw_bytes"] if store["raw_bytes"] else 1.0
    needed = int(sum(ready.meta["size"] for _, ready in batch) / len(batch) * left * ratio)
    stopped = {"stored": stored, "stopped_at": batch[0][0], "left": left,
               "needed_bytes": needed, "reason": full.brief}
    print(f"archiver: import stopped: {full.brief}; {stored} messages stored, stopped at "
          f"{line_safe(batch[0][0])}; the {left} left need about {size_in_words(needed)} "
          "more: make room, then run the same import again", file=sys.stderr)
    if args.json:
        print(json.dumps({**counts, "problems": problems, "stopped": stopped}))
    archive.close()
    return full.exit_code


def _indexing_stopped(args, archive: Archive, counts: dict, problems: list[dict]) -> int:
    """Everything is stored but the index ran out of room: say so in one line; exit 75."""
    short = _disk_words(archive, None)
    stored = _stored(counts)
    print(f"archiver: import stored all {stored} messages, but indexing stopped: "
          f"{short}; the indexer service, or the next import, indexes "
          "the rest once there is room", file=sys.stderr)
    if args.json:
        print(json.dumps({**counts, "problems": problems, "stopped": {"indexing": short}}))
    archive.close()
    return OutOfSpace.exit_code


def _disk_words(archive: Archive, exc: Exception | None) -> str:
    """Which spaces of `archive` are low or full, with their numbers; else what `exc` said."""
    short = "; ".join(space.words() for space in archive.spaces() if space.state != "ok")
    return short or (f"a write failed ({exc})" if exc is not None else "a disk is full")


def _stored(counts: dict) -> int:
    return counts["imported"] + counts["duplicates"] + counts["merged"]


def _print_interrupted(args, counts: dict, problems: list[dict],
                       indexing: IndexingAlongside) -> None:
    """The summary of an import interrupted (Ctrl-C): what it stored is kept (the same
    import run again stores the rest, the stored ones as duplicates), the batch it had not
    stored yet is not; with --json the summary's JSON, "interrupted": true."""
    done = {**counts, "indexed": counts.get("indexed", indexing.indexed)}
    print(f"archiver: import interrupted: {_stored(counts)} messages stored, "
          f"{done['indexed']} indexed; run the same import again to go on", file=sys.stderr)
    if args.json:
        print(json.dumps({**done, "problems": problems, "interrupted": True}))


def _print_summary(args, counts: dict, problems: list[dict]) -> None:
    if args.json:
        print(json.dumps({**counts, "problems": problems}))
    else:
        print(", ".join(f"{name} {value}" for name, value in counts.items()))


def cmd_search(args) -> int:
    archive = open_archive(args, create=False)
    if args.save or args.list_saved or args.delete_saved:
        return _saved_searches(args, archive)
    timezone = configured_timezone()
    try:
        if args.explain:
            return _explain(archive, args, timezone)
        results = search(archive.index_dir(), args.query, args.limit, args.offset,
                         args.oldest_first, timezone=timezone,
                         log_end=archive.store.log_end("arrival"))
    except QuerySyntaxError as error:
        return _query_error(error, args.json)
    # Recorded once the search has run and before anything is shown: the log says who
    # saw which results, and a refused query (exit 2) showed nothing and read no mail.
    audit.record(archive.store, cli_actor(), "search", query=args.query)
    zone = dates.zone(timezone)
    for hit in results.hits:
        if args.json:
            print(json.dumps(hit.as_json()))
        else:
            print(_printable(f"{hit.digest}  {_day(hit.date, zone)}  "
                             f"{line_safe(hit.sender[:40]):<40}  {line_safe(hit.subject)}"))
    if args.json:
        print(json.dumps(search_summary(results)))
    if results.notice:
        print(f"archiver: note: {results.notice}", file=sys.stderr)
    if not args.json:
        shown = f"{args.offset + 1}-{args.offset + len(results.hits)}" if results.hits else "none"
        print(f"({shown} of {results.total_text()})", file=sys.stderr)
    return 0


def search_summary(results: Results) -> dict:
    """The last line of `archiver search --json`, after one object per hit (JSON Lines):
    {"summary": {"total", "more", "total_text", "offset", "shown", "not_indexed",
    "notice"}}. Its one key, which no hit has, tells it from a hit, and it is always
    printed, so a script tells no match (total 0) from a page cut by --limit (total
    over offset + shown) and from an index still behind (not_indexed, notice). `total`
    is exact unless `more` (then it is search.COUNT_LIMIT, as the web API's total with
    total_exact false); `notice` is None when the answer is complete."""
    return {"summary": {"total": results.total, "more": results.more,
                        "total_text": results.total_text(), "offset": results.offset,
                        "shown": len(results.hits), "not_indexed": results.not_indexed,
                        "notice": results.notice}}


def _query_error(error: QuerySyntaxError, as_json: bool) -> int:
    """What is wrong, then the query with a caret under where (and --json's error line)."""
    print(f"archiver: {error}\n{error.pointer()}", file=sys.stderr)
    if as_json:
        print_json_error(str(error), error.exit_code)
    return error.exit_code


def _explain(archive: Archive, args, timezone: str) -> int:
    understood = explain(archive.index_dir(), args.query, timezone)
    if args.json:
        print(json.dumps(understood))
    else:
        print(f"query: {args.query}")
        print(f"days are days in {understood['timezone']}; case and accents are ignored")
        print("matches messages with")
        print("\n".join("  " + line for line in understood["explanation"]))
        print(f"Xapian query: {understood['xapian']}")
    return 0


def configured_timezone() -> str:
    """The appliance's time zone (archiver.yaml's `timezone`, $ARCHIVER_CONFIG respected)."""
    return load_config().timezone


def _saved_searches(args, archive) -> int:
    replicated, actor = Replicated(archive.store), cli_actor()
    if args.save:
        editing.save_search(archive.store, archive.index_dir(), args.save, args.query, actor,
                            configured_timezone())
        print(json.dumps({"saved": args.save, "query": args.query}) if args.json
              else f"saved {args.save!r}: {args.query}")
    elif args.delete_saved:
        saved_searches.delete(replicated, args.delete_saved, also=lambda txn: audit.record_in(
            archive.store, txn, actor, "saved-search-delete", name=args.delete_saved))
        print(json.dumps({"deleted": args.delete_saved}) if args.json
              else f"deleted saved search {args.delete_saved!r}")
    else:
        for name, query in sorted(saved_searches.all_saved(replicated).items()):
            print(json.dumps({"name": name, "query": query}) if args.json else f"{name}: {query}")
    return 0


def cmd_show(args) -> int:
    archive = open_archive(args, create=False)
    digest = archive.store.resolve(args.digest)
    audit.record(archive.store, cli_actor(), "view", digest=digest, raw=args.raw)
    raw = archive.store.get(digest)
    if args.raw:
        sys.stdout.buffer.write(raw)
        sys.stdout.buffer.flush()
        return 0
    headers = summarize_headers(raw)
    meta = {**archive.store.meta(digest), "to": headers.to, "cc": headers.cc}
    # the files as the web and the API number them (mail_view): the stored name list (the
    # indexer's, for search) leaves out unnamed files and puts an attached message's own
    # files in line, so its Nth name was not the download of attachment N (review r5 F5)
    from services.web import mail_view  # (loads PIL and libmagic: show alone needs them)
    files = [file.as_json() for file in mail_view.files(raw)]
    if args.json:
        print(json.dumps(mail_view.message_json(meta, {"attachments": files})))
        return 0
    for key in ("digest", "message_id", "from", "to", "cc", "subject", "sent_date",
                "date_source", "received", "size", "stored_size", "sender", "recipients",
                "source", "origin"):
        value = meta.get(key)
        if key in ("sent_date", "received") and value:
            value = _iso(value)
        if isinstance(value, list):
            value = ", ".join(value) or "-"
        shown = line_safe(value) if value not in (None, "") else "-"
        print(_printable(f"{key + ':':<13} {shown}"))
    print(f"{'attachments:':<13} {len(files) or '-'}")
    for line in _file_lines(files):
        print(_printable(line))
    for problem in meta.get("extraction_failures") or []:  # a cut: "[NAME: ]partly indexed: ..."
        label = "cut:" if problem.startswith(PARTLY_INDEXED) or \
            f": {PARTLY_INDEXED}" in problem else "unreadable:"
        print(_printable(f"{label:<13} {name_safe(problem)}"))  # it names a file
    return 0


def _file_lines(files: list[dict], depth: int = 0) -> list[str]:
    """A line for each file (mail_view.Attachment.as_json), "  N  NAME  TYPE, SIZE bytes"
    with the number the web's download of it has; the files inside one (an attached
    message's, a TNEF file's) below it, indented, "-" for the number they do not have; a
    container the view did not open says why after its size (not_opened), and one with a
    problem as a whole says it there (container_problem: "not a readable zip archive...",
    "600 members; the first 500 are listed"); a file that could not be read out of its
    container says "unreadable: REASON" for its size.
    NAME is a sender's: always quoted (_quoted_name), so that no name reads as an unnamed
    file, "(no name, saved as attachment-N)" (its download's name) or, inside another,
    "(no name)"; nor as a column or a row of its own (review r7 F4)."""
    lines = []
    for file in files:
        numbered = "number" in file
        name = _quoted_name(file["filename"]) if file["named"] \
            else f"(no name, saved as {file['filename']})" if numbered else "(no name)"
        number = str(file["number"]) if numbered else "-"
        unopened = f"; {line_safe(file['not_opened'])}" if file.get("not_opened") else ""
        if file.get("container_problem"):  # (the indexer's words: a member's name too)
            unopened += f"; {name_safe(file['container_problem'])}"
        size = f"unreadable: {name_safe(file['unreadable'])}" if file.get("unreadable") \
            else f"{file['size']:,} bytes"
        lines.append(f"{'    ' * depth}{number:>3}  {name}  "
                     f"{name_safe(_one_spaced(file['content_type']))}, {size}{unopened}")
        lines.extend(_file_lines(file["files"], depth + 1))
    return lines


def _quoted_name(name: str) -> str:
    """A file's name between double quotes, written by name_safe (a backslash twice, white
    space but a lone space and each character that shows as no glyph of its own escaped,
    as the page writes it: review r9 F5, r10 F7), a quote in it escaped by a backslash:
    where the name ends is never in doubt, nor which of two names it is. The JSON has the
    name as it is."""
    return '"' + name_safe(name).replace('"', '\\"') + '"'


def _one_spaced(text: str) -> str:
    """`text` with each run of white space (line breaks and Unicode's spaces too) one
    space."""
    return re.sub(r"\s+", " ", text)


def _printable(text: str) -> str:
    """`text` with what standard output's encoding cannot carry as "?": a lone surrogate
    in metadata an older release stored (its UTF-7 decoding left them) made `show` fail."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    return text.encode(encoding, "replace").decode(encoding)


def cmd_export(args) -> int:
    """The matches of a query as an export with its manifest (services.archive.evidence):
    the same zip the web UI gives. Never overwrites; nothing is written for no matches."""
    output = _export_path(args.output)
    archive = open_archive(args, create=False)
    timezone, actor = configured_timezone(), cli_actor()
    try:  # each match once, as of now, newest first; a bad query fails before any output
        snapshot = search_snapshot.take(archive.live_index_link(), args.query, timezone)
    except QuerySyntaxError as error:
        return _query_error(error, args.json)
    progress = Progress("exporting", total=len(snapshot), enabled=not args.json)

    def messages():
        for message in snapshot.messages(archive.store):
            progress.advance()
            yield message

    info = exports.new_info(archive.store, actor, args.format, query=args.query,
                            timezone=timezone, as_of=snapshot.as_of)
    try:
        with contextlib.ExitStack() as file_output:
            stream = file_output.enter_context(new_file_output(output))
            # Closing file_output syncs the file and links it under its name: only once
            # the export is recorded (an error before then leaves nothing behind).
            result = exports.export(archive.store, actor, info, messages(), stream,
                                    put_in_place=file_output.close)
    except EmptyExport as empty:
        print(f"archiver: {empty}; {output} was not written", file=sys.stderr)
        if args.json:
            print_json_error(f"{empty}; {output} was not written", 1)
        return 1
    except OutputExists:
        raise ArchiverError(f"{output} exists: an export never overwrites a file; remove "
                            "it or choose another name") from None
    except OSError as exc:  # a folder one may not write in (/proc, read-only), a full disk
        if is_out_of_space(exc, output.parent):
            raise OutOfSpace(f"cannot write the export to {output}: "
                             f"{exc.strerror or exc}; nothing was left behind: make room "
                             "or choose another folder, and export again") from None
        raise ArchiverError(f"cannot write the export to {output}: "
                            f"{exc.strerror or exc}; choose another folder") from None
    progress.finish()
    summary = {"exported": result.messages, "format": args.format, "output": str(output),
               "export": info.export_id, "manifest_sha256": result.manifest_sha256}
    print(json.dumps(summary) if args.json else
          f"exported {result.messages} messages to {output} (export {info.export_id}, "
          f"manifest SHA-256 {result.manifest_sha256})")
    return 0


def _export_path(path: Path) -> Path:
    """The export's file: its folder must exist and the file must not (ArchiverError)."""
    try:
        return _checked_export_path(path)
    except OSError as exc:  # a name too long (ENAMETOOLONG), a folder above not searchable
        raise ArchiverError(f"cannot export to {path}: {exc.strerror or exc}; choose "
                            "another name or folder") from None


def _checked_export_path(path: Path) -> Path:
    if path.is_dir():
        raise ArchiverError(f"{path} is a folder: give the file to write, e.g. "
                            f"{path / 'export.zip'}")
    if path.parent.exists() and not path.parent.is_dir():
        raise ArchiverError(f"{path.parent} is a file, not a folder: export to a folder")
    if not path.parent.is_dir():
        raise ArchiverError(f"the folder {path.parent} does not exist: create it first, "
                            "or export to another folder")
    if path.exists() or path.is_symlink():
        raise ArchiverError(f"{path} exists: an export never overwrites a file; remove it "
                            "or choose another name")
    return path


def cmd_verify(args) -> int:
    """Every message's bytes against its digest and metadata, then what should be there
    and is not: messages the store's counter has that were not found, arrival-log entries
    naming a message neither stored nor deleted, index documents whose message is gone,
    and (once indexing has caught up) stored messages without a document. Exit 1 when
    anything is corrupt or missing. --json: {"checked", "corrupt"} as before (corrupt: the
    first store.MISSING_SHOWN), and "corrupt_entries", "counted", "found", "missing", "missing_entries", "log_entries", "log_checked_from",
    "log_unverifiable", "index" (index_check.IndexCheck.as_json), "mismatches"."""
    from services.archive import index_check  # Xapian: only here
    archive = open_archive(args, create=False)
    progress = Progress("verifying", total=archive.store.counters()["messages"],
                        enabled=not args.json)
    found = archive.store.check(progress.advance)
    progress.finish()
    index = index_check.check(archive.store, archive.live_index_link())
    mismatches = (found.missing_entries + (found.uncounted != 0) + index.mismatches)
    if args.json:
        print(json.dumps({"checked": progress.done, "corrupt": found.corrupt,
                          "corrupt_entries": found.corrupt_entries, "counted": found.counted, "found": {"raw": found.raw,
                                                              "meta": found.meta},
                          "missing": found.missing, "missing_entries": found.missing_entries,
                          "log_entries": found.log_entries,
                          "log_checked_from": found.log_checked_from,
                          "log_unverifiable": found.log_unverifiable,
                          "index": index.as_json(), "mismatches": mismatches}))
    else:
        _print_verified(progress.done, found, index, mismatches)
    return 1 if found.corrupt or mismatches else 0


def _print_verified(checked: int, found, index, mismatches: int) -> None:
    """One line per problem (CORRUPT, MISSING, UNCOUNTED, INDEXED-GONE, NOT-INDEXED, at most
    store.MISSING_SHOWN and index_check.SHOWN of a kind, then how many more), notes on what
    could not be checked, and the summary line `checked N messages, K corrupt` (then, when
    something is missing, how many mismatches)."""
    _print_some("CORRUPT", [(p["digest"], p["problem"]) for p in found.corrupt],
                found.corrupt_entries, "corrupt messages")
    _print_some("MISSING", [(p["digest"], p["problem"]) for p in found.missing],
                found.missing_entries, "arrival-log entries name a missing message")
    if found.uncounted:
        print(f"UNCOUNTED: the store's counter says {found.counted} messages; {found.raw} "
              f"have their bytes, {found.meta} their metadata")
    _print_some("INDEXED-GONE", [(d, "the index has a document for it, but the store has "
                                     "no such message: searches find it, show and export "
                                     "cannot") for d in index.without_message],
                index.without_message_count, "index documents without their message")
    _print_some("NOT-INDEXED", [(d, "stored, but the index has no document for it though "
                                    "indexing has caught up: searches miss it; archiver "
                                    "reindex adds it") for d in index.not_indexed],
                index.not_indexed_count, "stored messages without a document")
    if not index.checked:
        changes = f"{index.pending} change{'s' if index.pending != 1 else ''}"
        print(f"note: the index was not checked against the store: it has {changes} still "
              "to take in; run verify again once indexing has caught up")
    if found.log_unverifiable:
        print(f"note: {found.log_unverifiable} arrival-log entries before entry "
              f"{found.log_checked_from} name messages not stored: deleted by firmware that "
              "kept no record of deletions, or missing (the counter and index checks cover them)")
    summary = f"checked {checked} messages, {found.corrupt_entries} corrupt"
    print(summary + (f"; {mismatches} mismatches of what should be stored: see above"
                     if mismatches else ""))


def _print_some(label: str, problems: list[tuple[str, str]], count: int, what: str) -> None:
    for digest, problem in problems:
        print(f"{label} {digest}: {problem}")
    if count > len(problems):
        print(f"{label}: {count - len(problems)} more {what} (not listed)")


def archive_stats(archive: Archive) -> dict:
    """`archiver stats --json`'s object: messages "stored", "indexed" and "pending" (arrival-log
    entries not yet indexed), "raw_bytes" and "stored_bytes" (compressed), "duplicates"
    refused, "reading_bytes" (readings kept for reindexing), the "model" and its
    "capacity_bytes"."""
    counters = archive.store.counters()
    index = status(archive.store, archive.index_dir())
    return {"stored": counters["messages"], "indexed": index.indexed, "pending": index.pending,
            "raw_bytes": counters["raw_bytes"], "stored_bytes": counters["stored_bytes"],
            "duplicates": counters["duplicates"],
            "reading_bytes": archive.store.database_bytes("reading"),
            "model": archive.profile.model,
            "capacity_bytes": archive.profile.storage_bytes}


def cmd_stats(args) -> int:
    archive = open_archive(args, create=False)
    stats = archive_stats(archive)
    if args.json:
        print(json.dumps(stats))
    else:
        ratio = stats["stored_bytes"] / stats["raw_bytes"] if stats["raw_bytes"] else 0
        print(f"stored {stats['stored']} messages, indexed {stats['indexed']}, "
              f"pending {stats['pending']}")
        print(f"raw {stats['raw_bytes']} bytes, stored {stats['stored_bytes']} bytes "
              f"({ratio:.0%}), {stats['duplicates']} duplicates refused")
        print(f"readings kept for reindexing {stats['reading_bytes']} bytes")
    return 0


def cmd_reindex(args) -> int:
    """Rebuild the index from the store beside the live one (which answers searches
    meanwhile), then switch over; an interrupted rebuild resumes."""
    archive = open_archive(args, create=False)
    lock = IndexLock(archive.data_dir)
    if not lock.acquire(wait=False):
        raise IndexerBusy("the indexer service holds the index: stop archiver-indexer, "
                          "then run reindex again (or let the service rebuild it: it does "
                          "when the index is of an older version)")
    try:
        progress = Progress("reindexing", total=archive.store.log_end("arrival"),
                            enabled=not args.json)  # arrival-log entries
        with archive.extraction_pool() as pool:
            reindex.rebuild(archive, pool, progress=progress.advance)
        reindex.switch_over(archive)
        progress.finish()
        indexed = status(archive.store, archive.index_dir()).indexed
        index_bytes = compaction.size_of(archive.index_dir())
    except Exception as exc:
        if not is_out_of_space(exc, archive.data_dir):
            raise
        progress.finish()
        raise OutOfSpace(f"reindex stopped: {_disk_words(archive, exc)}; the old index "
                         "still answers, and reindex run again once there is room goes on "
                         "where this one stopped") from None
    finally:
        lock.release()
    print(json.dumps({"indexed": indexed, "index_bytes": index_bytes}) if args.json else
          f"reindexed {indexed} messages (index: {index_bytes / 1e6:.1f} MB, compacted)")
    return 0


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _day(epoch: float, zone: dt.tzinfo) -> str:
    return dt.datetime.fromtimestamp(epoch, zone).strftime("%Y-%m-%d")


def cmd_compact(args) -> int:
    """Write the live index again compacted (services.archive.compaction), then switch to
    it: searches go on meanwhile, and the old index is retired, kept for the searches
    that found it just before (removed by the indexer service once it runs again, or by
    the next compact: compaction.remove_strays); the indexer service must be stopped (it
    holds the index while it runs). Exits 75 when the disk has no room for the copy (the
    index as it was)."""
    archive = open_archive(args, create=False)
    lock = IndexLock(archive.data_dir)
    if not lock.acquire(wait=False):
        raise IndexerBusy("the indexer service holds the index: stop archiver-indexer, "
                          "then run compact again")
    try:
        compaction.remove_strays(archive)  # what an earlier compact retired, or left when cut short
        live = archive.index_dir()
        before = compaction.size_of(live)
        copied = compaction.copy(archive, live)
        if copied is None:
            raise OutOfSpace(f"compact stopped: {_disk_words(archive, None)}; it needs room "
                             f"for a copy of the index (at most {before / 1e6:.1f} MB); the "
                             "index is as it was")
        compaction.record(archive.store, copied, before)
        archive.swap_index(copied)
        after = compaction.size_of(copied)
    finally:
        lock.release()
    print(json.dumps({"index_bytes_before": before, "index_bytes": after}) if args.json else
          f"compacted the index: {after / 1e6:.1f} MB, {before / 1e6:.1f} MB before")
    return 0
