"""`archiver compact`: the live index written again compacted (after a large import, whose
batch commits leave its blocks part full), the same searches answered the same, the old
index retired (kept for the searches that found it just before, removed later); refused
while the indexer holds the index; on a disk without room for the copy, exit 75 and the
index as it was. The disk is a real, small ext4 (tests/integration/small_disk.py)."""
import json
import re
from email.message import EmailMessage
from pathlib import Path

import pytest

from services.archive import retired_index
from services.archive.indexer import IndexLock
from services.archive.search import search
from tests import search_output
from tests.integration.small_disk import SmallDisk

pytestmark = pytest.mark.integration
COUNT = 300
QUERIES = ["marker7", "sender3", "quarterly AND word2100", "date:2024-05-03", "quarterly"]


def write_maildir(where: Path, count: int) -> Path:
    for sub in ("cur", "new", "tmp"):
        (where / sub).mkdir(parents=True)
    for n in range(count):
        message = EmailMessage()
        message["From"], message["To"] = f"sender{n % 9}@example.org", "archive@example.com"
        message["Subject"], message["Message-ID"] = f"quarterly {n}", f"<c{n}@example.org>"
        message["Date"] = f"Fri, {n % 28 + 1:02d} May 2024 10:00:00 +0000"
        message.set_content(f"marker{n} " + " ".join(f"word{n * 7 + k}" for k in range(60)))
        (where / "cur" / f"{n:05d}.eml:2,S").write_bytes(message.as_bytes())
    return where


def answers(archiver, data: Path) -> dict[str, list[str]]:
    return {query: search_output.hits(archiver("search", query, "--data", data, "--json",
                                               "--limit", "1000", check=0).stdout)
            for query in QUERIES}


def index_dirs(data: Path) -> list[str]:
    return sorted(p.name for p in data.glob("index.*") if not p.is_symlink())


def test_compact_shrinks_the_index_and_every_search_answers_the_same(archiver, tmp_path):
    data = tmp_path / "data"
    archiver("import", write_maildir(tmp_path / "mail", COUNT), "--data", data, check=0)
    before, old = answers(archiver, data), (data / "index").resolve()
    assert len(before["quarterly"]) == COUNT

    report = json.loads(archiver("compact", "--data", data, "--json", check=0).stdout)
    assert report["index_bytes"] < 0.8 * report["index_bytes_before"]
    assert answers(archiver, data) == before
    first = (data / "index").resolve()
    assert first != old and index_dirs(data) == sorted([first.name, old.name])
    # retired, not removed: a search that resolved the link before the switch answers
    assert retired_index.retired_at(old) is not None
    assert search(old, "quarterly", limit=1000).total == COUNT

    retired_index.mark(old, retired_index.retired_at(old) - retired_index.RETIRED_SECONDS)
    again = archiver("compact", "--data", data, check=0).stdout
    assert re.fullmatch(r"compacted the index: [\d.]+ MB, [\d.]+ MB before\n", again), again
    # the next compact removes the one retired long enough, keeps the one just retired
    assert index_dirs(data) == sorted([(data / "index").resolve().name, first.name])


def test_compact_is_refused_while_the_indexer_holds_the_index(archiver, tmp_path):
    data = tmp_path / "data"
    archiver("import", write_maildir(tmp_path / "mail", 5), "--data", data, check=0)
    lock = IndexLock(data)
    assert lock.acquire(wait=False)
    try:
        done = archiver("compact", "--data", data)
    finally:
        lock.release()
    assert done.returncode != 0 and "stop archiver-indexer, then run compact again" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_compact_without_room_for_the_copy_exits_75_and_leaves_the_index_as_it_was(
        archiver, tmp_path):
    with SmallDisk(tmp_path / "disk", 40) as disk:
        data = disk.mount_point / "data"
        archiver("import", write_maildir(tmp_path / "mail", COUNT), "--data", data, check=0)
        before, live = answers(archiver, data), (data / "index").resolve()
        disk.fill(leave_bytes=0)
        done = archiver("compact", "--data", data, "--json", check=75)
        (line,) = [line for line in done.stderr.splitlines() if line.startswith("archiver: ")]
        assert re.fullmatch(r"archiver: compact stopped: data disk (low|full): .*; it needs "
                            r"room for a copy of the index \(at most [\d.]+ MB\); the index "
                            r"is as it was", line), line
        assert "Traceback" not in done.stderr
        assert json.loads(done.stdout) == {"error": line.removeprefix("archiver: "),
                                           "exit_code": 75}
        assert (data / "index").resolve() == live and index_dirs(data) == [live.name]
        assert answers(archiver, data) == before
        disk.release()
        archiver("compact", "--data", data, check=0)
        assert answers(archiver, data) == before
