"""One numbering of a message's files in every view (review r5 F5): `archiver show` (text
and --json), the API's message JSON and the numbered downloads (the API's and the web's
/message/D/attachment/N) agree, and download N is the bytes of the file `show` calls N.

The stored name list (the indexer's, for filename: searches) leaves out files without a
name and puts an attached message's own files in line with the message's; `show` listed
it, so its Nth name was not attachment N. Here a generated corpus mixes every kind of file
a message has: named and unnamed attachments, inline parts (a cid: image, a named inline
text), forwarded messages with files of their own (and messages forwarded in them), an
x-uuencode attachment of several files, uuencoded blocks in body text, a TNEF winmail.dat
and nested multiparts. What each message's files are is known by construction (Expected),
so each view is checked against it, not only against the others."""
from __future__ import annotations

import base64
import binascii
import email
import html
import json
import random
import re
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from services.archive.mime import parse_message
from services.web import mail_view, message_tree
from tests import reading_corpus as corpus
from tests.integration.web.test_ui import logged_in

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_throttle")]

MESSAGES = 40
SEED = 20261204


@dataclass
class Expected:
    """A file of a generated message as every view should give it: `name` None for an
    unnamed one; `data` its decoded bytes (None for an attached message: `subject` names
    it); `files` those listed inside it (an attached message's own, a TNEF file's)."""
    name: str | None
    content_type: str
    data: bytes | None
    subject: str | None = None
    files: list["Expected"] = field(default_factory=list)


class Generator:
    """Random MIME parts (bytes, with the files they are, in order) of every kind above."""

    def __init__(self, seed: int):
        self.random, self.counter = random.Random(seed), 0

    def tag(self) -> int:
        self.counter += 1
        return self.counter

    def data(self) -> bytes:
        return bytes(self.random.randrange(256) for _ in range(self.random.randrange(1, 300)))

    def part(self, depth: int) -> tuple[bytes, list[Expected]]:
        kinds = [self.named, self.unnamed, self.inline_image, self.inline_text,
                 self.x_uuencode, self.body_uuencoded, self.tnef]
        if depth < 2:
            kinds += [self.forwarded, self.nested, self.signed, self.uuencoded_eml,
                      self.forwarded_x_uuencode]
        return self.random.choice(kinds)(depth)

    def named(self, _depth) -> tuple[bytes, list[Expected]]:
        name, data = f"doc{self.tag()}.pdf", b"%PDF-1.4 " + self.data()
        return (f'Content-Type: application/pdf; name="{name}"\nContent-Disposition: '
                f'attachment; filename="{name}"\nContent-Transfer-Encoding: base64\n\n'
                ).encode() + base64.encodebytes(data), [Expected(name, "application/pdf", data)]

    def unnamed(self, _depth) -> tuple[bytes, list[Expected]]:
        data = self.data()
        return (b"Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"
                + base64.encodebytes(data), [Expected(None, "application/octet-stream", data)])

    def inline_image(self, _depth) -> tuple[bytes, list[Expected]]:
        data = b"\x89PNG\r\n\x1a\n" + self.data()
        return (f"Content-Type: image/png\nContent-Disposition: inline\nContent-ID: "
                f"<img{self.tag()}@example.org>\nContent-Transfer-Encoding: base64\n\n"
                ).encode() + base64.encodebytes(data), [Expected(None, "image/png", data)]

    def inline_text(self, _depth) -> tuple[bytes, list[Expected]]:
        name, data = f"notes{self.tag()}.txt", f"notes {self.tag()}\n".encode()
        return (f'Content-Type: text/plain; charset=us-ascii\nContent-Disposition: inline; '
                f'filename="{name}"\n\n').encode() + data, [Expected(name, "text/plain", data)]

    def blocks(self, count: int) -> tuple[bytes, list[tuple[str, bytes]]]:
        files = [(f"f{self.tag()}.{self.random.choice(['txt', 'bin'])}", self.data())
                 for _ in range(count)]
        return b"".join(uuencoded(name, data) for name, data in files), files

    def x_uuencode(self, _depth) -> tuple[bytes, list[Expected]]:
        """An attachment sent x-uuencode of 2 or 3 files: the first under the part's name and
        type, the others by their begin lines."""
        encoded, files = self.blocks(self.random.choice([2, 3]))
        name = f"pack{self.tag()}.uue"
        first, *others = files
        return (f'Content-Type: application/octet-stream; name="{name}"\n'
                f"Content-Transfer-Encoding: x-uuencode\n\n").encode() + encoded, \
            [Expected(name, "application/octet-stream", first[1]),
             *(Expected(other, by_extension(other), data) for other, data in others)]

    def body_uuencoded(self, _depth) -> tuple[bytes, list[Expected]]:
        encoded, files = self.blocks(self.random.choice([1, 2]))
        return (b"Content-Type: text/plain; charset=us-ascii\n\nsee the files below\n"
                + encoded + b"regards\n",
                [Expected(name, by_extension(name), data) for name, data in files])

    def tnef(self, _depth) -> tuple[bytes, list[Expected]]:
        members = [(f"member{self.tag()}.txt", b"member text\n"),
                   (f"member{self.tag()}.pdf", b"%PDF-1.4 " + self.data())]
        data = corpus.tnef(members, body="tnef body")
        return (b'Content-Type: application/ms-tnef; name="winmail.dat"\nContent-Disposition: '
                b'attachment; filename="winmail.dat"\nContent-Transfer-Encoding: base64\n\n'
                + base64.encodebytes(data),
                [Expected("winmail.dat", "application/ms-tnef", data, files=[
                    Expected(name, by_extension(name), member) for name, member in members])])

    def forwarded(self, depth: int) -> tuple[bytes, list[Expected]]:
        """A message/rfc822 part, named or not, whose message has files of its own."""
        subject = f"forwarded {self.tag()}"
        inner, files = self.message(subject, depth + 1, self.random.randrange(1, 4))
        name = self.random.choice([None, f"fwd{self.tag()}.eml"])
        disposition = f'Content-Disposition: attachment; filename="{name}"\n' if name else ""
        return (f"Content-Type: message/rfc822\n{disposition}\n").encode() + inner, \
            [Expected(name, "message/rfc822", None, subject, files)]

    def signed(self, depth: int) -> tuple[bytes, list[Expected]]:
        """An S/MIME opaque-signed attachment (smime.p7m) whose signed entity has files: the
        page lists them inside it (review r7 F2)."""
        parts, files = [b"Content-Type: text/plain\n\nsigned body\n"], []
        for _ in range(self.random.randrange(1, 3)):
            part, found = self.part(depth + 1)
            parts.append(part)
            files += found
        data = corpus.smime_signed_data(multipart("mixed", f"S{self.tag()}", parts))
        return (b'Content-Type: application/pkcs7-mime; smime-type=signed-data; '
                b'name="smime.p7m"\nContent-Disposition: attachment; filename="smime.p7m"\n'
                b"Content-Transfer-Encoding: base64\n\n" + base64.encodebytes(data),
                [Expected("smime.p7m", "application/pkcs7-mime", data, files=files)])

    def uuencoded_eml(self, depth: int) -> tuple[bytes, list[Expected]]:
        """A message uuencoded in body text as NAME.eml: a file of the message (its bytes
        the download) holding that message's files, as the page lists them (r7 F2)."""
        subject = f"uuencoded {self.tag()}"
        inner, files = self.message(subject, depth + 1, self.random.randrange(1, 3))
        name = f"fwd{self.tag()}.eml"
        return (b"Content-Type: text/plain; charset=us-ascii\n\nforwarded below\n"
                + uuencoded(name, inner) + b"bye\n",
                [Expected(name, "message/rfc822", inner, subject, files)])

    def forwarded_x_uuencode(self, depth: int) -> tuple[bytes, list[Expected]]:
        """A message/rfc822 part sent x-uuencode: as the page reads it, a message (of no
        header, no subject) whose body text holds the uuencoded forward.eml, its files in
        that (r7 F2: none were listed)."""
        subject = f"x-uuencoded forward {self.tag()}"
        inner, files = self.message(subject, depth + 1, self.random.randrange(1, 3))
        return (b"Content-Type: message/rfc822\nContent-Transfer-Encoding: x-uuencode\n\n"
                + uuencoded("forward.eml", inner),
                [Expected(None, "message/rfc822", None, None, [
                    Expected("forward.eml", "message/rfc822", inner, subject, files)])])

    def nested(self, depth: int) -> tuple[bytes, list[Expected]]:
        """A multipart inside the message's: an alternative of text and HTML (no files), a
        related of HTML and a cid: image, or a mixed of more parts."""
        kind = self.random.choice(["alternative", "related", "mixed"])
        parts, files = [b"Content-Type: text/plain\n\nplain\n"], []
        if kind == "alternative":
            parts.append(b"Content-Type: text/html\n\n<p>html</p>\n")
        elif kind == "related":
            parts = [b"Content-Type: text/html\n\n<p><img src=cid:x></p>\n"]
            image, found = self.inline_image(depth)
            parts.append(image)
            files += found
        else:
            for _ in range(self.random.randrange(1, 3)):
                part, found = self.part(depth + 1)
                parts.append(part)
                files += found
        return multipart(kind, f"N{self.tag()}", parts), files

    def message(self, subject: str, depth: int, count: int) -> tuple[bytes, list[Expected]]:
        """A message of a text body and `count` parts of the kinds above."""
        parts, files = [b"Content-Type: text/plain\n\nhello\n"], []
        for _ in range(count):
            part, found = self.part(depth)
            parts.append(part)
            files += found
        head = (f"From: sender@example.org\nTo: alice@example.com\nSubject: {subject}\n"
                f"Date: Fri, 15 Mar 2024 09:00:00 +0000\nMessage-ID: <{self.tag()}@example.org>\n"
                f"MIME-Version: 1.0\n").encode()
        return head + multipart("mixed", f"B{self.tag()}", parts), files


def uuencoded(name: str, data: bytes) -> bytes:
    lines = b"".join(binascii.b2a_uu(data[at:at + 45]) for at in range(0, len(data), 45))
    return f"begin 644 {name}\n".encode() + lines + b"`\nend\n"


def by_extension(name: str) -> str:
    """The type the views give a file found by name (a uuencoded one, a TNEF member)."""
    return {"txt": "text/plain", "pdf": "application/pdf"}.get(
        name.rsplit(".", 1)[1], "application/octet-stream")


def multipart(kind: str, boundary: str, parts: list[bytes]) -> bytes:
    return (f'Content-Type: multipart/{kind}; boundary="{boundary}"\n\n').encode() + b"".join(
        f"--{boundary}\n".encode() + part + b"\n" for part in parts) \
        + f"--{boundary}--\n".encode()


def generated() -> dict[str, tuple[bytes, list[Expected]]]:
    generator, found = Generator(SEED), {}
    for at in range(MESSAGES):
        found[f"files-{at}"] = generator.message(f"files {at}", 0, 1 + at % 5)
    return found


CORPUS = generated()


@pytest.fixture(scope="module")
def extra_mails():
    return {name: (raw, None) for name, (raw, _) in CORPUS.items()}


def test_the_corpus_has_every_kind():
    files = [file for _, expected in CORPUS.values() for file in expected]
    kinds = {(file.content_type, file.name is None, bool(file.files)) for file in files}
    assert {("message/rfc822", True, True), ("message/rfc822", False, True),
            ("application/ms-tnef", False, True), ("application/octet-stream", True, False),
            ("image/png", True, False), ("text/plain", False, False)} <= kinds
    assert any(file.name and file.name.startswith("pack") for file in files)
    assert any(inner.content_type == "message/rfc822" for file in files for inner in file.files)
    assert {("application/pkcs7-mime", False, True)} <= kinds  # (r7 F2's kinds)
    assert any(file.name and file.name.endswith(".eml") and file.files for file in files)
    assert any(inner.subject and inner.subject.startswith("x-uuencoded")
               for file in files for inner in file.files)
    assert any(inner.name is None for file in files for inner in file.files)  # (r7 F5)


@pytest.mark.parametrize("name", CORPUS)
def test_the_files_inside_are_those_the_message_page_lists(name):
    """Under each file, show and the API list the files the message page's tree has below
    it, in its order, to its depth (review r7 F2: none inside a signed object or a
    uuencoded .eml were listed; F3: deeper than the page)."""
    raw, _ = CORPUS[name]
    listed = mail_view.view(raw).as_json()["attachments"]
    assert [inside(file) for file in listed] == page_files(raw)


def inside(file: dict) -> list:
    return [(inner["filename"], inner["content_type"], inside(inner)) for inner in file["files"]]


def page_files(raw: bytes) -> list[list]:
    """For each outermost file of the page's tree, (name, type, files) of those below it:
    an attached message's own message and an S/MIME object's signed entity are no files
    of the tree, theirs are."""
    def files(node, in_message: bool = False):
        found = []
        for child in node.children:
            found += [child] if child.attachment and not in_message \
                else files(child)
        return found

    def below(node):
        return [(inner.filename, inner.content_type, below(inner))
                for inner in files(node, node.shown_as == "message")]
    return [below(node) for node in files(message_tree.tree(parse_message(raw), None))]


@pytest.fixture(scope="module")
def shown(site):
    """{name: (show --json's object, show's text)} of each generated message, from one
    process of the archiver's CLI (the site's server holds its archive in this one)."""
    digests = {name: site.digests[name] for name in CORPUS}
    script = ("import contextlib, io, json, sys\nfrom services.cli.main import main\n"
              "data, digests = sys.argv[1], json.loads(sys.argv[2])\nout = {}\n"
              "for name, digest in digests.items():\n"
              "    both = []\n"
              "    for extra in (['--json'], []):\n"
              "        text = io.StringIO()\n"
              "        with contextlib.redirect_stdout(text):\n"
              "            assert main(['show', digest, '--data', data, *extra]) == 0\n"
              "        both.append(text.getvalue())\n"
              "    out[name] = (json.loads(both[0]), both[1])\n"
              "print(json.dumps(out))\n")
    done = subprocess.run([sys.executable, "-c", script, str(site.archive.data_dir),
                           json.dumps(digests)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def as_listed(files: list[Expected], numbered: bool = True) -> list[dict]:
    """What show and the API should list for `files` (sizes of attached messages aside:
    the bytes of the message as parsed, not known here); an unnamed file inside another
    has no name (an inner message's count would be another download's, review r7 F5)."""
    return [{**({"number": number} if numbered else {}),
             "filename": file.name or (f"attachment-{number}" if numbered else None),
             "named": file.name is not None,
             "content_type": file.content_type,
             "files": as_listed(file.files, numbered=False)}
            for number, file in enumerate(files, 1)]


def without_message_sizes(files: list[dict]) -> list[dict]:
    return [{**{key: value for key, value in file.items() if key != "size"},
             "files": without_message_sizes(file["files"])} for file in files]


def sizes(files: list[dict], expected: list[Expected]) -> list[tuple[int, int]]:
    """(size listed, size expected) of every file but attached messages, inner ones too."""
    pairs = []
    for file, known in zip(files, expected):
        if known.data is not None:
            pairs.append((file["size"], len(known.data)))
        pairs += sizes(file["files"], known.files)
    return pairs


@pytest.mark.parametrize("name", CORPUS)
def test_show_the_api_and_the_downloads_number_the_files_alike(site, shown, name):
    raw, expected = CORPUS[name]
    audrey, digest = logged_in(site, "audrey"), site.digests[name]
    as_json, text = shown[name]
    api = audrey.get(f"/api/messages/{digest}").json()
    assert as_json["attachments"] == api["attachments"]
    assert without_message_sizes(as_json["attachments"]) == as_listed(expected)
    assert all(listed == known for listed, known in sizes(as_json["attachments"], expected))
    # the stored names are kept under their own key, for older clients, in both
    assert as_json["attachment_names"] == api["attachment_names"]
    for number, file in enumerate(expected, 1):
        served = audrey.get(f"/api/messages/{digest}/attachments/{number}").body
        assert audrey.get(f"/message/{digest}/attachment/{number}").body == served
        if file.data is not None:
            assert served == file.data, (number, file.name)
        else:  # an attached message: its own bytes, as listed
            assert email.message_from_bytes(served)["Subject"] == file.subject
            assert len(served) == as_json["attachments"][number - 1]["size"]
    assert audrey.get(f"/api/messages/{digest}/attachments/{len(expected) + 1}").status == 404
    assert text_numbers(text) == [
        (number, f'"{file.name}"' if file.name else f"(no name, saved as attachment-{number})")
        for number, file in enumerate(expected, 1)]


def text_numbers(text: str) -> list[tuple[int, str]]:
    """(number, name) of each numbered file `show` lists (those inside others have "-")."""
    return [(int(number), name) for number, name in
            re.findall(r"^ *(\d+)  (.+)  \S+/\S+, [\d,]+ bytes$", text, re.MULTILINE)]


@pytest.mark.parametrize("name", CORPUS)
def test_the_page_shows_each_file_under_its_number_and_shows_name(site, name):
    """The message page's Parts list gives each numbered file its number, the words `show`
    names it by ("(no name, saved as attachment-N)" for an unnamed one, an attached
    message by its file name, not its subject) and a link to download N; the files inside
    them keep their part links (review r9 F6)."""
    _, expected = CORPUS[name]
    digest = site.digests[name]
    page = logged_in(site, "audrey").get(f"/message/{digest}").body.decode()
    parts = page.split("<h2>Parts</h2>", 1)[1].split("</aside>", 1)[0]
    numbered = re.findall(r'<span class="file-number"[^>]*>(\d+)</span>\s*<a class="'
                          r'(?:download|open-message)" href="([^"]+)">(.*?)</a>', parts, re.S)
    assert [(int(number), html.unescape(re.sub("<[^>]+>", "", label)))
            for number, _, label in numbered] == [
        (number, file.name or f"(no name, saved as attachment-{number})")
        for number, file in enumerate(expected, 1)]
    for (number, href, _), file in zip(numbered, expected):
        if file.content_type == "message/rfc822":  # opens as a page, downloads as .eml
            assert href.startswith(f"/message/{digest}?part=")
            assert f'href="/message/{digest}/attachment/{number}" title="download as .eml"' \
                in parts
        else:
            assert href == f"/message/{digest}/attachment/{number}"
    links = re.findall(r'href="(/message/[^"?]+)"', parts)
    inside = sum(len(list(walk(file.files))) for file in expected)
    assert sum("/attachment/" in link for link in links) == len(expected)
    assert sum("/part/" in link for link in links) >= inside - sum(
        file.content_type == "message/rfc822" for file in expected for file in walk(file.files))


def walk(files: list[Expected]):
    for file in files:
        yield file
        yield from walk(file.files)
