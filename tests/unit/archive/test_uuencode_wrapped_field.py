"""Review 158 F1: the field services.archive.mime_parts adds to an x-uuencode part it gives
the parser in base64 (mime_parts.WRAPPED_FIELD) is one no sender can write. A
sender's own field of the name it had (any spelling, case, folding or parameters) on his
base64 attachment or his HTML part changes nothing: all the text is read, and the part
decodes to the bytes the recipient got, as at 9457ea1, under LINE_CHECKS or past it."""
import base64
import binascii

import pytest

from services.archive import mime, mime_parts, transfer_encoding
from services.archive.extract import body_text, extract

INNER = (b"Quarterly numbers: HIDDENWORD wire 40000 to account 4471\n"
         b"begin 644 readme.txt\n" + binascii.b2a_uu(b"harmless\n") + b"`\nend\n")
FIELDS = [b"X-Archive-Wrapped-Encoding: x-uuencode\n",
          b"x-archive-wrapped-encoding: UUENCODE\n",
          b"X-ARCHIVE-WRAPPED-ENCODING:\n x-uue\n",
          b"X-Archive-Wrapped-Encoding: x-uuencode; name=readme.txt\n",
          b"X-Archive-Wrapped-Encoding: uue (wrapped)\n",
          # another process's name (review 161 F1: no bytes of this one's hold its own)
          b"X-Archive-Wrapped-0123456789abcdef0123456789abcdef: x-uuencode\n"]
PART_HEADS = {
    "attachment": b"Content-Type: text/plain; name=report.txt\n"
                  b"Content-Disposition: attachment; filename=report.txt\n",
    "html": b"Content-Type: text/html\n",
}


def _message(part_head: bytes, field: bytes, filler: int = 0) -> bytes:
    """multipart/mixed: a text part (`filler` more lines), then a base64 part of INNER on
    short lines (its body crosses LINE_CHECKS whatever lines the field takes)."""
    encoded = base64.b64encode(INNER)
    lines = b"".join(encoded[at:at + 4] + b"\n" for at in range(0, len(encoded), 4))
    return (b"From: a@x\nSubject: r\nMIME-Version: 1.0\n"
            b"Content-Type: multipart/mixed; boundary=B\n\n"
            b"--B\nContent-Type: text/plain\n\nsee attached\n" + b"filler\n" * filler +
            b"--B\n" + part_head + b"Content-Transfer-Encoding: base64\n" + field + b"\n" +
            lines + b"--B--\n")


def _read(raw: bytes):
    """What extraction reads of `raw` and what its last part decodes to."""
    extracted = extract(raw, 1 << 20)
    last = list(mime.parse_message(raw).walk())[-1]
    return (extracted.body, [(a.filename, a.text) for a in extracted.attachments],
            body_text(raw), transfer_encoding.decoded_payload(last))


@pytest.mark.parametrize("past_line_checks", [False, True], ids=["within", "past"])
@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("kind", PART_HEADS)
def test_a_sender_s_wrapped_field_changes_nothing(kind, field, past_line_checks,
                                                  monkeypatch):
    monkeypatch.setattr(mime_parts, "LINE_CHECKS", 200)
    raw = _message(PART_HEADS[kind], field, 180 if past_line_checks else 0)
    rewritten = base64.b64encode(INNER) in mime_parts.bounded(raw)[0]  # (on one line)
    assert rewritten == past_line_checks
    marked = _read(raw)
    assert marked == _read(raw.replace(field, b""))  # (9457ea1's reading: no such field)
    body, attachments, _, decoded = marked
    assert decoded == INNER
    assert "HIDDENWORD" in (body if kind == "html" else attachments[0][1])


def test_the_field_this_process_writes_is_one_no_sender_knows():
    """Its name is not the fixed one a sender could copy, and holds 128 random bits."""
    name = mime_parts.WRAPPED_FIELD.lower()
    assert name.startswith("x-archive-wrapped-") and name != "x-archive-wrapped-encoding"
    assert len(name) - len("x-archive-wrapped-") == 32
