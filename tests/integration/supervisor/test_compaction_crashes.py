"""The index in shards and the indexer service's own
compaction of the live index, with real processes: `archiver run` (SMTP intake, the
indexer child, extraction workers) SIGKILLed as a whole at each step of a compaction and
between the shards' commits of a batch, with SMTP mail arriving all along; then started
again. Whatever the step, every stored message is in the live index exactly once (its
document id its store number), every acknowledged message is found, nothing was refused
with a 5xx, and what the cut-short compaction left is removed."""
import json
import os
import smtplib
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import xapian

from services.archive import shards
from services.archive.index import id_term
from tests.integration.archive.test_live_compaction import mail as compaction_mail
from tests.integration.processes import ArchiverService
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
HOOKS = Path(__file__).parent / "kill_hooks"
BACKLOG = 160          # ~ 4 MiB of index in two shards
MIN_GROWTH = 1024 * 1024


def mail(n: int) -> bytes:
    return compaction_mail(n, to="bob@example.com", id_prefix="crash", crlf=True)


class Trickle:
    """One SMTP client sending a message at a time; what was acknowledged, what refused,
    and what was cut off by the kill (it may or may not have been stored: a message can be
    durable before its 250 reaches the client, and a real client sends it again)."""

    def __init__(self, service: ArchiverService, first: int):
        self.service, self.next = service, first
        self.acknowledged: list[int] = []
        self.refused: list[tuple[int, int, bytes]] = []  # number, code, text
        self.cut_off: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._send, daemon=True)

    def __enter__(self) -> "Trickle":
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        self.thread.join(60)

    def _send(self) -> None:
        while not self.stop.wait(0.05):
            try:
                with smtplib.SMTP("127.0.0.1", self.service.smtp_port, timeout=30) as client:
                    client.sendmail("alice@example.org", ["bob@example.com"], mail(self.next))
            except smtplib.SMTPResponseException as exc:
                self.refused.append((self.next, exc.smtp_code, exc.smtp_error))
            except (OSError, smtplib.SMTPException):
                self.cut_off.append(self.next)  # the service is down (killed): not acknowledged
            else:
                self.acknowledged.append(self.next)
            self.next += 1


def start(service: ArchiverService, **env: str) -> None:
    saved = service.env
    # the hooks first, then the path the tests run with (a worktree's code, not the
    # installed one)
    search_path = os.pathsep.join(filter(None, [str(HOOKS), saved.get("PYTHONPATH")]))
    service.env = {**saved, "PYTHONPATH": search_path,
                   "KILL_HOOK_MIN_GROWTH_BYTES": str(MIN_GROWTH),
                   "KILL_HOOK_RETIRED_SECONDS": "3", **env}
    try:
        service.start()
    finally:
        service.env = saved


def live_index(service: ArchiverService) -> Path:
    return (service.data / "index").resolve()


def index_dirs(service: ArchiverService) -> list[str]:
    return sorted(path.name for path in service.data.iterdir()
                  if path.name.startswith("index.") and path.is_dir() and not path.is_symlink())


def stored(service: ArchiverService) -> dict[str, int]:
    """digest -> store number of every stored message, read by a process of its own."""
    script = ("import json, sys; from services.archive.archive import Archive; "
              "store = Archive(sys.argv[1], 450).store; "
              "print(json.dumps({d: store.meta(d)['number'] for d in store.digests()}))")
    done = subprocess.run([sys.executable, "-c", script, str(service.data)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def hits(service: ArchiverService, queries: list[str]) -> dict[str, int]:
    """How many messages each query finds in the live index: the search `archiver search`
    runs (services.archive.search.search), all of them in one process of its own, not one
    `archiver` process per query (one per acknowledged message: most of each test's time)."""
    script = ("import json, sys; from pathlib import Path; "
              "from services.archive.search import search; "
              "print(json.dumps({query: len(search(Path(sys.argv[1]), query, 100000).hits) "
              "for query in sys.argv[2:]}))")
    done = subprocess.run([sys.executable, "-c", script, str(live_index(service)), *queries],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def assert_indexed_exactly_once(service: ArchiverService) -> dict[str, int]:
    """Every stored message is in the live index once, under its store number; returns
    stored()'s map, which the caller checks searches against."""
    numbers = stored(service)
    database = xapian.Database(str(live_index(service)))
    try:
        for digest, number in numbers.items():
            ids = [posting.docid for posting in database.postlist(id_term(digest))] \
                if database.term_exists(id_term(digest)) else []
            assert ids == [number], (digest, number, ids)
        assert database.get_doccount() == len(numbers)
    finally:
        database.close()
    return numbers


def crash_then_recover(tmp_path: Path, kill_at: str) -> dict:
    service = ArchiverService(tmp_path, {"web": {"plain_http": True},
                                         "smtp": {"trusted_servers": ["127.0.0.1/32"]}})
    maildir = tmp_path / "mail"
    maildir.mkdir()
    for n in range(BACKLOG):
        (maildir / f"{n}.eml").write_bytes(mail(n))
    assert service.cli("import", "--no-index", maildir).returncode == 0
    killed = tmp_path / "killed"
    start(service, KILL_HOOK_KILL_AT=kill_at, KILL_HOOK_KILLED_FILE=str(killed))
    with Trickle(service, first=100_000) as first:
        wait_until(lambda: service.process.poll() is not None, 300,
                   f"the service to be killed at {kill_at}")
    assert killed.read_text() == kill_at
    left = {"index_dirs": index_dirs(service), "live": live_index(service).name}
    start(service)  # again, as systemd would: no kill point
    try:
        with Trickle(service, first=200_000) as second:
            wait_until(lambda: len(second.acknowledged) >= 10, 120, "mail after the restart")
        acknowledged = first.acknowledged + second.acknowledged
        service.wait_until_indexed(BACKLOG + len(acknowledged), timeout=300)
        assert first.refused == [] and second.refused == []
        numbers = assert_indexed_exactly_once(service)
        markers = [f"marker{number}" for number in [*range(0, BACKLOG, 37), *acknowledged]]
        assert hits(service, markers) == dict.fromkeys(markers, 1)  # each found, once
        found = len(service.search("compaction"))
        cut_off = first.cut_off + second.cut_off
        assert found == len(numbers), "every stored message is found"
        assert BACKLOG + len(acknowledged) <= found <= BACKLOG + len(acknowledged) + len(cut_off)
        wait_until(lambda: index_dirs(service) == [live_index(service).name], 120,
                   "what the cut-short compaction left to be removed")
        status = json.loads(service.cli("status", "--config", service.config_path,
                                        "--json").stdout)
        assert status["services"]["indexer"]["state"] == "running", status
        log = service.log.read_text()
        return {"left": left, "log": log}
    finally:
        assert service.stop() == 0


@pytest.mark.parametrize("kill_at", ["copy", "before-switch", "swapped", "retiring"])
def test_a_kill_at_each_step_of_the_live_compaction_loses_nothing(tmp_path, kill_at):
    crash_then_recover(tmp_path, kill_at)


def test_a_kill_between_the_shards_commits_then_a_compaction(tmp_path):
    """Shards 1.. of the indexer's second commit durable, shard 0 (the log position) not;
    then the service comes back, redoes the batch and compacts the index it left."""
    outcome = crash_then_recover(tmp_path, "shard0-commit-2")
    assert "compacted the live index" in outcome["log"]
