"""A numbered download (/message/D/attachment/N, mail_view.attachment) serves the file the
lists number N (`show` and the API's JSON: mail_view.files; the page: numbered_parts and
the part it links), and reads no other: it decodes no other file to size it, parses no
attached message but the one served, and locates no forward's bytes in the stored message
but to serve one (services.web.forwarded). Generated over the kind: messages of many
files, named and not, beside zip and TNEF containers, uuencoded files in body text and in an
x-uuencode attachment, forwards (sent as they are and base64, with their own files and
forwards, nested), a whole body that is a file. Calls are counted, never timed."""
from __future__ import annotations

import base64
import random
from dataclasses import dataclass, replace

import pytest

from services.archive.mime import parse_message
from services.archive.store import NotFound
from services.web import forwarded, mail_view, message_tree
from tests import reading_corpus as corpus
from tests.unit.web.test_file_listing_costs import HEAD, multipart
from tests.unit.web.test_uuencoded_views import block


@dataclass
class Piece:
    """A part of a generated message and the files it is, in mime's order: (name, or None
    for an unnamed one, its bytes, its type)."""
    raw: bytes
    files: list[tuple[str | None, bytes, str]]


def _base64(head: str, data: bytes) -> bytes:
    return (head + "Content-Transfer-Encoding: base64\n\n").encode() + base64.encodebytes(data)


def named_file(rng: random.Random, tag: str) -> Piece:
    data = rng.randbytes(rng.randrange(0, 3000))
    name = f"{tag}.bin"
    return Piece(_base64(f'Content-Type: application/octet-stream\nContent-Disposition: '
                         f'attachment; filename="{name}"\n', data),
                 [(name, data, "application/octet-stream")])


def unnamed_file(rng: random.Random, tag: str) -> Piece:
    data = rng.randbytes(rng.randrange(1, 500))
    return Piece(_base64("Content-Type: application/octet-stream\n", data),
                 [(None, data, "application/octet-stream")])


def zip_file(rng: random.Random, tag: str) -> Piece:
    data = corpus.zip_archive([(f"{tag}-{at}.txt", rng.randbytes(50))
                               for at in range(rng.randrange(1, 5))])
    return Piece(_base64(f'Content-Type: application/zip; name="{tag}.zip"\n', data),
                 [(f"{tag}.zip", data, "application/zip")])


def tnef_file(rng: random.Random, tag: str) -> Piece:
    data = corpus.tnef([(f"{tag}-{at}.txt", b"member %d\n" % at)
                        for at in range(rng.randrange(1, 4))], body="b")
    return Piece(_base64('Content-Type: application/ms-tnef; name="winmail.dat"\n'
                         'Content-Disposition: attachment; filename="winmail.dat"\n', data),
                 [("winmail.dat", data, "application/ms-tnef")])


def uuencoded_in_text(rng: random.Random, tag: str) -> Piece:
    files = [(f"{tag}-{at}.dat", rng.randbytes(rng.randrange(1, 300)))
             for at in range(rng.randrange(1, 4))]
    text = b"see these\n" + b"between\n".join(block(name.encode(), data) for name, data in files)
    return Piece(b"Content-Type: text/plain\n\n" + text,
                 [(name, data, "application/octet-stream") for name, data in files])


def x_uuencode_files(rng: random.Random, tag: str) -> Piece:
    files = [(f"{tag}-{at}.dat", rng.randbytes(rng.randrange(1, 300)))
             for at in range(rng.randrange(2, 4))]
    name = f"{tag}.uue"
    payload = b"".join(block(file.encode(), data) for file, data in files)
    return Piece(f'Content-Type: application/octet-stream; name="{name}"\n'
                 f"Content-Transfer-Encoding: x-uuencode\n\n".encode() + payload,
                 [(name, files[0][1], "application/octet-stream")]
                 + [(file, data, "application/octet-stream") for file, data in files[1:]])


def forward(rng: random.Random, tag: str, depth: int = 0) -> Piece:
    inner = message(rng, tag, rng.randrange(0, 4), depth + 1)
    encoded = rng.random() < 0.3
    head = b"Content-Type: message/rfc822\n"
    raw = head + (b"Content-Transfer-Encoding: base64\n\n" + base64.encodebytes(inner)
                  if encoded else b"\n" + inner)
    return Piece(raw, [(None, inner, "message/rfc822")])


KINDS = [named_file, named_file, unnamed_file, zip_file, tnef_file, uuencoded_in_text,
         x_uuencode_files, forward]


def message(rng: random.Random, tag: str, pieces: int, depth: int = 0,
            files: list | None = None) -> bytes:
    """A message of a text body and `pieces` parts of KINDS (forwards no deeper than 3);
    `files`, when given, gets the files it numbers (those of its own parts, in order)."""
    kinds = KINDS if depth < 3 else [kind for kind in KINDS if kind is not forward]
    parts = [_piece(rng, kinds, f"{tag}-{at}", depth) for at in range(pieces)]
    if files is not None:
        files.extend(file for part in parts for file in part.files)
    return HEAD.format(s=tag).encode() + multipart(
        [b"Content-Type: text/plain\n\nhello\n", *(part.raw for part in parts)], f"B-{tag}")


def _piece(rng: random.Random, kinds: list, tag: str, depth: int) -> Piece:
    kind = rng.choice(kinds)
    return forward(rng, tag, depth) if kind is forward else kind(rng, tag)


def whole_body_file(rng: random.Random, tag: str) -> tuple[bytes, list]:
    data = rng.randbytes(700)
    return (HEAD.format(s=tag).encode() + _base64(
        f'Content-Type: application/pdf; name="{tag}.pdf"\n', data),
            [(f"{tag}.pdf", data, "application/pdf")])


def generated() -> list[tuple[str, bytes, list]]:
    """(label, message, its numbered files in order) of the kind, 40 messages."""
    rng, found = random.Random(20261205), []
    for case in range(38):
        files: list = []
        raw = message(rng, f"m{case}", rng.randrange(1, 60), files=files)
        found.append((f"m{case}", raw, files))
    for case in range(2):
        found.append((f"whole{case}", *whole_body_file(rng, f"w{case}")))
    return found


MESSAGES = generated()


def assert_served(data: bytes, file: tuple[str | None, bytes, str]) -> None:
    """`data` is `file`'s bytes; of a forward, the message it is (its stored bytes where
    services.web.forwarded locates them, else the parser's serialization: where mimetree
    leaves the stored message to the feedparser, as one sent base64 in it does)."""
    _, expected, kind = file
    if kind == "message/rfc822" and data != expected:
        assert parse_message(data).as_bytes() == parse_message(expected).as_bytes()
    else:
        assert data == expected


def without_inside(file: mail_view.Attachment) -> mail_view.Attachment:
    return replace(file, files=(), not_opened=None)


@pytest.mark.parametrize("label, raw, files", MESSAGES, ids=[case[0] for case in MESSAGES])
def test_the_lists_and_the_downloads_number_the_same_files(label, raw, files):
    listed = mail_view.files(raw)
    assert [(file.number, file.filename, file.content_type) for file in listed] \
        == [(number, name or f"attachment-{number}", kind)
            for number, (name, _, kind) in enumerate(files, 1)]
    message = forwarded.parse(raw)
    tree = message_tree.tree(message, None)
    on_page = mail_view.numbered_parts(message, tree)
    assert sorted(on_page.values(), key=lambda file: file.number) == \
        [without_inside(file) for file in listed]
    for path, file in on_page.items():  # (the page's own download of the part)
        assert_served(message_tree.decoded(message_tree.part_at(message, path)),
                      files[file.number - 1])
    for file in listed:
        found, data = mail_view.attachment(raw, file.number)
        assert found == without_inside(file) and found.size == len(data)
        assert_served(data, files[file.number - 1])
    for number in (0, -1, len(files) + 1):
        with pytest.raises(NotFound):
            mail_view.attachment(raw, number)


class Reads:
    """The files decoded and the messages parsed (forwarded.parse: the stored message, and
    any message it carries that is parsed anew) while counting."""

    def __init__(self, monkeypatch):
        self.decoded, self.parsed = 0, 0
        monkeypatch.setattr(mail_view, "_part_bytes", self._counted(mail_view._part_bytes,
                                                                    "decoded"))
        monkeypatch.setattr(forwarded, "parse", self._counted(forwarded.parse, "parsed"))

    def _counted(self, real, name: str):
        def counted(*args):
            setattr(self, name, getattr(self, name) + 1)
            return real(*args)
        return counted


@pytest.mark.parametrize("label, raw, files", MESSAGES[:12], ids=[c[0] for c in MESSAGES[:12]])
def test_a_download_reads_the_file_it_serves_alone(monkeypatch, label, raw, files):
    """One file decoded, and the stored message parsed once: a forward's bytes come from
    where that parse located them (forwarded.message_bytes), none parsed again to serve it."""
    for number in range(1, len(files) + 1):
        reads = Reads(monkeypatch)
        mail_view.attachment(raw, number)
        assert (reads.decoded, reads.parsed) == (1, 1), number
