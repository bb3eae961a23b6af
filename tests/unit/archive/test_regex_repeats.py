"""Regular expressions that read strangers' header text repeat their groups possessively.

Python's re keeps a backtracking record for each repeat of a greedy group while it matches
(some 180 bytes each, measured): a From display name of 16 MiB in quotes (addresses' quoted
token, one repeat a character) took 3.3 GB, a Subject folded into 2.7 million lines
(header_blocks' folded field) 550 MB. A possessive repeat (`*+`, Python 3.11) keeps none,
but Python 3.11.2's (Debian 12's) does not restore the position when a try of its group
fails after a repeat inside the group has run (CPython gh-106052, gh-100061): each pattern
here must match as its greedy form does, on hostile inputs and on many random short ones.
"""
from __future__ import annotations

import random
import re
import tracemalloc

import pytest

from services.archive import addresses, extract, header_blocks, mime, mime_parts

REPEATS = 200_000
MOST_BYTES = 1 << 20  # a record a repeat would be ~36 MB


def folded(name: bytes) -> bytes:
    return name + b": x" + b"\r\n y" * REPEATS + b"\n\tz\r\n\r\nbody"


# (pattern, method, hostile input, group whose span is compared)
HOSTILE = {
    "folded summary field": (header_blocks._MIME_FIELD, "search", folded(b"Subject"), 0),
    "folded content-type (walk)": (header_blocks._CONTENT_TYPE, "search",
                                   folded(b"Content-Type"), 0),
    "folded content-type (charset)": (mime._CONTENT_TYPE_FIELD, "search",
                                      folded(b"Content-Type"), 0),
    "folded transfer encoding": (mime_parts._TRANSFER_ENCODING, "search",
                                 folded(b"Content-Transfer-Encoding"), 1),
    "quoted display name": (addresses._TOKEN, "match", '"' + "a " * REPEATS + '"', 0),
    "quoted, never closed": (addresses._TOKEN, "match", '"' + "\\a" * REPEATS, 0),
    "dot-atom of many dots": (addresses._DOT_ATOM, "fullmatch", "a." * REPEATS + "a", 0),
    "addr-spec of many dots": (addresses._SIMPLE, "fullmatch", "a." * REPEATS + "a@b.c", 0),
    "report of blank lines": (extract._BLANK_LINES, "search", "a" + "\n" * REPEATS + "b", 0),
}
# (pattern, the characters its random inputs are made of)
RANDOM = {
    "folded field": (header_blocks._MIME_FIELD, [b"Subject:", b"\r", b"\n", b" ", b"\t", b"x"]),
    "content-type field": (mime._CONTENT_TYPE_FIELD, [b"content-type:", b"\r", b"\n", b" ",
                                                      b"\t", b"x"]),
    "token": (addresses._TOKEN, ['"', "\\", "a", " ", "\n"]),
    "dot-atom": (addresses._DOT_ATOM, ["a", ".", "@", " "]),
    "addr-spec": (addresses._SIMPLE, ["a", ".", "@", " "]),
}


def greedy(pattern: re.Pattern) -> re.Pattern:
    """`pattern` with its possessive repeats made greedy: what it means."""
    plus, star = (b"++", b"*+") if isinstance(pattern.pattern, bytes) else ("++", "*+")
    return re.compile(pattern.pattern.replace(star, star[:1]).replace(plus, plus[:1]),
                      pattern.flags)


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_input_is_matched_as_the_greedy_form_would_without_a_record_a_repeat(name):
    pattern, method, text, group = HOSTILE[name]
    tracemalloc.start()
    try:
        found = getattr(pattern, method)(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found is not None, name
    assert peak < MOST_BYTES, (name, peak)
    assert found.span(group) == getattr(greedy(pattern), method)(text).span(group), name


@pytest.mark.parametrize("name", list(RANDOM))
def test_random_short_inputs_are_matched_as_the_greedy_form_would(name):
    pattern, pieces = RANDOM[name]
    meaning, rng = greedy(pattern), random.Random(name)
    for _ in range(20_000):
        text = pieces[0][:0].join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
        for method in ("search", "fullmatch"):
            found, meant = getattr(pattern, method)(text), getattr(meaning, method)(text)
            assert (found and found.span()) == (meant and meant.span()), (name, text)
