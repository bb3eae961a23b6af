"""The words of a query found again in a message's text: for the snippet under each result
and the highlighting in the message view.

Xapian's MSet.snippet() cuts and lowercases text its own way, so it would miss what this
index finds: `muller` in "Müller", `brien` in "O'Brien", Japanese without spaces, any word
of a field-scoped query (its terms carry the field's prefix). So the text is cut into
words by the index's own pipeline (services.archive.words: ICU segments, folded) and a
word is marked when its folded form, or a part of it, is a word of the query, or begins
with a wildcard's stem; CJK runs of the query are found as substrings. Words under NOT,
and fields that are no text (from:, date:, has:...), mark nothing.

A snippet is the window of text (about `length` characters) with the most marks, cut at
word boundaries, "…" where it was cut.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Iterator

from services.archive import query as query_syntax
from services.archive.words import fold, pieces, word_parts, word_spans

TEXT_FIELDS = (None, "subject", "body", "attachment")
SCAN_LIMIT = 200_000   # characters of a text searched for the query's words
SNIPPET_LENGTH = 240   # characters of a snippet, about
ELLIPSIS = "…"

Segment = tuple[str, bool]  # (text, whether it is one of the query's words)


@dataclass
class Highlighter:
    """What to mark: folded `words`, wildcard `stems`, CJK `runs` (folded substrings)."""
    words: set[str] = field(default_factory=set)
    stems: set[str] = field(default_factory=set)
    runs: set[str] = field(default_factory=set)

    @classmethod
    def of_query(cls, text: str) -> "Highlighter":
        """The words of a query (services.archive.query syntax); an empty Highlighter for
        a query that does not parse or has no words to mark."""
        try:
            tree = query_syntax.parse(text)
        except query_syntax.QuerySyntaxError:
            return cls()
        found = cls()
        for node in _positive_leaves(tree):
            if isinstance(node, (query_syntax.Words, query_syntax.Phrase)) \
                    and node.field in TEXT_FIELDS:
                found._add_text(node.text)
            elif isinstance(node, query_syntax.Wildcard) and node.field in TEXT_FIELDS:
                stem = fold(node.stem)
                if stem:
                    found.stems.add(stem)
        return found

    def __bool__(self) -> bool:
        return bool(self.words or self.stems or self.runs)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """(start, end) of each marked stretch of `text` (its first SCAN_LIMIT characters),
        in order, not overlapping."""
        if not self or not text:
            return []
        text = text[:SCAN_LIMIT]
        found = [(start, end) for start, end in word_spans(text)
                 if self._matches(text[start:end])]
        found += self._run_spans(text)
        return _merged(found)

    def segments(self, text: str) -> list[Segment]:
        """All of `text` (up to SCAN_LIMIT) as segments, the marked ones flagged."""
        return _cut(text[:SCAN_LIMIT], self.spans(text), 0, min(len(text), SCAN_LIMIT))

    def snippet(self, text: str, length: int = SNIPPET_LENGTH) -> list[Segment]:
        """About `length` characters of `text` around its densest marks (its beginning when
        nothing matches), whitespace collapsed, "…" where cut."""
        text = " ".join(text[:SCAN_LIMIT].split())
        spans = self.spans(text)
        start = _best_window(spans, length) if spans else 0
        start = _word_start(text, start)
        end = min(len(text), start + length)
        if end < len(text):
            end = _word_end(text, end)
        shown = _cut(text, spans, start, end)
        if start > 0:
            shown.insert(0, (ELLIPSIS, False))
        if end < len(text):
            shown.append((ELLIPSIS, False))
        return shown

    def _add_text(self, text: str) -> None:
        for piece in pieces(text):
            if piece.cjk:
                self.runs.add("".join(piece.parts))
            else:
                self.words.update(piece.parts)
                if piece.whole:
                    self.words.add(piece.whole)

    def _matches(self, word: str) -> bool:
        folded = fold(word)
        if folded in self.words or any(folded.startswith(stem) for stem in self.stems):
            return True
        if folded.isalnum():
            return False
        parts = [fold(part) for part in word_parts(word)]
        return any(part in self.words or any(part.startswith(s) for s in self.stems)
                   for part in parts if part)

    def _run_spans(self, text: str) -> list[tuple[int, int]]:
        if not self.runs:
            return []
        found = []
        folded = unicodedata.normalize("NFKC", text).casefold()
        if len(folded) != len(text):
            return []  # positions would not line up; CJK text rarely changes length
        for run in self.runs:
            at = folded.find(run)
            while at >= 0:
                found.append((at, at + len(run)))
                at = folded.find(run, at + 1)
        return found


def _positive_leaves(node: query_syntax.Node) -> Iterator[query_syntax.Node]:
    """Leaves not under a NOT (nor subtracted from an AND): what a match holds."""
    if isinstance(node, query_syntax.Not):
        return
    children = node.children()
    if not children:
        yield node
    for child in children:
        yield from _positive_leaves(child)


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _cut(text: str, spans: list[tuple[int, int]], start: int, end: int) -> list[Segment]:
    shown, at = [], start
    for span_start, span_end in spans:
        if span_end <= start or span_start >= end:
            continue
        span_start, span_end = max(span_start, start), min(span_end, end)
        if span_start > at:
            shown.append((text[at:span_start], False))
        shown.append((text[span_start:span_end], True))
        at = span_end
    if at < end:
        shown.append((text[at:end], False))
    return shown


def _best_window(spans: list[tuple[int, int]], length: int) -> int:
    """Where a window of `length` characters holding the most marks starts, with some
    text before its first mark."""
    best, best_count, first = 0, 0, 0
    for last, (start, _) in enumerate(spans):
        while spans[first][0] < start - length * 2 // 3:
            first += 1
        if last - first + 1 > best_count:
            best_count, best = last - first + 1, spans[first][0]
    return max(0, best - length // 6)


def _word_start(text: str, at: int) -> int:
    if at <= 0:
        return 0
    space = text.rfind(" ", max(0, at - 30), at)
    return space + 1 if space >= 0 else at


def _word_end(text: str, at: int) -> int:
    space = text.find(" ", at, at + 30)
    return space if space >= 0 else at
