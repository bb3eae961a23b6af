"""Upgrading an archive whose index an older schema wrote: the indexer service rebuilds it
beside the old one, which keeps answering (and taking new mail) until the switch;
`archiver status`, the API and the status page show "reindexing X of Y"; `archiver reindex`
does the same in the foreground and resumes an interrupted rebuild."""
import json
import re
import subprocess
from email.message import EmailMessage

import pytest
import xapian

from services.appliance import users
from services.archive import indexer as indexer_module, reindex, retired_index
from services.archive.archive import Archive
from services.archive.extract import ExtractionPool
from services.archive.index import SCHEMA_KEY, SCHEMA_VERSION, SLOT_DATE, id_term, schema_version
from services.archive.indexer import CURSOR_KEY, Indexer
from services.archive.search import search
from tests.conftest import ARCHIVER
from tests.integration.processes import free_port
from tests.integration.web.fixtures import PASSWORD, Client, ThreadedServer, web_config
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
MESSAGES = 12


def mail(n: int) -> bytes:
    message = EmailMessage()
    message["From"], message["To"] = "Jörg Müller <joerg@example.org>", "ops@example.net"
    message["Subject"], message["Message-ID"] = f"Bericht {n}", f"<report{n}@example.org>"
    message["Date"] = f"Tue, {n + 1:02d} Mar 2024 10:00:00 +0000"
    message.set_content(f"Grüße von Müller, Nummer {n}")
    return message.as_bytes()


def old_index(archive: Archive) -> None:
    """The live index as the schema-1 code wrote it: Xapian's TermGenerator, no schema
    version recorded, positions in the unprefixed text only."""
    database = xapian.WritableDatabase(str(archive.index_dir()), xapian.DB_CREATE_OR_OPEN)
    generator = xapian.TermGenerator()
    for digest in archive.store.digests():
        meta, document = archive.store.meta(digest), xapian.Document()
        generator.set_document(document)
        generator.index_text(meta["subject"], 1, "S")
        generator.index_text(meta["subject"] + " " + meta["from"])
        document.add_boolean_term(id_term(digest))
        document.add_value(SLOT_DATE, xapian.sortable_serialise(meta["sent_date"]))
        document.set_data(json.dumps({"digest": digest, "date": meta["sent_date"],
                                      "from": meta["from"], "subject": meta["subject"],
                                      "size": meta["size"]}))
        database.replace_document(meta["number"], document)
    database.set_metadata(CURSOR_KEY, str(archive.store.log_end("arrival")))
    database.commit()
    database.close()


@pytest.fixture
def upgraded(tmp_path, monkeypatch):
    """An archive of MESSAGES messages with a schema-1 index, and a rebuild stopped after
    its first batch of 5."""
    archive = Archive(tmp_path / "data", 450)
    for n in range(MESSAGES):
        archive.store.put(mail(n), None, "smtp")
    old_index(archive)
    monkeypatch.setattr(indexer_module, "BATCH_MESSAGES", 5)
    assert reindex.needs_rebuild(archive)
    with ExtractionPool(archive.profile.attachment_text_bytes) as pool:
        assert not reindex.rebuild(archive, pool, stop=lambda: True)
    monkeypatch.undo()
    yield archive
    archive.close()


def cli(*args, check=0):
    done = subprocess.run([str(ARCHIVER), *map(str, args)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == check, done.stderr
    return done


def test_the_service_rebuilds_in_the_background_while_the_old_index_answers(upgraded):
    data, old = upgraded.data_dir, upgraded.index_link.resolve()
    assert reindex.progress_of(upgraded) == {"done": 5, "total": MESSAGES}
    upgraded.close()
    assert "  reindexing 5 of 12 (the old index answers until then)" in \
        cli("status", "--data", data).stdout.splitlines()
    report = json.loads(cli("status", "--json", "--data", data).stdout)
    assert report["queues"]["index"]["reindexing"] == {"done": 5, "total": MESSAGES}
    answered = cli("search", "Müller", "--data", data)  # the old index, as it was
    assert len(answered.stdout.splitlines()) == MESSAGES
    assert "archiver: note: the index is being rebuilt" in answered.stderr
    assert cli("search", "muller", "--data", data).stdout == ""  # schema 1 kept accents
    service = subprocess.Popen([str(ARCHIVER), "serve", "indexer", "--data", str(data)],
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until(lambda: not (data / "index.next").exists(), 120, "the switch-over")
        wait_until(lambda: len(cli("search", "muller", "--data", data).stdout.splitlines())
                   == MESSAGES, 60, "the new index to answer")
    finally:
        service.terminate()
        assert service.wait(timeout=60) == 0
    assert (data / "index").resolve() != old
    assert retired_index.retired_at(old) is not None  # kept a while for searches begun in it
    assert "reindexing" not in cli("status", "--data", data).stdout
    assert "note:" not in cli("search", "muller", "--data", data).stderr
    assert schema_version(xapian.Database(str(data / "index"))) == SCHEMA_VERSION


def test_mail_arriving_during_the_rebuild_reaches_the_old_index_too(upgraded, monkeypatch):
    live_count = xapian.Database(str(upgraded.index_dir())).get_doccount()
    upgraded.store.put(mail(99), None, "smtp")
    monkeypatch.setattr(indexer_module, "BATCH_MESSAGES", 5)
    with ExtractionPool(upgraded.profile.attachment_text_bytes) as pool, \
            Indexer(upgraded.store, upgraded.index_dir(), pool) as live:
        assert not reindex.rebuild(upgraded, pool, stop=lambda: True, live=live)
    old = xapian.Database(str(upgraded.index_dir()))
    assert old.get_doccount() == live_count + 1 == MESSAGES + 1
    assert old.get_metadata(SCHEMA_KEY) == b""  # still the old index, still answering
    assert reindex.progress_of(upgraded) == {"done": 10, "total": MESSAGES + 1}
    assert upgraded.store.cursor("indexer") == upgraded.store.log_end("arrival")


def test_archiver_reindex_resumes_the_rebuild_in_the_foreground(upgraded):
    data, old = upgraded.data_dir, upgraded.index_link.resolve()
    upgraded.close()
    done = cli("reindex", "--data", data)
    assert re.fullmatch(rf"reindexed {MESSAGES} messages \(index: [\d.]+ MB, compacted\)\n",
                        done.stdout), done.stdout
    assert re.search(rf"reindexing {MESSAGES}/{MESSAGES} 100%", done.stderr)
    assert not (data / "index.next").exists()
    assert len(cli("search", "muller", "--data", data).stdout.splitlines()) == MESSAGES
    assert sorted(p.name for p in data.iterdir() if p.name.startswith("index.")) == \
        sorted([(data / "index").resolve().name, old.name])  # the old one retired
    assert retired_index.retired_at(old) is not None


def test_the_status_page_and_api_show_the_rebuild(upgraded):
    users.set_password(upgraded, "admin", PASSWORD)
    server = ThreadedServer(web_config(upgraded.data_dir, free_port()), upgraded).start()
    try:
        api = Client(server.url, basic=("admin", PASSWORD))
        index = api.get("/api/status").json()["queues"]["index"]
        assert index["reindexing"] == {"done": 5, "total": MESSAGES}
        found = api.get("/api/search?q=M%C3%BCller").json()
        assert found["total"] == MESSAGES and "being rebuilt" in found["notice"]
        browser = Client(server.url)
        token = re.search(r'name="login_token" value="([^"]+)"',
                          browser.get("/login").body.decode()).group(1)
        browser.request("POST", "/login", form={"login_token": token, "name": "admin",
                                                "password": PASSWORD, "next": "/status"})
        page = browser.get("/status").body.decode()
        assert "reindexing 5 of 12; the old index answers searches until then" in page
        results = browser.get("/search?q=M%C3%BCller").body.decode()
        assert "Note: the index is being rebuilt" in results
    finally:
        server.stop()


def test_a_rebuild_reads_again_only_header_metadata_an_older_reading_wrote(tmp_path,
                                                                          monkeypatch):
    """The store is parsed already: a rebuild derives header metadata anew only where an
    older reading wrote it (services.archive.metadata.READING), and reads each message's
    bytes from the store once."""
    from services.archive import metadata
    from services.archive.store import Store
    archive = Archive(tmp_path / "data", 450)
    digests = [archive.store.put(mail(n)) for n in range(MESSAGES)]
    with archive.store.env.begin(write=True) as txn:  # one message of an older reading
        old = {**archive.store.meta(digests[0]), "reading": metadata.READING - 1}
        del old["digest"]
        archive.store._write_meta(txn, bytes.fromhex(digests[0]), old)
    reread, read = [], []
    changes, get = metadata.changes, Store.get
    monkeypatch.setattr(metadata, "changes", lambda meta, raw: (
        reread.append(meta["number"]), changes(meta, raw))[1])
    monkeypatch.setattr(Store, "get", lambda store, digest: (read.append(digest),
                                                             get(store, digest))[1])
    with ExtractionPool(archive.profile.attachment_text_bytes) as pool:
        assert reindex.rebuild(archive, pool)
    reindex.switch_over(archive)
    assert reread == [archive.store.meta(digests[0])["number"]]
    assert sorted(read) == sorted(digests)  # each once, the old one's bytes read for both
    assert archive.store.meta(digests[0])["reading"] == metadata.READING
    assert schema_version(xapian.Database(str(archive.index_dir()))) == SCHEMA_VERSION
    assert xapian.Database(str(archive.index_dir())).get_doccount() == MESSAGES
    archive.close()


def test_a_rebuild_skips_fsync_and_is_trusted_again_only_within_the_same_boot(upgraded):
    """The index being rebuilt commits without fsync (services.archive.unsynced): marked
    with this boot while its writer is open, written to disk and unmarked when it closes;
    an index left marked by this boot (a killed process) is resumed, one marked by another
    boot (the system went down) is rebuilt from the start."""
    from services.archive import unsynced
    rebuilding = upgraded.next_index_link.resolve()
    assert not unsynced.is_marked(rebuilding)  # the stopped rebuild closed its writer
    with ExtractionPool(upgraded.profile.attachment_text_bytes) as pool:
        writer = reindex._building(upgraded, pool)
        assert writer.index_dir == rebuilding and unsynced.is_marked(rebuilding)
        assert (rebuilding / unsynced.MARK).read_text().strip() == unsynced.boot_id()
        with pytest.raises(RuntimeError, match="not on disk yet"):
            reindex.switch_over(upgraded)
        writer.abandon_writes()  # as if killed: the mark stays
        assert unsynced.is_marked(rebuilding) and not unsynced.lost(rebuilding)
        assert reindex.next_index_dir(upgraded) == rebuilding  # same boot: resumed
        (rebuilding / unsynced.MARK).write_text("a-boot-before-this-one\n")
        assert unsynced.lost(rebuilding)
        fresh = reindex.next_index_dir(upgraded)
        assert fresh != rebuilding and not rebuilding.exists()
        assert reindex.progress_of(upgraded) == {"done": 0, "total": MESSAGES}
        assert reindex.rebuild(upgraded, pool)
    reindex.switch_over(upgraded)
    assert not unsynced.is_marked(upgraded.index_link.resolve())
    assert len(search(upgraded.index_dir(), "muller").hits) == MESSAGES
