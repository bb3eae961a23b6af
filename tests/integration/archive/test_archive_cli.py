"""The archive core through the `archiver` CLI, as an operator uses it."""
import hashlib
import json
import mailbox
import os
import signal
import subprocess
import time
import zipfile

import pytest

from services.archive import retired_index
from tests import search_output
from tests.deep_folders import folder_chain
from tests.conftest import ARCHIVER

pytestmark = pytest.mark.integration


def raw_message(n: int, extra: str = "") -> bytes:
    return (f"From: sender{n % 7}@example.com\nTo: rcpt{n % 5}@example.com\n"
            f"Subject: message number {n} {extra}\nMessage-ID: <n{n}@example.com>\n"
            f"Date: Tue, {1 + n % 28:02d} Feb 2022 10:00:00 +0000\n\n"
            f"Body of message {n}.\nFrom the archive\n").encode()


@pytest.fixture
def data(tmp_path):
    return tmp_path / "data"


def digests_of(archiver, data, query=""):
    done = archiver("search", query, "--data", data, "--json", "--limit", 100000, check=0)
    return sorted(search_output.digests(done.stdout))


def test_import_of_each_format_then_search_show_and_stats(archiver, data, tmp_path):
    maildir = mailbox.Maildir(tmp_path / "Maildir", create=True)
    for n in range(3):
        maildir.add(raw_message(n))
    box = mailbox.mbox(tmp_path / "inbox.mbox")
    for n in range(3, 6):
        box.add(raw_message(n))
    box.flush()
    folder = tmp_path / "emls"
    folder.mkdir()
    for n in range(6, 8):
        (folder / f"{n}.eml").write_bytes(raw_message(n))
    (tmp_path / "single.eml").write_bytes(raw_message(8))
    done = archiver("import", "--data", data, "--json", tmp_path / "Maildir",
                    tmp_path / "inbox.mbox", folder, tmp_path / "single.eml", check=0)
    assert json.loads(done.stdout) == {"imported": 9, "duplicates": 0, "merged": 0, "failed": 0,
                                       "skipped": 0, "indexed": 9, "problems": []}
    assert len(digests_of(archiver, data)) == 9
    (hit,) = search_output.hits(archiver(
        "search", "subject:number AND 8", "--data", data, "--json", check=0).stdout)
    assert hit["digest"] == hashlib.sha256(raw_message(8)).hexdigest()
    raw = subprocess.run([str(ARCHIVER), "show", hit["digest"], "--raw", "--data", str(data)],
                         capture_output=True, check=True).stdout
    assert raw == raw_message(8)
    meta = json.loads(archiver("show", hit["digest"], "--data", data, "--json", check=0).stdout)
    assert meta["message_id"] == "n8@example.com" and meta["source"] == "import"
    stats = json.loads(archiver("stats", "--data", data, "--json", check=0).stdout)
    assert (stats["stored"], stats["indexed"], stats["pending"]) == (9, 9, 0)
    assert stats["raw_bytes"] == sum(len(raw_message(n)) for n in range(9))
    again = json.loads(archiver("import", "--data", data, "--json", folder, check=0).stdout)
    assert (again["imported"], again["duplicates"]) == (0, 2)


def test_a_bad_file_is_reported_and_skipped(archiver, data, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.eml").write_bytes(raw_message(1))
    (folder / "empty.eml").write_bytes(b"")  # no message: nothing to keep
    (folder / "README").write_bytes(b"# Notes\n\nNot a message.\n")  # not mail: refused
    malformed = b"Subject: broken\n\x00\xff no colon, no body separator"
    (folder / "malformed.eml").write_bytes(malformed)  # mail, if malformed: kept as it is
    (folder / "dangling.eml").symlink_to(tmp_path / "missing")
    os.mkfifo(folder / "pipe.eml")  # must be skipped, not read forever
    done = archiver("import", "--data", data, "--json", folder, check=1)
    summary = json.loads(done.stdout)
    assert (summary["imported"], summary["failed"], summary["skipped"]) == (2, 3, 1)
    assert sorted((problem["item"].rpartition("/")[2], problem["outcome"])
                  for problem in summary["problems"]) == [
        ("README", "failed"), ("dangling.eml", "skipped"), ("empty.eml", "failed"),
        ("pipe.eml", "failed")]
    kept = hashlib.sha256(malformed).hexdigest()
    assert json.loads(archiver("show", kept, "--data", data, "--json", check=0).stdout)[
        "size"] == len(malformed)
    assert "pipe.eml" in done.stderr and "dangling.eml" in done.stderr


@pytest.mark.parametrize("fmt", ["zip", "mbox"])
def test_export_then_import_into_an_empty_archive_gives_the_same_digests(archiver, tmp_path, fmt):
    source, target = tmp_path / "a", tmp_path / "b"
    folder = tmp_path / "emls"
    folder.mkdir()
    for n in range(12):
        (folder / f"{n}.eml").write_bytes(raw_message(n, extra="From me"))
    archiver("import", "--data", source, "--json", folder, check=0)
    out = tmp_path / f"export-{fmt}.zip"
    done = archiver("export", "sender1 OR sender2", "--format", fmt, "-o", out, "--data", source,
                    "--json", check=0)
    assert json.loads(done.stdout)["exported"] == 4
    if fmt == "zip":  # unpacked: its manifest files are not taken for mail
        extracted = tmp_path / "unzipped"
        zipfile.ZipFile(out).extractall(extracted)
        out = extracted
    imported = archiver("import", "--data", target, "--json", out, check=0)
    assert json.loads(imported.stdout)["imported"] == 4
    assert digests_of(archiver, target) == digests_of(archiver, source, "sender1 OR sender2")


@pytest.fixture
def deep_tree(tmp_path):
    """A folder 1,500 folders deep ("deep/d/.../d"), and the folders of its chain, top first."""
    with folder_chain(tmp_path / "deep", 1500) as folders:
        yield folders


def test_a_tree_1500_folders_deep_is_imported_whole(archiver, data, deep_tree):
    """Walking a folder a generator deeper than the one it is in ended the whole import
    with RecursionError near 1,000 folders deep: each message is read, at any depth."""
    levels = (0, 1, 500, 999, 1000, 1001, 1499, 1500)
    for n, level in enumerate(levels):
        (deep_tree[level] / "m.eml").write_bytes(raw_message(n))
    (deep_tree[0] / "z").mkdir()  # after the chain in name order: the walk comes back up
    (deep_tree[0] / "z" / "last.eml").write_bytes(raw_message(len(levels)))
    done = archiver("import", "--data", data, "--json", deep_tree[0], check=0)
    assert json.loads(done.stdout) == {
        "imported": len(levels) + 1, "duplicates": 0, "merged": 0, "failed": 0, "skipped": 0,
        "indexed": len(levels) + 1, "problems": []}
    assert len(digests_of(archiver, data)) == len(levels) + 1


def test_verify_exits_1_naming_the_corrupt_message(archiver, data, tmp_path):
    (tmp_path / "m.eml").write_bytes(raw_message(1))
    (tmp_path / "n.eml").write_bytes(raw_message(2))
    archiver("import", "--data", data, tmp_path / "m.eml", tmp_path / "n.eml", check=0)
    assert json.loads(archiver("verify", "--data", data, "--json", check=0).stdout)["corrupt"] == []
    corrupt = hashlib.sha256(raw_message(2)).hexdigest()
    import lmdb
    import zstandard
    env = lmdb.open(str(data / "store"), max_dbs=16)
    with env.begin(write=True) as txn:
        txn.put(bytes.fromhex(corrupt), zstandard.ZstdCompressor().compress(b"bit rot"),
                db=env.open_db(b"raw", txn=txn))
    env.close()
    done = archiver("verify", "--data", data, check=1)
    assert f"CORRUPT {corrupt}: content does not match its digest" in done.stdout


def delete_offline(data, digest: str) -> None:
    """Remove a message's bytes and metadata behind the store's back (an operator with
    python-lmdb), leaving its counter, log entries and index document as they were."""
    import lmdb
    env = lmdb.open(str(data / "store"), max_dbs=32)
    with env.begin(write=True) as txn:
        for name in (b"raw", b"meta"):
            assert txn.delete(bytes.fromhex(digest), db=env.open_db(name, txn=txn))
    env.close()


def test_verify_exits_1_naming_mail_deleted_offline(archiver, data, tmp_path):
    folder = tmp_path / "mail"
    folder.mkdir()
    for n in range(13):
        (folder / f"{n}.eml").write_bytes(raw_message(n))
    archiver("import", "--data", data, folder, check=0)
    healthy = json.loads(archiver("verify", "--data", data, "--json", check=0).stdout)
    assert (healthy["checked"], healthy["counted"], healthy["mismatches"]) == (13, 13, 0)
    assert healthy["index"]["checked"] and healthy["missing"] == []
    gone = hashlib.sha256(raw_message(4)).hexdigest()
    delete_offline(data, gone)
    found = json.loads(archiver("verify", "--data", data, "--json", check=1).stdout)
    assert (found["checked"], found["corrupt"], found["counted"]) == (12, [], 13)
    assert found["found"] == {"raw": 12, "meta": 12}
    (missing,) = found["missing"]
    assert missing["digest"] == gone and 1 <= missing["seq"] <= 13
    assert found["index"]["documents_without_message"] == [gone]
    assert found["index"]["not_indexed"] == [] and found["mismatches"] == 3
    lines = archiver("verify", "--data", data, check=1).stdout.splitlines()
    assert f"MISSING {gone}: arrival-log entry {missing['seq']} stored it; it is not in the " \
           "store and no deletion of it is recorded" in lines
    assert "UNCOUNTED: the store's counter says 13 messages; 12 have their bytes, 12 their " \
           "metadata" in lines
    assert any(line.startswith(f"INDEXED-GONE {gone}: ") for line in lines)
    assert lines[-1] == "checked 12 messages, 0 corrupt; 3 mismatches of what should be " \
                        "stored: see above"


def test_verify_tells_deletions_by_the_store_from_losses_and_unindexed_mail(archiver, data,
                                                                            tmp_path):
    from services.archive.store import Store
    folder = tmp_path / "mail"
    folder.mkdir()
    for n in range(3):
        (folder / f"{n}.eml").write_bytes(raw_message(n))
    archiver("import", "--data", data, folder, check=0)
    store = Store(data / "store", map_size=1 << 30)
    store.delete([hashlib.sha256(raw_message(0)).hexdigest()])  # retention's way
    store.close()
    behind = archiver("verify", "--data", data, "--json", check=0)  # nothing is missing
    assert json.loads(behind.stdout)["index"] == {
        "checked": False, "pending": 1, "documents_without_message": [],
        "documents_without_message_count": 0, "not_indexed": [],
        "not_indexed_count": 0}  # the deletion is not indexed yet: no verdict on the index
    assert "note: the index was not checked against the store: it has 1 change still to " \
        "take in" in archiver("verify", "--data", data, check=0).stdout
    (tmp_path / "late.eml").write_bytes(raw_message(9))
    archiver("import", "--data", data, tmp_path / "late.eml", check=0)  # indexes the backlog
    assert json.loads(archiver("verify", "--data", data, "--json", check=0).stdout)[
        "mismatches"] == 0
    import xapian
    index = xapian.WritableDatabase(str((data / "index").resolve()), xapian.DB_OPEN)
    unindexed = hashlib.sha256(raw_message(9)).hexdigest()
    index.delete_document("Q" + unindexed)
    index.commit()
    index.close()
    found = json.loads(archiver("verify", "--data", data, "--json", check=1).stdout)
    assert found["index"]["not_indexed"] == [unindexed] and found["missing"] == []
    assert found["mismatches"] == 1


def test_reindex_rebuilds_the_same_index(archiver, data, tmp_path):
    for n in range(20):
        (tmp_path / f"{n}.eml").write_bytes(raw_message(n))
    archiver("import", "--data", data, *[tmp_path / f"{n}.eml" for n in range(20)], check=0)
    before = digests_of(archiver, data, "sender3")
    old_index = (data / "index").resolve()
    assert json.loads(archiver("reindex", "--data", data, "--json", check=0).stdout)["indexed"] == 20
    assert (data / "index").resolve() != old_index
    assert retired_index.retired_at(old_index) is not None  # kept a while, removed later
    assert digests_of(archiver, data, "sender3") == before and before


def test_sigkill_of_the_indexer_at_any_point_indexes_everything_exactly_once(archiver, data, tmp_path):
    folder = tmp_path / "emls"
    folder.mkdir()
    for n in range(1500):
        (folder / f"{n}.eml").write_bytes(raw_message(n))
    archiver("import", "--data", data, "--no-index", "--json", folder, check=0)
    kills = 0
    for delay in (0.5, 0.9, 1.3, 0.7, 1.1, 1.6):
        indexer = subprocess.Popen([str(ARCHIVER), "serve", "indexer", "--data", str(data)],
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(delay)
        os.killpg(indexer.pid, signal.SIGKILL)  # the indexer and its extraction workers
        indexer.wait()
        kills += 1
        stats = json.loads(archiver("stats", "--data", data, "--json", check=0).stdout)
        assert stats["indexed"] + stats["pending"] >= stats["stored"]
    log = tmp_path / "indexer.log"
    with open(log, "w") as stderr:
        indexer = subprocess.Popen([str(ARCHIVER), "serve", "indexer", "--data", str(data)],
                                   stderr=stderr)
    deadline = time.monotonic() + 120
    # Ready first: the killed indexers may have indexed everything already, and a SIGTERM
    # before the service has started ends it the default way (-15), which is not under test.
    while "archiver: ready" not in log.read_text() or json.loads(
            archiver("stats", "--data", data, "--json", check=0).stdout)["pending"]:
        assert time.monotonic() < deadline, (  # what explains it, should it ever fail
            "the indexer did not start and catch up", log.read_text()[-3000:],
            archiver("status", "--data", data, check=0).stdout,
            subprocess.run(["ps", "-eo", "pid,pgid,stat,etime,args"], capture_output=True,
                           text=True).stdout[-3000:])
        time.sleep(0.3)
    indexer.terminate()
    assert indexer.wait(timeout=30) == 0
    stats = json.loads(archiver("stats", "--data", data, "--json", check=0).stdout)
    assert (stats["stored"], stats["indexed"], stats["pending"]) == (1500, 1500, 0)
    assert len(digests_of(archiver, data)) == 1500
    import xapian
    database = xapian.Database(str(data / "index"))
    assert all(database.get_termfreq("Q" + d) == 1 for d in digests_of(archiver, data, "sender0"))


@pytest.mark.parametrize("fmt", ["zip", "mbox"])
def test_an_export_of_very_compressible_mail_imports_back(archiver, tmp_path, fmt):
    """Moving mail between appliances: logs of 1 to 5 MB of one repeated line and 300 cron
    mails were refused by import as "a zip bomb?" (a member over 100:1), the mbox whole."""
    source, target, folder = tmp_path / "a", tmp_path / "b", tmp_path / "emls"
    folder.mkdir()
    for megabytes in (1, 3, 5):
        (folder / f"log{megabytes}.eml").write_bytes(
            f"From: cron@example.com\nSubject: log {megabytes}\n\n".encode()
            + b"job ok: nothing to do\n" * (megabytes * 1024 * 1024 // 22))
    for n in range(300):
        (folder / f"cron{n}.eml").write_bytes(
            f"From: cron@example.com\nSubject: cron {n}\n\nnothing to do\n".encode())
    archiver("import", "--data", source, "--json", folder, check=0)
    out = tmp_path / f"export-{fmt}.zip"
    archiver("export", "", "--format", fmt, "-o", out, "--data", source, check=0)
    done = archiver("import", "--data", target, "--json", out, check=0)
    assert (json.loads(done.stdout)["imported"], json.loads(done.stdout)["failed"]) == (303, 0)
    assert digests_of(archiver, target) == digests_of(archiver, source)


@pytest.mark.parametrize("command, exit_code, says", [
    (["stats"], 2, "no archive in"),
    (["search", "(race OR"], 2, "cannot parse query: OR needs something after it"),
    (["export", "subject:nothing-matches", "--format", "zip", "-o", "{out}"], 1,
     "was not written"),
    (["export", "", "--format", "zip", "-o", "{existing}"], 2, "exists: an export never"),
])
def test_a_failed_json_command_says_why_in_json_on_stdout(archiver, data, tmp_path, command,
                                                          exit_code, says):
    """A script reading --json's stdout is told why a command failed, not left with
    nothing: {"error": why, "exit_code": n}, the same why as stderr's line."""
    if command[0] != "stats":
        (tmp_path / "m.eml").write_bytes(raw_message(1))
        archiver("import", tmp_path / "m.eml", "--data", data, check=0)
    (tmp_path / "existing.zip").write_bytes(b"kept")
    argv = [str(word).format(out=tmp_path / "out.zip", existing=tmp_path / "existing.zip")
            for word in command]
    done = archiver(*argv, "--json", "--data", data if command[0] != "stats"
                    else tmp_path / "none", check=exit_code)
    error = json.loads(done.stdout.splitlines()[-1])
    assert error["exit_code"] == exit_code and says in error["error"], done.stdout
    assert error["error"] in done.stderr and "Traceback" not in done.stderr
    assert (tmp_path / "existing.zip").read_bytes() == b"kept"


# What SMTP intake may store (any bytes, kept byte-exact): each shape an mbox export writes.
STORED_ANY_BYTES = [
    b"hello, no header at all\r\n",
    b"From someone Sat Jan  1 00:00:00 2000\r\nSubject: x\r\n\r\nbody\r\n",
    b"From a Sat Jan  1 00:00:00 2000\n>From b Sat Jan  1 00:00:00 2000\nSubject: y\n\nbody\n",
    b"Subject: ok\r\n\r\nbody\r\n",
    b"\x00\x01 binary\n",
    b"From nobody\nSubject: starts like an mbox\n\nbody\n",
]


def test_an_mbox_export_of_whatever_was_stored_imports_back_byte_exact(archiver, tmp_path):
    """Review 117: a stored message whose first line is a From_ line is exported quoted
    (">From"), came back unquoted and was refused as not mail, and so was anything SMTP
    stored that is no mail: 1 imported, 2 failed of 3."""
    from services.archive.archive import Archive
    source, target = tmp_path / "a", tmp_path / "b"
    Archive(source).store.put_many([(raw, None, "smtp") for raw in STORED_ANY_BYTES])
    archiver("reindex", "--data", source, "--json", check=0)
    out = tmp_path / "export.mbox"
    done = archiver("export", "", "--format", "mbox", "-o", out, "--data", source, "--json",
                    check=0)
    assert json.loads(done.stdout)["exported"] == len(STORED_ANY_BYTES)
    done = archiver("import", "--data", target, "--json", out, check=0)
    result = json.loads(done.stdout)
    assert (result["imported"], result["failed"]) == (len(STORED_ANY_BYTES), 0), result
    assert digests_of(archiver, target) == digests_of(archiver, source) == sorted(
        hashlib.sha256(raw).hexdigest() for raw in STORED_ANY_BYTES)
