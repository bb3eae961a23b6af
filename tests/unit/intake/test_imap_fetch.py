"""imap_fetch.body_of: only exactly BODY[] of the UID asked for is taken (RFC 3501)."""
import pytest

from services.intake.imap_fetch import Refused, body_of

BODY = b"Subject: x\r\n\r\nbody (with parens) and \"quotes\"\r\n"


def literal(head: bytes, body: bytes = BODY) -> tuple:
    return head + b" {%d}" % len(body), body


GOOD = {
    "plain": [literal(b"1 (UID 7 BODY[]"), b")"],
    "size and uid first": [literal(b"1 (UID 7 RFC822.SIZE %d BODY[]" % len(BODY)), b")"],
    "attributes after the literal": [literal(b"1 (BODY[]"), b' FLAGS (\\Seen "a)") UID 7)'],
    "lower case": [literal(b"1 (uid 7 body[]"), b")"],
    "a quoted body": [b'1 (UID 7 BODY[] "a \\"b\\" c")'],
    "with a flags update for another message": [b"2 (FLAGS (\\Seen))",
                                                literal(b"1 (UID 7 BODY[]"), b")"],
}

BAD = {
    "another uid": [literal(b"1 (UID 8 BODY[]"), b")"],
    "no uid": [literal(b"1 (BODY[]"), b")"],
    "uid twice": [literal(b"1 (UID 7 UID 8 BODY[]"), b")"],
    "partial": [literal(b"1 (UID 7 BODY[]<0>"), b")"],
    "header section": [literal(b"1 (UID 7 BODY[HEADER]"), b")"],
    "rfc822": [literal(b"1 (UID 7 RFC822"), b")"],
    "text after the literal": [literal(b"1 (UID 7 BODY[]"), b"rest of it)"],
    "no closing parenthesis": [literal(b"1 (UID 7 BODY[]"), b""],
    "ends on a literal": [literal(b"1 (UID 7 BODY[]")],
    "literal shorter than said": [(b"1 (UID 7 BODY[] {999}", BODY), b")"],
    "nil": [b"1 (UID 7 BODY[] NIL)"],
    "two bodies": [literal(b"1 (UID 7 BODY[]"), b")", literal(b"1 (UID 7 BODY[]", b"x"), b")"],
    "a good one and a wrong one": [literal(b"1 (UID 7 BODY[]"), b")",
                                   literal(b"2 (UID 8 BODY[]"), b")"],
    "a NUL": [literal(b"1 (UID 7 BODY[]\0"), b")"],
    "not a number": [literal(b"x (UID 7 BODY[]"), b")"],
}


@pytest.mark.parametrize("shape", GOOD)
def test_well_formed_answers_give_the_body(shape):
    expected = b'a "b" c' if shape == "a quoted body" else BODY
    assert body_of(GOOD[shape], 7) == expected


@pytest.mark.parametrize("shape", BAD)
def test_anything_else_is_refused_with_a_reason(shape):
    with pytest.raises(Refused) as refused:
        body_of(BAD[shape], 7)
    assert str(refused.value)


@pytest.mark.parametrize("data", [[None], [], [b"1 (FLAGS (\\Seen) UID 7)"]])
def test_no_body_at_all_means_gone(data):
    assert body_of(data, 7) is None


def test_an_rfc822_size_off_by_a_few_bytes_is_no_reason_to_refuse():
    """Real servers' RFC822.SIZE is off at times (headers added after it was counted): the
    literal's own length is exact. Refusing such mail left it on the server for good."""
    assert body_of([literal(b"1 (UID 7 RFC822.SIZE %d BODY[]" % (len(BODY) + 2)), b")"], 7) \
        == BODY
