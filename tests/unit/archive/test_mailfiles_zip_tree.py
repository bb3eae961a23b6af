"""A zip is read by the rules a tree on disk is read by (services.archive.mailtree): each
layout the tree rules cover, zipped (with and without its folders' own entries, as zip
tools differ), gives what the same zip unpacked gives, item for item, and count_mail
counts each item."""
import io
import os
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from services.archive import evidence, mailfiles, mailtree
from services.archive.mailfiles import MailItem, count_mail, iter_mail

MiB = 1024 * 1024
FROM_LINE = b"From x@example.com Mon Jan  1 00:00:00 2024\n"


def message(subject: str) -> bytes:
    return (f"From: a@example.com\nSubject: {subject}\nMessage-ID: <{subject}@x>\n\n"
            "Hello.\n").encode()


def mbox_of(*subjects: str) -> bytes:
    return b"\n".join(FROM_LINE + message(subject) for subject in subjects)


MANIFEST_CSV = b"file,digest,message_id,date,from,to,cc,subject,size,archived_at,source\r\n"
EXPORT_JSON = b'{\n  "export": "e1",\n  "created": "2024-01-01T00:00:00Z"\n}\n'
SHA256SUMS = b"%s  messages/a.eml\n" % (b"0" * 64)

# Each layout: path in the tree -> bytes (None: an empty folder).
LAYOUTS = {
    "maildir with dovecot's files, tmp/ and Maildir++ folders": {
        "Mail/cur/1.a:2,S": message("cur"), "Mail/new/2.b": message("new"),
        "Mail/tmp/3.c": message("half delivered"), "Mail/cur/.hidden": b"not a message",
        "Mail/dovecot.index": b"\0\1", "Mail/dovecot.index.cache": b"\0\2",
        "Mail/dovecot.index.log": b"\0\3", "Mail/dovecot-uidlist": b"3 V1 N4\n",
        "Mail/dovecot-keywords": b"0 $Junk\n", "Mail/subscriptions": b"Sent\n",
        "Mail/maildirfolder": b"", "Mail/dovecot-uidvalidity.5f0c": b"",
        "Mail/.Sent/cur/4.d:2,S": message("sent"), "Mail/.Sent/new": None,
        "Mail/.Sent/maildirfolder": b"", "Mail/.Sent/tmp/5.e": message("sent half"),
        "Mail/.Drafts/cur/6.f:2,D": message("draft, its new/ lost"),
        "Mail/.Drafts/dovecot.index.log": b"\0\4",
        "Mail/cur/folder/x": message("a folder in cur/"),
    },
    "a maildir at the zip's root": {
        "cur/1:2,S": message("root cur"), "new/2": message("root new"), "tmp/3": b"x",
        "dovecot-uidlist": b"3 V1\n",
    },
    "a maildir whose new/ was lost, with a hidden Maildir++ folder": {
        "M/cur/2:2,S": FROM_LINE + message("inbox"), "M/.Sent/cur/1:2,S": message("sent"),
        "M/.Sent/new/7": message("sent new"), "M/.mail/inbox": mbox_of("hidden mbox"),
        "M/.notes": b"hidden file",
    },
    "loose mail with hidden entries and macOS's metadata": {
        "mail/one.eml": message("one"), "mail/.DS_Store": b"\0\0\0\1Bud1",
        "__MACOSX/mail/._one.eml": b"\0\5\26\7\0\2\0\0Mac OS X        ",
        "__MACOSX/._mail": b"\0\5\26\7", "mail/.git/objects/ab/cd": b"x\x9c",
        "mail/deeper/two.eml": message("two"), "mail/notes.txt": b"just text\n",
    },
    "mbox files, dotlocks, emptied mailboxes": {
        "inbox": message("inbox, one message"), "inbox.lock": b"",
        "spool": message("spool"), "spool.lock": b"4242 mailhost\n",
        "note": message("note"), "note.lock": message("a message named note.lock"),
        "orphan.lock": b"", "archive.mbox": mbox_of("m1", "m2", "m3"),
        "emptied": b"", "damaged.eml": b"", "sub/emptied.mbox": b"",
    },
    "an unpacked export": {
        "exp/messages/a.eml": message("exported"), "exp/manifest.csv": MANIFEST_CSV,
        "exp/export.json": EXPORT_JSON, "exp/SHA256SUMS": SHA256SUMS,
    },
    "mail named like an export's manifest files": {
        "m/manifest.csv": message("named manifest.csv"),
        "m/export.json": message("named export.json"), "m/SHA256SUMS": mbox_of("s1", "s2"),
    },
    "an export's manifest at the zip's root, some mail so named": {
        "messages/b.eml": message("b"), "manifest.csv": MANIFEST_CSV,
        "export.json": message("export.json is mail"), "SHA256SUMS": SHA256SUMS,
    },
    "a folder named cur/ that is no maildir part, zips and mboxes inside": {
        "x/cur/a": FROM_LINE + message("no maildir: an mbox of one"),
        "x/inner.zip": None, "x/new.eml": message("eml"), "y/cur": None,
    },
}


def build(root: Path, layout: dict) -> Path:
    for name, data in layout.items():
        path = root / name
        if name.endswith(".zip"):
            path.parent.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(path, "w") as inner:
                inner.writestr("in/one.eml", message("in a zip in a zip"))
                inner.writestr("in/.DS_Store", b"\0")
        elif data is None:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return root


def zipped(tree: Path, path: Path, folders: bool) -> Path:
    """`tree` zipped, with entries for its folders (zip -r, Archive Utility) or not."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for directory, subdirectories, files in sorted(os.walk(tree)):
            relative = Path(directory).relative_to(tree)
            if folders and relative != Path("."):
                archive.write(directory, f"{relative.as_posix()}/")
            for name in sorted(files, reverse=True):  # zip order is not name order
                archive.write(Path(directory) / name, (relative / name).as_posix())
    return path


def relabelled(items: list[MailItem], prefix: str) -> list[tuple]:
    return [(item.label.removeprefix(prefix), item.raw, item.error, item.skipped,
             item.from_line_date) for item in items]


@pytest.mark.parametrize("folders", [True, False], ids=["folder entries", "files only"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_zip_is_read_as_the_same_tree_unpacked(tmp_path, layout, folders):
    archive = zipped(build(tmp_path / "tree", LAYOUTS[layout]), tmp_path / "t.zip", folders)
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(archive) as reader:
        reader.extractall(unpacked)
    from_zip, from_disk = list(iter_mail([archive])), list(iter_mail([unpacked]))
    assert relabelled(from_zip, f"{archive}#") == relabelled(from_disk, f"{unpacked}/")
    assert count_mail([archive]) == len(from_zip)
    assert count_mail([unpacked]) == len(from_disk)


# Generated trees: folders of the names the tree rules look at, files of what they read.
NAMES = ["cur", "new", "tmp", ".Sent", ".DS_Store", "__MACOSX", "m", "a.eml", "inbox",
         "inbox.lock", "manifest.csv", "export.json", "SHA256SUMS", "1:2,S", "dovecot.index"]
CONTENTS = [message("x"), mbox_of("y1", "y2"), FROM_LINE + message("z"), b"", b"4242 host\n",
            b"not mail\n", MANIFEST_CSV, EXPORT_JSON, SHA256SUMS]


def locks_an_mbox(tree: dict) -> bool:
    """Whether a folder of `tree` holds an mbox and a "<its name>.lock": on disk that is a
    delivery in progress (the mbox reader waits for it, then fails it), not in a zip."""
    return any(isinstance(content, bytes) and content.startswith(FROM_LINE)
               and f"{name}.lock" in tree for name, content in tree.items()) or any(
        locks_an_mbox(content) for content in tree.values() if isinstance(content, dict))


TREES = st.recursive(st.sampled_from(CONTENTS),
                     lambda folders: st.dictionaries(st.sampled_from(NAMES), folders, max_size=5),
                     max_leaves=16).filter(lambda tree: isinstance(tree, dict)
                                           and not locks_an_mbox(tree))


def layout_of(tree: dict, prefix: str = "") -> dict:
    """A generated tree as a layout `build` makes (an empty folder: None)."""
    layout = {}
    for name, content in tree.items():
        if isinstance(content, dict):
            layout.update(layout_of(content, f"{prefix}{name}/") or {f"{prefix}{name}": None})
        else:
            layout[f"{prefix}{name}"] = content
    return layout


@settings(max_examples=300, deadline=None)
@given(tree=TREES)
def test_a_generated_tree_zipped_is_read_as_on_disk(tree):
    """What the walk of a tree on disk finds and lists, the walk of it zipped (with its
    folders' entries: a zip without them loses its empty folders) finds and lists too."""
    with tempfile.TemporaryDirectory() as scratch:
        on_disk = build(Path(scratch) / "tree", layout_of(tree))
        on_disk.mkdir(exist_ok=True)
        archive = zipped(on_disk, Path(scratch) / "t.zip", folders=True)
        from_zip, from_disk = list(iter_mail([archive])), list(iter_mail([on_disk]))
        assert relabelled(from_zip, f"{archive}#") == relabelled(from_disk, f"{on_disk}/")
        assert count_mail([archive]) == len(from_zip) and count_mail([on_disk]) == len(from_disk)


def outcome(items) -> list[tuple]:
    return [(item.label.partition("#")[2], "read" if item.raw else
             "skipped" if item.skipped else "failed") for item in items]


def zip_of(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED
           ) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_a_zipped_maildirs_tmp_and_dovecots_files_are_not_read(tmp_path):
    archive = zip_of(tmp_path / "m.zip", {
        "Mail/dovecot.index": b"\0\1", "Mail/dovecot-uidlist": b"3 V1 N4\n",
        "Mail/subscriptions": b"Sent\n", "Mail/maildirfolder": b"",
        "Mail/new/2": message("new"), "Mail/cur/1:2,S": message("cur"),
        "Mail/tmp/3": message("being delivered"), "Mail/.Sent/maildirfolder": b"",
        "Mail/.Sent/cur/4:2,S": message("sent")})
    items = list(iter_mail([archive]))
    assert outcome(items) == [("Mail/new/2", "read"), ("Mail/cur/1:2,S", "read"),
                              ("Mail/.Sent/cur/4:2,S", "read"), ("Mail/tmp", "skipped")]
    assert items[3].error == mailtree.MAILDIR_TMP
    assert count_mail([archive]) == 4


def test_a_zipped_dotlock_is_listed_as_the_lock(tmp_path):
    archive = zip_of(tmp_path / "l.zip", {"inbox": mbox_of("one"), "inbox.lock": b""})
    items = list(iter_mail([archive]))
    assert outcome(items) == [("inbox#1", "read"), ("inbox.lock", "skipped")]
    assert items[1].error == "the dotlock of inbox (held while mail is written to it)"
    assert count_mail([archive]) == 2


def test_macos_metadata_is_listed_once_and_hidden_members_as_skipped(tmp_path):
    archive = zip_of(tmp_path / "mac.zip", {
        "mail/one.eml": message("one"), "__MACOSX/mail/._one.eml": b"\0\5\26\7",
        "__MACOSX/mail/._two.eml": b"\0\5\26\7", "mail/.DS_Store": b"\0\0\0\1Bud1"})
    items = list(iter_mail([archive]))
    assert [(label, item.error) for (label, _), item in zip(outcome(items), items)
            if item.skipped] == [("__MACOSX", mailtree.MACOS_METADATA_SKIPPED),
                                 ("mail/.DS_Store", mailtree.HIDDEN)]
    assert outcome(items)[-1] == ("mail/one.eml", "read") and len(items) == 3
    assert count_mail([archive]) == 3


def test_an_unpacked_macos_zip_skips_its_metadata_folder_once(tmp_path):
    (tmp_path / "t/__MACOSX/mail").mkdir(parents=True)
    (tmp_path / "t/__MACOSX/mail/._one.eml").write_bytes(b"\0\5\26\7")
    (tmp_path / "t/one.eml").write_bytes(message("one"))
    items = list(iter_mail([tmp_path / "t"]))
    assert [(item.label, item.skipped, item.error) for item in items if not item.raw] == [
        (f"{tmp_path}/t/__MACOSX", True, mailtree.MACOS_METADATA_SKIPPED)]


@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
def test_an_exports_manifest_is_listed_and_mail_so_named_is_read(tmp_path, as_zip):
    members = {"manifest.csv": MANIFEST_CSV, "export.json": message("json"),
               "SHA256SUMS": SHA256SUMS, "messages/a.eml": message("a")}
    if as_zip:
        path = zip_of(tmp_path / "e.zip", members)
    else:
        path = build(tmp_path / "e", members)
    items = list(iter_mail([path]))
    labels = [item.label.partition("#")[2] if as_zip else item.label.removeprefix(f"{path}/")
              for item in items]
    assert [(label, item.raw is not None, item.skipped) for label, item in zip(labels, items)
            ] == [("SHA256SUMS", False, True), ("export.json", True, False),
                  ("manifest.csv", False, True), ("messages/a.eml", True, False)]
    assert items[0].error == mailtree.EXPORT_MANIFEST_SKIPPED
    assert count_mail([path]) == len(items) == 4


def test_what_an_export_writes_is_told_as_its_manifest_and_imports_again(tmp_path):
    info = evidence.ExportInfo("e1", 1_700_000_000, "alice", "auditor", "node1", "zip",
                               query="from:a")
    out = io.BytesIO()
    evidence.write_export([("ab" * 32, message("x"), {}), ("cd" * 32, message("y"), {})],
                          out, info)
    path = tmp_path / "export.zip"
    path.write_bytes(out.getvalue())
    with zipfile.ZipFile(path) as archive:
        for name in mailtree.EXPORT_MANIFEST_FILES:
            with archive.open(name) as member:
                assert mailfiles.is_export_manifest(name, member), name
    items = list(iter_mail([path]))
    assert sorted(item.raw for item in items if item.raw) == [message("x"), message("y")]
    assert [(item.label.partition("#")[2], item.error) for item in items if item.skipped] \
        == [(name, mailtree.EXPORT_MANIFEST_SKIPPED) for name in sorted(
            mailtree.EXPORT_MANIFEST_FILES)]
    assert count_mail([path]) == len(items) == 5


# Mail as compressible as mail gets: one line repeated (a cron or backup log), in each
# position of a message (headers, body, a base64 attachment of one byte value).
COMPRESSIBLE = {
    "cron log": lambda size: message("cron log")[:-7] + b"job ok: nothing to do\n" * (size // 22),
    "blank lines": lambda size: message("blank") + b"\n" * size,
    "long header": lambda size: (b"From: a@example.com\nX-Trace: " + b"a" * size
                                 + b"\nSubject: header\n\nx\n"),
    "attachment": lambda size: message("attached")[:-7] + b"AAAA\n" * (size // 5),
}


@pytest.mark.parametrize("kind", sorted(COMPRESSIBLE))
@pytest.mark.parametrize("megabytes", [1, 3, 5])
def test_very_compressible_mail_within_the_limit_is_read_from_a_zip(tmp_path, kind, megabytes):
    """The appliance's own export of a cron log of 1.3 MB was refused as "a zip bomb?"
    (more than 100 times at 1 MiB or more): mail under max_bytes is read at any ratio."""
    raw = COMPRESSIBLE[kind](megabytes * MiB)
    archive = zip_of(tmp_path / "x.zip", {"messages/a.eml": raw, "b.eml": message("b"),
                                          "box": FROM_LINE + raw + b"\n" + FROM_LINE + message("c")})
    items = list(iter_mail([archive], max_bytes=6 * MiB))
    assert [(item.label.partition("#")[2], item.raw, item.error) for item in items] == [
        ("b.eml", message("b"), None), ("box#1", raw, None), ("box#2", message("c"), None),
        ("messages/a.eml", raw, None)]
    assert count_mail([archive], max_bytes=6 * MiB) == 4


@pytest.mark.parametrize("count", [300, 20_000])
def test_an_mbox_of_near_identical_mail_is_read_from_a_zip(tmp_path, count):
    """An export's mbox of cron mails was refused whole (more than 100 times)."""
    cron = [message(f"cron: backup done {number}") for number in range(count)]
    archive = zip_of(tmp_path / "cron.zip", {"messages.mbox": b"\n".join(
        FROM_LINE + raw for raw in cron)})
    assert [item.raw for item in iter_mail([archive])] == cron
    assert count_mail([archive]) == count


def bzip2_zip(path: Path, members: dict[str, bytes]) -> Path:
    return zip_of(path, members, zipfile.ZIP_BZIP2)


def test_bzip2_members_are_refused_unread_and_counted_alike(tmp_path):
    """bzip2 (and LZMA) reach far past deflate's ~1032:1, and zipfile inflates them with no
    bound before cutting to the declared size: each member fails, naming its method, unread
    (review 117; the budget bounded their total, not one member's)."""
    big = message("big")[:-7] + b"\n" * (MiB - 100)
    archive = bzip2_zip(tmp_path / "b.zip", {f"{n:02}.eml": big + b"%d" % n for n in range(40)})
    items = list(iter_mail([archive], max_bytes=MiB))
    assert len(items) == 40 and not any(item.raw for item in items)
    assert all(item.error.startswith("compressed with bzip2 (zip method 12)") for item in items)
    assert count_mail([archive], max_bytes=MiB) == 40


def test_zips_nested_to_amplify_are_refused_past_the_budget(tmp_path):
    """A zip of deflated members inside a deflated zip: the inner streams deflate again, so
    one KB of the outer zip stood for a MB; the budget covers the zips inside a zip."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for number in range(200):
            archive.writestr(f"{number}.eml", message("n")[:-7] + b"\n" * (MiB - 100))
    archive = zip_of(tmp_path / "outer.zip", {"inner.zip": inner.getvalue()})
    assert archive.stat().st_size * 1500 < 200 * MiB  # amplified past deflate's ceiling
    items = list(iter_mail([archive], max_bytes=MiB))
    read = [item for item in items if item.raw]
    assert len(items) == 200 and 0 < len(read) < 100
    assert all("a zip bomb?" in item.error for item in items[len(read):])
    assert count_mail([archive], max_bytes=MiB) == 200


def test_a_too_compressed_mbox_over_the_limit_is_read_a_message_at_a_time(tmp_path):
    cron = b"\n".join(FROM_LINE + message("cron: backup done") for _ in range(20_000))
    archive = zip_of(tmp_path / "cron.zip", {"cron.mbox": cron})
    assert len(list(iter_mail([archive], max_bytes=MiB))) == 20_000


def test_a_maildir_plus_plus_folder_whose_new_was_lost_is_read_on_disk(tmp_path):
    """Its mail was dropped unreported: inside a Maildir loose files are not mail, and a
    folder with cur/ but no new/ was no Maildir."""
    (tmp_path / "Mail/new").mkdir(parents=True)
    (tmp_path / "Mail/.Drafts/cur").mkdir(parents=True)
    (tmp_path / "Mail/.Drafts/cur/1:2,D").write_bytes(message("draft"))
    (tmp_path / "Mail/cur").mkdir()
    items = list(iter_mail([tmp_path / "Mail"]))
    assert [(item.label, item.raw) for item in items] == [
        (f"{tmp_path}/Mail/.Drafts/cur/1:2,D", message("draft"))]
    assert count_mail([tmp_path / "Mail"]) == 1


def test_a_zipped_hidden_folder_with_cur_or_new_alone_is_a_maildir_folder(tmp_path):
    """A Maildir copied by git, then zipped: d1/cur and d1/.Sent/cur, no new/."""
    archive = zip_of(tmp_path / "g.zip", {
        "d1/cur/1:2,S": message("inbox"), "d1/.Sent/cur/2:2,S": message("sent"),
        "d1/.Drafts/new/3": message("draft"), "d1/.cache/x": b"not mail"})
    items = list(iter_mail([archive]))
    assert outcome(items) == [("d1/.Drafts/new/3", "read"), ("d1/.Sent/cur/2:2,S", "read"),
                              ("d1/.cache", "skipped"), ("d1/cur/1:2,S", "read")]
    assert count_mail([archive]) == len(items)


def test_a_deep_member_is_read_and_a_deeper_one_fails_and_the_rest_are_read(tmp_path):
    """One folder level per nested generator stopped the whole zip (RecursionError); one
    per level of a stack held a path each (some 1 GB for a name 30,000 folders deep): a
    member nested deeper than ZIP_NAME_PARTS fails, with why, and the others are read."""
    deep = "b/" * (mailtree.ZIP_NAME_PARTS - 1) + "x.eml"
    deeper = "c/" * 20_000 + "x.eml"
    archive = zip_of(tmp_path / "deep.zip", {"a.eml": message("a"), deep: message("deep"),
                                             deeper: message("deeper"), "z.eml": message("z")})
    items = list(iter_mail([archive]))
    assert outcome(items) == [("a.eml", "read"), (deep, "read"), ("z.eml", "read"),
                              (deeper, "failed")]
    assert items[3].error == "its name nests 20000 folders deep (at most 255 are read): not read"
    assert count_mail([archive]) == len(items) == 4


def test_members_with_no_name_left_or_data_in_a_folder_entry_fail_with_why(tmp_path):
    """Unpacked, each would be nowhere (unzip refuses or drops them): each is an item."""
    archive = zip_of(tmp_path / "odd.zip", {
        ".": message("dot"), "..": message("dot dot"), "./..": b"x", "./": b"",
        "mail/": message("data in a folder's entry"), "mail/one.eml": message("one")})
    items = list(iter_mail([archive]))
    assert outcome(items) == [("mail/one.eml", "read"), (".", "failed"), ("..", "failed"),
                              ("./..", "failed"), ("mail/", "failed")]
    assert items[1].error == mailtree.NO_NAME_LEFT
    assert items[4].error.startswith("a folder's entry (its name ends in '/') holding ")
    assert count_mail([archive]) == len(items) == 5


def test_a_zip_inside_a_zip_over_the_limit_counts_as_its_one_item(tmp_path):
    """It fails whole (read by seeking, it would be inflated again and again); count_mail
    counted its members."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:  # stored: no ratio to refuse it by
        for number in range(5):
            archive.writestr(f"{number}.eml", message(f"inner {number}") * 20)
    archive = zip_of(tmp_path / "outer.zip", {"inner.zip": inner.getvalue(),
                                              "one.eml": message("one")})
    limit = len(inner.getvalue()) - 1
    items = list(iter_mail([archive], max_bytes=limit))
    assert outcome(items) == [("inner.zip", "failed"), ("one.eml", "read")]
    assert "a zip inside a zip" in items[0].error
    assert count_mail([archive], max_bytes=limit) == len(items) == 2
    assert count_mail([archive]) == len(list(iter_mail([archive]))) == 6
