"""`archiver import|search|show|export|verify|stats|reindex|serve indexer`: the archive core."""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

from services.policy import audit, saved_searches
from services.archive.archive import Archive, default_data_dir
from services.policy.audit import cli_actor
from services.archive.extract import ExtractionPool
from services.archive.indexer import Indexer, IndexerBusy, IndexLock, status
from services.archive.mailfiles import count_mail, iter_mail, write_mbox, write_zip
from services.common.progress import Progress
from services.policy.replicated import Replicated
from services.archive.search import search
from services.archive.space import OutOfSpace, is_out_of_space, size_in_words

IMPORT_BATCH = 200  # messages per durable transaction during bulk import
EXPORT_PAGE = 500


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
    p.add_argument("--save", metavar="NAME", help="save the query under NAME instead of searching")
    p.add_argument("--list-saved", action="store_true", help="list the saved searches")
    p.add_argument("--delete-saved", metavar="NAME", help="delete a saved search")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--oldest-first", action="store_true")
    p.add_argument("--json", action="store_true", help="one JSON object per hit")

    p = command("show", cmd_show, "a message's metadata, or its raw bytes")
    p.add_argument("digest")
    p.add_argument("--raw", action="store_true", help="the message exactly as received, on stdout")
    p.add_argument("--json", action="store_true")

    p = command("export", cmd_export, "export the messages a query matches")
    p.add_argument("query")
    p.add_argument("--format", choices=["zip", "mbox"], required=True)
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--json", action="store_true")

    p = command("verify", cmd_verify, "recompute every digest (exit 1 naming corrupt messages)")
    p.add_argument("--json", action="store_true")

    p = command("stats", cmd_stats, "messages stored, indexed and pending; bytes")
    p.add_argument("--json", action="store_true")

    p = command("reindex", cmd_reindex, "rebuild the index from the store")
    p.add_argument("--json", action="store_true")


def open_archive(args) -> Archive:
    return Archive(args.data or default_data_dir(), args.model)


def cmd_import(args) -> int:
    archive = open_archive(args)
    counts = {"imported": 0, "duplicates": 0, "merged": 0, "failed": 0}
    progress = Progress("importing", total=count_mail(args.paths), enabled=not args.json)
    batch: list[tuple[str, bytes]] = []  # (label, raw)

    def flush():
        for outcome in archive.store.put_many([(raw, None, "import") for _, raw in batch]):
            counts["imported" if outcome.status == "new" else
                   "duplicates" if outcome.status == "duplicate" else "merged"] += 1
        progress.advance(len(batch))
        batch.clear()

    try:
        for item in iter_mail(args.paths):
            if item.error:
                counts["failed"] += 1
                print(f"archiver: skipped {item.label}: {item.error}", file=sys.stderr)
                progress.advance()
                continue
            batch.append((item.label, item.raw))
            if len(batch) >= IMPORT_BATCH:
                flush()
        if batch:
            flush()
    except OutOfSpace as full:  # nothing of the batch is stored: the next run goes on there
        progress.finish()
        return _import_stopped(args, archive, counts, full, batch, progress)
    progress.finish()
    try:
        counts["indexed"] = 0 if args.no_index else _index_if_free(archive, quiet=args.json)
    except Exception as exc:
        if not is_out_of_space(exc, archive.data_dir):
            raise
        return _indexing_stopped(args, archive, counts)
    _print_summary(args, counts)
    archive.close()
    return 0 if not counts["failed"] else 1


def _index_if_free(archive: Archive, quiet: bool) -> int:
    """Index what is pending now, unless the indexer service holds the index."""
    lock = IndexLock(archive.data_dir)
    if not lock.acquire(wait=False):
        print("archiver: the indexer service is running; it indexes the new mail",
              file=sys.stderr)
        return 0
    try:
        pending = status(archive.store, archive.index_dir()).pending
        progress = Progress("indexing", total=pending, enabled=not quiet)
        with ExtractionPool.for_model(archive.profile) as pool:
            indexer = Indexer(archive.store, archive.index_dir(), pool)
            done = indexer.catch_up(progress.advance)
            indexer.close()
        progress.finish()
        return done
    finally:
        lock.release()


def _import_stopped(args, archive: Archive, counts: dict, full: OutOfSpace,
                    batch: list[tuple[str, bytes]], progress: Progress) -> int:
    """The one line of an import that stopped at a write that could not be made: how many
    are stored, where it stopped, about how much room the rest needs. Exit 75 (try again)."""
    stored = _stored(counts)
    left = max(progress.total - progress.done, len(batch))
    store = archive.store.counters()
    ratio = store["stored_bytes"] / store["raw_bytes"] if store["raw_bytes"] else 1.0
    needed = int(sum(len(raw) for _, raw in batch) / len(batch) * left * ratio)
    stopped = {"stored": stored, "stopped_at": batch[0][0], "left": left,
               "needed_bytes": needed, "reason": full.brief}
    print(f"archiver: import stopped: {full.brief}; {stored} messages stored, stopped at "
          f"{batch[0][0]}; the {left} left need about {size_in_words(needed)} more: make room, "
          "then run the same import again", file=sys.stderr)
    if args.json:
        print(json.dumps({**counts, "indexed": 0, "stopped": stopped}))
    archive.close()
    return full.exit_code


def _indexing_stopped(args, archive: Archive, counts: dict) -> int:
    """Everything is stored but the index ran out of room: say so in one line; exit 75."""
    short = "; ".join(space.words() for space in archive.spaces() if space.state != "ok")
    stored = _stored(counts)
    print(f"archiver: import stored all {stored} messages, but indexing stopped: "
          f"{short or 'a disk is full'}; the indexer service, or the next import, indexes "
          "the rest once there is room", file=sys.stderr)
    if args.json:
        print(json.dumps({**counts, "indexed": 0, "stopped": {"indexing": short}}))
    archive.close()
    return OutOfSpace.exit_code


def _stored(counts: dict) -> int:
    return counts["imported"] + counts["duplicates"] + counts["merged"]


def _print_summary(args, counts: dict) -> None:
    if args.json:
        print(json.dumps(counts))
    else:
        print(", ".join(f"{name} {value}" for name, value in counts.items()))


def cmd_search(args) -> int:
    archive = open_archive(args)
    if args.save or args.list_saved or args.delete_saved:
        return _saved_searches(args, archive)
    audit.record(archive.store, cli_actor(), "search", query=args.query)
    results = search(archive.index_dir(), args.query, args.limit, args.offset, args.oldest_first)
    for hit in results.hits:
        if args.json:
            print(json.dumps(hit.as_json()))
        else:
            print(f"{hit.digest}  {_day(hit.date)}  {hit.sender[:40]:<40}  {hit.subject}")
    if not args.json:
        shown = f"{args.offset + 1}-{args.offset + len(results.hits)}" if results.hits else "none"
        print(f"({shown} of about {results.total})", file=sys.stderr)
    return 0


def _saved_searches(args, archive) -> int:
    replicated, actor = Replicated(archive.store), cli_actor()
    if args.save:
        saved_searches.save(replicated, args.save, args.query)
        audit.record(archive.store, actor, "saved-search", name=args.save, query=args.query)
        print(f"saved {args.save!r}: {args.query}")
    elif args.delete_saved:
        saved_searches.delete(replicated, args.delete_saved)
        audit.record(archive.store, actor, "saved-search-delete", name=args.delete_saved)
        print(f"deleted saved search {args.delete_saved!r}")
    else:
        for name, query in sorted(saved_searches.all_saved(replicated).items()):
            print(json.dumps({"name": name, "query": query}) if args.json else f"{name}: {query}")
    return 0


def cmd_show(args) -> int:
    archive = open_archive(args)
    audit.record(archive.store, cli_actor(), "view", digest=args.digest, raw=args.raw)
    if args.raw:
        sys.stdout.buffer.write(archive.store.get(args.digest))
        sys.stdout.buffer.flush()
        return 0
    meta = archive.store.meta(args.digest)
    if args.json:
        print(json.dumps(meta))
        return 0
    for key in ("digest", "message_id", "from", "subject", "sent_date", "received", "size",
                "stored_size", "sender", "recipients", "source", "origin", "attachments"):
        value = meta.get(key)
        if key in ("sent_date", "received") and value:
            value = _iso(value)
        if isinstance(value, list):
            value = ", ".join(value) or "-"
        print(f"{key + ':':<13} {value if value not in (None, '') else '-'}")
    return 0


def cmd_export(args) -> int:
    archive = open_archive(args)
    audit.record(archive.store, cli_actor(), "export", query=args.query, format=args.format,
                 output=str(args.output))
    index_dir = archive.index_dir()
    total = search(index_dir, args.query, 0).total
    progress = Progress("exporting", total=total, enabled=not args.json)

    def messages():
        offset = 0
        while hits := search(index_dir, args.query, EXPORT_PAGE, offset).hits:
            for hit in hits:
                progress.advance()
                yield hit.digest, archive.store.get(hit.digest)
            offset += len(hits)

    written = (write_zip if args.format == "zip" else write_mbox)(messages(), args.output)
    progress.finish()
    count = written if isinstance(written, int) else progress.done
    summary = {"exported": count, "format": args.format, "output": str(args.output)}
    print(json.dumps(summary) if args.json else f"exported {count} messages to {args.output}")
    return 0


def cmd_verify(args) -> int:
    archive = open_archive(args)
    total = archive.store.counters()["messages"]
    progress = Progress("verifying", total=total, enabled=not args.json)
    problems = archive.store.verify(progress.advance)
    progress.finish()
    if args.json:
        print(json.dumps({"checked": progress.done, "corrupt": problems}))
    else:
        for problem in problems:
            print(f"CORRUPT {problem['digest']}: {problem['problem']}")
        print(f"checked {progress.done} messages, {len(problems)} corrupt")
    return 1 if problems else 0


def cmd_stats(args) -> int:
    archive = open_archive(args)
    counters = archive.store.counters()
    index = status(archive.store, archive.index_dir())
    stats = {"stored": counters["messages"], "indexed": index.indexed, "pending": index.pending,
             "raw_bytes": counters["raw_bytes"], "stored_bytes": counters["stored_bytes"],
             "duplicates": counters["duplicates"], "model": archive.profile.model,
             "capacity_bytes": archive.profile.storage_bytes}
    if args.json:
        print(json.dumps(stats))
    else:
        ratio = counters["stored_bytes"] / counters["raw_bytes"] if counters["raw_bytes"] else 0
        print(f"stored {stats['stored']} messages, indexed {stats['indexed']}, "
              f"pending {stats['pending']}")
        print(f"raw {counters['raw_bytes']} bytes, stored {counters['stored_bytes']} bytes "
              f"({ratio:.0%}), {counters['duplicates']} duplicates refused")
    return 0


def cmd_reindex(args) -> int:
    archive = open_archive(args)
    lock = IndexLock(archive.data_dir)
    if not lock.acquire(wait=False):
        raise IndexerBusy("the indexer service holds the index: stop archiver-indexer, "
                          "then run reindex again")
    try:
        new_dir = archive.new_index_dir()
        total = archive.store.log_end("arrival")
        progress = Progress("reindexing", total=total, enabled=not args.json)
        with ExtractionPool.for_model(archive.profile) as pool:
            indexer = Indexer(archive.store, new_dir, pool)
            indexer.catch_up(progress.advance)
            indexed = indexer.database.get_doccount()
            indexer.close()
        archive.swap_index(new_dir)
        progress.finish()
    finally:
        lock.release()
    print(json.dumps({"indexed": indexed}) if args.json else f"reindexed {indexed} messages")
    return 0


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _day(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%d")
