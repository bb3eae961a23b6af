"""A message as a tree of parts: stable paths, attached messages as parts with the
message inside, what the indexer read, how each part can be shown, and the body."""
import base64
from email.message import EmailMessage

import pytest

from services.archive.mime import parse_message
from services.archive.store import NotFound
from services.archive import extract
from services.web.mail_view import view
from services.web.message_tree import body, decoded, part_at, tree
from tests.unit.archive.content_type_shapes import typed_values
from tests.integration.web.review_mails import forwarded_mail, html_mail, pdf, png


def test_a_forwarded_message_is_a_part_whose_child_is_the_message_inside():
    message = parse_message(forwarded_mail("alice@example.com"))
    root = tree(message, ["contract.pdf: PdfReadError: damaged"])
    found = {part.path: part for part in root.walk()}
    assert [path for path in found if path] == ["1", "2", "2.1", "2.1.1", "2.1.2", "2.1.3",
                                                 "2.1.4"]
    forwarded = found["2"]
    assert forwarded.shown_as == "message" and forwarded.subject == "Signed contract"
    assert forwarded.label == "Signed contract (message)"
    assert (found["2.1.2"].filename, found["2.1.2"].shown_as) == ("contract.pdf", "pdf")
    assert found["2.1.2"].text == "text not read: PdfReadError: damaged"
    assert (found["2.1.3"].shown_as, found["2.1.3"].text) == (
        "image", "no text: found by its name and type")
    assert (found["2.1.4"].shown_as, found["2.1.4"].text) == ("text", "text read")
    assert found["1"].label == "body text" and not found["1"].attachment
    assert decoded(part_at(message, "2.1.2")).startswith(b"%PDF-1.4")
    assert [p.path for p in root.walk(into_messages=False)] == ["", "1", "2"]


def test_paths_the_message_lacks_are_not_found():
    message = parse_message(forwarded_mail("a@example.com"))
    for path in ("3", "2.2", "2.1.9", "x", "1.1", "0", "-1", "2..1"):
        with pytest.raises(NotFound):
            part_at(message, path)


def test_an_encoded_attached_message_opens_too():
    inner = b"From: x@example.com\r\nSubject: encoded inside\r\n\r\ninner body\r\n"
    raw = (b"From: a@example.com\r\nSubject: outer\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n"
           b"\r\nouter body\r\n--b\r\nContent-Type: message/rfc822\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(inner) +
           b"--b--\r\n")
    message = parse_message(raw)
    node = tree(message, None, "2")
    assert node.shown_as == "message" and node.subject == "encoded inside"
    assert body(message, "2").text.strip() == "inner body"


def test_the_body_is_the_first_html_and_text_and_the_images_they_name():
    message = parse_message(html_mail("n", "a@example.com", '<img src="cid:logo@x">',
                                      {"logo@x": ("logo.png", png())}))
    shown = body(message)
    assert shown.html == '<img src="cid:logo@x">\n'
    assert shown.text.startswith("The plain-text alternative")
    assert list(shown.images) == ["logo@x"] and shown.images["logo@x"][0] == "image/png"


def test_an_image_is_shown_only_when_its_bytes_are_an_image():
    message = EmailMessage()
    message["From"] = "a@example.com"
    message.set_content("see")
    message.add_attachment(b"<html><script>evil()</script>", maintype="image", subtype="png",
                           filename="fake.png")
    message.add_attachment(png(), maintype="image", subtype="png", filename="real.png")
    message.add_attachment(pdf(["p"]), maintype="application", subtype="octet-stream",
                           filename="scan.pdf")
    found = {p.filename: p for p in tree(parse_message(message.as_bytes()), None).walk()}
    assert found["fake.png"].shown_as is None and found["real.png"].shown_as == "image"
    assert found["scan.pdf"].shown_as == "pdf"  # the extension says what octet-stream is


@pytest.mark.parametrize("content_type, expected", [
    (b"application/pdf (" + b"x\r\n " * 4000 + b"y)", "application/pdf"),
    (b"image/png (x/y)", "image/png"),
])
def test_a_whole_body_part_has_the_type_the_message_is_read_with(content_type, expected):
    """Review 175 F2: a message whose body is one non-text part shows it as part 1, of the
    type the archive reads (services.archive.media_types): not the stdlib's reading of the
    field (16,019 characters holding CR LF, or text/plain for a comment holding a '/')."""
    raw = (b"From: a@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: "
           + content_type + b"\r\nContent-Disposition: attachment; filename=a.pdf\r\n\r\n"
           b"%PDF-1.4\r\n")
    message = parse_message(raw)
    found = {node.path: node.content_type for node in tree(message, []).walk()}
    assert found == {"": expected, "1": expected}
    assert part_at(message, "1").get_content_type() == expected


BINARY = bytes(range(256)) * 4  # no type libmagic names: application/octet-stream


def _typed_part_message(value: str, main: str) -> bytes:
    """A multipart/mixed of a text part "hello bodyword" and a part typed `value` holding
    what a part of `main` holds: text, a message, a multipart (its boundary "inner") of a
    text part and binary bytes, or binary bytes."""
    if main == "text":
        content = b"\r\ntextword\r\n"
    elif main == "message":
        content = b"\r\nFrom: c@example.net\r\nSubject: inner\r\n\r\ninnerword\r\n"
    elif main == "multipart":
        content = (b"\r\n--inner\r\nContent-Type: text/plain\r\n\r\nnestedword\r\n--inner\r\n"
                   b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: "
                   b"base64\r\n\r\n" + base64.encodebytes(BINARY) + b"--inner--\r\n")
    else:
        content = (b"Content-Transfer-Encoding: base64\r\n\r\n"
                   + base64.encodebytes(BINARY))
    return (b"From: a@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: "
            b"multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: text/plain\r\n\r\n"
            b"hello bodyword\r\n--o\r\nContent-Type: " + value.encode("latin-1") + b"\r\n"
            + content + b"\r\n--o--\r\n")


# Not the invalid ones; nor the multiparts whose boundary follows no ';' outside quotes:
# they have none (as "multipart/mixed boundary=x" has none), their parts text.
TYPED_VALUES = [(kind, main, value, expected) for kind, main, value, expected in typed_values(
    lambda main: "boundary=inner" if main == "multipart" else "x-param=1")
    if main != "x" and not (main == "multipart" and kind.startswith(
        ("unclosed-quote", "quoted-then-blank-parameters")))]


@pytest.mark.parametrize("kind, main, value, expected", TYPED_VALUES,
                         ids=[kind for kind, *_ in TYPED_VALUES])
def test_a_part_of_an_unusable_subtype_is_read_alike_by_the_tree_the_view_and_the_index(
        kind, main, value, expected):
    """Review 181 F2: a part whose main type is valid and whose subtype is missing, empty
    or no token ("application/", "image/[png]", "multipart/; boundary=inner"), or whose
    value is quoted whole, is of the type media_types reads in the tree, in the web view's
    attachment list and in what the indexer extracts: binary bytes are an attachment in
    each, never body text; a multipart's parts are parts; a text part is text."""
    raw = _typed_part_message(value, main)
    found = {node.path: node for node in tree(parse_message(raw), []).walk()}
    viewed, extracted = view(raw), extract.extract(raw, 1 << 20)
    assert found["2"].content_type == expected
    assert [node.content_type for node in found.values() if node.attachment] \
        == [attachment.content_type for attachment in viewed.attachments]
    assert viewed.body.split() == ["hello", "bodyword"]
    assert set(extracted.body.split()) <= {"hello", "bodyword", "textword", "nestedword"}
    read = expected.split("/")[0]
    if read == "text":
        assert not found["2"].attachment and not viewed.attachments
    elif read == "multipart":
        assert list(found) == ["", "1", "2", "2.1", "2.2"] and not found["2"].attachment
        assert found["2.2"].attachment and not found["2.1"].attachment
    else:
        assert found["2"].attachment
    if main not in ("text", "message"):  # the binary bytes: an attachment
        assert viewed.attachments[-1].size == len(BINARY)
        assert len(extracted.attachments) == 1
    words = " ".join([extracted.body, *(a.text for a in extracted.attachments)]).split()
    assert {"text": "textword", "message": "innerword", "multipart": "nestedword"}.get(
        read, "hello") in words
