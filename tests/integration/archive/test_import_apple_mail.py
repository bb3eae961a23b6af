"""`archiver import --json` of what Apple Mail leaves, as a user migrating from a Mac runs
it: a copy of ~/Library/Mail/V10, unpacked and zipped. Each .emlx is stored as exactly the
bytes it counts, partial messages warned about; Apple Mail's metadata fails as any file that
is no mail does; a damaged .emlx fails alone, and so does a property list after a message
that is not Apple's."""
import hashlib
import json

import pytest

from tests import apple_mail_corpus as corpus, search_output

pytestmark = pytest.mark.integration


@pytest.fixture
def data(tmp_path):
    return tmp_path / "data"


def imported(archiver, data, *paths, check=0) -> dict:
    done = archiver("import", "--data", data, "--json", *paths, check=check)
    return json.loads(done.stdout)


def found(archiver, data, query) -> set[str]:
    done = archiver("search", query, "--data", data, "--json", "--limit", 1000, check=0)
    return set(search_output.digests(done.stdout))


def digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def by_outcome(summary: dict, root) -> dict[str, list[str]]:
    outcomes: dict[str, list[str]] = {}
    for problem in summary["problems"]:
        label = problem["item"].removeprefix(f"{root}/").removeprefix(f"{root}#")
        outcomes.setdefault(problem["outcome"], []).append(label)
    return {outcome: sorted(labels) for outcome, labels in outcomes.items()}


@pytest.mark.parametrize("zipped", [False, True], ids=["unpacked", "zipped"])
def test_a_mac_migration_imports_every_emlx_and_fails_apples_metadata_as_main(
        archiver, data, tmp_path, zipped):
    """Each .emlx is stored as exactly the bytes it counts, a partial one warned about;
    Apple's metadata beside them is no mail and fails, as any such file does: the run ends 1."""
    tree = tmp_path / "from-mac"
    stored, partial = corpus.store_inbox(tree, ["inboxlf", "archivecrlf"], "partialimap")
    root = corpus.zipped(tree, tmp_path / "from-mac.zip") if zipped else tree
    summary = imported(archiver, data, root, check=1)
    assert (summary["imported"], summary["failed"], summary["skipped"]) == (3, 1, 0)
    outcomes = by_outcome(summary, root)
    assert outcomes["warning"] == ["V10/ACCOUNT/INBOX.mbox/UUID/Data/0/1/Messages/"
                                   "201.partial.emlx"]
    assert outcomes["failed"] == ["V10/ACCOUNT/INBOX.mbox/Info.plist"]
    everything = found(archiver, data, "from:alice@example.com")
    assert everything == {digest(raw) for raw in [*stored, partial]}
    assert found(archiver, data, "archivecrlf") == {digest(stored[1])}


def test_a_refused_property_list_fails_and_its_message_is_imported(archiver, data, tmp_path):
    raw = corpus.message("counted")
    hidden = corpus.message("hidden").replace(b"<", b"&lt;").replace(b">", b"&gt;").replace(
        b"\n", b"&#10;")  # a message, as XML text
    trailer = corpus.emlx_trailer().replace(b"<dict>", b"<dict><key>subject</key><string>"
                                            + hidden + b"</string>", 1)
    path = corpus.write(tmp_path, "Messages/1.emlx", corpus.emlx(raw, trailer=trailer))
    summary = imported(archiver, data, path, check=1)
    assert (summary["imported"], summary["failed"], summary["skipped"]) == (1, 1, 0)
    [problem] = summary["problems"]
    assert problem["item"] == str(path) and "line break" in problem["reason"]
    assert found(archiver, data, "counted") == {digest(raw)}


def test_a_damaged_emlx_fails_alone_and_the_run_ends_1(archiver, data, tmp_path):
    messages = tmp_path / "INBOX.mbox/Data/Messages"
    good = [corpus.message(word) for word in ("first", "second")]
    corpus.write(messages, "1.emlx", corpus.emlx(good[0]))
    corpus.write(messages, "2.emlx", corpus.emlx(corpus.message("third"), count=99999))
    corpus.write(messages, "3.emlx", corpus.emlx(good[1]))
    summary = imported(archiver, data, tmp_path / "INBOX.mbox", check=1)
    assert (summary["imported"], summary["failed"], summary["skipped"]) == (2, 1, 0)
    [problem] = summary["problems"]
    assert problem["item"].endswith("Messages/2.emlx")
    assert "99999 bytes of message its first line counts" in problem["reason"]
    assert found(archiver, data, "second") == {digest(good[1])}
    assert found(archiver, data, "third") == set()
