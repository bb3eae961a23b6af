"""Reading `archiver search --json`: one JSON object per hit, then one {"summary": {...}}
(services.cli.archive.search_summary). Output of firmware before the summary line is read
too: it then has no summary."""
from __future__ import annotations

import json


def hits(stdout: str) -> list[dict]:
    """The hits, in the order printed (the summary line left out)."""
    return [found for found in _objects(stdout) if "summary" not in found]


def digests(stdout: str) -> list[str]:
    """The digests of the hits, in the order printed."""
    return [hit["digest"] for hit in hits(stdout)]


def summary(stdout: str) -> dict | None:
    """The summary line's object (total, more, offset, shown, not_indexed, notice)."""
    found = [line["summary"] for line in _objects(stdout) if "summary" in line]
    return found[-1] if found else None


def _objects(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
