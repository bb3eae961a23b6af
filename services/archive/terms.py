"""The terms of one field's text in a Xapian document, and the names of those terms.

Every text field is indexed with its prefix and positions (phrases work in each field).
The short fields (addresses, subject, file names) are indexed once more without prefix and
without positions; the long ones (body, attachment text: most of a message's words) are
not, and a bare word is looked up without prefix and under their two prefixes instead
(services.archive.index.BARE_WORD_PREFIXES): copying them would double the terms a message
adds and the index's size. A bare "phrase" is the phrase in any one field. Words come
from services.archive.words, the pipeline queries go through too.

Addresses (From, To, Cc, Bcc, envelope) add exact terms besides their words, under the
field's prefix: E + the whole address, L + the local part, D + the domain and each parent
domain of two labels or more. File names add F + the whole name and X + each extension
(`report.tar.gz`: gz and tar.gz). Terms are folded like words; the letters after the
prefix are uppercase so they never meet a (lowercase) word.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from functools import cached_property

import xapian

from services.archive.words import (MAX_WORD_BYTES, Piece, fold, fold_whole, pieces,
                                    plain_runs)

FIELD_GAP = 100  # positions between two texts of one field: no phrase spans them
# Characters of the text between plain runs added at once where it may fill a document
# (DocumentTerms.add_long_text): CJK makes some two terms a character, so a chunk takes a
# document past its limit by 8,000 terms at most.
CHUNK_CHARACTERS = 4096
ADDRESS_EXACT, ADDRESS_LOCAL, ADDRESS_DOMAIN = "E", "L", "D"
FILENAME_WHOLE, FILENAME_EXTENSION = "F", "X"
MAX_TERM_BYTES = 245     # Xapian's limit (glass backend), prefix included
TERM_DIGEST_HEX = 32     # 128 bits of SHA-256 end a term that had to be shortened


def term(prefix: str, value: str) -> str:
    """The Xapian term `prefix` + `value`: valid UTF-8 (lone surrogates become '?') of at most
    MAX_TERM_BYTES bytes. Every term the index adds or a query looks up is made here.

    A longer one keeps as much of its start as fits (cut on a character boundary) and ends
    in '#' and TERM_DIGEST_HEX hex digits of the SHA-256 of the whole term. So it stays
    exact and stable: the same value always gives the same term, two values that differ
    anywhere give different terms. A plain cut would not do: the access filter looks up
    exact address terms, and two long addresses sharing their first 240 bytes would then
    read each other's mail. The readable start keeps prefix wildcards working."""
    whole = prefix + value
    if len(whole) <= MAX_TERM_BYTES and whole.isascii():  # the common case: one byte each
        return whole
    whole = whole.encode("utf-8", "replace").decode("utf-8")
    data = whole.encode("utf-8")
    if len(data) <= MAX_TERM_BYTES:
        return whole
    digest = hashlib.sha256(data).hexdigest()[:TERM_DIGEST_HEX]
    start = data[:MAX_TERM_BYTES - len(digest) - 1].decode("utf-8", "ignore")
    return f"{start}#{digest}"



class DocumentTerms:
    """Adds the terms of texts to one document: positional under each field's prefix, and
    counted once more without prefix when asked. `finish()` adds the unprefixed terms."""

    def __init__(self, document: xapian.Document):
        self.document = document
        self.next_position: dict[str, int] = {}
        self.unprefixed: Counter[str] = Counter()

    def add_text(self, prefix: str, text: str, unprefixed: bool = True) -> None:
        """The words of `text` (any str) at the field's next positions; with `unprefixed`,
        counted once more without prefix (see the module docstring)."""
        position = self.next_position.get(prefix, 1)
        if unprefixed:  # the short fields: counted apart, so the long ones pay nothing
            counted: list[str] = []
            position = self._add_pieces(prefix, pieces(text), position, counted)
            self.unprefixed.update(counted)
        else:
            position, _ = self._add_long_text(prefix, text, position)
        self.next_position[prefix] = position + FIELD_GAP

    def add_long_text(self, prefix: str, text: str, max_terms: int) -> int:
        """add_text() of a long field's text, no unprefixed copy, while the document holds
        at most `max_terms` distinct terms (those finish() is to add counted): its segments
        (words.plain_runs, cut at white space) are added until one finds it holding more.
        Returns how many characters of `text` were added: all, or those before that
        segment (it ends at white space, or at the text's end)."""
        position = self.next_position.get(prefix, 1)
        position, added = self._add_long_text(prefix, text, position, max_terms)
        self.next_position[prefix] = position + FIELD_GAP
        return added

    def _add_long_text(self, prefix: str, text: str, position: int,
                       max_terms: int | None = None) -> tuple[int, int]:
        """add_text() of a long field from `position` (add_long_text's limit with
        `max_terms`); returns the next free position and the characters added.
        Runs of plain ASCII words (most of mail's text) go to Xapian's TermGenerator, which
        makes the very postings pieces() would (words.plain_runs; equal in tests) in C++:
        a posting from Python cost some 1.5 us, half a worker's time building a document.
        Measured (review 177): mail's prose takes half the time or less; text whose words
        are a third or more of other kinds (codes, dates, numbers) up to 1.3x as long, each
        switch between a run and the rest costing a few calls."""
        added = 0
        for plain, segment in plain_runs(text):
            if max_terms is not None and self.terms_held() > max_terms:
                break
            if plain:
                self._generator.set_termpos(position - 1)  # it counts from the next one
                self._generator.index_text(segment, 1, prefix)
                position = self._generator.get_termpos() + 1
            elif max_terms is None or self.terms_held() + 2 * len(segment) <= max_terms:
                position = self._add_pieces(prefix, pieces(segment), position)
            else:  # it may fill the document: a chunk at a time (CJK without spaces, say)
                position, taken = self._add_chunks(prefix, segment, position, max_terms)
                added += taken
                if taken < len(segment):
                    break
                continue
            added += len(segment)
        return position, added

    def _add_chunks(self, prefix: str, segment: str, position: int, max_terms: int
                    ) -> tuple[int, int]:
        """The pieces of `segment` (text between plain runs) from `position`, added a chunk
        of it at a time (_chunks) while the document holds at most `max_terms` terms;
        returns the next free position and the characters added. Stops at the first
        chunk that finds the document full: the caller adds no more."""
        added = 0
        for chunk in _chunks(segment, CHUNK_CHARACTERS):
            if self.terms_held() > max_terms:
                break
            position = self._add_pieces(prefix, pieces(chunk), position)
            added += len(chunk)
        return position, added

    def terms_held(self) -> int:
        """Distinct terms of the document once finish()ed, at most: its own so far and the
        unprefixed ones finish() is to add."""
        return self.document.termlist_count() + len(self.unprefixed)

    @cached_property
    def _generator(self) -> xapian.TermGenerator:
        """A TermGenerator writing this document's plain words as pieces() cuts them: words
        kept whole up to MAX_WORD_BYTES (runs hold none longer), never stemmed."""
        generator = xapian.TermGenerator()
        generator.set_max_word_length(MAX_WORD_BYTES)
        generator.set_stemming_strategy(xapian.TermGenerator.STEM_NONE)
        generator.set_document(self.document)
        return generator

    def _add_pieces(self, prefix: str, found: list[Piece], position: int,
                    counted: list[str] | None = None) -> int:
        """Postings of `found` from `position`; returns the next free position. With
        `counted`, each term (without prefix) is appended to it too: the unprefixed copy,
        had in the same walk of the postings."""
        add_posting = self.document.add_posting
        count = counted.append if counted is not None else None
        for piece in found:
            parts, whole, cjk = piece
            if whole is None and not cjk:  # one word: the common case, without a generator
                add_posting(prefix + parts[0], position)
                if count:
                    count(parts[0])
                position += 1
                continue
            for offset, term in piece.postings():
                add_posting(prefix + term, position + offset)
                if count:
                    count(term)
            position += len(parts)
        return position

    def add_address(self, prefix: str, display: str) -> None:
        """`display`: "Name <addr>" or "addr" (services.archive.mime.display_addresses)."""
        self.add_text(prefix, display)
        address = bare_address(display)
        if address:
            for term in address_terms(prefix, address):
                self.document.add_term(term)

    def add_filename(self, prefix: str, name: str) -> None:
        self.add_text(prefix, name)
        for term in filename_terms(prefix, name):
            self.document.add_term(term)

    def finish(self) -> None:
        for term, count in self.unprefixed.items():
            self.document.add_term(term, count)


def _chunks(text: str, size: int) -> Iterator[str]:
    """`text` cut into consecutive pieces of at most `size` characters, each after its last
    white space where it has one (so its words are those of the whole), else at `size`
    (a run without white space, as CJK text: the bigram across the cut is lost)."""
    start = 0
    while start < len(text):
        end = start + size
        if end < len(text):
            space = max(text.rfind(blank, start, end) for blank in " \n\t\r")
            end = space + 1 if space > start else end
        yield text[start:end]
        start = end


def bare_address(display: str) -> str:
    """The address of "Name <addr>", or `display` itself when it has no angle brackets."""
    if display.endswith(">") and "<" in display:
        return display[display.rindex("<") + 1:-1].strip()
    return display.strip()


def address_terms(prefix: str, address: str) -> list[str]:
    """The exact terms of one address under a field prefix (see the module docstring)."""
    address = fold_whole(address)
    local, at, domain = address.rpartition("@")
    if not at:
        return [term(prefix, ADDRESS_EXACT + address)]
    found = [term(prefix, ADDRESS_EXACT + address)]
    if local:
        found.append(term(prefix, ADDRESS_LOCAL + local))
    found += [term(prefix, ADDRESS_DOMAIN + parent) for parent in parent_domains(domain)]
    return found


def parent_domains(domain: str) -> list[str]:
    """mail.example.org -> [mail.example.org, example.org]; a one-label domain itself."""
    labels = domain.split(".")
    if len(labels) < 2:
        return [domain] if domain else []
    return [".".join(labels[at:]) for at in range(len(labels) - 1)]


def filename_terms(prefix: str, name: str) -> list[str]:
    folded = fold_whole(name.strip())
    if not folded:
        return []
    found = [term(prefix, FILENAME_WHOLE + folded)]
    stem, _, _ = folded.partition(".")
    extensions = folded.split(".")[1:][-3:] if stem or folded.count(".") > 1 else []
    for at in range(len(extensions)):
        extension = ".".join(extensions[at:])
        if extension:
            found.append(term(prefix, FILENAME_EXTENSION + extension))
    return found
