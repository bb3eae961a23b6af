"""Hold records numbers (root needed for the mirror part): the bytes of a hello and the time
two appliances in network namespaces take to agree on a hold whose records one of them
has (generated into its store), per count; and the peak memory (tracemalloc) of placing a
hold on an indexed archive, per count of matches. JSON lines on stdout.

    python -m tests.bench.hold_records_bench --sync 100000 1000000 --place 5000 20000
"""
from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
import tracemalloc
from pathlib import Path

from services.archive.archive import Archive
from services.archive.extract import ExtractionPool
from services.archive.indexer import Indexer
from services.policy import hold_records, holds, saved_searches
from services.policy.audit import Actor
from services.policy.replicated import Replicated
from tests.integration.mirror_nodes import Node, wait_until
from tests.integration.netns import Lab

ADMIN = Actor("bench", "admin")


def bench_sync(scratch: Path, count: int) -> dict:
    with Lab(["a", "b"], prefix="hrb") as lab:
        a, b = Node(lab, "a", scratch), Node(lab, "b", scratch)
        a.join(b), b.join(a)
        a.start(), b.start()
        try:
            a.cli("search", "--save", "case", "from:lawyer")
            hold_id = a.cli("hold", "add", "--saved", "case").stdout.strip()
            wait_until(lambda: hold_id in b.cli("hold", "list").stdout, 60, "the hold on b")
            a.stop(), b.stop()
            archive = Archive(a.data, 450)
            generated = time.perf_counter()
            for start in range(0, count, hold_records.CHUNK):
                hold_records.add(archive.store, hold_id, [
                    hashlib.sha256(f"{n}".encode()).hexdigest()
                    for n in range(start, min(count, start + hold_records.CHUNK))])
            generated = time.perf_counter() - generated
            archive.close()
            started = time.perf_counter()
            a.start(), b.start()
            wait_until(lambda: f"({count} messages recorded)" in b.cli("hold", "list").stdout,
                       3600, "the records on b", interval=0.5)
            seconds = time.perf_counter() - started
            status = a.peer_status(b), b.peer_status(a)
        finally:
            a.stop(), b.stop()
    return {"bench": "hold_records_sync", "records": count,
            "seconds_from_start_until_on_peer": round(seconds, 1),
            "records_written_locally_per_s": round(count / generated),
            "handshake_bytes": [s["handshake_bytes"] for s in status],
            "taken_given": [(s["hold_records_taken"], s["hold_records_given"]) for s in status]}


def bench_place(scratch: Path, count: int) -> dict:
    archive = Archive(scratch / f"place{count}", 450)
    try:
        archive.store.put_many([(f"From: lawyer@x.com\nSubject: matter {n}\nMessage-ID: "
                                 f"<p{n}@x>\n\nbody {n}\n".encode(), None, "import")
                                for n in range(count)])
        with ExtractionPool(archive.profile.attachment_text_bytes) as pool, \
                Indexer(archive.store, archive.index_dir(), pool) as indexer:
            indexer.catch_up()
        replicated = Replicated(archive.store)
        saved_searches.save(replicated, "case", "from:lawyer", ADMIN)
        tracemalloc.start()
        started = time.perf_counter()
        hold_id = holds.add(replicated, archive.index_dir(), "case", None, ADMIN)
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        recorded = holds.all_holds(replicated)[hold_id]["held_at_placement"]
    finally:
        archive.close()
    return {"bench": "hold_place", "matches": count, "recorded": recorded,
            "python_peak_bytes": peak, "seconds": round(seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sync", type=int, nargs="*", default=[])
    parser.add_argument("--place", type=int, nargs="*", default=[])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hold-bench-") as scratch:
        for count in args.sync:
            print(json.dumps(bench_sync(Path(scratch) / f"sync{count}", count)), flush=True)
        for count in args.place:
            print(json.dumps(bench_place(Path(scratch), count)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
