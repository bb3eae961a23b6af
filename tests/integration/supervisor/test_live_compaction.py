"""`archiver run` compacts the live index by itself (services.archive.live_compaction): once
a backlog is indexed, never while it is pending, with SMTP mail arriving all along, all of
it searchable after; status --json, the text status and /metrics say when and how much.
On a disk without room for the copy (a real, small ext4) it leaves the index as it was,
says why once, keeps running, and compacts once there is room and the index has grown."""
import json
import smtplib
import threading
from pathlib import Path

import pytest

from services.archive.compaction import size_of
from tests.integration.archive.test_live_compaction import mail as compaction_mail
from tests.integration.processes import ArchiverService, models_file, wait_for_port
from tests.integration.small_disk import SmallDisk
from tests.integration.web.fixtures import Client
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
# 200 words each of no other message: some 17 MB of index, 6 compacted, in the 150's and
# 350's commits (indexing.memory_mb 48; a larger model's fewer commits grow less)
BACKLOG = 500
MiB = 1024 * 1024


def mail(n: int) -> bytes:
    return compaction_mail(n, to="bob@example.com", id_prefix="run", crlf=True)


def maildir(where: Path, numbers) -> Path:
    where.mkdir(parents=True)
    for n in numbers:
        (where / f"{n}.eml").write_bytes(mail(n))
    return where


def status(service: ArchiverService, json_output: bool = True):
    done = service.cli("status", "--config", service.config_path,
                       *(["--json"] if json_output else []))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if json_output else done.stdout


def compaction_of(service: ArchiverService) -> dict:
    assert service.process.poll() is None, service.log.read_text()[-2000:]
    return status(service)["queues"]["index"]["compaction"]


def index_dir(service: ArchiverService) -> Path:
    return (service.data / "index").resolve()


class Trickle:
    """One SMTP client sending a message at a time, as a journaling server does."""

    def __init__(self, service: ArchiverService, first: int):
        self.service, self.next = service, first
        self.acknowledged: dict[int, str] = {}  # number -> marker word
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._send)

    def __enter__(self) -> "Trickle":
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        self.thread.join()

    def _send(self) -> None:
        while not self.stop.wait(0.1):
            with smtplib.SMTP("127.0.0.1", self.service.smtp_port, timeout=60) as client:
                client.sendmail("alice@example.org", ["bob@example.com"], mail(self.next))
            self.acknowledged[self.next] = f"marker{self.next}"
            self.next += 1


def test_the_service_compacts_the_live_index_once_its_backlog_is_indexed(tmp_path):
    service = ArchiverService(tmp_path, {"web": {"plain_http": True},
                                         "smtp": {"trusted_servers": ["127.0.0.1/32"]}},
                              models=models_file(tmp_path, indexing={"memory_mb": 48}))
    assert service.cli("import", "--no-index", maildir(tmp_path / "mail", range(BACKLOG))
                       ).returncode == 0  # a backlog for the service: as a mirror catch-up
    service.start()
    try:
        with Trickle(service, first=100_000) as trickle:
            compacted_in_time(service)
            compacted_when = len(trickle.acknowledged)
            wait_until(lambda: len(trickle.acknowledged) > compacted_when + 10, 60,
                       "mail to arrive after the compaction")
        report = compaction_of(service)
        last = report["last"]
        assert report["compactions"] == 1 and report["skipped"] is None
        assert last["messages"] >= BACKLOG  # not while the backlog was pending
        assert last["bytes_after"] < 0.6 * last["bytes_before"]
        assert report["compacts_at_bytes"] > report["index_bytes"]

        service.wait_until_indexed(BACKLOG + len(trickle.acknowledged))
        sent = list(trickle.acknowledged.values())
        for query in ("marker7", "marker499", *sent[:3], *sent[-3:]):
            assert len(service.search(query)) == 1, query
        assert len(service.search("compaction")) == BACKLOG + len(trickle.acknowledged)
        text = status(service, json_output=False)
        assert f"; compacted {last['at']}, " in text
        wait_for_port("127.0.0.1", service.web_port)
        metrics = Client(f"http://127.0.0.1:{service.web_port}").get("/metrics").body.decode()
        assert "archiver_index_compactions_total 1\n" in metrics
        assert f"archiver_index_compacted_bytes {last['bytes_after']}\n" in metrics
    finally:
        assert service.stop() == 0


def compacted_in_time(service: ArchiverService) -> None:
    """Waits for the service's first compaction; on a timeout says what it was doing: its
    compaction report and the end of its log (ci75 waited 300 s once: cause not found)."""
    try:
        wait_until(lambda: compaction_of(service)["compactions"] >= 1, 300,
                   "the service to compact the index")
    except AssertionError as timed_out:
        log = service.log.read_text(errors="replace")[-6000:]
        raise AssertionError(f"{timed_out}; compaction: {compaction_of(service)}; "
                             f"service.log ends:\n{log}") from None


@pytest.mark.slow
def test_without_room_for_the_copy_the_index_stays_as_it_was_until_there_is(tmp_path):
    # The 350's indexing memory (48 MiB): its smaller commits grow 400 messages into an
    # index over 10 MiB, a copy of which does not fit beside the 10 MiB left free below.
    models = models_file(tmp_path, intake={"min_free_disk_mb": 4}, indexing={"memory_mb": 48})
    with SmallDisk(tmp_path / "disk", 64) as disk:
        data = disk.mount_point / "data"
        service = ArchiverService(tmp_path, {"data_dir": str(data),
                                             "web": {"plain_http": True}}, models=models)
        service.data = data
        assert service.cli("import", maildir(tmp_path / "mail", range(400))).returncode == 0
        live, size = index_dir(service), size_of(index_dir(service))  # shards included
        assert size > 10 * MiB
        expected = {query: service.search(query) for query in ("marker7", "marker123", "marker399")}
        disk.fill(leave_bytes=10 * MiB)  # intake has room; a copy of the index has not
        service.start()
        try:
            skipped = wait_until(lambda: compaction_of(service)["skipped"], 120,
                                 "the compaction to be skipped")
            assert skipped["reason"].startswith("no room for a copy of the index: data disk ")
            assert skipped["index_bytes"] >= size
            assert index_dir(service) == live and compaction_of(service)["compactions"] == 0
            assert not (data / "index.compacting").exists()
            assert {query: service.search(query) for query in expected} == expected
            assert status(service)["services"]["indexer"]["state"] == "running"
            assert "last skipped " in status(service, json_output=False)

            disk.release()  # room again; once the index has grown, it is compacted
            assert service.cli("import", "--no-index",
                               maildir(tmp_path / "more", range(400, 520))).returncode == 0
            wait_until(lambda: compaction_of(service)["compactions"] == 1, 120,
                       "the compaction once there is room and the index has grown")
            service.wait_until_indexed(520)
            assert index_dir(service) != live
            assert {query: service.search(query) for query in expected} == expected
            assert len(service.search("compaction")) == 520
            log = service.log.read_text()
            assert log.count("the index is not compacted: no room for a copy") == 1
            assert "Traceback" not in log
        finally:
            assert service.stop() == 0
