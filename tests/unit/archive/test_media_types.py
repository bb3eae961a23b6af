"""services.archive.media_types: the `type/subtype` of a Content-Type value, RFC 2045 5.1
read as an RFC 822 structured field, its names RFC 6838 4.2's, else text/plain (5.2)."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.archive import media_types
from tests.unit.archive.content_type_shapes import CLEAN_TYPE


@given(st.text(max_size=300) | st.binary(max_size=300).map(
    lambda data: data.decode("ascii", "surrogateescape")))
def test_any_value_gives_a_clean_type(value):
    assert CLEAN_TYPE.fullmatch(media_types.media_type(value))


NAME = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,20}", fullmatch=True)
BLANKS = st.sampled_from(["", " ", "\t", "\r\n ", "\n\t", " (a comment) ", "(x (y))"])


@given(NAME, NAME, BLANKS, BLANKS, BLANKS, BLANKS, st.sampled_from(["", "; charset=x", ";"]))
def test_folds_blanks_and_comments_around_the_tokens_are_no_part_of_the_type(
        main, sub, before, after_main, before_sub, after, parameters):
    """RFC 2045 5.1 read as an RFC 822 structured field (3.1.4): `type "/" subtype`,
    lower-cased, whatever stands between the tokens."""
    value = before + main + after_main + "/" + before_sub + sub + after + parameters
    assert media_types.media_type(value) == f"{main}/{sub}".lower()


@pytest.mark.parametrize("value, expected", [
    ("x" * 127 + "/" + "y" * 127, "x" * 127 + "/" + "y" * 127),
    ("x" * 128 + "/y", "text/plain"),
    ("x/" + "y" * 128, "text/plain"),
    ("Text/HTML; charset=utf-8", "text/html"),
    ("multipart/mixed (a;b); boundary=x", "text/plain"),  # its parameters start at the ';'
    ("text/plain" + "(" * 5 + ")" * 5, "text/plain"),
    ("message/rfc822" + "(" * 5 + ")" * 5, "text/plain"),  # nested past _COMMENT_DEPTH
    ("message/rfc822 (a (b (c)))", "message/rfc822"),
])
def test_names_of_127_characters_at_most_and_comments_nested_a_little(value, expected):
    """RFC 6838 4.2 limits each name to 127 characters; comments nest (RFC 822 3.4.3), but
    no mailer nests them: a few levels are read, more make the field invalid."""
    assert media_types.media_type(value) == expected
