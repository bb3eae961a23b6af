"""What snippets cost (services.web.results): the results page re-reads each hit's body
from the store rather than keeping body text in the index. Reports the time to make the
rows of a page of 50 and of 250 hits (store read, parse, body text, marking), per hit,
and what storing the text instead would have added to the index: the UTF-8 bytes of
every body's text, against the index's size. Numbers are reported, never asserted."""
from __future__ import annotations

import time
from pathlib import Path

from services.appliance.users import User
from services.archive.archive import Archive
from services.archive.extract import body_text
from services.archive.highlight import Highlighter
from services.archive.search import search
from services.web.results import SNIPPET_PARSE_BYTES, rows

QUERIES = ("budget", "meeting OR agenda", '"project report"', "arch*", "from:alice")
AUDITOR = User("bench", "auditor", (), {})
PAGES = (50, 250)


def bench_snippets(data: Path) -> dict:
    """{"page_50_ms", "page_250_ms", "per_hit_ms", "body_text_bytes", "index_bytes"}"""
    archive = Archive(data)
    try:
        timings = {size: [] for size in PAGES}
        for query in QUERIES:
            highlighter = Highlighter.of_query(query)
            for size in PAGES:
                hits = search(archive.index_dir(), query, limit=size).hits
                started = time.perf_counter()
                rows(archive, AUDITOR, hits, highlighter)
                timings[size].append(((time.perf_counter() - started) * 1000, len(hits)))
        text_bytes = sum(len(body_text(archive.store.get(digest),
                                       SNIPPET_PARSE_BYTES).encode("utf-8"))
                         for digest in archive.store.digests())
        index_bytes = sum(f.stat().st_size for f in archive.index_dir().rglob("*")
                          if f.is_file())
    finally:
        archive.close()
    result = {f"page_{size}_ms": round(max(ms for ms, _ in timings[size]), 1)
              for size in PAGES}
    all_ms = sum(ms for size in PAGES for ms, _ in timings[size])
    all_hits = sum(hits for size in PAGES for _, hits in timings[size])
    result.update(per_hit_ms=round(all_ms / max(all_hits, 1), 2),
                  body_text_bytes=text_bytes, index_bytes=index_bytes,
                  text_over_index=round(text_bytes / max(index_bytes, 1), 3))
    return result
