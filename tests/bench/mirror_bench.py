"""Mirroring numbers on two appliances in network namespaces (root needed):
local import rate, copy rate until searchable on the peer, and the catch-up time of a
backlog built up while the link was cut."""
from __future__ import annotations

import time
from pathlib import Path

from tests.integration.mirror_nodes import Node, wait_searchable, wait_until
from tests.integration.netns import Lab


def bench_mirror(scratch: Path, fresh: Path, fresh_count: int, backlog: Path,
                 backlog_count: int) -> list[dict]:
    with Lab(["a", "b"], prefix="bench") as lab:
        a, b = Node(lab, "a", scratch), Node(lab, "b", scratch)
        a.join(b), b.join(a)
        a.start(), b.start()
        try:
            wait_until(lambda: a.peer_status(b)["state"] == "connected", 60, "a connected")
            results = [_copy_rate(a, b, fresh, fresh_count), _catch_up(a, b, backlog, backlog_count,
                                                                      fresh_count)]
        finally:
            a.stop(), b.stop()
    return results


def _copy_rate(a: Node, b: Node, maildir: Path, count: int) -> dict:
    started = time.perf_counter()
    a.cli("import", "--no-index", "--json", maildir)
    imported = time.perf_counter() - started
    wait_searchable(b, count, timeout=3600)
    searchable = time.perf_counter() - started
    return {"bench": "mirror_copy", "messages": count,
            "local_import_msgs_per_s": round(count / imported, 1),
            "copy_until_searchable_on_peer_msgs_per_s": round(count / searchable, 1),
            "seconds": round(searchable, 1)}


def _catch_up(a: Node, b: Node, maildir: Path, count: int, already: int) -> dict:
    a.lab.cut("b")
    a.cli("import", "--no-index", "--json", maildir)
    wait_searchable(a, already + count, timeout=3600)  # only the copy is left to do
    queued = a.peer_status(b)["queued"]
    started = time.perf_counter()
    a.lab.restore("b")
    # Both clients retry the cut link with capped backoff (services.mirror.client): copying
    # resumes up to mirror.retry_cap_seconds after the link is back, reported on its own.
    wait_until(lambda: b.stats()["stored"] > already, 3600, "copying to resume", 0.2)
    resumed = time.perf_counter() - started
    wait_until(lambda: a.peer_status(b)["queued"] == 0, 3600, "the backlog to drain", 0.5)
    drained = time.perf_counter() - started
    wait_searchable(b, already + count, timeout=3600)
    searchable = time.perf_counter() - started
    return {"bench": "mirror_catch_up", "backlog": queued, "seconds_to_drain": round(drained, 1),
            "seconds_until_searchable_on_peer": round(searchable, 1),
            "searchable_msgs_per_s": round(queued / searchable, 1),
            "msgs_per_s": round(queued / drained, 1),
            "seconds_until_copying_resumed": round(resumed, 1),
            "searchable_msgs_per_s_once_resumed": round(queued / (searchable - resumed), 1)}
