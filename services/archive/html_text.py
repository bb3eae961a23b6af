"""The text of an HTML document read without building its tree: libxml2's HTML parser (through
lxml) reports elements and text to a parser target as it goes, and the target keeps only the
visible text, a line break after each block element.

Why not lxml.html.document_fromstring and text_content(): a tree costs some hundred bytes an
element and text node, and libxml2 swallows its own failures to allocate them. In a worker
limited to 512 MB a 30 MB document of `<p> a </p>` came out empty or in part, a different
part each run, with no error (and a tree deeper than 256 elements ended the parse with no
error either: its text was lost). Here memory is the decoded document, a piece of it as UTF-8
(libxml2 reads the document as a file, piece by piece, with the parser that reads it whole:
not the push parser below), libxml2's stack of open elements and the text. A failure to
allocate reaches the caller as MemoryError: Python's own, or libxml2's (its error log says
so). Past that, libxml2 2.9 itself may crash on some shapes (100 MB of `&amp;` under 512 MB,
review 200): the worker dies, which the pool reports as running out of memory.

Why not lxml's incremental feed(): libxml2 2.9's push parser reads some markup differently
when a chunk ends inside it (`<script>s</script>t<title>q</title>r` fed three bytes at a time
gives nothing). Read as a file, it is parsed by htmlParseDocument as a document in memory
was, so the text is the tree's text_content() wherever the tree held the whole text, with
known exceptions where a token crosses one of libxml2's 4,000-byte reads (review 200): an
entity-like name of hundreds of characters (`&` then name characters) can lose text, a
processing instruction's name of 250 or more characters can show as text, a second
byte-order mark is text. And a tag the document ends in (`word<o:title><b`: no `>`)
starts an element libxml2 never ends, so the tree's line breaks after the elements around
it, at the end of the text, can be missing (no word is). Read from memory instead, 45 MiB
of line breaks no longer fit a worker's 512 MB.

A NUL (U+0000) is read as a space. libxml2 2.9 reads one as a space in text, comments and
scripts, but takes one in a tag, an attribute, a doctype, a processing instruction or a
character reference, or first in a text (`</p>\\0`, `<style>\\0`), for the end of the
document: all text after it was lost without a word (the tree's code lost it too). A space
there keeps what libxml2 read wherever it read on, and keeps the words on both sides of a
NUL apart and whole, so both are found. Browsers drop a NUL in body text (`a\\0b` shows as
"ab": neither word would be found) and read U+FFFD for one in markup, so a NUL that ends a
tag's name here continues it there: `<script\\0>x</script>` is a script here (x hidden), an
unknown element there (x shown).
"""
from __future__ import annotations

import io
import threading
from typing import Iterable, Protocol

import lxml.etree

BYTE_ORDER_MARK = "\ufeff"
NUL_TO_SPACE = bytes.maketrans(b"\x00", b" ")


class _VisibleText:
    """lxml parser target: the text of the elements not inside an invisible one, "\\n" after
    each block element's end (where the tree's code put it: at the start of its tail).
    libxml2 balances every start with an end (it closes what the markup leaves open), so
    counts of open elements tell whether text is shown. Text where no element is open (the
    `<` of `<<` before any tag, whitespace after `</html>`) is none, as the tree had no
    node to hold it."""

    def __init__(self, blocks: frozenset[str], invisible: frozenset[str]):
        self.blocks, self.invisible = blocks, invisible
        self.begin()

    def begin(self, sink=None) -> None:
        """Ready for a document (a parse that raised left the last one's state); its text
        is written to `sink` (see read_into), else kept (close() gives it)."""
        self.open = 0    # open elements
        self.hidden = 0  # open elements inside an invisible one, it included
        self.text = sink or io.StringIO()  # grows one buffer: no object a piece of text

    def start(self, tag: str, attrib) -> None:
        self.open += 1
        if self.hidden or _named(tag, self.invisible):
            self.hidden += 1

    def end(self, tag: str) -> None:
        self.open -= 1
        if self.hidden:
            self.hidden -= 1
        elif _named(tag, self.blocks):
            self.text.write("\n")

    def data(self, text: str) -> None:
        if self.open and not self.hidden:
            self.text.write(text)

    def close(self) -> str | None:
        # the parser (and so its target) is kept for the next document: the target lets
        # go of the text itself
        text, self.text = self.text, None
        return text.getvalue() if isinstance(text, io.StringIO) else None


def _named(tag: str, names: frozenset[str]) -> bool:
    """Whether the tree named the element the parser names `tag` one of `names`."""
    return tag in names or (":" in tag and _local_name(tag) in names)


def _local_name(tag: str) -> str:
    """The name the tree gave an element the parser names `tag`: libxml2 2.9's tree builder
    splits a prefixed name at its first colon (xmlSplitQName), so that Word's `<o:p>` was a
    `p` to the tree's code (a block), `<o:title>` a `title`; `a:` and `a:b:p` stay whole
    but for the prefix (`a:`, `b:p`). The parser's own rules (what closes what) read the
    whole name all the same."""
    prefix, _, local = tag.partition(":")
    return local if prefix and local else tag


def layout(document: str, blocks: frozenset[str], invisible: frozenset[str]) -> str:
    """The text of `document` (decoded: a charset it declares is not read) as its source
    lays it out: text outside `invisible` elements (their tails are shown), "\\n" after each
    element named in `blocks` (lower-case names); comments and processing instructions give
    nothing. Markup errors are recovered from, as browsers do. Raises MemoryError when the
    text does not fit: never gives part of it."""
    if document == BYTE_ORDER_MARK:  # what libxml2 skips, but only with 4 bytes at hand
        return ""
    return _parsed(_Utf8Pieces([document]), blocks, invisible)


class Sink(Protocol):
    """Where read_into writes a document's text, a piece at a time: `full` once it wants
    no more."""
    full: bool

    def write(self, text: str) -> None: ...


def read_into(pieces: Iterable[str], blocks: frozenset[str], invisible: frozenset[str],
              sink: Sink, source_bytes: int) -> bool:
    """layout() of the document `pieces` join to (decoded text, each piece any length),
    its text written to `sink` as it is read, and no more of the document read once
    sink.full or once `source_bytes` of its UTF-8 are read: a document of 70 MB is not
    held, nor is its text, for the first megabyte an index takes of it (what is written
    up to then is layout()'s text's start: libxml2 reads on from where it is, as it does
    through a whole document). libxml2 holds a comment, an attribute's value or a script
    whole, and an element open for each start tag not ended: what it holds is bounded by
    `source_bytes`. Whether the source_bytes bound left some of the document unread.
    Raises as layout() does."""
    source = _Utf8Pieces(pieces, sink, source_bytes)
    _parsed(source, blocks, invisible, sink)
    return source.left


def _parsed(source: _Utf8Pieces, blocks: frozenset[str], invisible: frozenset[str],
            sink: Sink | None = None) -> str | None:
    """The target's close() of a parse of `source`, its text written to `sink` if given."""
    parser = _parser(blocks, invisible)
    parser.target.begin(sink)
    text = lxml.etree.parse(source, parser)
    # libxml2's own failure to allocate (its stack of open elements, a comment's or an
    # attribute's buffer) stops the parse without an exception: lxml recovers, and the
    # target's text so far would pass for the whole
    if any(entry.type == _NO_MEMORY for entry in parser.error_log):
        raise MemoryError("libxml2 ran out of memory reading an HTML document")
    return text


_NO_MEMORY = lxml.etree.ErrorTypes.ERR_NO_MEMORY


_parsers = threading.local()  # an lxml parser is one thread's


def _parser(blocks: frozenset[str], invisible: frozenset[str]) -> lxml.etree.HTMLParser:
    """This thread's parser for these names, made once: making one costs about a third of
    reading a usual HTML alternative (lxml inspects the target's methods each time)."""
    made = _parsers.__dict__.setdefault("made", {})
    if (blocks, invisible) not in made:
        made[blocks, invisible] = lxml.etree.HTMLParser(
            encoding="utf-8", target=_VisibleText(blocks, invisible))
    return made[blocks, invisible]


class _Utf8Pieces:
    """A file of the UTF-8 of the document `texts` join to, encoded a piece at a time as
    libxml2 reads it: no copy of the whole document as bytes, nor libxml2's of those (lxml
    is given bytes: str input refuses NULs and XML encoding declarations; lone surrogates
    become "?"), each NUL a space: libxml2 2.9 takes a NUL in markup for the document's
    end. It ends early, once `sink` is full or `limit` bytes are read (`left` then says
    whether some of the document was left unread)."""

    PIECE = 64 * 1024  # characters a read (lxml keeps what libxml2 did not ask for yet)

    def __init__(self, texts: Iterable[str], sink: Sink | None = None,
                 limit: int | None = None):
        self.texts, self.sink, self.limit = iter(texts), sink, limit
        self.text, self.at, self.read_bytes, self.left = "", 0, 0, False

    def read(self, _size: int) -> bytes:
        if self.sink is not None and self.sink.full:
            return b""
        while self.at >= len(self.text):
            self.text, self.at = next(self.texts, None), 0
            if self.text is None:
                self.text = ""
                return b""
        if self.limit is not None and self.read_bytes >= self.limit:
            self.left = True
            return b""
        piece = self.text[self.at:self.at + self.PIECE]
        self.at += len(piece)
        data = piece.encode("utf-8", "replace")
        self.read_bytes += len(data)
        # a NUL byte of UTF-8 is U+0000 and nothing else (the document is decoded already:
        # a UTF-16 part's zero bytes are not NULs here), and a space is what libxml2 reads
        # a NUL as where it reads on (see the module's docstring). (translate: a tenth of
        # replace's time on a piece of many NULs; `in` alone on a piece of none)
        return data.translate(NUL_TO_SPACE) if b"\x00" in data else data
