"""Every From_ line real mbox writers emit splits an mbox, and keeps its date; body lines
that only begin with "From " still never do (a generated corpus).

Each variant is put before each of three messages of an mbox (so it is tested as the line
that makes a file an mbox and as the separator after a blank line), LF and CRLF, read
whole and a few bytes at a time, from memory and from a file on disk. Each message's body
carries the variant line again, but not after a blank line, and "From the moderators: ..."
after one: neither may split it.
"""
import calendar
from pathlib import Path

import pytest

from services.archive import mbox
from services.archive.mailfiles import count_mail, iter_mail
from services.archive.metadata import header_metadata
from tests.unit.archive.test_mbox import entries

ARRIVAL = 1_900_000_000.0  # 2030: never a date under test
AT_11_UTC = calendar.timegm((2024, 3, 5, 11, 0, 0))  # every dated variant says this instant

# (what writes it, the line, the date it carries: epoch seconds UTC, None if it is no real one)
VARIANTS = [
    ("mutt, python mailbox, qmail", b"From alice@example.com Tue Mar  5 11:00:00 2024", AT_11_UTC),
    ("postfix local, procmail", b"From MAILER-DAEMON Tue Mar  5 11:00:00 2024", AT_11_UTC),
    ("thunderbird", b"From - Tue Mar 05 11:00:00 2024", AT_11_UTC),
    ("eudora", b"From ???@??? Tue Mar 05 11:00:00 2024", AT_11_UTC),
    ("gmail takeout", b"From 1792349876543210987@xxx Tue Mar 05 11:00:00 +0000 2024", AT_11_UTC),
    ("pipermail", b"From alice at example.com  Tue Mar  5 11:00:00 2024", AT_11_UTC),
    ("two blanks after the sender", b"From alice@example.com  Tue Mar  5 11:00:00 2024",
     AT_11_UTC),
    ("blanks and tabs", b"From alice@example.com\tTue  Mar  5  11:00:00 \t2024", AT_11_UTC),
    ("no sender", b"From  Tue Mar  5 11:00:00 2024", AT_11_UTC),  # "From %s %s" of ""
    ("quoted sender with a blank", b'From "john smith"@example.org Tue Mar  5 11:00:00 2024',
     AT_11_UTC),
    ("offset before the year", b"From a@example.com Tue Mar  5 12:00:00 +0100 2024", AT_11_UTC),
    ("offset after the year", b"From a@example.com Tue Mar  5 06:00:00 2024 -0500", AT_11_UTC),
    ("offset with a colon", b"From a@example.com Tue Mar  5 12:00:00 2024 +01:00", AT_11_UTC),
    ("zone name before the year", b"From a@example.com Tue Mar  5 11:00:00 CET 2024", AT_11_UTC),
    ("zone name after the year", b"From bob@example.org Tue Mar  5 11:00:00 2024 CET", AT_11_UTC),
    ("RFC 5322 zone name", b"From a@example.com Tue Mar  5 06:00:00 EST 2024", AT_11_UTC),
    ("UTC after the year", b"From a@example.com Tue Mar  5 11:00:00 2024 UTC", AT_11_UTC),
    ("RFC 5322 date", b"From bob@example.org Tue, 05 Mar 2024 11:00:00 +0000", AT_11_UTC),
    ("RFC 5322 date, no day name", b"From bob@example.org 5 Mar 2024 12:00:00 +0100", AT_11_UTC),
    ("RFC 5322 date, zone comment", b"From bob@example.org Tue, 5 Mar 2024 11:00:00 +0000 (UTC)",
     AT_11_UTC),
    ("RFC 5322 date, zone name", b"From bob@example.org Tue, 05 Mar 2024 11:00:00 GMT",
     AT_11_UTC),
    ("fractional seconds", b"From eve@example.org Tue Mar  5 11:00:00.123 2024", AT_11_UTC),
    ("lowercase names", b"From gina@example.org tue mar  5 11:00:00 2024", AT_11_UTC),
    ("uppercase names", b"From gina@example.org TUE MAR  5 11:00:00 2024", AT_11_UTC),
    ("no seconds", b"From dave Tue Mar  5 11:00 2024", AT_11_UTC),
    ("no seconds, offset", b"From dave Tue Mar  5 12:00 +0100 2024", AT_11_UTC),
    ("two-digit year", b"From old@example.com Tue Mar  5 11:00:00 24", AT_11_UTC),
    ("two-digit year, last century", b"From old@example.com Tue Mar  5 11:00:00 96",
     calendar.timegm((1996, 3, 5, 11, 0, 0))),
    ("remote from", b"From uucp!alice Tue Mar  5 11:00:00 2024 remote from gateway", AT_11_UTC),
    ("trailing blanks", b"From alice@example.com Tue Mar  5 11:00:00 2024  ", AT_11_UTC),
    ("no such day", b"From alice@example.com Fri Feb 30 11:00:00 2024", None),
    ("a zero clock", b"From alice@example.com Thu Jan  1 00:00:00 1970", None),
]

# Lines that begin with "From " and are no From_ line: after a blank line, in a message of
# an mbox whose writer did not quote them (mboxo), they stay in that message.
NOT_FROM_LINES = [
    b"From the moderators: please keep quoting short.",
    b"From here on, everything changes",
    b"From alice@example.com",
    b"From alice at example.com",
    b"From alice@example.com Tue Mar  5 2024",             # no time
    b"From alice@example.com Tue Mar  5 11:00:00",         # no year
    b"From alice@example.com Tue Mar  5 11:00:00 2024 and some words",
    b"From alice@example.com Tue Mar  5 11:00:00 2024 and",  # a word is no zone name
    b"From Tue Mar  5 11:00:00 2024 to Wed Mar  6",
    b"From Mar  5 11:00:00 2024 on, the office moves",
    b"From 5 Mar 2024 on, the office moves",
    b"From the desk of John Smith, Tue Mar  5 11:00:00 2024",
    b"From john smith Tue Mar  5 11:00:00 2024",           # blanks in an unquoted sender
    b"From alice@example.com Tue Mar 35 11:00:00 2024 x",
    b"From: Alice <alice@example.com>",
    b"From",
    # Prose with an RFC 5322-like date: no sender, or a word that is no address.
    b"From 9 Mar 2024 22:00 UTC",
    b"From 1 Apr 2024 9:00 AM",                            # AM is no zone
    b"From 1 Apr 2024 9:00 pm",
    b"From 5 May 24 10:00",
    b"From Monday 5 May 2024 10:00",                       # a day is no sender
    b"From Friday, 5 Mar 2024 10:00 CET",
    b"From noon 9 Jun 2024 08:00",
    b"From 1 Apr 2024 9:00 (Paris time)",
    b"From Tue, 5 Mar 2024 10:00",
    b"From Tue, 5 Mar 2024 10:00 +0100",
    b"From  5 Mar 2024 10:00 +0000",                       # no sender, two blanks
    b"From tomorrow 6 Mar 2024 08:30 PST",
    b"From Paris 9 Jun 2024 08:00 CEST",
    b"From Bob 5 Mar 2024 10:00 +0100",
    b"From bob at work 5 Mar 2024 10:00 GMT",              # "at" but no domain
    b"From bob at work Tue Mar  5 11:00:00 2024",
    b"From alice@example.com 5 Mar 2024 10:00 AM",          # an address, but AM
    b"From alice@example.com 5 Mar 2024 10:00 and on",
    b"From alice@example.com 5 Mar 2024 10:00 NOON",
    # Schedules and quoted replies.
    b"From 2024-03-05 10:00 Alice wrote:",
    b"From 2024-03-05 10:00",
    b"From 05.03.2024 10:00 to 12:00",
    b"From 10:00 5 Mar 2024",
    b"From 5 Mar 2024 10:00 to 6 Mar 2024 12:00",
    b"From Mon 9:00 to Fri 17:00",
    # No writer writes these: a tab after "From" (every writer writes a space), and no
    # sender with one blank (an empty sender gives two, "From  Tue ...").
    b"From\talice@example.com Tue Mar  5 11:00:00 2024",
    b"From\tTue Mar  5 11:00:00 2024",
    b"From Tue Mar  5 11:00:00 2024",
]

# What may come before the first From_ line of a file.
PRELUDES = {"none": b"", "bom": b"\xef\xbb\xbf", "blank line": b"\n", "crlf blank line": b"\r\n",
            "blank lines": b"\n \n\t\n", "bom and blank line": b"\xef\xbb\xbf\n"}


def ids(variants):
    return [name for name, *_ in variants]


def message(number: int, line: bytes, newline: bytes, dated: bool = True) -> bytes:
    headers = [b"From: Alice <alice@example.com>", b"To: bob@example.org",
               b"Subject: variant %d" % number]
    if dated:
        headers.append(b"Date: Mon, 04 Mar 2024 09:00:00 +0000")
    body = [b"Word%d here." % number, line, b"",  # the From_ line, not after a blank line
            b"From the moderators: please keep quoting short.", b"", b"Regards."]
    return newline.join(headers + [b""] + body + [b""])


def an_mbox(line: bytes, newline: bytes, prelude: bytes = b"", dated: bool = True,
            final_blank_line: bool = True) -> tuple[bytes, list[bytes]]:
    raws = [message(number, line, newline, dated) for number in (1, 2, 3)]
    data = newline.join(line + newline + raw for raw in raws)
    return prelude + data + (newline if final_blank_line else b""), raws


def read(data: bytes, chunk: int | None = None) -> list[mbox.Entry]:
    return entries(data, chunk=chunk)  # with spilling too, when read in chunks


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("name, line, date", VARIANTS, ids=ids(VARIANTS))
def test_every_writers_from_line_splits_an_mbox_and_keeps_its_date(name, line, date, newline):
    assert mbox.parse_from_line(line + newline) is not None, name
    assert mbox.parse_from_line(line + newline).date == date
    for final_blank_line in (True, False):
        data, raws = an_mbox(line, newline, final_blank_line=final_blank_line)
        assert mbox.starts_with_from_line(data[:mbox.SNIFF_BYTES])
        for chunk in (None, 7, 64):
            found = read(data, chunk)
            assert [entry.raw for entry in found] == raws
            assert [entry.from_line.date for entry in found] == [date] * 3


@pytest.mark.parametrize("prelude", PRELUDES.values(), ids=PRELUDES.keys())
@pytest.mark.parametrize("name, line, date", VARIANTS, ids=ids(VARIANTS))
def test_an_mbox_file_of_every_variant_imports_three_messages(tmp_path, name, line, date,
                                                             prelude):
    data, raws = an_mbox(line, b"\n", prelude)
    path = tmp_path / "archive.txt"  # told by its content, not its name
    path.write_bytes(data)
    items = list(iter_mail([path]))
    assert [(item.label, item.raw, item.from_line_date, item.error) for item in items] == [
        (f"{path}#{number}", raw, date, None) for number, raw in enumerate(raws, 1)]
    assert count_mail([path]) == 3


@pytest.mark.parametrize("name, line, date", VARIANTS, ids=ids(VARIANTS))
def test_without_a_date_header_the_from_line_date_is_the_messages_date(tmp_path, name, line,
                                                                      date):
    data, raws = an_mbox(line, b"\n", dated=False)
    path = tmp_path / "undated.mbox"
    path.write_bytes(data)
    for item in iter_mail([path]):
        meta = header_metadata(item.raw, item.from_line_date, ARRIVAL)
        assert (meta["sent_date"], meta["date_source"]) == (
            (date, "mbox-from-line") if date is not None else (ARRIVAL, "arrival"))


@pytest.mark.parametrize("prelude", PRELUDES.values(), ids=PRELUDES.keys())
@pytest.mark.parametrize("name, line, date", VARIANTS[:6], ids=ids(VARIANTS[:6]))
def test_a_single_message_file_drops_its_from_line_of_any_variant(tmp_path, name, line, date,
                                                                 prelude):
    raw = message(1, line, b"\n")
    path = tmp_path / "saved.eml"
    path.write_bytes(prelude + line + b"\n" + raw)
    assert [(item.raw, item.from_line_date, item.error) for item in iter_mail([path])] == [
        (raw, date, None)]


@pytest.mark.parametrize("text", NOT_FROM_LINES, ids=lambda text: text[:40].decode())
@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["lf", "crlf"])
def test_a_body_line_that_only_begins_with_from_never_splits(text, newline):
    assert mbox.parse_from_line(text + newline) is None
    first = message(1, b"text", newline).replace(b"Regards.", b"Regards." + newline + text)
    second = newline.join([b"Intro.", b"", text, b"", text, b"More.", b""])
    raws = [first, message(2, b"text", newline).replace(b"Regards." + newline,
                                                        b"Regards." + newline + second)]
    for line, *_ in (VARIANTS[0][1:], VARIANTS[5][1:], VARIANTS[18][1:]):
        data = b"".join(line + newline + raw + newline for raw in raws)
        for chunk in (None, 5, 64):
            assert [entry.raw for entry in read(data, chunk)] == raws


@pytest.mark.parametrize("text", [text for text in NOT_FROM_LINES if b":" not in text[:5]],
                         ids=lambda text: text[:40].decode())  # "From:" makes mail
@pytest.mark.parametrize("prelude", PRELUDES.values(), ids=PRELUDES.keys())
def test_a_file_that_begins_with_such_a_line_is_no_mbox(tmp_path, text, prelude):
    path = tmp_path / "notes.txt"
    path.write_bytes(prelude + text + b"\n\nSome notes.\n")
    (item,) = iter_mail([path])
    assert item.raw is None and item.error.startswith("not mail")
    assert count_mail([path]) == 1


def test_a_from_line_with_an_impossible_date_is_one_without_a_date():
    assert mbox.parse_from_line(b"From a@example.com Mon Jan 99 99:99 2024\n") == \
        mbox.FromLine("a@example.com", None)
    assert mbox.parse_from_line(b"From  Mon Jan 99 99:99 2024") == mbox.FromLine("", None)


def test_a_file_of_from_lines_with_a_tab_is_no_mbox_and_never_split(tmp_path):
    line = b"From\talice@example.com Tue Mar  5 11:00:00 2024"
    raws = [message(number, b"text", b"\n") for number in (1, 2)]
    data = b"\n".join(line + b"\n" + raw for raw in raws)
    assert not mbox.starts_with_from_line(data[:mbox.SNIFF_BYTES])
    good = VARIANTS[0][1] + b"\n"
    assert [entry.raw for entry in read(good + data)] == [data]
    path = tmp_path / "tabs.mbox"
    path.write_bytes(data)
    (item,) = iter_mail([path])
    assert item.raw is None and item.error.startswith("not mail")


def _unbounded_repeats(parsed):
    """The quantifiers in a parsed pattern that may backtrack over any number of bytes:
    greedy or lazy ones without an upper bound (possessive ones never give back)."""
    from re import _constants as constants, _parser as parser  # Python 3.11+
    found = []
    for op, argument in parsed:
        if op in (constants.MAX_REPEAT, constants.MIN_REPEAT):
            low, high, item = argument
            if high == constants.MAXREPEAT:
                found.append((op, low))
            found += _unbounded_repeats(item)
        elif op in (constants.POSSESSIVE_REPEAT,):
            found += _unbounded_repeats(argument[2])
        elif op in (constants.SUBPATTERN,):
            found += _unbounded_repeats(argument[-1])
        elif op in (constants.ATOMIC_GROUP,):
            found += _unbounded_repeats(argument)
        elif op == constants.BRANCH:
            for branch in argument[1]:
                found += _unbounded_repeats(branch)
        elif isinstance(argument, parser.SubPattern):
            found += _unbounded_repeats(argument)
    return found


@pytest.mark.parametrize("pattern", mbox.FROM_LINES, ids=["asctime", "rfc5322"])
def test_from_line_patterns_cannot_backtrack_over_a_long_line(pattern):
    # A separator candidate is matched for every "From " after a blank line of an untrusted
    # mbox. With no greedy unbounded quantifier, the few optional parts and alternatives
    # each scan a line at most once: linear time, whatever the line (no wall clock here).
    from re import _parser as parser
    assert _unbounded_repeats(parser.parse(pattern.pattern)) == []
    for line in (b"From " + b" " * 995, b"From x Mon" + b" " * 985,
                 b"From x 1 Jan 2024 1:00" + b" " * 975 + b"!",
                 b"From x Tue Mar  5 11:00:00 2024" + b" " * 960 + b"!"):
        assert mbox.parse_from_line(line) is None
