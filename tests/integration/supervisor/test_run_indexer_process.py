"""`archiver run` indexes in a child process (off the SMTP event loop's GIL): it holds the
index lock the run took, records its own state, goes with its parent however the parent
ends; a run whose indexer dies starts it again, and one whose indexer keeps dying fails and
says why."""
import contextlib
import json
import os
import signal
import smtplib

import psutil
import pytest

from services.archive.indexer import IndexLock
from services.supervisor.indexer_process import INDEXER_POLICY, START_LIMIT_BURST
from tests.integration.processes import ArchiverService
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

CONFIG = {"smtp": {"trusted_servers": ["127.0.0.1/32"]}}


def raw(n: int) -> bytes:
    return (f"From: alice@example.com\r\nTo: bob@example.com\r\nSubject: child {n}\r\n"
            f"Message-ID: <child-{n}@example.com>\r\n\r\nbody marker{n}\r\n").encode()


def end(service: ArchiverService) -> None:
    """Whatever is left of the service's process group goes."""
    with contextlib.suppress(ProcessLookupError):
        service.kill()


def services_of(service: ArchiverService) -> dict:
    done = service.cli("status", "--json", "--config", service.config_path)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["services"]


def indexer_child(service: ArchiverService) -> psutil.Process:
    """The run's child process that records itself as the indexer."""
    wait_until(lambda: services_of(service)["indexer"]["state"] == "running", timeout=60)
    pid = services_of(service)["indexer"]["pid"]
    assert pid in [child.pid for child in psutil.Process(service.process.pid).children()]
    return psutil.Process(pid)


def test_the_indexer_runs_in_a_child_that_holds_the_index_lock(tmp_path):
    service = ArchiverService(tmp_path, CONFIG, command=("run",)).start()
    try:
        child = indexer_child(service)
        records = services_of(service)
        assert child.pid != service.process.pid
        assert os.sched_getscheduler(service.process.pid) == os.SCHED_OTHER  # SMTP's
        assert records["smtp"]["pid"] == service.process.pid
        assert not IndexLock(service.data).acquire(wait=False)  # held, by the child
        with smtplib.SMTP("127.0.0.1", service.smtp_port) as client:
            for n in range(3):
                client.sendmail("alice@example.com", ["bob@example.com"], raw(n))
        service.wait_until_indexed(3, timeout=60)
        assert len(service.search("marker1")) == 1
        # The child and what it started (fork server, extraction workers, PDF servers):
        # all at the idle policy, below SMTP.
        indexing = [child, *child.children(recursive=True)]
        assert len(indexing) >= 3, indexing  # fork server and a worker at least
        assert {os.sched_getscheduler(process.pid) for process in indexing} == {INDEXER_POLICY}
    finally:
        assert service.stop() == 0
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    assert services_of(service)["indexer"]["state"] == "stopped"
    lock = IndexLock(service.data)
    assert lock.acquire(wait=False)  # let go with the run
    lock.release()


def test_a_run_killed_outright_takes_its_indexer_with_it(tmp_path):
    service = ArchiverService(tmp_path, CONFIG, command=("run",)).start()
    try:
        child = indexer_child(service)
        os.kill(service.process.pid, signal.SIGKILL)  # the run alone, not its group
        service.process.wait()
        child.wait(timeout=60)  # PR_SET_PDEATHSIG: it is told to stop, and does
        lock = IndexLock(service.data)
        assert lock.acquire(wait=False)
        lock.release()
    finally:
        end(service)


def test_an_indexer_that_aborts_is_started_again_and_the_run_goes_on(tmp_path):
    """As Xapian aborts the process (std::terminate) when a commit meets a full disk: the
    run restarts its indexer, as systemd restarts the appliance's indexer unit."""
    service = ArchiverService(tmp_path, CONFIG, command=("run",)).start()
    try:
        child = indexer_child(service)
        with smtplib.SMTP("127.0.0.1", service.smtp_port) as client:
            client.sendmail("alice@example.com", ["bob@example.com"], raw(0))
        service.wait_until_indexed(1, timeout=60)
        child.send_signal(signal.SIGABRT)
        child.wait(timeout=30)
        wait_until(lambda: services_of(service)["indexer"]["pid"] != child.pid, 60,
                   "a new indexer to record itself")
        again = indexer_child(service)
        assert again.pid != child.pid and service.process.poll() is None
        assert not IndexLock(service.data).acquire(wait=False)  # held, by the new child
        with smtplib.SMTP("127.0.0.1", service.smtp_port) as client:
            for n in range(1, 4):
                client.sendmail("alice@example.com", ["bob@example.com"], raw(n))
        service.wait_until_indexed(4, timeout=60)
        assert len(service.search("marker3")) == 1
        assert services_of(service)["smtp"]["state"] == "running"
        assert f"indexer failed: its process {child.pid} ended (exit status -6); it is " \
               "started again in 2 s" in service.log.read_text()
    finally:
        assert service.stop() == 0


def test_a_run_whose_indexer_keeps_dying_fails_and_status_says_why(tmp_path):
    service = ArchiverService(tmp_path, CONFIG, command=("run",)).start()
    try:
        killed = []
        while service.process.poll() is None and len(killed) < START_LIMIT_BURST:
            child = indexer_child(service)
            if child.pid not in killed:
                child.kill()
                killed.append(child.pid)
                child.wait(timeout=30)
        assert service.process.wait(timeout=60) == 1
        records = services_of(service)
        assert records["smtp"]["state"] == "stopped"
        last = f"indexer failed: its process {killed[-1]} ended (exit status -9); it ended " \
               f"{START_LIMIT_BURST} times within 60 s"
        assert last in records["smtp"]["reason"]
        assert last in service.log.read_text()
    finally:
        end(service)


def test_a_run_started_while_another_holds_the_index_lock_indexes_once_it_is_free(tmp_path):
    """A run started again at once after a SIGKILL found the killed run's indexer child
    still holding the lock (ci74: it ran without an indexer from then on, nothing indexed)."""
    service = ArchiverService(tmp_path, CONFIG, command=("run",))
    held = IndexLock(service.data)
    service.data.mkdir(parents=True, exist_ok=True)
    assert held.acquire(wait=False)
    try:
        service.start()
        with smtplib.SMTP("127.0.0.1", service.smtp_port) as client:
            client.sendmail("alice@example.com", ["bob@example.com"], raw(1))
        wait_until(lambda: service.stats()["stored"] == 1, timeout=60)
        assert service.stats()["indexed"] == 0  # the lock is another's
        held.release()
        wait_until(lambda: service.stats()["indexed"] == 1, timeout=60, what="indexed")
    finally:
        held.release()
        end(service)
