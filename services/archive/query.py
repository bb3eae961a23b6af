"""The query syntax (DESIGN.md, README), parsed into a tree that becomes a Xapian query and
explains itself in words.

    words  "phrases"  arch*  AND OR NOT (any case)  -word  ( )
    from: to: cc: bcc:     a word of the name or address, a whole address, a local part
                           (bob@), a domain (example.org, @example.org, *@example.org),
                           wildcards (bob*@example.*), "a phrase"
    subject: body: attachment:   a word, "a phrase", arch*, or field:(a OR b)
    filename:              report.pdf, report, pdf, .pdf, *.pdf, inv*2024*.pdf
    has: type: source: origin: digest:   exact values (type:image/* too); has:, source:
                           (smtp, import, journal[:NAME], mirror[:NODE]) and digest: (64
                           hex digits) take only what the index can hold, else an error
    date: before: after:   services.archive.dates, in the appliance's time zone
    size:                  10k..2M, ..500k, 1M..

Every word and phrase goes through services.archive.words, as the indexed text did. What
the syntax does not know is a QuerySyntaxError saying what and at which column: an
unknown field, a bad or reversed range, an unbalanced quote or parenthesis, an operator
with nothing to join. Nothing is quietly read as plain words.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import fnmatch
import math
import re
import time
from dataclasses import dataclass, field
from typing import Iterator

import xapian

from firmware.errors import ArchiverError

from services.archive import dates
from services.archive.addresses import lowercase_ascii
from services.archive.index import (BARE_WORD_PREFIXES, BOOLEAN_PREFIXES, DIGEST_HEX,
                                    HAS_VALUES, HIDDEN_PREFIX, NAMED_SOURCE_KINDS,
                                    SHOWN_WORD_PREFIXES, SLOT_DATE,
                                    SLOT_SIZE, SOURCE_KINDS, TEXT_PREFIXES, address_term)
from services.archive.terms import (ADDRESS_DOMAIN, ADDRESS_EXACT, ADDRESS_LOCAL,
                                    FILENAME_EXTENSION, FILENAME_WHOLE, term)
from services.archive.words import Piece, fold, fold_whole, pieces

ADDRESS_FIELDS = ("from", "to", "cc", "bcc")
WORD_FIELDS = ("subject", "body", "attachment")
RANGE_FIELDS = ("date", "before", "after", "size")
FIELDS = (*ADDRESS_FIELDS, *WORD_FIELDS, "filename", *BOOLEAN_PREFIXES, *RANGE_FIELDS)
GROUPING_FIELDS = (*ADDRESS_FIELDS, *WORD_FIELDS, "filename")
HIDDEN_HOLDING = ("to", "bcc")  # the fields that hold hidden recipients (Reader)
OPERATORS = ("and", "or", "not")
QUOTES = '"\u201c\u201d\u201e'
EXPANSION_LIMIT = 10000  # words one wildcard may stand for; more is an error, not a guess
# Wildcards in one query: each may stand for EXPANSION_LIMIT terms, and matching an OR of
# many expanded wildcards grows faster than their number (20 of them took seconds of one
# core on 10,000 planted words), so a query may not multiply that cost without bound.
PATTERN_LIMIT = 8
QUERY_LIMIT = 10000      # characters of a query
NESTING_LIMIT = 50       # parentheses and NOTs inside each other
SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2,
              "g": 1024**3, "gb": 1024**3}
FIELD_NAME = re.compile(r"([A-Za-z][A-Za-z0-9_-]*):")
WHO = {"from": "a sender", "to": "a recipient", "cc": "a Cc recipient",
       "bcc": "a Bcc or hidden recipient"}


class QuerySyntaxError(ArchiverError):
    """A query the syntax does not know. `column`: 1-based, where the problem is."""

    def __init__(self, query: str, column: int, problem: str):
        self.query, self.column, self.problem = query, column, problem
        super().__init__(f"cannot parse query: {problem} (column {column})")

    def pointer(self) -> str:
        """The query and a caret under the column, for a terminal."""
        return f"  {self.query}\n  {' ' * (self.column - 1)}^"


@dataclass(frozen=True)
class Reader:
    """A searcher who may not see every recipient of the mail they read (a user: services.
    web.access). A message's hidden recipients (its Bcc header, the envelope recipients
    neither To nor Cc shows) are theirs to see, and to find mail by, only in mail they sent
    (`sent`: the Xapian query of that mail, by index.SENDER_PREFIX terms), and where the
    hidden recipient is one of their own addresses (`own`: lowercased in ASCII, services.
    archive.addresses.lowercase_ascii; matched by index.HIDDEN_PREFIX terms), as their
    mailbox would show them. Everything else matches only what To and Cc show."""
    sent: xapian.Query
    own: frozenset[str]


@dataclass
class Context:
    """What building a Xapian query needs beyond the tree: the index (to expand wildcards;
    None when only checking syntax), the time zone and the present moment."""
    database: xapian.Database | None
    tz: dt.tzinfo
    now: float
    legacy: bool = False  # the index is of schema 1 (being rebuilt): match its terms too
    reader: Reader | None = None  # None: one who sees every recipient (admin, auditor)
    recipients_apart: bool = True  # the index's to: prefix holds no hidden recipient
    patterns: int = 0     # wildcards expanded so far (PATTERN_LIMIT)
    counting: bool = True  # False: a second lookup of a wildcard already counted

    def shown_word_prefixes(self) -> tuple[str, ...]:
        """Where a Reader's bare word may be: every field that holds no hidden recipient."""
        if self.recipients_apart:
            return SHOWN_WORD_PREFIXES
        return tuple(prefix for prefix in SHOWN_WORD_PREFIXES if prefix != TEXT_PREFIXES["to"])

    def uncounted(self) -> Context:
        """This context for looking up once more a wildcard counted already."""
        return dataclasses.replace(self, counting=False)

    def count_pattern(self, pattern: str) -> None:
        """One more wildcard; PatternTooBroad past PATTERN_LIMIT of them in one query."""
        if not self.counting:
            return
        self.patterns += 1
        if self.patterns > PATTERN_LIMIT:
            raise PatternTooBroad(f"a query may hold at most {PATTERN_LIMIT} wildcards "
                                  f"(at {pattern!r}); search for fewer at a time")


# -- the tree ----------------------------------------------------------------------------

class Node:
    def query(self, context: Context) -> xapian.Query:
        raise NotImplementedError

    def explain(self, context: Context) -> str:
        raise NotImplementedError

    def children(self) -> list[Node]:
        return []


@dataclass
class Everything(Node):
    def query(self, context):
        return xapian.Query.MatchAll

    def explain(self, context):
        return "every message"


@dataclass
class Junction(Node):
    """AND (all) or OR (any) of its items; NOT items of an AND are subtracted from it."""
    kind: str
    items: list[Node]

    def query(self, context):
        items = [item for item in self.items if not isinstance(item, Ignored)]
        if not items:
            return xapian.Query.MatchAll
        positive = [item.query(context) for item in items if not isinstance(item, Not)]
        negative = [item.item.query(context) for item in items if isinstance(item, Not)]
        if self.kind == "or":
            positive += [_without(xapian.Query.MatchAll, [n]) for n in negative]
            return xapian.Query(xapian.Query.OP_OR, positive)
        base = xapian.Query(xapian.Query.OP_AND, positive) if positive else xapian.Query.MatchAll
        return _without(base, negative)

    def explain(self, context):
        return "all of:" if self.kind == "and" else "any of:"

    def children(self):
        return self.items


@dataclass
class Not(Node):
    item: Node

    def query(self, context):
        return _without(xapian.Query.MatchAll, [self.item.query(context)])

    def explain(self, context):
        return "not:"

    def children(self):
        return [self.item]


@dataclass
class Words(Node):
    """A word as typed (bare or after subject:/body:/attachment:): its pieces, each a term,
    a compound (whole or phrase of parts) or a CJK run (phrase of bigrams)."""
    text: str
    field: str | None

    def query(self, context):
        found = pieces(self.text)
        query = _pieces_query(found, self.field)
        if context.legacy:
            query = xapian.Query(xapian.Query.OP_OR,
                                 [query, _legacy_phrase(self.field, self.text)])
        if self.field is None:
            return _as_read(context, query, lambda: _pieces_in(
                found, context.shown_word_prefixes(), context.shown_word_prefixes()))
        return query

    def explain(self, context):
        found = pieces(self.text)
        where = _where(self.field)
        if len(found) == 1 and len(found[0].parts) == 1:
            as_typed = found[0].parts[0]
            folded = "" if as_typed == self.text else f' (as "{as_typed}": case and accents ignored)'
            return f'the word "{self.text}" {where}{folded}'
        shown = " ".join(_piece_words(piece) for piece in found)
        return f'the word "{self.text}" {where}, as the words {shown} in this order'


@dataclass
class Phrase(Node):
    text: str
    field: str | None

    def query(self, context):
        sequence = [term for piece in pieces(self.text) for term in piece.sequence()]
        if self.field:
            query = _in_field(context, self.field, lambda _, prefix: _phrase(prefix, sequence))
        else:
            query = _as_read(context, _any_phrase(TEXT_PREFIXES.values(), sequence),
                             lambda: _any_phrase(context.shown_word_prefixes(), sequence))
        if context.legacy and context.reader is None:  # schema 1 has no shown recipients
            query = xapian.Query(xapian.Query.OP_OR,
                                 [query, _legacy_phrase(self.field, self.text)])
        return query

    def explain(self, context):
        shown = " ".join(term for piece in pieces(self.text) for term in piece.sequence())
        where = f"in the {_field_words(self.field)}" if self.field else \
            "in any one field (from, to, cc, bcc, subject, body, attachment, filename)"
        return f'the phrase "{self.text}" {where}, as the words {shown} in this order'


@dataclass
class Wildcard(Node):
    """A word that begins with `stem` (`arch*`)."""
    stem: str
    field: str | None

    def query(self, context):
        stem = _stem_term(self.stem)
        typed = f"{self.field}:{self.stem}*" if self.field else f"{self.stem}*"
        query = _expand(context, typed, [(prefix, stem) for prefix in _word_prefixes(self.field)])
        if self.field is None:
            return _as_read(context, query, lambda: _expand(
                context.uncounted(), typed,
                [(prefix, stem) for prefix in context.shown_word_prefixes()]))
        return query

    def explain(self, context):
        return f'a word beginning with "{_stem_term(self.stem)}" {_where(self.field)}'


@dataclass
class Address(Node):
    """A value of from:, to:, cc: or bcc: (module docstring)."""
    field: str
    value: str

    def query(self, context):
        query = _in_field(context, self.field, self._under)
        form, key = _address_form(self.value)
        if context.reader is not None and self.field in HIDDEN_HOLDING and form == "exact" \
                and lowercase_ascii(key) in context.reader.own:  # their own address: theirs
            query = xapian.Query(xapian.Query.OP_OR,
                                 [query, xapian.Query(address_term(key, HIDDEN_PREFIX))])
        return query

    def _under(self, context: Context, prefix: str) -> xapian.Query:
        """This value as the address terms under `prefix` match it."""
        form, key = _address_form(self.value)
        if form == "exact":
            return xapian.Query(term(prefix, ADDRESS_EXACT + fold_whole(key)))
        if form == "local":
            return xapian.Query(term(prefix, ADDRESS_LOCAL + fold_whole(key)))
        if form == "domain":
            return xapian.Query(term(prefix, ADDRESS_DOMAIN + fold_whole(key)))
        if form == "pattern":
            return _glob(context, prefix + ADDRESS_EXACT, fold(key))
        if form == "stem":
            return _expand(context, f"{self.field}:{self.value}", [
                (prefix, _stem_term(key)), (prefix + ADDRESS_EXACT, fold(key))])
        return xapian.Query(xapian.Query.OP_OR, [
            _pieces_in(pieces(self.value), (prefix,), (prefix,)),
            xapian.Query(term(prefix, ADDRESS_LOCAL + fold_whole(self.value))),
            xapian.Query(term(prefix, ADDRESS_DOMAIN + fold_whole(self.value)))])

    def explain(self, context):
        form, key = _address_form(self.value)
        who = WHO[self.field]
        return {
            "exact": f"{who}'s whole address is {key}",
            "local": f'{who}\'s address begins "{key}@"',
            "domain": f"{who}'s address is at {key} or a subdomain of it",
            "pattern": f'{who}\'s whole address matches the pattern "{key}"',
            "stem": f'a word of {who}\'s name or address, or the whole address, begins '
                    f'with "{key}"',
            "words": f'{who}: the word "{self.value}" in a name or address, or "{key}" as '
                     "the whole local part or domain of an address",
        }[form]


@dataclass
class Filename(Node):
    value: str
    quoted: bool = False

    def query(self, context):
        prefix, value = TEXT_PREFIXES["filename"], self.value
        form, key = _filename_form(value, self.quoted)
        if form == "extension":
            return xapian.Query(term(prefix, FILENAME_EXTENSION + fold_whole(key)))
        if form == "pattern":
            subqueries = [_glob(context, prefix + FILENAME_WHOLE, fold(key))]
            if key.endswith("*") and not _has_wildcard(key[:-1]):
                subqueries.append(_expand(context, f"filename:{key}",
                                          [(prefix, _stem_term(key[:-1]))]))
            return xapian.Query(xapian.Query.OP_OR, subqueries)
        words = _phrase_query(prefix, value) if self.quoted else \
            _pieces_query(pieces(value), "filename")
        return xapian.Query(xapian.Query.OP_OR, [
            xapian.Query(term(prefix, FILENAME_WHOLE + fold_whole(value.strip()))),
            xapian.Query(term(prefix, FILENAME_EXTENSION + fold_whole(value.strip()))), words])

    def explain(self, context):
        form, key = _filename_form(self.value, self.quoted)
        if form == "extension":
            return f'an attachment whose file name ends in ".{key}"'
        if form == "pattern":
            return f'an attachment whose whole file name matches the pattern "{key}"'
        return (f'an attachment named "{self.value}", or with the extension "{self.value}", '
                f'or with "{self.value}" among the words of its file name')


@dataclass
class Boolean(Node):
    field: str
    value: str

    def query(self, context):
        prefix = BOOLEAN_PREFIXES[self.field]
        if self.value.endswith("*"):
            return _expand(context, f"{self.field}:{self.value}", [(prefix, self.value[:-1])])
        return xapian.Query(term(prefix, self.value))

    def explain(self, context):
        if self.value.endswith("*"):
            return f'{self.field}: a value beginning with "{self.value[:-1]}"'
        return f"{self.field}: exactly {self.value}"


@dataclass
class Range(Node):
    """A value slot between `low` (inclusive) and `high` (exclusive); None: open."""
    field: str
    text: str
    low: float | None
    high: float | None

    def query(self, context):
        slot = SLOT_SIZE if self.field == "size" else SLOT_DATE
        low = xapian.sortable_serialise(self.low) if self.low is not None else None
        high = (xapian.sortable_serialise(math.nextafter(self.high, -math.inf))
                if self.high is not None else None)
        if low is None:
            return xapian.Query(xapian.Query.OP_VALUE_LE, slot, high)
        if high is None:
            return xapian.Query(xapian.Query.OP_VALUE_GE, slot, low)
        return xapian.Query(xapian.Query.OP_VALUE_RANGE, slot, low, high)

    def explain(self, context):
        if self.field == "size":
            low = f"at least {_size_words(self.low)}" if self.low is not None else ""
            high = f"at most {_size_words(self.high - 1)}" if self.high is not None else ""
            return f"{self.field}:{self.text}: a size of {' and '.join(filter(None, (low, high)))}"
        zone = getattr(context.tz, "key", str(context.tz))
        low = f"on or after {dates.describe(self.low, context.tz)}" if self.low is not None else ""
        high = f"before {dates.describe(self.high, context.tz)}" if self.high is not None else ""
        return f"{self.field}:{self.text}: sent {' and '.join(filter(None, (low, high)))} ({zone})"


@dataclass
class Ignored(Node):
    """A word with no letter or digit (a lone dash): nothing to search for; explained."""
    text: str

    def query(self, context):
        return xapian.Query.MatchAll

    def explain(self, context):
        return f'"{self.text}": ignored, it has no letter or digit'


# -- reading a query -------------------------------------------------------------------------

@dataclass
class Token:
    kind: str      # word, quoted, field, open, close
    text: str
    column: int    # 1-based
    end: int       # index after it


def parse(text: str, tz: dt.tzinfo | None = None, now: float | None = None) -> Node:
    """The tree of a query; raises QuerySyntaxError. An empty query is Everything."""
    parser = _Parser(text, tz or dt.timezone.utc, time.time() if now is None else now)
    return parser.parse()


def to_xapian(tree: Node, context: Context) -> xapian.Query:
    return tree.query(context)


def explanation(tree: Node, context: Context) -> list[str]:
    """The tree in words, one line per node, children indented."""
    lines = []

    def walk(node: Node, depth: int) -> None:
        lines.append("  " * depth + node.explain(context))
        for child in node.children():
            walk(child, depth + 1)
    walk(tree, 0)
    return lines


def tokens(text: str) -> Iterator[Token]:
    """The tokens of a query; QuerySyntaxError for an unbalanced quote or unknown field."""
    at = 0
    while at < len(text):
        char = text[at]
        if char.isspace():
            at += 1
        elif char in "()":
            yield Token("open" if char == "(" else "close", char, at + 1, at + 1)
            at += 1
        elif char in QUOTES:
            close = min((i for i in (text.find(q, at + 1) for q in QUOTES) if i >= 0),
                        default=-1)
            if close < 0:
                raise QuerySyntaxError(text, at + 1, "unbalanced quote: this quote is never "
                                                     "closed")
            yield Token("quoted", text[at + 1:close], at + 1, close + 1)
            at = close + 1
        elif (named := FIELD_NAME.match(text, at)) is not None:
            name = named.group(1).lower()
            if name not in FIELDS:
                raise QuerySyntaxError(text, at + 1, _unknown_field(named.group(1), text, at))
            yield Token("field", name, at + 1, named.end())
            at = named.end()
            if at < len(text) and text[at] not in QUOTES and text[at] != "(" \
                    and not text[at].isspace():
                end = _value_end(text, at)
                yield Token("word", text[at:end], at + 1, end)
                at = end
        elif char in "-+" and at + 1 < len(text) and not text[at + 1].isspace() \
                and text[at + 1] not in ")-+":
            yield Token("minus" if char == "-" else "plus", char, at + 1, at + 1)
            at += 1
        else:
            end = at
            while end < len(text) and not text[end].isspace() and text[end] not in "()" \
                    and text[end] not in QUOTES:
                end += 1
            yield Token("word", text[at:end], at + 1, end)
            at = end


class _Parser:
    def __init__(self, text: str, tz: dt.tzinfo, now: float):
        if len(text) > QUERY_LIMIT:
            raise QuerySyntaxError(text[:80] + "...", QUERY_LIMIT + 1,
                                   f"the query is longer than {QUERY_LIMIT} characters")
        self.text, self.tz, self.now = text, tz, now
        self.tokens = list(tokens(text))
        self.at, self.depth = 0, 0

    def parse(self) -> Node:
        if not self.tokens:
            return Everything()
        tree = self._or(None)
        if self.at < len(self.tokens):
            token = self.tokens[self.at]
            if token.kind == "close":
                self._fail(token, "unbalanced parenthesis: this ) closes no (")
            self._fail(token, f'unexpected "{token.text}"')
        if all(isinstance(leaf, Ignored) for leaf in _leaves(tree)):
            raise QuerySyntaxError(self.text, 1, "the query has no letter or digit to search "
                                                 "for")
        return tree

    # grammar: or := and (OR and)* ; and := unary ([AND] unary)* ; unary := NOT unary |
    # -primary | primary ; primary := ( or ) | field:value | "phrase" | word

    def _or(self, field: str | None) -> Node:
        items = [self._and(field)]
        while self._peek_operator("or"):
            operator = self._next()
            items.append(self._and(field, after=operator))
        return items[0] if len(items) == 1 else Junction("or", items)

    def _and(self, field: str | None, after: Token | None = None) -> Node:
        items = [self._unary(field, after)]
        while True:
            token = self._peek()
            if token is None or token.kind == "close" or self._peek_operator("or"):
                break
            operator = self._next() if self._peek_operator("and") else None
            items.append(self._unary(field, operator))
        return items[0] if len(items) == 1 else Junction("and", items)

    def _unary(self, field: str | None, after: Token | None) -> Node:
        token = self._peek()
        if token is None or token.kind == "close":
            if after is not None:
                self._fail(after, f"{after.text.upper()} needs something after it")
            if token is not None:
                self._fail(token, "unbalanced parenthesis: this ) closes no (")
            self._fail(None, "the query ends too early")
        if token.kind == "word" and token.text.lower() in ("and", "or"):
            self._fail(token, f"{token.text.upper()} needs something before it")
        if self._peek_operator("not"):
            operator = self._next()
            return Not(self._nested(operator, lambda: self._unary(field, operator)))
        if token.kind in ("minus", "plus"):
            self._next()
            node = self._primary(field)
            return Not(node) if token.kind == "minus" and not isinstance(node, Ignored) else node
        return self._primary(field)

    def _primary(self, field: str | None) -> Node:
        token = self._next()
        if token.kind == "open":
            if self._peek() is not None and self._peek().kind == "close":
                self._fail(token, "empty parentheses")
            inner = self._nested(token, lambda: self._or(field))
            closing = self._peek()
            if closing is None or closing.kind != "close":
                self._fail(token, "unbalanced parenthesis: this ( is never closed")
            self._next()
            return inner
        if token.kind == "field":
            return self._field_value(token)
        if token.kind == "quoted":
            return self._quoted(token, field)
        return self._word(token, field)

    def _field_value(self, name: Token) -> Node:
        value = self._peek()
        if value is None or value.column != name.end + 1 or value.kind == "close":
            self._fail(name, f"{name.text}: needs a value right after the colon")
        if value.kind == "open":
            if name.text not in GROUPING_FIELDS:
                self._fail(name, f"{name.text}: takes one value, not a group in parentheses")
            self._next()
            if self._peek() is not None and self._peek().kind == "close":
                self._fail(value, "empty parentheses")
            inner = self._nested(value, lambda: self._or(name.text))  # from:(from:(... too
            if self._peek() is None or self._peek().kind != "close":
                self._fail(value, "unbalanced parenthesis: this ( is never closed")
            self._next()
            return inner
        self._next()
        if value.kind == "quoted":
            return self._quoted(value, name.text)
        return self._word(value, name.text)

    def _quoted(self, token: Token, field: str | None) -> Node:
        if field in ADDRESS_FIELDS or field in WORD_FIELDS or field is None:
            if not pieces(token.text):
                return self._empty(token, field)
            return Phrase(token.text, field)
        if field == "filename":
            return Filename(token.text, quoted=True)
        return self._word(token, field)

    def _word(self, token: Token, field: str | None) -> Node:
        text = token.text
        if field in RANGE_FIELDS:
            return self._range(token, field)
        if field in BOOLEAN_PREFIXES:
            return self._boolean(token, field)
        if field in ADDRESS_FIELDS:
            return Address(field, text)
        if field == "filename":
            return Filename(text)
        star = text.find("*")
        if star >= 0:
            if star != len(text) - 1 or not pieces(text[:-1]):
                self._fail(token, "a wildcard * goes at the end of a word, as in arch*; in "
                                  "from:, to:, cc:, bcc: and filename: it may go anywhere")
            return Wildcard(text[:-1], field)
        if not pieces(text):
            return self._empty(token, field)
        return Words(text, field)

    def _empty(self, token: Token, field: str | None) -> Node:
        if field is not None:
            self._fail(token, f"{field}: the value has no letter or digit to search for")
        return Ignored(token.text)

    def _boolean(self, token: Token, field: str) -> Node:
        value = token.text.lower()
        if field == "has" and value not in HAS_VALUES:
            known = ", ".join(f"has:{v}" for v in sorted(HAS_VALUES))
            self._fail(token, f"has:{value} is not known; known are {known}")
        if "*" in value[:-1] or (field != "type" and value.endswith("*")):
            self._fail(token, f"{field}: takes an exact value" +
                       ("; a wildcard may end it, as in type:image/*" if field == "type" else ""))
        if field == "source" and not _known_source(value):
            known = ", ".join([*(f"source:{kind}" for kind in SOURCE_KINDS),
                               *(f"source:{kind}:NAME" for kind in NAMED_SOURCE_KINDS)])
            self._fail(token, f"source:{value} is not known; known are {known}")
        if field == "digest" and not _is_digest(value):
            self._fail(token, f"digest:{value} is not a digest: {DIGEST_HEX} hex digits "
                       "(archiver show takes 8 or more)")
        return Boolean(field, value)

    def _range(self, token: Token, field: str) -> Node:
        text = token.text
        try:
            if field == "size":
                low, high = _size_bounds(text)
            elif field == "date":
                low, high = dates.bounds(text, self.tz, self.now)
            else:
                if ".." in text:
                    raise ValueError(f"{field}: takes one date, not a range")
                start = dates.period(text, self.tz, self.now).start
                low, high = (start, None) if field == "after" else (None, start)
        except ValueError as exc:
            self._fail(token, f"{field}:{text}: {exc}")
        return Range(field, text, low, high)

    def _nested(self, token: Token, parse_inner):
        self.depth += 1
        if self.depth > NESTING_LIMIT:
            self._fail(token, f"more than {NESTING_LIMIT} parentheses or NOTs inside each other")
        try:
            return parse_inner()
        finally:
            self.depth -= 1

    # -- tokens ----------------------------------------------------------------------------

    def _peek(self) -> Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def _peek_operator(self, name: str) -> bool:
        token = self._peek()
        return token is not None and token.kind == "word" and token.text.lower() == name

    def _next(self) -> Token:
        token = self._peek()
        if token is None:
            self._fail(None, "the query ends too early")
        self.at += 1
        return token

    def _fail(self, token: Token | None, problem: str):
        column = token.column if token is not None else len(self.text) + 1
        raise QuerySyntaxError(self.text, column, problem)


# -- helpers -------------------------------------------------------------------------------

def _value_end(text: str, at: int) -> int:
    """Where a field's value ends: at a space, or at a ) that closes a group around it."""
    depth, end = 0, at
    while end < len(text) and not text[end].isspace():
        if text[end] == "(":
            depth += 1
        elif text[end] == ")":
            if depth == 0:
                break
            depth -= 1
        end += 1
    return end


def _unknown_field(name: str, text: str, at: int) -> str:
    word_end = at
    while word_end < len(text) and not text[word_end].isspace():
        word_end += 1
    return (f'unknown field "{name}:"; the fields are {", ".join(f + ":" for f in FIELDS)}. '
            f'To search for the text itself, put it in quotes: "{text[at:word_end]}"')


def _leaves(node: Node) -> Iterator[Node]:
    if not node.children():
        yield node
    for child in node.children():
        yield from _leaves(child)


def _without(base: xapian.Query, negative: list[xapian.Query]) -> xapian.Query:
    if not negative:
        return base
    return xapian.Query(xapian.Query.OP_AND_NOT, base,
                        xapian.Query(xapian.Query.OP_OR, negative))


def _where(field: str | None) -> str:
    return f"in the {_field_words(field)}" if field else "anywhere"


def _known_source(value: str) -> bool:
    """A source the store records (index.SOURCE_KINDS): a kind, or KIND:NAME of a kind
    that carries a name (journal:NAME, mirror:NODE)."""
    kind, colon, name = value.partition(":")
    if not colon:
        return kind in SOURCE_KINDS
    return kind in NAMED_SOURCE_KINDS and name != ""


def _is_digest(value: str) -> bool:
    return len(value) == DIGEST_HEX and all(c in "0123456789abcdef" for c in value)


def _field_words(field: str) -> str:
    return {"subject": "subject", "body": "body", "attachment": "text of an attachment",
            "filename": "file name of an attachment", "from": "sender", "to": "recipients",
            "cc": "Cc recipients", "bcc": "Bcc and hidden recipients"}[field]


def _piece_words(piece: Piece) -> str:
    return " ".join(piece.sequence())


def _pieces_query(found: list[Piece], field: str | None) -> xapian.Query:
    """Words as typed in `field` (None: bare, anywhere): _pieces_in where they are."""
    word_prefixes = _word_prefixes(field)
    return _pieces_in(found, word_prefixes,
                      word_prefixes if field else tuple(TEXT_PREFIXES.values()))


def _pieces_in(found: list[Piece], word_prefixes: tuple[str, ...],
               phrase_prefixes: tuple[str, ...]) -> xapian.Query:
    """Words as typed: one plain word is a term under any of `word_prefixes`; anything
    longer (a compound, a CJK run, several pieces) is its whole term there, or the phrase
    of its parts under one of `phrase_prefixes`."""
    if len(found) == 1 and len(found[0].parts) == 1:
        return _any_term(word_prefixes, found[0].parts[0])
    sequence = [term for piece in found for term in piece.sequence()]
    alternatives = [_phrase(p, sequence) for p in phrase_prefixes]
    if len(found) == 1 and found[0].whole:
        alternatives.insert(0, _any_term(word_prefixes, found[0].whole))
    return xapian.Query(xapian.Query.OP_OR, alternatives)


def _in_field(context: Context, field: str, under) -> xapian.Query:
    """`under(context, prefix)`, a query of terms under a prefix, for `field` as the
    searcher may match it. to: is the To and Cc recipients (to's prefix) and the hidden
    ones (bcc's prefix; an index before RECIPIENTS_APART_SCHEMA holds them under to's too);
    a Reader matches hidden recipients only in mail they sent."""
    if field not in HIDDEN_HOLDING:
        return under(context, TEXT_PREFIXES[field])
    hidden, shown = [under(context, TEXT_PREFIXES["bcc"])], []
    if field == "to":
        to = under(context.uncounted(), TEXT_PREFIXES["to"])
        (shown if context.recipients_apart else hidden).append(to)
    if context.reader is not None:
        hidden = [_filtered(xapian.Query(xapian.Query.OP_OR, hidden), context.reader.sent)]
    return xapian.Query(xapian.Query.OP_OR, shown + hidden)


def _as_read(context: Context, everywhere: xapian.Query, shown) -> xapian.Query:
    """A bare word's query as the searcher may match it: `everywhere` for one who sees
    every recipient; for a Reader, `shown()` (the query over the fields every recipient
    sees) or `everywhere` in mail they sent."""
    if context.reader is None:
        return everywhere
    return xapian.Query(xapian.Query.OP_OR,
                        [shown(), _filtered(everywhere, context.reader.sent)])


def _filtered(query: xapian.Query, only: xapian.Query) -> xapian.Query:
    """`query`, matching only documents `only` matches too (its weights kept)."""
    return xapian.Query(xapian.Query.OP_FILTER, query, only)


def _word_prefixes(field: str | None) -> tuple[str, ...]:
    """Where a word of `field` is indexed; a bare word (None): index.BARE_WORD_PREFIXES."""
    return (TEXT_PREFIXES[field],) if field else BARE_WORD_PREFIXES


def _any_term(prefixes: tuple[str, ...], word: str) -> xapian.Query:
    if len(prefixes) == 1:
        return xapian.Query(prefixes[0] + word)
    return xapian.Query(xapian.Query.OP_OR, [xapian.Query(prefix + word) for prefix in prefixes])


def _any_phrase(prefixes, sequence: list[str]) -> xapian.Query:
    return xapian.Query(xapian.Query.OP_OR, [_phrase(prefix, sequence) for prefix in prefixes])


def _phrase(prefix: str, sequence: list[str]) -> xapian.Query:
    if len(sequence) == 1:
        return xapian.Query(prefix + sequence[0])
    return xapian.Query(xapian.Query.OP_PHRASE, [prefix + term for term in sequence],
                        len(sequence))


def _legacy_phrase(field: str | None, text: str) -> xapian.Query:
    """`text` as schema 1 (Xapian's TermGenerator) indexed it: lowercased words, with
    positions under each prefix but body: and attachment:, whose only positions were in
    the unprefixed copy."""
    words = re.findall(r"\w+", text.lower())
    if not words:
        return xapian.Query.MatchNothing
    if field in ("body", "attachment"):
        prefix = TEXT_PREFIXES[field]
        return xapian.Query(xapian.Query.OP_AND, [_phrase("", words)] + [
            xapian.Query(prefix + word) for word in words])
    return _phrase(TEXT_PREFIXES[field] if field else "", words)


def _phrase_query(prefix: str, text: str) -> xapian.Query:
    return _phrase(prefix, [term for piece in pieces(text) for term in piece.sequence()])


def _stem_term(stem: str) -> str:
    """The folded beginning of a word, its joiners kept (e-ma* begins e-mail-migration)."""
    found = pieces(stem)
    if len(found) == 1:
        return found[0].whole or "".join(found[0].parts)
    return fold(stem)


def _expand(context: Context, typed: str, stems: list[tuple[str, str]]) -> xapian.Query:
    """The terms beginning with any of `stems` ((prefix, folded stem) pairs), ORed: one
    wildcard, as `typed`, looked up under one or more prefixes. It counts as one of PATTERN_LIMIT and may stand
    for at most EXPANSION_LIMIT distinct words (its terms without their prefixes), wherever
    they are indexed: PatternTooBroad naming it as typed, never an index prefix. (A bare
    word's three places can make that up to three times as many terms to match as when
    body words had an unprefixed copy: still bounded.)"""
    context.count_pattern(typed)
    if context.database is not None:
        _bound_expansion(context.database, typed, stems)
    expansions = [xapian.Query(xapian.Query.OP_WILDCARD, prefix + stem, EXPANSION_LIMIT,
                               xapian.Query.WILDCARD_LIMIT_ERROR, xapian.Query.OP_OR)
                  for prefix, stem in stems]
    return expansions[0] if len(expansions) == 1 else \
        xapian.Query(xapian.Query.OP_OR, expansions)


def _bound_expansion(database: xapian.Database, typed: str,
                     stems: list[tuple[str, str]]) -> None:
    words: set[bytes] = set()
    for prefix, stem in stems:
        for item in database.allterms(prefix + stem):
            words.add(item.term[len(prefix.encode()):])
            if len(words) > EXPANSION_LIMIT:
                raise PatternTooBroad(f'the wildcard "{typed}" stands for more than '
                                      f"{EXPANSION_LIMIT} words; make its beginning longer")


def _has_wildcard(text: str) -> bool:
    return "*" in text or "?" in text


def _glob(context: Context, prefix: str, pattern: str) -> xapian.Query:
    """The terms under `prefix` whose rest matches a shell pattern (* and ?), ORed."""
    if context.database is None:  # checking syntax, or explaining without the index
        return xapian.Query(prefix + pattern)
    context.count_pattern(pattern)
    literal = re.split(r"[*?\[]", pattern, 1)[0]
    matcher = re.compile(fnmatch.translate(pattern))
    found = []
    for item in context.database.allterms(prefix + literal):
        term = item.term.decode("utf-8", "replace")
        if matcher.fullmatch(term[len(prefix):]):
            found.append(term)
            if len(found) > EXPANSION_LIMIT:
                raise PatternTooBroad(f'the pattern "{pattern}" matches more than '
                                      f"{EXPANSION_LIMIT} values; make it narrower")
    return xapian.Query(xapian.Query.OP_OR, [xapian.Query(term) for term in found]) \
        if found else xapian.Query.MatchNothing


class PatternTooBroad(ArchiverError):
    pass


def _address_form(value: str) -> tuple[str, str]:
    """How a from:/to:/cc:/bcc: value is read: (form, key)."""
    if value.startswith("*@") and not _has_wildcard(value[2:]) and len(value) > 2:
        return "domain", value[2:]
    if value.startswith("@") and len(value) > 1 and not _has_wildcard(value):
        return "domain", value[1:]
    if _has_wildcard(value):
        if value.endswith("*") and "@" not in value and not _has_wildcard(value[:-1]):
            return "stem", value[:-1]
        return "pattern", value
    if value.endswith("@") and len(value) > 1:
        return "local", value[:-1]
    if "@" in value:
        return "exact", value
    return "words", value


def _filename_form(value: str, quoted: bool) -> tuple[str, str]:
    if not quoted:
        if value.startswith("*.") and not _has_wildcard(value[2:]) and len(value) > 2:
            return "extension", value[2:]
        if value.startswith(".") and len(value) > 1 and not _has_wildcard(value):
            return "extension", value[1:]
        if _has_wildcard(value):
            return "pattern", value
    return "name", value


def _size_bounds(text: str) -> tuple[float | None, float | None]:
    if ".." in text:
        low_text, high_text = text.split("..", 1)
        if not low_text and not high_text:
            raise ValueError("a range needs at least one end, as in 10k..")
    else:
        low_text = high_text = text
    low = _bytes(low_text) if low_text else None
    high = _bytes(high_text) + 1 if high_text else None  # high is exclusive
    if low is not None and high is not None and low >= high:
        raise ValueError(f"the range is reversed: {low_text} is more than {high_text}")
    return low, high


def _bytes(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text.lower())
    if not match or match.group(2) not in SIZE_UNITS:
        raise ValueError("expected a number of bytes, or with k, M or G, as in 10k..2M")
    return float(match.group(1)) * SIZE_UNITS[match.group(2)]


def _size_words(count: float) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if count >= size:
            return f"{count / size:g} {unit}"
    return f"{count:g} bytes"
