"""Bulk import, review 117: Maildir folders with housekeeping names (Dovecot's fs layout
makes a folder of any mailbox name) are walked, and only servers' real housekeeping files
are left out unlisted; a file like dovecot-backup.mbox is listed as not read."""
import zipfile

import pytest

from services.archive import mailtree
from services.archive.mailfiles import count_mail, iter_mail

MiB = 1024 * 1024


def message(subject: str, body: bytes = b"Hello.\n") -> bytes:
    return f"From: a@example.com\nSubject: {subject}\n\n".encode() + body


# --- D: Maildir folders with housekeeping names ----------------------------------------------

TREE = {
    "Mail/cur/1:2,S": message("inbox"), "Mail/new/.keep": None,
    "Mail/subscriptions/cur/2:2,S": message("a mailbox called subscriptions"),
    "Mail/subscriptions/new/.keep": None,
    "Mail/dovecot-archive/cur/3:2,S": message("a mailbox called dovecot-archive"),
    "Mail/dovecot.index.d/new/4": message("a mailbox called dovecot.index.d"),
    "Mail/courierimapx/cur/5:2,S": message("a mailbox called courierimapx"),
    "Mail/dovecot-backup.mbox": b"From a Sat Jan  1 00:00:00 2000\n" + message("backup"),
    "Mail/dovecot.index": b"\0", "Mail/dovecot.index.log": b"\0", "Mail/dovecot.index.cache": b"",
    "Mail/dovecot.list.index": b"\0", "Mail/dovecot.list.index.log": b"\0",
    "Mail/dovecot-uidlist": b"3 V1\n", "Mail/dovecot-keywords": b"0 $Junk\n",
    "Mail/dovecot-uidvalidity": b"5f0c\n", "Mail/dovecot-uidvalidity.5f0c": b"",
    "Mail/subscriptions.old": b"x\n", "Mail/maildirfolder": b"", "Mail/maildirsize": b"0S\n",
    "Mail/courierimapuiddb": b"1\n", "Mail/courierpop3dsizelist": b"/1\n",
    "Mail/subscriptions/dovecot-uidlist": b"3 V1\n",
    "Mail/courierimapkeywords/:list": b"$Junk\n",  # Courier's folder: left out
    "Mail/courierimaphieracl/cur/6:2,S": message("a mailbox called courierimaphieracl"),
}


def build(root, tree):
    for name, data in tree.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if data is not None:
            path.write_bytes(data)
    return root


@pytest.mark.parametrize("zipped", [False, True], ids=["on disk", "zipped"])
def test_maildir_folders_with_housekeeping_names_are_walked_files_listed(tmp_path, zipped):
    """A Dovecot fs-layout mailbox named subscriptions/ or dovecot-archive/ was left out
    unlisted, its mail never read; so was a file dovecot-backup.mbox."""
    tree = {name: data for name, data in TREE.items() if not name.endswith("/.keep")}
    build(tmp_path / "t", TREE)
    given = tmp_path / "t" / "Mail"
    if zipped:
        given = tmp_path / "m.zip"
        with zipfile.ZipFile(given, "w") as archive:
            for name, data in tree.items():
                archive.writestr(name, data or b"")
            archive.writestr("Mail/new/", b"")
            archive.writestr("Mail/subscriptions/new/", b"")
        prefix = f"{given}#Mail/"
    else:
        prefix = f"{given}/"
    items = list(iter_mail([given]))
    outcome = {item.label.removeprefix(prefix): (item.raw, item.error) for item in items}
    read = {name: raw for name, (raw, _) in outcome.items() if raw}
    assert read == {name.removeprefix("Mail/"): data for name, data in tree.items()
                    if "/cur/" in name or "/new/" in name}
    assert outcome["dovecot-backup.mbox"] == (None, mailtree.IN_MAILDIR)
    assert outcome["subscriptions.old"] == (None, mailtree.IN_MAILDIR)
    assert set(outcome) == {*read, "dovecot-backup.mbox", "subscriptions.old"}
    assert count_mail([given]) == len(items)


@pytest.mark.parametrize("name", ["dovecot.index", "dovecot.index.log", "dovecot.index.log.2",
                                  "dovecot.index.cache", "dovecot.list.index",
                                  "dovecot.list.index.log", "dovecot-uidlist",
                                  "dovecot-keywords", "dovecot-uidvalidity",
                                  "dovecot-uidvalidity.5f0c1a2b", "subscriptions",
                                  "maildirfolder", "maildirsize", "courierimapuiddb",
                                  "courierimapkeywords", "courierpop3dsizelist"])
def test_housekeeping_file_names_are_left_out(name):
    assert mailtree.MAILDIR_HOUSEKEEPING.fullmatch(name)


@pytest.mark.parametrize("name", ["dovecot-backup.mbox", "dovecot-archive", "dovecot.mbox",
                                  "subscriptions.old", "dovecot.indexes-old.eml"])
def test_other_names_are_not_housekeeping(name):
    assert not mailtree.MAILDIR_HOUSEKEEPING.fullmatch(name)
