"""The ASCII path of word breaking (words._plain_ascii_word: no ICU for letters and digits
between edge punctuation) gives exactly what ICU's UAX #29 breaking gives, over generated
tokens built from the characters near its rules: every token of up to 3 of them, 200,000
random ones mixing ASCII punctuation, digits, apostrophes, underscores and other scripts,
and 100,000 that all take the ASCII path."""
import itertools
import random
import string

from services.archive import words

NEAR_THE_RULES = (string.ascii_letters[:6] + "XYZ" + string.digits[:4]
                  + words.EDGE_PUNCTUATION + "_@-/'.,:;#$%&*+=~^`|\\"
                  + "\u00e9\u05d0\u3042\u4e00\u2019\u00a0\u200b\u0301")


def random_tokens(seed: int, count: int):
    rng = random.Random(seed)
    for _ in range(count):
        token = "".join(rng.choice(NEAR_THE_RULES) for _ in range(rng.randint(1, 8))).strip()
        if token and not any(c.isspace() for c in token):
            yield token


def short_tokens():
    chars = string.ascii_letters[:2] + "Z09" + words.EDGE_PUNCTUATION + "_@-"
    for length in (1, 2, 3):
        for combination in itertools.product(chars, repeat=length):
            yield "".join(combination)


def plain_tokens(seed: int, count: int):
    """Edge punctuation, letters and digits, edge punctuation: the ASCII path's kind."""
    rng = random.Random(seed)
    edge, core = words.EDGE_PUNCTUATION, string.ascii_letters + string.digits
    for _ in range(count):
        yield ("".join(rng.choice(edge) for _ in range(rng.randint(0, 3)))
               + "".join(rng.choice(core) for _ in range(rng.randint(1, 12)))
               + "".join(rng.choice(edge) for _ in range(rng.randint(0, 3))))


def test_every_token_breaks_as_icu_breaks_it():
    differ = [(token, words._token_pieces(token), tuple(words._icu_pieces(token)))
              for token in itertools.chain(short_tokens(), random_tokens(1, 200_000))
              if words._token_pieces(token) != tuple(words._icu_pieces(token))]
    assert differ == [], differ[:20]


def test_the_ascii_path_is_taken_and_equals_icu():
    for token in plain_tokens(2, 100_000):
        assert words._plain_ascii_word(token) is not None, token
        assert words._token_pieces(token) == tuple(words._icu_pieces(token)), token


def test_long_plain_tokens_break_as_icu_breaks_them():
    for token in ["a" * 40, "(" + "b" * 200 + ")", "1" * 130 + ".", "\"" + "Ab9" * 60 + "\","]:
        assert words.pieces(token) == words._icu_pieces(token)
