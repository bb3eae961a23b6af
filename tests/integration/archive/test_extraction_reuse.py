"""The extraction pool reads each document once: the same attachment in later messages
costs a lookup of its text (by SHA-256, type and charset), never another run of its
library; a worker gives back the memory a large message took."""
import io
from email.message import EmailMessage

import docx
import pytest
import xapian

from services.archive.extract import ExtractionPool, extract

pytestmark = pytest.mark.integration
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def document(words: str) -> bytes:
    made = docx.Document()
    made.add_paragraph(words)
    out = io.BytesIO()
    made.save(out)
    return out.getvalue()


def mail(n: int, attachment: bytes, name: str = "policy.docx", kind: str = DOCX) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "hr@example.org", f"u{n}@example.org", "policy"
    message.set_content(f"Please read the attached policy, number {n}.")
    maintype, subtype = kind.split("/")
    message.add_attachment(attachment, maintype=maintype, subtype=subtype, filename=name)
    return message.as_bytes()


def test_the_same_document_in_many_messages_is_read_once():
    policy, other = document("quartermaster travel policy"), document("wombat expenses")
    raws = [mail(n, policy, name=f"policy-{n}.docx") for n in range(4)] + [mail(9, other)]
    with ExtractionPool(256 * 1024, workers=2) as pool:
        first = pool.extract_many(raws)
        again = pool.extract_many(raws[:1])
    texts = [result.attachments[0].text for result in first + again]
    assert [("quartermaster" in text, "wombat" in text) for text in texts] == \
        [(True, False)] * 4 + [(False, True)] + [(True, False)]
    # 6 reads of 2 documents; two workers may both start on the policy before either
    # has read it, so it may be read twice.
    assert pool.text_memo_hits in (3, 4)
    assert [result.attachments[0].filename for result in first[:2]] == \
        ["policy-0.docx", "policy-1.docx"]  # per message, not remembered


def test_a_reading_is_reused_only_for_the_same_type():
    page = b"<html><body><p>aardvark minutes</p></body></html>"
    raws = [mail(1, page, "a.html", "text/html"), mail(2, page, "b.html", "text/html"),
            mail(3, page, "c.txt", "text/plain")]
    with ExtractionPool(256 * 1024) as pool:
        results = pool.extract_many(raws)
    assert pool.text_memo_hits == 1  # b.html; c.txt is plain text, no library reads it
    assert results[0].attachments[0].text == results[1].attachments[0].text == "aardvark minutes"
    assert "<p>" in results[2].attachments[0].text


def resident_mb(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no VmRSS")


def test_a_worker_gives_back_the_memory_a_large_message_took():
    small, large = EmailMessage(), EmailMessage()
    small["Subject"], large["Subject"] = "small", "large"
    small.set_content("hello")
    large.set_content("\n".join(f"line {n} of a long report" for n in range(300_000)))
    with ExtractionPool(256 * 1024) as pool:
        pool.extract_many([small.as_bytes()])  # the libraries a reading loads stay loaded
        resting = resident_mb(pool.worker_pids[0])
        [result] = pool.extract_many([large.as_bytes()])  # 8 MB: some 50 MB to parse
        assert result.body.startswith("line 0 ")
        # The worker lets go of its reply (8 MB of text, pickled) and trims only after sending
        # it, before it takes the next message: once it has read another, both are sure to be
        # done. Measured straight after the reply, CI once saw 17 MB still held.
        pool.extract_many([small.as_bytes()])
        assert resident_mb(pool.worker_pids[0]) < resting + 8


def test_given_the_metadata_the_worker_builds_the_document_the_indexer_would():
    import xapian
    from services.archive.index import build_document
    from services.archive.store import digest_of
    raws = [mail(n, document(f"zebra{n} policy")) for n in range(3)]
    metadata = [{"number": n + 1, "size": len(raw), "received": 1.7e9, "sent_date": 1.7e9,
                 "recipients": ["audit@example.org"], "source": "import", "origin": "node1"}
                for n, raw in enumerate(raws)]
    with ExtractionPool(256 * 1024, workers=2) as pool:
        results = pool.extract_many(raws, metadata)
        plain = pool.extract_many(raws[:1])
    assert plain[0].document is None  # not asked
    for raw, meta, result in zip(raws, metadata, results):
        built = xapian.Document.unserialise(result.document)
        read_here = extract(raw, 256 * 1024)
        here = build_document(digest_of(raw), meta, read_here)
        # The text is in the document: the result carries only its size, not the text.
        assert (result.body, [a.text for a in result.attachments]) == ("", [""])
        assert result.text_size() == read_here.text_size() > 0
        assert [(t.term, t.wdf, list(t.positer)) for t in built.termlist()] == \
            [(t.term, t.wdf, list(t.positer)) for t in here.termlist()]
        assert built.get_data() == here.get_data()
        assert [(v.num, v.value) for v in built.values()] == \
            [(v.num, v.value) for v in here.values()]


def test_a_kept_reading_that_exhausts_the_worker_is_read_from_the_message_instead():
    """A kept reading is derived data: one that kills its worker (here a zstd bomb: 768 MB
    of text in a few KB, beyond the worker's 512 MB) costs that try, never the message, and
    is not remembered as the message's failure."""
    import zstandard
    from services.archive import readings
    from services.archive.store import digest_of
    raws = [mail(n, document(f"zebra{n} policy")) for n in range(2)]
    metadata = [{"number": n + 1, "size": len(raw), "received": 1.7e9, "sent_date": 1.7e9,
                 "recipients": ["audit@example.org"], "source": "import", "origin": "node1"}
                for n, raw in enumerate(raws)]
    bomb = zstd_bomb(768)
    kept = [readings.READING_VERSION.to_bytes(2, "big") + bomb,
            readings.encode(extract(raws[1], 256 * 1024), 256 * 1024)]
    with ExtractionPool(256 * 1024, workers=1, memory_mb=512) as pool:
        results = pool.extract_many(raws, metadata, [digest_of(raw) for raw in raws], kept)
        assert pool.memo.failure(digest_of(raws[0])) is None
    for n, result in enumerate(results):
        assert result.failures == [] and result.document is not None
        built = xapian.Document.unserialise(result.document)  # held while its terms are read
        assert f"XAzebra{n}".encode() in {item.term for item in built.termlist()}
    # The message read anew brings its reading; the one built from its reading does not.
    assert results[0].reading is not None and results[1].reading is None


def zstd_bomb(megabytes: int) -> bytes:
    """A zstd frame that says (and holds) `megabytes` MB of spaces, in a few KB."""
    import zstandard
    compressor = zstandard.ZstdCompressor(write_content_size=True)
    stream = compressor.compressobj(size=megabytes * 1024**2)
    chunk = b" " * 1024**2
    return b"".join([*(stream.compress(chunk) for _ in range(megabytes)), stream.flush()])


def test_a_worker_trims_after_a_large_message_or_every_so_many_small_ones():
    from services.archive.extract import TRIM_AFTER_BYTES, TRIM_EVERY, trims_after
    small = TRIM_AFTER_BYTES - 1
    assert trims_after(TRIM_AFTER_BYTES, 1) and trims_after(50 * TRIM_AFTER_BYTES, 7)
    assert [read for read in range(1, 3 * TRIM_EVERY + 1) if trims_after(small, read)] == \
        [TRIM_EVERY, 2 * TRIM_EVERY, 3 * TRIM_EVERY]
