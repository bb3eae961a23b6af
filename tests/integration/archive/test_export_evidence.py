"""`archiver export` writes evidence: the messages, manifest.csv, export.json and
SHA256SUMS in one zip (the web UI's download is the same), records the export in the audit
log with the manifest's digest, and never overwrites, never writes an empty export, never
prints a traceback."""
import csv
import fcntl
import hashlib
import io
import json
import re
import subprocess
import zipfile
from pathlib import Path

import pytest

from services.archive.evidence import MANIFEST_COLUMNS
from tests.integration.archive.test_archive_cli import raw_message

pytestmark = pytest.mark.integration


@pytest.fixture
def data(archiver, tmp_path):
    folder = tmp_path / "emls"
    folder.mkdir()
    for n in range(9):
        (folder / f"{n}.eml").write_bytes(raw_message(n))
    (folder / "formula.eml").write_bytes(
        b"From: =cmd|' /C calc'!A0 <evil@example.com>\nTo: sender1@example.com\n"
        b"Cc: \"Carol\" <carol@example.com>\nSubject: =HYPERLINK(\"http://x\")\n"
        b"Message-ID: <formula@example.com>\nDate: Wed, 02 Feb 2022 10:00:00 +0000\n\nx\n")
    data = tmp_path / "data"
    archiver("import", "--data", data, "--json", folder, check=0)
    return data


def audit_entries(archiver, data) -> list[dict]:
    from services.archive.store import Store
    from services.policy import audit
    store = Store(data / "store", 2**30)
    try:
        return audit.entries(store)
    finally:
        store.close()


@pytest.mark.parametrize("fmt", ["zip", "mbox"])
def test_an_export_carries_its_manifest_and_the_audit_log_its_digest(archiver, data, tmp_path,
                                                                     fmt):
    out = tmp_path / "evidence.zip"
    done = archiver("export", "sender1", "--format", fmt, "-o", out, "--data", data, "--json",
                    check=0)
    summary = json.loads(done.stdout)
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
        files = {name: archive.read(name) for name in names}
    assert {"manifest.csv", "export.json", "SHA256SUMS"} <= set(names)
    rows = list(csv.DictReader(io.StringIO(files["manifest.csv"].decode())))
    assert tuple(rows[0]) == MANIFEST_COLUMNS
    assert len(rows) == summary["exported"] == 3  # sender1: messages 1 and 8, and formula's To
    by_id = {row["message_id"]: row for row in rows}
    one = by_id["n1@example.com"]
    assert one["from"] == "sender1@example.com" and one["to"] == "rcpt1@example.com"
    assert one["subject"] == "message number 1" and one["source"] == "import"
    assert one["date"] == "2022-02-02T10:00:00Z" and one["archived_at"].endswith("Z")
    assert one["digest"] == hashlib.sha256(raw_message(1)).hexdigest()
    assert int(one["size"]) == len(raw_message(1))
    hostile = by_id["formula@example.com"]  # a spreadsheet must not take it for a formula
    assert hostile["subject"] == "'=HYPERLINK(\"http://x\")"
    assert hostile["from"].startswith("'=") and hostile["cc"] == "Carol <carol@example.com>"
    if fmt == "zip":
        assert files[one["file"]] == raw_message(1)
        assert sorted(n for n in names if n.startswith("messages/")) == sorted(
            r["file"] for r in rows)
    else:
        assert [r["file"] for r in rows] == [f"messages.mbox#{n}" for n in (1, 2, 3)]
        assert files["messages.mbox"].count(b"\nFrom ") + 1 == 3
    # every file's SHA-256, checked by sha256sum itself on the unpacked export
    unpacked = tmp_path / "unpacked"
    zipfile.ZipFile(out).extractall(unpacked)
    checked = subprocess.run(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=unpacked,
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert len(checked.stdout.splitlines()) == len(names) - 1  # all but SHA256SUMS itself
    info = json.loads(files["export.json"])
    assert info["query"] == "sender1" and info["selection"] is None
    assert info["format"] == fmt and info["messages"] == 3 and info["exported_by"]
    assert info["export"] == summary["export"]
    manifest_digest = hashlib.sha256(files["SHA256SUMS"]).hexdigest()
    assert summary["manifest_sha256"] == manifest_digest
    recorded = [e for e in audit_entries(archiver, data) if e["action"] == "export"]
    assert len(recorded) == 1
    details = recorded[0]["details"]
    assert details["manifest_sha256"] == manifest_digest
    assert details["manifest_csv_sha256"] == hashlib.sha256(files["manifest.csv"]).hexdigest()
    assert details["export"] == info["export"] and details["messages"] == 3
    assert details["query"] == "sender1"


def test_no_overwrite_no_missing_folder_no_empty_export_never_a_traceback(archiver, data,
                                                                           tmp_path):
    existing = tmp_path / "existing.zip"
    existing.write_bytes(b"precious")
    cases = [
        (existing, "", 2, "exists: an export never overwrites"),
        (tmp_path / "no" / "such" / "folder" / "x.zip", "", 2, "does not exist"),
        (tmp_path, "", 2, "is a folder"),
        (tmp_path / "empty.zip", "subject:nothingmatchesthis", 1, "matches no message"),
        # folders no one may write in: the kernel's, and a path under a file
        (Path("/proc/x.zip"), "", 2, "cannot write the export to /proc/x.zip"),
        (Path("/sys/x.zip"), "", 2, "cannot write the export to /sys/x.zip"),
        (existing / "x.zip", "", 2, "is a file, not a folder"),
    ]
    for out, query, code, says in cases:
        done = archiver("export", query, "--format", "zip", "-o", out, "--data", data,
                        check=code)
        assert says in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert existing.read_bytes() == b"precious"
    assert not (tmp_path / "empty.zip").exists()
    assert not list(tmp_path.glob(".*.part"))  # nothing half-written is left behind
    actions = [e["action"] for e in audit_entries(archiver, data)]
    assert "export" not in actions and actions.count("export-empty") == 1


@pytest.mark.parametrize("header, cell", [
    (b"From: @csv3@example.org", "'@csv3@example.org"),  # kept, and made spreadsheet-safe
    (b"From: <>", "<>"),
    (b"From: Undisclosed:;", "Undisclosed:;"),
])
def test_a_from_that_cannot_be_parsed_keeps_its_text_in_the_manifest(header, cell):
    from services.archive.evidence import manifest_row, spreadsheet_safe
    raw = header + b"\r\nTo: a@example.com\r\nSubject: s\r\n\r\nbody\r\n"
    row = manifest_row("messages/x.eml", "x", raw, {})
    assert spreadsheet_safe(row["from"]) == cell and row["to"] == "a@example.com"


MBOX_CORPUS = {  # what mboxrd cannot keep as it is: each must still be checkable
    "no-final-newline": b"From: a@x.com\nTo: t@x.com\nSubject: cut\n\nno line break at the end",
    "crlf-no-final": b"From: a@x.com\r\nTo: t@x.com\r\nSubject: crlf\r\n\r\nbody\r\nend",
    "ends-in-cr": b"From: a@x.com\nTo: t@x.com\nSubject: cr\n\nbody\r",
    "from-lines": b"From: a@x.com\nTo: t@x.com\nSubject: quoted\n\nFrom here\n>From there\n"
                  b">>From far\nFrom \n",
    "blank-end": b"From: a@x.com\nTo: t@x.com\nSubject: blank\n\nbody\n\n\n",
    "bare-cr": b"From: a@x.com\nTo: t@x.com\nSubject: cr\n\nline\r>From here\rFrom x\n",
}


def test_each_message_of_an_mbox_export_checks_against_its_digest_as_export_json_says(
        archiver, tmp_path):
    """mboxrd adds a line break to a message without one: the auditor found it did not
    match its digest, and nothing said how to check it. export.json now says how, and
    this follows that recipe as a third party would."""
    folder, data, out = tmp_path / "mbox-corpus", tmp_path / "mbox-data", tmp_path / "e.zip"
    folder.mkdir()
    for name, raw in MBOX_CORPUS.items():
        (folder / f"{name}.eml").write_bytes(raw)
    archiver("import", "--data", data, folder, check=0)
    archiver("export", "to:t@x.com", "--format", "mbox", "-o", out, "--data", data, check=0)
    with zipfile.ZipFile(out) as archive:
        mbox = archive.read("messages.mbox")
        rows = list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode())))
        info = json.loads(archive.read("export.json"))
    assert "cut it to its size" in info["mbox"] and "unquote" in info["mbox"]
    recovered = _mboxrd_messages(mbox)
    assert len(recovered) == len(rows) == len(MBOX_CORPUS)
    for row, quoted in zip(rows, recovered):
        message = _unquoted(quoted)[:int(row["size"])]
        assert hashlib.sha256(message).hexdigest() == row["digest"], row["subject"]
    assert sorted(row["digest"] for row in rows) == sorted(
        hashlib.sha256(raw).hexdigest() for raw in MBOX_CORPUS.values())


def _mboxrd_messages(mbox: bytes) -> list[bytes]:
    """Each message's quoted bytes. The writer puts a From_ line, the message ending in a
    line break, then a blank line; quoting leaves no line beginning "From " inside a
    message, so "\n\nFrom " is found only between two messages."""
    assert mbox.startswith(b"From ") and mbox.endswith(b"\n\n")
    chunks = mbox[:-1].split(b"\n\nFrom ")  # the last one without its blank line
    bodies = [chunk.split(b"\n", 1)[1] for chunk in chunks]  # each From_ line dropped
    return [body + b"\n" for body in bodies[:-1]] + bodies[-1:]


def _unquoted(message: bytes) -> bytes:
    return re.sub(rb"(?m)^>(>*From )", rb"\1", message)


def test_an_export_removes_what_an_export_of_its_name_killed_midway_left(archiver, data,
                                                                           tmp_path):
    """An export killed midway (SIGKILL) left a hidden .NAME.zip.XXXXXXXX.part for ever.
    The next export to that name removes those unchanged for STALE_PART_S; nothing else."""
    import os
    from services.common.atomic_file import STALE_PART_S
    out = tmp_path / "out"
    out.mkdir()
    old = os.stat(out).st_mtime - STALE_PART_S - 60
    names = {".e.zip.abc_1234.part": False, ".e.zip.zzzzzzzz.part": False,  # stale: removed
             ".e.zip.fresh123.part": True,  # being written, maybe
             ".e.zip.nobody12.part": True,  # another user's, in a shared folder
             ".e.zip.locked12.part": True,  # a live writer's, stopped for half an hour
             ".f.zip.abcd1234.part": True, ".e.zip.abc.part": True, "e.zip.abcd1234.part": True,
             ".e.zip.abcd1234.part.keep": True, ".e.zip.abcd12345.part": True}
    for name in names:
        (out / name).write_bytes(b"half an export")
        if name != ".e.zip.fresh123.part":
            os.utime(out / name, (old, old))
    os.chown(out / ".e.zip.nobody12.part", 65534, 65534)
    (out / ".e.zip.link1234.part").symlink_to(out / ".f.zip.abcd1234.part")
    os.utime(out / ".e.zip.link1234.part", (old, old), follow_symlinks=False)
    with open(out / ".e.zip.locked12.part", "rb") as live:
        fcntl.flock(live.fileno(), fcntl.LOCK_EX)  # as new_file_output's writer holds it
        archiver("export", "", "--format", "zip", "-o", out / "e.zip", "--data", data, check=0)
    assert sorted(path.name for path in out.iterdir()) == sorted(
        [name for name, kept in names.items() if kept] + ["e.zip", ".e.zip.link1234.part"])


def test_an_export_holds_a_lock_on_its_part_while_it_writes(tmp_path):
    """What tells a live writer's part (even a stopped writer's) from a dead one's."""
    from services.common.atomic_file import new_file_output
    with new_file_output(tmp_path / "e.zip") as output:
        (part,) = [path for path in tmp_path.iterdir() if path.name.endswith(".part")]
        with open(part, "rb") as other:
            with pytest.raises(BlockingIOError):
                fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        output.write(b"done")
    assert (tmp_path / "e.zip").read_bytes() == b"done"


def test_an_export_whose_file_cannot_be_put_in_place_is_recorded_as_failed(archiver, tmp_path):
    """An export whose file is then not put in place is recorded as failed: here another
    writer takes the export's name while it writes (its last step, the hard link, refuses to
    replace that file)."""
    import base64
    import os
    import signal
    import time
    emls = tmp_path / "emls"
    emls.mkdir()
    attachment = base64.encodebytes(os.urandom(12 * 2**20))  # long enough to catch it writing
    (emls / "big.eml").write_bytes(
        b"From: a@example.com\nTo: b@example.com\nSubject: big\nMessage-ID: <big@example.com>\n"
        b"MIME-Version: 1.0\nContent-Type: application/octet-stream\n"
        b"Content-Transfer-Encoding: base64\n\n" + attachment)
    data = tmp_path / "data"
    archiver("import", "--data", data, emls, check=0)
    out = tmp_path / "out"
    out.mkdir()
    target = out / "e.zip"
    from tests.conftest import ARCHIVER
    writer = subprocess.Popen([str(ARCHIVER), "export", "", "--format", "zip", "-o", target,
                               "--data", data], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob(".e.zip.*.part")) and writer.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.001)
        writer.send_signal(signal.SIGSTOP)  # while it writes: the other writer comes now
        assert not target.exists()
        target.write_bytes(b"the other writer's")
        writer.send_signal(signal.SIGCONT)
        _, stderr = writer.communicate(timeout=120)
    finally:
        writer.kill()
    assert writer.returncode == 2, stderr
    assert "exists: an export never overwrites" in stderr and "Traceback" not in stderr
    assert target.read_bytes() == b"the other writer's"
    assert not list(out.glob(".*.part"))
    # recorded before it is put in place (never a file in place unrecorded), then failed
    entries = [e for e in audit_entries(archiver, data) if e["action"].startswith("export")]
    assert [e["action"] for e in entries] == ["export", "export-failed"], entries
    assert entries[0]["details"]["export"] == entries[1]["details"]["export"]
    assert "OutputExists" in entries[1]["details"]["reason"], entries[1]


FAILING_FOLDER_SYNC = """
import os, sys
from pathlib import Path
from services.common import atomic_file
synced = atomic_file.fsync_path
def fsync_path(path):
    if Path(path) == Path(sys.argv[1]):
        raise OSError(5, "Input/output error")
    return synced(path)
atomic_file.fsync_path = fsync_path
from services.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def test_an_export_whose_folder_cannot_be_synced_leaves_no_file_behind(archiver, data, tmp_path):
    """The last step of putting an export in place, syncing its folder after the link, can
    fail (EIO): the export was recorded "export-failed" and the command said it could not
    write the export, yet the file stayed in place, an export the log says failed."""
    import os
    import sys
    out = tmp_path / "out"
    out.mkdir()
    target = out / "e.zip"
    done = subprocess.run([sys.executable, "-c", FAILING_FOLDER_SYNC, str(out), "export", "",
                           "--format", "zip", "-o", str(target), "--data", str(data)],
                          capture_output=True, text=True, env=os.environ, timeout=120)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert "Input/output error" in done.stderr, done.stderr
    actions = [e["action"] for e in audit_entries(archiver, data)
               if e["action"].startswith("export")]
    assert actions == ["export", "export-failed"], actions
    assert not target.exists()  # nothing in place that the log says failed
    assert not list(out.glob(".*.part"))
