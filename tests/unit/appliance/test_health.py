"""Health: services, queues and the MIB counters, as `archiver status` shows them."""
import time

import pytest

from services.archive.archive import Archive
from services.common.config import Config
from services.appliance.health import health
from services.appliance.service_state import ServiceRecords
from services.cli.status import text_lines


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
    assert report["queues"]["index"] == {"backlog": 4, "indexed": 0, "stored": 4,
                                         "reindexing": None}
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
