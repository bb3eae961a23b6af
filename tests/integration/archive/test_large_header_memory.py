"""A message whose header fields are megabytes long is imported within the model 450's
memory bound (#20: 256 MB whatever the input), its body found and the message flagged as
partly indexed. Each kind below took more (tree Pss, 16 MiB of header text): one Subject
line 332 MB, folded into 2.7 million lines 477, of encoded words 312; a From display name
866 (the worker's quoted-string match kept a record a character: 3.3 GB in one process); a
To of a million addresses 672; a million Cc fields 866 (the indexer took each address's
ten terms); a file name of RFC 2231 continuations 366; a Subject of 2 MiB of distinct words
327. Now the summary reads each field's value to mime.FIELD_VALUE_LIMIT, the index takes at
most extract.SUBJECT_TEXT_LIMIT of Subject and ADDRESS_TEXT_LIMIT / INDEX_ADDRESS_LIMIT of
addresses, and the patterns that read folded fields and quoted strings repeat
possessively."""
from __future__ import annotations

import random

import pytest

from tests.integration.archive.test_review_r25 import imported_within_the_bound, searched

MiB = 1 << 20
SIZE = 16 * MiB
BODY = b"Content-Type: text/plain\r\n\r\nthe headerbound marker\r\n"


def words(rng: random.Random, size: int) -> list[str]:
    """Distinct lowercase words of 8 letters, `size` bytes of them with a space each."""
    return ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=8)) for _ in range(size // 9)]


def message(fields: dict[str, str], body: bytes = BODY) -> bytes:
    head = {"From": "sender@example.org", "To": "rcpt@example.com", "Subject": "long header",
            "Message-ID": "<long@example.org>", "Date": "Tue, 05 Mar 2024 10:00:00 +0000",
            **fields}
    return "".join(f"{name}: {value}\r\n" for name, value in head.items()).encode() + body


def many_fields(name: bytes, values: list[str]) -> bytes:
    return b"".join(b"%s: %s\r\n" % (name, value.encode()) for value in values)


KINDS = {
    "subject line": lambda rng: message({"Subject": " ".join(words(rng, SIZE))}),
    "subject folded": lambda rng: message({"Subject": "\r\n ".join(words(rng, SIZE))}),
    "subject of encoded words": lambda rng: message(
        {"Subject": " ".join(f"=?utf-8?q?{w}_=C3=A9?=" for w in words(rng, SIZE // 2))}),
    "from display name": lambda rng: message(
        {"From": '"' + " ".join(words(rng, SIZE)) + '" <sender@example.org>'}),
    "to of a million addresses": lambda rng: message(
        {"To": ", ".join(f"{w}@example.com" for w in words(rng, SIZE // 2))}),
    "a million cc fields": lambda rng: many_fields(
        b"Cc", [f"{w}@example.com" for w in words(rng, SIZE // 2)]) + message({}),
    "file name of rfc 2231 continuations": lambda rng: message(
        {"MIME-Version": "1.0", "Content-Type": "multipart/mixed; boundary=B"},
        b"\r\n--B\r\n" + BODY + b"--B\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Disposition: attachment;" + b"".join(
            b"\r\n filename*%d*=utf-8''%s;" % (n, w.encode())
            for n, w in enumerate(words(rng, SIZE // 2))) + b"\r\n\r\nxyz\r\n--B--\r\n"),
    "subject of 2 MiB of distinct words": lambda rng: message(
        {"Subject": " ".join(words(rng, 2 * MiB - 4096))}),
}
FLAGGED = set(KINDS) - {"file name of rfc 2231 continuations"}


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_message_of_megabytes_of_header_text_is_imported_within_the_bound(tmp_path, kind):
    folder = tmp_path / "mail"
    folder.mkdir()
    (folder / "1.eml").write_bytes(KINDS[kind](random.Random(kind)))
    imported_within_the_bound(tmp_path, folder, 1)
    assert len(searched(tmp_path, "headerbound")) == 1
    flagged = searched(tmp_path, "headerbound has:extraction-failure")
    assert len(flagged) == (kind in FLAGGED), flagged
