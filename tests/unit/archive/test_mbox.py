"""mbox: which lines are From_ separators, and splitting only at them."""
import email.parser
import email.policy
import email.utils
import io
import random
import re
import time
import tracemalloc

import pytest

from services.archive import mbox
from services.archive.mbox import count_entries, parse_from_line, read_entries

MiB = 1024 * 1024


def message(subject: str, body: str = "Hello.\n", newline: str = "\n") -> bytes:
    lines = ["From: Alice <alice@example.com>", "To: bob@example.org", f"Subject: {subject}",
             "Date: Tue, 05 Mar 2024 14:07:09 +0100", ""]
    return (newline.join(lines) + newline + body.replace("\n", newline)).encode()


def entries(data: bytes, max_bytes: int = 10 * MiB, chunk: int | None = None):
    """read_entries of `data`, read `chunk` bytes at a time if given; then also with every
    block of more than two chunks spilled out of the buffer as it is read: the same."""
    found = entries_read(data, max_bytes, chunk, mbox.SPILL_BYTES)
    if chunk:
        assert entries_read(data, max_bytes, chunk, 2 * chunk) == found
    return found


def entries_read(data: bytes, max_bytes: int, chunk: int | None, spill: int):
    original = mbox.READ_CHUNK, mbox.SPILL_BYTES
    mbox.READ_CHUNK, mbox.SPILL_BYTES = chunk or original[0], spill
    try:
        found = list(read_entries(io.BytesIO(data), max_bytes))
        counted = count_entries(io.BytesIO(data))
    finally:
        mbox.READ_CHUNK, mbox.SPILL_BYTES = original
    assert counted == len(found)  # the progress bar's count is the reader's
    return found


# --- From_ lines --------------------------------------------------------------------------

@pytest.mark.parametrize("line, sender, date", [
    (b"From alice@example.com Tue Mar  5 13:07:09 2024\n", "alice@example.com", 1709644029),
    (b"From MAILER-DAEMON Thu Jan  1 00:00:00 2015\r\n", "MAILER-DAEMON", 1420070400),
    (b"From - Mon Jan 01 00:00:00 2024", "-", 1704067200),                  # Thunderbird
    (b"From a@b.example Tue Mar  5 13:07 2024\n", "a@b.example", 1709644020),  # no seconds
    (b"From a@b.example Tue Mar  5 13:07:09 2024 +0100\n", "a@b.example", 1709640429),
    (b"From a@b.example Tue Mar  5 13:07:09 CET 2024\n", "a@b.example", 1709644029),
    (b"From a@b.example Tue Mar  5 13:07:09 -0500 2024\n", "a@b.example", 1709662029),
    (b"From uucp!a Tue Mar  5 13:07:09 2024 remote from gw\n", "uucp!a", 1709644029),
    (b"From a@b.example Fri Feb 30 13:07:09 2024\n", "a@b.example", None),  # no such day
    (b"From a@b.example Thu Jan  1 00:00:00 1970\n", "a@b.example", None),  # a zero clock
])
def test_from_lines_of_the_writers_in_the_wild_are_separators(line, sender, date):
    assert parse_from_line(line) == mbox.FromLine(sender, date)


@pytest.mark.parametrize("line", [
    b"From the moderators: please keep quoting short.\n",
    b"From here on, everything changes\n",
    b"From alice@example.com\n",                         # no date
    b"From alice@example.com yesterday at noon\n",
    b"From alice@example.com Tue Mar  5 2024\n",         # no time
    b"From alice@example.com Tue Mar  5 13:07:09 2024 and some words\n",
    b"From: Alice <alice@example.com>\n",                # a header field
    b">From alice@example.com Tue Mar  5 13:07:09 2024\n",  # quoted
    b" From alice@example.com Tue Mar  5 13:07:09 2024\n",
    b"From a@b Tue Mar  5 13:07:09 2024" + b" " * 2000 + b"\n",  # longer than any line
], ids=lambda line: line[:40].decode())
def test_other_lines_that_begin_with_from_are_not(line):
    assert parse_from_line(line) is None


def test_a_leading_from_line_is_split_off_a_single_message_and_nothing_else_changes():
    raw = message("x", "From the start\n>From quoted\n\nFrom alice Tue Mar  5 13:07:09 2024\n")
    assert mbox.split_leading_from_line(b"From a@b Mon Jan  1 00:00:00 2024\r\n" + raw) == (
        raw, mbox.FromLine("a@b", 1704067200))
    for not_a_from_line in (raw, b"From nobody\n" + raw, b"From the desk of\n" + raw):
        assert mbox.split_leading_from_line(not_a_from_line) == (not_a_from_line, None)


# --- splitting ----------------------------------------------------------------------------

SEPARATOR = b"From sender@example.com Tue Mar  5 13:07:09 2024\n"

# Body lines starting "From " that no mbox writer made a separator of: each stays in its
# message, wherever it stands (after a blank line too: it has no date).
BODY_FROM_LINES = [
    b"From the moderators: please keep quoting short.",
    b"From here",
    b"From sender@example.com",
    b"From sender@example.com on Tuesday",
    b"From: a header-like line",
    b"From",
]


def body_variants(seed: int, count: int) -> list[bytes]:
    """Bodies mixing text, blank lines and unquoted From lines, LF or CRLF."""
    rng = random.Random(seed)
    bodies = []
    for _ in range(count):
        lines = []
        for _ in range(rng.randint(1, 8)):
            lines += rng.choice([[b"text"], [b""], [rng.choice(BODY_FROM_LINES)],
                                 [b"", rng.choice(BODY_FROM_LINES)],
                                 # a real-looking From_ line, but not after a blank line
                                 [b"text", SEPARATOR.rstrip(b"\n")]])
        newline = rng.choice([b"\n", b"\r\n"])
        bodies.append(newline.join(lines) + newline)
    return bodies


@pytest.mark.parametrize("seed", range(6))
def test_unquoted_from_lines_in_bodies_stay_in_their_message(seed):
    bodies = body_variants(seed, 5)
    raws = [message(f"m{n}").replace(b"Hello.\n", body) for n, body in enumerate(bodies)]
    data = b"".join(SEPARATOR + raw + b"\n" for raw in raws)
    for chunk in (None, 7, 64):
        assert [entry.raw for entry in entries(data, chunk=chunk)] == raws


def test_the_case_of_a_list_digest_is_one_message():
    raw = (b"From: List Robot <robot@lists.example.org>\nSubject: digest\n\nThis week: two.\n\n"
           b"From the moderators: please keep quoting short.\n\nRegards.\n")
    (entry,) = entries(SEPARATOR + raw)
    assert entry.raw == raw and entry.from_line == mbox.FromLine("sender@example.com", 1709644029)


def test_a_separator_after_a_crlf_blank_line_splits():
    first, second = message("a", "x\n", "\r\n"), message("b", "y\n", "\r\n")
    data = SEPARATOR + first + b"\r\n" + SEPARATOR + second
    assert [entry.raw for entry in entries(data)] == [first, second]


def test_unseparated_from_lines_are_numbered_from_the_last_one_found_and_ten_are_enough():
    """Each From_ line followed by a header field with no blank line before it is named by
    its line; the first UNSEPARATED_KEPT only (the warning shows 10 and "..."). Counting
    every one's line from the message's start took 20 s for 40,000 of them, and hours for
    an mbox of 25 MB of them: an import stalled on one message."""
    lines, body, line = [], b"", 5  # after its From_ line, Subject, a blank line, "text"
    for n in range(15):
        gap = b"text\n" * (n % 4)
        body += gap + b"From a Sat Jan  1 00:00:00 2000\nX: y\n"
        lines.append(line + gap.count(b"\n"))
        line = lines[-1] + 2
    (entry,) = entries(SEPARATOR + b"Subject: s\n\ntext\n" + body)
    assert entry.unseparated == tuple(lines[:mbox.UNSEPARATED_KEPT])
    assert mbox.UNSEPARATED_KEPT > 10


@pytest.mark.timeout(60)  # minutes when every line was counted from the start
def test_a_message_of_forty_thousand_unseparated_from_lines_is_read():
    data = SEPARATOR + b"Subject: s\n\ntext\n" + b"From a Sat Jan  1 00:00:00 2000\nX: y\n" * 40_000
    (entry,) = list(read_entries(io.BytesIO(data), 200 * MiB))
    assert entry.unseparated == tuple(range(5, 5 + 2 * mbox.UNSEPARATED_KEPT, 2))


def test_mboxrd_quoting_is_read_back():
    data = SEPARATOR + message("q", ">From quoted\n>>From twice\n") + b"\n"
    assert entries(data)[0].raw == message("q", "From quoted\n>From twice\n")


@pytest.mark.parametrize("chunk", [None, 5, 100])
def test_a_message_over_the_limit_is_not_kept_and_the_others_are(chunk):
    small, large = message("small"), message("large", "x" * 5000 + "\n")
    data = SEPARATOR + small + b"\n" + SEPARATOR + large + b"\n" + SEPARATOR + small
    found = entries(data, max_bytes=3000, chunk=chunk)
    assert [entry.raw for entry in found] == [small, None, small]
    assert found[1].size == len(SEPARATOR + large + b"\n")


def test_export_quoting_round_trips_every_generated_body():
    bodies = body_variants(99, 30)
    raws = [message(f"m{n}").replace(b"Hello.\n", body) for n, body in enumerate(bodies)]
    written = io.BytesIO()
    assert mbox.write_entries([("m", raw) for raw in raws], written) == len(raws)
    assert [entry.raw for entry in entries(written.getvalue(), chunk=11)] == raws


def _from_line_as_the_email_package_reads_it(raw: bytes) -> bytes:
    """What from_line_for gave when it parsed the whole header section with the email
    package: its behaviour, kept, at a fraction of the memory."""
    end = re.search(rb"\n\r?\n", raw)
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(
        raw[:end.start() + 1] if end else raw)
    sender = "MAILER-DAEMON"
    for name in ("Return-Path", "Sender", "From"):
        address = email.utils.parseaddr(str(headers.get(name, "")))[1]
        if address and re.fullmatch(r"[!-~]+", address):
            sender = address
            break
    sent = email.utils.parsedate_to_datetime(str(headers.get("Date")))
    return f"From {sender} {time.asctime(time.gmtime(sent.timestamp()))}\n".encode()


FROM_LINE_HEADERS = [
    b"From: a@example.org\nDate: Tue, 05 Mar 2024 10:00:00 +0000\n",
    b"Return-Path: <bounce@example.org>\nFrom: a@example.org\nDate: Tue, 5 Mar 2024 10:00 +0100\n",
    b"Sender: s@example.org\nFrom: Alice <a@example.org>\nDate: Tue, 05 Mar 2024 10:00:00 -0500\n",
    b"FROM:  \"Alice, A.\"\n  <a@example.org>\nDATE: Tue,\n 05 Mar 2024 10:00:00 +0000\n",
    b"X-From: x@example.org\nFrom: a@example.org\nFrom: b@example.org\nDate: Tue, 05 Mar 2024 "
    b"10:00:00 +0000\nDate: Wed, 06 Mar 2024 10:00:00 +0000\n",
    b"Return-Path: <>\nFrom: two words@example.org\nDate: Tue, 05 Mar 2024 10:00:00 +0000\n",
    b"Subject: " + b"x" * 100_000 + b"\nFrom: late@example.org\nDate: Tue, 05 Mar 2024 "
    b"10:00:00 +0000\n",
    b"From: a@example.org\r\nDate: Tue, 05 Mar 2024 10:00:00 +0000\r\nReturn-Path: r@x.org\r\n",
    b"From: \xc3\xa9l\xc3\xa8ve <e@example.org>\nDate: Tue, 05 Mar 2024 10:00:00 +0000\n",
]


@pytest.mark.parametrize("headers", FROM_LINE_HEADERS)
def test_the_from_line_names_the_sender_and_date_the_email_package_reads(headers):
    raw = headers + (b"\r\n" if b"\r\n" in headers else b"\n") + b"body\n"
    assert mbox.from_line_for(raw) == _from_line_as_the_email_package_reads_it(raw)


def test_a_long_header_field_costs_the_mbox_writer_little_memory():
    field = b"X-Long: " + b"y" * (16 * 1024 * 1024) + b"\n"
    raw = b"From: a@example.org\nDate: Tue, 05 Mar 2024 10:00:00 +0000\n" + field + b"\nbody\n"
    tracemalloc.start()
    try:
        mbox.write_entries([("m", raw)], io.BytesIO())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * len(raw), peak  # the output's copy and one more; was 13 times


def test_a_field_of_many_continuation_lines_costs_the_mbox_writer_little_memory():
    """The From: field's continuation lines are read only up to FROM_FIELD_LIMIT: a pattern
    matching them all kept backtracking state for each (3 MB of them took 300 MB)."""
    def folded(lines: int) -> bytes:
        return (b"Date: Tue, 05 Mar 2024 10:00:00 +0000\nFrom: a@b.example\n"
                + b" x\n" * lines + b"Subject: s\n\nbody\n")
    raw = folded(1_000_000)
    tracemalloc.start()
    try:
        line = mbox.from_line_for(raw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < len(raw), peak
    assert line == mbox.from_line_for(folded(1000))  # both past the limit: the same line
