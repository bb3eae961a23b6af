"""A file named .eml found in a message's text (uuencoded) or in a container (a zip's
member) is a forwarded message in the views where the indexer reads one
(extract.reads_as_message, by its content: review item 2), and the file it is where it
does not: a PDF, random bytes, prose named .eml is not opened as a message, nor its
"files" listed. A .eml that is one is named by its file name on the page as in `show` and
the API (the subject beside it: review item 4). Generated: contents of each kind under
each .eml spelling, uuencoded in body text and in zips, at the top and in a forward."""
from __future__ import annotations

import base64
import io
import random
import zipfile

import pytest

from services.archive.extract import extract
from services.web import forwarded, mail_view, message_tree
from tests.unit.web.test_container_problems import node_html
from tests.unit.web.test_file_listing_costs import message
from tests.unit.web.test_uuencoded_views import block

CAP = 1 << 20
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
NAMES = ["fwd.eml", "FWD.EML", "Re budget.Eml", "x.y.eml"]


def content(rng: random.Random, tag: str) -> bytes:
    kind = rng.choice(["message", "message", "pdf", "random", "prose", "png"])
    if kind == "message":
        return (f"From: a@example.org\nSubject: subject {tag}\nMIME-Version: 1.0\n"
                f"Content-Type: text/plain\n\nbody of {tag}\n").encode()
    if kind == "pdf":
        return PDF
    if kind == "png":
        return b"\x89PNG\r\n\x1a\n" + rng.randbytes(60)
    if kind == "prose":
        return f"just some words about {tag}, no header at all\n".encode() * 3
    return rng.randbytes(rng.randrange(20, 300))


def generated() -> list[tuple[str, bytes, dict[str, bytes]]]:
    """(label, message, each .eml file's content by its name) of 40 messages."""
    rng, found = random.Random(20261208), []
    for case in range(40):
        files, parts = {}, []
        for at in range(rng.randrange(1, 4)):
            name = f"c{case}-{at}-{rng.choice(NAMES)}"
            files[name] = content(rng, f"c{case}-{at}")
            if rng.random() < 0.5:  # uuencoded in body text
                parts.append(b"Content-Type: text/plain\n\nsee below\n"
                             + block(name.encode(), files[name]))
            else:  # a zip's member
                out = io.BytesIO()
                with zipfile.ZipFile(out, "w") as archive:
                    archive.writestr(name, files[name])
                parts.append(f'Content-Type: application/zip; name="z{case}-{at}.zip"\n'
                             "Content-Transfer-Encoding: base64\n\n".encode()
                             + base64.encodebytes(out.getvalue()))
        if case % 4 == 3:
            parts = [b"Content-Type: message/rfc822\n\n" + message(f"in{case}", parts)]
        found.append((f"c{case}", message(f"c{case}", parts), files))
    return found


MESSAGES = generated()


def every_file(files: list[dict]):
    for file in files:
        yield file
        yield from every_file(file["files"])


@pytest.mark.parametrize("label, raw, files", MESSAGES, ids=[case[0] for case in MESSAGES])
def test_a_found_eml_is_a_message_where_the_indexer_reads_one(label, raw, files):
    indexed = {entry.filename: entry.mime_type == "message/rfc822"
               for entry in extract(raw, CAP).attachments if entry.filename in files}
    assert set(indexed) == set(files)
    message = forwarded.parse(raw)
    tree = message_tree.tree(message, None)
    nodes = {node.filename: node for node in tree.walk() if node.filename in files}
    listed = {file["filename"]: file for file in every_file(
        mail_view.view(raw).as_json()["attachments"]) if file["filename"] in files}
    assert set(nodes) == set(listed) == set(files)
    for name, a_message in indexed.items():
        node = nodes[name]
        assert (node.shown_as == "message") == a_message, name
        assert (message_tree.held_message(message, node.path) is not None) == a_message
        if a_message:
            assert [child.content_type for child in node.children] == ["text/plain"]
            assert node.label_text == name  # (its name, as show and the API list it)
            html = node_html(node)
            assert f"<bdi>{name}</bdi>" in html and f"; subject <bdi>{node.subject}" in html
        else:
            assert node.children == [] and listed[name]["files"] == []
            assert message_tree.decoded(message_tree.part_at(message, node.path)) \
                == files[name]


def test_the_corpus_holds_both():
    kinds = {entry.mime_type == "message/rfc822" for _, raw, files in MESSAGES
             for entry in extract(raw, CAP).attachments if entry.filename in files}
    assert kinds == {True, False}
