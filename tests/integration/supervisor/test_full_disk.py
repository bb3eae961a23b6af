"""`archiver run` on a disk that fills up: every service stays up (the indexer in its child),
intake answers 4xx and leaves journal mail on the server, the indexer pauses; status,
/metrics and the log say which disk is full with its numbers; once there is room again
everything goes on by itself and all that was acknowledged is stored, indexed and sound.

The disks are real and small (tests/integration/small_disk.py): a 64 MB ext4 for the data
folder, a tmpfs for an index on a disk of its own."""
import hashlib
import json
import random
import re
import smtplib
import threading
import time
from email.message import EmailMessage
from pathlib import Path

import psutil
import pytest
import xapian

from services.archive import compaction, retired_index
from services.archive.archive import Archive
from services.archive.index import SCHEMA_VERSION
from services.archive.space import FULL_BELOW_BYTES
from tests.integration.processes import ArchiverService, models_file, wait_for_port
from tests.integration.small_disk import SmallDisk
from tests.integration.web.fixtures import Client
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PASSWORD = "correct horse battery"
MiB = 1024 * 1024


def message(n: int, attachment_bytes: int = 30_000, words: int = 10) -> bytes:
    rng = random.Random(n)
    msg = EmailMessage()
    msg["From"], msg["To"] = f"sender{n % 5}@example.org", "bob@example.com"
    msg["Subject"], msg["Message-ID"] = f"full disk {n}", f"<full{n}@example.org>"
    msg.set_content(f"marker{n} " + " ".join(f"w{rng.randrange(10**9)}" for _ in range(words)))
    if attachment_bytes:
        msg.add_attachment(rng.randbytes(attachment_bytes), maintype="application",
                           subtype="octet-stream", filename=f"blob{n}.bin")
    return msg.as_bytes().replace(b"\n", b"\r\n")


def digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def no_live_compaction_for_an_hour(data: Path) -> None:
    """Record a compaction of the live index as of now, so the indexer service compacts
    nothing for MIN_INTERVAL_SECONDS (services.archive.live_compaction). A test that counts
    the room on a 64 MB disk needs that: a compaction's copy and the old index it keeps
    for a minute (5 + 13 MB, once) left the disk low after the ballast went, so it never
    said "ok" again within the test."""
    archive = Archive(data, 450)
    try:
        compaction.Record(compacted_at=time.time()).save(archive.store)
    finally:
        archive.close()


class Senders:
    """SMTP clients sending without pause; every answer is kept: acknowledged digests and
    refusals (code, text)."""

    def __init__(self, service: ArchiverService, first: int, threads: int = 4, **shape):
        self.service, self.shape = service, shape
        self.acknowledged: list[str] = []
        self.refused: list[tuple[int, bytes]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._send, args=(first + 100_000 * k,))
                        for k in range(threads)]

    def __enter__(self) -> "Senders":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def _send(self, n: int) -> None:
        while not self.stop.is_set():
            raw = message(n, **self.shape)
            n += 1
            try:
                with smtplib.SMTP("127.0.0.1", self.service.smtp_port, timeout=60) as client:
                    client.sendmail("alice@example.org", ["bob@example.com"], raw)
                self.acknowledged.append(digest(raw))
            except smtplib.SMTPResponseException as refusal:
                self.refused.append((refusal.smtp_code, refusal.smtp_error))
                self.stop.wait(0.05)
            except smtplib.SMTPRecipientsRefused as refusal:  # the refusal came at RCPT TO
                self.refused += refusal.recipients.values()
                self.stop.wait(0.05)


def status(service: ArchiverService) -> dict:
    done = service.cli("status", "--json", "--config", service.config_path)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def metrics(service: ArchiverService) -> str:
    return Client(f"http://127.0.0.1:{service.web_port}").get("/metrics").body.decode()


def log_of(service: ArchiverService) -> str:
    return service.log.read_text(errors="replace")


def still_running(service: ArchiverService, condition):
    """`condition`, for wait_until, failing at once if `archiver run` has ended meanwhile."""
    def check():
        assert service.process.poll() is None, "archiver run ended: " + \
            " | ".join(log_of(service).splitlines()[-3:])
        return condition()
    return check


def indexer_reason(service: ArchiverService) -> str:
    return status(service)["services"]["indexer"]["reason"]


def the_run_runs_every_service(service: ArchiverService, pid: int) -> dict:
    """Every service running in the run's process `pid`, the indexer in a child of it."""
    assert service.process.poll() is None and service.process.pid == pid
    report = status(service)
    children = [child.pid for child in psutil.Process(pid).children()]
    for name, state in report["services"].items():
        assert state["state"] == "running", (name, state)
        assert state["pid"] in children if name == "indexer" else state["pid"] == pid, name
    return report


def everything_acknowledged_is_there(service: ArchiverService, acknowledged: set[str]) -> None:
    stats = service.stats()
    assert stats["indexed"] == stats["stored"] and stats["pending"] == 0
    assert acknowledged <= set(service.search(""))  # stored and indexed
    verified = service.cli("verify", "--json")
    assert verified.returncode == 0 and json.loads(verified.stdout)["corrupt"] == []


def test_a_full_data_disk_pauses_intake_and_indexing_and_both_resume_by_themselves(
        tmp_path, dovecot):
    models = models_file(tmp_path, intake={"min_free_disk_mb": 8})
    with SmallDisk(tmp_path / "disk", 64) as disk:
        data = disk.mount_point / "data"
        config = {"data_dir": str(data), "smtp": {"trusted_servers": ["127.0.0.1/32"]},
                  "web": {"plain_http": True},
                  "journal_accounts": [dovecot.account_settings("imap", "tls", poll_seconds=1)]}
        service = ArchiverService(tmp_path, config, models=models)
        service.data = data  # where its CLI helpers look
        password = tmp_path / "password"
        password.write_text(PASSWORD)
        assert service.cli("user", "add", "operator", "--role", "admin", "--password-file",
                           password).returncode == 0
        no_live_compaction_for_an_hour(data)
        service.start()
        try:
            pid = service.process.pid
            wait_for_port("127.0.0.1", service.web_port)
            browser = Client(f"http://127.0.0.1:{service.web_port}")
            assert browser.log_in("operator", PASSWORD).status == 200
            with Senders(service, first=0, attachment_bytes=10_000) as senders:
                wait_until(lambda: len(senders.acknowledged) >= 30, 60, "mail acknowledged")
                # Low first: status, metrics and the log say so, and intake waits, before
                # anything fails.
                disk.fill(leave_bytes=6 * MiB)  # what intake takes before it waits still fits
                wait_until(still_running(service, lambda: "data disk low: " in log_of(service)),
                           30, "the log to say the disk is low")
                report = status(service)
                assert report["space"]["data_disk"]["state"] == "low"
                assert report["space"]["data_disk"]["words"].startswith("data disk low: ")
                assert 'archiver_space_low{space="data_disk"} 1' in metrics(service)
                assert 'archiver_space_full{space="data_disk"} 0' in metrics(service)
                wait_until(lambda: any(b"the data disk is low on space (" in text
                                       for _, text in senders.refused), 30, "intake to wait")
                disk.release()
                acknowledged_when_low = len(senders.acknowledged)
                wait_until(lambda: len(senders.acknowledged) > acknowledged_when_low + 5, 60,
                           "intake to go on once the disk is no longer low")
                # Then a backlog the indexer is still writing (an import alongside SMTP
                # intake, of mail whose index takes room) when the disk is full.
                backlog = tmp_path / "backlog"
                backlog.mkdir()
                for n in range(300):
                    (backlog / f"{n}.eml").write_bytes(
                        message(500_000 + n, attachment_bytes=0, words=200))
                assert service.cli("import", "--no-index", backlog).returncode == 0
                disk.fill()
                refused_before = len(senders.refused)
                journal_mail = [message(900_000 + n) for n in range(3)]
                for raw in journal_mail:
                    dovecot.deliver(raw)

                wait_until(still_running(service, lambda: "indexer paused: data disk " in
                                         log_of(service)), 120, "the indexer to pause")
                wait_until(lambda: len(senders.refused) >= refused_before + 5, 60,
                           "intake to refuse")
                assert all(code in (451, 452) and text.startswith(b"4.3.1 ")
                           for code, text in senders.refused), senders.refused[-5:]
                report = the_run_runs_every_service(service, pid)
                space = report["space"]["data_disk"]
                assert space["state"] == "full" and space["free_bytes"] < MiB
                assert space["words"].startswith("data disk full: ")
                wait_until(lambda: re.match(r"paused: data disk (low|full): ",
                                            indexer_reason(service)),
                           30, "status to say why the indexer waits")  # at its next heartbeat
                text = service.cli("status", "--config", service.config_path).stdout
                assert "space: data disk full: " in text
                assert 'archiver_space_full{space="data_disk"} 1' in metrics(service)
                page = browser.get("/status").body.decode()
                assert "Data disk full</strong>" in page
                assert "WARNING" in log_of(service) and "data disk full: " in log_of(service)
                assert dovecot.count() == 3  # left on the server

                acknowledged_when_full = len(senders.acknowledged)
                disk.release()
                wait_until(lambda: "data disk ok: " in log_of(service), 30, "the log to say ok")
                wait_until(lambda: len(senders.acknowledged) > acknowledged_when_full + 20,
                           120, "intake to resume by itself")
                wait_until(lambda: dovecot.count() == 0, 60, "the journal mail to be taken")
                wait_until(lambda: "indexer resumed" in log_of(service), 120,
                           "the indexer to resume")
            acknowledged = set(senders.acknowledged)
            acknowledged |= {digest(raw) for raw in journal_mail}
            acknowledged |= {digest(path.read_bytes()) for path in backlog.iterdir()}
            service.wait_until_indexed(len(acknowledged), timeout=300)
            everything_acknowledged_is_there(service, acknowledged)
            wait_until(lambda: indexer_reason(service) == "", 30, "the pause to end in status")
            report = the_run_runs_every_service(service, pid)
            assert report["space"]["data_disk"]["state"] != "full"  # intake took some again
            assert 'archiver_space_full{space="data_disk"} 0' in metrics(service)
        finally:
            assert service.stop() == 0


def test_an_index_on_a_disk_of_its_own_that_fills_pauses_indexing_not_intake(tmp_path):
    # The index's disk is low below 2 MiB; the indexer pauses below that, where its next
    # commit no longer fits (services.archive.indexer.NoRoomToCommit), before it is full.
    models = models_file(tmp_path, intake={"min_free_disk_mb": 2})
    service = ArchiverService(tmp_path, {"smtp": {"trusted_servers": ["127.0.0.1/32"]},
                                         "web": {"plain_http": True}}, models=models)
    (tmp_path / "no-mail").mkdir()
    # makes the archive and its (empty) live index folder
    assert service.cli("import", tmp_path / "no-mail").returncode == 0
    index_dir = (service.data / "index").resolve()
    with SmallDisk(index_dir, 3, kind="tmpfs") as index_disk:
        service.start()
        try:
            pid = service.process.pid
            # Bodies of many distinct words: more index than 3 MB hold.
            with Senders(service, first=0, attachment_bytes=0, words=300) as senders:
                wait_until(still_running(service, lambda: "indexer paused: index disk low" in
                                         log_of(service)), 180, "the indexer to pause")
                acknowledged_when_paused = len(senders.acknowledged)
                wait_until(lambda: len(senders.acknowledged) > acknowledged_when_paused + 20,
                           60, "intake to go on while indexing waits")
            assert senders.refused == []
            wait_until(lambda: indexer_reason(service).startswith("paused: index disk low: "),
                       30, "status to say why the indexer waits")  # at its next heartbeat
            report = the_run_runs_every_service(service, pid)
            assert report["space"]["index_disk"]["state"] == "low"
            assert report["space"]["index_disk"]["free_bytes"] >= FULL_BELOW_BYTES  # not full
            assert report["space"]["data_disk"]["state"] == "ok"
            assert report["queues"]["index"]["backlog"] > 0
            assert 'archiver_space_low{space="index_disk"} 1' in metrics(service)

            index_disk.grow(128)
            service.wait_until_indexed(len(senders.acknowledged), timeout=300)
            everything_acknowledged_is_there(service, set(senders.acknowledged))
            wait_until(lambda: indexer_reason(service) == "", 30, "the pause to end in status")
            report = the_run_runs_every_service(service, pid)
            assert report["space"]["index_disk"]["state"] == "ok"
        finally:
            assert service.stop() == 0


def test_a_background_index_rebuild_pauses_on_a_full_disk_and_finishes_by_itself(tmp_path):
    models = models_file(tmp_path, intake={"min_free_disk_mb": 1})
    with SmallDisk(tmp_path / "disk", 64) as disk:
        data = disk.mount_point / "data"
        service = ArchiverService(tmp_path, {"data_dir": str(data), "web": {"plain_http": True}},
                                  models=models)
        service.data = data
        mail = tmp_path / "mail"
        mail.mkdir()
        for n in range(300):
            (mail / f"{n}.eml").write_bytes(message(n, attachment_bytes=0, words=200))
        assert service.cli("import", mail).returncode == 0
        hits_before = sorted(service.search("marker7"))
        assert hits_before
        # An index of an older schema: the service rebuilds it beside the live one.
        old = xapian.WritableDatabase(str((data / "index").resolve()), xapian.DB_OPEN)
        old.set_metadata("schema_version", str(SCHEMA_VERSION - 1))
        old.commit()
        old.close()
        disk.fill(leave_bytes=MiB // 2)  # the new index cannot fit
        service.start()
        try:
            pid = service.process.pid
            wait_until(still_running(service, lambda: "indexer paused: data disk " in
                                     log_of(service)), 180, "the rebuild to pause")
            wait_until(lambda: indexer_reason(service).startswith("paused: data disk "), 30,
                       "status to say why the indexer waits")
            the_run_runs_every_service(service, pid)
            assert sorted(service.search("marker7")) == hits_before  # the old index answers
            disk.release()

            def rebuilt() -> bool:
                assert service.process.poll() is None, log_of(service)[-2000:]
                try:
                    index = xapian.Database(str((data / "index").resolve()))
                except xapian.Error:
                    return False
                return index.get_metadata("schema_version") == str(SCHEMA_VERSION).encode()
            wait_until(rebuilt, 300, "the rebuild to finish by itself")
            assert sorted(service.search("marker7")) == hits_before
            # the live index, and the old one, retired until the service removes it
            live = (data / "index").resolve()
            others = [p for p in data.iterdir() if p.name.startswith("index.") and p != live]
            assert len(others) <= 1 and all(retired_index.retired_at(p) for p in others)
            wait_until(lambda: indexer_reason(service) == "", 30, "the pause to end in status")
            the_run_runs_every_service(service, pid)
        finally:
            assert service.stop() == 0


def sent(service: ArchiverService, raw: bytes) -> bool:
    """Whether intake acknowledged `raw`; False when it answered 4xx."""
    try:
        with smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=30) as client:
            client.sendmail("alice@example.org", ["bob@example.com"], raw)
        return True
    except smtplib.SMTPResponseException as refusal:
        assert 400 <= refusal.smtp_code < 500, refusal
        return False


def on_a_full_disk(tmp_path, disk: SmallDisk, imported: int) -> ArchiverService:
    models = models_file(tmp_path, intake={"min_free_disk_mb": 8})
    data = disk.mount_point / "data"
    service = ArchiverService(tmp_path, {"data_dir": str(data), "web": {"plain_http": True},
                                         "smtp": {"trusted_servers": ["127.0.0.1/32"]}},
                              models=models)
    service.data = data
    if imported:
        mail = tmp_path / "mail"
        mail.mkdir()
        for n in range(imported):
            (mail / f"{n}.eml").write_bytes(message(n))
        assert service.cli("import", mail).returncode == 0
    disk.fill()
    assert disk.free_bytes() < 64 * 1024
    return service


def test_run_starts_on_a_full_disk_an_archive_with_no_spool_yet_and_goes_on_by_itself(
        tmp_path):
    with SmallDisk(tmp_path / "disk", 40) as disk:
        service = on_a_full_disk(tmp_path, disk, imported=20)  # never ran: no spool/ yet
        service.start()
        try:
            pid = service.process.pid
            wait_for_port("127.0.0.1", service.web_port)
            assert not sent(service, message(999))
            # (the services' records wait for room too: they were never written)
            assert status(service)["space"]["data_disk"]["state"] == "full"
            wait_until(lambda: "the scheduled retention run waits for room: " in
                       log_of(service), 30, "retention to say it waits")
            assert "Traceback" not in log_of(service)
            disk.release()
            wait_until(still_running(service, lambda: sent(service, message(1000))), 60,
                       "intake to take mail again")
            service.wait_until_indexed(21, timeout=120)
            wait_until(lambda: status(service)["services"]["smtp"]["pid"] == pid, 60,
                       "the next heartbeat to record the services")
            the_run_runs_every_service(service, pid)
        finally:
            assert service.stop() == 0


def test_run_starts_on_a_full_disk_with_no_archive_yet_and_goes_on_by_itself(tmp_path):
    with SmallDisk(tmp_path / "disk", 40) as disk:
        service = on_a_full_disk(tmp_path, disk, imported=0)
        starting = threading.Thread(target=service.start)  # it listens once it has room
        starting.start()
        try:
            wait_until(lambda: service.process is not None and "cannot open the archive: data "
                       "disk full: " in log_of(service), 60, "run to say why it waits")
            assert service.process.poll() is None
            disk.release()
            starting.join()
            wait_until(still_running(service, lambda: sent(service, message(1000))), 60,
                       "intake to take mail")
            service.wait_until_indexed(1, timeout=120)
            the_run_runs_every_service(service, service.process.pid)
            assert "Traceback" not in log_of(service)
        finally:
            starting.join()
            assert service.stop() == 0


def test_a_data_folder_a_full_disk_has_no_room_for_is_a_want_of_room_not_a_wrong_one(
        tmp_path, archiver):
    """Archive.make_data_dir, checking --data for every command, took the mkdir's ENOSPC on
    a full disk for a folder that cannot be one (UnusableDataFolder, exit 2): `archiver
    run` then ended instead of waiting for room. The OSError itself comes through, which
    _wait_for_the_store takes for a full disk; once there is room the folder is made."""
    import errno
    from services.archive.space import is_out_of_space
    with SmallDisk(tmp_path / "disk", 40) as disk:
        data = disk.mount_point / "data"
        disk.fill()
        for opening in (lambda archive: archive.make_data_dir(), lambda archive: archive.store):
            archive = Archive(data, 450)
            with pytest.raises(OSError) as raised:
                opening(archive)
            assert raised.value.errno == errno.ENOSPC and is_out_of_space(
                raised.value, disk.mount_point), raised.value
        (tmp_path / "m.eml").write_bytes(message(1))
        done = archiver("import", "--data", data, tmp_path / "m.eml", "--json")
        assert done.returncode == 75 and "as the data folder" not in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
        assert done.stderr == f"archiver: {json.loads(done.stdout)['error']}\n"
        assert f"no room on the disk of {data} (No space left on device)" in done.stderr
        assert not data.exists()
        disk.release()
        Archive(data, 450).make_data_dir()
        assert data.is_dir()
