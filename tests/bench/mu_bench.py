"""mu (Debian's maildir-utils) as a second yardstick: how fast `mu index` indexes a Maildir.

mu is a C++ Xapian indexer like notmuch; neither reads attachment text (mu indexes
attachment names and types). Its store lives in a throwaway --muhome, never in the corpus.

    python -m tests.bench.mu_bench MAILDIR   (prints one JSON line)
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from .measure import run_measured


def run_mu(maildir: Path) -> dict:
    """Index `maildir` with a fresh mu store; its rate, time, peak RSS and message count."""
    with tempfile.TemporaryDirectory(prefix="mu-bench-") as home:
        subprocess.run(["mu", "init", f"--muhome={home}", f"--maildir={Path(maildir).resolve()}",
                        "--quiet"], check=True, capture_output=True)
        measured = run_measured(["mu", "index", f"--muhome={home}", "--quiet"])
        if measured.exit_code != 0:
            raise RuntimeError(f"mu index failed with exit code {measured.exit_code}")
        messages = messages_in_store(home)
    return {"mu_index_msgs_per_s": round(messages / measured.seconds, 1),
            "mu_index_seconds": round(measured.seconds, 3), "messages": messages,
            "cpu_seconds": measured.cpu_seconds, "peak_rss_mb": measured.process_peak_mb}


def messages_in_store(home: str) -> int:
    """The "messages in store" row of `mu info store`."""
    shown = subprocess.run(["mu", "info", f"--muhome={home}", "store"], check=True,
                           capture_output=True, text=True).stdout
    found = re.search(r"messages in store\s*\|\s*(\d+)", shown)
    if not found:
        raise RuntimeError(f"mu info store shows no message count: {shown[:300]!r}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.mu_bench",
                                     description="Time mu index on a Maildir.")
    parser.add_argument("maildir", type=Path)
    args = parser.parse_args(argv)
    print(json.dumps(run_mu(args.maildir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
