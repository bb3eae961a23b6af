"""A view opens each distinct container once, within its budgets, and lists what the
indexer reads inside them (review r9 F1, F2, F4): zip members at the top, in a forward, in
a TNEF file, nested; a .eml in a TNEF file or a zip as a forwarded message with its own
files; repeated and distinct S/MIME signed-data and TNEF objects opened once each, tool runs
at most containers.TOOL_CONTAINERS_OPENED a view, those past it listed as the files they
are with `not_opened`, in the listing (show, API) as in the page. Counted, never timed."""
from __future__ import annotations

import base64
import random

import pytest

from services.archive import containers
from services.archive.extract import extract
from services.cli.archive import _file_lines
from services.web import forwarded, mail_view, message_tree
from tests import reading_corpus as corpus

HEAD = ("From: s@example.org\r\nTo: alice@example.com\r\nSubject: {s}\r\n"
        "Date: Fri, 15 Mar 2024 09:00:00 +0000\r\nMessage-ID: <{s}@example.org>\r\n"
        "MIME-Version: 1.0\r\n")


def message(subject: str, parts: list[bytes]) -> bytes:
    boundary = f"B-{subject}"
    return HEAD.format(s=subject).encode() \
        + f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'.encode() \
        + b"".join(f"--{boundary}\r\n".encode() + part + b"\r\n"
                   for part in [b"Content-Type: text/plain\r\n\r\nhello\r\n", *parts]) \
        + f"--{boundary}--\r\n".encode()


def attached(name: str, data: bytes, content_type: str = "application/octet-stream") -> bytes:
    return (f'Content-Type: {content_type}\r\nContent-Disposition: attachment; '
            f'filename="{name}"\r\nContent-Transfer-Encoding: base64\r\n\r\n').encode() \
        + base64.encodebytes(data)


def signed(entity: bytes) -> bytes:
    return attached("smime.p7m", corpus.smime_signed_data(entity),
                    "application/pkcs7-mime; smime-type=signed-data")


# -- a generated corpus of containers, nested; each item (part, {name: names inside}) ------

def _files(rng: random.Random, tag: str, depth: int) -> tuple[list[tuple[str, bytes]], dict]:
    """Members for a container: plain files, and at depth > 0 a zip or a .eml among them."""
    members = [(f"{tag}-{at}.txt", b"member %d" % at) for at in range(rng.randrange(1, 4))]
    inside = {}
    if depth > 0:
        kind = rng.choice(["zip", "eml"])
        inner_members, inner_inside = _files(rng, f"{tag}{kind}", depth - 1)
        if kind == "zip":
            name, data = f"{tag}-inner.zip", corpus.zip_archive(inner_members)
        else:
            name = f"{tag}-fwd.eml"
            # (a .eml inside it sent message/rfc822: one sent application/octet-stream in
            # a MIME message is a gap of its own, not of containers)
            data = message(f"{tag}-eml", [attached(n, d, "message/rfc822" if n.endswith(
                ".eml") else "application/octet-stream") for n, d in inner_members])
        members.insert(rng.randrange(len(members) + 1), (name, data))
        inside = {name: [n for n, _ in inner_members], **inner_inside}
    return members, inside


def corpus_cases() -> list[tuple[str, bytes, dict]]:
    rng, cases = random.Random(20261205), []
    for case in range(12):
        where = ["top", "forwarded", "tnef", "signed"][case % 4]
        members, inside = _files(rng, f"c{case}", depth=rng.randrange(0, 3))
        inside["pack.zip"] = [name for name, _ in members]
        part = attached("pack.zip", corpus.zip_archive(members),
                        rng.choice(["application/zip", "application/octet-stream"]))
        if where == "forwarded":
            part = b"Content-Type: message/rfc822\r\n\r\n" + message(f"fw{case}", [part])
        elif where == "tnef":
            part = attached("winmail.dat", corpus.tnef([("pack.zip", corpus.zip_archive(members))]),
                            "application/ms-tnef")
        elif where == "signed":
            part = signed(message(f"sg{case}", [part]).split(b"\r\n", 6)[6])
        cases.append((f"{where}-{case}", message(f"case{case}", [part]), inside))
    return cases


CASES = corpus_cases()


def _walk(files):
    for file in files:
        yield file
        yield from _walk(file.files)


def _found_inside(files) -> dict[str, list[str]]:
    """{a container's or forward's name: the names listed inside it (a forward: its files
    past the inner message node)}."""
    return {file.filename: [inner.filename for inner in file.files]
            for file in _walk(files) if file.files}


@pytest.mark.parametrize("label, raw, inside", CASES, ids=[case[0] for case in CASES])
def test_zip_members_and_eml_members_are_listed_as_the_indexer_reads_them(label, raw, inside):
    listed = mail_view.files(raw)
    found = _found_inside(listed)
    for name, names in inside.items():
        assert found.get(name) == names, (label, name)
    # every file listed inside a container is one the indexer read (filename: finds it)
    indexed = {entry.filename for entry in extract(raw, 1 << 20).attachments}
    assert {file.filename for file in _walk(listed) if file.named} <= indexed
    # the page lists the same files
    page = message_tree.tree(forwarded.parse(raw), None)
    page_names = sorted(node.filename for node in page.walk() if node.attachment and node.filename)
    assert page_names == sorted(file.filename for file in _walk(listed) if file.named)


class Runs:
    """Tool runs (`openssl cms`, `tnef`) and zip readings while counting."""

    def __init__(self, monkeypatch):
        self.openssl = self.tnef = self.zip = 0
        real_signed, real_tnef, real_zip = (containers.signed_content, containers.tnef_read,
                                            containers.zip_members)

        def signed_content(data):
            self.openssl += 1
            return real_signed(data)

        def tnef_read(data, budget):
            self.tnef += 1
            return real_tnef(data, budget)

        def zip_members(data, budget):
            self.zip += 1
            return real_zip(data, budget)
        monkeypatch.setattr(containers, "signed_content", signed_content)
        monkeypatch.setattr(containers, "tnef_read", tnef_read)
        monkeypatch.setattr(containers, "zip_members", zip_members)


def _repeated_corpus() -> list[tuple[str, bytes, int, int]]:
    """(label, message, distinct tool containers, copies in all): signed-data, TNEF and zip
    objects, some repeated many times, some distinct, shuffled."""
    rng, cases = random.Random(7), []
    def signed_file(at: int) -> bytes:  # (the entity a multipart holding a file)
        return signed(message(f"s{at}", [attached(f"s{at}.txt", b"s")]).split(b"\r\n", 6)[6])
    signed_one = signed_file(0)
    for case, (distinct, copies) in enumerate([(1, 60), (3, 90), (10, 10), (45, 45),
                                              (40, 200)]):
        objects = []
        for at in range(distinct):
            if at % 2:
                objects.append(attached("winmail.dat", corpus.tnef([(f"t{at}.txt", b"t")]),
                                        "application/ms-tnef"))
            else:
                objects.append(signed_file(at) if at else signed_one)
        parts = [objects[at % distinct] for at in range(copies)]
        parts += [attached("same.zip", corpus.zip_archive([("z.txt", b"z")]))] * 20
        rng.shuffle(parts)
        cases.append((f"distinct{distinct}-of{copies}", message(f"rep{case}", parts),
                      distinct, copies))
    return cases


REPEATED = _repeated_corpus()


@pytest.mark.parametrize("label, raw, distinct, copies", REPEATED,
                         ids=[case[0] for case in REPEATED])
def test_each_distinct_container_is_opened_once_and_tool_runs_are_bounded(
        monkeypatch, label, raw, distinct, copies):
    runs = Runs(monkeypatch)
    listed = mail_view.view(raw).as_json()["attachments"]
    opened = min(distinct, containers.TOOL_CONTAINERS_OPENED)
    assert runs.openssl + runs.tnef == opened
    assert runs.zip == 1  # 20 copies of one zip: read once
    containers_listed = [file for file in listed if file["filename"] != "same.zip"]
    assert len(containers_listed) == copies
    unopened = [file for file in containers_listed if "not_opened" in file]
    # a copy of an opened object lists its files; only those past the budget are unopened
    assert all(file["files"] for file in containers_listed if "not_opened" not in file)
    assert all(not file["files"] for file in unopened)
    assert bool(unopened) == (distinct > containers.TOOL_CONTAINERS_OPENED)
    # the page: its own view, the same counts, the same files unopened
    runs.openssl = runs.tnef = 0
    page = message_tree.tree(forwarded.parse(raw), None)
    assert runs.openssl + runs.tnef == opened
    page_files = [node for node in page.children if node.attachment
                  and node.filename != "same.zip"]
    assert [node.not_opened for node in page_files] == \
        [file.get("not_opened") for file in containers_listed]


def test_a_view_under_the_budget_opens_everything_a_view_past_it_says_why(monkeypatch):
    monkeypatch.setattr(containers, "TOOL_CONTAINERS_OPENED", 2)
    parts = [attached("winmail.dat", corpus.tnef([(f"w{at}.txt", b"w")]), "application/ms-tnef")
             for at in range(3)]
    listed = mail_view.files(message("budget", parts))
    assert [[inner.filename for inner in file.files] for file in listed] == \
        [["w0.txt"], ["w1.txt"], []]
    assert [file.not_opened is not None for file in listed] == [False, False, True]
    assert "2 distinct S/MIME and TNEF objects" in listed[2].not_opened
    assert "not_opened" in listed[2].as_json() and "not_opened" not in listed[0].as_json()


def test_show_says_why_a_container_was_not_opened(monkeypatch):
    monkeypatch.setattr(containers, "TOOL_CONTAINERS_OPENED", 1)
    parts = [attached("winmail.dat", corpus.tnef([(f"w{at}.txt", b"w")]), "application/ms-tnef")
             for at in range(2)]
    listed = [file.as_json() for file in mail_view.files(message("shown", parts))]
    lines = _file_lines(listed)
    opened, unopened = [line for line in lines if '"winmail.dat"' in line]
    assert "not opened" not in opened and '"w0.txt"' in lines[lines.index(opened) + 1]
    assert unopened.endswith("; " + listed[1]["not_opened"])
