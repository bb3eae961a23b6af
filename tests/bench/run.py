"""`make bench`: the archive core's numbers as JSON lines, with notmuch as the yardstick.

On one generated corpus (BENCH_MESSAGES, default 20,000): import+index throughput until
searchable, SMTP intake with 8 clients (BENCH_SMTP_MESSAGES of the corpus, default 3,000),
mirroring between two appliances in network namespaces (copy rate of BENCH_MIRROR_MESSAGES
fresh messages, default 2,000, then catch-up of the whole corpus queued during a link cut), search latency p50/p99 over a mix of queries (in-process, as the web service
sees it, and per CLI process, as notmuch is timed), the importing/indexing process's peak
RSS, stored/raw bytes; then `notmuch new` and `notmuch search` on the same Maildir, and
our figures divided by notmuch's. Numbers are reported, never asserted.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from services.archive.search import search

from . import corpus as corpus_module
from .notmuch_bench import percentile, run_notmuch
from .mirror_bench import bench_mirror
from .smtp_bench import bench_smtp

ARCHIVER = Path(sys.prefix) / "bin" / "archiver"
# (our query, the same question in notmuch's syntax)
QUERIES = [
    ("zanthoxylum", "zanthoxylum"),
    ("quillfeather", "quillfeather"),
    ("subject:brackenvale", "subject:brackenvale"),
    ('"project report"', '"project report"'),
    ("budget AND invoice", "budget and invoice"),
    ("meeting OR agenda", "meeting or agenda"),
    ("contract AND NOT legal", "contract and not legal"),
    ("arch*", "arch*"),
    ("from:alice", "from:alice"),
    ("date:2021-01-01..2021-06-30", "date:2021-01-01..2021-06-30"),
    ("tessellora AND date:2020..2022", "tessellora and date:2020..2022"),
    ("ottervane", "ottervane"),
    ('body:"project report"', 'body:"project report"'),
    ("to:*@example.com", "to:example.com"),
]
SEARCH_REPEAT = 5
SMTP_MESSAGES = int(os.environ.get("BENCH_SMTP_MESSAGES", "3000"))
MIRROR_FRESH_MESSAGES = int(os.environ.get("BENCH_MIRROR_MESSAGES", "2000"))


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def main() -> int:
    count = int(os.environ.get("BENCH_MESSAGES", "20000"))
    with tempfile.TemporaryDirectory(prefix="archiver-bench-") as scratch:
        scratch = Path(scratch)
        maildir = scratch / "corpus"
        started = time.perf_counter()
        corpus = corpus_module.generate(maildir, count)
        emit(bench="corpus", messages=len(corpus), bytes=corpus.total_bytes,
             seconds=round(time.perf_counter() - started, 1))
        ours = bench_archive(maildir, scratch / "data", len(corpus))
        fresh = corpus_module.generate(scratch / "fresh", MIRROR_FRESH_MESSAGES, seed=2)
        (scratch / "mirror").mkdir()
        for result in bench_mirror(scratch / "mirror", scratch / "fresh", len(fresh), maildir,
                                   len(corpus)):
            emit(**result)
        # On the wire SMTP lines end in CRLF (smtplib sends bytes as they are).
        smtp_sample = [path.read_bytes().replace(b"\n", b"\r\n")
                       for path in corpus[:SMTP_MESSAGES]]
        (scratch / "smtp").mkdir()
        emit(bench="smtp_intake", **bench_smtp(scratch / "smtp", smtp_sample))
        theirs = run_notmuch(maildir, [q for _, q in QUERIES], repeat=SEARCH_REPEAT)
        emit(bench="notmuch", **{k: v for k, v in theirs.items() if k != "notmuch_hits"})
        emit(bench="versus_notmuch",
             import_index_ratio=round(ours["msgs_per_s"] / theirs["notmuch_new_msgs_per_s"], 3),
             search_cli_p50_ratio=round(ours["cli_p50_ms"] / theirs["notmuch_search_p50_ms"], 3),
             search_inprocess_p50_ratio=round(ours["p50_ms"] / theirs["notmuch_search_p50_ms"], 3),
             note="ratios are ours/notmuch: above 1 is faster for throughput, slower for latency")
    return 0


def bench_archive(maildir: Path, data: Path, count: int) -> dict:
    started = time.perf_counter()
    process = subprocess.Popen([str(ARCHIVER), "import", "--json", "--data", str(data),
                                str(maildir)], stdout=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    summary = json.loads(process.stdout.read())
    rate = count / seconds
    emit(bench="import_index", messages=count, seconds=round(seconds, 1),
         msgs_per_s=round(rate, 1), imported=summary["imported"], indexed=summary["indexed"],
         exit_status=os.waitstatus_to_exitcode(status))
    emit(bench="indexer_peak_rss", mb=round(usage.ru_maxrss / 1024, 1),
         note="peak RSS of the import process, which indexes inline (workers not included)")
    stats = json.loads(subprocess.run([str(ARCHIVER), "stats", "--json", "--data", str(data)],
                                      capture_output=True, check=True).stdout)
    emit(bench="storage", raw_bytes=stats["raw_bytes"], stored_bytes=stats["stored_bytes"],
         stored_over_raw=round(stats["stored_bytes"] / stats["raw_bytes"], 3))
    index_bytes = sum(f.stat().st_size for f in (data / "index").resolve().rglob("*")
                      if f.is_file())
    emit(bench="index", bytes=index_bytes, bytes_per_message=round(index_bytes / count),
         over_raw=round(index_bytes / stats["raw_bytes"], 3))
    in_process, cli = search_latencies(data)
    emit(bench="search", queries=len(QUERIES), repeat=SEARCH_REPEAT,
         p50_ms=percentile(in_process, 50), p99_ms=percentile(in_process, 99),
         cli_p50_ms=percentile(cli, 50), cli_p99_ms=percentile(cli, 99))
    return {"msgs_per_s": rate, "p50_ms": percentile(in_process, 50),
            "cli_p50_ms": percentile(cli, 50)}


def search_latencies(data: Path) -> tuple[list[float], list[float]]:
    index_dir = data / "index"
    in_process, cli = [], []
    for _ in range(SEARCH_REPEAT):
        for query, _ in QUERIES:
            started = time.perf_counter()
            search(index_dir, query, limit=100)
            in_process.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            subprocess.run([str(ARCHIVER), "search", query, "--json", "--limit", "100",
                            "--data", str(data)], capture_output=True, check=True)
            cli.append((time.perf_counter() - started) * 1000)
    return in_process, cli


if __name__ == "__main__":
    sys.exit(main())
