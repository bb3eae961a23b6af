"""Hostile Content-Type fields (review h174), placed on a leaf attachment, an attached
message/rfc822, a nested multipart and the message itself: messages whose recorded types
must all be clean `type/subtype` pairs (RFC 2045 5.1 tokens, RFC 6838 4.2 lengths), their
bodies still read."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

# What every recorded type must be: RFC 2045 tokens of RFC 6838 4.2's 127 characters at
# most, lower-cased.
CLEAN_TYPE = re.compile(r"[a-z0-9!#$%&'*+.^_`{|}~-]{1,127}/[a-z0-9!#$%&'*+.^_`{|}~-]{1,127}")
PAST_16_KB = 9_000  # folds of two or three characters: the field past the parser's 16 KB


@dataclass(frozen=True)
class Position:
    """Where the hostile field stands: its type (main, sub), its parameters, and how the
    message around it is made of the field's lines (each word in `words` unique to it)."""
    main: bytes
    sub: bytes
    parameters: bytes
    around: Callable[[bytes, str], bytes]


def _leaf(field: bytes, word: str) -> bytes:
    return _mixed(word, field + b"\r\nContent-Disposition: attachment; filename=notes.dat"
                  b"\r\n\r\nleaf" + word.encode() + b"\r\n")


def _attached_message(field: bytes, word: str) -> bytes:
    return _mixed(word, field + b"\r\n\r\n" + inner_message(word))


def _nested_multipart(field: bytes, word: str) -> bytes:
    return _mixed(word, field + b"\r\n\r\n--inner\r\nContent-Type: text/plain\r\n\r\nnested"
                  + word.encode() + b"\r\n--inner\r\nContent-Type: application/pdf\r\n\r\n"
                  b"%PDF-1.4\r\n--inner--\r\n")


def _top(field: bytes, word: str) -> bytes:
    return (HEAD + field + b"\r\n\r\n--o\r\nContent-Type: text/plain\r\n\r\n"
            + word.encode() + b"\r\n--o\r\nContent-Type: text/csv\r\n\r\na,b\r\n--o--\r\n")


# (Its Subject holds no word of the body: a search by one finds the body read.)
HEAD = (b"From: alice@example.org\r\nTo: bob@example.com\r\nSubject: hostile type\r\n"
         b"MIME-Version: 1.0\r\n")


def _mixed(word: str, hostile_part: bytes) -> bytes:
    """A multipart/mixed of a text part holding `word`, then the hostile part."""
    return (HEAD + b"Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n"
            b"Content-Type: text/plain\r\n\r\n" + word.encode() + b"\r\n--o\r\n"
            + hostile_part + b"\r\n--o--\r\n")


def inner_message(word: str) -> bytes:
    """The attached message: its Subject "innersubject" + word, its body "inner" + word."""
    return (b"From: carol@example.net\r\nSubject: innersubject" + word.encode()
            + b"\r\n\r\ninner" + word.encode() + b"\r\n")


POSITIONS = {
    "leaf": Position(b"application", b"x-thing", b"", _leaf),
    "message": Position(b"message", b"rfc822", b"", _attached_message),
    "multipart": Position(b"multipart", b"mixed", b"boundary=inner", _nested_multipart),
    "top": Position(b"multipart", b"mixed", b"boundary=o", _top),
}


def _with(value: bytes, parameters: bytes) -> bytes:
    return value + (b"; " + parameters if parameters else b"")


def _type(p: Position) -> bytes:
    return p.main + b"/" + p.sub


# Each: the Content-Type field's lines (no line end after the last) for a position.
SHAPES: dict[str, Callable[[Position], bytes]] = {
    "blank-folds-past-16kb": lambda p: _with(_type(p) + b"\r\n \t" * PAST_16_KB, p.parameters),
    "parameter-folds-past-16kb": lambda p: _with(_type(p), p.parameters) + b"".join(
        b";\r\n x%d=y" % n for n in range(PAST_16_KB // 2)),
    "word-folds-past-16kb": lambda p: _with(_type(p) + b"\r\n x" * PAST_16_KB, p.parameters),
    "blank-folds-past-16kb-before-subtype":
        lambda p: _with(p.main + b"/" + b"\r\n " * PAST_16_KB + p.sub, p.parameters),
    "fold-inside-type": lambda p: _with(p.main[:3] + b"\r\n " + p.main[3:] + b"/" + p.sub,
                                        p.parameters),
    "fold-after-slash": lambda p: _with(p.main + b"/\r\n " + p.sub, p.parameters),
    "fold-inside-subtype": lambda p: _with(p.main + b"/" + p.sub[:3] + b"\r\n " + p.sub[3:],
                                           p.parameters),
    "lf-fold": lambda p: _with(p.main + b"\n /\n " + p.sub, p.parameters),
    "bare-cr-in-subtype": lambda p: _with(p.main + b"/" + p.sub[:2] + b"\r" + p.sub[2:],
                                          p.parameters),
    "nul-in-subtype": lambda p: _with(p.main + b"/" + p.sub[:2] + b"\0" + p.sub[2:],
                                      p.parameters),
    "8-bit-after-subtype": lambda p: _with(_type(p) + b"\xe9", p.parameters),
    "8-bit-before-type": lambda p: _with(b"\xe9" + _type(p), p.parameters),
    "utf-8-subtype": lambda p: _with(_type(p) + "ü".encode(), p.parameters),
    "control-characters": lambda p: _with(_type(p) + b"\x0b\x0c\x1b", p.parameters),
    "rfc2231-continuations": lambda p: _with(_type(p), p.parameters)
        + b"; name*0*=utf-8''a%0D%0A; name*1=b",
    "rfc2231-star-on-subtype": lambda p: _with(_type(p) + b"*0*=us-ascii''x", p.parameters),
    "comments": lambda p: _with(b"(c) " + p.main + b" / " + p.sub + b" (d)", p.parameters),
    "nested-comment": lambda p: _with(_type(p) + b" (a (b) c)", p.parameters),
    "unclosed-comment": lambda p: _with(_type(p) + b" (open", p.parameters),
    "semicolon-in-comment": lambda p: _with(_type(p) + b" (a;b)", p.parameters),
    "comments-past-16kb": lambda p: _with(_type(p) + b"(" * 9_000 + b")" * 9_000,
                                          p.parameters),
    # More comments than media_types.COMMENT_LIMIT: an invalid type (review 181 F1).
    "sibling-comments": lambda p: b"()" * 8_150 + b" " + _with(_type(p), p.parameters),
    "long-subtype": lambda p: _with(p.main + b"/" + b"x" * 200, p.parameters),
    "long-type": lambda p: _with(b"x" * 200 + b"/" + p.sub, p.parameters),
    "longest-subtype": lambda p: _with(p.main + b"/" + b"y" * 127, p.parameters),
    "missing-subtype": lambda p: _with(p.main + b"/", p.parameters),
    "no-slash": lambda p: _with(p.main, p.parameters),
    "missing-type": lambda p: _with(b"/" + p.sub, p.parameters),
    "two-slashes": lambda p: _with(_type(p) + b"/x", p.parameters),
    "quoted": lambda p: _with(b'"' + _type(p) + b'"', p.parameters),
    "encoded-word": lambda p: _with(b"=?utf-8?q?" + _type(p) + b"?=", p.parameters),
    "upper-case": lambda p: _with(_type(p).upper(), p.parameters),
    # Common in real mail: parameters after a blank instead of a ';' (review 175 F3).
    "no-semicolon": lambda p: _type(p) + b' name="part.dat" ' + p.parameters,
    "blanks-around": lambda p: _with(b"\t " + p.main + b" \t/ " + p.sub + b" \t", p.parameters),
    "empty": lambda p: b"",
    "duplicate-long-second": lambda p: _with(_type(p), p.parameters)
        + b"\r\nContent-Type: x/" + b"y" * 20_000,
    "duplicate-long-first": lambda p: b"x" + b"\r\n y" * PAST_16_KB + b"/y"
        + b"\r\nContent-Type: " + _with(_type(p), p.parameters),
}
# The shapes whose type is the position's once read as RFC 2045 says (folds, blanks and
# comments around the tokens, any case, a first field followed by another, whatever
# follows the subtype's token, a value quoted whole: review 181 F2).
RECOGNISED = ("quoted", "blank-folds-past-16kb", "parameter-folds-past-16kb", "fold-after-slash",
              "lf-fold", "rfc2231-continuations", "comments", "nested-comment",
              "upper-case", "blanks-around", "duplicate-long-second", "no-semicolon",
              "8-bit-after-subtype", "utf-8-subtype", "control-characters",
              "unclosed-comment", "semicolon-in-comment", "comments-past-16kb",
              "word-folds-past-16kb", "two-slashes")
# Of those, the ones whose multipart keeps its boundary: past the parser's 16 KB, or with
# no ';' before it, it has none (a multipart of no parts, as it was before).
RECOGNISED_WITH_PARAMETERS = tuple(shape for shape in RECOGNISED
                                   if shape not in ("blank-folds-past-16kb",
                                                    "word-folds-past-16kb", "comments-past-16kb",
                                                    "no-semicolon"))


def hostile_message(shape: str, position: str, word: str) -> bytes:
    """The message of `shape` at `position`, its words made unique by `word`."""
    where = POSITIONS[position]
    return where.around(b"Content-Type: " + SHAPES[shape](where), word)


def letters(number: int) -> str:
    """A number as a word of letters (the indexer keeps digits apart from words)."""
    return "".join("abcdefghij"[int(digit)] for digit in str(number))


# Review 181 F2: a valid main type whose subtype is missing, empty or no token, and whole
# values in quotes. Each kind is written for every main type, with a subtype it has; each
# value is written with its parameters (`{p}`, the part's own: a multipart's boundary).
MAIN_TYPES = {"application": "pdf", "audio": "mpeg", "font": "woff2", "image": "png",
              "message": "rfc822", "model": "gltf-binary", "multipart": "mixed",
              "text": "csv", "video": "mp4", "x-custom": "thing"}
UNUSABLE_SUBTYPE_KINDS = {
    "empty": "{m}/; {p}",
    "no-slash": "{m}; {p}",
    "blanks-around-slash": "{m} / ; {p}",
    "folded-after-slash": "{m}/\r\n ; {p}",
    "comment-for-subtype": "{m}/ ({s}); {p}",
    "upper-case": "{M}/; {p}",
    "illegal-first-character": "{m}/@{s}; {p}",
    "bracketed": "{m}/[{s}]; {p}",
    "quoted-subtype": '{m}/"{s}"; {p}',
    "8-bit-subtype": "{m}/\xe9{s}; {p}",
    "control-character-subtype": "{m}/\x0b{s}; {p}",
    "encoded-word-subtype": "{m}/=?utf-8?q?{s}?=; {p}",
    "two-slashes": "{m}//{s}; {p}",
    "backslash-for-slash": "{m}\\{s}; {p}",
    "subtype-past-127": "{m}/" + "s" * 128 + "; {p}",
    "quoted-empty": '"{m}/"; {p}',
    "quoted-no-slash": '"{m}"; {p}',
}
QUOTED_KINDS = {
    "quoted": '"{m}/{s}"; {p}',
    "quoted-upper-case": '"{M}/{S}"; {p}',
    "blanks-inside-quotes": '" {m} / {s} "; {p}',
    "comment-then-quoted": '(c) "{m}/{s}"; {p}',
    "quoted-pair": '"{m}\\/{s}"; {p}',
    "folded-inside-quotes": '"{m}/\r\n {s}"; {p}',
    "unclosed-quote": '"{m}/{s}; {p}',
    "quoted-then-blank-parameters": '"{m}/{s}" {p}',
    "blanks-around-slash-between-names": "{m} / {s}; {p}",
    "upper-case-names": "{M}/{S}; {p}",
}
# Of no valid main type: invalid (RFC 2045 5.2), text/plain.
INVALID_MAIN_TYPES = ["/pdf; {p}", "foo/; {p}", '"foo/"; {p}', '""; {p}', '"/pdf"; {p}',
                      '"; {p}', "(c); {p}", "; {p}", '"\\"image/png\\""; {p}',
                      "appli\r\n cation/pdf; {p}"]


def unusable_subtype(main: str) -> str:
    """What a valid main type whose subtype is missing, empty or no token reads as: RFC
    2046's reading of an unrecognised subtype (5.1.3 for multipart, 4.1.4 for text,
    application/octet-stream for the others)."""
    return {"multipart": "multipart/mixed", "text": "text/plain"}.get(
        main, "application/octet-stream")


def typed_values(parameters: Callable[[str], str]) -> list[tuple[str, str, str, str]]:
    """(kind and main type, main type, value, the type it reads as) of each kind for each
    main type; `parameters(main)` the parameters written."""
    def written(template: str, main: str) -> str:
        sub = MAIN_TYPES.get(main, "pdf")
        return template.format(m=main, M=main.upper(), s=sub, S=sub.upper(),
                               p=parameters(main))
    values = [(f"{kind}-{main}", main, written(template, main), unusable_subtype(main))
              for kind, template in UNUSABLE_SUBTYPE_KINDS.items() for main in MAIN_TYPES]
    values += [(f"{kind}-{main}", main, written(template, main), f"{main}/{sub}")
               for kind, template in QUOTED_KINDS.items() for main, sub in MAIN_TYPES.items()]
    return values + [(f"invalid-{number}", "x", written(template, "x"), "text/plain")
                     for number, template in enumerate(INVALID_MAIN_TYPES)]
