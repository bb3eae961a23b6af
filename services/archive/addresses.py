"""The one address parser: RFC 5322 section 3.4 address lists (with RFC 6532 UTF-8), strict
about what an address is and tolerant of everything else.

Who may read a message is decided by the addresses this module finds (services.web.access,
the index's address terms), so it never takes a display name, a comment, a group name or
free text for an address, whatever the header's size or damage:

- `Name <addr>`: the address is what the angle brackets hold; the display name before them
  is only ever a name, even unquoted and full of '@' (`bob@example.com <dave@example.com>`
  is dave's).
- A bare entry is an address only if, comments and whitespace aside, it is exactly an
  addr-spec (local-part "@" domain); `(bob@example.com)` is a comment.
- A malformed entry (two addresses without a comma, an unclosed '<', junk after '>') yields
  nothing, and only it: the other entries of the list are still read. Quoted strings and
  comments that are never closed run to the end of the header, as RFC 5322 reads them.
- Groups (`team: a@x, b@y;`) yield their members; the group's name is a name.
- Addresses are lowercased in ASCII only (lowercase_ascii): str.lower() maps some non-ASCII
  letters to ASCII ones (U+212A KELVIN SIGN to 'k'), which would make `\u212aate@x` kate's.

One pass over the header, one token at a time: linear in the header's size, with no
recursion and no limit on the number of entries (a 64 KiB or 10 MB list is read whole;
about 2 microseconds a token here). An entry of more than ENTRY_TOKEN_LIMIT tokens is
malformed: no mailbox is that long, and memory stays bounded by one entry.
The stdlib's parsers are either loose (email.utils.getaddresses gives up on a whole header
for one bad entry) or quadratic (email._header_value_parser: 10 s for 100 KB).
"""
from __future__ import annotations

import itertools
import re
import string
from dataclasses import dataclass
from typing import Iterator

# One character of atext (RFC 5322 3.2.3: A-Z a-z 0-9 !#$%&'*+-/=?^_`{|}~) or any non-ASCII
# character (RFC 6532 UTF8-non-ascii), written as what it is not: the same set as the class
# of those ranges, but compiled in microseconds where a class reaching U+10FFFF took 27 ms
# (half a second of every service's start under TCG). tests/unit/archive/test_addresses
# checks both classes against every code point.
_ATEXT = r"[^\x00-\x20\"(),.:;<>@\[\\\]\x7f]"
# ASCII that is neither atext, nor blank, nor a character a token starts with: controls but
# TAB, CR and LF, ")", "\", "]" and DEL.
_JUNK = r"[\x00-\x08\x0b\x0c\x0e-\x1f)\\\]\x7f]"
_TOKEN = re.compile(
    r"(?P<space>[ \t\r\n]+)"
    rf"|(?P<atom>{_ATEXT}+)"
    r'|(?P<quoted>"(?:[^"\\]++|\\.)*+(?:"|\\?\Z))'  # to its closing quote, or the end
    r'|(?P<literal>\[[^\[\]\\\s,;<>"()]*\])'  # a domain literal: [192.0.2.1], never a list
    r"|(?P<special>[<>@:;,.])"
    r"|(?P<comment>\()"                              # read by _comment_end (they nest)
    rf'|(?P<junk>{_JUNK}+|.)', re.DOTALL)  # a run, or a lone '['

_COMMENT_DELIMITERS = re.compile(r"[()\\]")
# Possessive repeats: a greedy group keeps a record a repeat (a quoted display name of 16
# MiB took 3.3 GB); each group's try fails, if it does, before its inner repeat has run
# (see header_blocks._FOLDED on Python 3.11.2's possessive repeats).
_DOT_ATOM = re.compile(rf"{_ATEXT}++(?:\.{_ATEXT}{_ATEXT}*+)*+")
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
_SIMPLE = re.compile(rf"{_DOT_ATOM.pattern}@{_DOT_ATOM.pattern}")
_ATOM = re.compile(f"{_ATEXT}+")
# `Name Words <addr>`: a display name of atoms (whitespace between them) and a dot-atom
# addr-spec in angle brackets, the commonest entry there is.
_NAMED_SIMPLE = re.compile(rf"(?P<name>{_ATEXT}+(?:[ \t\r\n]+{_ATEXT}+)*)[ \t\r\n]*"
                           rf"<(?P<address>{_SIMPLE.pattern})>")
_NO_GROUPS_QUOTES_OR_COMMENTS = re.compile(r'[^":;(]*')
ENTRY_TOKEN_LIMIT = 256  # a long display name is ~30 tokens (words, dots, quoted strings)
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


@dataclass(frozen=True)
class Mailbox:
    """One address of a header: `address` lowercased (A-Z only, lowercase_ascii),
    `display_name` as written (quotes and escapes removed, RFC 2047 words still encoded; a
    comment when there is no name)."""
    display_name: str
    address: str


def lowercase_ascii(address: str) -> str:
    """`address` with A-Z lowercased and every other character as it is: how an address
    (a header's, an envelope recipient, a user's own) is compared for access. Not
    str.lower() or casefold(): they map some non-ASCII characters onto ASCII letters
    (U+212A KELVIN SIGN to 'k', U+0130 to 'i' and a combining dot, U+017F LONG S to 's' by
    casefold), so a stranger's address would become a user's. Non-ASCII local parts
    (RFC 6532) are compared exactly, as RFC 5321 leaves their case to the receiving host."""
    return address.translate(_ASCII_LOWER)

@dataclass(slots=True)
class _Token:
    kind: str    # atom, quoted, literal, special, comment, junk
    text: str
    closed: bool = True  # False: a quoted string or comment the header never closes
    spaced: bool = False  # whitespace came before it (names keep their spacing)


def parse_address_list(value: str) -> list[Mailbox]:
    """Every well-formed mailbox of an address-list header value (From, To, Cc, Bcc...),
    in order; malformed entries are left out. `value` is unfolded text; never raises."""
    if _NO_GROUPS_QUOTES_OR_COMMENTS.fullmatch(value):
        mailboxes = _plain_mailboxes(value)
    else:
        mailboxes = map(_mailbox, _entries(_tokens(value)))
    return [mailbox for mailbox in mailboxes if mailbox is not None]


def _tokens(value: str) -> Iterator[_Token]:
    position, spaced = 0, False
    while position < len(value):
        match = _TOKEN.match(value, position)
        kind, text = match.lastgroup, match.group()
        position, closed = match.end(), True
        if kind == "space":
            spaced = True
            continue
        if kind == "comment":
            position, closed = _comment_end(value, match.start())
            text = value[match.start() + 1:position - 1 if closed else position]
        elif kind == "quoted":
            closed = len(text) > 1 and text.endswith('"') and not _escaped_end(text)
        yield _Token(kind, text, closed, spaced)
        spaced = False


def _plain_mailboxes(value: str) -> Iterator[Mailbox | None]:
    """The mailbox of each entry (None: malformed) of a list without groups, quotes or
    comments: then every ',' separates entries (a domain literal holds none). The common
    entries, `addr` and `Name Words <addr>` (dot-atoms), are read with one match each, not
    a token at a time: the same mailboxes (tests/unit/archive/test_addresses), some 2 us
    an entry instead of 12."""
    for text in value.split(","):
        text = text.strip(" \t\r\n")
        if _SIMPLE.fullmatch(text) and _dot_atom_tokens(text) <= ENTRY_TOKEN_LIMIT:
            yield Mailbox("", lowercase_ascii(text))
        elif len(text) <= ENTRY_TOKEN_LIMIT and (named := _NAMED_SIMPLE.fullmatch(text)):
            # (at most a token a character: never over the limit the tokens would meet;
            # atext holds Unicode blanks such as U+00A0, which the name's ends lose)
            yield Mailbox(" ".join(_ATOM.findall(named["name"])).strip(),
                          lowercase_ascii(named["address"]))
        elif text:
            entry = list(itertools.islice(_tokens(text), ENTRY_TOKEN_LIMIT + 1))
            yield _mailbox(entry) if len(entry) <= ENTRY_TOKEN_LIMIT else None


def _dot_atom_tokens(address: str) -> int:
    """The tokens of a dot-atom `local@domain`: its atoms, its dots and the '@'."""
    return 2 * address.count(".") + 3


def _escaped_end(text: str) -> bool:
    """Whether the final '"' of a quoted string is a quoted-pair (odd backslashes before)."""
    body = text[1:-1]
    return (len(body) - len(body.rstrip("\\"))) % 2 == 1


def _comment_end(value: str, start: int) -> tuple[int, bool]:
    """The end of the comment opening at `start` (past its ')'), nested comments and
    quoted-pairs included; (len(value), False) when it is never closed."""
    depth, position = 0, start
    for delimiter in _COMMENT_DELIMITERS.finditer(value, start):
        if delimiter.start() < position:
            continue  # the character a backslash quoted
        character = delimiter.group()
        if character == "\\":
            position = delimiter.start() + 2
            continue
        depth += 1 if character == "(" else -1
        if depth == 0:
            return delimiter.end(), True
    return len(value), False


def _entries(tokens: Iterator[_Token]) -> Iterator[list[_Token]]:
    """The entries of the list: split at ',' (and ';', which ends a group and which people
    type as a separator); a group's name (before its ':') is dropped, its members kept.
    A nested group makes the entry malformed (an entry holding a junk token)."""
    entry: list[_Token] = []
    in_group = in_angle = False
    for token in tokens:
        text = token.text if token.kind == "special" else ""
        if text in (",", ";"):
            yield entry
            entry, in_angle = [], False
            in_group = in_group and text == ","
        elif text == ":" and not in_angle and not in_group:  # an obs-route's ':' is in <>
            entry, in_group = [], True  # the group's display name: never an address
        else:
            if text == ":" and not in_angle:
                token = _Token("junk", ":")  # a group in a group
            in_angle = (in_angle or text == "<") and text != ">"
            if len(entry) < ENTRY_TOKEN_LIMIT:
                entry.append(token)
            else:
                entry[-1] = _Token("junk", "", closed=False)  # too long: malformed
    yield entry


def _mailbox(entry: list[_Token]) -> Mailbox | None:
    """The mailbox of one entry, or None when the entry is empty or malformed."""
    if any(not token.closed for token in entry):
        return None
    comments = [token.text for token in entry if token.kind == "comment"]
    tokens = [token for token in entry if token.kind != "comment"]
    angles = [i for i, token in enumerate(tokens) if token.kind == "special"
              and token.text in "<>"]
    if not angles:
        address = _addr_spec(tokens)
        return Mailbox(_comment_name(comments), address) if address else None
    if len(angles) != 2 or tokens[angles[0]].text != "<" or angles[1] != len(tokens) - 1:
        return None  # an unclosed or doubled angle, or text after '>'
    address = _addr_spec(_without_route(tokens[angles[0] + 1:angles[1]]))
    if not address:
        return None
    name = "".join((" " if token.spaced else "") + _unquoted(token)
                   for token in tokens[:angles[0]]).strip()
    return Mailbox(name or _comment_name(comments), address)


def _without_route(tokens: list[_Token]) -> list[_Token]:
    """An angle-addr's content without an obs-route (`@relay1,@relay2:`, RFC 5322 4.4)."""
    if tokens and tokens[0].text == "@" and tokens[0].kind == "special":
        colons = [i for i, token in enumerate(tokens) if token.kind == "special"
                  and token.text == ":"]
        return tokens[colons[0] + 1:] if colons else []
    return tokens


def _addr_spec(tokens: list[_Token]) -> str | None:
    """local-part "@" domain, lowercased in ASCII, or None. The local part is words joined
    by dots (a dot-atom, quoted strings, or the obsolete mix); the domain a dot-atom or a
    literal."""
    ats = [i for i, token in enumerate(tokens) if token.kind == "special" and token.text == "@"]
    if len(ats) != 1:
        return None
    local, domain = _dotted(tokens[:ats[0]], ("atom", "quoted")), tokens[ats[0] + 1:]
    if local is None:
        return None
    if len(domain) == 1 and domain[0].kind == "literal":
        domain_text = domain[0].text
    else:
        words = _dotted(domain, ("atom",))
        if words is None:
            return None
        domain_text = ".".join(token.text for token in words)
    return lowercase_ascii(f"{_local_part(local)}@{domain_text}")


def _dotted(tokens: list[_Token], word_kinds: tuple[str, ...]) -> list[_Token] | None:
    """The words of `word (". " word)*`, or None when the tokens are not that."""
    words = tokens[0::2]
    dots = tokens[1::2]
    if not tokens or len(tokens) % 2 == 0:
        return None
    if any(word.kind not in word_kinds for word in words):
        return None
    if any(dot.kind != "special" or dot.text != "." for dot in dots):
        return None
    return words


def _local_part(words: list[_Token]) -> str:
    """The local part in its simplest form: `"bob"` is bob, `"john doe"` stays quoted."""
    text = ".".join(_unquoted(word) for word in words)
    if _DOT_ATOM.fullmatch(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unquoted(token: _Token) -> str:
    if token.kind == "quoted":
        return _QUOTED_PAIR.sub(r"\1", token.text[1:-1])
    return token.text


def _comment_name(comments: list[str]) -> str:
    """A comment stands for the name when there is none: `dave@x.org (Dave)`."""
    return " ".join(_QUOTED_PAIR.sub(r"\1", comment).strip() for comment in comments).strip()
