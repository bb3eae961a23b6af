import contextlib
import email
import mailbox
import os
import re
import resource
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from services.archive import mailfiles, mbox
from services.archive import mailtree
from services.archive.mailfiles import MailItem, count_mail, iter_mail, write_mbox, write_zip
from tests.deep_folders import folder_chain


def message(subject: str, body: str = "Hello.\n", newline: str = "\n") -> bytes:
    lines = ["From: Alice <alice@example.com>", "To: bob@example.org", f"Subject: {subject}",
             f"Message-ID: <{subject.replace(' ', '-')}@example.com>",
             "Date: Tue, 05 Mar 2024 14:07:09 +0100", ""]
    return (newline.join(lines) + newline + body.replace("\n", newline)).encode()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def make_maildir(root: Path, messages: dict[str, bytes]) -> Path:
    """messages: 'cur/NAME' or 'new/NAME' -> bytes."""
    for part in ("cur", "new", "tmp"):
        (root / part).mkdir(parents=True, exist_ok=True)
    for name, data in messages.items():
        write(root / name, data)
    return root


def by_label(items) -> dict[str, MailItem]:
    return {item.label: item for item in items}


# --- reading each format ------------------------------------------------------------------

def test_reads_a_maildir_with_cur_new_and_maildir_plus_plus_subfolders(tmp_path):
    inbox = make_maildir(tmp_path / "Mail", {"cur/1.a:2,S": message("one"),
                                             "new/2.b": message("two"),
                                             "tmp/3.c": message("half delivered"),
                                             "cur/.hidden": b"not a message"})
    make_maildir(inbox / ".Sent", {"cur/4.d:2,S": message("sent")})
    make_maildir(inbox / ".Sent.2019", {"new/5.e": message("old sent")})
    write(inbox / "dovecot-uidlist", b"3 V1 N4\n")
    write(inbox / "subscriptions", b"Sent\n")
    items = list(iter_mail([inbox]))
    assert [item.label for item in items] == [  # new/ first (see mailtree.MAILDIR_PARTS)
        str(inbox / "new/2.b"), str(inbox / "cur/1.a:2,S"),
        str(inbox / ".Sent/cur/4.d:2,S"), str(inbox / ".Sent.2019/new/5.e"), str(inbox / "tmp")]
    assert [item.raw for item in items] == [message("two"), message("one"), message("sent"),
                                            message("old sent"), None]
    assert all(item.error is None for item in items[:4])
    assert items[4].skipped and items[4].error == mailtree.MAILDIR_TMP
    assert count_mail([inbox]) == 5


def test_reads_an_mbox_message_by_message_without_separators_and_quoting(tmp_path):
    mbox = write(tmp_path / "archive", (
        b"From alice@example.com Tue Mar  5 13:07:09 2024\n" + message("one", "Hi\n>From me\n")
        + b"\nFrom bob@example.org Tue Mar  5 13:08:00 2024\n" + message("two") + b"\n"))
    items = list(iter_mail([mbox]))
    assert [item.label for item in items] == [f"{mbox}#1", f"{mbox}#2"]
    assert [item.raw for item in items] == [message("one", "Hi\nFrom me\n"), message("two")]
    assert count_mail([mbox]) == 2


def test_reads_a_single_message_file_whatever_its_name(tmp_path):
    for name in ("note.eml", "README"):
        path = write(tmp_path / name, message(name))
        assert list(iter_mail([path])) == [MailItem(str(path), raw=message(name))]


def test_a_message_file_that_starts_with_a_from_line_is_one_message_without_it(tmp_path):
    path = write(tmp_path / "saved.eml", b"From a@b.example Mon Jan  1 00:00:00 2024\n"
                 + message("x"))
    assert list(iter_mail([path])) == [MailItem(str(path), raw=message("x"),
                                                from_line_date=1704067200.0)]


def test_reads_a_mixed_directory_recursively_in_name_order(tmp_path):
    top = tmp_path / "import"
    make_maildir(top / "maildir", {"cur/1": message("md")})
    write(top / "a.mbox", b"From x Mon Jan  1 00:00:00 2024\n" + message("mb1")
          + b"\nFrom x Mon Jan  1 00:00:00 2024\n" + message("mb2"))
    write(top / "b.eml", message("eml"))
    write(top / "deeper/c.eml", message("deep"))
    write(top / ".DS_Store", b"\0\0\0\1Bud1")
    write(top / ".git/objects/ab/cdef", b"x\x9c")
    items = list(iter_mail([top]))
    assert [(item.label, item.raw) for item in items if not item.skipped] == [
        (f"{top}/a.mbox#1", message("mb1")), (f"{top}/a.mbox#2", message("mb2")),
        (f"{top}/b.eml", message("eml")), (f"{top}/deeper/c.eml", message("deep")),
        (f"{top}/maildir/cur/1", message("md"))]
    # Hidden entries are listed, not read: .git once, not each file in it.
    assert [(item.label, item.error) for item in items if item.skipped] == [
        (f"{top}/.DS_Store", mailtree.HIDDEN), (f"{top}/.git", mailtree.HIDDEN)]
    assert count_mail([top]) == len(items) == 7


def test_a_hidden_folder_that_is_a_maildir_is_read_and_other_hidden_ones_are_listed(tmp_path):
    """A Maildir whose empty new/ was lost in a copy (git and some zip tools drop empty
    folders) is no Maildir, but its Maildir++ folders still are; ~/.mail/inbox is listed."""
    top = tmp_path / "M"
    make_maildir(top / ".Sent", {"cur/1:2,S": message("sent")})
    write(top / "cur" / "2:2,S", message("inbox"))
    write(top / ".mail" / "inbox", b"From x Mon Jan  1 00:00:00 2024\n" + message("mb"))
    items = list(iter_mail([top]))
    assert [item.raw for item in items if item.raw] == [message("sent"), message("inbox")]
    assert [(item.label, item.skipped, item.error) for item in items if item.error] == [
        (f"{top}/.mail", True, mailtree.HIDDEN)]
    assert count_mail([top]) == len(items)


def test_reads_a_zip_that_export_wrote(tmp_path):
    archive = tmp_path / "export.zip"
    write_zip([("a", message("a")), ("b", message("b"))], archive)
    items = list(iter_mail([archive]))
    assert [(item.label, item.raw) for item in items] == [
        (f"{archive}#a.eml", message("a")), (f"{archive}#b.eml", message("b"))]
    assert count_mail([archive]) == 2


def test_reads_mboxes_inside_a_zip_like_google_takeout(tmp_path):
    archive = tmp_path / "takeout.zip"
    with zipfile.ZipFile(archive, "w") as writer:
        writer.writestr("Takeout/Mail/All mail.mbox", b"From 1@xxx Mon Jan  1 00:00:00 2024\n"
                        + message("a") + b"\nFrom 2@xxx Mon Jan  1 00:00:00 2024\n" + message("b"))
        writer.writestr("Takeout/archive_browser.html", b"")
    label = f"{archive}#Takeout/Mail/All mail.mbox"
    assert list(iter_mail([archive])) == [
        MailItem(label + "#1", raw=message("a"), from_line_date=1704067200.0),
        MailItem(label + "#2", raw=message("b"), from_line_date=1704067200.0),
        # empty, not a .eml: skipped, as the same file unpacked is (an emptied mailbox)
        MailItem(f"{archive}#Takeout/archive_browser.html", error="empty: no mail in it",
                 skipped=True)]
    assert count_mail([archive]) == 3


def test_a_damaged_zip_member_is_an_error_item(tmp_path):
    archive = tmp_path / "x.zip"
    write_zip([("a", message("a") * 50), ("b", message("b"))], archive)
    data = bytearray(archive.read_bytes())
    data[60:70] = b"\0" * 10  # inside the first member's compressed bytes
    archive.write_bytes(data)
    items = list(iter_mail([archive]))
    assert items[0].label == f"{archive}#a.eml" and items[0].error.startswith("cannot read zip")
    assert items[1] == MailItem(f"{archive}#b.eml", raw=message("b"))


def test_a_directory_named_twice_is_read_once_and_a_symlink_to_it_not_at_all(tmp_path):
    write(tmp_path / "mail/a.eml", message("a"))
    (tmp_path / "mail/loop").symlink_to(tmp_path / "mail")
    items = list(iter_mail([tmp_path / "mail", tmp_path / "mail"]))
    assert [item.raw for item in items] == [message("a"), None]
    assert items[1].skipped and items[1].error == (
        f"a symlink to {tmp_path}/mail (inside the imported tree: read where it lies, "
        "if at all): not followed")


# --- files that give no message -----------------------------------------------------------

def test_unreadable_files_become_error_items_and_the_run_goes_on(tmp_path):
    top = tmp_path / "import"
    write(top / "a.eml", message("a"))
    (top / "b-dangling.eml").symlink_to(tmp_path / "nowhere")
    os.mkfifo(top / "c-fifo.eml")
    (top / "d-directory.eml").mkdir()
    write(top / "d-directory.eml/inside.eml", message("inside"))
    write(top / "e-empty.eml", b"")
    write(top / "f.eml", message("f"))
    items = by_label(iter_mail([top, tmp_path / "missing.mbox"]))
    assert items[f"{top}/a.eml"].raw == message("a")
    assert items[f"{top}/b-dangling.eml"] == MailItem(
        f"{top}/b-dangling.eml", error=f"a dangling symlink (to {tmp_path}/nowhere): not followed",
        skipped=True)
    assert items[f"{top}/c-fifo.eml"].error == "not a regular file (a FIFO)"
    assert items[f"{top}/d-directory.eml/inside.eml"].raw == message("inside")
    assert items[f"{top}/e-empty.eml"].error == "not mail: empty"  # nothing to store
    assert items[f"{top}/f.eml"].raw == message("f")
    assert items[f"{tmp_path}/missing.mbox"].error == "no such file"
    assert all(item.raw is None for item in items.values() if item.error)
    assert count_mail([top, tmp_path / "missing.mbox"]) == len(items) == 7


def test_a_fifo_named_directly_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    assert list(iter_mail([tmp_path / "pipe"])) == [
        MailItem(str(tmp_path / "pipe"), error="not a regular file (a FIFO)")]


def test_an_unlistable_maildir_folder_is_an_error_item(tmp_path, monkeypatch):
    inbox = make_maildir(tmp_path / "Mail", {"new/1": message("one")})
    real_open = os.open

    def open_refusing_cur(path, flags, *args, **kwargs):  # as root, chmod 000 would not stop us
        if str(path).endswith("cur"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_refusing_cur)
    assert list(iter_mail([inbox])) == [
        MailItem(str(inbox / "new/1"), raw=message("one")),
        MailItem(str(inbox / "cur"), error="cannot read: permission denied")]


def test_an_empty_mbox_message_is_an_error_item(tmp_path):
    path = write(tmp_path / "m", b"From x Mon Jan  1 00:00:00 2024\n\nFrom x Mon Jan  1 00:00:00"
                 b" 2024\n" + message("b"))
    assert [(item.raw, item.error) for item in iter_mail([path])] == [
        (None, "empty message"), (message("b"), None)]


# --- mbox round trips ---------------------------------------------------------------------

def mbox_round_trip(tmp_path, raws: list[bytes]) -> list[bytes]:
    path = tmp_path / "export.mbox"
    assert write_mbox([(f"m{number}", raw) for number, raw in enumerate(raws)], path) == len(raws)
    return [item.raw for item in iter_mail([path])]


def test_from_lines_in_bodies_survive_the_mbox_round_trip_byte_exact(tmp_path):
    raws = [message("quoting", "From the start\n>From quoted\n>>From twice\n From indented\n"
                    "From\nFromage\n\nFrom after a blank line\n"),
            b"From: x@example.com\nSubject: no body\n\n",
            b"From nobody\nSubject: starts like an mbox\n\nbody\n",
            message("ends with blank lines", "text\n\n\n")]
    # "From nobody" is no header field (nor a From_ line): not mail as a .eml, but what the
    # appliance stored its export writes, and the import gives back (review 117)
    assert mbox_round_trip(tmp_path, raws) == raws
    written = (tmp_path / "export.mbox").read_bytes()
    assert b"\n>From the start\n>>From quoted\n>>>From twice\n From indented\n" in written
    assert b"\nFrom after" not in written and b"\n>From after a blank line\n" in written


def test_crlf_messages_survive_the_mbox_round_trip_byte_exact(tmp_path):
    raws = [message("crlf", "line one\nFrom line two\n", newline="\r\n"),
            message("crlf blank end", "text\n\n", newline="\r\n")]
    assert mbox_round_trip(tmp_path, raws) == raws


def test_mbox_adds_the_final_line_ending_a_message_lacks_and_nothing_else(tmp_path):
    # What mbox cannot carry: the blank separator line must start a line of its own.
    lf, crlf = message("lf", "no newline at the end"), message("crlf", "no end", "\r\n")
    assert mbox_round_trip(tmp_path, [lf, crlf, b"x: y\n\nends in CR\r", b""]) == [
        lf + b"\n", crlf + b"\r\n", b"x: y\n\nends in CR\r\n", b"\n"]  # empty: a line ending


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.sampled_from(
    ["From x", ">From x", ">>From", "From", "", "\r", "text", " From", "\rFrom x", "F"]),
    max_size=8).map(lambda lines: "\n".join(lines).encode()), min_size=1, max_size=5),
    st.integers(1, 40))
def test_any_messages_survive_mbox_and_zip_in_any_chunking(tmp_path_factory, raws, chunk):
    directory = tmp_path_factory.mktemp("rt")
    write_mbox([("m", raw) for raw in raws], directory / "x.mbox")
    write_zip([("m", raw) for raw in raws], directory / "x.zip")
    original_chunk = mbox.READ_CHUNK
    mbox.READ_CHUNK = chunk  # separators straddling chunk boundaries are still found
    try:
        from_mbox = list(iter_mail([directory / "x.mbox"]))
    finally:
        mbox.READ_CHUNK = original_chunk
    # Each message is read, mail or not (what the appliance stored, its export writes and
    # the import gives back: review 117), with a final line ending.
    assert [item.raw for item in from_mbox] == [mbox.with_final_line_ending(raw) for raw in raws]
    assert count_mail([directory / "x.mbox"]) == len(raws)
    # Each .eml member is one message if it is mail (these hold no real From_ line).
    assert [item.raw for item in iter_mail([directory / "x.zip"])] == [
        None if mailfiles.not_mail(raw) else raw for raw in raws]


def test_python_mailbox_reads_our_mbox_as_the_same_messages(tmp_path):
    raws = [message("one", "From here\n>From there\n"), message("two", "x", "\r\n"),
            message("three")]
    write_mbox([("n", raw) for raw in raws], tmp_path / "export.mbox")
    box = mailbox.mbox(tmp_path / "export.mbox", create=False)
    # mailbox.mbox does not unquote, so it sees the mboxrd quoting; nothing else differs.
    assert [box.get_bytes(key) for key in box.keys()] == [
        mbox.quote_from_lines(mbox.with_final_line_ending(raw)) for raw in raws]
    assert [box[key]["Message-ID"] for key in box.keys()] == [
        "<one@example.com>", "<two@example.com>", "<three@example.com>"]


def test_we_read_an_mbox_that_python_mailbox_wrote(tmp_path):
    raws = [message("one", "From here\n"), message("two"), message("three", "end\n\n")]
    box = mailbox.mbox(tmp_path / "python.mbox")
    for raw in raws:
        box.add(raw)
    box.close()
    assert [item.raw for item in iter_mail([tmp_path / "python.mbox"])] == raws


def test_the_from_line_names_the_sender_and_the_sent_time_in_utc(tmp_path):
    write_mbox([("a", message("a")),
                ("b", b"Return-Path: <bounce@lists.example>\nFrom: x@y.example\n\nb\n"),
                ("c", b"From: Some One <some one@example.com>\nDate: garbage\n\nc\n")],
               tmp_path / "x.mbox")
    from_lines = [line for line in (tmp_path / "x.mbox").read_bytes().split(b"\n")
                  if line.startswith(b"From ")]
    assert from_lines[0] == b"From alice@example.com Tue Mar  5 13:07:09 2024"
    assert from_lines[1].startswith(b"From bounce@lists.example ")
    assert from_lines[2].startswith(b"From MAILER-DAEMON ")
    ctime = rb"From \S+ (Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}"
    assert all(re.fullmatch(ctime, line) for line in from_lines)


@pytest.mark.integration
@pytest.mark.skipif(not shutil.which("mutt") or not shutil.which("script"),
                    reason="needs mutt (Debian package mutt) and script (bsdutils)")
def test_mutt_reads_our_mbox_as_the_same_messages(tmp_path):
    raws = [message("one", "From here\n>From there\n"), message("two", "crlf\n", "\r\n"),
            message("three", "no final newline")]
    write_mbox([("n", raw) for raw in raws], tmp_path / "export.mbox")
    copies = mutt_copy_to_maildir(tmp_path / "export.mbox", tmp_path / "copied", tmp_path)
    assert sorted(copy["Message-ID"] for copy in copies) == [
        "<one@example.com>", "<three@example.com>", "<two@example.com>"]
    bodies = {copy["Subject"]: copy.get_payload() for copy in copies}
    assert bodies == {"one": ">From here\n>>From there\n", "two": "crlf\r\n",
                      "three": "no final newline\n"}


def mutt_copy_to_maildir(mbox: Path, maildir: Path, home: Path) -> list:
    """Have mutt open `mbox` read-only and copy every message it sees into `maildir`."""
    # folder= an existing directory, or mutt first asks to create ~/Mail and eats the keys.
    muttrc = write(home / "muttrc", f"set folder={home}\nset mbox_type=Maildir\n"
                   "set confirmcreate=no\nset confirmappend=no\nset quit=yes\n".encode())
    command = (f"mutt -n -R -F {muttrc} -f {mbox} "
               f"-e 'push \"T~A\\n;C{maildir}\\nq\"'")
    # mutt only runs on a terminal; script(1) gives it one.
    subprocess.run(["script", "-qec", command, "/dev/null"], stdin=subprocess.DEVNULL,
                   capture_output=True, timeout=30, check=True,
                   env={**os.environ, "TERM": "xterm", "HOME": str(home)})
    files = sorted((maildir / "new").iterdir()) + sorted((maildir / "cur").iterdir())
    return [email.message_from_bytes(path.read_bytes()) for path in files]


# --- zip ----------------------------------------------------------------------------------

def test_zip_keeps_every_message_byte_exact(tmp_path):
    raws = [message("lf"), message("crlf", "x\n", "\r\n"), b"no final newline",
            b"binary \x00\xff\r\rFrom x\n>From y", b""]
    assert write_zip([(f"m{number}", raw) for number, raw in enumerate(raws)],
                     tmp_path / "x.zip") == len(raws)
    with zipfile.ZipFile(tmp_path / "x.zip") as archive:
        assert [archive.read(name) for name in archive.namelist()] == raws
        assert archive.namelist() == [f"m{number}.eml" for number in range(len(raws))]


def test_zip_member_names_are_safe_and_unique(tmp_path):
    names = ["../../etc/passwd", "<id@example.com>", "Same", "same", "same.eml", "", ".hidden"]
    write_zip([(name, b"x") for name in names], tmp_path / "x.zip")
    with zipfile.ZipFile(tmp_path / "x.zip") as archive:
        assert archive.namelist() == ["_.._etc_passwd.eml", "_id@example.com_.eml", "Same.eml",
                                      "same-2.eml", "same-3.eml", "message.eml", "hidden.eml"]


# --- writing never leaves half a file -----------------------------------------------------

@pytest.mark.parametrize("writer", [write_mbox, write_zip])
def test_a_failed_export_leaves_nothing_behind(tmp_path, writer):
    def messages_then_failure():
        yield "a", message("a")
        raise OSError("store read failed")

    with pytest.raises(OSError, match="store read failed"):
        writer(messages_then_failure(), tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("writer", [write_mbox, write_zip])
def test_an_export_replaces_the_old_file_whole(tmp_path, writer):
    (tmp_path / "out").write_bytes(b"old export")
    writer([("a", message("a"))], tmp_path / "out")
    assert [item.raw for item in iter_mail([tmp_path / "out"])] == [message("a")]
    assert [path.name for path in tmp_path.iterdir()] == ["out"]


def test_a_hidden_folder_named_with_its_parent_is_read(tmp_path):
    """The walk of d1 lists .Sent as skipped ("name it to import it"); named, it is read,
    whichever of the two is named first."""
    write(tmp_path / "d1" / "a.eml", message("a"))
    write(tmp_path / "d1" / ".Sent" / "b.eml", message("b"))
    d1, sent = tmp_path / "d1", tmp_path / "d1" / ".Sent"
    for paths in ([d1, sent], [sent, d1]):
        items = list(iter_mail(paths))
        assert sorted(item.raw for item in items if item.raw) == [message("a"), message("b")]
        assert [item.label for item in items if item.skipped] == (
            [str(sent)] if paths[0] == d1 else [])
        assert count_mail(paths) == len(items)


def test_a_hidden_folder_with_cur_or_new_alone_is_a_maildir_folder(tmp_path):
    """A Maildir copied by git (its empty new/ folders dropped): d1/cur and d1/.Sent/cur."""
    write(tmp_path / "d1" / "cur" / "1:2,S", message("inbox"))
    write(tmp_path / "d1" / ".Sent" / "cur" / "2:2,S", message("sent"))
    write(tmp_path / "d1" / ".Drafts" / "new" / "3", message("draft"))
    items = list(iter_mail([tmp_path / "d1"]))
    assert [(item.label, item.raw) for item in items if item.raw] == [
        (f"{tmp_path}/d1/.Drafts/new/3", message("draft")),
        (f"{tmp_path}/d1/.Sent/cur/2:2,S", message("sent")),
        (f"{tmp_path}/d1/cur/1:2,S", message("inbox"))]
    assert count_mail([tmp_path / "d1"]) == len(items) == 3


LISTING = """
import json, sys
from services.archive.mailfiles import count_mail, iter_mail
items = [(item.label, item.raw is not None, item.skipped, item.error)
         for item in iter_mail(sys.argv[1:])]
print(json.dumps({"items": items, "count": count_mail(sys.argv[1:])}))
"""


def test_a_hidden_folder_that_cannot_be_listed_is_skipped_as_hidden(tmp_path):
    """~/.gnupg or ~/.ssh (mode 0700) of another user: hidden, so skipped, not failed.
    As root, listed by uid 65534 (root lists any folder)."""
    import json
    import sys
    import tempfile
    top = Path(tempfile.mkdtemp(dir="/tmp" if os.geteuid() == 0 else tmp_path))
    try:
        os.chmod(top, 0o755)
        write(top / "home" / "a.eml", message("a"))
        write(top / "home" / ".gnupg" / "secring.gpg", b"\x95\x01")
        os.chmod(top / "home" / ".gnupg", 0o700 if os.geteuid() == 0 else 0)
        if os.geteuid() == 0:
            for path in (top / "home", top / "home" / "a.eml"):
                os.chmod(path, 0o755)
            done = subprocess.run(
                [sys.executable, "-c", LISTING, str(top / "home")], user=65534, group=65534,
                extra_groups=[], capture_output=True, check=True,
                env={**os.environ, "PYTHONPATH": str(Path(mailfiles.__file__).parents[2])})
            result = json.loads(done.stdout)
        else:
            items = list(iter_mail([top / "home"]))
            result = {"items": [[item.label, item.raw is not None, item.skipped, item.error]
                                for item in items], "count": count_mail([top / "home"])}
    finally:
        os.chmod(top / "home" / ".gnupg", 0o700)
        shutil.rmtree(top)
    assert result["items"] == [[f"{top}/home/.gnupg", False, True, mailtree.HIDDEN],
                               [f"{top}/home/a.eml", True, False, None]]
    assert result["count"] == 2


# --- deep trees ---------------------------------------------------------------------------

def nested(top: Path, depth: int, name: str) -> list[int]:
    """A chain of `depth` folders named `name` under `top`, made and left open one at a
    time (its paths may be longer than PATH_MAX); the descriptors of top and each folder,
    top first."""
    descriptors = [os.open(top, os.O_RDONLY | os.O_DIRECTORY)]
    for _ in range(depth):
        os.mkdir(name, dir_fd=descriptors[-1])
        descriptors.append(os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=descriptors[-1]))
    return descriptors


def remove_nested(descriptors: list[int], name: str) -> None:
    """Empty and remove the chain `nested` made, bottom up (shutil.rmtree recurses a frame
    per level), and close its descriptors."""
    for parent, folder in reversed(list(zip(descriptors, descriptors[1:]))):
        for entry in os.listdir(folder):
            os.unlink(entry, dir_fd=folder)
        os.close(folder)
        os.rmdir(name, dir_fd=parent)
    os.close(descriptors[0])


def put(descriptor: int, name: str, data: bytes) -> None:
    file = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=descriptor)
    with os.fdopen(file, "wb") as out:
        out.write(data)


@contextlib.contextmanager
def few_descriptors():
    """Within it, some 64 more descriptors may be opened (a new one takes the lowest number
    free, below the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 64, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def chain_1500_deep(tmp_path):
    """The folders of a chain 1,500 deep ("top/d/d/.../d"), top first."""
    with folder_chain(tmp_path / "top", 1500) as folders:
        yield folders


def test_a_tree_1500_folders_deep_is_walked_holding_no_descriptor_per_level(chain_1500_deep):
    """Each folder's walk a generator inside its parent's was a RecursionError near 1,000
    deep; a walk holding each level's directory open would run out of descriptors here."""
    for level in (0, 999, 1000, 1500):
        write(chain_1500_deep[level] / f"{level}.eml", message(f"level {level}"))
    write(chain_1500_deep[0] / "z.eml", message("after the chain"))
    top = chain_1500_deep[0]
    with few_descriptors():
        items, counted = list(iter_mail([top])), count_mail([top])
    assert [(item.label, item.raw) for item in items] == [
        (f"{top}/0.eml", message("level 0")),
        (f"{top}/" + "d/" * 999 + "999.eml", message("level 999")),
        (f"{top}/" + "d/" * 1000 + "1000.eml", message("level 1000")),
        (f"{top}/" + "d/" * 1500 + "1500.eml", message("level 1500")),
        (f"{top}/z.eml", message("after the chain"))]
    assert counted == len(items)


def test_a_folder_nested_past_what_the_system_opens_fails_with_why_and_the_rest_is_read(
        tmp_path):
    """A path longer than PATH_MAX (4096 bytes on Linux) cannot be opened: the folder so
    deep fails, once, with why, and what lies above it and after it is read."""
    name = "n" * 200
    chain = nested(tmp_path, 30, name)
    try:
        put(chain[5], "five.eml", message("five levels down"))
        put(chain[0], "z.eml", message("after the chain"))
        items = list(iter_mail([tmp_path]))
        counted = count_mail([tmp_path])
    finally:
        remove_nested(chain, name)
    def folder(level: int) -> str:
        return f"{tmp_path}/" + "/".join([name] * level)
    deepest = next(folder(level) for level in range(31)
                   if len(os.fsencode(folder(level))) >= 4096)  # Linux's PATH_MAX, with NUL
    assert [(item.label, item.raw is not None, item.skipped, item.error) for item in items] == [
        (f"{tmp_path}/" + f"{name}/" * 5 + "five.eml", True, False, None),
        (deepest, False, False, f"cannot read: its path, {len(os.fsencode(deepest))} bytes, "
                                "is longer than the system opens (nested too deep, or a name "
                                "too long)"),
        (f"{tmp_path}/z.eml", True, False, None)]
    assert counted == len(items)


# --- what a Maildir holds beside cur/ and new/ ----------------------------------------------

# Entries put inside a Maildir (or a Maildir++ folder of it) beside cur/ and new/: each is
# listed as skipped, with why; none is read (a name given on its own is).
LOOSE_IN_MAILDIR = {
    "Archive.eml": mailtree.IN_MAILDIR, "old.mbox": mailtree.IN_MAILDIR,
    "notes.txt": mailtree.IN_MAILDIR, "exports/x.eml": mailtree.IN_MAILDIR,
    "exports/deeper/y": mailtree.IN_MAILDIR, "tmp/123.host": mailtree.MAILDIR_TMP,
    ".hidden.eml": mailtree.HIDDEN, ".git/config": mailtree.HIDDEN,
}
# What servers keep there: never mail, left out unlisted.
HOUSEKEEPING = ["dovecot.index", "dovecot.index.log", "dovecot-uidlist", "dovecot-keywords",
                "dovecot-uidvalidity.5f0c", "dovecot.list.index", "subscriptions",
                "maildirfolder", "maildirsize", "courierimapuiddb", "courierimapkeywords/1",
                "courierpop3dsizelist"]


def loose_entries(maildir: Path, name: str) -> str:
    """Put the entry `name` of LOOSE_IN_MAILDIR in `maildir`; the label it is listed by."""
    if name.startswith("tmp/"):
        write(maildir / name, message("half delivered"))
        return "tmp"
    write(maildir / name, FROM_LINE + message(name) if name.endswith(".mbox") else message(name))
    return ".git" if name.startswith(".git/") else name


FROM_LINE = b"From a@example.com Tue Mar  5 13:07:09 2024\n"


@pytest.mark.parametrize("where", ["", ".Sent/"], ids=["maildir", "maildir++ folder"])
@pytest.mark.parametrize("name", sorted(LOOSE_IN_MAILDIR))
@pytest.mark.parametrize("zipped", [False, True], ids=["on disk", "zipped"])
def test_what_a_maildir_holds_beside_cur_and_new_is_listed_with_why(tmp_path, name, where,
                                                                    zipped):
    """md/Archive.eml, md/old.mbox, md/exports/x.eml, md/tmp/* were dropped unlisted."""
    root = make_maildir(tmp_path / "md", {"cur/1:2,S": message("inbox")})
    folder = make_maildir(root / where, {"new/2": message("sent")}) if where else root
    label = where + loose_entries(folder, name)
    for housekeeping in HOUSEKEEPING:
        write(root / housekeeping, b"3 V1 N4\n")
    if where:
        (root / "tmp").rmdir()  # the one tmp/ holding something
    given = root
    if zipped:
        given = tmp_path / "md.zip"
        with zipfile.ZipFile(given, "w") as archive:
            for path in sorted(root.rglob("*")):  # folders too: new/ is empty
                archive.write(path, f"md/{path.relative_to(root)}")
    items = list(iter_mail([given]))
    prefix = f"{given}#md/" if zipped else f"{root}/"
    listed = [(item.label.removeprefix(prefix), item.error) for item in items if not item.raw]
    assert listed == [(label, LOOSE_IN_MAILDIR[name])]
    assert all(item.skipped for item in items if not item.raw)
    assert len([item for item in items if item.raw]) == (2 if where else 1)
    assert count_mail([given]) == len(items)


def test_symlinks_and_fifos_inside_a_maildir_are_listed(tmp_path):
    root = make_maildir(tmp_path / "md", {"cur/1:2,S": message("inbox")})
    (root / "link.eml").symlink_to(root / "cur/1:2,S")
    (root / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(root / "fifo")
    items = list(iter_mail([root]))
    listed = {item.label.removeprefix(f"{root}/"): item.error for item in items if not item.raw}
    assert set(listed) == {"link.eml", "dangling", "fifo"}
    assert "not followed" in listed["link.eml"] and "dangling" in listed["dangling"]
    assert listed["fifo"] == mailtree.IN_MAILDIR
    assert all(item.skipped for item in items if not item.raw)


# --- what an mbox holds that is no message of its own ------------------------------------

SEPARATORS = [b"From a@example.com Tue Mar  5 13:07:09 2024",
              b"From MAILER-DAEMON Fri Jul  8 12:08:34 2011",
              b"From bob@example.org  Mon Jan  1 00:00:00 +0100 2024",
              b"From a@example.com Tue, 5 Mar 2024 13:07:09 +0000"]
NOT_MAIL = {"binary junk": b"\x00\x01\x02\xff binary junk\n", "pdf": b"%PDF-1.7\n%\xe2\xe3\n",
            "prose": b"hello world, no header here\n\nat all\n", "blank lines": b"\n\n\n",
            "a colon late": b"not a header: field\n"}  # an empty one: "empty message"


@pytest.mark.parametrize("separator", SEPARATORS)
@pytest.mark.parametrize("kind", sorted(NOT_MAIL))
@pytest.mark.parametrize("zipped", [False, True], ids=["file", "zip member"])
def test_an_mbox_piece_that_is_not_mail_fails_as_a_eml_of_it_would(tmp_path, separator, kind,
                                                                     zipped):
    """After a From_ line anything was stored as a message, though the same bytes as a
    .eml were refused as not mail. But for under the From_ line the appliance's export
    writes before it (MAILER-DAEMON: the bytes name no sender): what the appliance stored,
    mail or not, imports again (review 117)."""
    junk = NOT_MAIL[kind]
    exported = mbox.parse_from_line(separator).sender == mbox.parse_from_line(
        mbox.from_line_for(junk)).sender
    data = (separator + b"\n" + message("one") + b"\n" + separator + b"\n" + junk
            + b"\n" + separator + b"\n" + message("three"))
    given = write(tmp_path / "box", data)
    if zipped:
        given = tmp_path / "box.zip"
        with zipfile.ZipFile(given, "w") as archive:
            archive.writestr("box", data)
    items = list(iter_mail([given]))
    if exported:
        assert [item.raw for item in items] == [message("one"), junk, message("three")]
        assert count_mail([given]) == 3
        return
    assert [item.raw for item in items] == [message("one"), None, message("three")]
    assert items[1].label.endswith("box#2") and items[1].error.startswith("not mail")
    line = (separator + b"\n" + message("one") + b"\n").count(b"\n") + 1
    assert items[1].error.endswith(f"(the message after the From_ line on line {line})")
    (as_eml,) = iter_mail([write(tmp_path / "junk.eml", junk)])
    assert as_eml.error.startswith("not mail")
    assert count_mail([given]) == 3


@pytest.mark.parametrize("separator", SEPARATORS)
@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["LF", "CRLF"])
@pytest.mark.parametrize("merged", [2, 3])
def test_from_lines_with_no_blank_line_before_them_are_warned_about_not_split(
        tmp_path, separator, newline, merged):
    """An mbox whose writer put no blank line before its From_ lines: its messages were
    merged into one, silently. Still one message, byte-exact, with a warning naming each
    line that looks like a separator; the next message, after a blank line, is not merged."""
    parts = [separator + newline + message(f"m{n}", newline=newline.decode())
             for n in range(merged)]
    tail = newline + separator + newline + message("after a blank line")
    path = write(tmp_path / "nb.mbox", b"".join(parts) + tail)
    items = list(iter_mail([path]))
    assert [item.raw for item in items] == [b"".join(parts)[len(parts[0][:len(separator)])
                                                             + len(newline):],
                                            message("after a blank line")]
    lines = [1 + sum(part.count(b"\n") for part in parts[:n]) for n in range(1, merged)]
    assert items[0].warning.startswith("stored as one message (from line 1), but line")
    assert ", ".join(map(str, lines)) + (" looks" if merged == 2 else " look") \
        in items[0].warning
    assert items[1].warning is None


@pytest.mark.parametrize("body", [
    b"From a@example.com Tue Mar  5 13:07:09 2024\nhello, no header after it\n",  # prose
    b">From a@example.com Tue Mar  5 13:07:09 2024\nSubject: quoted, so not one\n",
    b"From the moderators: welcome\nSubject: a header, but no From_ line above\n",
    b"From a@example.com Tue Mar  5 13:07:09 2024\n\nSubject: after a blank line\n"])
def test_a_body_line_starting_with_from_is_no_warning(tmp_path, body):
    path = write(tmp_path / "ok.mbox",
                 SEPARATORS[0] + b"\n" + message("x", "Hi.\n" + body.decode()))
    (item,) = iter_mail([path])
    assert item.raw and item.warning is None
