"""Words: how text becomes search terms, the same at index and at query time.

Text is cut into words by the Unicode word-break rules as ICU implements them (UAX #29,
with ICU's dictionaries for Thai, Lao, Khmer and Burmese, which write no spaces between
words). Each word is folded: NFKC-normalized (full-width forms, ligatures), case folded
(Unicode full case folding: ß -> ss, final sigma -> sigma), accents dropped from Latin and
Greek letters (é -> e, ά -> α, İ -> i), and the few letters whose accent is no separable
mark mapped to their base (ł -> l, ø -> o, dotless ı -> i; Cyrillic ё -> е, where other
marks make other letters: й is not и), so `muller` and `Müller` are the same term.

Words joined by single hyphens or slashes, or holding apostrophes and dots (O'Brien,
d'études, e-mail-migration, jp.obrien@example.com), are one *compound*: its parts are
consecutive words, and the whole is one more term at the position of its first part, so
the whole, each part and a phrase of the parts all match.

Han, kana and Hangul runs become character n-grams, as Xapian and notmuch do: each
character is a term at its own position, and each pair of neighbours (a bigram) is one
more term at the position of its first character. A query of several characters is the
phrase of its bigrams, so any run of characters finds the text that holds it, whatever a
dictionary would say about word boundaries (Japanese and Chinese write no spaces, and
ICU's dictionary keeps 会議室 whole; Korean joins particles to words: 회의를 holds 회의).
"""
from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache
from itertools import chain
from typing import Iterator, NamedTuple

import icu

MAX_WORD_BYTES = 120  # longer words (base64, junk) are cut here, at index and query time
HYPHENS = frozenset("-\u2010\u2011\uff0d/\uff0f")  # join two words: e-mail, TCP/IP
SLASHES = frozenset("/\uff0f")
APOSTROPHES = frozenset("'\u2019\u02bc\u2018\uff07")  # one apostrophe term: O'Brien, O’Brien
# Latin letters whose accent is no separable mark (NFD leaves them whole).
BASE_LETTERS = str.maketrans({"ı": "i", "ł": "l", "ø": "o", "đ": "d", "ð": "d", "ħ": "h", "ё": "е",
                              "ŧ": "t", "ŀ": "l", "ƒ": "f", "þ": "th", "æ": "ae", "œ": "oe"})
_STATUS_WORD = 100  # ICU rule status below 100: spaces, punctuation, symbols
_STATUS_KANA = 300  # 300-399 kana, 400-499 ideographs (UBRK_WORD_KANA, UBRK_WORD_IDEO)
# Longer tokens (a URL, a sentence of Japanese) are cut by ICU each time, not cached: an
# entry of the cache then holds at most a few KB.
MAX_CACHED_TOKEN = 32
NARROW_NO_BREAK_SPACE = "\u202f"
# ASCII punctuation that is never part of a word at a token's edge (not "_", which joins,
# nor "@", which ICU's root rules count as a letter).
EDGE_PUNCTUATION = "!\"'(),.:;<>?[]{}"
# What str.split() cuts at (str.isspace()) but U+202F.
_SPACE_CHARS = "\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u205f\u3000"
_SPACES = re.compile(f"[{_SPACE_CHARS}]+")
# A run of whitespace-separated plain ASCII words (_plain_ascii_word's kind, at most
# MAX_WORD_BYTES long, so that none is cut), from a token's start to a token's end, of at
# most RUN_WORDS words: Python's re keeps some 270 bytes a repeat while it matches (an
# unbounded run of 2 million words took 600 MB), and the next run goes on where one ends.
RUN_WORDS = 1000
_PLAIN_TOKEN = (f"[{re.escape(EDGE_PUNCTUATION)}]*[A-Za-z0-9]{{1,{MAX_WORD_BYTES}}}"
                f"[{re.escape(EDGE_PUNCTUATION)}]*(?![^{_SPACE_CHARS}])")
_PLAIN_RUN = re.compile(f"(?<![^{_SPACE_CHARS}]){_PLAIN_TOKEN}"
                        f"(?:[{_SPACE_CHARS}]+{_PLAIN_TOKEN}){{0,{RUN_WORDS - 1}}}")
_HANGUL = re.compile("[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]+")


class Piece(NamedTuple):
    """One run of text searched as a unit.

    `parts`: the folded words, one position each. `whole`: the folded compound (parts and
    their joiners) when there are several parts, else None. `cjk`: True when the parts are
    single Han, kana or Hangul characters (searched by bigrams)."""
    parts: tuple[str, ...]
    whole: str | None = None
    cjk: bool = False

    def postings(self) -> Iterator[tuple[int, str]]:
        """(offset, term) pairs of this piece at index time; offsets from 0."""
        yield from enumerate(self.parts)
        if self.whole:
            yield 0, self.whole
        if self.cjk:
            for offset in range(len(self.parts) - 1):
                yield offset, self.parts[offset] + self.parts[offset + 1]

    def sequence(self) -> list[str]:
        """One term per position, as a phrase query matches this piece: a compound's parts;
        a CJK run's bigrams and then its last character."""
        if not self.cjk or len(self.parts) == 1:
            return list(self.parts)
        return [a + b for a, b in zip(self.parts, self.parts[1:])] + [self.parts[-1]]


def pieces(text: str) -> list[Piece]:
    """The pieces of `text`, in order (str of any length; no error is raised).

    Mail repeats its words, so the text is cut at whitespace into tokens and each token's
    pieces are looked up (_token_pieces()), found by ICU only the first time. Whitespace
    ends a word, a compound and a CJK run (UAX #29: no rule joins across it, and a
    joiner must touch both words), so cutting there first changes nothing; all but
    U+202F, which joins words as "_" does (Word_Break ExtendNumLet)."""
    tokens = text.split() if NARROW_NO_BREAK_SPACE not in text else _SPACES.split(text)
    if max(map(len, tokens), default=0) <= MAX_CACHED_TOKEN:  # the common case, all in C
        return list(chain.from_iterable(map(_token_pieces, tokens)))
    return [piece for token in tokens for piece in (
        _token_pieces(token) if len(token) <= MAX_CACHED_TOKEN else _icu_pieces(token))]


@lru_cache(maxsize=32768)
def _token_pieces(token: str) -> tuple[Piece, ...]:
    plain = _plain_ascii_word(token)
    return (Piece((fold(plain),)),) if plain else tuple(_icu_pieces(token))


def _plain_ascii_word(token: str) -> str | None:
    """The word of an ASCII token that is letters and digits between edge punctuation
    ("(Budget," -> "Budget"), else None: most tokens of mail, whose pieces are then had
    without ICU (a few microseconds each, where a worker's bounded cache misses one token
    in ten). Exact: UAX #29 joins a middle character (. , ; : ') only between two letters
    or digits, so at a token's edge none joins, and letters and digits run into one word."""
    if not token.isascii():
        return None
    word = token.strip(EDGE_PUNCTUATION)
    return word if word.isalnum() else None


def plain_runs(text: str) -> Iterator[tuple[bool, str]]:
    """`text` cut at whitespace into consecutive segments (str of any length, in order,
    together exactly `text`): (True, run) for a run of plain ASCII words (letters and
    digits between edge punctuation, each at most MAX_WORD_BYTES long, whitespace between
    them, at most RUN_WORDS of them), (False, rest) for the text between runs (whitespace
    between two runs included).

    A run's pieces are its words lowercased, one position each, the terms Xapian's
    TermGenerator makes of it too: so the indexer hands runs to it (services.archive.terms),
    and pieces() has only the rest. Cutting at whitespace changes no piece (see pieces()),
    and U+202F is no whitespace here, as there."""
    start = 0
    for run in _PLAIN_RUN.finditer(text):
        if run.start() > start:
            yield False, text[start:run.start()]
        yield True, run.group()
        start = run.end()
    if start < len(text):
        yield False, text[start:]


def _icu_pieces(text: str) -> list[Piece]:
    """pieces() without the lookup: one pass over ICU's word segments, written for speed
    (separators are only looked at where a word begins): a word extends the current
    compound when one hyphen joins them, a CJK segment extends the current CJK run when
    nothing separates them, anything else ends both."""
    found: list[Piece] = []
    add, compound_piece = found.append, _compound_piece
    compound = cjk_run = ""
    previous_end = -2
    for start, end, status in _word_segments(text):
        segment = text[start:end]
        if status < _STATUS_KANA and (segment.isascii() or not _HANGUL.search(segment)):
            if cjk_run:
                cjk_run = _add_cjk(cjk_run, found)
            if compound and start == previous_end + 1 and text[previous_end] in HYPHENS:
                compound += text[previous_end:end]
            else:
                if compound:
                    piece = compound_piece(compound)
                    if piece is not None:
                        add(piece)
                compound = segment
        else:
            if compound:
                _add_compound(compound, found)
                compound = ""
            if cjk_run and start != previous_end:
                cjk_run = _add_cjk(cjk_run, found)
            for run, is_cjk in _cjk_runs(segment, status):
                if is_cjk:
                    cjk_run += run
                else:
                    cjk_run = _add_cjk(cjk_run, found) if cjk_run else ""
                    _add_compound(run, found)
        previous_end = end
    if cjk_run:
        _add_cjk(cjk_run, found)
    if compound:
        _add_compound(compound, found)
    return found


def word_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) str indexes of each word of `text` as ICU cuts it, before pieces()
    joins compounds and CJK runs (for marking words in the text itself)."""
    for start, end, _ in _word_segments(text):
        yield start, end


def word_parts(word: str) -> list[str]:
    """A word cut at its punctuation: "O'Brien" -> ["O", "Brien"] (unfolded)."""
    return _split_parts(word)


def terms_of(text: str) -> list[str]:
    """Every term `text` is indexed under, in order (for tests and explanations)."""
    return [term for piece in pieces(text) for _, term in piece.postings()]


@lru_cache(maxsize=65536)
def fold(word: str) -> str:
    """`word` case folded and without accents on Latin and Greek letters, cut to
    MAX_WORD_BYTES of UTF-8 at a character boundary."""
    return _truncated(fold_whole(word))


def fold_whole(word: str) -> str:
    """fold() without the cut: for exact terms (a whole address or file name), which
    services.archive.terms.term() bounds by hashing instead, so two long ones stay apart."""
    if word.isascii():
        return word.lower()
    folded = unicodedata.normalize("NFKC", word).casefold().translate(BASE_LETTERS)
    if not folded.isascii():
        kept, base_foldable = [], False
        for char in unicodedata.normalize("NFD", folded):
            if unicodedata.combining(char):
                if base_foldable:
                    continue  # an accent on a Latin or Greek letter
            else:
                base_foldable = _accent_foldable(char)
            kept.append(char)
        folded = unicodedata.normalize("NFC", "".join(kept))
    return folded


_BREAKERS = threading.local()  # an ICU BreakIterator is not safe to share between threads


def _word_segments(text: str) -> Iterator[tuple[int, int, int]]:
    """(start, end, ICU rule status) of the word segments of `text` (str indexes)."""
    breaker = getattr(_BREAKERS, "word", None)
    if breaker is None:
        breaker = _BREAKERS.word = icu.BreakIterator.createWordInstance(icu.Locale.getRoot())
    utf16 = icu.UnicodeString(text)
    breaker.setText(utf16)
    status, start = breaker.getRuleStatus, 0
    if len(utf16) == len(text):
        for end in breaker:
            rule = status()
            if rule >= _STATUS_WORD:
                yield start, end, rule
            start = end
        return
    # ICU counts UTF-16 code units, str code points: they differ after a character outside
    # the Basic Multilingual Plane.
    to_index = _utf16_to_index(text)
    for end in breaker:
        if status() >= _STATUS_WORD:
            yield to_index[start], to_index[end], status()
        start = end


def _utf16_to_index(text: str) -> dict[int, int]:
    mapping, units = {}, 0
    for index, char in enumerate(text):
        mapping[units] = index
        units += 2 if ord(char) > 0xFFFF else 1
    mapping[units] = len(text)
    return mapping


def _add_compound(raw: str, found: list[Piece]) -> None:
    piece = _compound_piece(raw)
    if piece is not None:
        found.append(piece)


@lru_cache(maxsize=65536)  # mail repeats its words: most are looked up, not cut again
def _compound_piece(raw: str) -> Piece | None:
    if raw.isalnum():
        return Piece((fold(raw),))
    parts = tuple(part for part in map(fold, _split_parts(raw)) if part)
    if len(parts) > 1:
        return Piece(parts, fold(_joiners_normalized(raw)))
    return Piece(parts) if parts else None


def _add_cjk(run: str, found: list[Piece]) -> str:
    found.append(Piece(tuple(map(fold, run)), cjk=True))
    return ""


def _cjk_runs(segment: str, status: int) -> Iterator[tuple[str, bool]]:
    """A segment as (run, is_cjk): kana and ideographs whole; a letter word split into its
    Hangul and other runs (ICU keeps KB국민 one word)."""
    if status >= _STATUS_KANA:
        yield segment, True
        return
    at = 0
    for match in _HANGUL.finditer(segment):
        if match.start() > at:
            yield segment[at:match.start()], False
        yield match.group(), True
        at = match.end()
    if at < len(segment):
        yield segment[at:], False


def _split_parts(word: str) -> list[str]:
    """A word cut at its punctuation (apostrophes, dots, @, hyphens...): its parts."""
    parts, current = [], []
    for char in word:
        if unicodedata.category(char)[0] in "PSZC":
            if current:
                parts.append("".join(current))
                current = []
        else:
            current.append(char)
    if current:
        parts.append("".join(current))
    return parts


def _joiners_normalized(word: str) -> str:
    return "".join("'" if char in APOSTROPHES else
                   "-" if char in HYPHENS and char not in SLASHES else char for char in word)


def _accent_foldable(char: str) -> bool:
    code = ord(char)
    return code < 0x0400 or 0x1E00 <= code <= 0x1FFF  # Latin and Greek (and extended)


def _truncated(word: str) -> str:
    data = word.encode("utf-8")
    if len(data) <= MAX_WORD_BYTES:
        return word
    return data[:MAX_WORD_BYTES].decode("utf-8", "ignore")


def cached_words() -> int:
    """Entries in the caches of fold(), compound pieces and token pieces (some 200 bytes
    each when full of distinct words: 32 MB for the three caches full)."""
    return sum(cache.cache_info().currsize for cache in (fold, _compound_piece, _token_pieces))


def forget_words() -> None:
    """Empty those caches."""
    for cache in (fold, _compound_piece, _token_pieces):
        cache.cache_clear()


def bound_cached_words(entries: int) -> None:
    """Keep at most `entries` words in those caches together (3/4 of them tokens), the
    least recently used leaving first (a process that must stay small, e.g. an extraction
    worker, calls this once when it starts). Emptying them when full would do too, but
    then the words every message has are cut and folded again. Words cut after this call
    use the bounded caches; a module that imported fold() by name keeps the unbounded one."""
    global fold, _compound_piece, _token_pieces
    words = entries // 8  # each for folded words and compounds: looked up on a token's miss
    fold = lru_cache(maxsize=words)(fold.__wrapped__)
    _compound_piece = lru_cache(maxsize=words)(_compound_piece.__wrapped__)
    _token_pieces = lru_cache(maxsize=entries - 2 * words)(_token_pieces.__wrapped__)
