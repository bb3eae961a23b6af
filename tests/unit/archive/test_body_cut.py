"""A message's body text is indexed up to the model's text cap (attachment_text_kb), as an
attachment's is, and never past index.BODY_TEXT_LIMIT: a cut body is flagged (Extracted.cut,
the reason has:extraction-failure finds and `archiver show` lists). Before review r18 F1 every
model indexed 4 Mi characters of a body, and 40 messages of 11 MB of text took an import on
the model 450 to 451 MB (the indexer's Xapian buffer for one document alone some 90 MB)."""
import pytest

from services.archive import extract
from services.archive.index import BODY_TEXT_LIMIT, PARTLY_INDEXED

KiB = 1024
FIRST, LAST = "firstword", "lastword"


def plain(body: str, subtype: str = "plain") -> bytes:
    return (f"From: a@example.org\nTo: b@example.org\nSubject: body\n"
            f"Content-Type: text/{subtype}; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
            f"{body}\n").encode()


def filler(size: int, unit: str) -> str:
    """At least `size` bytes of UTF-8 of `unit`s (a few bytes each)."""
    return unit * (size // len(unit.encode()) + 1)


@pytest.mark.parametrize("cap", [256 * KiB, 512 * KiB, 1024 * KiB])
@pytest.mark.parametrize("unit", ["word ", "Grüße ", "漢字の ", "😀 "])
def test_a_body_over_the_cap_is_cut_between_words_and_flagged(cap, unit):
    extracted = extract.extract(plain(FIRST + " " + filler(cap, unit) + LAST), cap)
    indexed = extracted.body.encode("utf-8")
    assert cap - len(unit.encode()) < len(indexed) <= cap
    assert extracted.body.split()[-1] == unit.strip()  # (no word's first letters)
    assert extracted.body.startswith(FIRST) and LAST not in extracted.body
    assert extracted.cut.startswith(
        f"{PARTLY_INDEXED}body text cut at {cap} bytes, the text cap (attachment_text_kb), of ")
    assert extracted.cut in extracted.failures


@pytest.mark.parametrize("unit", ["word ", "Grüße ", "😀 "])
def test_a_body_within_the_cap_is_whole_and_not_flagged(unit):
    cap = 256 * KiB
    body = FIRST + " " + filler(cap - 2 * KiB, unit)[: (cap - 2 * KiB) // 4] + LAST
    extracted = extract.extract(plain(body), cap)
    assert extracted.body.rstrip("\n") == body and extracted.cut is None
    assert extracted.failures == []


def test_an_html_body_is_cut_as_a_plain_one():
    cap = 256 * KiB
    html = f"<p>{FIRST}</p>" + "<p>para</p>" * (cap // 5) + f"<p>{LAST}</p>"
    extracted = extract.extract(plain(html, "html"), cap)
    assert FIRST in extracted.body and LAST not in extracted.body
    assert len(extracted.body.encode()) <= cap and extracted.cut is not None


def test_a_cap_over_the_body_text_limit_cuts_at_the_limit():
    cap = BODY_TEXT_LIMIT + 2048 * KiB  # the 1050's 6 MB
    extracted = extract.extract(plain(FIRST + " " + filler(BODY_TEXT_LIMIT, "word ") + LAST),
                                cap)
    assert len(extracted.body.encode()) <= BODY_TEXT_LIMIT and LAST not in extracted.body
    assert extracted.cut.startswith(
        f"{PARTLY_INDEXED}body text cut at {BODY_TEXT_LIMIT} bytes, the body text limit, of ")


def test_a_cut_inside_a_run_longer_than_a_word_keeps_the_run_up_to_the_cap():
    cap = 256 * KiB
    blob = "QUJD" * (cap // 2)  # base64 without white space: no word a search types
    extracted = extract.extract(plain(FIRST + " " + blob), cap)
    assert len(extracted.body.encode()) == cap and extracted.cut is not None


@pytest.mark.parametrize("whole, cut, kept", [  # cut: where the cap falls (truncate_utf8)
    ("one two three", "one two th", "one two "),
    ("one two three", "one two ", "one two "),
    ("one two three", "one two", "one two"),       # the cut falls on white space
    ("confidential", "conf", ""),                 # one word, cut inside: nothing of it
    ("a " + "x" * 100, "a " + "x" * 70, "a " + "x" * 70),  # a run past WORD_RUN_LIMIT
    ("a " + "x" * 64, "a " + "x" * 63, "a "),     # a run of WORD_RUN_LIMIT: a word
    ("a " + "x" * 65 + " b", "a " + "x" * 20, "a " + "x" * 20),  # longer, past the cut
    ("ab", "ab", "ab"),
])
def test_truncate_on_a_word(whole, cut, kept):
    assert extract.truncate_utf8(whole, len(cut.encode())) == cut
    assert extract.truncate_on_a_word(whole, len(cut.encode())) == kept


def test_an_attachment_cut_at_the_cap_takes_no_part_of_a_word():
    cap = 256 * KiB
    head = "filler " * (cap // 7)
    text = head + "confidential tail"
    assert 0 < cap - len(head) < len("confidential")  # the cap falls inside the word
    raw = (b"From: a@example.org\nSubject: att\nMIME-Version: 1.0\n"
           b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\n"
           b"see attached\n--b\nContent-Type: text/plain; name=notes.txt\n"
           b"Content-Disposition: attachment; filename=notes.txt\n\n"
           + text.encode() + b"\n--b--\n")
    [attachment] = extract.extract(raw, cap).attachments
    assert attachment.text.split()[-1] == "filler" and attachment.cut is not None
