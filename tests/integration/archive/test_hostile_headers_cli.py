"""Messages whose header fields name charsets no charset has, or carry 8-bit bytes where
text is decoded (tests.integration.archive.hostile: charset_labels, eight_bit_headers),
through the CLI as an operator meets them: an import stores and indexes every one byte-exact
beside ordinary mail, `show` reads each, and an export holds each and imports back to the
same digests. One such Subject once stopped a whole import (and SMTP said 451 to it
forever); one such file name made `show` and every export that matched it fail."""
import hashlib
import json
import zipfile

import pytest

from services.archive import metadata, mime
from services.archive.store import Store
from services.cli.main import main
from tests import search_output
from tests.integration.archive.hostile import (charset_labels, corpus, eight_bit_headers,
                                              message, normal, surrogate_texts)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cases():
    hostile = charset_labels() + eight_bit_headers() + surrogate_texts()
    return [case for n, bad in enumerate(hostile) for case in (bad, normal(n))]


@pytest.fixture
def imported(archiver, tmp_path, cases):
    folder = tmp_path / "emls"
    folder.mkdir()
    for n, case in enumerate(cases):
        (folder / f"{n:04d}.eml").write_bytes(case.raw)
    data = tmp_path / "data"
    done = archiver("import", "--data", data, "--json", folder, check=0)
    return data, json.loads(done.stdout)


def digests(archiver, data) -> set[str]:
    done = archiver("search", "", "--data", data, "--json", "--limit", 100000, check=0)
    return set(search_output.digests(done.stdout))


def test_every_message_is_imported_indexed_and_shown(archiver, imported, cases, capsys):
    data, summary = imported
    assert (summary["imported"], summary["indexed"], summary["failed"], summary["problems"]) \
        == (len(cases), len(cases), 0, [])
    assert digests(archiver, data) == {hashlib.sha256(case.raw).hexdigest() for case in cases}
    for case in cases:  # `archiver show` in this process: a process each would take minutes
        digest = hashlib.sha256(case.raw).hexdigest()
        assert main(["show", digest, "--data", str(data), "--json"]) == 0, case.name
        meta = json.loads(capsys.readouterr().out)
        assert meta["digest"] == digest, case.name
        texts = [value for value in meta.values() if isinstance(value, str)] + [
            text for value in meta.values() if isinstance(value, list)
            for text in value if isinstance(text, str)]
        assert all(text == text.encode("utf-8", "replace").decode("utf-8")
                   for text in texts), (case.name, texts)  # UTF-8 can carry it
        assert main(["show", digest, "--data", str(data)]) == 0, case.name
        assert f"digest:       {digest}" in capsys.readouterr().out, case.name


def test_an_export_holds_every_message_and_imports_back_byte_exact(archiver, imported, cases,
                                                                   tmp_path):
    data, _ = imported
    archiver("export", "", "--data", data, "--format", "zip", "-o", tmp_path / "all.zip",
             check=0)
    with zipfile.ZipFile(tmp_path / "all.zip") as exported:
        held = {hashlib.sha256(exported.read(name)).hexdigest()
                for name in exported.namelist() if name.endswith(".eml")}
    assert held == {hashlib.sha256(case.raw).hexdigest() for case in cases}
    again = tmp_path / "again"
    summary = json.loads(archiver("import", "--data", again, "--json", tmp_path / "all.zip",
                                  check=0).stdout)
    assert (summary["imported"], summary["failed"]) == (len(cases), 0)
    assert digests(archiver, again) == held


def test_header_text_read_from_any_hostile_message_is_valid_unicode():
    """No lone surrogate (which UTF-8 cannot carry) in what the store keeps or a page shows
    of a message's header fields, however malformed the encoded-words."""
    for case in corpus():
        meta = metadata.header_metadata(case.raw, None, 0.0)
        summary = mime.summarize_headers(case.raw)
        texts = [value for value in meta.values() if isinstance(value, str)] + [
            summary.subject, summary.message_id or "", *summary.from_addrs, *summary.to,
            *summary.cc, *summary.bcc]
        for text in texts:
            assert text == text.encode("utf-8", "replace").decode("utf-8"), (case.name, text)


def imported_with_older_metadata(archiver, tmp_path, word: str, **older) -> tuple:
    """(data folder, digest) of message `word` imported, its stored metadata then given
    `older` values, as a release before the fix wrote them."""
    raw = message(word)
    (tmp_path / "one.eml").write_bytes(raw)
    data, digest = tmp_path / "data", hashlib.sha256(raw).hexdigest()
    archiver("import", "--data", data, "--json", tmp_path / "one.eml", check=0)
    store = Store(data / "store", 2**30)
    try:
        with store.env.begin(write=True) as txn:
            store._write_meta(txn, bytes.fromhex(digest), {**store.meta(digest), **older})
    finally:
        store.close()
    return data, digest


def test_metadata_an_older_release_stored_with_lone_surrogates_is_exported(archiver, tmp_path):
    data, _ = imported_with_older_metadata(archiver, tmp_path, "olderrelease",
                                           message_id="older\udcf1\udc82@x")
    archiver("export", "", "--data", data, "--format", "zip", "-o", tmp_path / "e.zip", check=0)
    with zipfile.ZipFile(tmp_path / "e.zip") as exported:
        assert "older??@x" in exported.read("manifest.csv").decode()


def test_metadata_an_older_release_stored_with_lone_surrogates_is_shown(archiver, tmp_path,
                                                                        capsys):
    """Its UTF-7 decoding kept U+D83D alone in the Subject and Message-ID of
    "=?utf-7?Q?+2D0-?=" (and older ones 8-bit bytes as surrogate escapes in a From):
    `archiver show` failed with UnicodeEncodeError."""
    data, digest = imported_with_older_metadata(
        archiver, tmp_path, "olderreleaseshow", subject="\ud83d hello",
        message_id="\ud83d@x", **{"from": "\udcf1\udc82@x"})
    assert main(["show", digest, "--data", str(data)]) == 0
    shown = capsys.readouterr().out
    assert "subject:      ? hello" in shown and "message_id:   ?@x" in shown
    assert "from:         ??@x" in shown
