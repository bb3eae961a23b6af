"""A generated corpus of hostile messages: each kind of input that has stopped or could stop
an indexer, in several scripts and places, each with a way to find it again.

Every case is a message (raw bytes and envelope recipients), the query words only it
contains (`word`), the exact addresses the access filter must find it by, and whether its
document must be flagged has:extraction-failure.
"""
from __future__ import annotations

import base64
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from tests.reading_corpus import stall_xlsx

DATA = Path(__file__).resolve().parents[2] / "data" / "hostile"
LOOP_PDF = (DATA / "loop.pdf").read_bytes()
# Keeps its reader (openpyxl) busy for many seconds: the attachment a time limit cuts off.
STALL_XLSX = stall_xlsx()
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# One character of each width of UTF-8 and from several scripts: Latin, Cyrillic, Greek
# (2 bytes), CJK, Thai (3 bytes), musical symbols (4 bytes, a surrogate pair in UTF-16).
SCRIPTS = {"latin": "é", "cyrillic": "ж", "greek": "λ", "cjk": "漢", "thai": "ก", "emoji": "𝄞"}
DOMAIN = "@example.com"
ADDRESS_HEADERS = ("From", "To", "Cc", "Bcc")


@dataclass
class Case:
    name: str
    raw: bytes
    word: str                                  # a word only this message has (in Subject)
    recipients: list[str] = field(default_factory=list)  # envelope (RCPT TO)
    addresses: list[str] = field(default_factory=list)   # exact addresses it must be found by
    flagged: bool = False                      # has:extraction-failure expected


def long_address(char: str) -> str:
    """Under 200 characters, over 245 bytes of UTF-8: what Xapian refuses as a term."""
    count = 185 if len(char.encode()) == 2 else (246 // len(char.encode())) + 2
    address = char * count + DOMAIN
    assert len(address) < 200 < 245 < len(address.encode()), address
    return address


def message(word: str, headers: dict[str, str] | None = None, body: str = "body text",
            parts: list[bytes] | None = None) -> bytes:
    """A message with Subject `word`; multipart/mixed when it has parts (raw MIME parts)."""
    fields = {"From": "sender@example.org", "To": "rcpt@example.com", "Subject": word,
              "Message-ID": f"<{word}@example.org>", "Date": "Tue, 05 Mar 2024 10:00:00 +0000",
              **(headers or {})}
    head = "".join(f"{name}: {value}\r\n" for name, value in fields.items()).encode()
    if not parts:
        return head + b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + body.encode() + b"\r\n"
    mixed = b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="B"\r\n\r\n'
    text = b"--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body.encode() + b"\r\n"
    return head + mixed + text + b"".join(b"--B\r\n" + part + b"\r\n" for part in parts) + b"--B--\r\n"


def attachment(data: bytes, content_type: str, filename_param: str) -> bytes:
    return (f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: base64\r\n"
            f"Content-Disposition: attachment; {filename_param}\r\n\r\n").encode(
                "utf-8", "surrogateescape") + base64.encodebytes(data)


def rfc2231(name: str) -> str:
    return "filename*=utf-8''" + urllib.parse.quote(name, safe="")


def long_addresses() -> list[Case]:
    """A long UTF-8 address in every address header, in the envelope, and RFC 2047-encoded."""
    cases = []
    for script, char in SCRIPTS.items():
        address = long_address(char)
        for header in ADDRESS_HEADERS:
            word = f"hostaddr{header.lower()}{script}"
            cases.append(Case(f"long-address-{header}-{script}",
                              message(word, {header: f"Someone <{address}>"}), word,
                              addresses=[address]))
        word = f"hostenvelope{script}"
        cases.append(Case(f"long-envelope-recipient-{script}", message(word), word,
                          recipients=["rcpt@example.com", address], addresses=[address]))
    encoded = "=?utf-8?b?" + base64.b64encode(("ü" * 150).encode()).decode() + "?=" + DOMAIN
    # An encoded word is no address (RFC 2047 section 5): the strict parser keeps it as it
    # stands, so the term is of the encoded form, long as it is, and nobody's decoded address.
    cases.append(Case("long-address-rfc2047", message("hostaddrencoded", {"To": encoded}),
                      "hostaddrencoded", addresses=[encoded.lower()]))
    return cases


def long_texts() -> list[Case]:
    """Long words, filenames, Message-IDs, Subjects and MIME types, in every script."""
    cases = []
    for script, char in SCRIPTS.items():
        word = f"hostword{script}"
        cases.append(Case(f"long-word-{script}",
                          message(f"{word} {char * 5000}", body=f"{char * 100_000} plain"), word))
        word = f"hostfilename{script}"
        name = char * 1000 + ".pdf"  # RFC 2231-encoded within the 16 KB parameter limit
        cases.append(Case(f"long-filename-{script}", message(word, parts=[attachment(
            b"not a pdf", "application/octet-stream", rfc2231(name))]), word, flagged=True))
        word = f"hostmsgid{script}"
        cases.append(Case(f"long-message-id-{script}", message(word, {
            "Message-ID": f"<{char * 5000}@example.org>"}), word))
        word = f"hostmimetype{script}"
        cases.append(Case(f"long-mime-type-{script}", message(word, parts=[attachment(
            b"data", f"application/{char * 300}", 'filename="x.bin"')]), word))
    # 1.2 MB: cut at extract.SUBJECT_TEXT_LIMIT, its first words still found
    cases.append(Case("long-subject", message("hostlongsubject " + "wörter " * 150_000),
                      "hostlongsubject", flagged=True))
    return cases


def broken_encodings() -> list[Case]:
    """NULs, lone surrogates (UTF-7 halves of a pair, 8-bit bytes in headers), codecs that
    are no text encodings, and declared charsets that do not fit the bytes."""
    lone = "=?utf-7?q?+2DQ-?="  # UTF-7 for a lone high surrogate, U+D834
    cases = [
        Case("nul-everywhere", message("hostnul", {
            "From": "nul\x00user@example.org", "To": f"a\x00{long_address('é')}"},
            body="nul\x00body", parts=[attachment(b"x\x00y", "application/x\x00type",
                                                  'filename="n\x00ul.txt"')]), "hostnul"),
        Case("lone-surrogates", message(f"hostsurrogate {lone}", {
            "From": f"{lone} <{lone}@example.org>", "To": f"{lone}{long_address('ж')}"},
            parts=[attachment(b"%PDF-1.4 garbage", "application/pdf",
                              f'filename="{lone}.pdf"')]), "hostsurrogate", flagged=True),
        Case("8bit-headers", message("host8bit").replace(
            b"From: sender@example.org", b"From: \xff\xfe\xc3(@example.org <\xed\xa0\x80@x.org>"),
            "host8bit"),
    ]
    for charset in ("utf-16", "utf-7", "punycode", "idna", "base64", "rot13", "zlib",
                    "unicode_escape"):
        word = f"hostcharset{charset.replace('_', '')}"
        encoded = base64.b64encode(b"+2D3- odd").decode()
        raw = message(word, {"To": f"=?{charset}?b?{encoded}?={DOMAIN}"}).replace(
            b"charset=utf-8", f"charset={charset}".encode()).replace(
            b"body text", b"\\ud800 +2D3- \xff\xfe\x00 body")
        cases.append(Case(f"charset-{charset}", raw, word))
    return cases


# Charset labels no charset has: 8-bit bytes (decoded to lone surrogates), valid UTF-8 that is
# not ASCII (fullwidth "utf-8", a zero-width space before it, an accent), control bytes, an
# encoded surrogate, a label past any real one's length. Each stopped an import once.
HOSTILE_LABELS = [b"x-\xff", b"\xff\xfe", b"utf-8\xc3\xa9", "\uff55\uff54\uff46-8".encode(),
                  b"\xe2\x80\x8butf-8", b"utf\x01-8", b"\xed\xa0\x80", b"u" * 300]
LABEL = "LABELHERE"  # stands for the label until the message is bytes
# Where a label can stand (RFC 2047 encoded-words, RFC 2231 parameters, a part's charset).
LABEL_PLACES = {
    "subject": lambda word: message(f"{word} =?{LABEL}?Q?hi?="),
    "from": lambda word: message(word, {"From": f"=?{LABEL}?B?aGk=?= <{word}@example.org>"}),
    "to": lambda word: message(word, {"To": f"=?{LABEL}?Q?hi?= <rcpt@example.com>"}),
    "message-id": lambda word: message(word, {"Message-ID": f"<=?{LABEL}?B?aGk=?={word}@x>"}),
    "filename-2231": lambda word: message(word, parts=[attachment(
        b"text", "text/plain", f"filename*={LABEL}''{word}.txt")]),
    "filename-2047": lambda word: message(word, parts=[attachment(
        b"text", "text/plain", f'filename="=?{LABEL}?Q?{word}?=.txt"')]),
    "body-charset": lambda word: message(word, body="caf\u00e9").replace(
        b"charset=utf-8", f"charset={LABEL}".encode()),
    "part-charset": lambda word: message(word, parts=[
        f"Content-Type: text/plain; charset={LABEL}\r\n\r\ncaf\u00e9\r\n".encode()]),
}


def charset_labels() -> list[Case]:
    """Every hostile label (HOSTILE_LABELS) in every place a charset is named."""
    cases = []
    for number, label in enumerate(HOSTILE_LABELS):
        for place, make in LABEL_PLACES.items():
            word = f"hostlabel{number}{place.replace('-', '')}"
            cases.append(Case(f"label-{number}-{place}",
                              make(word).replace(LABEL.encode(), label), word))
    return cases


# 8-bit bytes where a header field's text is decoded: bare, and in the encoded text of an
# encoded-word of a real charset and of a hostile one (they decode to lone surrogates).
EIGHT_BIT_TEXTS = [b"\xff\xfe\xc3(", b"=?utf-8?B?\xf1\x82\x95\xe2\xdaG\xae\x87?=",
                   b"=?utf-8?B?aGk\xff?=", b"=?x-\xff?B?\xf1\x82\x95\xe2\xdaG\xae\x87?=",
                   b"=?utf-8?Q?caf\xe9?="]
EIGHT_BIT_FIELDS = ("Message-ID", "In-Reply-To", "References", "Subject", "From", "To", "Cc",
                    "Date", "Resent-Message-ID", "Resent-From", "Content-Type")


def eight_bit_headers() -> list[Case]:
    """Every EIGHT_BIT_TEXTS in every field the store or a page decodes."""
    cases = []
    for number, text in enumerate(EIGHT_BIT_TEXTS):
        for name in EIGHT_BIT_FIELDS:
            word = f"host8bit{number}{name.replace('-', '').lower()}"
            value = {"Message-ID": f"<{word} {LABEL}@example.org>",
                     "Content-Type": f'text/plain; charset=utf-8; name="{LABEL}"',
                     "Subject": f"{word} {LABEL}"}.get(name, f"{LABEL} <{word}@example.org>")
            raw = message(word, {name: value}) if name != "Content-Type" else message(
                word).replace(b"text/plain; charset=utf-8", value.encode())
            cases.append(Case(f"8bit-{number}-{name}", raw.replace(LABEL.encode(), text), word))
    return cases


# Encoded text that decodes to lone surrogates (which UTF-8 cannot carry), under labels of
# its charset: UTF-7 halves of a pair, high (U+D83D, U+D834), low (U+DE00), two highs.
# Python's UTF-7 decoder yields them; no other text codec services.archive.charsets accepts
# does (UTF-8, -16 and -32 refuse them as invalid; every 1- and 2-byte sequence, and every
# 4-byte GB18030 one, of the others was tried).
SURROGATE_TEXTS = [("utf-7", b"+2D0-"), ("UTF-7", b"a+3gA-b"), ("unicode-1-1-utf-7", b"+2DQ-"),
                   ("utf7", b"+2D3YPQ- x")]
TEXT = "TEXTHERE"  # stands for the encoded text (B or Q, as the place says) until then
SURROGATE_PLACES = {
    "subject": lambda word: message(f"{word} =?{LABEL}?Q?{TEXT}?= hello"),
    "from": lambda word: message(word, {"From": f"=?{LABEL}?B?{TEXT}?= <{word}@example.org>"}),
    "to": lambda word: message(word, {"To": f"=?{LABEL}?Q?{TEXT}?= <rcpt@example.com>"}),
    "message-id": lambda word: message(word, {"Message-ID": f"<=?{LABEL}?B?{TEXT}?={word}@x>"}),
    "filename-2231": lambda word: message(word, parts=[attachment(
        b"text", "text/plain", f"filename*={LABEL}''{TEXT}{word}.txt")]),
    "filename-2047": lambda word: message(word, parts=[attachment(
        b"text", "application/octet-stream", f'filename="=?{LABEL}?B?{TEXT}?={word}.bin"')]),
    "name-2047": lambda word: message(word, parts=[attachment(
        b"text", f'application/octet-stream; name="=?{LABEL}?Q?{TEXT}?={word}.bin"',
        "size=4")]),  # no filename=: the name is the Content-Type's
    "body-charset": lambda word: message(word, body=f"{TEXT} body").replace(
        b"charset=utf-8", f"charset={LABEL}".encode()),
    "part-charset": lambda word: message(word, parts=[
        f"Content-Type: text/plain; charset={LABEL}\r\n\r\n{TEXT} part\r\n".encode()]),
}


def surrogate_texts() -> list[Case]:
    """Every SURROGATE_TEXTS in every place a charset's text is decoded."""
    cases = []
    for number, (label, text) in enumerate(SURROGATE_TEXTS):
        for place, make in SURROGATE_PLACES.items():
            word = f"hostsurrogate{number}{place.replace('-', '')}"
            if "-2231" in place:
                encoded = urllib.parse.quote(text, safe="")
            elif b"?B?" in make(word):
                encoded = base64.b64encode(text).decode()
            else:  # Q, and the raw text of a body or part
                encoded = text.decode()
            raw = make(word).replace(LABEL.encode(), label.encode()).replace(
                TEXT.encode(), encoded.encode())
            cases.append(Case(f"surrogate-{number}-{place}", raw, word))
    return cases


def structures() -> list[Case]:
    """Deep MIME trees, deep message/rfc822 nesting, many recipients, parts that fail to be
    read (a PDF that loops, one that is no PDF, a DOCX that is no zip)."""
    deep = b'MIME-Version: 1.0\r\n'
    for level in range(1000):
        deep += f'Content-Type: multipart/mixed; boundary="d{level}"\r\n\r\n--d{level}\r\n'.encode()
    deep += b"Content-Type: text/plain\r\n\r\ninnermost\r\n"
    inner = message("hostinnermost")
    for level in range(60):
        inner = (f"From: level{level}@example.org\r\nSubject: level {level}\r\n"
                 "Content-Type: message/rfc822\r\n\r\n").encode() + inner
    many = [f"r{n}@example.com" for n in range(3000)]
    return [
        Case("deep-multipart", message("hostdeep").replace(
            b"Content-Type: text/plain; charset=utf-8\r\n\r\nbody text\r\n", deep), "hostdeep",
            flagged=True),
        Case("deep-rfc822", message("hostrfc822", parts=[
            b"Content-Type: message/rfc822\r\n\r\n" + inner]), "hostrfc822",
            flagged=True),  # levels past MAX_NESTED_MESSAGES: headers only, a cut
        Case("many-recipients", message("hostmany", {"To": ", ".join(many)}), "hostmany",
             recipients=many + [f"bcc{n}@example.com" for n in range(3000)]),
        Case("loop-pdf", message("hostloop", parts=[attachment(
            LOOP_PDF, "application/pdf", 'filename="loop.pdf"')]), "hostloop", flagged=True),
        Case("stall-xlsx", message("hoststall", parts=[attachment(
            STALL_XLSX, XLSX_TYPE, 'filename="stall.xlsx"')]), "hoststall", flagged=True),
        Case("broken-docx", message("hostdocx", parts=[attachment(
            b"PK\x03\x04 not a zip", "application/vnd.openxmlformats-officedocument."
            "wordprocessingml.document", 'filename="broken.docx"')]), "hostdocx", flagged=True),
    ]


def corpus() -> list[Case]:
    cases = (long_addresses() + long_texts() + broken_encodings() + charset_labels()
             + eight_bit_headers() + surrogate_texts() + structures())
    assert len({case.word for case in cases}) == len(cases)
    return cases


def normal(n: int) -> Case:
    """An ordinary message, to follow each hostile one."""
    word = f"afterword{n}"
    return Case(f"normal-{n}", message(word, body=f"an ordinary message {word}"), word,
                addresses=["rcpt@example.com"])
