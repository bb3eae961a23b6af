import email
import email.policy
import io
import json
import shutil
from collections import Counter

import pytest

from tests.bench import corpus as corpus_module
from tests.bench.corpus import MARKERS, MAX_SIZE, MIN_SIZE, generate

COUNT = 300


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("corpus"), COUNT, seed=1)


@pytest.fixture(scope="module")
def messages(corpus):
    return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            for path in corpus]


def attachment_text(part) -> str:
    """The text an indexer would extract from an attachment."""
    data = part.get_payload(decode=True)
    kind = part.get_content_type()
    if kind == "application/pdf":
        import pypdf
        return " ".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)
    if kind == corpus_module.DOCX_TYPE:
        import docx
        return " ".join(paragraph.text for paragraph in docx.Document(io.BytesIO(data)).paragraphs)
    if kind == corpus_module.XLSX_TYPE:
        import openpyxl
        sheet = openpyxl.load_workbook(io.BytesIO(data), read_only=True).active
        return " ".join(str(cell) for row in sheet.iter_rows(values_only=True) for cell in row)
    return ""


def searchable_text(message) -> str:
    texts = [str(message["Subject"])]
    for part in message.walk():
        if part.get_content_maintype() == "text":
            texts.append(part.get_content())
        elif not part.is_multipart() and part.get_content_maintype() != "message":
            texts.append(attachment_text(part))
    return " ".join(texts)


def test_writes_a_maildir_of_count_messages(corpus, tmp_path):
    root = corpus[0].parent.parent
    assert sorted(path.name for path in root.iterdir()) == ["cur", "new", "tmp"]
    assert len(corpus) == COUNT == len(set(corpus))
    assert all(path.parent.name == "cur" and path.name.endswith(":2,S") for path in corpus)
    assert corpus.total_bytes == sum(path.stat().st_size for path in corpus)


def test_messages_parse_cleanly_with_realistic_headers(messages):
    for message in messages:
        assert not message.defects
        assert all(not part.defects for part in message.walk())
        for header in ("From", "To", "Subject", "Date", "Message-ID"):
            assert message[header], header
    assert len({message["Message-ID"] for message in messages}) == COUNT
    years = Counter(message["Date"].datetime.year for message in messages)
    assert set(years) == {2019, 2020, 2021, 2022, 2023, 2024}
    assert sum(bool(message["Cc"]) for message in messages) > COUNT // 5
    assert sum(str(message["Subject"]).startswith("Re: ") for message in messages) > COUNT // 5
    assert any(not str(message["From"]).isascii() for message in messages)  # decoded =?utf-8?


def test_has_every_kind_of_structure_and_attachment(messages):
    top_level = Counter(message.get_content_type() for message in messages)
    assert top_level["text/plain"] > COUNT // 4
    assert top_level["multipart/alternative"] > COUNT // 5
    assert top_level["multipart/mixed"] > COUNT // 5
    parts = Counter(part.get_content_type() for message in messages for part in message.walk())
    for kind in ("text/html", "application/pdf", corpus_module.DOCX_TYPE, corpus_module.XLSX_TYPE,
                 "message/rfc822", "image/jpeg"):
        assert parts[kind] > 0, kind
    assert any(part.get_filename() and not part.get_filename().isascii()
               for message in messages for part in message.walk())


def test_sizes_are_long_tailed_between_2_kib_and_2_mib(corpus):
    sizes = sorted(path.stat().st_size for path in corpus)
    assert MIN_SIZE <= sizes[0] and sizes[-1] <= MAX_SIZE
    assert sizes[len(sizes) // 2] < 16 * 1024  # most are small
    assert sum(size > 500_000 for size in sizes) >= 2  # a few are large


def test_attachments_parse_with_the_libraries_an_indexer_uses(messages):
    seen = Counter()
    for message in messages:
        for part in message.walk():
            kind = part.get_content_type()
            if kind == "message/rfc822":
                nested = part.get_payload()[0]
                assert nested["Subject"] and nested.get_body().get_content().strip()
                seen[kind] += 1
            elif kind in ("application/pdf", corpus_module.DOCX_TYPE, corpus_module.XLSX_TYPE):
                assert len(attachment_text(part).split()) >= 10, kind
                seen[kind] += 1
    assert len(seen) == 4


def test_marker_counts_are_exactly_the_messages_that_contain_each_marker(corpus, messages):
    texts = [searchable_text(message) for message in messages]
    found = Counter(word for text in texts for word in MARKERS if word in text)
    assert corpus.markers == {word: found[word] for word in MARKERS}
    assert corpus.markers["zanthoxylum"] > COUNT // 20  # the common body marker is common


def test_is_deterministic_for_a_seed(tmp_path):
    first = generate(tmp_path / "a", 40, seed=7)
    again = generate(tmp_path / "b", 40, seed=7)
    other = generate(tmp_path / "c", 40, seed=8)
    assert [path.name for path in first] == [path.name for path in again]
    assert [path.read_bytes() for path in first] == [path.read_bytes() for path in again]
    assert first.markers == again.markers
    assert [path.read_bytes() for path in first] != [path.read_bytes() for path in other]


def test_output_does_not_depend_on_how_the_work_is_split(tmp_path):
    assets = corpus_module.Assets.build(3)
    (tmp_path / "cur").mkdir()
    whole = corpus_module.write_range(tmp_path, 3, range(0, 12), assets)
    halves = [corpus_module.write_range(tmp_path, 3, piece, assets)
              for piece in corpus_module.split(range(12), 2)]
    assert whole[0] == halves[0][0] + halves[1][0]
    assert whole[1] == halves[0][1] + halves[1][1]


def test_cli_prints_one_json_line(tmp_path, capsys):
    assert corpus_module.main([str(tmp_path / "m"), "--count", "5", "--seed", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["count"] == 5 and len(list((tmp_path / "m/cur").iterdir())) == 5
    assert report["total_bytes"] > 5 * MIN_SIZE and report["seconds"] >= 0
    assert set(report["markers"]) == set(MARKERS)


@pytest.mark.integration
@pytest.mark.skipif(not shutil.which("notmuch"), reason="needs notmuch (Debian package notmuch)")
def test_notmuch_finds_the_markers_it_indexes_as_often_as_the_generator_says(corpus):
    from tests.bench.notmuch_bench import run_notmuch

    # notmuch indexes headers, body text, HTML and forwarded messages, not attachments.
    indexed = [word for word, (place, _) in MARKERS.items()
               if place in ("body", "subject", "html", "forwarded message")]
    result = run_notmuch(corpus[0].parent.parent, indexed + ["subject:brackenvale"], repeat=1)
    assert result["messages"] == COUNT
    assert result["notmuch_hits"] == {**{word: corpus.markers[word] for word in indexed},
                                      "subject:brackenvale": corpus.markers["brackenvale"]}
    assert result["notmuch_new_msgs_per_s"] > 0
    assert 0 < result["notmuch_search_p50_ms"] <= result["notmuch_search_p99_ms"]
    assert not (corpus[0].parent.parent / ".notmuch").exists()


def test_a_corpus_without_attachments_holds_conversations_only(tmp_path):
    plain = generate(tmp_path / "plain", 200, seed=1, attachments=False)
    kinds = Counter()
    for path in plain:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        kinds[message.get_content_type()] += 1
        assert not any(part.is_attachment() for part in message.walk()), path.name
        assert message.get_body(("plain",)).get_content().strip()
    assert set(kinds) == {"text/plain", "multipart/alternative"}
    assert max(path.stat().st_size for path in plain) <= 40_000 + 4096  # no large ones
    assert plain.markers["tessellora"] == plain.markers["ottervane"] == 0
    assert plain.markers["zanthoxylum"] > 0
