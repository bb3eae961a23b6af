"""Every file of Apple Mail's trees but an .emlx is read as before the .emlx reader (reviews 167, 172,
176: telling metadata from mail by content let mail through, skipped): for generated trees
of property lists (XML and binary, some holding mail in entities, <data>, UTF-16), SQLite
files made by the sqlite3 module (a database, its -wal and -shm), a bundle's mbox, Info.plist
and table_of_contents, attachments (random bytes, a PDF, Python and SQL text, a gzipped mbox,
a zip of a .docx's members), mbox and .eml files, and zips of them all, `archiver import
--json` of this tree and of the reference give the same items, outcome for outcome, and exit alike.

The reference is the tree as it was just before the .emlx reader came in (BEFORE_EMLX,
unpacked from git's history with `git archive`): so a change to how any other file is read
shows here, and must be made on purpose, in both or in this reference."""
import gzip
import json
import os
import plistlib
import random
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests import apple_mail_corpus as corpus
from tests.unit.archive.history import ROOT, services_at



BEFORE_EMLX = "f870436ac2d97f12a5c45b9febf9575ddad232e3"  # main before services.archive.apple_mail


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The tree at BEFORE_EMLX, unpacked; fails (never skips) when the history lacks it."""
    return services_at(BEFORE_EMLX, tmp_path_factory.mktemp("before-emlx"))


def imported(code: Path, data: Path, tree: Path) -> tuple[int, dict]:
    """`archiver import --data DATA --json TREE` run with `code`'s services: its exit status
    and what it says."""
    done = subprocess.run([sys.executable, "-m", "services.cli.main", "import", "--data",
                           str(data), "--json", str(tree)], capture_output=True, text=True,
                          cwd=code, env={**os.environ, "PYTHONPATH": str(code)}, timeout=300)
    return done.returncode, json.loads(done.stdout)


def outcome(summary: dict) -> tuple:
    return (summary["imported"], summary["failed"], summary["skipped"],
            sorted((problem["outcome"], problem["item"]) for problem in summary["problems"]))


MBOX = b"".join(corpus.FROM_LINE + corpus.message(f"boxed{n}") + b"\n" for n in range(2))


def as_entities(data: bytes) -> str:
    return (data.decode().replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("\n", "&#10;"))


def plists(rng: random.Random) -> dict[str, bytes]:
    settings = {"MailboxDisplayName": "Projects", "SortOrder": rng.randrange(9),
                "IsArchive": rng.random() < 0.5, "Synced": [rng.randrange(99) for _ in range(3)]}
    hiding = ('<?xml version="1.0" encoding="UTF-8"?>\n<plist version="1.0"><dict><key>n'
              "</key><string>" + as_entities(MBOX) + "</string></dict></plist>\n")
    return {"Info.plist": plistlib.dumps(settings),
            ".mboxCache.plist": plistlib.dumps(settings, fmt=plistlib.FMT_BINARY),
            "SyncedRules.plist": plistlib.dumps([settings] * rng.randrange(1, 4)),
            "Hidden entities.plist": hiding.encode(),
            "Hidden data.plist": plistlib.dumps({"blob": MBOX}),
            "Hidden UTF-16.plist": hiding.replace('"UTF-8"', '"UTF-16"').encode("utf-16"),
            "Binary mail.plist": plistlib.dumps({"mail": MBOX.decode()},
                                                fmt=plistlib.FMT_BINARY)}


def sqlite_files(folder: Path, rng: random.Random) -> None:
    """MailData/Envelope Index as Apple Mail's SQLite leaves it mid-write: the database, its
    write-ahead log and shared-memory index (copied while open), and one in UTF-16."""
    folder.mkdir(parents=True, exist_ok=True)
    live = folder.parent / "live.sqlite"
    connection = sqlite3.connect(live)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE messages (subject TEXT, sender TEXT, received INTEGER)")
    connection.executemany("INSERT INTO messages VALUES (?, ?, ?)", [
        (f"Subject: report {n}\nFrom: a@b", "alice@example.com", rng.randrange(1 << 31))
        for n in range(rng.randrange(5, 50))])
    connection.commit()
    for suffix in ("", "-wal", "-shm"):
        (folder / f"Envelope Index{suffix}").write_bytes(Path(f"{live}{suffix}").read_bytes())
    connection.close()
    live.unlink()
    utf16 = sqlite3.connect(folder / "Protected Index")
    utf16.execute("PRAGMA encoding='UTF-16le'")
    utf16.execute("CREATE TABLE t (x TEXT)")
    utf16.execute("INSERT INTO t VALUES (?)", (MBOX.decode(),))
    utf16.commit()
    utf16.close()


def attachments(rng: random.Random) -> dict[str, bytes]:
    docx = corpus_zip({"[Content_Types].xml": b'<?xml version="1.0"?><Types/>',
                       "word/document.xml": b"<w:document>From: x\nSubject: y</w:document>"})
    return {"random.bin": bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000))),
            "sheet.pdf": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
            "script.py": b"import os\nfrom email import message\nprint('Subject: hi')\n",
            "dump.sql": b"CREATE TABLE t (x);\nINSERT INTO t VALUES ('To: bob');\n",
            "mail.gz": gzip.compress(MBOX),
            "letter.docx": docx,
            "forwarded.eml": corpus.message(f"attached{rng.randrange(1000)}")}


def corpus_zip(members: dict[str, bytes]) -> bytes:
    import io
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def generated_tree(root: Path, seed: int) -> Path:
    """A tree of Apple Mail's files but .emlx ones, and the same zipped inside it."""
    rng = random.Random(seed)
    tree = root / "from-mac"
    bundle = tree / "Exports/Projects.mbox"
    corpus.write(bundle, "mbox", MBOX)
    corpus.write(bundle, "Info.plist", corpus.info_plist(binary=rng.random() < 0.5))
    corpus.write(bundle, "table_of_contents", corpus.table_of_contents(2))
    for name, data in plists(rng).items():
        corpus.write(tree, f"V10/MailData/{name}", data)
    sqlite_files(tree / "V10/MailData", rng)
    data_folder = tree / "V10/ACCOUNT/INBOX.mbox/UUID/Data/0/1"
    for name, data in attachments(rng).items():
        corpus.write(data_folder, f"Attachments/{rng.randrange(100, 999)}/2/{name}", data)
    corpus.write(tree, "Saved/loose.eml", corpus.message("loose"))
    corpus.write(tree, "Saved/Sent", MBOX)
    zipped_copy = root / "copy.zip"
    corpus.zipped(tree, zipped_copy)
    corpus.write(tree, "Zipped/copy.zip", zipped_copy.read_bytes())
    return tree


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("zipped", [False, True], ids=["unpacked", "zipped"])
def test_every_file_but_an_emlx_reads_as_before(tmp_path, reference, seed, zipped):
    tree = generated_tree(tmp_path, seed)
    assert not any(path.name.lower().endswith(".emlx") for path in tree.rglob("*"))
    root = corpus.zipped(tree, tmp_path / "tree.zip") if zipped else tree
    status, summary = imported(ROOT, tmp_path / "data-branch", root)
    before_status, before_summary = imported(reference, tmp_path / "data-before", root)
    assert (status, outcome(summary)) == (before_status, outcome(before_summary))
    assert status == 1 and summary["failed"] > 10 and summary["imported"] >= 4
