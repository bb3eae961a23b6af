"""Import reads each kind of file faithfully: one file one message, no mail no message,
limits on what it reads, and never a step outside the tree it is given (generated corpora)."""
import gzip
import io
import os
import random
import zipfile
from pathlib import Path

import pytest

from services.archive import mailtree
from services.archive import mbox
from services.archive.mailfiles import MailItem, count_mail, iter_mail, not_mail

MiB = 1024 * 1024
BODY = ("This week: two threads.\n\nFrom the moderators: please keep quoting short.\n\n"
        "From time to time we meet.\nFrom\n\nRegards.\n")


def message(subject: str, body: str = BODY, newline: str = "\n") -> bytes:
    lines = ["Return-Path: <bounce@lists.example.org>", "From: Robot <robot@lists.example.org>",
             "To: member@example.com", f"Subject: {subject}",
             "Date: Wed, 15 Jan 2025 11:11:30 +0000", ""]
    return (newline.join(lines) + newline + body.replace("\n", newline)).encode()


# The From_ lines single-message files are found with, and the dates they carry.
LEADING_FROM_LINES = {
    b"From bounce@lists.example.org Wed Jan 15 11:11:37 2025\n": 1736939497.0,
    b"From MAILER-DAEMON Wed Jan 15 11:11:37 2025\r\n": 1736939497.0,
    b"From - Wed Jan 15 11:11:37 2025\n": 1736939497.0,
    b"From bounce@lists.example.org Wed Jan 15 12:11:37 2025 +0100\n": 1736939497.0,
    b"": None,
}


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def maildir(root: Path) -> Path:
    for part in ("cur", "new", "tmp"):
        (root / part).mkdir(parents=True, exist_ok=True)
    return root


def in_eml_file(tmp_path: Path, data: bytes) -> Path:
    return write(tmp_path / "saved.EML", data)


def in_maildir_cur(tmp_path: Path, data: bytes) -> Path:
    write(maildir(tmp_path / "Mail") / "cur/1736939497.M1P1.host:2,S", data)
    return tmp_path / "Mail"


def in_maildir_new(tmp_path: Path, data: bytes) -> Path:
    write(maildir(tmp_path / "Mail") / "new/1736939497.M1P1.host", data)
    return tmp_path / "Mail"


def in_zip_member(tmp_path: Path, data: bytes) -> Path:
    with zipfile.ZipFile(tmp_path / "export.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("folder/message.eml", data)
    return tmp_path / "export.zip"


def in_maildir_folder_named_alone(tmp_path: Path, data: bytes) -> Path:
    in_maildir_cur(tmp_path, data)
    return tmp_path / "Mail/cur"


def in_maildir_file_named_alone(tmp_path: Path, data: bytes) -> Path:
    in_maildir_new(tmp_path, data)
    return tmp_path / "Mail/new/1736939497.M1P1.host"


def in_zipped_maildir(tmp_path: Path, data: bytes) -> Path:
    with zipfile.ZipFile(tmp_path / "maildir.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("Mail/cur/1736939497.M1P1.host:2,S", data)
    return tmp_path / "maildir.zip"


SINGLE_MESSAGE_PLACES = [in_eml_file, in_maildir_cur, in_maildir_new, in_zip_member,
                         in_maildir_folder_named_alone, in_maildir_file_named_alone,
                         in_zipped_maildir]


# --- one file, one message ----------------------------------------------------------------

@pytest.mark.parametrize("place", SINGLE_MESSAGE_PLACES)
@pytest.mark.parametrize("from_line", LEADING_FROM_LINES, ids=lambda line: line[:20].decode())
@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_a_single_message_file_is_one_message_without_its_from_line(tmp_path, place, from_line,
                                                                     newline):
    raw = message("digest", newline=newline)
    items = list(iter_mail([place(tmp_path, from_line + raw)]))
    assert [(item.raw, item.from_line_date, item.error) for item in items] == [
        (raw, LEADING_FROM_LINES[from_line], None)]
    assert count_mail([place(tmp_path, from_line + raw)]) == 1


@pytest.mark.parametrize("place", SINGLE_MESSAGE_PLACES)
def test_a_line_that_only_looks_like_a_from_line_stays(tmp_path, place):
    raw = b"From nobody in particular\n" + message("x")  # no date: no From_ line
    (item,) = iter_mail([place(tmp_path, raw)])
    assert item.raw is None and item.error.startswith("not mail")  # nor a header field


def test_a_file_not_named_eml_that_starts_with_a_from_line_is_an_mbox(tmp_path):
    first, second = message("one"), message("two")
    separator = b"From bounce@lists.example.org Wed Jan 15 11:11:37 2025\n"
    path = write(tmp_path / "Inbox", separator + first + b"\n" + separator + second)
    assert [(item.label, item.raw) for item in iter_mail([path])] == [
        (f"{path}#1", first), (f"{path}#2", second)]


# --- not mail -----------------------------------------------------------------------------

def png() -> bytes:
    return (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01"
            b"\x08\x06\x00\x00\x00")


NOT_MAIL = {
    "report.pdf": (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<</Type/Catalog/Pages 2 0 R>>\nendobj\n"
                   b"<</Producer(D:20240305)>>\n%%EOF\n", "PDF document"),
    "README": (b"# Project\n\nSee: the docs.\nFrom the author: thanks.\n", "text"),
    "README.md": (b"From the author, with thanks\n\nTo: nobody in particular\n", "text"),
    "random-1.bin": (random.Random(1).randbytes(4096), ""),
    "random-2.eml": (random.Random(2).randbytes(300), ""),
    "image.png": (png(), "PNG image"),
    "archive.gz": (gzip.compress(b"From: a@b\n\nx\n", mtime=0), "gzip compressed"),
    "blank.eml": (b"\n\r\n\n", ""),
    "empty.eml": (b"", ""),
    "spaces.eml": (b"   \n", ""),
    "xml.eml": (b'<x:xmpmeta xmlns:x="adobe:ns:meta/">\n', "text"),
}


@pytest.mark.parametrize("name", NOT_MAIL)
def test_a_file_that_is_not_mail_is_refused_with_its_name_and_why(tmp_path, name):
    data, described = NOT_MAIL[name]
    path = write(tmp_path / name, data)
    (item,) = iter_mail([path])
    assert item.label == str(path) and item.raw is None and not item.skipped
    assert item.error.startswith("not mail") and described in item.error
    with zipfile.ZipFile(tmp_path / "x.zip", "w") as archive:
        archive.writestr(name, data)
    (member,) = iter_mail([tmp_path / "x.zip"])
    assert member.label == f"{tmp_path}/x.zip#{name}" and member.error.startswith("not mail")


def test_a_directory_of_mixed_files_gives_the_mail_and_refuses_the_rest(tmp_path):
    for name, (data, _) in NOT_MAIL.items():
        write(tmp_path / "mixed" / name, data)
    write(tmp_path / "mixed/real.eml", message("real"))
    items = list(iter_mail([tmp_path / "mixed"]))
    assert [item.raw for item in items if item.raw] == [message("real")]
    assert len([item for item in items if item.error]) == len(NOT_MAIL)


MALFORMED_MAIL = [
    b"Subject: only a header",
    b"Subject : obsolete space before the colon\n\nbody\n",
    b"X-Garbage: \x00\xff\xfe\n\x00\x01 not a header line\nFrom: a@b\n\nbody\n",
    b"Subject: no blank line\nthen body text straight away\n",
    b"From: a@b\n\n" + random.Random(3).randbytes(2000),
    b"From: a@b\r\nSubject: mixed\n\r\nline endings\r",
    b"\xef\xbb\xbfFrom: a@b\r\nSubject: a byte order mark first\r\n\r\nbody\r\n",
]


@pytest.mark.parametrize("raw", MALFORMED_MAIL, ids=range(len(MALFORMED_MAIL)))
def test_malformed_mail_is_still_mail_kept_byte_exact(tmp_path, raw):
    assert not_mail(raw) is None
    assert [item.raw for item in iter_mail([write(tmp_path / "m.eml", raw)])] == [raw]


# --- limits ------------------------------------------------------------------------------

def test_a_file_over_the_limit_is_an_item_that_failed(tmp_path):
    big = write(tmp_path / "big.eml", message("big", "x" * 3000))
    (item,) = iter_mail([big], max_bytes=2000)
    assert item.raw is None and item.error.startswith(f"{big.stat().st_size} bytes, over the")


def zip_with(tmp_path: Path, members: list[tuple[str, bytes]]) -> Path:
    path = tmp_path / "x.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return path


def test_zip_members_too_large_or_too_compressed_fail_and_the_others_are_read(tmp_path):
    bomb = message("bomb", "\n" * (4 * MiB))  # 4 MiB that deflate to a few KiB
    large = message("large", random.Random(4).randbytes(600_000).hex())  # 1.2 MB, incompressible
    path = zip_with(tmp_path, [("a.eml", message("a")), ("bomb.eml", bomb),
                               ("large.eml", large), ("large.mbox", b"From x Wed Jan 15 11:11:37"
                                                      b" 2025\n" + large), ("z.eml", message("z"))])
    items = list(iter_mail([path], max_bytes=MiB))
    assert [item.raw for item in items] == [message("a"), None, None, None, message("z")]
    assert "more than 100 times" in items[1].error
    assert "over the limit of 1 MiB" in items[2].error and "over the limit" in items[3].error
    assert count_mail([path]) == 5


def test_zips_nest_two_deep_and_no_deeper(tmp_path):
    data = message("innermost")
    for depth in range(4):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr(f"level{depth}.zip" if depth else "m.eml", data)
        data = buffer.getvalue()
    items = list(iter_mail([write(tmp_path / "outer.zip", data)]))
    assert len(items) == 1 and "nested more than 2 deep" in items[0].error


# --- never outside the tree ---------------------------------------------------------------

@pytest.fixture
def outside(tmp_path) -> Path:
    return write(tmp_path / "outside/secret", b"Subject: secret\n\nroot:$6$hash\n")


def test_no_symlink_below_a_named_tree_is_followed_and_each_is_reported(tmp_path, outside):
    mail = maildir(tmp_path / "tree/Mail")
    write(mail / "cur/1:2,S", message("kept"))
    links = {
        "Mail/cur/2:2,S": Path("/etc/shadow"),               # a file outside
        "Mail/cur/3:2,S": outside,                           # another one
        "Mail/new/4": mail / "cur/1:2,S",                    # a file inside: skipped too
        "Mail/new/5": tmp_path / "tree/Mail/new/5",          # a loop onto itself
        "Mail/new/6": tmp_path / "nowhere",                  # dangling
        "Mail/.Sent": outside.parent,                        # a Maildir++ folder outside
        "loose-link.eml": outside,                           # in a plain directory
        "dir-link": outside.parent,                          # a directory outside
    }
    for name, target in links.items():
        (tmp_path / "tree" / name).symlink_to(target)
    items = list(iter_mail([tmp_path / "tree"]))
    assert [item.raw for item in items if item.raw] == [message("kept")]
    skipped = {item.label.removeprefix(f"{tmp_path}/tree/"): item.error for item in items
               if item.skipped}
    assert set(skipped) == set(links)
    assert skipped["Mail/cur/2:2,S"] == ("a symlink to /etc/shadow (outside the imported "
                                         "tree): not followed")
    assert "inside the imported tree" in skipped["Mail/new/4"]
    assert skipped["Mail/new/5"].startswith("a symlink loop")
    assert skipped["Mail/new/6"].startswith("a dangling symlink")
    assert all("outside" in skipped[name] for name in ("Mail/.Sent", "loose-link.eml",
                                                      "dir-link", "Mail/cur/3:2,S"))
    assert count_mail([tmp_path / "tree"]) == len(items)


def test_a_symlinked_cur_is_not_followed(tmp_path, outside):
    mail = tmp_path / "Mail"
    (mail / "new").mkdir(parents=True)
    (mail / "cur").symlink_to(outside.parent)
    items = list(iter_mail([mail]))
    assert [(item.label, item.skipped) for item in items] == [(f"{mail}/cur", True)]


def test_a_named_symlink_is_followed_to_a_directory_never_to_a_file(tmp_path, outside):
    """~/Maildir linked to another disk is the caller's tree; a link to a file named on the
    command line (to /etc/shadow, dropped where import is pointed) is skipped and reported."""
    real = write(tmp_path / "real/m.eml", message("m"))
    (tmp_path / "named-dir").symlink_to(real.parent)
    (tmp_path / "named.eml").symlink_to(real)
    (tmp_path / "shadow.eml").symlink_to(outside)
    items = list(iter_mail([tmp_path / "named-dir", tmp_path / "named.eml",
                            tmp_path / "shadow.eml"]))
    assert [item.raw for item in items] == [message("m"), None, None]
    assert [item.skipped for item in items] == [False, True, True]
    assert items[2].error.startswith(f"a symlink to {outside} (")
    assert items[2].error.endswith("not followed")


def test_a_path_swapped_for_a_symlink_during_the_walk_is_not_read(tmp_path, outside):
    """A directory replaced by a symlink between listing and opening: the kernel's path of
    what was opened lies outside the tree, so nothing is read."""
    tree = tmp_path / "tree"
    (tree).mkdir()
    (tree / "sub").symlink_to(outside.parent)  # as if "sub" had been a directory when listed
    found = mailtree.Found(tree / "sub/secret", str(tree))
    with pytest.raises(mailtree.NotReadable, match="outside the imported tree"):
        mailtree.open_file(found)
    (tree / "file").symlink_to(outside)
    with pytest.raises(OSError):  # O_NOFOLLOW: a symlink as the last step is never opened
        mailtree.open_file(mailtree.Found(tree / "file", str(tree)))


def test_a_fifo_in_a_maildir_is_refused_without_blocking(tmp_path):
    mail = maildir(tmp_path / "Mail")
    os.mkfifo(mail / "cur/1:2,S")
    assert list(iter_mail([mail])) == [
        MailItem(f"{mail}/cur/1:2,S", error="not a regular file (a FIFO)")]


def test_the_dotlock_beside_a_mail_file_is_listed_as_its_lock_not_failed_as_mail(tmp_path):
    """/var/mail while an MTA delivers: "inbox.lock" beside "inbox", empty or holding the
    locker's pid, is the mbox's lock (listed as skipped, not a failure; the mbox itself
    waits for it, as before), whether found in a folder or named (`import /var/mail/*`).
    What is not a lock is read as any file: a ".lock" beside no file of that name, beside
    a symlink or a FIFO, a directory so named, and above all a message named "X.lock"
    beside X (a name alone never hides mail from the import)."""
    folder = tmp_path / "mail"
    one, two = message("one", "first\n"), message("two", "second\n")
    write(folder / "inbox", b"From a@b Wed Jan 15 11:11:37 2025\n" + one +
          b"\nFrom a@b Wed Jan 15 11:11:38 2025\n" + two)
    locks = {"notes.eml.lock": b"", "spool.lock": b"4242\n", "pid.lock": b"17 host.example\n"}
    for name, content in locks.items():
        write(folder / name.removesuffix(".lock"), message(name))
        write(folder / name, content)
    hidden = message("named like a lock")
    write(folder / "memo", message("memo"))
    write(folder / "memo.lock", hidden)
    write(folder / "stray.lock", message("stray"))
    (folder / "link").symlink_to(folder / "memo")
    write(folder / "link.lock", message("beside a link"))
    os.mkfifo(folder / "fifo")
    write(folder / "fifo.lock", message("beside a fifo"))
    write(folder / "Sent.lock" / "kept.eml", message("kept"))
    items = list(iter_mail([folder], mbox_ends=mbox.Ends(lock_wait=0.0)))
    by_label = {item.label.removeprefix(f"{folder}/"): item for item in items}
    for name in locks:
        assert by_label[name].skipped and by_label[name].raw is None
        assert by_label[name].error == (f"the dotlock of {name.removesuffix('.lock')} (held "
                                        "while mail is written to it)")
    for name, subject in (("memo.lock", "named like a lock"), ("stray.lock", "stray"),
                          ("link.lock", "beside a link"), ("fifo.lock", "beside a fifo"),
                          ("Sent.lock/kept.eml", "kept")):
        assert by_label[name].raw == message(subject) and not by_label[name].skipped, name
    assert [item.raw for item in items if item.label.startswith(f"{folder}/inbox")] == [one, two]
    assert count_mail([folder], mbox.Ends(lock_wait=0.0)) == len(items)
    named = list(iter_mail(sorted(folder.glob("*.lock")), mbox_ends=mbox.Ends(lock_wait=0.0)))
    assert {item.label.removeprefix(f"{folder}/") for item in named if item.skipped} == set(locks)
    assert [item.raw for item in named if item.label.endswith("memo.lock")] == [hidden]
    failed = {item.label for item in items + named if item.error and not item.skipped}
    assert failed == {str(folder / "fifo")}  # no file to read: as before


def test_an_mbox_being_delivered_to_waits_for_its_lock_and_the_lock_is_no_failure(tmp_path):
    folder = tmp_path / "spool"
    write(folder / "inbox", b"From a@b Wed Jan 15 11:11:37 2025\n" + message("one", "x\n"))
    write(folder / "inbox.lock", b"4242\n")  # the pid liblockfile writes
    items = list(iter_mail([folder], mbox_ends=mbox.Ends(lock_wait=0.0)))
    assert [item.label for item in items if not item.skipped] == [str(folder / "inbox")]
    (lock,) = [item for item in items if item.skipped]
    assert lock.label == str(folder / "inbox.lock") and "dotlock of inbox" in lock.error


def test_an_emptied_mailbox_is_listed_as_empty_not_failed_and_an_empty_message_fails(tmp_path):
    write(tmp_path / "spool" / "bob", b"")  # /var/mail/bob after bob's client emptied it
    write(tmp_path / "spool" / "Trash", b"")
    write(tmp_path / "spool" / "lost.eml", b"")  # one message, and no byte of it: damage
    items = {item.label: item for item in iter_mail([tmp_path / "spool",
                                                     tmp_path / "spool" / "bob"])}
    for name in ("bob", "Trash"):
        empty = items[str(tmp_path / "spool" / name)]
        assert empty.skipped and empty.error == "empty: no mail in it" and empty.raw is None
    assert items[str(tmp_path / "spool" / "lost.eml")].error == "not mail: empty"
    assert not items[str(tmp_path / "spool" / "lost.eml")].skipped
