"""Review r25 (commit f6392f1): a message of a share of the model's limit or more
(ROOM_SHARE: a quarter then, now half, 50 MiB on --model 450) is stored with no extraction
workers and no fork server beside it, and indexed before the next is read
(IndexingAlongside.make_room). F2 (Ctrl-C while waiting for room hung the import) is
fixed; F3 (26 MiB messages imported at half the speed) by the threshold at half the limit
(measured, not asserted: timings belong in the bench); F1 (a 100 MiB message inside an
mbox: ~510 MB, the mbox reader's buffer and copies held while it is stored and indexed) is
fixed: a large block is spilled out of the reader's buffer as it is read and handed over
without a copy, unquoted where it is, and nothing holds a message once it is yielded
(231 MB)"""
from __future__ import annotations

import base64
import json
import mailbox
import os
import random
import subprocess
import time
from pathlib import Path

from tests.bench.measure import run_measured
from tests.conftest import ARCHIVER

MiB = 1 << 20
BOUND_MB = 256  # the model 450's memory bound (#20)
ROOM = 50 * MiB  # 100 MiB // ROOM_SHARE
# The archiver script imports services from where the venv points (/work/main): run the
# code of this checkout instead.
ENV = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[3]))


def message_of(size: int, number: int, rng: random.Random) -> bytes:
    """A message of exactly `size` bytes: a base64 attachment of random data, spelled
    plainly (whole 78-byte lines), the bytes left over taken by an X-Pad header."""
    head = (b"From: a@example.org\r\nSubject: big%d\r\nMessage-ID: <big%d@example.org>\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=sep\r\n"
            % (number, number))
    mid = (b"\r\n--sep\r\nContent-Type: text/plain\r\n\r\nsee the file\r\n--sep\r\n"
           b"Content-Type: application/octet-stream; name=f.bin\r\n"
           b"Content-Transfer-Encoding: base64\r\n"
           b"Content-Disposition: attachment; filename=f.bin\r\n\r\n")
    tail = b"\r\n--sep--\r\n"
    lines = (size - len(head) - len(mid) - len(tail) - 200) // 78
    encoded = base64.encodebytes(rng.randbytes(lines * 57)).replace(b"\n", b"\r\n")
    pad = size - len(head) - len(mid) - len(tail) - len(encoded) - len(b"X-Pad: \r\n")
    raw = head + b"X-Pad: " + b"p" * pad + b"\r\n" + mid + encoded[:-2] + b"\r\n" + tail
    assert len(raw) == size, (len(raw), size)
    return raw


def small(number: int) -> bytes:
    return (b"From: a@example.org\r\nSubject: s%d\r\nMessage-ID: <s%d@example.org>\r\n\r\n"
            b"small body %d\r\n" % (number, number, number))


def run_import(tmp_path, source: Path):
    start = time.monotonic()
    measured = run_measured(
        [str(ARCHIVER), "import", "--model", "450", "--data", str(tmp_path / "data"),
         "--json", str(source)], env=ENV)
    return measured, time.monotonic() - start


def counts_of(measured) -> dict:
    return json.loads(measured.stdout.decode().strip().splitlines()[-1])


def imported_within_the_bound(tmp_path, source: Path, count: int) -> None:
    """`archiver import --model 450` of `source`: all `count` imported and indexed, at a
    tree Pss peak under BOUND_MB."""
    measured, seconds = run_import(tmp_path, source)
    print("seconds", round(seconds, 1), "peak", measured.tree_pss_peak_mb,
          measured.tree_roles_at_pss_peak)
    assert measured.exit_code == 0, measured.stderr
    counts = counts_of(measured)
    assert (counts["imported"], counts["indexed"]) == (count, count)
    assert measured.tree_pss_peak_mb < BOUND_MB, measured.tree_roles_at_pss_peak


def maildir_of(tmp_path, raw: bytes) -> Path:
    """A Maildir (tmp_path / "mail") holding the one message `raw`."""
    maildir = tmp_path / "mail"
    for folder in ("cur", "new", "tmp"):
        (maildir / folder).mkdir(parents=True)
    (maildir / "new" / "1.eml").write_bytes(raw)
    return maildir


def searched(tmp_path, query: str) -> list[dict]:
    """The hits of `archiver search QUERY --json` in the archive run_import made."""
    found = subprocess.run([str(ARCHIVER), "search", query, "--data", str(tmp_path / "data"),
                            "--json"], capture_output=True, text=True, env=ENV, timeout=120)
    assert found.returncode == 0, found.stderr
    return [json.loads(line) for line in found.stdout.splitlines() if '"digest"' in line]


def test_review_r25_import_of_messages_just_under_the_room_share_stays_within_the_bound(
        tmp_path):
    """Three messages of 50 MiB - 1 byte (one under ROOM_SHARE's threshold): batched as
    before, workers extracting the one before while main reads and stores the next."""
    maildir = tmp_path / "maildir"
    mailbox.Maildir(maildir, create=True)
    rng = random.Random(25)
    for number in range(3):
        (maildir / "new" / f"{number}.big:2,").write_bytes(message_of(ROOM - 1, number, rng))
    imported_within_the_bound(tmp_path, maildir, 3)


def test_review_r25_import_of_a_100_mib_message_inside_a_zip_stays_within_the_bound(
        tmp_path):
    """A zip of 200 small .eml members, one of 100 MiB - 4 KiB (stored), then 20 small."""
    import zipfile
    rng = random.Random(27)
    with zipfile.ZipFile(tmp_path / "in.zip", "w", zipfile.ZIP_STORED) as archive:
        for number in range(200):
            archive.writestr(f"a{number:04d}.eml", small(number))
        archive.writestr("b.eml", message_of(100 * MiB - 4096, 0, rng))
        for number in range(200, 220):
            archive.writestr(f"c{number:04d}.eml", small(number))
    imported_within_the_bound(tmp_path, tmp_path / "in.zip", 221)


def test_review_r25_import_of_a_100_mib_message_inside_an_mbox_stays_within_the_bound(
        tmp_path):
    """An mbox of 200 small messages, one of 100 MiB - 4 KiB, then 20 small, and the same
    with the large one last (the block read to the end of the file). F1: 508-515 MB (the
    reader's buffer, its block and the message, each of 100 MiB, held while the message was
    stored and while its extraction was waited for)."""
    imported_from_an_mbox(tmp_path, b"see the file")


def test_review_r25_a_100_mib_message_with_a_quoted_from_line_inside_an_mbox(tmp_path):
    """The same with a ">From " line in the large message: unquoted where it is (an
    unquoted copy beside it took the peak to 240-310 MB, by when the copy was made)."""
    imported_from_an_mbox(tmp_path, b">From here")


def imported_from_an_mbox(tmp_path, first_body_line: bytes) -> None:
    rng = random.Random(26)
    large = message_of(100 * MiB - 4096, 0, rng).replace(b"see the file", first_body_line)
    smalls = [small(number) for number in range(220)]
    for name, messages in (("middle", [*smalls[:200], large, *smalls[200:]]),
                           ("last", [*smalls[:200], large])):
        with open(tmp_path / f"{name}.mbox", "wb") as mbox_file:
            for raw in messages:
                mbox_file.write(b"From a@example.org Sat Jan  3 01:05:34 2026\n" + raw + b"\n")
        imported_within_the_bound(tmp_path / name, tmp_path / f"{name}.mbox", len(messages))


def test_review_r25_ctrl_c_while_waiting_for_room_exits_130_and_the_next_import_indexes_all(
        tmp_path):
    """SIGINT at a few moments of an import of two 51 MiB messages (each stored alone,
    make_room waiting before and after): exit 130 soon, and the next import stores the
    rest and leaves nothing pending. F2: at 0.8 s (main in make_room) the import never
    ends: _run_workers clears _arrived after _end() set it (room_wanted was read before
    _stopping), then waits on _arrived for ever, and main on _done (a second Ctrl-C is
    caught there too): only SIGKILL ends it. faulthandler (SIGABRT) shows the thread at
    _run_workers' self._arrived.wait(), main at _end's self._done.wait(). 3 of 3 runs;
    at a3b8402 the test passes."""
    import signal
    import subprocess
    from services.archive.archive import Archive
    from services.archive.indexer import status
    maildir = tmp_path / "maildir"
    mailbox.Maildir(maildir, create=True)
    rng = random.Random(28)
    for number in range(2):
        (maildir / "new" / f"{number}.big:2,").write_bytes(message_of(ROOM + MiB, number, rng))
        (maildir / "new" / f"{number}.small:2,").write_bytes(small(number))
    for delay in (0.8, 1.6):
        data = tmp_path / f"data{delay}"
        command = [str(ARCHIVER), "import", "--model", "450", "--data", str(data), "--json",
                   str(maildir)]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env=ENV)
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        try:
            _, err = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:  # hung: the thread waits for _arrived, main for it
            process.kill()
            process.communicate()
            raise AssertionError(f"SIGINT at {delay} s: the import still runs 20 s later")
        assert process.returncode in (130, 0), (delay, process.returncode, err[-2000:])
        again = subprocess.run(command, capture_output=True, timeout=60, env=ENV)
        assert again.returncode == 0, again.stderr[-2000:]
        counts = json.loads(again.stdout.decode().strip().splitlines()[-1])
        assert counts["imported"] + counts["duplicates"] == 4, counts
        archive = Archive(data, "450")
        assert status(archive.store, archive.index_dir()).pending == 0, delay
        archive.close()
