"""Quoted-printable and base64 bodies lose no text (services.archive.transfer_encoding):
CPython's a2b_qp skipped from "=<CR>" to the next LF, so a lone-CR message (classic Mac OS
mailers) lost everything after its first soft line break, and any message could hide the
rest of a line behind "=<CR>"; a2b_base64 stopped at the first padding, so a body of chunks
encoded one by one kept its first chunk only. The corpus: each line ending, each soft line
break (with RFC 2045's transport padding or not), in each place a part's text is decoded (a
single part, a part of a multipart, HTML, a text attachment, a quoted-printable attached
message, the web's views, a journal report's envelope), and base64 bodies of each shape.
"""
from __future__ import annotations

import base64
import itertools

import pytest

from services.archive import extract
from services.archive.mime import parse_message
from services.archive.transfer_encoding import (decode_base64, decode_quoted_printable,
                                                 decoded_payload)
from services.intake.journal_report import unwrap
from services.web import mail_view, message_tree
from tests.unit.intake.test_journal_report import original_message, report

LINE_ENDINGS = {"crlf": b"\r\n", "lf": b"\n", "cr": b"\r"}
SOFT_BREAKS = {"bare": b"=", "padded": b"= ", "tabs": b"=\t \t"}


def qp_text(nl: bytes, soft: bytes) -> bytes:
    """Quoted-printable lines whose decoding says "joinedword caf\u00e9 lastword"."""
    return nl.join([b"joined" + soft, b"word caf=C3=A9" + soft, b" lastword", b""])


def message(nl: bytes, headers: list[bytes], body: list[bytes]) -> bytes:
    return nl.join([b"From: a@example.com", b"To: b@example.com", b"Subject: qp",
                    b"MIME-Version: 1.0", *headers, b"", *body])


QP = b"Content-Transfer-Encoding: quoted-printable"


def places(nl: bytes, soft: bytes) -> dict[str, bytes]:
    text = qp_text(nl, soft)
    inner = message(nl, [b"Content-Type: text/plain; charset=utf-8", b"Subject: inner"],
                    [b"inner", b""])
    inner_qp = inner.replace(b"=", b"=3D").replace(b"inner" + nl, b"inner " + text)
    part = [b"--B", b"Content-Type: text/plain; charset=utf-8", QP, b""]
    return {
        "single part": message(nl, [b"Content-Type: text/plain; charset=utf-8", QP],
                               [text]),
        "html": message(nl, [b"Content-Type: text/html; charset=utf-8", QP],
                        [b"<p>" + text + b"</p>"]),
        "multipart": message(nl, [b"Content-Type: multipart/mixed; boundary=B"],
                             [*part, text, b"--B", b"Content-Type: text/plain", b"",
                              b"second part", b"--B--", b""]),
        "text attachment": message(nl, [b"Content-Type: multipart/mixed; boundary=B"], [
            b"--B", b"Content-Type: text/plain", b"", b"see attached", b"--B",
            b"Content-Type: text/plain; charset=utf-8; name=notes.txt",
            b"Content-Disposition: attachment; filename=notes.txt", QP, b"", text,
            b"--B--", b""]),
        "attached message": message(nl, [b"Content-Type: multipart/mixed; boundary=B"], [
            b"--B", b"Content-Type: text/plain", b"", b"forwarded", b"--B",
            b"Content-Type: message/rfc822", QP, b"", inner_qp, b"--B--", b""]),
    }


CASES = [(nl, soft, place) for nl, soft in itertools.product(LINE_ENDINGS, SOFT_BREAKS)
         for place in places(b"\n", b"=")]


def indexed_text(raw: bytes) -> str:
    extracted = extract.extract(raw, 10**7)
    return " ".join([extracted.body, *(a.text for a in extracted.attachments)])


@pytest.mark.parametrize("nl, soft, place", CASES)
def test_every_soft_line_break_is_joined_and_nothing_after_it_is_lost(nl, soft, place):
    raw = places(LINE_ENDINGS[nl], SOFT_BREAKS[soft])[place]
    text = indexed_text(raw)
    assert "joinedword caf\u00e9 lastword" in text, text


@pytest.mark.parametrize("nl, soft", itertools.product(LINE_ENDINGS, SOFT_BREAKS))
def test_the_web_shows_the_whole_quoted_printable_body(nl, soft):
    raw = places(LINE_ENDINGS[nl], SOFT_BREAKS[soft])["single part"]
    assert "joinedword caf\u00e9 lastword" in mail_view.view(raw).body
    assert "joinedword caf\u00e9 lastword" in message_tree.body(parse_message(raw)).text


def test_a_carriage_return_after_an_equals_sign_hides_nothing_on_its_line():
    raw = (b"From: a@example.com\r\nSubject: qp\r\nContent-Transfer-Encoding: quoted-printable"
           b"\r\n\r\nharmless words =\rwire the money tonight\r\nsecond line\r\n")
    text = indexed_text(raw)
    assert "harmless words wire the money tonight" in text, text


@pytest.mark.parametrize("nl", [b"\r\n", b"\n"], ids=["crlf", "lf"])
def test_a_journal_envelope_cannot_hide_a_bcc_recipient_behind_a_soft_line_break(nl):
    envelope = nl.join([b"Sender: alice@contoso.com", b"Message-ID: <abc@contoso.com>",
                        b"To: bob@contoso.com", b"Bcc: auditor@fabrikam.com=\r",
                        b"Bcc: hidden@fabrikam.com", b"Bcc: dave@contoso.com", b""])
    envelope = envelope.replace(b"=\r" + nl, b"=\r")  # the "=<CR>" mid-line, as sent
    unwrapped = unwrap(report(original_message(nl), nl, envelope=envelope, envelope_headers=(
        b"Content-Type: text/plain; charset=utf-8", QP)))
    assert "dave@contoso.com" in unwrapped.bcc
    assert any("hidden@fabrikam.com" in address for address in unwrapped.recipients), \
        unwrapped.recipients


@pytest.mark.parametrize("encoded, decoded", [
    (b"a=\rb", b"ab"), (b"a=\r\nb", b"ab"), (b"a=\nb", b"ab"), (b"a= \t\r\nb", b"ab"),
    (b"a=\r=\rb", b"ab"), (b"a=\r\rb", b"a\rb"), (b"caf=C3=A9", b"caf\xc3\xa9"),
    (b"a = b", b"a = b"), (b"=ZZ", b"=ZZ"), (b"end=", b"end"), (b"", b""),
    (b"line\rline\r", b"line\rline\r"),  # a lone CR that ends no soft break stays
])
def test_decoding(encoded, decoded):
    assert decode_quoted_printable(encoded) == decoded


def test_a_part_decodes_as_the_email_package_decodes_it_but_for_soft_line_breaks():
    raw = message(b"\n", [b"Content-Type: multipart/mixed; boundary=B"], [
        b"--B", b"Content-Type: text/plain", b"Content-Transfer-Encoding: base64", b"",
        b"aGVsbG8=", b"--B", b"Content-Type: text/plain; charset=latin-1", QP, b"",
        b"gr\xfc=DF=", b"e", b"--B", b"Content-Type: text/plain", b"", b"plain", b"--B--", b""])
    base64_part, qp_part, plain_part = parse_message(raw).get_payload()
    assert decoded_payload(base64_part) == b"hello"
    assert decoded_payload(qp_part) == b"gr\xfc\xdfe"  # the LF before "--B" is the delimiter's
    assert decoded_payload(plain_part) == b"plain"
    assert decoded_payload(parse_message(raw)) == b""  # a multipart has no payload bytes


BASE64_BODIES = {  # body: what it says
    "padded chunks": (b"aGVsbA==\nd29ybGQ=\n", "hellworld"),  # each line encoded on its own
    "padding mid-line": (b"aGVsbG8=d29ybGQ=\n", "helloworld"),
    "no padding": (b"aGVsbG8gd29y\nbGQ\n", "hello world"),
    "blanks and junk": (b"aGVs bG8g\td29y*bGQ=\n", "hello world"),
}


@pytest.mark.parametrize("name", BASE64_BODIES)
@pytest.mark.parametrize("nl", LINE_ENDINGS)
def test_base64_text_after_padding_is_not_lost(name, nl):
    body, says = BASE64_BODIES[name]
    raw = message(LINE_ENDINGS[nl], [b"Content-Type: text/plain", b"Content-Transfer-Encoding:"
                                      b" base64"], [body.replace(b"\n", LINE_ENDINGS[nl])])
    assert says in indexed_text(raw)
    assert says in mail_view.view(raw).body
    assert says in message_tree.body(parse_message(raw)).text


@pytest.mark.parametrize("encoded, decoded", [
    (b"aGVsbA==d29ybGQ=", b"hellworld"), (b"aGVsbG8gd29ybGQ", b"hello world"),
    (b"aGVs\r\nbG8=", b"hello"), (b"", b""), (b"=", b""), (b"a", b""), (b"YQ", b"a"),
    (b"YQ==YQ==YQ", b"aaa"),
])
def test_base64_decoding(encoded, decoded):
    assert decode_base64(encoded) == decoded


def test_a_base64_journal_envelope_in_padded_chunks_keeps_every_recipient():
    envelope = [b"Sender: alice@contoso.com\r\n", b"To: bob@contoso.com\r\n",
                b"Bcc: hidden@fabrikam.com\r\n"]
    encoded = b"\r\n".join(base64.b64encode(line) for line in envelope) + b"\r\n"
    unwrapped = unwrap(report(original_message(b"\r\n"), b"\r\n", envelope=encoded,
                              envelope_headers=(b"Content-Type: text/plain; charset=utf-8",
                                                b"Content-Transfer-Encoding: base64")))
    assert unwrapped.bcc == ["hidden@fabrikam.com"], unwrapped


@pytest.mark.parametrize("nl", LINE_ENDINGS)
def test_an_equals_sign_before_a_soft_line_break_hides_nothing_after_it(nl):
    """Joining "==<break>" left "=" before what follows: a lone CR there ("a==<LF><CR>...")
    made a2b_qp skip to the next LF, losing the line, which a mail client shows (the first
    "=" is text, the second a soft line break, the CR a line break); an LF there joined two
    words."""
    nl = LINE_ENDINGS[nl]
    for body, says in [(b"total 5==" + nl + b"\rwire the money tonight", "wire the money"),
                       (b"x==" + nl + nl + b"hiddenword", "hiddenword")]:
        raw = message(nl, [b"Content-Type: text/plain; charset=utf-8", QP],
                      [body, b"last line", b""])
        assert says in indexed_text(raw), body
        assert says in mail_view.view(raw).body, body
        assert says in message_tree.body(parse_message(raw)).text, body
    if nl == b"\r":
        return  # a journal report's own lines end in CRLF or LF
    envelope = nl.join([b"Sender: alice@contoso.com", b"To: bob@contoso.com",
                        b"X-Note: 1==", b"\rBcc: hidden@fabrikam.com", b""])
    unwrapped = unwrap(report(original_message(nl), nl, envelope=envelope, envelope_headers=(
        b"Content-Type: text/plain; charset=utf-8", QP)))
    assert any("hidden@fabrikam.com" in address for address in unwrapped.recipients), \
        unwrapped.recipients


CTE_SPELLINGS = [b"base64 ", b"base64\t", b"base64 (sent by a gateway)", b"base64;",
                 b"\r\n base64"]


@pytest.mark.parametrize("spelling", CTE_SPELLINGS, ids=repr)
def test_a_transfer_encoding_followed_by_a_blank_a_comment_or_folded_is_decoded(spelling):
    """The email package compares the whole value with "base64": a trailing blank, a
    comment or a folded line left the part encoded, its text indexed and shown as base64
    letters; Thunderbird reads the first token and shows the text."""
    says = "wire the money tonight"
    encoded = base64.b64encode(says.encode())
    for nl in (b"\r\n", b"\n"):
        cte = b"Content-Transfer-Encoding:" + spelling.replace(b"\r\n", nl)
        raw = message(nl, [b"Content-Type: text/plain; charset=utf-8", cte], [encoded, b""])
        assert says in indexed_text(raw)
        assert says in mail_view.view(raw).body
        assert says in message_tree.body(parse_message(raw)).text
        quoted = message(nl, [b"Content-Type: text/plain; charset=utf-8",
                              cte.replace(b"base64", b"quoted-printable")],
                         [b"wire the=", b" money tonight", b""])
        assert says in indexed_text(quoted)
        inner = message(nl, [b"Content-Type: text/plain"], [b"inner " + says.encode(), b""])
        attached = message(nl, [b"Content-Type: multipart/mixed; boundary=B"], [
            b"--B", b"Content-Type: text/plain", b"", b"forwarded", b"--B",
            b"Content-Type: message/rfc822", cte, b"", base64.encodebytes(inner).strip(),
            b"--B--", b""])
        assert "inner " + says in indexed_text(attached)
    envelope = [b"Sender: alice@contoso.com\r\n", b"To: bob@contoso.com\r\n",
                b"Bcc: hidden@fabrikam.com\r\n"]
    unwrapped = unwrap(report(original_message(b"\r\n"), b"\r\n",
                              envelope=base64.encodebytes(b"".join(envelope)),
                              envelope_headers=(b"Content-Type: text/plain; charset=utf-8",
                                                b"Content-Transfer-Encoding:" + spelling)))
    assert unwrapped.bcc == ["hidden@fabrikam.com"], unwrapped



@pytest.mark.parametrize("encoding", ["base64", "quoted-printable"])
def test_an_encoded_attached_message_is_downloaded_decoded(encoding):
    """The web API's attachment download (mail_view.attachment) gave an attached message
    that a mailer encoded as the parser saw it: base64 letters, not the message that
    extraction indexes and the message tree shows."""
    inner = (b"From: carol@example.com\nTo: dave@example.com\nSubject: inner\n\n"
             b"wire the money tonight\n")
    encoded = base64.encodebytes(inner) if encoding == "base64" else \
        inner.replace(b"=", b"=3D")
    raw = message(b"\n", [b"Content-Type: multipart/mixed; boundary=B"], [
        b"--B", b"Content-Type: text/plain", b"", b"forwarded", b"--B",
        b"Content-Type: message/rfc822", b"Content-Transfer-Encoding: " + encoding.encode(),
        b"", encoded, b"--B--", b""])
    (found,) = mail_view.view(raw).attachments
    _, data = mail_view.attachment(raw, found.number)
    assert b"Subject: inner" in data and b"wire the money tonight" in data, data
    assert data == message_tree.decoded(message_tree.part_at(parse_message(raw), "2"))


@pytest.mark.parametrize("nl", [b"\r\n", b"\n"], ids=["crlf", "lf"])
def test_a_soft_line_break_in_a_quoted_printable_attached_message_s_header_is_joined(nl):
    """The parser took the encoded text for a message: a soft line break in its long
    Subject ended the header block there, and the message made bytes again (to be decoded)
    had a blank line in its place: the Subject was cut, the fields after it read as body."""
    inner = nl.join([b"From: carol@example.com", b"To: dave@example.com",
                     b"Subject: a long subject that the encoder wrapp=", b"ed at its end",
                     b"Cc: erin@example.com", b"", b"inner body", b""])
    raw = message(nl, [b"Content-Type: multipart/mixed; boundary=B"], [
        b"--B", b"Content-Type: text/plain", b"", b"forwarded", b"--B",
        b"Content-Type: message/rfc822", QP, b"", inner, b"--B--", b""])
    (attached,) = message_tree.children(parse_message(raw).get_payload()[1])
    assert attached["Subject"] == "a long subject that the encoder wrapped at its end"
    assert attached["Cc"] == "erin@example.com"
    assert "the encoder wrapped at its end" in indexed_text(raw)


@pytest.mark.parametrize("decode, hostile", [
    (decode_quoted_printable, b"a=\r"), (decode_quoted_printable, b"=\r\n"),
    (decode_base64, b"QQ="), (decode_base64, b"QQ=\r\n"), (decode_base64, b"QQQQQ=")],
    ids=["qp a=CR", "qp =CRLF", "base64 QQ=", "base64 QQ=CRLF", "base64 QQQQQ="])
def test_a_body_of_millions_of_matches_is_decoded_in_little_memory(decode, hostile):
    """A regular expression's substitution or split keeps an object per match until it is
    done: a body that is all soft line breaks or padded runs took some 60 bytes of memory
    per byte (24 MB of "a=<CR>": 1.4 GB), past an extraction worker's limit and in the web's
    and intake's own memory (a message's view, its charset sample)."""
    import tracemalloc
    body = hostile * (2 * 2**20 // len(hostile))
    tracemalloc.start()
    try:
        decode(body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * len(body), peak


def test_decoding_in_pieces_is_decoding_whole(monkeypatch):
    """Bodies are decoded in pieces (transfer_encoding.PIECE_BYTES): cut where no soft line
    break and no padded run goes on, the pieces decode as the whole does."""
    import random
    from services.archive import transfer_encoding
    rnd = random.Random(7)
    qp_bytes, b64_bytes = b"=\r\n \tA3dz", b"=QUFB\r\n x"
    for _ in range(2000):
        qp = bytes(rnd.choice(qp_bytes) for _ in range(rnd.randint(0, 60)))
        b64 = bytes(rnd.choice(b64_bytes) for _ in range(rnd.randint(0, 60)))
        monkeypatch.setattr(transfer_encoding, "PIECE_BYTES", 10**9)
        whole = decode_quoted_printable(qp), decode_base64(b64)
        monkeypatch.setattr(transfer_encoding, "PIECE_BYTES", rnd.randint(1, 8))
        assert (decode_quoted_printable(qp), decode_base64(b64)) == whole, (qp, b64)


@pytest.mark.parametrize("body", [
    b"aGVsb=G8gd29ybGQ=\n",  # a stray "=" after a quad's first letter
    b"a=GVsbG8gd29ybGQ=\n",
    b"aGVsbG8g=\nd29ybGQ=\n",  # after a whole quad
    b"aGVsb=G8=\nIHdv=cmxk\n",  # and padded chunks after it
], ids=repr)
def test_padding_that_ends_no_quad_is_skipped_not_taken_for_a_run_s_end(body):
    """a2b_base64 and the email package skip an "=" after a quad's first letter (six bits
    are no byte) and read on; taking it for the end of a run cut the quad there and decoded
    the rest out of step, as noise: 'aGVsb=G8gd29ybGQ=' (hello world, as the email package
    and the tree before 0569524 read it) became 'hel' and garbage."""
    says = "hello world"
    assert decode_base64(body) == says.encode()
    raw = message(b"\n", [b"Content-Type: text/plain", b"Content-Transfer-Encoding: base64"],
                  [body])
    assert says in indexed_text(raw)
    assert says in mail_view.view(raw).body
