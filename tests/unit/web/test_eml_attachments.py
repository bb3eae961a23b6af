"""A forwarded message attached as a file (a .eml sent application/octet-stream or another
generic type, or unnamed but a message by its content) is a message in the views exactly
where the indexer reads it as one (extract.reads_as_message, its one rule): `show`'s and
the API's list give the files it carries inside it, the page shows it as a message (its
subject, its part 1 the message, its own page, its body) and serves the file as it came.
Where the indexer reads it as another file (text/plain named .eml, a PDF named .eml sent
application/x-unknown, bytes that are no message), so do the views. Generated over the
kind: the attached file's type, name and transfer encoding, its content, and forwards of
such files inside it, nested; the expectation is the indexer's reading (extract), never a
list written here."""
from __future__ import annotations

import base64
import quopri
import random

import pytest

from services.archive.extract import extract
from services.web import forwarded, mail_view, message_page, message_tree
from tests.unit.web.test_file_listing_costs import HEAD, multipart
from tests.unit.web.test_files_inside import listed_names

CAP = 1 << 20
# (Content-Type, the name it gives the file): .eml and generic types, and kin that are not
TYPES = ["application/octet-stream", "application/x-unknown", "binary/octet-stream",
         "application/download", "text/plain", "message/rfc822", "application/pdf",
         "application/x-eml", "application/x-extension-eml"]
NAMES = ["fwd.eml", "FWD.EML", "Re: budget.Eml", "notes.txt", None]
ENCODINGS = ["base64", "quoted-printable", "7bit"]
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def inner_message(rng: random.Random, tag: str, depth: int) -> bytes:
    """A message of a body word, one to three named files and, above depth 2, maybe a file
    carrying a message of its own."""
    parts = [b"Content-Type: text/plain\n\nword" + tag.encode() + b"\n"]
    parts += [(f'Content-Type: application/octet-stream\nContent-Disposition: attachment; '
               f'filename="{tag}-{at}.bin"\nContent-Transfer-Encoding: base64\n\n').encode()
              + base64.encodebytes(rng.randbytes(40)) for at in range(rng.randrange(1, 4))]
    if depth < 2 and rng.random() < 0.5:
        parts.append(carrier(rng, f"{tag}n", depth + 1)[0])
    return HEAD.format(s=f"subject {tag}").encode() + multipart(parts, f"B-{tag}")


def carrier(rng: random.Random, tag: str, depth: int) -> tuple[bytes, bytes]:
    """(a part carrying a file, the file): mostly a message, else a PDF or random bytes."""
    content = rng.choices([inner_message(rng, tag, depth), PDF, rng.randbytes(300)],
                          [8, 1, 1])[0]
    kind, name = rng.choice(TYPES), rng.choice(NAMES)
    encoding = "7bit" if kind == "message/rfc822" else rng.choice(ENCODINGS)
    if encoding != "base64" and not content.startswith(b"From:"):
        encoding = "base64"  # (binary content: as a mailer sends it)
    fields = f"Content-Type: {kind}" + (f'; name="{name}"' if name else "") + "\n"
    if name and rng.random() < 0.5:
        fields += f'Content-Disposition: attachment; filename="{name}"\n'
    body = {"base64": base64.encodebytes, "quoted-printable": quopri.encodestring,
            "7bit": lambda data: data}[encoding](content)
    return (fields + f"Content-Transfer-Encoding: {encoding}\n\n").encode() + body, content


def generated() -> list[tuple[str, bytes, list[bytes]]]:
    """(label, message, the files it carries in order) of 80 messages."""
    rng, found = random.Random(20261205), []
    for case in range(80):
        carried = [carrier(rng, f"m{case}c{at}", 0) for at in range(rng.randrange(1, 4))]
        raw = HEAD.format(s=f"m{case}").encode() + multipart(
            [b"Content-Type: text/plain\n\nouter\n", *(part for part, _ in carried)],
            f"O-{case}")
        found.append((f"m{case}", raw, [content for _, content in carried]))
    return found


MESSAGES = generated()


def extracted_files(raw: bytes) -> list[tuple[str, list[str]]]:
    """(the type the indexer reads each of the message's files as, the names of the files
    it reads inside it), in order."""
    found: list[tuple[str, list[str]]] = []
    for entry in extract(raw, CAP).attachments:
        if entry.container is None:
            found.append((entry.mime_type, []))
        elif entry.filename:
            found[-1][1].append(entry.filename)
    return found


@pytest.mark.parametrize("label, raw, carried", MESSAGES, ids=[case[0] for case in MESSAGES])
def test_a_file_is_a_message_in_the_views_where_the_indexer_reads_one(label, raw, carried):
    indexed = extracted_files(raw)
    listed = mail_view.view(raw).as_json()["attachments"]
    assert [listed_names(file["files"]) for file in listed] == [inside for _, inside in indexed]
    message = forwarded.parse(raw)
    tree = message_tree.tree(message, None)
    for path, file in mail_view.numbered_parts(message, tree).items():
        node = next(node for node in tree.walk() if node.path == path)
        a_message = indexed[file.number - 1][0] == "message/rfc822"
        assert (node.shown_as == "message") == a_message == \
            (message_tree.held_message(message, path) is not None), (label, path)
        if not a_message:
            continue
        content = carried[int(path.split(".")[0]) - 2]  # (part 1: the outer text; a
        # carrier the indexer reads as text, unnamed, is no file and takes no number)
        if file.content_type != "message/rfc822":  # (a file: served as it came)
            assert mail_view.attachment(raw, file.number)[1] == content
        if not content.startswith(b"From:"):  # (declared a message, it is none: no subject)
            continue
        inner = message_page._shown_message(message, path)
        tag = inner["Subject"].removeprefix("subject ")
        assert content.startswith(HEAD.format(s=f"subject {tag}").encode())
        assert node.subject == f"subject {tag}"
        assert f"word{tag}" in (message_tree.body(message, path).text or "")


def test_the_stored_message_whose_whole_body_is_a_eml_file():
    """Its part 1 is the file, which holds the message (the root is no message holder: its
    body is its part 1, mime.whole_body_is_attachment)."""
    inner = inner_message(random.Random(7), "whole", 0)
    raw = HEAD.format(s="whole").encode() + (
        b'Content-Type: application/octet-stream; name="fwd.eml"\n'
        b"Content-Transfer-Encoding: base64\n\n" + base64.encodebytes(inner))
    indexed = extracted_files(raw)
    assert [kind for kind, _ in indexed] == ["message/rfc822"]
    listed = mail_view.view(raw).as_json()["attachments"]
    assert [listed_names(file["files"]) for file in listed] == [indexed[0][1]]
    tree = message_tree.tree(forwarded.parse(raw), None)
    assert tree.shown_as is None and tree.children[0].shown_as == "message"
    assert tree.children[0].subject == "subject whole"
    assert mail_view.attachment(raw, 1)[1] == inner
