"""How import time and memory grow with the corpus (`make bench --only scale`).

The corpus of conversations only (the plain import's, seed 1) is generated once at the
largest size; for each size N (smallest first), its first N messages are hard-linked into a
Maildir of their own, imported by `archiver import` into a fresh store (until searchable
and durable), then indexed by `mu index`. Each size prints one line: milliseconds a message,
the whole tree's Pss and RSS peaks (tests.bench.measure), mu's milliseconds a message, and
the ratios. The issue's bound (256 MB on the model 450, whatever the corpus size) is read
from tree_pss_peak_mb; ms_per_message_over_smallest says how the cost of a message grows.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Iterator

from . import corpus as corpus_module
from .measure import run_measured
from .mu_bench import run_mu


def linked_prefix(corpus: corpus_module.Corpus, count: int, maildir: Path) -> Path:
    """A Maildir at `maildir` of hard links to the first `count` messages of `corpus` (each
    in the subfolder, cur or new, it has there). Returns `maildir`."""
    for part in ("cur", "new", "tmp"):
        (maildir / part).mkdir(parents=True, exist_ok=True)
    for path in corpus[:count]:
        os.link(path, maildir / path.parent.name / path.name)
    return maildir


def bench_scale(scratch: Path, sizes: list[int], archiver: Path) -> Iterator[dict]:
    """One result per size in `sizes` (messages, at least 1; smallest first), as described
    in the module docstring; `archiver` is the CLI to run. Each size's Maildir and store are
    removed before the next, so the scratch folder holds the corpus and one size at a time.
    Raises RuntimeError when an import does not exit 0 or does not index every message."""
    sizes = sorted(set(sizes))
    corpus = corpus_module.generate(scratch / "corpus", sizes[-1], attachments=False)
    smallest_ms = None
    for size in sizes:
        maildir = linked_prefix(corpus, size, scratch / f"first-{size}")
        data = scratch / f"data-{size}"
        measured = run_measured([str(archiver), "import", "--json", "--data", str(data),
                                 str(maildir)])
        summary = json.loads(measured.stdout or b"{}")
        if measured.exit_code != 0 or summary.get("indexed") != size:
            raise RuntimeError(f"import of {size} messages: exit code {measured.exit_code}, "
                               f"summary {summary}")
        mu = run_mu(maildir)
        shutil.rmtree(data)
        shutil.rmtree(maildir)
        ms = measured.seconds * 1000 / size
        smallest_ms = smallest_ms or ms
        mu_ms = mu["mu_index_seconds"] * 1000 / mu["messages"]
        yield {"bench": "scale", "messages": size, "seconds": round(measured.seconds, 1),
               "ms_per_message": round(ms, 3),
               "ms_per_message_over_smallest": round(ms / smallest_ms, 3),
               "tree_pss_peak_mb": measured.tree_pss_peak_mb,
               "tree_rss_peak_mb": measured.tree_rss_peak_mb,
               "process_peak_mb": measured.process_peak_mb,
               "tree_cpu_seconds": measured.tree_cpu_seconds,
               "mu_ms_per_message": round(mu_ms, 3), "mu_peak_rss_mb": mu["peak_rss_mb"],
               "import_over_mu_index": round(mu_ms / ms, 3)}
