"""A message whose text costs the index the most memory is imported within the model 450's
bound (#20: 256 MB whatever the input), its first words found and its cut flagged.

Each attachment's text had a cap of its own (attachment_text_kb), but nothing bounded their
sum: 1,000 attachments of 90 KB of distinct words made one document of 90 MB of text, which
Xapian holds until its commit at some 60 bytes a byte (review rv59 D1: 5.3 GB; 300 of them
1.7 GB on the model 150), the files of a zip 8 caps. Now all of a message's attachments,
the files inside them included, share extract.MESSAGE_ATTACHMENT_TEXT_CAPS caps of text, and
a document holds at most index.MAX_DOCUMENT_TERMS distinct terms (body first, then the
attachments, each cut flagged), its header fields and file names at their own limits."""
from __future__ import annotations

import base64
import binascii
import io
import itertools
import random
import zipfile

import pytest

from tests.integration.archive.test_review_r25 import (imported_within_the_bound, maildir_of,
                                                      searched)

KiB, MiB = 1 << 10, 1 << 20


def distinct_words(counter: itertools.count, size: int) -> bytes:
    """`size` bytes or so of words never used before (each a term of its own)."""
    return b" ".join(b"q%07x" % next(counter) for _ in range(size // 9))


def repeated_words(size: int) -> bytes:
    """`size` bytes of one-letter words: the most positions a byte of text can make."""
    return b"a b c d e f g h i j k l m n o p q r s t u v w x y z " * (size // 52)


def attached(data: bytes, name: str, mime_type: bytes = b"text/plain") -> bytes:
    return (b"Content-Type: %s\r\nContent-Disposition: attachment; filename=\"%s\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n%s" % (
                mime_type, name.encode(), base64.encodebytes(data)))


def message(parts: list[bytes], fields: bytes = b"Subject: text\r\n") -> bytes:
    """A multipart message of "textmarker first" and `parts`."""
    body = b"Content-Type: text/plain\r\n\r\ntextmarker first\r\n"
    return (b"From: a@example.org\r\nMessage-ID: <text@example.org>\r\n" + fields
            + b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
            + b"".join(b"--B\r\n%s\r\n" % part for part in [body, *parts]) + b"--B--\r\n")


def many_attachments(words, mime_type: bytes = b"text/plain") -> bytes:
    """300 attachments of 90 KB of text each (27 MB)."""
    counter = itertools.count()
    return message([attached(words(counter), f"a{n}.txt", mime_type) for n in range(300)])


def in_a_zip() -> bytes:
    counter = itertools.count()
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as writer:
        for n in range(300):
            writer.writestr(f"f{n}.txt", distinct_words(counter, 90 * KiB))
    return message([attached(archive.getvalue(), "many.zip", b"application/zip")])


def forwarded() -> bytes:
    """300 forwarded messages, each a body of 90 KB of distinct words."""
    counter = itertools.count()
    return message([b"Content-Type: message/rfc822\r\n\r\nSubject: fwd %d\r\n\r\n%s" % (
        n, distinct_words(counter, 90 * KiB)) for n in range(300)])


def uuencoded() -> bytes:
    """A body of 300 uuencoded text files of 90 KB of distinct words each."""
    counter = itertools.count()
    blocks = []
    for n in range(300):
        data = distinct_words(counter, 90 * KiB)
        lines = [binascii.b2a_uu(data[at:at + 45]).rstrip(b"\n")
                 for at in range(0, len(data), 45)]
        blocks.append(b"begin 644 f%d.txt\r\n%s\r\n`\r\nend\r\n" % (n, b"\r\n".join(lines)))
    return message([b"Content-Type: text/plain\r\n\r\n" + b"".join(blocks)])


def every_field_at_its_limit() -> bytes:
    """Distinct words everywhere: a body and an attachment of 1 MiB (the 450's caps), To of
    256 KB, Subject of 64 KB, 999 attachments of long names."""
    counter = itertools.count()
    to = b", ".join(b"q%07x <q%07x@example.org>" % (next(counter), next(counter))
                    for _ in range(256 * KiB // 30))
    fields = b"To: %s\r\nSubject: %s\r\n" % (to, distinct_words(counter, 64 * KiB))
    named = [attached(b"x", "_".join(f"q{next(counter):07x}" for _ in range(20)) + ".txt")
             for _ in range(999)]
    return message([b"Content-Type: text/plain\r\n\r\n" + distinct_words(counter, MiB),
                    attached(distinct_words(counter, MiB), "big.txt"), *named], fields)


def cjk_without_spaces() -> bytes:
    """A body of 1 MiB of random CJK characters, no white space (two terms a character)."""
    rng = random.Random(5)
    text = "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(MiB // 3))
    return message([b"Content-Type: text/plain; charset=utf-8\r\n"
                    b"Content-Transfer-Encoding: 8bit\r\n\r\n" + text.encode()])


def accented_words() -> bytes:
    """A body and an attachment of 1 MiB of distinct words that are not plain ASCII."""
    counter = itertools.count()
    texts = [" ".join(f"é{next(counter):07x}" for _ in range(MiB // 10)).encode()
             for _ in range(2)]
    return message([b"Content-Type: text/plain; charset=utf-8\r\n"
                    b"Content-Transfer-Encoding: 8bit\r\n\r\n" + texts[0],
                    attached(texts[1], "accents.txt")])


def one_letter_words() -> bytes:
    """A body and eight attachments of 1 MiB of one-letter words."""
    return message([b"Content-Type: text/plain\r\n\r\n" + repeated_words(MiB)]
                   + [attached(repeated_words(MiB), f"p{n}.txt") for n in range(8)])


KINDS = {
    "300 attachments of distinct words": lambda: many_attachments(
        lambda counter: distinct_words(counter, 90 * KiB)),
    "300 HTML attachments of distinct words": lambda: many_attachments(
        lambda counter: b"<html><body><p>%s</p></body></html>" % distinct_words(
            counter, 90 * KiB), b"text/html"),
    "a zip of 300 files of distinct words": in_a_zip,
    "300 forwarded messages of distinct words": forwarded,
    "300 uuencoded files of distinct words": uuencoded,
    "every field at its limit": every_field_at_its_limit,
    "a body of CJK text without spaces": cjk_without_spaces,
    "words with accents": accented_words,
}
FIRST_WORDS = {"a body of CJK text without spaces": None, "words with accents": "é0000001"}


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_message_of_much_text_is_imported_within_the_bound_and_its_cut_flagged(tmp_path,
                                                                                 kind):
    imported_within_the_bound(tmp_path, maildir_of(tmp_path, KINDS[kind]()), 1)
    assert searched(tmp_path, "textmarker")
    first = FIRST_WORDS.get(kind, "q0000001")  # among the first words it has
    assert first is None or searched(tmp_path, first)
    assert searched(tmp_path, "has:extraction-failure")  # the cut, flagged


def header_heavy(number: int, counter: itertools.count) -> bytes:
    """A message of a To of 256 KB and a Subject of 60 KB of distinct words, little text."""
    to = b",\r\n ".join(b"q%07x@q%07x.example" % (next(counter), next(counter))
                          for _ in range(256 * KiB // 30))
    subject = b"\r\n ".join(distinct_words(counter, 90) for _ in range(60 * KiB // 90))
    return (b"From: a@example.org\r\nMessage-ID: <h%d@example.org>\r\nTo: %s\r\n"
            b"Subject: %s\r\n\r\ntextmarker %d\r\n" % (number, to, subject, number))


def cjk_message(number: int, rng: random.Random) -> bytes:
    """A message of a body of 330 KB of random CJK characters without spaces."""
    text = "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(110_000))
    return (b"From: a@example.org\r\nMessage-ID: <c%d@example.org>\r\nSubject: cjk\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit"
            b"\r\n\r\ntextmarker %d\n" % (number, number) + text.encode())


MANY = {  # messages each within the limits, their terms many together (review rv60: 909 MB
          # and 446 MB: commits were bounded by body and attachment text alone)
    "20 messages of long header fields": (20, lambda: (
        lambda counter: [header_heavy(n, counter) for n in range(20)])(itertools.count())),
    "10 messages of CJK bodies": (10, lambda: (
        lambda rng: [cjk_message(n, rng) for n in range(10)])(random.Random(7))),
}


@pytest.mark.parametrize("kind", list(MANY))
def test_many_messages_of_many_terms_are_imported_within_the_bound(tmp_path, kind):
    count, make = MANY[kind]
    maildir = maildir_of(tmp_path, b"")
    for number, raw in enumerate(make()):
        (maildir / "new" / f"{number}.eml").write_bytes(raw)
    imported_within_the_bound(tmp_path, maildir, count)
    assert len(searched(tmp_path, "textmarker")) == count


def test_one_letter_words_at_the_caps_are_imported_within_the_bound(tmp_path):
    imported_within_the_bound(tmp_path, maildir_of(tmp_path, one_letter_words()), 1)
    assert searched(tmp_path, "textmarker")
