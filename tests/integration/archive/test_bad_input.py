"""Bad input is stored byte-exact, indexed as far as it can be, and never stops the indexer."""
import os

import pytest
import xapian
from hypothesis import HealthCheck, given, settings, strategies as st

from services.archive.archive import Archive
from services.archive.extract import ExtractionPool
from services.archive.indexer import Indexer
from services.archive.search import search

pytestmark = pytest.mark.integration


def nested(depth: int) -> bytes:
    head = b"From: deep@example.com\r\nSubject: nested deepword\r\nMIME-Version: 1.0\r\n"
    parts = b""
    for level in range(depth):
        parts += (f'Content-Type: multipart/mixed; boundary="b{level}"\r\n\r\n--b{level}\r\n').encode()
    parts += b"Content-Type: text/plain\r\n\r\ninnermost deepword\r\n"
    for level in reversed(range(depth)):
        parts += f"--b{level}--\r\n".encode()
    return head + parts


BAD = {
    "malformed-mime": b"From: a@example.com\nSubject: broken mimeword\nContent-Type: multipart/mixed\n\n"
                      b"--nothing\nContent-Type: text/plain\n\nno boundary declared\n",
    "no-headers": b"just a body line with bodyonlyword\n",
    "headers-only": b"From: a@example.com\nSubject: headeronlyword",
    "unknown-charset": b"From: a@example.com\nSubject: =?x-klingon?Q?tlhIngan?= charsetword\n"
                       b"Content-Type: text/plain; charset=x-klingon\n\n\xff\xfe garbage\n",
    "bad-utf8": b"From: a@example.com\nSubject: utf8word\nContent-Type: text/plain; charset=utf-8\n\n"
                b"\xc3\x28 \xa0\xa1 \xf0\x28\x8c\x28\n",
    "8bit-garbage": bytes(range(256)) * 64,
    "nul-bytes": b"From: a@example.com\x00\nSubject: nul\x00word nulword\n\n\x00\x00body\x00\n",
    "1mb-header": b"From: a@example.com\nX-Long: " + b"x" * (1024 * 1024) + b"\nSubject: longword\n\nbody\n",
    "deep-multipart": nested(1000),
    "empty": b"",
    "50mb-attachment": (b"From: a@example.com\nSubject: hugeword\nMIME-Version: 1.0\n"
                        b'Content-Type: multipart/mixed; boundary="X"\n\n--X\nContent-Type: text/plain\n\n'
                        b"small body\n--X\nContent-Type: application/octet-stream\n"
                        b'Content-Disposition: attachment; filename="big.bin"\n'
                        b"Content-Transfer-Encoding: base64\n\n"
                        + (b"QUJDRA==\n" * (50 * 1024 * 1024 // 9)) + b"--X--\n"),
}
SEARCHABLE = {"malformed-mime": "mimeword", "no-headers": "bodyonlyword",
              "headers-only": "headeronlyword", "unknown-charset": "charsetword",
              "bad-utf8": "utf8word", "1mb-header": "longword", "deep-multipart": "deepword",
              "50mb-attachment": "filename:big.bin"}


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    opened = Archive(tmp_path_factory.mktemp("bad"), 450)
    yield opened
    opened.close()


def index_all(archive):
    with ExtractionPool(archive.profile.attachment_text_bytes, timeout_s=60) as pool, \
            Indexer(archive.store, archive.index_dir(), pool) as indexer:
        indexer.catch_up()
    return xapian.Database(str(archive.index_dir())).get_doccount()  # every shard's


def test_each_bad_input_is_stored_exactly_and_indexed_as_far_as_it_can_be(archive):
    digests = {name: archive.store.put(raw, source="import") for name, raw in BAD.items()}
    for name, digest in digests.items():
        assert archive.store.get(digest) == BAD[name], name
    assert index_all(archive) == len(BAD)
    for name, query in SEARCHABLE.items():
        hits = [h.digest for h in search(archive.index_dir(), query).hits]
        assert digests[name] in hits, (name, query)
    assert archive.store.verify() == []


header_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80)


@st.composite
def messages(draw):
    """Structured-ish messages with random headers, charsets, boundaries and parts."""
    headers = draw(st.lists(st.tuples(st.sampled_from(
        ["From", "To", "Cc", "Subject", "Date", "Message-ID", "Content-Type",
         "Content-Transfer-Encoding", "X-Junk"]), header_text), max_size=8))
    boundary = draw(st.sampled_from(["b1", "", "=_weird", "b1\x00"]))
    parts = draw(st.lists(st.tuples(
        st.sampled_from(["text/plain", "text/html", "application/pdf", "message/rfc822",
                         "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                         "multipart/alternative", "image/png"]),
        st.sampled_from(["utf-8", "latin-1", "x-unknown", "utf-7", ""]),
        st.sampled_from(["base64", "quoted-printable", "8bit", "x-bogus"]),
        st.binary(max_size=300)), max_size=4))
    raw = b"".join(f"{k}: {v}\r\n".encode("utf-8", "surrogateescape") for k, v in headers)
    raw += f"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n".encode()
    for mime_type, charset, encoding, payload in parts:
        raw += (f"--{boundary}\r\nContent-Type: {mime_type}; charset={charset}\r\n"
                f"Content-Transfer-Encoding: {encoding}\r\n"
                f"Content-Disposition: attachment; filename=\"f.{mime_type[-3:]}\"\r\n\r\n").encode()
        raw += payload + b"\r\n"
    return raw + (f"--{boundary}--\r\n".encode() if draw(st.booleans()) else b"")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(st.lists(st.one_of(messages(), st.binary(max_size=2000)), min_size=1, max_size=8))
def test_generated_messages_never_stop_the_indexer(archive, raws):
    digests = [archive.store.put(raw, source="import") for raw in raws]
    assert [archive.store.get(d) for d in digests] == raws
    index_all(archive)
    status_pending = archive.store.log_end("arrival") - int(
        __import__("xapian").Database(str(archive.index_dir())).get_metadata("arrival_seq"))
    assert status_pending == 0
