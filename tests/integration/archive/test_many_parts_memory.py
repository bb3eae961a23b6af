"""A message of tens of thousands of small body parts (84 MiB in all) is imported within the
model 450's memory bound (#20: 256 MB whatever the input), its first part's text found.
The worker held each part's text, the message and its cut (the parts past
mime_parts.MAX_PARTS made one text part) beside it: 328-358 MB for the kinds here. Now
the parts past the text cap are counted, not held (extract._PlainTexts, _HtmlTexts), small
payloads are views into the message, and a large message is spilled to a file before its
cut is written (mime_parts._Pieces.spill): some 180-200 MB."""
from __future__ import annotations

import random

import pytest

from tests.integration.archive.test_review_r25 import (imported_within_the_bound, maildir_of,
                                                      searched)

MiB = 1 << 20
TOTAL = 84 * MiB


def words(rng: random.Random, count: int) -> bytes:
    return b" ".join(bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz", k=7))
                     for _ in range(count))


def part(text: bytes, html: bool) -> bytes:
    if html:
        return (b"Content-Type: text/html\r\n\r\n<html><body><p>" + text
                + b"</p></body></html>\r\n")
    return b"Content-Type: text/plain\r\n\r\n" + text + b"\r\n"


def multipart(parts: list[bytes], boundary: bytes) -> bytes:
    return b"Content-Type: multipart/mixed; boundary=%s\r\n\r\n%s--%s--\r\n" % (
        boundary, b"".join(b"--%s\r\n%s\r\n" % (boundary, each) for each in parts), boundary)


def message(count: int, html: bool = False, per_multipart: int = 0) -> bytes:
    """A message of "manymarker first", then `count` parts of TOTAL bytes together (every
    other one HTML if `html`; in multiparts of `per_multipart` each if given). Parts
    repeat a few texts: the words are not what costs memory here."""
    rng = random.Random(count)
    texts = [words(rng, TOTAL // count // 8) for _ in range(50)]
    parts = [part(texts[number % 50], html and number % 2 == 1) for number in range(count)]
    if per_multipart:
        parts = [multipart(parts[at:at + per_multipart], b"G%d" % at)
                 for at in range(0, count, per_multipart)]
    first = b"Content-Type: text/plain\r\n\r\nmanymarker first\r\n"
    return (b"From: a@example.org\r\nSubject: many\r\nMessage-ID: <many@example.org>\r\n"
            b"MIME-Version: 1.0\r\n" + multipart([first] + parts, b"B"))


KINDS = {"20,000 text parts": lambda: message(20_000),  # 353 MB before
         "20,000 parts, half HTML": lambda: message(20_000, html=True),  # 358 MB
         "20,000 parts in 200 multiparts": lambda: message(20_000, per_multipart=100)}  # 355


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_message_of_many_parts_is_imported_within_the_bound_and_found(tmp_path, kind):
    maildir = maildir_of(tmp_path, KINDS[kind]())
    imported_within_the_bound(tmp_path, maildir, 1)
    assert searched(tmp_path, "manymarker")
