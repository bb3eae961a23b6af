"""The views open the containers the indexer opens, by its rule (review r11 F6: a
winmail.dat in a zip was opened by the indexer, `filename:` found its files, and listed by
the views as a plain file): every container kind (zip, TNEF, S/MIME signed-data, a
forwarded .eml) inside every other, two and three deep, under its usual name or a name
that says nothing (the content tells), attached under its own type or as
application/octet-stream. The views' list of the message's files (mail_view.files, each
with the files inside it) names the same files in the same containers as the indexer's
(extract(raw).attachments, each with its `container`)."""
from __future__ import annotations

import base64
import itertools
import random

import pytest

from services.archive.extract import extract
from services.web import mail_view
from tests import reading_corpus as corpus
from tests.unit.web.test_review_r10 import attached, message, multipart

KINDS = ("zip", "tnef", "signed", "eml")
USUAL_NAME = {"zip": "archive.zip", "tnef": "winmail.dat", "signed": "smime.p7m",
              "eml": "forward.eml"}
OWN_TYPE = {"zip": "application/zip", "tnef": "application/ms-tnef",
            "signed": 'application/pkcs7-mime; smime-type=signed-data',
            "eml": "message/rfc822"}


def container(kind: str, files: list[tuple[str, bytes]], tag: str) -> bytes:
    """A container of `kind` holding `files` (name, bytes) and nothing else."""
    if kind == "zip":
        return corpus.zip_archive(files)
    if kind == "tnef":
        return corpus.tnef(files)
    parts = [attached(name, data) for name, data in files]
    if kind == "signed":
        return corpus.smime_signed_data(multipart(
            [b"Content-Type: text/plain\r\n\r\nsigned text\r\n", *parts], "S" + tag))
    return message("fwd" + tag, parts)


def nested(kinds: list[str], names: list[str]) -> tuple[str, bytes]:
    """(name, bytes) of kinds[0] holding a leaf and kinds[1] holding a leaf and ..."""
    inner: list[tuple[str, bytes]] = []
    for depth in reversed(range(len(kinds))):
        leaf = (f"leaf-{depth}.txt", f"leaf at depth {depth}\r\n".encode())
        data = container(kinds[depth], [leaf, *inner], str(depth))
        inner = [(names[depth], data)]
    return inner[0]


def as_attachment(kind: str, name: str, data: bytes, own_type: bool) -> bytes:
    if kind == "eml" and own_type:  # (a forward as mailers attach it: not encoded)
        return (f'Content-Type: message/rfc822\r\nContent-Disposition: attachment; '
                f'filename="{name}"\r\n\r\n').encode() + data
    declared = OWN_TYPE[kind] if own_type else "application/octet-stream"
    return (f'Content-Type: {declared}\r\nContent-Disposition: attachment; '
            f'filename="{name}"\r\nContent-Transfer-Encoding: base64\r\n\r\n').encode() \
        + base64.encodebytes(data).replace(b"\n", b"\r\n")


def indexed(raw: bytes) -> list[tuple[str | None, str | None]]:
    return [(entry.filename, entry.container) for entry in extract(raw, 1 << 20).attachments]


def listed(raw: bytes) -> list[tuple[str | None, str | None]]:
    def walk(files, holder):
        for file in files:
            yield file.filename, holder
            yield from walk(file.files, file.filename)
    return list(walk(mail_view.files(raw), None))


def _case(kinds: list[str], usual: list[bool], own_type: bool) -> bytes:
    names = [USUAL_NAME[kind] if is_usual else f"data-{depth}.bin"
             for depth, (kind, is_usual) in enumerate(zip(kinds, usual))]
    name, data = nested(kinds, names)
    return message("nested", [as_attachment(kinds[0], name, data, own_type)])


PAIRS = [(list(pair), [True, usual], own)
         for pair in itertools.product(KINDS, repeat=2)
         for usual in (True, False) for own in (True, False)]


@pytest.mark.parametrize("kinds,usual,own_type", PAIRS,
                         ids=[f"{'-in-'.join(reversed(k))}-{'named' if u[1] else 'unnamed'}-"
                              f"{'typed' if o else 'generic'}" for k, u, o in PAIRS])
def test_the_views_list_the_files_the_indexer_finds(kinds, usual, own_type):
    raw = _case(kinds, usual, own_type)
    assert listed(raw) == indexed(raw)


@pytest.mark.parametrize("seed", range(12))
def test_three_deep_as_the_indexer(seed):
    rng = random.Random(seed)
    kinds = [rng.choice(KINDS) for _ in range(3)]
    raw = _case(kinds, [rng.random() < 0.5 for _ in range(3)], rng.random() < 0.5)
    assert listed(raw) == indexed(raw)


def test_a_winmail_dat_in_a_zip_is_listed_with_its_files():
    """The finding itself: both lists hold the TNEF's files, not only agree."""
    raw = _case(["zip", "tnef"], [True, True], True)
    assert ("leaf-1.txt", "winmail.dat") in listed(raw)
