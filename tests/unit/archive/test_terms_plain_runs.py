"""Long fields hand runs of plain ASCII words to Xapian's TermGenerator (terms.DocumentTerms,
words.plain_runs): their postings must be exactly what words.pieces() gives, the one
definition of words at index and query time, over generated text mixing the characters
near the run's edges (edge punctuation, letters, digits, joiners, every kind of whitespace,
U+202F which joins words, words of MAX_WORD_BYTES and longer, other scripts)."""
import random

import xapian

from services.archive import words
from services.archive.terms import FIELD_GAP, DocumentTerms

PREFIX = "XB"
NEAR_THE_EDGES = (list("abcXYZ019") * 5 + list(words.EDGE_PUNCTUATION) * 2
                  + list("-_/&@#+%$=*~`|\\^")
                  + [" ", " ", " ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1f", "\x85",
                     "\xa0", "\u202f", "\u2009", "\u3000", "\u2028", "\u200b", "\ufeff",
                     "\u00ad", "\u0301"]
                  + list("éßİıøłｆⅫ²½") + ["日本", "한국어"])
SHAPES = ["3.5", "1,000", "U.S.A.", "O'Brien", "e-mail", "AT&T", "C++", "C#", "don't",
          "jo@example.com", "http://a.example/b", "a_b", "'quoted'", "12:30", "3/4", "v1.2.3",
          "a" * (words.MAX_WORD_BYTES - 1), "b" * words.MAX_WORD_BYTES,
          "c" * (words.MAX_WORD_BYTES + 1), "(" + "d" * words.MAX_WORD_BYTES + "),"]


def generated_text(rng: random.Random) -> str:
    return "".join(rng.choice(SHAPES) if rng.random() < 0.1 else rng.choice(NEAR_THE_EDGES)
                   for _ in range(rng.randint(0, 60)))


def postings(document: xapian.Document) -> list[tuple[str, int, tuple[int, ...]]]:
    return sorted((item.term.decode(), item.wdf, tuple(item.positer))
                  for item in document.termlist())


def indexed(texts: list[str]) -> list:
    document = xapian.Document()
    field = DocumentTerms(document)
    for text in texts:
        field.add_text(PREFIX, text, unprefixed=False)
    return postings(document)


def as_pieces_give_them(texts: list[str]) -> list:
    """The postings pieces() defines: each piece's terms at its offsets, pieces at
    consecutive positions, FIELD_GAP between two texts of the field."""
    document, position = xapian.Document(), 1
    for text in texts:
        for piece in words.pieces(text):
            for offset, term in piece.postings():
                document.add_posting(PREFIX + term, position + offset)
            position += len(piece.parts)
        position += FIELD_GAP
    return postings(document)


def test_long_fields_get_the_postings_pieces_define():
    rng = random.Random(20261204)
    differ = []
    for _ in range(30_000):
        texts = [generated_text(rng) for _ in range(rng.randint(1, 3))]
        if indexed(texts) != as_pieces_give_them(texts):
            differ.append(texts)
    assert differ == [], differ[:5]


def test_runs_and_the_rest_are_the_whole_text_cut_at_whitespace():
    rng = random.Random(4)
    for _ in range(20_000):
        text = generated_text(rng)
        segments = list(words.plain_runs(text))
        assert "".join(segment for _, segment in segments) == text
        for plain, segment in segments:
            if plain:
                tokens = segment.split()
                plain_words = [words._plain_ascii_word(token) for token in tokens]
                assert all(plain_words), segment
                assert max(map(len, plain_words)) <= words.MAX_WORD_BYTES  # none is cut


def test_a_mail_body_is_mostly_runs():
    body = ("Hi Anna,\n\nthe budget (Q3, final) is attached. Please check it before "
            "Friday: we meet at 12:30 in room 4.\n\n-- \nBob O'Brien, e-mail bob@example.com\n")
    runs = [segment for plain, segment in words.plain_runs(body) if plain]
    assert sum(len(run.split()) for run in runs) >= 20
    assert indexed([body]) == as_pieces_give_them([body])


def test_a_run_holds_at_most_run_words_and_the_next_goes_on():
    """Python's re holds memory for every word of a run while it matches: a run is bounded,
    and a long text of plain words is several runs with the same postings."""
    text = " ".join(f"w{n % 50}" for n in range(5 * words.RUN_WORDS + 7))
    runs = [segment for plain, segment in words.plain_runs(text) if plain]
    assert len(runs) == 6
    assert max(len(run.split()) for run in runs) == words.RUN_WORDS
    assert indexed([text, "tail"]) == as_pieces_give_them([text, "tail"])
