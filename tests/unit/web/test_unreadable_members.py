"""A file that could not be read out of its container (a zip member encrypted, compressed
by a method zipfile cannot undo, corrupt, past the read limit; a TNEF file past it) is
listed with the reason the indexer records for it (its extraction failure, which `show`
prints as `unreadable:`), in the API's and `show --json`'s JSON (a null size), `show`'s
lines and the message page's tree; it is never a 0-byte file, and its download by part is
an error that says why. Generated over the kind: zips of members of each kind mixed, at
the top and in a forwarded message; the expected reason is the indexer's (extract), never
one written here."""
from __future__ import annotations

import base64
import random
import struct
import zlib

import pytest

from services.archive import containers
from services.archive.extract import extract
from services.cli.archive import _file_lines
from services.web import forwarded, mail_view, message_tree
from tests import reading_corpus as corpus
from tests.unit.web.test_file_listing_costs import message

CAP = 1 << 20
KINDS = ("stored", "deflated", "encrypted", "method", "corrupt", "crc")


def zip_of(members: list[tuple[str, bytes, str]]) -> bytes:
    """A zip archive (PKWARE APPNOTE 4.3) of (name, content, kind) members: "stored" and
    "deflated" readable; "encrypted" with traditional PKWARE encryption; "method" of
    compression method 98 (PPMd, which zipfile cannot undo); "corrupt" deflate data that
    does not inflate; "crc" a CRC-32 that is not its content's."""
    out, central = b"", b""
    for name, content, kind in members:
        crc, flags, method = zlib.crc32(content), 0x0800, 8
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        data = compressor.compress(content) + compressor.flush()
        if kind == "stored":
            data, method = content, 0
        elif kind == "encrypted":
            data, flags = corpus._zipcrypto(b"secret", crc, data), flags | 0x1
        elif kind == "method":
            method = 98
        elif kind == "corrupt":
            data = b"\xff" * len(data)
        elif kind == "crc":
            crc ^= 0xFFFFFFFF
        fields = struct.pack("<HHHHHIIIHH", 20, flags, method, 0, 0x21, crc, len(data),
                             len(content), len(name.encode()), 0)
        central += b"PK\x01\x02" + struct.pack("<H", 20) + fields + struct.pack(
            "<HHHII", 0, 0, 0, 0, len(out)) + name.encode()
        out += b"PK\x03\x04" + fields + name.encode() + data
    return out + central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members),
                                       len(members), len(central), len(out), 0)


def zip_part(name: str, archive: bytes) -> bytes:
    return (f'Content-Type: application/zip; name="{name}"\nContent-Transfer-Encoding: '
            f"base64\n\n").encode() + base64.encodebytes(archive)


def members(rng: random.Random, tag: str) -> list[tuple[str, bytes, str]]:
    return [(f"{tag}-{at}-{kind}.txt", b"member %d " % at + rng.randbytes(rng.randrange(1, 200)),
             kind) for at in range(rng.randrange(1, 7)) for kind in [rng.choice(KINDS)]]


def generated() -> list[tuple[str, bytes, dict[str, bytes]]]:
    """(label, message, the content of each member by name) of 30 messages."""
    rng, found = random.Random(20261206), []
    for case in range(30):
        contents, parts = {}, []
        for at in range(rng.randrange(1, 4)):
            listed = members(rng, f"m{case}z{at}")
            contents.update({name: content for name, content, _ in listed})
            part = zip_part(f"m{case}-{at}.zip", zip_of(listed))
            if rng.random() < 0.3:  # in a forwarded message
                part = b"Content-Type: message/rfc822\n\n" + message(f"in{case}-{at}", [part])
            parts.append(part)
        found.append((f"m{case}", message(f"m{case}", parts), contents))
    return found


MESSAGES = generated()


def indexed_members(raw: bytes) -> dict[str, str | None]:
    """Each zip member's extraction failure (None: read), by name, as the indexer has it."""
    return {entry.filename: entry.error for entry in extract(raw, CAP).attachments
            if entry.container and entry.container.endswith(".zip")}


def inner_files(files: list[dict]):
    for file in files:
        yield from file["files"]
        yield from inner_files(file["files"])


@pytest.mark.parametrize("label, raw, contents", MESSAGES, ids=[case[0] for case in MESSAGES])
def test_an_unreadable_member_is_listed_with_the_indexers_reason(label, raw, contents):
    indexed = indexed_members(raw)
    assert set(indexed) == set(contents)
    listed = mail_view.view(raw).as_json()["attachments"]
    shown = {file["filename"]: file for file in inner_files(listed)
             if file["filename"] in contents}
    assert set(shown) == set(contents)
    for name, file in shown.items():
        reason = indexed[name]
        if reason is None:
            assert file["size"] == len(contents[name]) and "unreadable" not in file
        else:
            assert file["size"] is None and file["unreadable"] == reason
    lines = "\n".join(_file_lines(listed))
    for name, reason in indexed.items():
        line = next(line for line in lines.splitlines() if f'"{name}"' in line)
        assert line.endswith(f"unreadable: {reason}" if reason
                             else f", {len(contents[name]):,} bytes")


@pytest.mark.parametrize("label, raw, contents", MESSAGES[:10],
                         ids=[case[0] for case in MESSAGES[:10]])
def test_the_page_says_why_and_serves_no_empty_file(label, raw, contents):
    indexed = indexed_members(raw)
    message = forwarded.parse(raw)
    nodes = [node for node in message_tree.tree(message, None).walk()
             if node.filename in contents]
    assert {node.filename for node in nodes} == set(contents)
    for node in nodes:
        reason = indexed[node.filename]
        assert node.unreadable == reason
        assert (node.size is None) == (reason is not None)
        if reason is None:
            assert message_tree.decoded(message_tree.part_at(message, node.path)) == \
                contents[node.filename]
        else:
            assert node.shown_as is None and node.text == ""


def test_a_tnef_file_past_the_read_limit_is_unreadable_too(monkeypatch):
    """The message's containers may expand 700 bytes (containers.ReadBudget.read_bytes):
    the first file takes 400 of them, and the second, of 500, is past what is left."""
    made = containers.ReadBudget
    monkeypatch.setattr(containers, "ReadBudget", lambda text_bytes, **limits: made(
        text_bytes, **{**limits, "read_bytes": 700}))
    data = corpus.tnef([("first.bin", b"f" * 400), ("large.bin", b"x" * 500)], body="b")
    raw = message("tnef", [b'Content-Type: application/ms-tnef; name="winmail.dat"\n'
                           b"Content-Transfer-Encoding: base64\n\n" + base64.encodebytes(data)])
    indexed = {entry.filename: entry.error for entry in extract(raw, CAP).attachments
               if entry.container == "winmail.dat"}
    assert indexed["large.bin"] and indexed["first.bin"] is None
    inside = mail_view.view(raw).as_json()["attachments"][0]["files"]
    assert [(file["filename"], file["size"], file.get("unreadable")) for file in inside] == [
        ("first.bin", 400, None), ("large.bin", None, indexed["large.bin"])]


def test_every_kind_is_in_the_generated_messages():
    kinds = {name.rsplit("-", 1)[1].removesuffix(".txt") for _, _, contents in MESSAGES
             for name in contents}
    assert kinds == set(KINDS)
