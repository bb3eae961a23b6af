"""What listing a message's files costs, and what a numbered download costs (review r7 F1).

f75a48f made mail_view list the files inside each file (a TNEF winmail.dat's members, an
attached message's files, at every level) and a numbered download went through that
listing: one `tnef` run per winmail.dat and a parse of every forwarded message at every
level before serving attachment 1 (of 2,000 winmail.dat: 0.13 s -> 11.6 s). A download
reads no container and parses no attached message but the one it serves (it reads that
file alone, test_numbered_downloads); the listing (show, the API's JSON) reads what the
message page reads, within the page's one budget per message (message_tree.CONTAINERS_OPENED containers, the
indexer's members and bytes). Calls are counted, never timed."""
from __future__ import annotations

import base64
import random

import pytest

from services.archive import containers
from services.web import mail_view, message_tree
from services.web import forwarded as stored_forwards
from services.web.forwarded import parse as parse_stored
from tests import reading_corpus as corpus

HEAD = ("From: s@example.org\nTo: alice@example.com\nSubject: {s}\n"
        "Date: Fri, 15 Mar 2024 09:00:00 +0000\nMessage-ID: <{s}@example.org>\n"
        "MIME-Version: 1.0\n")


def multipart(parts: list[bytes], boundary: str) -> bytes:
    return (f'Content-Type: multipart/mixed; boundary="{boundary}"\n\n').encode() + b"".join(
        f"--{boundary}\n".encode() + part + b"\n" for part in parts) \
        + f"--{boundary}--\n".encode()


def message(subject: str, parts: list[bytes]) -> bytes:
    return HEAD.format(s=subject).encode() + multipart(
        [b"Content-Type: text/plain\n\nhello\n", *parts], f"B-{subject}")


def named(name: str, data: bytes) -> bytes:
    return (f'Content-Type: application/octet-stream\nContent-Disposition: attachment; '
            f'filename="{name}"\nContent-Transfer-Encoding: base64\n\n').encode() \
        + base64.encodebytes(data)


def tnef(members: int, tag: str) -> bytes:
    data = corpus.tnef([(f"{tag}-{at}.txt", b"member\n") for at in range(members)], body="b")
    return (b'Content-Type: application/ms-tnef; name="winmail.dat"\nContent-Disposition: '
            b'attachment; filename="winmail.dat"\nContent-Transfer-Encoding: base64\n\n'
            + base64.encodebytes(data))


def signed(entity: bytes) -> bytes:
    return (b'Content-Type: application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"\n'
            b'Content-Disposition: attachment; filename="smime.p7m"\n'
            b"Content-Transfer-Encoding: base64\n\n"
            + base64.encodebytes(corpus.smime_signed_data(entity)))


def forwarded(inner: bytes, encoded: bool) -> bytes:
    if encoded:
        return (b"Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n"
                + base64.encodebytes(inner))
    return b"Content-Type: message/rfc822\n\n" + inner


def nested(depth: int, tag: str, rng: random.Random) -> bytes:
    """A message forwarded `depth` deep, a file, a winmail.dat and a signed object at each
    level; some levels sent base64 (the parser's nesting restarts in them)."""
    inner = message(f"{tag}-0", [named(f"{tag}-bottom.bin", b"bottom")])
    for level in range(1, depth + 1):
        inner = message(f"{tag}-{level}", [named(f"{tag}-{level}.bin", b"x"),
                                           tnef(1, f"{tag}-{level}"),
                                           forwarded(inner, rng.random() < 0.3)])
    return inner


def messages() -> list[tuple[str, bytes, int]]:
    """(label, message, its own forwarded messages) of many TNEF files, signed objects and
    nested forwards, mixed."""
    rng, found = random.Random(20261204), []
    for case in range(6):
        parts = [named("first.bin", b"first file")]
        parts += [tnef(rng.randrange(1, 4), f"t{case}-{at}") for at in range(rng.randrange(5, 40))]
        parts += [signed(multipart([b"Content-Type: text/plain\n\ns\n", tnef(2, f"s{case}")],
                                   f"S{case}"))] * rng.randrange(0, 3)
        forwards = rng.randrange(0, 3)
        parts += [forwarded(nested(rng.randrange(1, 25), f"n{case}-{at}", rng),
                            rng.random() < 0.5) for at in range(forwards)]
        rng.shuffle(parts)
        found.append((f"case-{case}", message(f"case-{case}", parts), forwards))
    return found


class Counts:
    """The `tnef` and `openssl cms` runs and the attached messages parsed while counting."""

    def __init__(self, monkeypatch):
        self.tnef, self.signed, self.parsed, self.budgets = 0, 0, 0, []
        real_tnef, real_signed = containers.tnef_read, containers.signed_content
        monkeypatch.setattr(containers, "tnef_read", self._counted_tnef(real_tnef))
        monkeypatch.setattr(containers, "signed_content", self._counted_signed(real_signed))
        # (every read of an attached message: forwarded.inner_message)
        monkeypatch.setattr(stored_forwards, "inner_message",
                            self._counted_parse(stored_forwards.inner_message))

    def _counted_tnef(self, real):
        def counted(data, budget):
            self.tnef += 1
            self.budgets.append(budget)
            return real(data, budget)
        return counted

    def _counted_signed(self, real):
        def counted(data):
            self.signed += 1
            return real(data)
        return counted

    def _counted_parse(self, real):
        def counted(part):
            self.parsed += 1
            return real(part)
        return counted

    def reset(self):
        self.tnef = self.signed = self.parsed = 0
        self.budgets = []


MESSAGES = messages()


@pytest.mark.parametrize("label, raw, forwards", MESSAGES, ids=[case[0] for case in MESSAGES])
def test_a_download_reads_no_container_and_parses_only_the_messages_own_forwards(
        monkeypatch, label, raw, forwards):
    counts = Counts(monkeypatch)
    listed = mail_view.view(raw).attachments
    assert counts.tnef > 0  # (the listing reads them: the page lists their files)
    for file in listed:
        counts.reset()
        found, _ = mail_view.attachment(raw, file.number)
        assert found.number == file.number and found.filename == file.filename
        assert (counts.tnef, counts.signed) == (0, 0), (label, file.number)
        # (the forward served alone: no other file is sized, test_numbered_downloads)
        assert counts.parsed <= (file.content_type == "message/rfc822"), (label, file.number)


@pytest.mark.parametrize("label, raw, forwards", MESSAGES, ids=[case[0] for case in MESSAGES])
def test_the_listing_opens_no_more_containers_than_the_page_may(monkeypatch, label, raw,
                                                                 forwards):
    """At most CONTAINERS_OPENED containers a message (here 4), all within one budget, in
    the listing as in the page; the two list the same files."""
    monkeypatch.setattr(message_tree, "CONTAINERS_OPENED", 4, raising=False)
    counts = Counts(monkeypatch)
    listed = mail_view.view(raw).as_json()["attachments"]
    assert counts.tnef + counts.signed <= 4
    assert len({id(budget) for budget in counts.budgets}) <= 1
    counts.reset()
    page = message_tree.tree(parse_stored(raw), None)
    assert counts.tnef + counts.signed <= 4
    assert len({id(budget) for budget in counts.budgets}) <= 1
    assert names(listed) == page_names(page)


def test_the_members_of_a_messages_winmail_dat_files_are_read_within_one_budget(monkeypatch):
    """The members' count the indexer allows a message (ReadBudget.members) is for all its
    containers together: of 3 winmail.dat of 4 files and a body each (5 members), a budget
    of 6 lists the first's 4 files, at most 1 of the second's, and opens no third."""
    made = containers.ReadBudget
    monkeypatch.setattr(containers, "ReadBudget",
                        lambda text_bytes, **limits: made(text_bytes, **{**limits, "members": 6}))
    counts = Counts(monkeypatch)
    raw = message("members", [tnef(4, f"w{at}") for at in range(3)])
    listed = mail_view.view(raw).as_json()["attachments"]
    assert [len(file["files"]) for file in listed] in ([4, 1, 0], [4, 0, 0])
    assert counts.tnef == 2
    counts.reset()
    page = message_tree.tree(parse_stored(raw), None)
    assert [len(node.children) for node in page.children[1:]] == \
        [len(file["files"]) for file in listed]
    assert counts.tnef == 2


def names(files: list[dict]) -> list[str]:
    found = []
    for file in files:
        found += [file["filename"], *names(file["files"])]
    return [name for name in found if name and not name.startswith("attachment-")]


def page_names(node: message_tree.Part) -> list[str]:
    found = [node.filename] if node.filename and node.attachment else []
    for child in node.children:
        found += page_names(child)
    return found
