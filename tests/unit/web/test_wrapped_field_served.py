"""Review 161 F1: the field services.archive.mime_parts writes on an x-uuencode body part it
gives the parser in base64 (past LINE_CHECKS) holds a token of this process; served in any
bytes or text, it told a web user the name to write in mail to the same appliance (his own
base64 part or HTML read as uuencode: review 158 F1). The parsed tree never holds it: no
path of the web app that serialises or shows a part (message_tree.decoded, mail_view's
attachments and view, the page's headers and body) gives it, for every shape in which
mime_parts writes it, and such a part reads as the x-uuencode part it came as."""
import binascii
import re

import pytest

from services.archive import mime_parts
from services.archive.extract import extract
from services.archive.mime import parse_message
from services.web import mail_view, message_page, message_tree

HEAD = b"From: a@x\nTo: b@y\nSubject: s\nMIME-Version: 1.0\n"
FILE = b"quokka ledger line\n" * 40
BLOCK = b"begin 644 notes.txt\n" + b"".join(
    binascii.b2a_uu(FILE[at:at + 45]) for at in range(0, len(FILE), 45)) + b"`\nend\n"
FILLER = b"--B\nContent-Type: text/plain\n\n" + b"filler\n" * 180
# The x-uuencode names and spellings a sender writes (services.archive.uuencode.ENCODINGS).
ENCODINGS = [b"x-uuencode", b"UUENCODE", b"x-uue", b"uue (old client)"]


def _leaf(encoding: bytes, kind: bytes = b"application/octet-stream") -> bytes:
    return (b"Content-Type: " + kind + b"\nContent-Disposition: attachment\n"
            b"Content-Transfer-Encoding: " + encoding + b"\n\n" + BLOCK)


def _shapes(encoding: bytes) -> dict[str, bytes]:
    """Messages whose x-uuencode part comes past LINE_CHECKS (200 here, after FILLER): as
    an attachment, as a text part with text around its block, inside an attached message
    (a part of its multipart, or its whole body: then its own header gets the field),
    inside nested multiparts."""
    text_part = (b"Content-Type: text/plain\nContent-Transfer-Encoding: " + encoding +
                 b"\n\nbefore wombat\n" + BLOCK + b"after okapi\n")
    return {
        "attachment": _mixed(_leaf(encoding)),
        "text part": _mixed(text_part),
        "in attached message": _mixed(
            b"Content-Type: message/rfc822\n\n" + HEAD +
            b"Content-Type: multipart/mixed; boundary=I\n\n--I\nContent-Type: text/plain\n\n"
            b"inner text\n--I\n" + _leaf(encoding) + b"--I--\n"),
        "attached message's body": _mixed(
            b"Content-Type: message/rfc822\n\n" + HEAD + _leaf(encoding)),
        "nested": _mixed(b"Content-Type: multipart/mixed; boundary=N\n\n--N\n" +
                         _leaf(encoding, b"text/plain") + b"--N--\n"),
    }


def _mixed(part: bytes) -> bytes:
    return (HEAD + b"Content-Type: multipart/mixed; boundary=B\n\n" + FILLER +
            b"--B\n" + part + b"--B--\n")


CASES = [(shape, encoding) for encoding in ENCODINGS for shape in _shapes(encoding)]


def _served(raw: bytes) -> list:
    """What the web app gives of `raw`: each part's decoded bytes and node, each attached
    message's page headers (all of them) and body, the mail view and each download."""
    message = parse_message(raw)
    root = message_tree.tree(message, None)
    served = [repr(root)]
    for node in root.walk():
        part = message_tree.part_at(message, node.path)
        served.append(message_tree.decoded(part))
        if not node.path or node.shown_as == "message":
            shown = message_page._shown_message(message, node.path)
            served += [repr(message_page._headers(shown, True)),
                       repr(message_tree.body(message, node.path))]
    shown = mail_view.view(raw)
    served.append(repr(shown))
    served += [mail_view.attachment(raw, each.number)[1] for each in shown.attachments]
    return served


def _every_part_s_bytes(raw: bytes) -> list:
    """Each part of the parsed tree serialised (as_bytes, as_string) and its field names."""
    return [out for part in parse_message(raw).walk()
            for out in (part.as_bytes(), part.as_string(), repr(part.keys()))]


def _mark(raw: bytes) -> bytes:
    """The name of the field mime_parts wrote for the parser (the test is one only if it
    wrote one)."""
    found = re.search(rb"(?im)^(x-archive-wrapped-[0-9a-f]{16,}):", mime_parts.bounded(raw)[0])
    assert found, "no field written: the case does not cross LINE_CHECKS"
    return found.group(1).lower()


@pytest.mark.parametrize("shape,encoding", CASES)
def test_no_served_bytes_hold_the_field(shape, encoding, monkeypatch):
    monkeypatch.setattr(mime_parts, "LINE_CHECKS", 200)
    raw = _shapes(encoding)[shape]
    mark = _mark(raw)
    token = mark.rsplit(b"-", 1)[1]
    for out in _served(raw) + _every_part_s_bytes(raw):
        out = out if isinstance(out, bytes) else out.encode("utf-8", "surrogateescape")
        assert b"x-archive-wrapped" not in out.lower() and token not in out.lower()


@pytest.mark.parametrize("shape,encoding", CASES)
def test_such_a_part_reads_and_downloads_as_it_does_within_line_checks(shape, encoding,
                                                                     monkeypatch):
    """The file by its name and its text; the downloads decode to the same file, and an
    attached message downloaded reads the same."""
    monkeypatch.setattr(mime_parts, "LINE_CHECKS", 200)
    raw = _shapes(encoding)[shape]
    _mark(raw)
    past = extract(raw, 1 << 20), _downloads(raw)
    monkeypatch.setattr(mime_parts, "LINE_CHECKS", 10 ** 12)
    within = extract(raw, 1 << 20), _downloads(raw)
    assert ("notes.txt", FILE.decode()) in _files(past[0])
    assert _files(past[0]) == _files(within[0]) and past[0].body == within[0].body
    assert past[1] == within[1]


def _files(extracted) -> list:
    return [(entry.filename, entry.text) for entry in extracted.attachments]


def _downloads(raw: bytes) -> list:
    """Each part's download on the message page (message_tree.decoded: a leaf's bytes,
    an attached message's reading) and each of mail_view's."""
    message = parse_message(raw)
    found = [_read_if_message(message_tree.decoded(message_tree.part_at(message, node.path)),
                              node.shown_as == "message")
             for node in message_tree.tree(message, None).walk()]
    for each in mail_view.view(raw).attachments:
        data = mail_view.attachment(raw, each.number)[1]
        found.append(_read_if_message(data, each.content_type == "message/rfc822"))
    return found


def _read_if_message(data: bytes, is_message: bool):
    """An attached message's bytes as what reading them finds (their fields' order and
    line ends may differ); a leaf's as they are."""
    if not is_message:
        return data
    read = extract(data, 1 << 20)
    return read.body, _files(read)
