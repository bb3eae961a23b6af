"""An evidence export's memory does not grow with the number of messages: the manifest
rows, the checksums and the zip's central directory are spooled to unnamed files in the
archive's spool folder (services.archive.evidence, services.archive.zip_stream), which are
gone when the export ends, complete or not. Litigation exports of a million messages must
fit an appliance with 1 GiB."""
import csv
import hashlib
import io
import json
import subprocess
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from services.archive.evidence import EmptyExport, sums_of, write_export
from services.archive.search_snapshot import stored_messages
from services.archive.store import Store
from services.policy import audit, exports
from services.policy.audit import Actor
from tests.unit.archive.test_zip_stream import Unseekable, checked_by_every_reader, open_in

pytestmark = pytest.mark.integration
ACTOR = Actor("auditor1", "auditor")
FEW, MANY = 500, 4_500
# What 4,000 messages more may add to the peak of Python's allocations: the old writer
# kept about 1.4 KB a message (manifest row, checksum, seen digest, ZipInfo; measured
# 139 MB for 100,000), 5.5 MB here; this one keeps a counter. (Small, because tracing
# every allocation makes an export some ten times slower.)
GROWTH_BOUND = 1 * 2**20


def raw_message(n: int) -> bytes:
    return (f"From: sender{n % 97}@example.com\r\nTo: rcpt{n}@example.org\r\n"
            f"Subject: =?utf-8?q?Bericht_{n}?=\r\nMessage-ID: <m{n}@example.com>\r\n"
            f"Date: Tue, 01 Feb 2022 10:00:00 +0000\r\n\r\nBody {n}\r\n").encode()


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A real store holding MANY small messages, and their digests in the order put."""
    data = tmp_path_factory.mktemp("export-memory") / "data"
    store = Store(data / "store", map_size=2**30)
    digests = []
    for start in range(0, MANY, 2000):
        outcomes = store.put_many((raw_message(n), None, "import")
                                  for n in range(start, min(start + 2000, MANY)))
        digests += [outcome.digest for outcome in outcomes]
    yield store, digests
    store.close()


class Discarding:
    """An unseekable sink that keeps the SHA-256 of what it was given, not the bytes."""

    def __init__(self):
        self.hashing, self.size = hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.hashing.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass


def peak_of_export(store: Store, digests: list[str], fmt: str) -> int:
    """The peak of Python's allocations while exporting `digests` from `store`."""
    info = exports.new_info(store, ACTOR, fmt, query="")
    messages = stored_messages(store, digests)
    tracemalloc.start()
    try:
        exports.export(store, ACTOR, info, messages, Discarding())
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["zip", "mbox"])
def test_memory_does_not_grow_with_the_number_of_messages(stored, fmt):
    store, digests = stored
    few = peak_of_export(store, digests[:FEW], fmt)
    many = peak_of_export(store, digests, fmt)
    assert many - few < GROWTH_BOUND, (few, many)


def test_a_big_export_reads_back_whole_and_leaves_no_spooled_file(stored, tmp_path):
    store, digests = stored
    info = exports.new_info(store, ACTOR, "zip", query="")
    path = tmp_path / "export.zip"
    with path.open("wb") as out:
        result = exports.export(store, ACTOR, info, stored_messages(store, digests),
                                Unseekable(out))
    spool = Path(store.path).parent / "spool"
    assert open_in(spool) == 0 and not list(spool.iterdir())
    checked_by_every_reader(path)
    with zipfile.ZipFile(path) as archive:
        sums = archive.read("SHA256SUMS")
        rows = list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode())))
        assert json.loads(archive.read("export.json"))["messages"] == MANY
        for name in ("manifest.csv", "export.json", f"messages/{digests[-1]}.eml"):
            assert sums_of(sums.decode())[name] == hashlib.sha256(archive.read(name)).hexdigest()
    assert result.messages == len(rows) == MANY == len(sums_of(sums.decode())) - 2
    assert [row["digest"] for row in rows] == digests
    assert rows[-1]["subject"] == f"Bericht {MANY - 1}"
    assert hashlib.sha256(sums).hexdigest() == result.manifest_sha256
    entry = audit.entries(store)[-1]
    assert entry["action"] == "export" and entry["details"]["messages"] == MANY
    assert entry["details"]["manifest_sha256"] == result.manifest_sha256


@pytest.mark.parametrize("fmt", ["zip", "mbox"])
def test_an_export_cut_short_leaves_no_spooled_file_and_is_recorded(stored, fmt):
    store, digests = stored

    class ClientGone(Discarding):
        def write(self, data):
            if self.size > 200_000:
                assert open_in(spool) >= 3  # CSV, checksums, central directory: all unnamed
                assert not list(spool.iterdir())
                raise ConnectionResetError("the client went away")
            return super().write(data)

    spool = Path(store.path).parent / "spool"
    info = exports.new_info(store, ACTOR, fmt, query="")
    with pytest.raises(ConnectionResetError):
        exports.export(store, ACTOR, info, stored_messages(store, digests), ClientGone())
    assert open_in(spool) == 0 and not list(spool.iterdir())
    entry = audit.entries(store)[-1]
    assert (entry["action"], entry["details"]["export"]) == ("export-failed", info.export_id)


def test_a_selection_naming_a_message_twice_exports_it_once(stored):
    store, digests = stored
    chosen = [digests[5], digests[7], digests[5], digests[7], digests[9]]
    info = exports.new_info(store, ACTOR, "zip", selection=chosen)
    out = io.BytesIO()
    result = write_export(stored_messages(store, chosen), Unseekable(out), info)
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
    assert result.messages == 3
    assert names[:3] == [f"messages/{digests[n]}.eml" for n in (5, 7, 9)]
    with pytest.raises(EmptyExport):
        write_export(iter(()), Unseekable(io.BytesIO()), info)


@pytest.mark.slow
def test_archiver_export_of_thousands_is_whole(archiver, tmp_path):
    """End to end: import an mbox of 3,000 messages, `archiver export` them all."""
    count = 3000
    mbox = tmp_path / "in.mbox"
    with mbox.open("wb") as out:
        for n in range(count):
            out.write(b"From sender@example.com Tue Feb  1 10:00:00 2022\n"
                      + raw_message(n).replace(b"\r\n", b"\n") + b"\n")
    data = tmp_path / "data"
    archiver("import", "--data", data, "--json", mbox, check=0)
    out = tmp_path / "all.zip"
    done = archiver("export", "", "--format", "zip", "-o", out, "--data", data, "--json", check=0)
    summary = json.loads(done.stdout)
    assert summary["exported"] == count
    checked_by_every_reader(out)
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
        sums = archive.read("SHA256SUMS")
    assert len(names) == count + 3
    assert hashlib.sha256(sums).hexdigest() == summary["manifest_sha256"]
    assert not list((data / "spool").iterdir())
    done = subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=_unpacked(out),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def _unpacked(path: Path) -> Path:
    folder = path.with_suffix("")
    with zipfile.ZipFile(path) as archive:
        archive.extractall(folder)
    return folder
