"""A winmail.dat is read file by file: what one file or one damaged stretch of the stream
does, it does to itself alone (services.archive.tnef_stream, containers.tnef_read; review
r11 F1-F4).

Generated streams of 1-6 attachments, each named one of the ways a sender can: a short
title, none, an empty one or one beginning with NUL (tnef reads up to it), one too long to
be a file name (the `tnef` tool stopped there, "File name too long", and every file after it
was lost), a MAPI long file name (PT_UNICODE or PT_STRING8, short, too long, or empty: the
title names the file; review r12 F1-F3), with files of random bytes; then damaged one of the ways
mail damages it: cut short at any byte, bytes after its end, a wrong checksum. Asserted:
- every file before the damage is listed, in order, with its own bytes and its own name
  (None when it has none: never tnef's made-up "tnef-tmp"), and a file listed after it
  has its own bytes too;
- a damaged stream says where (the container's problem), an undamaged one has none;
- a file over what the message may still expand is listed unreadable, and the files after
  it are read within what is left.
"""
from __future__ import annotations

import random

import pytest

from services.archive import containers, tnef_stream
from services.archive.containers import ReadBudget
from services.archive.extract import extract
from services.web import mail_view
from tests import reading_corpus as corpus
from tests.unit.web.test_review_r10 import attached, message

NAMINGS = ["title", "no title", "empty title", "NUL-led title", "long title", "unicode name",
           "long unicode name", "string8 name", "long string8 name", "empty unicode name",
           "empty string8 name"]
DAMAGES = ["none", "cut", "trailing bytes", "wrong checksum"]


def named(rng: random.Random, naming: str, number: int) -> tuple[bytes, bytes | None,
                                                                  bool, str | None]:
    """(title, long name, unicode, the name a reader should list) for `naming`."""
    short = f"file {number} {rng.choice(['é', 'x', '%', '|', 'tnef-tmp'])}.bin"
    long = "L" * rng.randint(81, 600) + f"{number}.bin"
    long_unicode = rng.choice(["é", "文", "ß"]) * rng.randint(90, 200) + f"{number}.txt"
    return {
        "title": (short.encode("cp1252"), None, True, short),
        "no title": (None, None, True, None),
        "empty title": (b"", None, True, None),
        "NUL-led title": (b"\0" + short.encode("cp1252"), None, True, None),  # tnef: ""
        "long title": (long.encode("ascii"), None, True, long),
        "unicode name": (b"t.bin", short.encode("utf-8"), True, short),
        "long unicode name": (b"t.bin", long_unicode.encode("utf-8"), True, long_unicode),
        "string8 name": (b"t.bin", short.encode("cp1252"), False, short),
        "long string8 name": (b"t.bin", long.encode("ascii"), False, long),
        "empty unicode name": (short.encode("cp1252"), b"", True, short),  # the title's
        "empty string8 name": (short.encode("cp1252"), b"\0", False, short),
    }[naming]


def stream(seed: int) -> tuple[bytes, list[tuple[str | None, bytes]], int | None, str]:
    """A generated winmail.dat, its files (name, bytes), how many of them lie wholly
    before the damage (None: undamaged) and the damage's kind."""
    rng = random.Random(seed)
    files, parts = [], []
    for number in range(rng.randint(1, 6)):
        title, long_name, unicode, name = named(rng, rng.choice(NAMINGS), number)
        data = rng.randbytes(rng.randint(1, 3000))
        parts.append(corpus.tnef_attachment(title, data, long_name, unicode))
        files.append((name, data))
    whole = corpus.tnef_of(parts)
    damage = DAMAGES[seed % len(DAMAGES)]
    if damage == "cut":
        cut = rng.randrange(len(whole) - sum(map(len, parts)) + 1, len(whole))
        before = sum(1 for end in _ends(whole, parts) if end <= cut)
        return whole[:cut], files, before, damage
    if damage == "trailing bytes":
        return whole + rng.choice([b"\0", b"\r\n", b"junk", b"\x03\x00\x00"]), files, \
            len(files), damage
    if damage == "wrong checksum":
        return whole[:-1] + bytes([whole[-1] ^ 0x5A]), files, None, damage
    return whole, files, None, damage


def _ends(whole: bytes, parts: list[bytes]) -> list[int]:
    ends, at = [], len(whole) - sum(map(len, parts))
    for part in parts:
        at += len(part)
        ends.append(at)
    return ends


@pytest.mark.parametrize("seed", range(240))
def test_each_file_before_the_damage_is_read_with_its_own_name_and_bytes(seed):
    data, files, before, damage = stream(seed)
    _, members, problem = containers.tnef_read(data, ReadBudget(1 << 20))
    listed = [(member.name, member.data) for member in members]
    whole = len(files) if before is None else before
    assert listed[:whole] == files[:whole]
    own = {data for _, data in files}
    assert all(data in own for _, data in listed[whole:])  # never another file's bytes
    assert len(listed) <= len(files)
    assert (problem is not None) == (damage in ("cut", "trailing bytes")), problem


@pytest.mark.parametrize("seed", range(0, 240, 8))
def test_the_indexer_and_the_views_list_the_same(seed):
    data, files, _, _ = stream(seed)
    raw = message(f"tnef{seed}", [attached("winmail.dat", data, "application/ms-tnef")])
    indexed = [entry.filename for entry in extract(raw, 1 << 20).attachments
               if entry.container == "winmail.dat"]
    [winmail] = mail_view.files(raw)
    shown = [file.filename if file.named else None for file in winmail.files]
    assert shown == indexed
    assert "tnef-tmp" not in set(shown) - {name for name, _ in files}


@pytest.mark.parametrize("seed", range(40))
def test_a_file_over_what_is_left_is_unreadable_and_the_rest_read(seed):
    rng = random.Random(seed)
    sizes = [rng.randint(1, 2000) for _ in range(rng.randint(2, 7))]
    files = [(f"f{number}.bin", rng.randbytes(size)) for number, size in enumerate(sizes)]
    room = rng.randint(0, sum(sizes))
    _, members, _ = containers.tnef_read(corpus.tnef(files), ReadBudget(1 << 20,
                                                                        read_bytes=room))
    for (name, data), member in zip(files, members, strict=True):
        fits = len(data) <= room
        assert (member.name, member.data) == (name, data if fits else None)
        room -= len(data) if fits else 0


def test_every_attachment_is_walked_however_many():
    """30,000 attachment beginnings after 20,000 message attributes: each gets its stand-in,
    and the stream is otherwise unchanged (review r12 F3: a walk that stopped early let
    the files past it be misnamed or lost)."""
    begun = corpus.tnef_attribute(corpus.LVL_ATTACHMENT, corpus.ATT_ATTACH_REND_DATA, b"x" * 14)
    pad = corpus.tnef_attribute(corpus.LVL_MESSAGE, corpus.ATT_SUBJECT, b"s\0")
    many = corpus.tnef_of([]) + pad * 20_000 + begun * 30_000
    prepared = tnef_stream.prepared(many)
    assert len(prepared.titles) == 30_000 and prepared.damage is None
    stand_in = len(prepared.data) - len(many)
    assert stand_in == sum(len(tnef_stream._title(title)) for title in prepared.titles)


SAMPLES = ["résumé Größe.txt", "отчёт.txt", "звіт.txt", "zażółć.txt", "Ελληνικά.txt", "日本語.txt",
           "보고서.txt", "中文报告.txt", "ışık.txt", "שלום.txt", "مرحبا.txt"]


@pytest.mark.parametrize("page", sorted(tnef_stream.CODE_PAGES))
def test_a_title_is_read_in_the_streams_code_page_by_its_windows_number(page):
    """Windows code page numbers Python names otherwise (KOI8-R 20866, ISO-8859-x 2859x,
    Mac Roman 10000, EUC-JP 51932, ISO-2022-JP 50220...; review r12 F7): a title in one is
    listed as written, by the indexer and the views."""
    codec = tnef_stream.CODE_PAGES[page]
    title = next((sample for sample in SAMPLES if _encodes(sample, codec)), None)
    assert title is not None, codec
    data = corpus.tnef_of([corpus.tnef_attachment(title.encode(codec), b"one")], codepage=page)
    _, members, _ = containers.tnef_read(data, ReadBudget(1 << 20))
    assert [member.name for member in members] == [title]


def _encodes(text: str, codec: str) -> bool:
    try:
        encoded = text.encode(codec)
    except UnicodeEncodeError:
        return False
    return not encoded.isascii() or codec.startswith(("iso2022", "hz"))
