"""A large TNEF or S/MIME signed-data attachment read through a file (#20): the pieces that
do it. file_bytes.FileBytes reads a file as bytes are sliced; tnef_stream prepares a stream
read so as it prepares bytes, giving tnef a token for an attachment's data over the read
limit; containers.tnef_read reads a file tnef wrote of READ_WHEN_ASKED_BYTES or more when
its content is asked for; cms_der finds a signed-data object's eContent and makes the
stand-in openssl reads; containers.signed_content of a file gives what it gives of the
bytes; transfer_encoding.spilled_payload moves a held payload into a mapped file; tools
feed a tool chunks. (test_large_containers_as_before: extraction as before, over damaged
objects.)"""
from __future__ import annotations

import base64
import io
import mmap
import random

import pytest

from services.archive import (cms_der, containers, extract, file_bytes, mime, mimetree,
                              tnef_stream, tools, transfer_encoding)
from services.archive.containers import ReadBudget
from tests import reading_corpus as corpus
from tests.unit.archive.test_large_containers_as_before import (message, streamed_signed_data,
                                                                 winmail)

ENTITY = (b"Content-Type: multipart/mixed; boundary=in\r\n\r\n--in\r\nContent-Type: text/plain"
          b"\r\n\r\nthe signed words\r\n--in\r\nContent-Type: application/octet-stream\r\n"
          b"Content-Transfer-Encoding: base64\r\n\r\n"
          + base64.encodebytes(random.Random(1).randbytes(300_000)) + b"--in--\r\n")


def through_a_file(data: bytes) -> file_bytes.FileBytes:
    return file_bytes.FileBytes(io.BytesIO(data))


# -- FileBytes ---------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(20))
def test_file_bytes_slice_and_index_as_bytes_do(seed, monkeypatch):
    monkeypatch.setattr(file_bytes, "WINDOW_BYTES", 64)  # small and large reads alike
    rng = random.Random(seed)
    data = rng.randbytes(rng.randint(0, 500))
    read = through_a_file(data)
    assert len(read) == len(data)
    for _ in range(200):
        start, stop = rng.randint(-600, 600), rng.randint(-600, 600)
        assert read[start:stop] == data[start:stop]
        assert read[start:] == data[start:] and read[:stop] == data[:stop]
        index = rng.randint(-600, 600)
        if -len(data) <= index < len(data):
            assert read[index] == data[index]
        else:
            with pytest.raises(IndexError):
                read[index]  # noqa: B018 - the read is the test


def test_file_bytes_refuses_a_step_and_tells_its_start():
    read = through_a_file(b"abcdef")
    with pytest.raises(ValueError):
        read[::2]  # noqa: B018
    assert read.startswith(b"abc") and not read.startswith(b"abd")


def test_file_bytes_reads_a_part_of_a_file_of_a_given_size():
    assert through_a_file(b"abcdef")[:] == b"abcdef"
    assert file_bytes.FileBytes(io.BytesIO(b"abcdef"), 4)[:] == b"abcd"


def test_spliced_chunks_join_ranges_and_bytes_in_chunks_of_at_most_size():
    chunks = list(file_bytes.spliced_chunks(b"0123456789", [(0, 5), b"xy", (7, 10)], 2))
    assert chunks == [b"01", b"23", b"4", b"xy", b"78", b"9"]


# -- tnef_stream and tnef_read -----------------------------------------------------------

@pytest.mark.parametrize("seed", range(40))
def test_a_stream_read_through_a_file_is_prepared_as_its_bytes(seed, monkeypatch):
    monkeypatch.setattr(tnef_stream.secrets, "token_hex", lambda _: "0" * 16)
    rng = random.Random(seed)
    data = winmail(rng)
    data = data[:rng.randrange(len(data))] if seed % 2 else data
    limit = rng.choice((None, 40, 1 << 20))
    as_bytes = tnef_stream.prepared(data, limit)
    as_file = tnef_stream.prepared(through_a_file(data), limit)
    assert (as_file.data, as_file.titles, as_file.codec, as_file.damage, as_file.over_limit) \
        == (as_bytes.data, as_bytes.titles, as_bytes.codec, as_bytes.damage,
            as_bytes.over_limit)
    assert b"".join(as_file.chunks(7)) == as_bytes.data


def test_data_over_the_limit_is_given_to_tnef_as_the_token_and_the_rest_as_it_is():
    small, large = b"s" * 10, b"L" * 100
    data = corpus.tnef([("a.txt", small), ("b.bin", large), ("c.txt", small)])
    prepared = tnef_stream.prepared(data, 50)
    assert large not in prepared.data and prepared.data.count(small) == 2
    assert prepared.data.count(prepared.over_limit) == 1
    assert len(prepared.data) == len(data) - len(large) + len(prepared.over_limit) + sum(
        len(tnef_stream._title(title)) for title in prepared.titles)
    assert tnef_stream.prepared(data).over_limit is None
    assert large in tnef_stream.prepared(data).data


def test_a_file_over_the_limit_is_listed_unread_and_the_files_after_it_read():
    files = [("a.txt", b"first words"), ("big.bin", b"B" * 5000), ("c.txt", b"last words")]
    _, members, problem = containers.tnef_read(corpus.tnef(files), ReadBudget(1 << 20,
                                                                            read_bytes=4000))
    assert [(member.name, member.content(), member.problem) for member in members] == [
        ("a.txt", b"first words", None), ("big.bin", None, "not read: over the size limit"),
        ("c.txt", b"last words", None)]
    assert problem is None


def test_a_tnef_read_through_a_file_gives_what_its_bytes_give(monkeypatch):
    monkeypatch.setattr(containers, "READ_WHEN_ASKED_BYTES", 100)
    data = corpus.tnef([("a.txt", b"small"), ("b.txt", b"w" * 300), ("c.txt", b"x" * 99)],
                       body="the body")
    digest = containers._digest(data, None).hex()
    read = [containers.tnef_read(source, ReadBudget(1 << 20), sha)
            for source, sha in ((data, None), (io.BytesIO(data), digest))]
    for body, members, problem in read:
        assert body.content().rstrip(b"\0") == b"the body"
        assert [(member.name, member.data) for member in members] == [
            ("a.txt", b"small"), ("b.txt", None), ("c.txt", b"x" * 99)]  # b.txt: when asked
        assert [member.content() for member in members] == [b"small", b"w" * 300, b"x" * 99]
        assert problem is None


def test_a_file_read_when_asked_is_counted_and_refused_as_one_read_at_once(monkeypatch):
    monkeypatch.setattr(containers, "READ_WHEN_ASKED_BYTES", 100)
    data = corpus.tnef([("a.bin", b"a" * 300), ("b.bin", b"b" * 300)])
    budget = ReadBudget(1 << 20, read_bytes=500)
    _, members, _ = containers.tnef_read(data, budget)
    assert [(member.readable(), member.problem) for member in members] == [
        (True, None), (False, "not read: over the size limit")]
    assert budget.read_bytes == 200 and members[0].content() == b"a" * 300


def test_a_written_file_never_written_cannot_be_read():
    with pytest.raises(ValueError):
        containers._Written(10, None).read()


# -- cms_der and signed_content ----------------------------------------------------------

def test_content_of_finds_the_econtent_of_der_and_of_streamed_ber(tmp_path):
    for data in (corpus.smime_signed_data(ENTITY), streamed_signed_data(ENTITY, tmp_path)):
        content = cms_der.content_of(data)
        assert b"".join(data[start:end] for start, end in content.runs) == ENTITY
        assert content.start < content.runs[0][0] and content.runs[-1][1] <= content.end
        assert cms_der.content_of(through_a_file(data)) == content


def test_content_of_is_none_without_an_econtent_or_past_the_bytes():
    data = corpus.smime_signed_data(ENTITY)
    content = cms_der.content_of(data)
    assert cms_der.content_of(data[:content.end - 1]) is None
    assert cms_der.content_of(b"\x30\x03\x06\x01\x00") is None
    assert cms_der.content_of(data[:content.start] + b"\x05\x00") is None  # no OCTET STRING


def test_a_constructed_econtent_of_a_segment_past_its_length_is_none():
    segments = b"\x04\x02ab\x04\x02cd"
    der = _signed_shape(b"\x24\x03" + segments)  # says 3 bytes: the first segment crosses it
    assert cms_der.content_of(der) is None
    whole = cms_der.content_of(_signed_shape(b"\x24\x08" + segments))
    assert [_signed_shape(b"\x24\x08" + segments)[start:end] for start, end in whole.runs] \
        == [b"ab", b"cd"]


def _signed_shape(octet_string: bytes) -> bytes:
    """The DER of signed-data's shape around an eContent (nothing but what content_of
    walks: no signer, no certificate)."""
    def element(tag: int, contents: bytes) -> bytes:
        return bytes([tag, len(contents)]) + contents
    encapsulated = element(0x30, b"\x06\x01\x01" + element(0xA0, octet_string))
    signed = element(0x30, b"\x02\x01\x01" + element(0x31, b"") + encapsulated)
    return element(0x30, b"\x06\x01\x02" + element(0xA0, signed))


def test_the_stand_in_is_read_by_openssl_as_the_token(tmp_path):
    for data in (corpus.smime_signed_data(ENTITY), streamed_signed_data(ENTITY, tmp_path)):
        pieces = cms_der.stand_in(data, cms_der.content_of(data), b"the token")
        stand_in = b"".join(file_bytes.spliced_chunks(data, pieces, 1 << 20))
        assert len(stand_in) < len(data) - len(ENTITY) + 100
        assert containers._openssl_content(stand_in) == b"the token"


def test_no_stand_in_of_an_econtent_as_short_as_its_replacement():
    data = corpus.smime_signed_data(b"x")
    assert cms_der.stand_in(data, cms_der.content_of(data), b"a longer token") is None


def test_signed_content_of_a_file_is_that_of_its_bytes_and_openssl_gets_the_stand_in(
        tmp_path, monkeypatch):
    monkeypatch.setattr(containers, "TOOL_MEMO", containers.ToolMemo(0))
    given = []
    real = tools.run

    def run(argv, data, *args, **kwargs):
        chunks = [data] if isinstance(data, bytes) else list(data)
        given.append(sum(map(len, chunks)))
        return real(argv, chunks, *args, **kwargs)
    for data in (corpus.smime_signed_data(ENTITY), streamed_signed_data(ENTITY, tmp_path)):
        whole = containers.signed_content(data)
        monkeypatch.setattr(tools, "run", run)
        assert containers.signed_content(io.BytesIO(data)) == whole == ENTITY
        monkeypatch.setattr(tools, "run", real)
        assert given.pop() < len(data) - len(ENTITY) + 100  # the stand-in, not the object


def test_signed_content_of_a_file_is_cut_where_openssls_output_is(monkeypatch):
    monkeypatch.setattr(containers, "TOOL_MEMO", containers.ToolMemo(0))
    monkeypatch.setattr(tools, "OUTPUT_BYTES", 1000)
    data = corpus.smime_signed_data(ENTITY)
    assert containers.signed_content(io.BytesIO(data)) == containers.signed_content(data) \
        == ENTITY[:1000]


def test_an_object_cms_der_cannot_walk_is_given_to_openssl_whole(monkeypatch):
    monkeypatch.setattr(containers, "TOOL_MEMO", containers.ToolMemo(0))
    data = corpus.smime_signed_data(ENTITY)
    cut = data[:len(data) // 2]
    with pytest.raises(tools.ToolFailed) as from_bytes:
        containers.signed_content(cut)
    with pytest.raises(tools.ToolFailed) as from_a_file:
        containers.signed_content(io.BytesIO(cut))
    def without_thread(failure):
        return str(failure.value)[str(failure.value).index(":error:"):]
    assert without_thread(from_a_file) == without_thread(from_bytes)


# -- extraction takes the file route; the payload spilled --------------------------------

@pytest.mark.parametrize("kind", ["tnef", "signed"])
def test_a_large_tnef_or_signed_data_is_read_through_a_file(kind, monkeypatch):
    monkeypatch.setattr(containers, "TOOL_MEMO", containers.ToolMemo(0))
    monkeypatch.setattr(extract, "LARGE_FILE_BYTES", 1024)
    monkeypatch.setattr(mimetree, "HELD_ASCII_BYTES", 1024)
    given = []
    name = "tnef_read" if kind == "tnef" else "signed_content"
    real = getattr(containers, name)

    def read(data, *args):
        given.append(type(data))
        return real(data, *args)
    monkeypatch.setattr(containers, name, read)
    data, mime_type = ((corpus.tnef([("a.txt", b"a" * 3000)], body="the body"),
                        "application/ms-tnef") if kind == "tnef" else
                       (corpus.smime_signed_data(ENTITY), "application/pkcs7-mime"))
    read_whole = extract.extract(message(data, mime_type, "f"), 4096)
    assert given == [transfer_encoding.Base64File]
    assert [entry.filename for entry in read_whole.attachments][1:] == (
        ["a.txt"] if kind == "tnef" else [None])
    assert "the body" in read_whole.attachments[0].text or "the signed words" in \
        read_whole.body


def test_a_spilled_payload_reads_the_same_from_a_map_and_its_file_from_the_start(
        monkeypatch):
    monkeypatch.setattr(mimetree, "HELD_ASCII_BYTES", 1024)
    raw = message(b"x" * 5000, "application/octet-stream", "f")
    part = list(mime.parse_message(raw, held=True).walk())[-1]
    held = bytes(transfer_encoding.held_bytes(part))
    spilled = transfer_encoding.spilled_payload(part)
    assert spilled.read() == held == bytes(transfer_encoding.held_bytes(part))
    assert isinstance(transfer_encoding.held_bytes(part).obj, mmap.mmap)  # not raw's
    assert transfer_encoding.decoded_payload(part) == b"x" * 5000


def test_no_payload_is_spilled_from_a_part_holding_none():
    part = list(mime.parse_message(message(b"x", "text/plain", "f")).walk())[-1]
    assert transfer_encoding.spilled_payload(part) is None


# -- tools feed chunks -------------------------------------------------------------------

def test_a_tool_is_fed_chunks_on_its_input_and_in_its_input_file():
    chunks = (bytes([at]) * 70_000 for at in range(20))
    output, _ = tools.run(["wc", "-c"], chunks, stdin=True)
    assert int(output) == 1_400_000
    output, _ = tools.run(["wc", "-c", "{input}"], iter([b"ab", b"cde"]))
    assert output.split()[0] == b"5"
