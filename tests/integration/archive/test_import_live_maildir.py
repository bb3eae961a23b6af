"""`archiver import` of a Maildir a server is delivering into and a client is flagging, as an
admin imports a user's Maildir from a running Dovecot.

A live Maildir changes only by rename (https://cr.yp.to/proto/maildir.html): the server moves
a message from new/ to cur/ once a client has seen it ("UNIQUE" -> "UNIQUE:2,"), and a flag
change renames it in cur/ ("UNIQUE:2,S" -> "UNIQUE:2,RS"); the unique name before the ":"
stays. These tests make those renames at the worst moments: just before the import opens a
message it has listed (its reader's open_file, wrapped), while it lists a folder (os.scandir,
wrapped), and from a thread all through a real `archiver import` process. Every message must
be imported, and none reported as failed. Each test failed before the walk listed new/ before
cur/, and each range of a folder's names again until a listing showed nothing unread, at once
when a message was not found where it had been listed (services.archive.mailtree).
"""
import hashlib
import json
import os
import random
import subprocess
import threading
import time

import pytest

from services.archive import mailfiles, mailtree
from services.cli import archive as archive_cli
from services.cli.main import main
from tests.conftest import ARCHIVER
from tests.integration.archive.test_archive_cli import digests_of, raw_message

pytestmark = pytest.mark.integration


def make_maildir(root, names: list[str]):
    """A Maildir holding raw_message(n) as names[n] ("new/UNIQUE" or "cur/UNIQUE:2,FLAGS")."""
    for part in ("cur", "new", "tmp"):
        (root / part).mkdir(parents=True)
    for n, name in enumerate(names):
        (root / name).write_bytes(raw_message(n))
    return root


def changing_before_reading(monkeypatch, root, changes: dict[str, list[tuple[str, str | None]]]):
    """Before the import opens the Maildir file NAME, rename each (FROM, TO) of changes[NAME]
    (names relative to `root`; TO None deletes FROM), once, as the server would."""
    real, changes = mailfiles.open_file, dict(changes)  # not the parameter's own, shared

    def opening(found):
        for source, target in changes.pop(str(found.path.relative_to(root)), ()):
            if target is None:
                os.unlink(root / source)
            else:
                os.rename(root / source, root / target)
        return real(found)
    monkeypatch.setattr(mailfiles, "open_file", opening)


def changing_while_listing(monkeypatch, root, old: str, new: str):
    """The import's first listing of the folder holding file `old`, once its counting pass
    is done, renames it to `new` (names relative to `root`) as it goes, and shows neither
    name: as ext4 may, which lists a directory in hash order, when the new name lands where
    the listing has been already."""
    real_scandir, real_count = os.scandir, archive_cli.count_mail
    name, pending = old.rpartition("/")[2], []

    def scandir(directory):
        listing = Listing(real_scandir(directory))
        if pending and any(entry.name == name for entry in listing):
            pending.clear()
            os.rename(root / old, root / new)
            listing = Listing(entry for entry in listing if entry.name != name)
        return listing

    def count_mail(paths, mbox_ends=None, **options):  # max_bytes, as import gives it
        total = real_count(paths, mbox_ends=mbox_ends, **options)
        pending.append(True)
        return total
    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(archive_cli, "count_mail", count_mail)


class Listing(list):
    """Entries of a directory, read whole, in place of os.scandir's iterator."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False


def import_in_process(capsys, data, root) -> tuple[int, dict]:
    """The import's exit code and its --json summary (run by services.cli.main, here)."""
    code = main(["import", "--json", "--no-index", "--data", str(data), str(root)])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("moment", ["new/b", "cur/a:2,S"])
def test_a_message_moved_from_new_to_cur_is_imported_whenever_it_moves(
        tmp_path, monkeypatch, capsys, moment):
    """Moved just before it is read from new/ (it was 'failed: no such file'), or while cur/
    is read, before new/ is listed (it was missed, and nothing said so)."""
    root = make_maildir(tmp_path / "Maildir", ["cur/a:2,S", "new/b"])
    changing_before_reading(monkeypatch, root, {moment: [("new/b", "cur/b:2,S")]})
    code, summary = import_in_process(capsys, tmp_path / "data", root)
    assert (code, summary["imported"], summary["failed"], summary["problems"]) == (0, 2, 0, [])


@pytest.mark.parametrize("chunk", [1, 2, mailtree.LISTING_CHUNK])
@pytest.mark.parametrize("changes", [
    {"cur/b:2,S": [("cur/b:2,S", "cur/b:2,RS")]},  # the new name sorts before the old one
    {"cur/b:2,S": [("cur/b:2,S", "cur/b:2,ST")]},  # after it
    {"cur/b:2,S": [("cur/b:2,S", "cur/b:2,RS")],  # and again once listed anew
     "cur/b:2,RS": [("cur/b:2,RS", "cur/b:2,S")]},
], ids=["sorts-before", "sorts-after", "twice"])
def test_a_message_whose_flags_change_before_it_is_read_is_read_under_its_new_name(
        tmp_path, monkeypatch, capsys, chunk, changes):
    """Renamed between its listing and its reading, in a folder listed whole or a chunk
    (mailtree.LISTING_CHUNK) at a time: it was 'failed: no such file', and not imported."""
    root = make_maildir(tmp_path / "Maildir", ["cur/a:2,S", "cur/b:2,S", "cur/c:2,", "new/d"])
    monkeypatch.setattr(mailtree, "LISTING_CHUNK", chunk)
    changing_before_reading(monkeypatch, root, changes)
    code, summary = import_in_process(capsys, tmp_path / "data", root)
    assert (code, summary["imported"], summary["duplicates"], summary["failed"],
            summary["problems"]) == (0, 4, 0, 0, [])


def test_a_message_moved_to_cur_then_flagged_before_it_is_read_is_imported(
        tmp_path, monkeypatch, capsys):
    root = make_maildir(tmp_path / "Maildir", ["cur/a:2,S", "new/b", "new/c"])
    changing_before_reading(monkeypatch, root, {
        "new/b": [("new/b", "cur/b:2,")],
        "cur/b:2,": [("cur/b:2,", "cur/b:2,S")]})
    code, summary = import_in_process(capsys, tmp_path / "data", root)
    assert (code, summary["imported"], summary["failed"], summary["problems"]) == (0, 3, 0, [])


@pytest.mark.parametrize("old, new", [("cur/b:2,S", "cur/b:2,RS"), ("new/b", "cur/b:2,")])
def test_a_message_renamed_while_its_folder_is_listed_is_read_from_another_listing(
        tmp_path, monkeypatch, capsys, old, new):
    """Not in the listing that was going on, under either name: it was missed, and nothing
    said so (a flag change in cur/; a move from new/, which was listed after cur/)."""
    root = make_maildir(tmp_path / "Maildir", ["cur/a:2,S", old, "cur/c:2,"])
    changing_while_listing(monkeypatch, root, old, new)
    code, summary = import_in_process(capsys, tmp_path / "data", root)
    assert (code, summary["imported"], summary["failed"], summary["problems"]) == (0, 3, 0, [])


@pytest.mark.parametrize("deleted", ["new/b", "cur/c:2,S"])
def test_a_message_deleted_before_it_is_read_is_reported_gone_not_failed(
        tmp_path, monkeypatch, capsys, deleted):
    """Deleted by its user during the import: not ours to import, and no failure of the
    import (it was 'failed: no such file', exit 1). It is reported skipped, as gone."""
    root = make_maildir(tmp_path / "Maildir", ["cur/a:2,S", "new/b", "cur/c:2,S"])
    changing_before_reading(monkeypatch, root, {deleted: [(deleted, None)]})
    code, summary = import_in_process(capsys, tmp_path / "data", root)
    assert (code, summary["imported"], summary["failed"], summary["skipped"]) == (0, 2, 0, 1)
    (problem,) = summary["problems"]
    assert problem["item"] == str(root / deleted) and problem["outcome"] == "skipped"
    assert problem["reason"].startswith("gone during the import: no longer in new/ or cur/")


def test_a_maildir_folder_deleted_during_the_import_is_reported_gone_not_failed(
        tmp_path, monkeypatch, capsys):
    """A mail client deletes a folder (IMAP DELETE) while the import reads the one before
    it: its messages are not ours to import, and the import did not fail."""
    root = tmp_path / "Maildir"
    make_maildir(root, ["cur/a:2,S"])
    make_maildir(root / ".Trash", ["cur/t:2,S"])
    gone = root / ".Trash"
    real = mailfiles.open_file

    def opening(found):
        if found.path == root / "cur/a:2,S" and gone.exists():
            subprocess.run(["rm", "-rf", str(gone)], check=True)
        return real(found)
    monkeypatch.setattr(mailfiles, "open_file", opening)
    code, summary = import_in_process(capsys, tmp_path / "data", root)
    assert (code, summary["imported"], summary["failed"], summary["skipped"]) == (0, 1, 0, 1)
    (problem,) = summary["problems"]
    assert problem["outcome"] == "skipped" and problem["item"].startswith(str(gone))
    assert problem["reason"] == "gone during the import: the folder was deleted or moved away"


class Server(threading.Thread):
    """Moves messages from new/ to cur/ and changes their flags, as Dovecot does while its
    clients read and flag mail: each a rename(2), one every `pause` seconds, until stopped."""
    FLAGS = "DFRST"  # Maildir's flags, kept in ASCII order in the info, as the spec says

    def __init__(self, root, names: list[str], pause: float = 0.0005):
        super().__init__(daemon=True)
        self.root, self.names, self.pause = root, list(names), pause
        self.renames, self.stopping, self.random = 0, threading.Event(), random.Random(16)

    def run(self):
        while not self.stopping.is_set():
            n = self.random.randrange(len(self.names))
            old = self.names[n]
            self.names[n] = new = self._seen(old) if old.startswith("new/") else self._flagged(old)
            os.rename(self.root / old, self.root / new)
            self.renames += 1
            time.sleep(self.pause)

    def _seen(self, name: str) -> str:
        return f"cur/{name[4:]}:2,"

    def _flagged(self, name: str) -> str:
        unique, _, flags = name.partition(":2,")
        flags = set(flags) ^ {self.random.choice(self.FLAGS)}
        return f"{unique}:2,{''.join(sorted(flags))}"


@pytest.mark.slow
def test_a_maildir_moved_and_flagged_through_a_whole_import_is_imported_whole(
        archiver, tmp_path):
    """Thousands of renames while a real `archiver import` reads 3000 messages, half of
    them in new/: every message is in the archive once, and the import reports no
    problem. Before, some 400 were 'failed: no such file' and some 300 missed unreported;
    with only the lost ones looked for again, one to three were still missed (renamed while
    their folder was listed)."""
    count = 3000
    names = [f"{'new' if n % 2 else 'cur'}/{1700000000 + n}.M{n}P4242.mail,S={n}"
             f"{'' if n % 2 else ':2,S'}" for n in range(count)]
    root = make_maildir(tmp_path / "Maildir", names)
    data = tmp_path / "data"
    server = Server(root, names)
    importing = subprocess.Popen([str(ARCHIVER), "import", "--data", str(data), "--json",
                                  str(root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
    server.start()
    try:
        out, err = importing.communicate(timeout=600)
    finally:
        server.stopping.set()
        server.join()
    summary = json.loads(out)
    assert importing.returncode == 0, err[-2000:]
    # How many renames fit in the import depends on the machine's load (CI saw 2,865 beside
    # the other tests, over 3,000 alone): a thousand still move a third of the messages.
    assert server.renames > count // 3, "the server hardly renamed anything during the import"
    assert (summary["imported"], summary["failed"], summary["skipped"],
            summary["problems"]) == (count, 0, 0, []), err[-2000:]
    assert digests_of(archiver, data) == sorted(
        hashlib.sha256(raw_message(n)).hexdigest() for n in range(count))


@pytest.mark.timeout(120)
def test_a_message_renamed_each_time_it_is_about_to_be_read_ends_reported_gone(
        tmp_path, monkeypatch, capsys):
    """A client that flags one message over and over, each time just before the import opens
    it: the import lists its range again a bounded number of times (mailtree.LISTINGS
    besides CUT_SHORT_LISTINGS), then reports it gone, and imports the rest."""
    root = make_maildir(tmp_path / "Maildir", ["cur/a:2,S", "cur/b:2,", "cur/c:2,S"])
    real, renames = mailfiles.open_file, []

    def opening(found):
        if found.path.name.startswith("b:"):  # flagged again, now: never where it was listed
            flags = "S" if found.path.name.endswith(",") else ""
            os.rename(found.path, found.path.with_name(f"b:2,{flags}"))
            renames.append(found.path.name)
        return real(found)
    monkeypatch.setattr(mailfiles, "open_file", opening)
    code, summary = import_in_process(capsys, tmp_path / "data", root)
    assert len(renames) == mailtree.CUT_SHORT_LISTINGS + mailtree.LISTINGS
    assert (code, summary["imported"], summary["failed"], summary["skipped"]) == (0, 2, 0, 1)
    assert "gone during the import" in json.dumps(summary["problems"])


def test_a_message_flagged_once_past_the_cut_short_listings_is_still_imported(
        tmp_path, monkeypatch, capsys):
    """Once a range's listings cut short by lost messages are spent (a busy folder), a
    message flagged before it is read is still read under its new name, by a counted
    listing, not reported gone while it is there."""
    root = make_maildir(tmp_path / "Maildir", ["cur/a:2,S", "cur/b:2,", "cur/c:2,S"])
    monkeypatch.setattr(mailtree, "CUT_SHORT_LISTINGS", 0)
    changing_before_reading(monkeypatch, root, {"cur/b:2,": [("cur/b:2,", "cur/b:2,S")]})
    code, summary = import_in_process(capsys, tmp_path / "data", root)
    assert (code, summary["imported"], summary["failed"], summary["skipped"],
            summary["problems"]) == (0, 3, 0, 0, [])


def test_a_lost_message_missing_from_the_next_listing_too_is_found_by_one_more(
        tmp_path, monkeypatch, capsys):
    """Flagged just before it is read (lost), then flagged again while its range is listed
    anew, so that listing shows it under neither name (ext4's hash order): the range is
    listed once more while a message lost from it is missing, and it is imported."""
    root = make_maildir(tmp_path / "Maildir", ["cur/a:2,S", "cur/b:2,"])  # b read last
    real_open, real_scandir, armed = mailfiles.open_file, os.scandir, []

    def opening(found):
        if found.path.name == "b:2,":
            os.rename(found.path, found.path.with_name("b:2,S"))
            armed.append(True)
        return real_open(found)

    def scandir(directory):
        listing = Listing(real_scandir(directory))
        if armed and any(entry.name == "b:2,S" for entry in listing):
            armed.clear()
            os.rename(root / "cur" / "b:2,S", root / "cur" / "b:2,RS")
            listing = Listing(entry for entry in listing if not entry.name.startswith("b:"))
        return listing
    monkeypatch.setattr(mailfiles, "open_file", opening)
    monkeypatch.setattr(os, "scandir", scandir)
    code, summary = import_in_process(capsys, tmp_path / "data", root)
    assert (code, summary["imported"], summary["failed"], summary["skipped"],
            summary["problems"]) == (0, 2, 0, 0, [])
