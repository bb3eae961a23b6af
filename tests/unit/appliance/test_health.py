"""Health: services, queues and the MIB counters, as `archiver status` shows them."""
import time

import pytest

from services.archive.archive import Archive
from services.common.config import Config
from services.appliance.health import health
from services.appliance.service_state import ServiceRecords
from services.cli.status import text_lines
from services.web.metrics import render
from tests.integration.processes import models_file


def message(n: int) -> bytes:
    return f"From: a@example.com\r\nSubject: {n}\r\nMessage-ID: <h{n}@example.com>\r\n\r\nbody {n}\r\n".encode()


@pytest.fixture
def archive(tmp_path):
    opened = Archive(tmp_path / "data", 450)
    yield opened
    opened.close()


def test_counters_queues_and_services_of_a_busy_archive(archive):
    store = archive.store
    for n in range(3):
        store.put(message(n), None, "smtp")
    store.put(message(0), None, "smtp")                                  # a duplicate
    store.put(message(9), None, "journal:exchange")
    ServiceRecords(store, ["smtp"]).running()
    report = health(Config(), archive)
    archived = report["archived"]
    assert archived["total"] == 4 and archived["by_source"] == {"smtp": 3, "journal": 1}
    assert archived["this_hour"] == archived["today"] == 4
    assert list(archived["per_hour"].values())[0] == 4 and len(archived["per_hour"]) == 24
    assert archived["last_archived"].startswith(time.strftime("%Y-%m-%dT", time.gmtime()))
    assert report["dedup"] == {"duplicates": 1, "bytes_saved": len(message(0))}
    assert report["queues"]["index"] == {
        "backlog": 4, "indexed": 0, "stored": 4, "reindexing": None,
        "compaction": {"index_bytes": None, "compacts_at_bytes": None, "not_before": None,
                       "compactions": 0, "last": None, "skipped": None}}
    assert report["services"]["smtp"]["state"] == "running"
    assert report["services"]["mirror"]["state"] == "never started"
    assert report["storage"]["messages"] == 4 and report["storage"]["free_bytes"] > 0
    assert 0 <= report["system"]["disk"]["percent_used"] <= 100


def test_status_does_not_create_an_index(archive):
    health(Config(), archive)
    assert not archive.index_link.exists()


def test_the_text_view_shows_every_service_and_the_counters(archive):
    archive.store.put(message(1), None, "import")
    ServiceRecords(archive.store, ["smtp"]).failed("cannot listen on 0.0.0.0:25: address "
                                                   "already in use", "smtp")
    text = "\n".join(text_lines(health(Config(), archive)))
    assert "smtp     failed: cannot listen on 0.0.0.0:25: address already in use" in text
    assert "journal  never started" in text
    assert "archived: 1 (import 1); this hour 1" in text


def test_status_text_and_metrics_say_how_much_room_each_space_has(archive):
    report = health(Config(), archive)
    assert list(report["space"]) == ["data_disk", "store_capacity"]
    data = report["space"]["data_disk"]
    assert data["words"].startswith(f"data disk {data['state']}: ")
    assert data["low_below_bytes"] == archive.profile.intake.min_free_disk_mb * 1024 * 1024
    text = text_lines(report)
    assert f"space: {data['words']}" in text and text.index(f"space: {data['words']}") == 1
    exposition = render(report, failed_logins=0)
    assert f'archiver_space_free_bytes{{space="data_disk"}} {data["free_bytes"]}' in exposition
    assert 'archiver_space_full{space="store_capacity"} 0' in exposition


def test_a_disk_below_the_models_threshold_is_low_before_it_is_full(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHIVER_MODELS", str(models_file(tmp_path,
                                                          intake={"min_free_disk_mb": 10**9})))
    low = Archive(tmp_path / "data", 450)
    try:
        report = health(Config(), low)
    finally:
        low.close()
    data = report["space"]["data_disk"]
    assert data["state"] == "low" and data["words"].startswith("data disk low: ")
    assert data["words"].endswith("(low below 953.7 TiB)")
    assert f"space: {data['words']}" in text_lines(report)
    exposition = render(report, failed_logins=0)
    assert 'archiver_space_low{space="data_disk"} 1' in exposition
    assert 'archiver_space_full{space="data_disk"} 0' in exposition


def test_status_and_metrics_say_when_the_index_was_compacted_and_why_it_was_not(archive):
    from services.archive import compaction, live_compaction
    live = archive.index_dir()
    (live / "postlist.glass").write_bytes(b"x" * 5000)  # the live index's size on disk
    at = time.time()
    compaction.Record().compacted(live, 12_000, 40, now=at).save(archive.store)
    state = health(Config(), archive)["queues"]["index"]["compaction"]
    last = state["last"]
    assert last == {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)),
                    "bytes_before": 12_000, "bytes_after": 5000, "messages": 40}
    assert state["index_bytes"] == 5000 and state["compactions"] == 1
    assert state["compacts_at_bytes"] == live_compaction.threshold(
        compaction.Record.load(archive.store), live.name) > 5000
    assert state["skipped"] is None
    exposition = render(health(Config(), archive), failed_logins=0)
    assert "archiver_index_bytes 5000\n" in exposition
    assert "archiver_index_compactions_total 1\n" in exposition
    assert "archiver_index_compacted_bytes 5000\n" in exposition
    assert "archiver_index_compaction_skipped 0\n" in exposition
    assert f"  index size 4.9 KiB; compacted {last['at']}, 11.7 KiB to 4.9 KiB; " \
           "compacts next at " in "\n".join(text_lines(health(Config(), archive)))

    compaction.Record.load(archive.store).skipped(live, 5000, "no room for a copy", at
                                                  ).save(archive.store)
    report = health(Config(), archive)
    assert report["queues"]["index"]["compaction"]["skipped"]["reason"] == "no room for a copy"
    assert "archiver_index_compaction_skipped 1\n" in render(report, failed_logins=0)
    assert "; last skipped " in "\n".join(text_lines(report))
