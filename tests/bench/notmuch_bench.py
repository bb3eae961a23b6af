"""notmuch as the yardstick: how fast it indexes a Maildir and answers searches.

`run_notmuch(maildir, queries)` indexes `maildir` into a throwaway database and times
`notmuch new` and each query's `notmuch search`, the way a user would run them (one
process per search, so the latency includes opening the database). The database lives in
a temporary directory, not in the maildir (database.mail_root, notmuch 0.32+): a
.notmuch left in the corpus would make the next run's `notmuch new` an incremental no-op.

    python -m tests.bench.notmuch_bench MAILDIR QUERY...   (prints one JSON line)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .measure import run_measured

# No new.tags, so no inbox/unread noise; no excluded tags, so every message is searched.
CONFIG = """\
[database]
path={database}
mail_root={mail_root}

[new]
tags=
ignore=

[search]
exclude_tags=

[maildir]
synchronize_flags=false

[user]
name=Benchmark
primary_email=bench@example.invalid
"""


def run_notmuch(maildir: Path, queries: list[str], repeat: int = 5,
                limit: int | None = 100) -> dict:
    """Index `maildir` with notmuch and time `repeat` runs of each query (notmuch syntax).

    Each search (none when `queries` is empty) lists the newest `limit` threads as JSON summaries, as a result page
    would (None for every match). notmuch_hits gives each query's matching messages,
    counted once, untimed, to check against what the corpus generator placed.
    """
    with tempfile.TemporaryDirectory(prefix="notmuch-bench-") as scratch:
        environment = notmuch_environment(Path(scratch), Path(maildir).resolve())
        indexing = run_measured(["notmuch", "new", "--quiet"], env=environment)
        if indexing.exit_code != 0:
            raise RuntimeError(f"notmuch new failed with exit code {indexing.exit_code}")
        indexing_seconds = indexing.seconds
        messages = int(notmuch(environment, "count", "--output=messages", "*"))
        latencies = [timed_search(environment, query, limit)
                     for _ in range(repeat) for query in queries]
        hits = {query: int(notmuch(environment, "count", "--output=messages", query))
                for query in queries}
    searched = {"notmuch_search_p50_ms": percentile(latencies, 50),
                "notmuch_search_p99_ms": percentile(latencies, 99)} if latencies else {}
    return {"notmuch_new_msgs_per_s": round(messages / indexing_seconds, 1), **searched,
            "messages": messages, "notmuch_new_seconds": round(indexing_seconds, 3),
            "notmuch_new_cpu_seconds": indexing.cpu_seconds,
            "notmuch_new_peak_rss_mb": indexing.process_peak_mb,
            "notmuch_hits": hits}


def notmuch_environment(scratch: Path, mail_root: Path) -> dict[str, str]:
    database = scratch / "database"
    database.mkdir()
    config = scratch / "config"
    config.write_text(CONFIG.format(database=database, mail_root=mail_root))
    # NOTMUCH_PROFILE and the XDG paths must not lead notmuch to the user's own setup.
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("NOTMUCH_", "XDG_"))}
    return {**environment, "NOTMUCH_CONFIG": str(config), "HOME": str(scratch)}


def notmuch(environment: dict[str, str], *args: str) -> str:
    done = subprocess.run(["notmuch", *args], env=environment, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"notmuch {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def timed_search(environment: dict[str, str], query: str, limit: int | None) -> float:
    """Milliseconds for one `notmuch search`."""
    page = [f"--limit={limit}"] if limit is not None else []
    started = time.perf_counter()
    notmuch(environment, "search", "--format=json", "--sort=newest-first", *page, query)
    return (time.perf_counter() - started) * 1000


def percentile(samples: list[float], rank: float) -> float:
    """Nearest-rank percentile, rounded to 0.1 ms; p99 of few samples is their maximum."""
    ordered = sorted(samples)
    return round(ordered[max(0, math.ceil(rank / 100 * len(ordered)) - 1)], 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.notmuch_bench",
                                     description="Time notmuch new and notmuch search.")
    parser.add_argument("maildir", type=Path)
    parser.add_argument("queries", nargs="+", help="notmuch search terms, one per argument")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    print(json.dumps(run_notmuch(args.maildir, args.queries, repeat=args.repeat)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
