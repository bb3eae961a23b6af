"""Exports of a large search result: how long until the first message, how long reading
every message takes (no zip written), and the memory the list of matches holds.

    python -m tests.bench.export_bench build DATA --count N [--matching M]
    python -m tests.bench.export_bench measure DATA [--query Q] [--json]

`build` stores N small messages (M of them with the word "exportable", dates spread over
six years, in random order) and indexes them with the real indexer. `measure` runs the
export's message source of the tree it is run from (services.web.export.matching_messages,
as an admin) over the archive; run it from an older checkout (PYTHONPATH) to compare.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
import tracemalloc
from pathlib import Path

START = 1546300800  # 2019-01-01
SPREAD = 6 * 365 * 86400
BATCH = 2000


def message(number: int, rng: random.Random, matching: bool) -> bytes:
    when = time.strftime("%a, %d %b %Y %H:%M:%S +0000",
                         time.gmtime(START + rng.randrange(SPREAD)))
    word = "exportable" if matching else "ordinary"
    return (f"From: sender{number % 97}@example.com\r\nTo: rcpt{number % 89}@example.com\r\n"
            f"Subject: message {number} {word}\r\nDate: {when}\r\n"
            f"Message-ID: <bench{number}@example.com>\r\n\r\n"
            f"Body of message {number}: {word} text.\r\n").encode()


def build(data: Path, count: int, matching: int) -> None:
    from services.archive.archive import Archive
    from services.archive.extract import ExtractionPool
    from services.archive.indexer import Indexer
    rng = random.Random(7)
    chosen = set(rng.sample(range(count), matching))
    archive = Archive(data, 450)
    for first in range(0, count, BATCH):
        archive.store.put_many((message(n, rng, n in chosen), None, "import")
                               for n in range(first, min(first + BATCH, count)))
    print(f"stored {count}", file=sys.stderr)
    with ExtractionPool(archive.profile.attachment_text_bytes, workers=1) as pool:
        indexer = Indexer(archive.store, archive.index_dir(), pool)
        indexer.catch_up()
        indexer.close()
    archive.close()


def measure(data: Path, query: str) -> dict:
    """Time to the first message and to the last (no zip written), then, in a second run
    under tracemalloc (which slows it), the memory allocated until the first message."""
    from services.archive.archive import Archive
    archive = Archive(data, 450)
    try:
        started = time.perf_counter()
        messages, kept = _messages(archive, query)
        first_digest = next(messages)[0]
        first = time.perf_counter() - started
        count, digests = 1, {first_digest}
        for digest, _raw, _meta in messages:
            count += 1
            digests.add(digest)
        total = time.perf_counter() - started
        tracemalloc.start()
        next(_messages(archive, query)[0])
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        archive.close()
    return {"query": query, "messages": count, "distinct": len(digests),
            "first_message_s": round(first, 3), "all_messages_s": round(total, 3),
            "peak_traced_mib_until_first": round(peak / 2**20, 2),
            "matches_kept_mib": None if kept is None else round(kept / 2**20, 2)}


def _messages(archive, query: str):
    """The export's messages as an admin, and the bytes its list of matches takes (None
    for an older tree, which pages through search results by offset)."""
    from services.appliance.users import User
    from services.web import export
    admin = User("admin", "admin", (), {})
    if not hasattr(export, "matching"):
        return export.matching_messages(archive, admin, query), None
    snapshot = export.matching(archive, admin, query)
    return snapshot.messages(archive.store), snapshot.nbytes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    built = sub.add_parser("build")
    built.add_argument("data", type=Path)
    built.add_argument("--count", type=int, default=150_000)
    built.add_argument("--matching", type=int, default=100_000)
    measured = sub.add_parser("measure")
    measured.add_argument("data", type=Path)
    measured.add_argument("--query", default="exportable")
    measured.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args.data, args.count, args.matching)
        return 0
    result = measure(args.data, args.query)
    print(json.dumps(result) if args.json else
          "\n".join(f"{key}: {value}" for key, value in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
