"""services.archive.media_types: the `type/subtype` of a Content-Type value, RFC 2045 5.1
read as an RFC 822 structured field, its names RFC 2045 tokens of 127 characters at most
(RFC 6838 4.2), else text/plain (5.2); read in one pass (review 175 F1)."""
from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.archive import media_types
from tests.unit.archive.content_type_shapes import CLEAN_TYPE, typed_values


@given(st.text(max_size=300) | st.binary(max_size=300).map(
    lambda data: data.decode("ascii", "surrogateescape")))
def test_any_value_gives_a_clean_type(value):
    assert CLEAN_TYPE.fullmatch(media_types.media_type(value))


# RFC 2045 5.1's token: any ASCII character but controls, space and tspecials.
NAME = st.from_regex(r"[A-Za-z0-9!#$%&'*+.^_`{|}~-]{1,20}", fullmatch=True)
BLANKS = st.sampled_from(["", " ", "\t", "\r\n ", "\n\t", " (a comment) ", "(x (y))",
                          "(a \\) b)"])
# What may follow the subtype: parameters, with or without the ';' (review 175 F3).
AFTER = st.sampled_from(["", "; charset=x", ";", ' name="photo.jpg"', "\r\n\tname=a",
                         "(open", "/x", "\x00", "\udce9", '"'])


@given(NAME, NAME, BLANKS, BLANKS, BLANKS, BLANKS, AFTER)
def test_folds_blanks_and_comments_around_the_tokens_are_no_part_of_the_type(
        main, sub, before, after_main, before_sub, after, parameters):
    """RFC 2045 5.1 read as an RFC 822 structured field (3.1.4): `type "/" subtype`,
    lower-cased, whatever stands between the tokens or follows the subtype's."""
    value = before + main + after_main + "/" + before_sub + sub + after + parameters
    assert media_types.media_type(value) == f"{main}/{sub}".lower()


@pytest.mark.parametrize("value, expected", [
    ("x" * 127 + "/" + "y" * 127, "x" * 127 + "/" + "y" * 127),
    ("x" * 128 + "/y", "text/plain"),
    ("x/" + "y" * 128, "text/plain"),
    ("Text/HTML; charset=utf-8", "text/html"),
    ("multipart/mixed (a;b); boundary=x", "multipart/mixed"),  # its parameters at the ';'
    ("(a;b) multipart/mixed; boundary=x", "text/plain"),  # the comment cut at its ';'
    ("message/rfc822 (a (b (c)))", "message/rfc822"),
    ("(a (b (c (d)))) message/rfc822", "message/rfc822"),
    ("(a (b (c (d (e))))) message/rfc822", "text/plain"),  # nested past COMMENT_DEPTH
    ("message/(a (b (c (d (e))))) rfc822", "text/plain"),
    ("message (open/rfc822", "text/plain"),
    ("message/rfc822" + "(" * 5 + ")" * 5, "message/rfc822"),  # after the subtype: no part
])
def test_names_of_127_characters_at_most_and_comments_nested_a_little(value, expected):
    """RFC 6838 4.2 limits each name to 127 characters; comments nest (RFC 822 3.4.3), but
    no mailer nests them: a few levels are read, more make the field invalid."""
    assert media_types.media_type(value) == expected


@pytest.mark.parametrize("value, expected", [
    ('image/jpeg name="photo.jpg"', "image/jpeg"),
    ("Image/JPEG\r\n\tname=photo.jpg", "image/jpeg"),
    ("application/*", "application/*"),
    ("application/x-foo~bar", "application/x-foo~bar"),
    ("x-Type/{'%|}*", "x-type/{'%|}*"),
    ("_x/.y", "_x/.y"),
    ("-x/_y-", "-x/_y-"),
    ("application/x-thing/x", "application/x-thing"),
    ('"image/jpeg"', "image/jpeg"),
    ("=?utf-8?q?image/jpeg?=", "text/plain"),
    ("image /", "application/octet-stream"),
    ("ima\r\n ge/jpeg", "text/plain"),
])
def test_rfc_2045_tokens_and_whatever_follows_the_subtype(value, expected):
    """Review 175 F3: RFC 2045 allows names RFC 6838 does not register (`~ * ' % { } |`, a
    leading `_ - .`), and mailers write "image/jpeg name=..." (no ';'): the JPEG is still
    read as one. A value of no type is text/plain; of a valid type and no subtype, see
    test_a_valid_main_type_of_an_unusable_subtype_and_quoted_values."""
    assert media_types.media_type(value) == expected


PIECES = ["(", ")", "\\(", "\\)", "\\", '"', " ", "\r\n ", "x", "/", "a/b", ";", "\x00", "\udce9"]
STARTS = ["", "text/plain ", "text/", "text", "(", "text/plain (", "(a) text / ", '"',
          '(a) "text/ (', '"text/plain" ']


def hostile_values(size: int, seed: int):
    """Values of some `size` characters: each start followed by one hostile piece over and
    over (the shapes a backtracking reading takes quadratic time on: `( \\( \\( ...`,
    `((((`, `()()()`), and by random pieces."""
    pick = random.Random(seed)
    for start in STARTS:
        for piece in PIECES:
            yield start + piece * (size // len(piece))
        yield start + "".join(pick.choice(PIECES) for _ in range(size // 2))


class RecordedRuns:
    """Stands for a run pattern of media_types._RUNS: records the text of each match, where
    it started and where it ended."""

    def __init__(self, pattern, spans: list):
        self.pattern, self.spans = pattern, spans

    def match(self, text: str, at: int):
        found = self.pattern.match(text, at)
        self.spans.append((text, at, found.end()))
        return found


@pytest.mark.parametrize("size, seed", [(16_384, 1), (16_384, 2), (1 << 20, 3)])
def test_a_value_is_read_in_one_pass(monkeypatch, size, seed):
    """Review 175 F1: each run read starts where the last ended or later (no character is
    read twice) and there are no more runs than characters, so reading a value costs one
    pass over it, however its parentheses, backslashes and quotes stand; a quoted value's
    quoted string's text is read once more, after the value (review 181 F2), in one pass
    too. (The time is the bench's: tests.bench.mime_cuts_bench's content-type-comments
    shape.)"""
    spans = []
    monkeypatch.setattr(media_types, "_RUNS", {
        kind: RecordedRuns(pattern, spans) for kind, pattern in media_types._RUNS.items()})
    for value in hostile_values(size, seed):
        spans.clear()
        assert CLEAN_TYPE.fullmatch(media_types.media_type(value))
        texts = [text for text, _, _ in spans]
        assert sum(one is not other for one, other in zip(texts, texts[1:])) <= 1, value[:40]
        assert all(start >= end for (one, _, end), (other, start, _) in zip(spans, spans[1:])
                   if one is other), value[:40]
        assert len(spans) <= 2 * len(value) + 6, value[:40]


@pytest.mark.parametrize("value, expected", [
    ("()" * 16 + "image/png", "image/png"),
    ("(a) " * 8 + "image (b) (c) / (d)" + " (e)" * 4 + " png", "image/png"),
    ("(((())))" * 4 + "image/png", "image/png"),  # 16 parentheses opened, nested ones too
    ("()" * 17 + "image/png", "text/plain"),
    ("(((())))" * 4 + "() image/png", "text/plain"),
    ("image" + "()" * 17 + "/png", "text/plain"),
    ("image/" + "()" * 17 + "png", "text/plain"),
    ("()" * 8_190 + " multipart/mixed; boundary=q", "text/plain"),
    ("( ) " * 4_096 + "image/png", "text/plain"),
    ("image/png" + "()" * 8_190, "image/png"),  # after the subtype: never read
], ids=lambda value: repr(value)[:40])
def test_a_value_of_more_than_comment_limit_comments_is_invalid(value, expected):
    """Review 181 F1: a value holding more than COMMENT_LIMIT comments before its subtype
    (8,190 sibling "()" in a 16 KB field) is an invalid Content-Type, text/plain (RFC 2045
    5.2); real ones hold one or two."""
    assert media_types.COMMENT_LIMIT == 16
    assert media_types.media_type(value) == expected


@pytest.mark.parametrize("value", [
    "()" * 8_190 + " multipart/mixed", "( ) " * 4_096 + "a/b", "(((())))" * 2_048 + "a/b",
    "a/" + "()" * 8_190 + "b", "a" + "\r\n (x)" * 3_000 + "/b", "(" + "(a)" * 5_000 + ")a/b"],
    ids=lambda value: repr(value)[:40])
def test_reading_a_value_reads_no_more_than_comment_limit_comments(monkeypatch, value):
    """Review 181 F1: reading stops at the comment past COMMENT_LIMIT, so a value of
    thousands of comments costs a few dozen runs (each comment's a run of blanks and of
    its text), not a step a comment (10 ms a 16 KB field, 4 s for 300 parts)."""
    spans = []
    monkeypatch.setattr(media_types, "_RUNS", {
        kind: RecordedRuns(pattern, spans) for kind, pattern in media_types._RUNS.items()})
    assert media_types.media_type(value) == "text/plain"
    assert len(spans) <= 3 * media_types.COMMENT_LIMIT


TYPED_VALUES = typed_values(lambda main: "name=a.dat")


@pytest.mark.parametrize("kind, main, value, expected", TYPED_VALUES,
                         ids=[kind for kind, *_ in TYPED_VALUES])
def test_a_valid_main_type_of_an_unusable_subtype_and_quoted_values(kind, main, value,
                                                                    expected):
    """Review 181 F2: a valid main type whose subtype is missing, empty or no token reads
    as RFC 2046 reads an unrecognised subtype (multipart/mixed, text/plain, else
    application/octet-stream: a PDF typed "application/" is no body text); a value quoted
    whole reads as its quoted string's value; a value of no valid main type is invalid,
    text/plain (RFC 2045 5.2)."""
    assert media_types.media_type(value) == expected
