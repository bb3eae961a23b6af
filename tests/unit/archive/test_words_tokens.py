"""services.archive.words cuts text at whitespace and looks each token's pieces up: the
pieces must be exactly those of ICU over the whole text (_icu_pieces), or the index would
change with the speed-up."""
import itertools
import random

import pytest

from services.archive import words

# One character of each kind ICU's word rules tell apart in ASCII: letter (and "@", which
# ICU counts as one), digit, "_" (joins, but is no word alone), the middle characters
# between letters or digits (. ' , ;), ":" (a middle letter in UAX #29, not in ICU's
# root), the compound joiners (- /), whitespace.
ASCII_KINDS = "a1_@.',;:-/ A"
# And beside them: accented, combining mark, joiners and format characters, emoji, Han,
# kana, Hangul, Thai (ICU's dictionary), spaces and separators of every kind str.split()
# cuts at (no-break ones, ideographic, line and paragraph, C0 separators), non-ASCII
# hyphens, full-width forms, digits of other scripts.
OTHER_KINDS = ["é", "\u0301", "\u200d", "\u00ad", "\ufeff", "😀", "会", "議", "カ", "회",
               "의", "ก", "ข", "\u00a0", "\u2007", "\u202f", "\u1680", "\u200a", "\u3000",
               "\u2028", "\u2029", "\x85", "\x1c", "\x1f", "\x0b", "\x0c", "’", "\u2010", "ｆ",
               "Ü", "ß", "İ", "Ⅻ", "١", "ё", "\n", "\r\n", "\t"]
SENTENCES = [
    "Grüße aus Zürich, e-mail-migration O’Brien’s d'études; jp.obrien@example.com 3.14",
    "Ελληνικά: άλφα, Ωμέγα. Русский текст — ёлка и йогурт, TCP/IP-стек",
    "会議室の予約は明日です。카카오톡 회의를 KB국민 월요일에 해요 ภาษาไทยไม่มีช่องว่าง",
    "naïve café—résumé… “quoted” ‘single’ 👩‍💻 emoji\u200dzwj ﬁle ｆｕｌｌ－ｗｉｄｔｈ",
    "plain ASCII line with a-b-c and a--b and path/to/file.tar.gz and 1,000.50; x_y _ __",
]


def same(text: str) -> None:
    assert words.pieces(text) == words._icu_pieces(text), repr(text)


def test_every_short_string_of_ascii_kinds_is_cut_as_icu_cuts_it():
    for length in range(1, 5):
        for chars in itertools.product(ASCII_KINDS, repeat=length):
            same("".join(chars))


def test_every_short_string_of_spaces_marks_and_joiners_is_cut_as_icu_cuts_it():
    kinds = ["a", "1", "-", " ", "\u00a0", "\x1c", "\u3000", "\u0301", "\u200d", "\ufeff",
             "会", "회", "😀"]
    for length in range(1, 5):
        for chars in itertools.product(kinds, repeat=length):
            same("".join(chars))


@pytest.mark.parametrize("seed", range(4))
def test_random_ascii_is_cut_as_icu_cuts_it(seed):
    rnd = random.Random(seed)
    choices = [*(chr(code) for code in range(128)), *ASCII_KINDS, "ab", "12", "a.b", "1,2"]
    for _ in range(5000):
        same("".join(rnd.choice(choices) for _ in range(rnd.randrange(1, 40))))


@pytest.mark.parametrize("seed", range(4))
def test_ascii_beside_other_characters_is_cut_as_icu_cuts_it(seed):
    rnd = random.Random(seed)
    choices = [*ASCII_KINDS, *OTHER_KINDS, "ab", "12", " ", " "]
    for _ in range(5000):
        same("".join(rnd.choice(choices) for _ in range(rnd.randrange(1, 40))))


def test_mixed_scripts_and_lines_are_cut_as_icu_cuts_them():
    rnd = random.Random(7)
    for _ in range(300):
        lines = rnd.sample(SENTENCES, rnd.randrange(1, len(SENTENCES) + 1))
        text = rnd.choice(["\n", " ", "\r\n", "-", ""]).join(lines)
        same(text)
        same(text.replace(" ", rnd.choice(["\u00a0", "\t", "  ", "-", " \u0301"])))


def test_words_are_found_as_before():
    assert words.terms_of("x@y.com a_b __ _ 3.14.15 a.1 e-mail/TCP") == [
        "x", "y", "com", "x@y.com", "a", "b", "a_b", "3", "14", "15", "3.14.15", "a", "1",
        "e", "mail", "tcp", "e-mail/tcp"]


def test_bounded_word_caches_keep_at_most_their_size(monkeypatch):
    for name in ("fold", "_compound_piece", "_token_pieces"):
        monkeypatch.setattr(words, name, getattr(words, name))  # put back afterwards
    words.bound_cached_words(100)
    for number in range(1000):
        assert words.terms_of(f"w{number}ord e-w{number}") == [
            f"w{number}ord", "e", f"w{number}", f"e-w{number}"]
        assert words.cached_words() <= 100
    assert words.cached_words() == 100  # full: the least recently used went
    assert words.terms_of("w999ord") == ["w999ord"]


def test_text_is_cut_at_every_space_str_split_knows_but_the_one_that_joins():
    spaces = [chr(code) for code in range(0x110000) if chr(code).isspace()]
    assert "\u202f" in spaces
    for space in spaces:
        expected = ["a", "b"] if space != "\u202f" else ["a\u202fb"]
        assert words._SPACES.split(f"a{space}b") == expected
        same(f"a{space}b x{space}{space}-y")


def test_long_tokens_are_cut_as_icu_cuts_them_and_not_cached():
    words.forget_words()
    long_one = "https://example.com/a-very/long-path/to_the.file?q=1,000.5"
    japanese = "会議室の予約は明日です。" * 4
    for text in (long_one, japanese, f"short {long_one} words {japanese} again"):
        same(text)
    assert words._token_pieces.cache_info().currsize == 3  # short, words, again


def test_ascii_words_between_edge_punctuation_are_cut_as_icu_cuts_them():
    # Such tokens skip ICU (words._plain_ascii_word); the rest must not take that way.
    edges = ["", *words.EDGE_PUNCTUATION, "((", ".,", '?!"', "_", "@", "-", "/", "#", "'s"]
    cores = ["a", "Budget", "x9", "2024", "A1b2", "z" * 130, "e.g", "3,000", "a_b", "x@y",
             "O'Brien", "e-mail", "caf\u00e9", ""]
    for before, core, after in itertools.product(edges, cores, edges):
        token = before + core + after
        assert words._token_pieces.__wrapped__(token) == tuple(words._icu_pieces(token)), token
