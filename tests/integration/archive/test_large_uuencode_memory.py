"""A message holding a large uuencoded file (a "begin 644 name" block of 52 MiB of data,
in its text body or in a part sent x-uuencode) is imported within the model 450's memory
bound (#20: 256 MB whatever the input), its file named and its text around the block (and
a text file's start) found. The worker held the message, the body's bytes copied (or
decoded whole, quoted-printable or base64), each file decoded and copied: 302-394 MB for
the kinds here. A large part is now split a piece at a time (uuencode.split_pieces: blocks
found line by line; extract._large_text_part), each file's type, SHA-256 and text start
read from its data decoded a piece at a time (extract._found_block_file): 155-195 MB."""
from __future__ import annotations

import base64
import binascii
import random

import pytest

from tests.integration.archive.test_review_r25 import (imported_within_the_bound, maildir_of,
                                                      searched)

MiB = 1 << 20
BEFORE = b"the frontword comes before the file\n"
AFTER = b"and the trailerword after it\n"


def encoded(data: bytes, name: bytes, eol: bytes = b"\n") -> bytes:
    """`data` uuencoded as a block: begin line, 45 bytes a line, a zero-length line, end."""
    lines = [binascii.b2a_uu(data[at:at + 45], backtick=True)[:-1]
             for at in range(0, len(data), 45)]
    return eol.join([b"begin 644 " + name, *lines, b"`", b"end"]) + eol


def words(size: int, rng: random.Random) -> bytes:
    """About `size` bytes of lines of words, "largeword" first."""
    vocabulary = [bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 9)))
                  for _ in range(2000)]
    block = b"".join(b" ".join(rng.choices(vocabulary, k=12)) + b"\n" for _ in range(4000))
    return b"the largeword is in the file\n" + block * (size // len(block) + 1)


def message(body: bytes, encoding: bytes, eol: bytes = b"\n") -> bytes:
    head = (b"From: a@example.org\nSubject: uuencoded\nMessage-ID: <uu@example.org>\n"
            b"MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n"
            b"Content-Transfer-Encoding: %s\n\n" % encoding)
    return head.replace(b"\n", eol) + body


def binary_crlf(rng: random.Random) -> bytes:
    """A binary file in a 7bit body, CRLF lines (307 MB before)."""
    body = BEFORE + encoded(rng.randbytes(52 * MiB), b"f.bin") + AFTER
    return message(body.replace(b"\n", b"\r\n"), b"7bit", b"\r\n")


def text_base64(rng: random.Random) -> bytes:
    """A text file in a base64 body (326 MB before: decoded whole, copied, the file
    decoded and copied)."""
    return message(base64.encodebytes(BEFORE + encoded(words(52 * MiB, rng), b"f.txt")
                                      + AFTER), b"base64")


def x_uuencode_part(rng: random.Random) -> bytes:
    """A binary file in a text/x-uuencode part sent x-uuencode beside the text
    (327 MB before)."""
    return (b"From: a@example.org\nSubject: uuencoded\nMessage-ID: <uu@example.org>\n"
            b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=sep\n\n--sep\n"
            b"Content-Type: text/plain\n\n" + BEFORE + AFTER + b"--sep\n"
            b"Content-Type: text/x-uuencode\nContent-Transfer-Encoding: x-uuencode\n\n"
            + encoded(rng.randbytes(52 * MiB), b"f.bin") + b"--sep--\n")


def short_lines(rng: random.Random) -> bytes:
    """A binary file of which some lines lost characters (a mailer's damage): the file is
    read and its lines stay text too (394 MB before: the text copied beside the file)."""
    lines = encoded(rng.randbytes(52 * MiB), b"f.bin").split(b"\n")
    cut = [line[:-3] if at % 1000 == 7 and len(line) > 60 else line
           for at, line in enumerate(lines)]
    return message(BEFORE + b"\n".join(cut) + AFTER, b"7bit")


KINDS = {"binary, CRLF": (binary_crlf, "trailerword"),
         "text file, base64 body": (text_base64, "largeword"),
         "x-uuencode part": (x_uuencode_part, "trailerword"),
         # (its lines stay text: the body is cut at the text cap long before its end)
         "short lines": (short_lines, "frontword")}


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_large_uuencoded_file_is_imported_within_the_bound_and_found(tmp_path, kind):
    make, word = KINDS[kind]
    maildir = maildir_of(tmp_path, make(random.Random(20)))
    imported_within_the_bound(tmp_path, maildir, 1)
    assert searched(tmp_path, word)  # (the text past the block, or the text file's)
    name = "f.txt" if kind.startswith("text") else "f.bin"
    assert searched(tmp_path, f"filename:{name}")
