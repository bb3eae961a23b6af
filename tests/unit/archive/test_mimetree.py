"""services.archive.mimetree: the stdlib feedparser's Message tree, found by delimiter search.

Every test compares with the feedparser itself (BytesParser with mime.POLICY): the whole
tree (headers as stored, unixfrom, payload strings, preamble, epilogue, default types,
defects) and what extract() reads from it. mimetree may refuse an input (the feedparser then
parses it); it may never build a different tree.
"""
from __future__ import annotations

import random
import re
from email import errors
from email.feedparser import BytesFeedParser
from email.message import Message
from email.parser import BytesParser
from pathlib import Path

import pytest

from services.archive import extract, mime, mime_parts, mimetree
from tests.bench import corpus
from tests.integration.archive import hostile
from tests.unit.archive import mime_variants
from tests.unit.archive.test_mime import MEGABYTE_LINES, TYPICAL, nested_multiparts

CASES = Path(__file__).parents[2] / "data" / "cases"
CAP = 64 * 1024


def tree(message: Message) -> dict:
    """Everything a Message holds, its parts' too, as comparable values."""
    found, fields = {}, dict(vars(message))
    if "_value" in fields or "payload_bytes" in fields:  # a HeldPayload: its payload as read
        fields.pop("payload_bytes", None)
        fields.pop("_value", None)
        fields["_payload"] = message._payload
    for name in ("preamble", "epilogue"):  # a HeldPayload's, as read (held as bytes or not)
        if name + "_bytes" in fields or "_" + name + "_value" in fields:
            fields.pop(name + "_bytes", None)
            fields.pop("_" + name + "_value", None)
            fields[name] = getattr(message, name)
    for name, value in fields.items():
        if name == "_payload" and isinstance(value, list):
            value = [tree(part) if isinstance(part, Message) else repr(part) for part in value]
        elif name == "defects":
            value = [(type(defect).__name__, defect.args) for defect in value]
        elif name == "policy":
            value = type(value).__name__
        found[name] = value
    return found


def feedparser_tree(raw: bytes) -> dict | str:
    """The feedparser's tree of raw, or the name of the exception it raises (a
    RecursionError on deep trees, a UnicodeEncodeError on an 8-bit RFC 2231 boundary)."""
    try:
        return tree(BytesParser(policy=mime.POLICY).parsebytes(raw))
    except Exception as exc:
        return type(exc).__name__


def taken(raw: bytes) -> bool:
    """Whether mimetree built the tree of raw (then it is the feedparser's); False when it
    left raw to the feedparser."""
    message = mimetree.parse(raw, mime.POLICY)
    if message is None:
        return False
    assert tree(message) == feedparser_tree(raw), raw[:300]
    assert tree(mimetree.parse(raw, mime.HELD_POLICY, held=True)) == tree(message), raw[:300]
    return True


@pytest.fixture
def feedparser_only(monkeypatch):
    """Runs `read(raw)` with mimetree refusing everything: the code before mimetree."""
    def run(read, raw):
        with monkeypatch.context() as patch:
            patch.setattr(mimetree, "parse", lambda raw, policy, spans=None, held=False: None)
            return read(raw)
    return run


def assert_same_extraction(raw: bytes, feedparser_only) -> None:
    assert extract.extract(raw, CAP) == feedparser_only(lambda r: extract.extract(r, CAP), raw)


def _bytes(text: str) -> bytes:
    """The bytes the feedparser reads as `text` (ASCII, surrogate escapes)."""
    return text.encode("ascii", "surrogateescape")


def test_delimiter_reads_a_line_as_the_feedparsers_pattern():
    boundaries = ["b", "", "a.b", "(x)+?", "=_Part_1", "x--", "a b", "\udce9", "--"]
    tails = ["", "--", " ", "\t", " \t ", "-- ", "--\t", "x", "--x", "-", "---", "----", " x",
             "-- x", "--  --", "\x0b", "\x0c"]
    ends = ["", "\n", "\r\n", "\r"]
    for boundary in boundaries:
        separator = "--" + boundary
        pattern = re.compile("(?P<sep>" + re.escape(separator) +
                             r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$")
        for head in ("", " ", "-", "x"):
            for tail in tails:
                for end in ends:
                    line = head + separator + tail + end
                    match = pattern.match(line)
                    expected = None if match is None else bool(match.group("end"))
                    assert mimetree.delimiter(_bytes(line), _bytes(separator)) \
                        is expected, repr(line)


@pytest.mark.parametrize("attachments", [True, False], ids=["attachments", "conversations"])
def test_bench_corpus_is_parsed_by_delimiter_search_alone(tmp_path, attachments,
                                                          feedparser_only):
    """The bench corpus (well-formed mail) never needs the feedparser, and extract() reads
    the same text, attachments and failures from every message of it."""
    corpus.generate(tmp_path, 120, seed=20, attachments=attachments)
    files = sorted((tmp_path / "cur").iterdir())
    assert len(files) == 120
    for path in files:
        raw = path.read_bytes()
        assert taken(raw), path.name
        assert_same_extraction(raw, feedparser_only)


def test_reading_cases_have_the_feedparsers_tree_and_extraction(feedparser_only):
    paths = [path for path in sorted(CASES.rglob("*"))
             if path.is_file() and path.suffix in ("", ".eml", ".mbox") and path.stat().st_size]
    assert len(paths) >= 10
    for path in paths:
        raw = path.read_bytes()
        assert taken(raw) or isinstance(feedparser_tree(raw), dict), path
        assert_same_extraction(raw, feedparser_only)


def test_hostile_corpus_has_the_feedparsers_tree():
    outcomes = {case.name: taken(case.raw) for case in hostile.corpus()}
    assert outcomes["deep-multipart"] is False  # 1,000 levels: left to the feedparser
    assert outcomes["deep-rfc822"] is False     # 60 levels: past MAX_DEPTH
    assert sum(outcomes.values()) >= len(outcomes) - 2


@pytest.mark.parametrize("name", MEGABYTE_LINES)
def test_megabyte_header_lines(name):
    # ("parameters" is a multipart without a boundary: a defect, read as the feedparser does)
    assert taken(MEGABYTE_LINES[name] + b"\nFrom: a@x.org\n\nbody\n")


def multipart(body: bytes, boundary: bytes = b"b", headers: bytes = b"") -> bytes:
    return (b"Subject: malformed\nContent-Type: multipart/mixed; boundary=\"" + boundary
            + b"\"\n" + headers + b"\n" + body)


PART = b"Content-Type: text/plain\n\nhello\n"
# Named malformed and unusual inputs: (raw, whether mimetree builds the tree itself).
EXAMPLES = {
    "typical": (TYPICAL, True),
    "missing close delimiter": (multipart(b"--b\n" + PART), True),
    "missing start delimiter": (multipart(PART + b"--b--\n"), True),
    "no boundary parameter": (TYPICAL.replace(b'; boundary="outer"', b""), True),
    "empty boundary": (multipart(b"--\n" + PART + b"----\n", boundary=b""), True),
    "boundary with regex characters": (multipart(b"--a+(b)?\n" + PART + b"--a+(b)?--\n",
                                                  boundary=b"a+(b)?"), True),
    "same boundary nested": (multipart(b"--b\nContent-Type: multipart/mixed; boundary=b\n\n"
                                       b"--b\n" + PART + b"--b--\n--b--\n"), True),
    "outer delimiter inside a nested part": (multipart(
        b"--b\nContent-Type: multipart/mixed; boundary=c\n\n--c\n" + PART
        + b"--b\n" + PART + b"--b--\n"), True),
    "boundary text in the preamble": (multipart(b"see --b below, and --bx\n--b-\n--b\n"
                                                + PART + b"--b--\n"), True),
    "transport padding after delimiters": (multipart(b"--b \t\n" + PART + b"--b--  \n"), True),
    "text after a delimiter": (multipart(b"--b x\n" + PART + b"--b\n" + PART + b"--b--\n"),
                               True),
    "CR line ends": (TYPICAL.replace(b"\n", b"\r"), True),
    "LF line ends": (TYPICAL, True),
    "CRLF line ends": (TYPICAL.replace(b"\n", b"\r\n"), True),
    "mixed line ends": (b"".join(line + (b"\r\n", b"\n", b"\r")[number % 3] for number, line
                                 in enumerate(TYPICAL.split(b"\n"))), True),
    "LF CR line ends": (TYPICAL.replace(b"\n", b"\n\r"), True),  # all body after line 1
    "epilogue text": (multipart(b"--b\n" + PART + b"--b--\nthe epilogue\n--b\n"), True),
    "close delimiter without line end": (multipart(b"--b\n" + PART + b"--b--"), True),
    "empty parts": (multipart(b"--b\n--b\n\n--b\n\n\n--b--\n"), True),
    "part of headers only": (multipart(b"--b\nContent-Type: text/plain\n--b--\n"), True),
    "repeated delimiters": (multipart(b"--b\n--b\n--b--\n" + PART + b"--b--\n"), True),
    "preamble of blank lines": (multipart(b"\n\n--b\n" + PART + b"--b--\n"), True),
    "multipart with base64 encoding": (multipart(b"--b\n" + PART + b"--b--\n",
                                                 headers=b"Content-Transfer-Encoding: base64\n"),
                                       True),
    "digest": (multipart(b"--b\n\nSubject: digested\n\nbody\n--b--\n").replace(
        b"mixed", b"digest"), True),
    "delivery-status": (multipart(b"--b\nContent-Type: message/delivery-status\n\n"
                                  b"Reporting-MTA: dns; x\n\n\nAction: failed\n\n--b--\n"),
                        True),
    "delivery-status with a body": (b"Content-Type: message/delivery-status\n\n"
                                    b"Content-Type: text/plain\nbody\n", True),
    "delivery-status block of a message type": (
        b"Content-Type: message/delivery-status\n\nContent-Type: message/rfc822\nbody\n",
        True),
    "delivery-status block of a multipart type": (multipart(
        b"--b\nContent-Type: message/delivery-status\n\nAction: failed\n\n"
        b"Content-Type: multipart/mixed; boundary=c\n\n--c\nx\n\n--c--\n--b--\n"), True),
    "delivery status in a delivery-status block": (
        b"Content-Type: message/delivery-status\n\nA: 1\n\n"
        b"Content-Type: message/delivery-status\nFrom x\nno field\n\nB: 2\n", True),
    "message/rfc822 without headers": (b"Content-Type: message/rfc822\n\n", True),
    "8-bit header bytes": (multipart(b"--b\nSubject: \xe9t\xe9\n\t\xff\n\n\x80\n--b--\n"), True),
    "mbox From line": (b"From a@x Mon Jan 1 00:00:00 2024\n" + TYPICAL, True),
    "From line ending the header block": (b"Subject: x\nFrom a@x\n\nbody\n", False),
    "no blank line after the headers": (b"Subject: x\nbody line\n", True),
    "continuation line first": (b" folded\nSubject: x\n\nbody\n", True),
    "header without a name": (b":x\nSubject: x\n\nbody\n", True),
    "empty input": (b"", True),
    # (its boundary is no boundary to the parser: a multipart without one)
    "8-bit RFC 2231 boundary": (multipart(b"--\xe9\n" + PART + b"--\xe9--\n").replace(
        b'boundary="b"', b"boundary*=utf-8''\xe9"), True),
    # Malformed mail read as the feedparser reads it (module docstring of mimetree)
    "cut inside a part's header block": (multipart(b"--b\n" + PART + b"--b\nContent-Ty"),
                                         True),
    "cut after a delimiter": (multipart(b"--b\n" + PART + b"--b\n"), True),
    "cut in a nested multipart": (multipart(
        b"--b\nContent-Type: multipart/mixed; boundary=c\n\n--c\n" + PART), True),
    "close delimiter first, text after it": (multipart(PART + b"--b--\nafter\n--b\n" + PART),
                                             True),
    "no start delimiter in a part": (multipart(
        b"--b\nContent-Type: multipart/mixed; boundary=c\n\ntext only\n--b\n" + PART
        + b"--b--\n"), True),
    "no boundary in a part": (multipart(b"--b\nContent-Type: multipart/mixed\n\ntext\n--b\n"
                                        + PART + b"--b--\n"), True),
    "misplaced From line": (b"Subject: x\nFrom a@x\nTo: b@x\n\nbody\n", True),
    "From line last, then a body line": (b"Subject: x\nFrom a@x\nbody\n", True),
    "From line last, then a delimiter": (multipart(b"--b\nSubject: x\nFrom a@x\n--b--\n"),
                                         True),
    "continuation after a nameless field": (b"Subject: x\n:y\n folded\n\nbody\n", True),
    "a forward sent base64": (multipart(b"--b\nContent-Type: message/rfc822\n"
                                        b"Content-Transfer-Encoding: base64\n\n"
                                        b"U3ViamVjdDogeAoKYm9keQo=\n--b--\n"), True),
    "a forward sent quoted-printable": (multipart(
        b"--b\nContent-Type: message/rfc822\nContent-Transfer-Encoding: quoted-printable\n\n"
        b"Subject: x=0D\n=0D\nbody=0D\n--b--\n"), True),
    "a body line in a delivery-status block": (
        b"Content-Type: message/delivery-status\n\nAction: failed\nbody line\n", True),
    "free text between delivery-status blocks": (multipart(
        b"--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; x\n"
        b"the mail system said no\nstill text: not a field\n\n\nthe first line\n"
        b"Action: failed\n\n--b--\n"), True),
    "From line ending a delivery-status block": (multipart(
        b"--b\nContent-Type: message/delivery-status\n\nAction: failed\nFrom the MTA\n\n"
        b"From x\nAction: delayed\nFrom y\n--b--\n"), True),
    "delivery-status text up to a delimiter": (multipart(
        b"--b\nContent-Type: message/delivery-status\n\nAction: failed\nno field\r\n"
        b"more\r--b\n" + PART + b"--b--\n"), True),
    "delivery-status text of bare CRs": (
        b"Content-Type: message/delivery-status\n\nA: 1\rtext\r\rB: 2\r\n\r\nx\ry\r", True),
    "boundary with a line break": (multipart(b"--a\n" + PART, boundary=b"a\r\n b"), False),
    "1,000 levels of nesting": (nested_multiparts(1000), False),
    "40 levels of nesting": (nested_multiparts(40), True),
}


@pytest.mark.parametrize("raw, built", EXAMPLES.values(), ids=EXAMPLES.keys())
def test_named_examples(raw, built, feedparser_only):
    assert taken(raw) is built
    assert tree(mime.parse_message(raw)) == tree(feedparser_only(mime.parse_message, raw))


def test_too_deep_nesting_still_gives_the_headers_and_a_defect():
    """Multiparts are cut at mime_parts.MAX_DEPTH before the parser (PartsNotParsed);
    a chain of message/rfc822 parts still reaches the parser's recursion limit."""
    message = mime.parse_message(nested_multiparts(1000))
    assert mime_parts.PartsNotParsed in [type(defect) for defect in message.defects]
    assert message["subject"] == "deep"
    inner = b"Subject: inner\n\ndeep down\n"
    for _ in range(1000):
        inner = b"Content-Type: message/rfc822\n\n" + inner
    message = mime.parse_message(b"Subject: deep\n" + inner)
    assert mime.NestingTooDeep in [type(defect) for defect in message.defects]
    assert message["subject"] == "deep"


def defects(raw: bytes) -> set[str]:
    parser = BytesFeedParser(policy=mime.POLICY)
    parser.feed(raw)
    return {type(defect).__name__ for part in parser.close().walk() for defect in part.defects}


def test_generated_trees_are_left_to_the_feedparser_only_where_it_finds_defects():
    """Random MIME trees (nested multiparts, rfc822, digests, delivery-status, odd
    boundaries, every kind of line end): each is either built the feedparser's way, or
    has a defect the feedparser records (and then the feedparser builds it)."""
    rng, built = random.Random(2046), 0
    for _ in range(3000):
        raw = mime_variants.random_message(rng)
        if taken(raw):
            built += 1
        else:
            assert defects(raw) - {"InvalidMultipartContentTransferEncodingDefect"}, raw
    assert built > 2950  # (3000: the defects of malformed mail are read too)


def test_mutated_messages_have_the_feedparsers_tree(tmp_path):
    """Messages cut, spliced and changed at random (delimiter variants, boundaries, types,
    line ends, bare CRs, 8-bit bytes): never a different tree."""
    corpus.generate(tmp_path, 30, seed=5)
    seeds = [path.read_bytes() for path in sorted((tmp_path / "cur").iterdir())
             if path.stat().st_size < 100_000]
    seeds += [raw for raw, _ in EXAMPLES.values() if len(raw) < 10_000]
    rng, built = random.Random(5322), 0
    for number in range(6000):
        raw = mime_variants.random_message(rng) if number % 2 else rng.choice(seeds)
        built += taken(mime_variants.mutate(raw, rng))
    assert built > 5850  # (5928; those refused: a "From " line ending a header block, a
    # boundary holding a line break)


def test_mutated_messages_are_extracted_alike(feedparser_only):
    rng = random.Random(2045)
    seeds = [raw for raw, _ in EXAMPLES.values() if len(raw) < 10_000]
    for number in range(300):
        raw = mime_variants.random_message(rng) if number % 2 else rng.choice(seeds)
        assert_same_extraction(mime_variants.mutate(raw, rng), feedparser_only)


@pytest.mark.parametrize("line_end", [b"\r", b"\n\r", b"\r\r\n"], ids=["CR", "LF-CR", "CR-CRLF"])
def test_many_parts_with_bare_carriage_returns_have_the_feedparsers_tree(line_end):
    """Bare CRs end lines too; each line's end is one search (an LF searched for first
    scanned to the end of the text for every line: 8.6 s for 1.1 MB of such parts)."""
    raw = line_end.join([b"Content-Type: multipart/mixed; boundary=b", b""]
                        + [b"--b" + line_end + line_end + b"x"] * 3000 + [b"--b--", b""])
    assert taken(raw)


def loosely(found: dict | str) -> dict | str:
    """A tree() as far as the line end a delimiter owns (RFC 2046 5.1.1) does not change
    it: that line end is no span's, and the feedparser, reading a message in its
    multipart, still keeps it in places (a multipart without its first delimiter keeps it
    in its text, a delivery status reads it as one more empty block) where it drops it in
    others (a last part's payload, an epilogue: None where it was ''). So: strings without
    the line ends they end with, an empty epilogue None, a block without fields none."""
    if isinstance(found, str):
        return found.rstrip("\r\n")
    if not isinstance(found, dict):
        return found
    loose = {name: [loosely(part) for part in value if part.get("_headers") != []
                    or part.get("_payload") not in ("", None)]
             if isinstance(value, list) and name == "_payload" else loosely(value)
             for name, value in found.items()}
    if loose.get("epilogue") == "":
        loose["epilogue"] = None
    return loose


def assert_spans_hold_the_inner_messages(raw: bytes) -> int:
    """Each message/* part's span (mimetree.parse's `spans`) is the text its message was
    read from: the feedparser, given that text alone, builds the message the part holds
    (loosely: as far as the line end a delimiter owns does not change it; but for the
    defect its close() adds to a top-level multipart without parts). How many spans there
    were; 0 for a message mimetree leaves to the feedparser."""
    spans = []
    if mimetree.parse(raw, mime.POLICY, spans) is None:
        return 0
    for part, start, end in spans:
        if part.get_content_type() == "message/delivery-status":  # (its blocks, parsed as
            alone = BytesParser(policy=mime.POLICY).parsebytes(  # such a part's)
                b"Content-Type: message/delivery-status\n\n" + raw[start:end])
            assert [block.items() for block in alone.get_payload() if block.items()] == \
                [block.items() for block in part.get_payload() if block.items()], \
                (raw[:300], start, end)  # (a blank line last is an empty block or none)
            continue
        alone = BytesParser(policy=mime.POLICY).parsebytes(raw[start:end])
        alone.defects = [defect for defect in alone.defects if not isinstance(
            defect, errors.MultipartInvariantViolationDefect)]
        assert loosely(tree(alone)) == loosely(tree(part.get_payload(0))), \
            (raw[:300], start, end)
    assert len(spans) == sum(part.get_content_maintype() == "message"
                             for part, _, _ in spans)
    return len(spans)


def test_spans_of_generated_and_mutated_messages_hold_their_messages():
    """Over the generated trees (rfc822 parts, digests, every line end) and the mutated
    messages (cut, spliced: delimiters missing, parts without blank lines...)."""
    rng, spans = random.Random(822), 0
    seeds = [raw for raw, _ in EXAMPLES.values() if len(raw) < 10_000]
    for number in range(3000):
        raw = mime_variants.random_message(rng) if number % 3 else rng.choice(seeds)
        spans += assert_spans_hold_the_inner_messages(
            mime_variants.mutate(raw, rng) if number % 2 else raw)
    assert spans > 600  # (678)


def test_spans_are_every_message_parts_and_no_other():
    """A message/* part at each depth, a digest's default ones, a delivery status (its
    blocks: the file the views serve); a span ends before the line end that starts a
    delimiter."""
    inner = b"Subject: in\n\nbody\n"
    raw = multipart(b"--b\nContent-Type: message/rfc822\n\n" + inner + b"--b\n"
                    b"Content-Type: multipart/digest; boundary=d\n\n--d\n\n" + inner
                    + b"--d--\n--b\nContent-Type: message/delivery-status\n\n"
                    b"Action: failed\n\n--b--\n")
    spans = []
    mimetree.parse(raw, mime.POLICY, spans)
    assert [raw[start:end] for _, start, end in spans] == [inner[:-1], inner[:-1],
                                                          b"Action: failed\n"]
