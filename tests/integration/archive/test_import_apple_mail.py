"""`archiver import --json` of what Apple Mail leaves, as a user migrating from a Mac runs
it: "Export Mailbox..." bundles and a copy of ~/Library/Mail/V10, unpacked and zipped. The
run ends 0 with the mail stored (each .emlx as exactly the bytes it counts), Apple Mail's
metadata listed as skipped and partial messages warned about; a damaged .emlx fails alone."""
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
def test_a_mac_migration_imports_every_message_and_ends_0(archiver, data, tmp_path, zipped):
    tree = tmp_path / "from-mac"
    expected = corpus.v10_store(tree / "Library/Mail").under("Library/Mail")
    expected.add(corpus.export_bundle(tree / "Exports", "Projects.mbox", ["alpha", "beta"],
                                      binary_plist=True).under("Exports"))
    expected.add(corpus.export_bundle(tree / "Exports", "Sent.mbox", ["gamma"],
                                      with_toc=False, crlf=True).under("Exports"))
    root = corpus.zipped(tree, tmp_path / "from-mac.zip") if zipped else tree
    summary = imported(archiver, data, root)
    assert (summary["imported"], summary["failed"], summary["duplicates"]) == (
        len(expected.stored), 0, 0)
    assert summary["skipped"] == len(expected.skipped)
    outcomes = by_outcome(summary, root)
    assert len(outcomes["warning"]) == len(expected.partial) == 2
    assert outcomes["warning"] == sorted(expected.partial)
    assert "failed" not in outcomes
    assert sorted(outcomes["skipped"]) == sorted(expected.skipped)
    # Each message is stored as exactly the bytes its .emlx counts (or its mbox holds).
    everything = found(archiver, data, "from:alice@example.com")
    assert everything == {digest(raw) for raw in expected.stored}
    assert found(archiver, data, "archive0d3ecrlf") == {
        digest(corpus.message("archive0d3ecrlf", crlf=True))}
    assert found(archiver, data, "partialimap") == {digest(corpus.partial_message("partialimap"))}


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


def test_mail_saved_under_a_bundles_metadata_names_is_imported(archiver, data, tmp_path):
    bundle = tmp_path / "Saved.mbox"
    corpus.export_bundle(tmp_path, "Saved.mbox", ["kept"])
    corpus.write(bundle, "Info.plist", corpus.message("plistnamed"))
    summary = imported(archiver, data, bundle)
    assert (summary["imported"], summary["failed"], summary["skipped"]) == (2, 0, 1)
    assert summary["problems"][0]["item"] == f"{bundle}/table_of_contents"
    assert found(archiver, data, "plistnamed") == {digest(corpus.message("plistnamed"))}
