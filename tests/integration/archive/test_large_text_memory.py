"""A message whose text is large (an HTML attachment, quoted-printable text) is imported
within the model 450's memory bound (#20: 256 MB whatever the input), and the words of its
text's start, which the text cap indexes, are found. A 70 MiB HTML attachment took 449 MB:
the worker held the message, the attachment decoded, its text decoded, laid out and tidied,
each whole (356 MB). Its bytes are now decoded a piece at a time
(transfer_encoding.decoded_pieces, charsets.decode_document_pieces) and libxml2 is fed
them until the tidied text fills the cap (extract._TidiedText, html_text.read_into), from
8 text caps of source at most (extract.HTML_SOURCE_FACTOR: libxml2 holds a comment, a
script or an attribute's value whole): 201 MB. A text attachment of one 60 MiB line
quoted-printable (soft line breaks only) took 459 MB: decoded whole, as one run of lines
ending in a hard line break; it is now cut where no soft line break nor "=XX" goes on
past the cut (transfer_encoding._QP_CUT) and read a piece at a time: 166 MB (the test's 40 MiB
one: 291 before, 151 after). The message's own text (its body, no attachment) is read so
too (extract._large_text_part, _large_html_part) unless a line of it begins a uuencoded
block: a 60 MiB quoted-printable body took 266 MB (decoded whole to look for uuencoded
files in it), a 40 MiB HTML body 266 (laid out whole); 164 after."""
from __future__ import annotations

import quopri
import random

import pytest

from tests.integration.archive.test_large_attachment_memory import message_with
from tests.integration.archive.test_review_r25 import (imported_within_the_bound, maildir_of,
                                                      searched)

MiB = 1 << 20


def paragraphs(size: int, rng: random.Random) -> bytes:
    """About `size` bytes of HTML paragraphs of words, a line each."""
    words = [bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 9)))
             for _ in range(2000)]
    block = b"".join(b"<p>%s</p>\n" % b" ".join(rng.choices(words, k=12)) for _ in range(4000))
    return block * (size // len(block) + 1)


def large_html(rng: random.Random) -> bytes:
    return (b"<html><body><p>the quarterly largeword is on the page</p>\n"
            + paragraphs(28 * MiB, rng) + b"</body></html>\n")


def quoted_printable_message(rng: random.Random) -> bytes:
    """A message carrying a text of one 40 MiB line, quoted-printable: soft line breaks
    only, no hard one to cut the decoding at."""
    text = b"the quarterly largeword is in the text " + paragraphs(40 * MiB, rng).replace(
        b"\n", b" ")
    return (b"From: a@example.org\r\nSubject: large text\r\nMessage-ID: <q@example.org>\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=sep\r\n\r\n"
            b"--sep\r\nContent-Type: text/plain\r\n\r\nsee the file\r\n--sep\r\n"
            b"Content-Type: text/plain; name=t.txt\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n"
            b"Content-Disposition: attachment; filename=t.txt\r\n\r\n%s\r\n--sep--\r\n"
            % quopri.encodestring(text).replace(b"\n", b"\r\n"))


def body_message(content_type: bytes, encoding: bytes, body: bytes) -> bytes:
    """A message whose body (no attachment: the message's own text) is `body`."""
    return (b"From: a@example.org\r\nSubject: large body\r\nMessage-ID: <b@example.org>\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: %s\r\nContent-Transfer-Encoding: %s\r\n"
            b"\r\n%s" % (content_type, encoding, body))


def quoted_printable_body(rng: random.Random) -> bytes:
    """A body of one 60 MiB line, quoted-printable (262 MB before: decoded whole to look
    for uuencoded files in it)."""
    text = b"the quarterly largeword is in the text " + paragraphs(60 * MiB, rng).replace(
        b"\n", b" ")
    return body_message(b"text/plain; charset=utf-8", b"quoted-printable",
                        quopri.encodestring(text).replace(b"\n", b"\r\n"))


def html_body(rng: random.Random) -> bytes:
    """A body of 40 MiB of HTML (text/html as the message's own text; 28 MiB took 200 MB
    before, 40 MiB 270: read as a whole)."""
    return body_message(b"text/html; charset=utf-8", b"8bit",
                        b"<html><body><p>the quarterly largeword is on the page</p>\n"
                        + paragraphs(40 * MiB, rng) + b"</body></html>\n")


KINDS = {"html": lambda rng: message_with(large_html(rng), "text/html", "page.html"),
         "quoted-printable": quoted_printable_message,
         "quoted-printable body": quoted_printable_body,
         "html body": html_body}


def imported_and_found(tmp_path, raw: bytes) -> None:
    """`archiver import --model 450` of a maildir of `raw`: imported and indexed under
    BOUND_MB, and a search for "largeword" finds it."""
    maildir = maildir_of(tmp_path, raw)
    del raw
    imported_within_the_bound(tmp_path, maildir, 1)
    assert searched(tmp_path, "largeword")


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_message_with_a_large_text_attachment_is_imported_within_the_bound_and_found(
        tmp_path, kind):
    imported_and_found(tmp_path, KINDS[kind](random.Random(9)))
