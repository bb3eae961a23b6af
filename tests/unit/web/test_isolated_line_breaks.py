"""The page writes a stranger's text (a subject, a name) through `isolated`: no character
that ends or breaks a line is written raw (review r11 F7: U+2028, U+2029, NEL and the C1
controls were), each as `archiver show` writes it (terminal.line_safe); the characters
that build a glyph (emoji joiners, variation selectors, tag characters of flag
sequences), right-to-left letters and no-break spaces stay as they are, and bidi controls
are marked, never applied."""
from __future__ import annotations

import random
import sys
import unicodedata

import pytest

from services.common.terminal import BIDI_CONTROLS, LINE_BREAKING, line_safe
from services.web import formatting

BREAKING = [chr(code) for code in range(sys.maxunicode + 1)
            if unicodedata.category(chr(code)) in LINE_BREAKING]
KEPT = ["\U0001f468\u200d\U0001f469\u200d\U0001f467",  # a family: zero-width joiners
        "\u2764\ufe0f",  # a red heart: variation selector 16
        "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # Scotland
        "\u05e9\u05dc\u05d5\u05dd", "caf\u00e9\u00a0bar", "a\u200cb"]


def _subjects(seed: int) -> list[str]:
    """Subjects of a line-breaking character (or two) among kept pieces and words."""
    rng = random.Random(seed)
    return [" ".join(rng.sample(KEPT, 2)) + rng.choice(BREAKING) + "invoice"
            + rng.choice(["", rng.choice(BREAKING)]) + rng.choice(KEPT)
            for _ in range(40)]


@pytest.mark.parametrize("seed", range(5))
def test_no_line_breaking_character_is_written_raw(seed):
    for subject in _subjects(seed):
        shown = str(formatting.isolated(subject))
        assert not any(char in shown for char in BREAKING), ascii(subject)
        assert all(kept in shown for kept in KEPT if kept in subject)
        assert shown == f"<bdi>{line_safe(subject)}</bdi>"  # (no HTML nor bidi in them)


@pytest.mark.parametrize("char", BREAKING)
def test_each_line_breaking_character_is_its_escape(char):
    shown = str(formatting.isolated(f"paid{char}now"))
    assert shown == f"<bdi>paid{line_safe(char)}now</bdi>"


@pytest.mark.parametrize("control", sorted(BIDI_CONTROLS))
def test_bidi_controls_are_still_marked_beside_a_line_break(control):
    shown = str(formatting.isolated(f"invoice{control}fdp\u2028.exe"))
    assert f"U+{ord(control):04X}</span>" in shown and "\\u2028" in shown
    assert control not in shown
