"""services.archive.mime: the header summary taken at store time, and that no input makes it raise."""
from __future__ import annotations

import calendar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.archive import mime_parts
from services.archive.mime import (FIELD_VALUE_LIMIT, MessageSummary, addresses,
                                   decode_header_text, header_end, parse_headers, summarize,
                                   summarize_message, summarize_origin)

TYPICAL = b"""\
From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <Joerg.Mueller@Example.DE>
To: "Bob, Jr." <BOB@x.org>, carol@x.org
To: dave@x.org
Cc: Eve <eve@x.org>
Bcc: audit@x.org
Subject: =?utf-8?b?UXVhcnRhbHNiZXJpY2h0?= =?iso-8859-1?q?_f=FCr?= Q3
Date: Tue, 01 Jul 2003 10:52:37 +0200
Message-ID:  <20030701.1052@mail.example.de>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: text/plain; charset=utf-8

Hello.
--outer
Content-Type: application/pdf; name="=?utf-8?q?r=C3=A9sum=C3=A9.pdf?="
Content-Transfer-Encoding: base64

JVBERi0xLjQK
--outer
Content-Type: application/octet-stream
Content-Disposition: attachment; filename*=utf-8''na%C3%AFve%20plan.txt

plan
--outer
Content-Type: image/png
Content-Disposition: inline; filename="logo.png"

png
--outer--
"""


def message(headers: bytes, body: bytes = b"body\n") -> bytes:
    return headers + b"\n" + body


def test_a_typical_message_is_summarized():
    summary = summarize(TYPICAL)
    assert summary == MessageSummary(
        message_id="20030701.1052@mail.example.de",
        sent_date=float(calendar.timegm((2003, 7, 1, 8, 52, 37))),
        from_addrs=["Jörg Müller <joerg.mueller@example.de>"],
        to=["Bob, Jr. <bob@x.org>", "carol@x.org", "dave@x.org"],
        cc=["Eve <eve@x.org>"],
        bcc=["audit@x.org"],
        subject="Quartalsbericht für Q3",
        attachment_names=["résumé.pdf", "naïve plan.txt", "logo.png"],
        has_attachment=True,
        header_addresses={"from": ["joerg.mueller@example.de"],
                          "to": ["bob@x.org", "carol@x.org", "dave@x.org"],
                          "cc": ["eve@x.org"], "bcc": ["audit@x.org"]},
    )


def test_the_summary_is_frozen():
    with pytest.raises(AttributeError):
        summarize(TYPICAL).subject = "changed"


def test_missing_headers_give_empty_values():
    summary = summarize(b"\n\njust a body\n")
    assert summary == MessageSummary(None, None, [], [], [], [], "", [], False)


def test_crlf_line_endings_are_read_like_lf():
    assert summarize(TYPICAL.replace(b"\n", b"\r\n")) == summarize(TYPICAL)


@pytest.mark.parametrize("value, expected", [
    ("<a@b>", "a@b"), ("  <a@b>  ", "a@b"), ("a@b", "a@b"), ("<a@b> (comment)", "a@b"),
    ("<>", None), ("", None), ("   ", None),
])
def test_message_id_is_stripped_of_brackets(value, expected):
    assert summarize(message(b"Message-ID: " + value.encode() + b"\n")).message_id == expected


@pytest.mark.parametrize("value, expected", [
    (b"Thu, 01 Jan 1970 00:00:10 +0000", 10.0),
    (b"Thu, 01 Jan 1970 01:00:10 +0100", 10.0),
    (b"1 Jan 1970 00:00:10 GMT", 10.0),
    (b"Thu, 01 Jan 1970 00:00:10", 10.0),  # no zone: taken as UTC
    (b"yesterday", None), (b"", None), (b"\xff\xfe", None),
    (b"Thu, 01 Jan 99999999999 00:00:10 +0000", None),
    (b"Thu, 45 Foo 2003 99:99:99 +9999", None),
])
def test_sent_date_is_utc_epoch_or_none(value, expected):
    assert summarize(message(b"Date: " + value + b"\n")).sent_date == expected


def test_subject_encoded_words_are_decoded_and_joined():
    # Whitespace between adjacent encoded words is not part of the text (RFC 2047 6.2).
    raw = message(b"Subject: =?utf-8?q?a?= =?utf-8?q?b?=\n =?utf-8?b?Yw==?= plain =?utf-8?q?d?=\n")
    assert summarize(raw).subject == "abc plain d"


@pytest.mark.parametrize("value, expected", [
    (b"=?x-unknown-charset?q?caf=E9?=", "café"),        # unknown charset: guessed (cp1252)
    (b"=?utf-8?q?caf=E9?=", "café"),                    # a lying label: read as unlabelled
    (b"=?utf-8?q?" + b"a" * 200 + b"=E9?=", "a" * 200 + "\ufffd"),  # one bad byte: U+FFFD
    (b"=?utf-8?b?not*base64*?=", "not*base64*"),         # broken base64: kept as written
    (b"=?utf-8?b?w6k?=", "é"),                           # missing padding tolerated
    (b"=?utf-8*fr?q?=C3=A9t=C3=A9?=", "été"),            # RFC 2231 language suffix
    (b"caf\xc3\xa9 raw utf-8", "café raw utf-8"),        # undeclared 8-bit header, UTF-8
    (b"caf\xe9 raw latin-1", "café raw latin-1"),        # undeclared 8-bit header, not UTF-8
    (b"=?idna?q?=FF=FE?=", "ÿþ"),                        # a codec that ignores errors=
    (b"=?base64?q?abc?=", "abc"),                        # not a text codec at all
    (b"a\x00b\x01c", "a b c"),                           # control characters blanked
])
def test_undecodable_subjects_are_decoded_best_effort(value, expected):
    assert summarize(message(b"Subject: " + value + b"\n")).subject == expected


def test_addresses_are_lowercased_and_names_decoded():
    assert addresses('=?utf-8?q?J=C3=B6rg?= <Joerg@X.DE>, "Doe, Jane" <JANE@x.org>, bob@x.org') \
        == [("Jörg", "joerg@x.de"), ("Doe, Jane", "jane@x.org"), ("", "bob@x.org")]


@pytest.mark.parametrize("value, expected", [
    ("", []), (None, []), ("undisclosed-recipients:;", []),
    ("team: a@x.org, b@x.org;", [("", "a@x.org"), ("", "b@x.org")]),
    # Malformed entries yield nothing, and only they: the rest of the list is read. A quote
    # or comment never closed runs to the end of the header (RFC 5322): all of it is text.
    ('"unbalanced <a@x.org>, b@x.org', []),
    ("a@x.org, b@", [("", "a@x.org")]),
    ("a@x.org, <b@x.org, c@x.org", [("", "a@x.org"), ("", "c@x.org")]),
    ("(" * 5000 + "a@x.org", []),
    (":" * 5000 + "a@x.org", []),  # a group in a group: malformed, and no recursion
    ("bob@example.com <dave@example.com>", [("bob@example.com", "dave@example.com")]),
])
def test_odd_address_headers(value, expected):
    assert addresses(value) == expected


def test_decode_header_text_never_sees_non_strings():
    assert decode_header_text(None) == ""


# --- attachments ----------------------------------------------------------------------------

def multipart(*parts: bytes, subtype: bytes = b"mixed") -> bytes:
    body = b"".join(b"--b\n" + part + b"\n" for part in parts) + b"--b--\n"
    return b"Subject: parts\nContent-Type: multipart/" + subtype + b"; boundary=b\n\n" + body


def test_body_text_is_no_attachment():
    raw = multipart(b"Content-Type: text/plain\n\nhi", b"Content-Type: text/html\n\n<p>hi</p>",
                    subtype=b"alternative")
    summary = summarize(raw)
    assert (summary.attachment_names, summary.has_attachment) == ([], False)


def test_an_unnamed_attachment_counts_but_has_no_name():
    raw = multipart(b"Content-Type: text/plain\n\nhi",
                    b"Content-Type: application/zip\nContent-Disposition: attachment\n\nPK")
    summary = summarize(raw)
    assert (summary.attachment_names, summary.has_attachment) == ([], True)


def test_names_of_attachments_inside_attached_messages_are_listed():
    inner = multipart(b"Content-Type: text/plain\n\ninner",
                      b"Content-Type: text/csv; name=figures.csv\n\n1,2")
    raw = multipart(b"Content-Type: text/plain\n\nouter",
                    b"Content-Type: message/rfc822\nContent-Disposition: attachment\n\n" + inner)
    assert summarize(raw).attachment_names == ["figures.csv"]


def test_filename_with_undecodable_rfc2231_charset():
    raw = multipart(b"Content-Type: application/octet-stream\n"
                    b"Content-Disposition: attachment; filename*=x-nonsense''caf%E9.txt\n\nx")
    assert summarize(raw).attachment_names == ["café.txt"]


# --- bad input: none of it may raise ---------------------------------------------------------

def test_empty_input():
    assert summarize(b"") == MessageSummary(None, None, [], [], [], [], "", [], False)


def test_nul_bytes_everywhere():
    raw = TYPICAL.replace(b"Hello", b"Hel\x00lo").replace(b"Q3", b"Q\x003")
    summary = summarize(raw + b"\x00" * 100)
    assert summary.subject == "Quartalsbericht für Q 3"
    assert summarize(b"\x00" * 1000).subject == ""


def test_eight_bit_garbage():
    garbage = bytes(range(256)) * 64
    assert isinstance(summarize(garbage), MessageSummary)
    summary = summarize(b"From: \xff\xfe <\xe4@x.org>\nSubject: \x80\x81\x8d\xff\n\n" + garbage)
    assert summary.from_addrs and summary.subject


def test_malformed_mime():
    raw = (b"Subject: broken\nContent-Type: multipart/mixed; boundary=never-closed\n"
           b"Content-Transfer-Encoding: base64\n\n--never-closed\nContent-Type: text/\n"
           b"Content-Disposition: attachment; filename=\"unterminated\n\n!!!\n"
           b"--wrong-boundary--\nContent-Type: multipart/mixed\n\n")
    summary = summarize(raw)
    assert summary.subject == "broken" and summary.has_attachment


MEGABYTE_LINES = {
    "words": b"Subject: " + b"word " * 200_000,
    "encoded-word starts": b"Subject: " + b"=?x?q?a" * 150_000,  # quadratic in the stdlib
    "encoded words": b"Subject: " + b"=?utf-8?q?abc?= " * 60_000,
    "recipients": b"To: " + b"someone@example.org, " * 50_000,
    "at signs": b"To: " + b"@" * 1_000_000,
    "colons": b"Cc: " + b":" * 1_000_000,
    "message-id": b"Message-ID: <" + b"x" * 1_000_000 + b">",
    "date": b"Date: " + b"1 " * 500_000,
    "parameters": b"Content-Type: multipart/mixed; " + b"a=b; " * 200_000,  # quadratic too
    "filename": b"Content-Disposition: attachment; filename=" + b"n" * 1_000_000,
}


@pytest.mark.timeout(30)  # guards against a hang: quadratic header parsing would take hours
@pytest.mark.parametrize("line", MEGABYTE_LINES.values(), ids=MEGABYTE_LINES.keys())
def test_megabyte_header_lines(line):
    summary = summarize(line + b"\nFrom: a@x.org\n\nbody\n")
    assert summary.from_addrs == ["a@x.org"]


def test_a_megabyte_recipient_list_is_read_to_the_field_value_limit():
    """Every address in its first FIELD_VALUE_LIMIT bytes, none cut short (extract.
    within_index_limits bounds what of them the index takes)."""
    listed = b", ".join(b"user%d@example.org" % n for n in range(60_000))
    to = summarize(b"To: " + listed + b"\n\n").to
    kept = listed[:FIELD_VALUE_LIMIT].count(b",")
    assert len(to) == kept and to[-1] == f"user{kept - 1}@example.org"


def nested_multiparts(depth: int) -> bytes:
    opening = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n" % (n, n)
                       for n in range(depth))
    leaf = b"Content-Type: text/plain; name=deep.txt\n\ndeep down\n"
    closing = b"".join(b"--b%d--\n" % n for n in reversed(range(depth)))
    return b"From: a@x.org\nSubject: deep\n" + opening + leaf + closing


def test_deeply_nested_multiparts_fall_back_to_headers():
    summary = summarize(nested_multiparts(1000))
    assert (summary.subject, summary.from_addrs) == ("deep", ["a@x.org"])


def test_moderately_nested_multiparts_are_walked_whole():
    """Up to mime_parts.MAX_DEPTH levels, the message's included (the leaf 47 levels
    below it; was 150 before the depth cap: see test_extract's
    test_deeply_nested_multiparts_are_read_to_max_depth_and_flagged for deeper ones)."""
    assert summarize(nested_multiparts(mime_parts.MAX_DEPTH - 1)).attachment_names == \
        ["deep.txt"]
    assert summarize(nested_multiparts(mime_parts.MAX_DEPTH)).attachment_names == []


# --- properties ------------------------------------------------------------------------------

def assert_well_formed(summary):
    assert isinstance(summary, MessageSummary)
    assert summary.message_id is None or isinstance(summary.message_id, str)
    assert summary.sent_date is None or isinstance(summary.sent_date, float)
    for values in (summary.from_addrs, summary.to, summary.cc, summary.bcc,
                   summary.attachment_names):
        assert all(isinstance(value, str) and value for value in values)
    assert isinstance(summary.subject, str)
    assert summary.has_attachment or not summary.attachment_names


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4000))
def test_summarize_never_raises_on_arbitrary_bytes(raw):
    assert_well_formed(summarize(raw))


HEADER_NAMES = st.sampled_from(["From", "To", "Cc", "Bcc", "Subject", "Date", "Message-ID",
                                "Content-Type", "Content-Disposition",
                                "Content-Transfer-Encoding", "X-Other"])
CONTENT_TYPES = st.sampled_from([
    b"text/plain", b"text/html", b"application/pdf", b"message/rfc822", b"multipart/mixed",
    b"multipart/alternative", b"image/png", b"text/", b"", b"application/octet-stream"])
PARAMETERS = st.sampled_from([
    b"", b"; charset=utf-8", b"; charset=x-bogus", b"; charset=\"utf-16\"", b"; name=a.pdf",
    b"; name*=utf-8''%C3%A9.txt", b"; boundary=", b"; charset*=''", b"; name==?utf-8?q?x?="])
ENCODINGS = st.sampled_from([b"", b"base64", b"quoted-printable", b"x-uuencode", b"8bit", b"?"])
HEADER_BYTES = st.one_of(
    st.binary(max_size=60),
    st.text(max_size=40).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"=?utf-8?q?=C3=A9?=", b"=?bogus?b?////?=", b"<a@b>", b'"x" <Y@Z>',
                     b"a@b, (c) d@e", b"Mon, 1 Jan 2001 00:00:00 +0000"]))


@st.composite
def parts(draw, depth=0):
    """One MIME entity (headers and body) with random, often inconsistent, structure."""
    boundary = b"bound%d" % depth
    content_type = draw(CONTENT_TYPES)
    headers = [b"Content-Type: " + content_type + draw(PARAMETERS) + b"; boundary=" + boundary,
               b"Content-Transfer-Encoding: " + draw(ENCODINGS)]
    if draw(st.booleans()):
        headers.append(b"Content-Disposition: attachment; filename=" + draw(HEADER_BYTES))
    headers += [draw(HEADER_NAMES).encode() + b": " + draw(HEADER_BYTES)
                for _ in range(draw(st.integers(0, 3)))]
    if content_type.startswith(b"multipart") and depth < 3:
        children = draw(st.lists(parts(depth + 1), max_size=3))
        body = b"".join(b"--" + boundary + b"\n" + child + b"\n" for child in children)
        body += draw(st.sampled_from([b"--" + boundary + b"--\n", b""]))
    elif content_type == b"message/rfc822" and depth < 3:
        body = draw(parts(depth + 1))
    else:
        body = draw(st.binary(max_size=200))
    return b"\n".join(headers) + b"\n\n" + body


@st.composite
def messages(draw):
    top = [draw(HEADER_NAMES).encode() + b": " + draw(HEADER_BYTES)
           for _ in range(draw(st.integers(0, 6)))]
    raw = b"\n".join([*top, draw(parts())])
    return raw.replace(b"\n", b"\r\n") if draw(st.booleans()) else raw


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_summarize_never_raises_on_generated_messages(raw):
    assert_well_formed(summarize(raw))


HEADER_VALUES = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["=?utf-8?q?J=C3=B6rg?= <j@x.de>", "a@x.org, b@y.org", "<id@host>",
                     "undisclosed-recipients:;", '"Last, First" <f@x.org> (comment)',
                     "=?iso-8859-1?b?/w==?=", "Grüße <g@x.de>", "@@@", ""]))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["From", "Subject", "Message-ID", "To", "Sender"]),
                          HEADER_VALUES), max_size=6))
def test_the_origin_is_read_as_the_whole_summary_reads_it(fields):
    raw = "".join(f"{name}: {value}\n" for name, value in fields).encode("utf-8",
                                                                           "surrogateescape")
    message = parse_headers(raw + b"\nbody\n")
    whole = summarize_message(message)
    assert summarize_origin(message) == (whole.message_id, whole.from_addrs, whole.subject)


@given(st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"x", b"\n\n", b"\r\n\r\n"]),
                max_size=14))
def test_header_end_is_after_the_first_empty_line_whatever_the_line_endings(pieces):
    """Against the definition (the earliest of LF LF and CR LF CR LF, or the whole message),
    on variants of CR, LF and text: a CR LF message's body is never searched for LF LF."""
    raw = b"".join(pieces)
    ends = [raw.find(blank) + len(blank) for blank in (b"\n\n", b"\r\n\r\n") if blank in raw]
    assert header_end(raw) == (min(ends) if ends else len(raw))


@pytest.mark.parametrize("space", [" ", "\t", "  ", " \t"])
@pytest.mark.parametrize("field", ["Cc", "To", "Subject", "From", "Date", "Message-ID"])
@pytest.mark.parametrize("ending", ["\r\n", "\n"])
def test_white_space_before_a_fields_colon_is_rfc_5322s_obsolete_syntax(space, field, ending):
    """RFC 5322 4.5.3: "CC : alice@..." is a header field. The stdlib parser took it for the
    end of the header block: the fields after it were lost (a Cc that grants access, the
    subject, the date) and went into the body."""
    from services.archive.metadata import header_metadata
    from services.archive.mime import parse_headers, parse_message, summarize_message
    values = {"From": "carol@example.com", "To": "dave@example.com",
              "Cc": "alice@example.com", "Subject": "NEST8 plans",
              "Date": "Tue, 05 Mar 2024 10:00:00 +0000", "Message-ID": "<n8@example.com>"}
    lines = [f"{name}{space if name == field else ''}: {value}" for name, value in values.items()]
    raw = (ending.join(lines) + ending + ending + f"body line{ending}Note : kept{ending}").encode()
    summary = summarize_message(parse_message(raw))
    assert (summary.from_addrs, summary.to, summary.cc, summary.subject) == (
        ["carol@example.com"], ["dave@example.com"], ["alice@example.com"], "NEST8 plans")
    assert summary.sent_date == calendar.timegm((2024, 3, 5, 10, 0, 0))
    assert parse_headers(raw)["cc"] == "alice@example.com"
    assert header_metadata(raw, None, 0.0)["message_id"] == "n8@example.com"
    assert parse_message(raw).get_payload().endswith(f"Note : kept{ending}")  # body as it was


def _with_obsolete_part_fields(space: str, field: str, ending: str, nested: bool,
                               quoted: bool) -> bytes:
    """A message whose attachment (a base64 text file, notes.txt) has `field` written with
    `space` before its colon, in a multipart/mixed (inside a multipart/alternative when
    `nested`), its boundary declared `quoted` or not."""
    def name(header: str) -> str:
        return f"{header}{space}" if header == field else header
    outer, inner = "=_outer", "inner.7"
    declared = (lambda b: f'"{b}"') if quoted else (lambda b: b)
    attachment = [f"--{inner if nested else outer}",
                  f"{name('Content-Type')}: text/plain; charset=utf-8",
                  f'{name("Content-Disposition")}: attachment; filename="notes.txt"',
                  f"{name('Content-Transfer-Encoding')}: base64", "",
                  "emVicmFmaXNoIG1pZ3JhdGlvbg=="]  # "zebrafish migration"
    body = ["--" + (inner if nested else outer), "Content-Type: text/plain", "",
            "The body. Note : this line is text, not a field."]
    if nested:
        body = [f"--{outer}", f"Content-Type: multipart/related; boundary={declared(inner)}",
                "", *body, *attachment, f"--{inner}--"]
    else:
        body += attachment
    lines = ["From: carol@example.com", "To: dave@example.com", "Subject: parts",
             "MIME-Version: 1.0", f"Content-Type: multipart/mixed; boundary={declared(outer)}",
             "", *body, f"--{outer}--", ""]
    return ending.join(lines).encode()


@pytest.mark.parametrize("space", [" ", "\t", "  "])
@pytest.mark.parametrize("field", ["Content-Type", "Content-Disposition",
                                   "Content-Transfer-Encoding"])
@pytest.mark.parametrize("ending", ["\r\n", "\n"])
@pytest.mark.parametrize("nested, quoted", [(False, True), (True, False), (True, True)])
def test_white_space_before_a_colon_in_a_mime_parts_fields_is_read(space, field, ending,
                                                                    nested, quoted):
    """RFC 5322 4.5.3's obsolete syntax in a MIME part's header block: the stdlib parser
    ended the part's header at "Content-Type : ...", so the attachment was read as text of
    a part without a name or type (no filename:, its base64 indexed as words)."""
    from services.archive.extract import extract
    raw = _with_obsolete_part_fields(space, field, ending, nested, quoted)
    found = extract(raw, 1 << 20)
    assert [(a.filename, a.text.strip()) for a in found.attachments] == [
        ("notes.txt", "zebrafish migration")]
    assert "Note : this line is text" in found.body  # bodies are left as they are
