"""Service records: what `archiver status` in another process tells of each service."""
import os
import subprocess
import sys
import time

import pytest

from services.appliance.service_state import STALE_AFTER_SECONDS, ServiceRecords, describe
from services.archive.store import Store


@pytest.fixture
def store(tmp_path):
    opened = Store(tmp_path / "store", map_size=2**30)
    yield opened
    opened.close()


def test_a_service_never_started_says_so(store):
    assert describe(store, "smtp")["state"] == "never started"


def test_a_beating_service_is_running_with_its_pid(store):
    ServiceRecords(store, ["smtp", "indexer"]).running()
    for name in ("smtp", "indexer"):
        state = describe(store, name)
        assert state["state"] == "running" and state["pid"] == os.getpid()


def test_no_heartbeat_for_a_while_is_stale(store):
    ServiceRecords(store, ["smtp"]).running()
    later = time.time() + STALE_AFTER_SECONDS + 1
    state = describe(store, "smtp", now=later)
    assert state["state"] == "stale" and "no heartbeat" in state["reason"]


def test_a_process_gone_without_a_word_is_stale(store):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    store.set_setting("service.mirror", {"state": "running", "pid": int(gone),
                                         "time": time.time(), "started": time.time(),
                                         "reason": ""})
    state = describe(store, "mirror")
    assert state["state"] == "stale" and f"process {gone} is gone" in state["reason"]


def test_a_failure_names_the_service_and_stops_the_others_of_its_process(store):
    records = ServiceRecords(store, ["smtp", "journal"])
    records.running()
    records.failed("cannot listen on 0.0.0.0:25: address already in use", "smtp")
    smtp = describe(store, "smtp")
    assert smtp["state"] == "failed"
    assert smtp["reason"] == "cannot listen on 0.0.0.0:25: address already in use"
    journal = describe(store, "journal")
    assert journal["state"] == "stopped" and journal["reason"].startswith("smtp failed")


def test_a_clean_stop_is_stopped_not_stale(store):
    records = ServiceRecords(store, ["indexer"])
    records.running()
    records.stopped()
    assert describe(store, "indexer", now=time.time() + 3600)["state"] == "stopped"
