"""services.intake.journal_report: Exchange envelope-journal reports, built by hand to Microsoft's
documented format ([MS-XJRNL]; "Journal reports in Exchange"), unwrapped byte for byte."""
from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.errors import ArchiverError
from services.intake.journal_report import (JournalReport, NotAJournalReport, is_journal_report,
                                            unwrap)

CRLF, LF = b"\r\n", b"\n"
BOUNDARY = b"_000_JR4f2b_"

# In Microsoft's order: the address after the field name is the one delivered to; after
# "Expanded:" comes the group it was expanded from, after "Forwarded:" the recipient it was
# redirected from. "Recipient:" is used when Exchange could not verify the addressing.
ENVELOPE_LINES = [
    b"Sender: alice@contoso.com",
    b"On-Behalf-Of: ceo@contoso.com",
    b"Subject: Quarterly numbers",
    b"Message-Id: <abc@contoso.com>",
    b"To: bob@contoso.com",
    b"Cc: carol@contoso.com",
    b"Bcc: dave@contoso.com",
    b"To: erin@contoso.com, Expanded: sales@contoso.com",
    b"To: ivan@contoso.com, Expanded: sales@contoso.com",
    b"Cc: grace@fabrikam.com, Forwarded: frank@contoso.com",
    b"Recipient: heidi@contoso.com",
    b"To: Bob@Contoso.com",
]


def original_message(nl: bytes) -> bytes:
    """8-bit bytes, a NUL, lines starting with "--" that are no boundary, no final newline."""
    return nl.join([
        b"From: Alice <alice@contoso.com>",
        b"To: sales@contoso.com",
        b"Subject: Quarterly numbers",
        b"Message-Id: <abc@contoso.com>",
        b"MIME-Version: 1.0",
        b"Content-Type: text/plain; charset=iso-8859-1",
        b"Content-Transfer-Encoding: 8bit",
        b"",
        b"Gr\xfc\xdfe, here are the numbers (\xa3 1.2m).",
        b"--",
        b"-- ",
        b"----- Original Message -----",
        b"--" + BOUNDARY + b"x is not the boundary",
        b"NUL here:\x00.",
        b"--",
        b"Alice",
    ])


def report(original: bytes, nl: bytes = CRLF, *, envelope: bytes | None = None,
           envelope_headers: tuple[bytes, ...] = (b'Content-Type: text/plain; charset="us-ascii"',
                                                  b"Content-Transfer-Encoding: 7bit"),
           original_headers: tuple[bytes, ...] = (b"Content-Type: message/rfc822",),
           journal_header: bytes = b"X-MS-Journal-Report:", close: bool = True) -> bytes:
    """A journal report as Exchange writes one: envelope part, then the original."""
    if envelope is None:
        envelope = nl.join(ENVELOPE_LINES) + nl
    head = [
        b"From: Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@contoso.com>",
        b"To: journal@archive.example",
        b"Subject: Quarterly numbers",
        b"Message-ID: <jr-0001@contoso.com>",
        b"Date: Tue, 1 Jul 2025 10:52:37 +0000",
        b"MIME-Version: 1.0",
        b'Content-Type: multipart/mixed; boundary="' + BOUNDARY + b'"',
        journal_header,
    ]
    delimiter = b"--" + BOUNDARY
    lines = [*head, b"", delimiter, *envelope_headers, b"", envelope,
             delimiter, *original_headers, b"", b""]
    body = nl.join(lines) + original
    return body + nl + delimiter + (b"--" + nl if close else b"")


@pytest.fixture(params=[CRLF, LF], ids=["crlf", "lf"])
def nl(request):
    return request.param


def test_the_header_marks_a_report_whatever_its_case_and_value():
    assert is_journal_report(report(original_message(CRLF)))
    assert is_journal_report(report(original_message(LF), LF,
                                     journal_header=b"x-ms-journal-report: "))


def test_a_message_without_the_header_is_not_a_report():
    plain = original_message(CRLF)
    assert not is_journal_report(plain)
    with pytest.raises(NotAJournalReport, match="X-MS-Journal-Report"):
        unwrap(plain)


def test_the_header_counts_only_at_the_top():
    # A report forwarded as an attachment is an ordinary message that contains one.
    forwarded = b"From: x@y\r\nSubject: Fw: report\r\n\r\n" + report(original_message(CRLF))
    assert not is_journal_report(forwarded)
    assert not is_journal_report(b"X-MS-Journal-Reporting: 1\r\n\r\n")


def test_the_original_comes_out_byte_for_byte(nl):
    original = original_message(nl)
    assert unwrap(report(original, nl)).original == original


def test_an_original_ending_in_a_newline_keeps_it(nl):
    original = original_message(nl) + nl
    assert unwrap(report(original, nl)).original == original


def test_a_multipart_original_keeps_its_own_boundaries(nl):
    original = nl.join([
        b"From: alice@contoso.com",
        b"Subject: deck",
        b'Content-Type: multipart/mixed; boundary="inner"',
        b"",
        b"preamble",
        b"--inner",
        b"Content-Type: text/plain",
        b"",
        b"see attached",
        b"--inner",
        b'Content-Type: message/rfc822',
        b"",
        b'Content-Type: multipart/alternative; boundary="' + BOUNDARY + b'-nested"',
        b"",
        b"--" + BOUNDARY + b"-nested",
        b"",
        b"deepest",
        b"--" + BOUNDARY + b"-nested--",
        b"--inner--",
        b"epilogue",
    ]) + nl
    assert unwrap(report(original, nl)).original == original


def test_the_envelope_fields(nl):
    unwrapped = unwrap(report(original_message(nl), nl))
    assert isinstance(unwrapped, JournalReport)
    assert unwrapped.sender == "alice@contoso.com"
    assert unwrapped.on_behalf_of == "ceo@contoso.com"
    assert unwrapped.message_id == "abc@contoso.com"
    assert unwrapped.to == ["bob@contoso.com", "erin@contoso.com", "ivan@contoso.com"]
    assert unwrapped.cc == ["carol@contoso.com", "grace@fabrikam.com"]
    assert unwrapped.bcc == ["dave@contoso.com"]
    assert unwrapped.expanded == {"sales@contoso.com": ["erin@contoso.com", "ivan@contoso.com"]}
    assert unwrapped.forwarded == {"frank@contoso.com": "grace@fabrikam.com"}
    assert unwrapped.recipients == [
        "bob@contoso.com", "carol@contoso.com", "dave@contoso.com",
        "erin@contoso.com", "sales@contoso.com", "ivan@contoso.com",
        "grace@fabrikam.com", "frank@contoso.com", "heidi@contoso.com",
    ]


def test_a_base64_envelope(nl):
    text = CRLF.join(ENVELOPE_LINES) + CRLF
    encoded = base64.encodebytes(text).replace(b"\n", nl)
    unwrapped = unwrap(report(original_message(nl), nl, envelope=encoded, envelope_headers=(
        b"Content-Type: text/plain; charset=utf-8", b"Content-Transfer-Encoding: base64")))
    assert unwrapped.bcc == ["dave@contoso.com"]
    assert unwrapped.expanded == {"sales@contoso.com": ["erin@contoso.com", "ivan@contoso.com"]}


def test_a_quoted_printable_envelope_with_folded_lines(nl):
    envelope = nl.join([
        b"Sender: j=C3=B6rg@contoso.com",
        b"Message-ID:",
        b" <folded@contoso.com>",
        b"To: a-very-long-member-address@contoso.com,=",
        b" Expanded: all-staff@contoso.com",
        b"Bcc: auditor@fabrikam.com",
    ]) + nl
    unwrapped = unwrap(report(original_message(nl), nl, envelope=envelope, envelope_headers=(
        b"Content-Type: text/plain; charset=utf-8",
        b"Content-Transfer-Encoding: quoted-printable")))
    assert unwrapped.sender == "j\u00f6rg@contoso.com"
    assert unwrapped.message_id == "folded@contoso.com"
    assert unwrapped.to == ["a-very-long-member-address@contoso.com"]
    assert unwrapped.expanded == {
        "all-staff@contoso.com": ["a-very-long-member-address@contoso.com"]}
    assert unwrapped.bcc == ["auditor@fabrikam.com"]


def test_a_transfer_encoded_original_is_decoded(nl):
    original = original_message(nl)
    encoded = base64.encodebytes(original).replace(b"\n", nl).rstrip(nl)
    unwrapped = unwrap(report(encoded, nl, original_headers=(
        b'Content-Type: message/rfc822; name="original message.eml"',
        b'Content-Disposition: attachment; filename="original message.eml"',
        b"Content-Transfer-Encoding: base64")))
    assert unwrapped.original == original


@pytest.mark.parametrize("damage", [
    lambda encoded: encoded[:40] + b"!" + encoded[40:],                 # a letter outside it
    lambda encoded: encoded[:40] + b"==" + encoded[40:],                # padding inside
    lambda encoded: encoded[:-1] if not encoded.endswith(b"=") else encoded[:-3],  # cut
], ids=["junk", "padding inside", "cut quad"])
def test_an_original_whose_base64_is_not_clean_keeps_the_report_as_it_is(nl, damage):
    """A guess at the original would be stored in its place and the report's own bytes
    lost: the report is archived as it is instead (services.intake.gate)."""
    encoded = damage(base64.encodebytes(original_message(nl)).replace(b"\n", nl).rstrip(nl))
    with pytest.raises(NotAJournalReport, match="base64 is not clean"):
        unwrap(report(encoded, nl, original_headers=(
            b"Content-Type: message/rfc822", b"Content-Transfer-Encoding: base64")))


def test_the_null_sender_and_unknown_fields():
    envelope = b"Sender: <>\r\nLabel: x\r\nSentUtc: 2025-07-01\r\nRecipient: <Ops@Contoso.com>\r\n"
    unwrapped = unwrap(report(original_message(CRLF), envelope=envelope))
    assert unwrapped.sender is None and unwrapped.message_id is None
    assert unwrapped.recipients == ["ops@contoso.com"]
    assert unwrapped.to == unwrapped.cc == unwrapped.bcc == []


def test_a_report_without_the_original_is_refused():
    no_original = report(b"just text", original_headers=(b"Content-Type: text/plain",))
    with pytest.raises(NotAJournalReport, match="message/rfc822") as refused:
        unwrap(no_original)
    assert isinstance(refused.value, ArchiverError) and refused.value.reason


def test_a_tnef_original_is_refused_with_the_reason():
    tnef = report(b"eJ8+IgEFAQAAAAA=", original_headers=(
        b'Content-Type: application/ms-tnef; name="winmail.dat"',
        b"Content-Transfer-Encoding: base64"))
    with pytest.raises(NotAJournalReport, match="TNEF"):
        unwrap(tnef)


def test_a_report_cut_off_inside_the_original_is_refused():
    # Otherwise the archive would keep a shortened copy under a digest of its own.
    full = report(original_message(CRLF))
    cut = full[:full.rindex(b"--" + BOUNDARY) - 10]
    with pytest.raises(NotAJournalReport, match="closing boundary"):
        unwrap(cut)


def test_a_missing_close_marker_alone_loses_nothing():
    original = original_message(CRLF)
    assert unwrap(report(original, close=False)).original == original


def test_a_report_that_is_not_multipart_is_refused():
    with pytest.raises(NotAJournalReport, match="multipart"):
        unwrap(b"X-MS-Journal-Report:\r\nContent-Type: text/plain\r\n\r\nSender: a@b\r\n")


@given(st.binary(max_size=2000))
@settings(max_examples=150, deadline=None)
def test_arbitrary_bytes_raise_nothing_else(data):
    assert is_journal_report(data) in (True, False)
    for raw in (data, b"X-MS-Journal-Report:\r\n" + data):
        try:
            unwrap(raw)
        except NotAJournalReport:
            pass


def mutated(raw: bytes, edits) -> bytes:
    for position, removed, inserted in edits:
        at = int(position * len(raw))
        raw = raw[:at] + inserted + raw[at + removed:]
    return raw


EDIT = st.tuples(st.floats(0, 1), st.integers(0, 8),
                 st.sampled_from([b"", b"\r\n", b"\n", b"--", b":", b"\x00", b"\xff", b"=",
                                  b"--" + BOUNDARY, b"--" + BOUNDARY + b"--", b" ", b",",
                                  b"Content-Transfer-Encoding: base64\r\n"]))


@given(st.sampled_from([CRLF, LF]), st.lists(EDIT, min_size=1, max_size=6))
@settings(max_examples=150, deadline=None)
def test_mutated_reports_raise_nothing_else(nl, edits):
    try:
        unwrapped = unwrap(mutated(report(original_message(nl), nl), edits))
    except NotAJournalReport:
        return
    assert isinstance(unwrapped.original, bytes) and unwrapped.original.strip()


@given(st.binary(min_size=1, max_size=500), st.sampled_from([CRLF, LF]))
@settings(max_examples=150, deadline=None)
def test_any_original_comes_back_exactly(original, nl):
    # What the format cannot carry: the delimiter itself, an empty message, and (in an LF
    # report) a final bare CR, which reads as the CR of a CRLF before the delimiter.
    if b"--" + BOUNDARY in original or not original.strip():
        return
    if nl == LF and original.endswith(b"\r"):
        return
    assert unwrap(report(original, nl)).original == original
