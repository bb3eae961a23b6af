"""`archiver import` onto a data disk that fills up: it stops at the first write that
cannot be made, says so in one line and exits 75; run again once there is room, it goes on
where it stopped, storing nothing twice. The disk is a real, small ext4 (tests/integration/
small_disk.py), so the failures are LMDB's and Xapian's own."""
import json
import mailbox
import random
import re
from email.message import EmailMessage
from pathlib import Path

import lmdb
import pytest

from services.archive import retired_index
from services.archive.space import is_out_of_space
from services.archive.store import DiskFullError, Store, digest_of
from tests import search_output
from tests.integration.small_disk import SmallDisk

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
COUNT = 400
STOP_LINE = re.compile(
    r"archiver: import stopped: the store's disk is full \([\d.]+ \w+ free\); (\d+) messages "
    r"stored, stopped at (.+); the (\d+) left need about ([\d.]+ \w+) more: make room, then "
    r"run the same import again")


def message(n: int, attachment_bytes: int = 30_000, words: int = 20) -> bytes:
    """A message with a searchable marker and an incompressible attachment (no text to
    index); `words` random words of body make its index entry as large as wanted."""
    rng = random.Random(n)
    msg = EmailMessage()
    msg["From"], msg["To"] = f"sender{n % 7}@example.org", "archive@example.com"
    msg["Subject"], msg["Message-ID"] = f"disk test {n}", f"<disk{n}@example.org>"
    body = " ".join(f"w{rng.randrange(10**9)}" for _ in range(words))
    msg.set_content(f"marker{n} {body}\n")
    msg.add_attachment(rng.randbytes(attachment_bytes), maintype="application",
                       subtype="octet-stream", filename=f"blob{n}.bin")
    return msg.as_bytes().replace(b"\n", b"\r\n")


def write_mail(kind: str, where: Path, raws: list[bytes]) -> tuple[Path, list[str]]:
    """The messages as a Maildir or an mbox; returns the path and each message's label as
    import names it ("FILE" or "MBOX#N"), in the order import takes them."""
    if kind == "maildir":
        for sub in ("cur", "new", "tmp"):
            (where / sub).mkdir(parents=True)
        paths = [where / "cur" / f"{n:06d}.eml:2,S" for n in range(len(raws))]
        for path, raw in zip(paths, raws):
            path.write_bytes(raw)
        return where, [str(path) for path in paths]
    box = mailbox.mbox(where)
    for raw in raws:
        box.add(raw)
    box.flush()
    return where, [f"{where}#{n + 1}" for n in range(len(raws))]


@pytest.fixture
def disk(tmp_path):
    with SmallDisk(tmp_path / "disk", 40) as small:
        yield small


def stored_digests(data: Path) -> set[str]:
    store = Store(data / "store", map_size=4 * 1024**3)
    try:
        return set(store.digests())
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["maildir", "mbox"])
def test_import_stops_at_the_first_write_that_fails_and_goes_on_after_room_is_made(
        archiver, disk, tmp_path, kind):
    raws = [message(n) for n in range(COUNT)]
    source, labels = write_mail(kind, tmp_path / kind, raws)
    data = disk.mount_point / "data"
    disk.fill(leave_bytes=8 * MiB)  # room for about half of them

    stopped = archiver("import", source, "--data", data, "--json", check=75)
    assert "Traceback" not in stopped.stderr
    (line,) = stopped.stderr.splitlines()  # one line, and it says it all
    count, where, left, _ = STOP_LINE.fullmatch(line).groups()
    count, left = int(count), int(left)
    assert 0 < count < COUNT and left == COUNT - count
    assert where == labels[count]  # the first message not stored
    summary = json.loads(stopped.stdout)
    assert summary["stopped"]["stored"] == count == summary["imported"]
    assert stored_digests(data) == {digest_of(raw) for raw in raws[:count]}
    assert archiver("verify", "--data", data, check=0).stdout.strip().endswith(
        f"checked {count} messages, 0 corrupt")
    before = json.loads(archiver("stats", "--data", data, "--json", check=0).stdout)

    disk.release()
    again = json.loads(archiver("import", source, "--data", data, "--json", check=0).stdout)
    assert again == {"imported": COUNT - count, "duplicates": count, "merged": 0, "failed": 0,
                     "skipped": 0, "problems": [], "indexed": COUNT}
    assert stored_digests(data) == {digest_of(raw) for raw in raws}
    stats = json.loads(archiver("stats", "--data", data, "--json", check=0).stdout)
    assert (stats["stored"], stats["indexed"], stats["pending"]) == (COUNT, COUNT, 0)
    grown = stats["stored_bytes"] - before["stored_bytes"]
    assert 0.8 * grown <= summary["stopped"]["needed_bytes"] <= 1.25 * grown  # "about"
    assert archiver("verify", "--data", data, check=0).stdout.strip().endswith(
        f"checked {COUNT} messages, 0 corrupt")
    hits = search_output.hits(archiver("search", f"marker{COUNT - 1} OR marker0 OR "
                                                 f"marker{count}", "--data", data, "--json",
                                       check=0).stdout)
    assert len(hits) == 3


def test_the_text_line_without_json_names_the_same_and_no_traceback(archiver, disk, tmp_path):
    source, labels = write_mail("maildir", tmp_path / "maildir",
                                [message(n) for n in range(200)])
    data = disk.mount_point / "data"
    disk.fill(leave_bytes=3 * MiB)
    done = archiver("import", source, "--data", data, check=75)
    assert "Traceback" not in done.stderr and done.stdout == ""
    match = STOP_LINE.fullmatch(done.stderr.splitlines()[-1])  # progress lines come before
    assert match and match.group(2) == labels[int(match.group(1))]


@pytest.mark.slow
def test_indexing_that_runs_out_of_room_stops_the_import_and_the_next_one_finishes_it(
        archiver, disk, tmp_path):
    # Bodies of many distinct words: their index takes far more room than the store.
    raws = [message(n, attachment_bytes=100, words=200) for n in range(200)]
    source, _ = write_mail("maildir", tmp_path / "maildir", raws)
    data = disk.mount_point / "data"
    archiver("import", source, "--data", data, "--no-index", check=0)
    disk.fill(leave_bytes=2 * MiB)

    done = archiver("import", source, "--data", data, "--json", check=75)
    (line,) = done.stderr.splitlines()
    assert line.startswith("archiver: import stored all 200 messages, but indexing stopped: "
                           "data disk ")
    assert re.search(r"data disk (low|full): [\d.]+ \w+ free of [\d.]+ MiB", line)
    assert "Traceback" not in done.stderr

    stopped = json.loads(archiver("stats", "--data", data, "--json", check=0).stdout)
    assert stopped["indexed"] < 200  # commits that fit were made (smaller ones), no more
    disk.release()
    finished = json.loads(archiver("import", source, "--data", data, "--json", check=0).stdout)
    assert finished["indexed"] == 200 - stopped["indexed"] and finished["duplicates"] == 200
    stats = json.loads(archiver("stats", "--data", data, "--json", check=0).stdout)
    assert (stats["stored"], stats["indexed"], stats["pending"]) == (200, 200, 0)
    assert len(search_output.hits(archiver("search", "marker0 OR marker199", "--data", data,
                                           "--json", check=0).stdout)) == 2


@pytest.mark.parametrize("kind", ["ext4", "tmpfs"])
def test_the_store_on_a_full_disk_says_so_keeps_all_it_had_and_takes_mail_again(tmp_path, kind):
    with SmallDisk(tmp_path / "disk", 24, kind=kind) as small:
        small.fill(leave_bytes=4 * MiB)
        store = Store(small.mount_point / "store", map_size=4 * 1024**3)
        try:
            kept = []
            with pytest.raises(DiskFullError) as full:
                for n in range(1000):
                    kept.append(store.put(message(n, attachment_bytes=100_000)))
            assert full.value.brief.startswith("the store's disk is full (")
            assert isinstance(full.value.__cause__, lmdb.Error)  # ENOSPC or a short write's EIO
            assert is_out_of_space(full.value.__cause__, small.mount_point)
            assert set(store.digests()) == set(kept) and store.verify() == []
            small.release()
            later = store.put(message(5000, attachment_bytes=100_000))
            assert set(store.digests()) == set(kept) | {later} and store.verify() == []
        finally:
            store.close()


def test_an_io_error_on_an_all_but_full_disk_is_a_full_disk(tmp_path):
    with SmallDisk(tmp_path / "disk", 40, kind="tmpfs") as small:
        short_write = lmdb.Error("mdb_txn_commit: Input/output error")
        assert not is_out_of_space(short_write, small.mount_point)
        small.fill()
        assert is_out_of_space(short_write, small.mount_point)


def searchable(archiver, data: Path) -> tuple[int, int]:
    stats = json.loads(archiver("stats", "--data", data, "--json", check=0).stdout)
    hits = archiver("search", "marker0 OR marker199", "--data", data, "--json", check=0)
    return stats["indexed"], len(search_output.hits(hits.stdout))


@pytest.mark.parametrize("leave", [0, 3 * MiB])
def test_reindex_on_a_full_disk_says_so_in_one_line_and_the_next_one_finishes(
        archiver, disk, tmp_path, leave):
    raws = [message(n, attachment_bytes=100, words=200) for n in range(200)]
    source, _ = write_mail("maildir", tmp_path / "maildir", raws)
    data = disk.mount_point / "data"
    archiver("import", source, "--data", data, check=0)
    assert searchable(archiver, data) == (200, 2)
    old = (data / "index").resolve()
    disk.fill(leave_bytes=leave)  # no room for the index being rebuilt beside the live one

    done = archiver("reindex", "--data", data, "--json", check=75)
    assert "Traceback" not in done.stderr
    assert json.loads(done.stdout)["exit_code"] == 75  # --json: the error as JSON too
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("archiver: ")]
    assert re.fullmatch(r"archiver: reindex stopped: data disk (low|full): [\d.]+ \w+ free of "
                        r"[\d.]+ MiB \(.*\); the old index still answers, .*", line), line
    assert searchable(archiver, data) == (200, 2)

    disk.release()
    assert json.loads(archiver("reindex", "--data", data, "--json", check=0).stdout)[
        "indexed"] == 200
    assert searchable(archiver, data) == (200, 2)
    # nothing the stopped reindex wrote is left; the index switched from is retired
    assert sorted(p.name for p in data.iterdir() if p.name.startswith("index.")) == \
        sorted([(data / "index").resolve().name, old.name])
    assert retired_index.retired_at(old) is not None


@pytest.mark.parametrize("where", ["data disk", "a disk of its own"])
def test_an_export_to_a_full_disk_says_so_in_one_line_and_leaves_nothing(
        archiver, disk, tmp_path, where):
    source, _ = write_mail("maildir", tmp_path / "maildir", [message(n) for n in range(200)])
    data = disk.mount_point / "data"
    archiver("import", source, "--data", data, check=0)
    with SmallDisk(tmp_path / "out", 2, kind="tmpfs") as out:
        # the export (about 6 MB) cannot fit
        if where == "data disk":
            disk.fill(leave_bytes=2 * MiB)
            output = disk.mount_point / "export.zip"
        else:
            output = out.mount_point / "export.zip"
        done = archiver("export", "", "--format", "zip", "-o", output, "--data", data,
                        check=75)
        assert "Traceback" not in done.stderr
        (line,) = [line for line in done.stderr.splitlines() if line.startswith("archiver: ")]
        # the export file fills the disk, or the store's record of the export finds it full
        assert line.startswith((f"archiver: cannot write the export to {output}: No space "
                                "left on device; nothing was left behind",
                                "archiver: the store's disk is full (")), line
        assert not output.exists()
        disk.release()
        out.grow(64)
        archiver("export", "", "--format", "zip", "-o", output, "--data", data, check=0)
        assert output.stat().st_size > 6 * MiB


def test_an_import_stores_all_that_fits_not_only_whole_batches(archiver, disk, tmp_path):
    raws = [message(n) for n in range(200)]  # one batch of import, about 6 MB
    source, labels = write_mail("maildir", tmp_path / "maildir", raws)
    data = disk.mount_point / "data"
    disk.fill(leave_bytes=5 * MiB)  # room for part of the batch

    done = archiver("import", source, "--data", data, "--json", check=75)
    (line,) = done.stderr.splitlines()
    count, where, left, _ = STOP_LINE.fullmatch(line).groups()
    count = int(count)
    assert 0 < count < 200 and int(left) == 200 - count and where == labels[count]
    assert stored_digests(data) == {digest_of(raw) for raw in raws[:count]}
    disk.release()
    again = json.loads(archiver("import", source, "--data", data, "--json", check=0).stdout)
    assert (again["imported"], again["duplicates"]) == (200 - count, count)
