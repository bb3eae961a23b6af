"""The query's words found again in text, the way the index found them: folded, by part,
CJK by substring, scoped fields too, never words under NOT."""
import pytest

from services.archive.highlight import ELLIPSIS, Highlighter


def marked(query: str, text: str) -> list[str]:
    return [part for part, hit in Highlighter.of_query(query).segments(text) if hit]


@pytest.mark.parametrize("query, text, expected", [
    ("muller", "Herr Müller und MULLER", ["Müller", "MULLER"]),
    ("Müller", "muller", ["muller"]),
    ("strasse", "Hauptstraße? Nein: Straße", ["Straße"]),
    ("etudes", "un centre d'études", ["d'études"]),
    ("brien", "Dear O'Brien, dear O’Brien", ["O'Brien", "O’Brien"]),
    ('body:"race condition"', "a race condition here", ["race", "condition"]),
    ('subject:budget', "the Budget is due", ["Budget"]),
    ("attachment:merger", "merger plans", ["merger"]),
    ("arch*", "Archive, architecture; search", ["Archive", "architecture"]),
    ("手続き", "本日の手続きについて", ["手続き"]),
    ("회의", "내일 회의를 합니다", ["회의"]),
    ("ıstanbul", "Istanbul İstanbul", ["Istanbul", "İstanbul"]),
    ("ελλάδα", "Η Ελλάδα", ["Ελλάδα"]),
    ("report NOT secret", "the secret report", ["report"]),
    ("from:alice report", "alice sent the report", ["report"]),
    ("date:2024 has:attachment", "nothing to mark", []),
    ('body:"unbalanced', "a query that does not parse marks nothing", []),
])
def test_words_are_found_as_the_index_finds_them(query, text, expected):
    assert marked(query, text) == expected


def test_marked_segments_give_back_the_text_exactly():
    text = "Müller's <b>report</b> & more\nnext line"
    segments = Highlighter.of_query("muller report").segments(text)
    assert "".join(part for part, _ in segments) == text


def test_a_snippet_is_the_window_with_the_words_cut_at_word_boundaries():
    text = "intro " * 200 + "the merger of Müller and the merger board " + "outro " * 200
    snippet = Highlighter.of_query("merger muller").snippet(text, 120)
    assert snippet[0] == (ELLIPSIS, False) and snippet[-1] == (ELLIPSIS, False)
    shown = "".join(part for part, _ in snippet)
    assert "merger of Müller and the merger board" in shown
    assert len(shown) <= 120 + 2 + 30
    assert [part for part, hit in snippet if hit] == ["merger", "Müller", "merger"]
    words = shown.strip(ELLIPSIS).split(" ")
    assert all(word in ("intro", "outro", "the", "merger", "of", "Müller", "and", "board", "")
               for word in words)


def test_a_snippet_without_a_match_is_the_beginning():
    snippet = Highlighter.of_query("absent").snippet("First words of the body. " * 30, 60)
    assert snippet[0][0].startswith("First words") and not any(hit for _, hit in snippet)


def test_an_empty_query_marks_nothing():
    assert not Highlighter.of_query("")
    assert Highlighter.of_query("").segments("text") == [("text", False)]
