"""Review r19 of bfdbd80 (a body's text cut at the model's text cap): reproducers.

F1 (low): a body whose text past the cap is whitespace alone (a trailing line break) is
flagged as partly indexed, though every word is indexed: has:extraction-failure lists a
message that lost nothing searchable.
F2 (low): the cut falls inside a word, and the index takes the word's first letters as a
term the message does not hold (a search for that prefix finds it)."""
import pytest

from services.archive import extract

KiB = 1024
CAPS = [256 * KiB, 512 * KiB, 1024 * KiB]  # models 150, 350, 450


def plain(body: str) -> bytes:
    return ("From: a@example.org\nTo: b@example.org\nSubject: body\n"
            "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
            f"{body}").encode()


def words_of_exactly(size: int, unit: str) -> str:
    """Text of exactly `size` bytes of UTF-8, `unit` repeated, ending in a word character."""
    text = unit * (size // len(unit.encode()) + 1)
    while len(text.encode()) > size:
        text = text[:-1]
    text = text.rstrip()
    return text + "x" * (size - len(text.encode()))


@pytest.mark.parametrize("cap", CAPS)
@pytest.mark.parametrize("unit", ["word ", "Grüße ", "漢字の ", "😀 "])
@pytest.mark.parametrize("trailer", ["\n", "\n\n", " \n", "\r\n"])
def test_a_body_cut_of_only_whitespace_is_not_flagged(cap, unit, trailer):
    body = words_of_exactly(cap, unit)
    assert len(body.encode()) == cap
    extracted = extract.extract(plain(body + trailer), cap)
    assert extracted.body.split() == body.split()  # every word indexed...
    assert extracted.cut is None, extracted.cut   # ...so nothing was cut that a search reads
    assert extracted.failures == []


@pytest.mark.parametrize("cap", CAPS)
@pytest.mark.parametrize("word", ["confidential", "Vertraulichkeit", "機密情報"])
@pytest.mark.parametrize("inside", [1, 3])
def test_the_cut_takes_no_part_of_a_word(cap, word, inside):
    """The word straddling the cut (`inside` characters of it before the cap) is not
    indexed as the prefix of it that fits (a term the message does not hold)."""
    head = words_of_exactly(cap - len(word[:inside].encode()) - 1, "filler ") + " "
    body = head + word + " tail\n"
    assert len((head + word[:inside]).encode()) == cap
    extracted = extract.extract(plain(body), cap)
    assert extracted.cut is not None
    assert extracted.body.split()[-1] in body.split(), extracted.body[-40:]
