"""A report's machine-readable part (RFC 6522: a bounce's delivery status, RFC 3464; a read
receipt's disposition, RFC 8098; an abuse report's feedback, RFC 5965; RFC 6533's global
kin) is blocks of fields, no message: every view lists it as
the file it is -- the page never as an attached message "(no subject)" with parts, `show`
and the API under the same number -- and its download (numbered and by part) is its
stored bytes, transfer-decoded, as any other part's: never its first block re-serialised.
Generated: blocks of 1 to 6 recipients, LF or CRLF, 7bit, base64 or quoted-printable,
in a report at the top or in a forwarded bounce, with a body line in a block (served as
stored too: tests/unit/archive/test_report_parts_exact.py has more such lines). Its
fields are the body text the indexer reads, every line."""
from __future__ import annotations

import base64
import quopri
import random

import pytest

from services.archive import extract as extract_module
from services.archive.extract import extract
from services.web import forwarded, mail_view, message_page, message_tree
from services.archive.store import NotFound

CAP = 1 << 20
TYPES = extract_module.REPORT_TYPES  # a bounce's, a read receipt's, an abuse report's


def status(rng: random.Random, tag: str) -> bytes:
    blocks = [f"Reporting-MTA: dns; mx{tag}.example.org\nArrival-Date: Mon, 1 Jan 2024 "
              "00:00:00 +0000\n"]
    for at in range(rng.randrange(1, 7)):
        blocks.append(f"Final-Recipient: rfc822; r{at}-{tag}@example.org\nAction: failed\n"
                      f"Status: 5.1.{at}\nDiagnostic-Code: smtp; 550 no such user {tag}\n")
    if rng.random() < 0.2:  # a line that is no field (the feedparser reads it)
        blocks[-1] += "a line that is no field\n"
    return "\n".join(blocks).encode()


def report(rng: random.Random, tag: str, kind: str) -> tuple[bytes, bytes]:
    """(a report, its part of type `kind`'s content)."""
    data = status(rng, tag)
    encoding = rng.choice(["7bit", "base64", "quoted-printable"])
    body = {"7bit": lambda d: d, "base64": base64.encodebytes,
            "quoted-printable": quopri.encodestring}[encoding](data)
    raw = (f"From: MAILER-DAEMON@example.org\nSubject: bounce {tag}\nMIME-Version: 1.0\n"
           f"Content-Type: multipart/report; report-type=delivery-status; boundary=R{tag}\n\n"
           f"--R{tag}\nContent-Type: text/plain\n\nnot delivered\n--R{tag}\n"
           f"Content-Type: {kind}\nContent-Transfer-Encoding: {encoding}\n\n").encode() \
        + body + (f"\n--R{tag}\nContent-Type: message/rfc822\n\nFrom: a@example.org\n"
                  f"Subject: original {tag}\n\nhello\n--R{tag}--\n").encode()
    if rng.random() < 0.3:
        raw = raw.replace(b"\n", b"\r\n")
        data = data.replace(b"\n", b"\r\n") if encoding != "base64" else data
    return raw, data


def generated() -> list[tuple[str, bytes, bytes, bool]]:
    rng, found = random.Random(20261209), []
    for case in range(60):  # every type, at the top and forwarded
        raw, data = report(rng, str(case), TYPES[case % len(TYPES)])
        forwarded_bounce = case % 4 == 3
        if forwarded_bounce:
            raw = (b"From: b@example.org\nSubject: fwd\nMIME-Version: 1.0\nContent-Type: "
                   b"multipart/mixed; boundary=F\n\n--F\nContent-Type: text/plain\n\nsee\n"
                   b"--F\nContent-Type: message/rfc822\n\n" + raw + b"\n--F--\n")
        found.append((f"b{case}", raw, data, forwarded_bounce))
    return found


MESSAGES = generated()


@pytest.mark.parametrize("label, raw, data, inside", MESSAGES, ids=[c[0] for c in MESSAGES])
def test_a_delivery_status_is_the_file_it_is_in_every_view(label, raw, data, inside):
    message = forwarded.parse(raw)
    tree = message_tree.tree(message, None)
    [node] = [node for node in tree.walk() if node.content_type in TYPES]
    assert node.shown_as != "message" and node.children == [] and node.attachment
    assert "(message)" not in node.label_text and node.subject is None
    with pytest.raises(NotFound):
        message_page._shown_message(message, node.path)
    part = message_tree.part_at(message, node.path)
    served = message_tree.decoded(part)
    assert served == data
    assert node.size == len(served)
    if inside:
        return
    [status] = [file for file in mail_view.view(raw).as_json()["attachments"]
                if file["content_type"] in TYPES]
    assert status["files"] == [] and status["size"] == len(served)
    attachment, downloaded = mail_view.attachment(raw, status["number"])
    assert downloaded == served and attachment.size == len(served)
    extracted = extract(raw, CAP)
    indexed = [entry for entry in extracted.attachments if entry.container is None]
    assert indexed[status["number"] - 1].mime_type == status["content_type"]
    for line in data.decode().splitlines():  # its fields are the body's text, searchable
        if line.strip() and "no field" not in line:
            assert line.strip() in extracted.body
