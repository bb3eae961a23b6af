"""A TNEF file's title in the stream's code page (attOemCodepage, [MS-OXTNEF]
2.1.3.2): cp1252, cp1251, cp1250, cp932... with letters beyond ASCII is read in that code
page, for the index and the views alike (review item 6: it was read as UTF-8, each such
letter a U+FFFD). Titles are generated of each code page's own letters mixed with the
pieces review r10 F1's anchoring is tested with (test_tnef_titles.PIECES: the listing's
separators, escapes, names tnef numbers): each file keeps its own title and bytes."""
from __future__ import annotations

import base64
import random

import pytest

from services.archive import containers, tnef_stream
from services.archive.containers import ReadBudget
from services.archive.extract import extract
from services.web import forwarded, message_tree
from tests import reading_corpus as corpus
from tests.unit.archive.test_tnef_titles import PIECES
from tests.unit.web.test_file_listing_costs import message

CAP = 1 << 20
CODE_PAGES = (1250, 1251, 1252, 1253, 1254, 1255, 1256, 1257, 874, 932, 936, 949, 950)


def letters(code_page: int) -> list[str]:
    """The characters beyond ASCII that code page `code_page` writes (and reads back)."""
    found = []
    for value in range(0x80, 0x10000):
        char = chr(value)
        if not char.isalpha():
            continue
        try:
            if char.encode(f"cp{code_page}").decode(f"cp{code_page}") == char:
                found.append(char)
        except UnicodeError:
            continue
        if len(found) >= 400:
            break
    return found


def titles(code_page: int, seed: int) -> list[str]:
    """Titles of the code page's letters and PIECES, none whose bytes in the code page
    happen to be UTF-8 beyond ASCII (such a title is read as UTF-8, what tnef writes a
    MAPI Unicode name as: test_a_utf8_title_is_read_as_utf8)."""
    rng, own, made = random.Random(seed), letters(code_page), []
    while len(made) < 6:
        title = "".join(rng.choice([rng.choice(own), rng.choice(own),
                                    rng.choice(PIECES).replace("\n", "")])
                        for _ in range(rng.randint(1, 8))) + rng.choice(["", ".txt", ".doc"])
        if not _utf8_beyond_ascii(title.encode(f"cp{code_page}")):
            made.append(title)
    return made + rng.sample(made, 2)


def _utf8_beyond_ascii(data: bytes) -> bool:
    try:
        return not data.decode("utf-8").isascii()
    except UnicodeDecodeError:
        return False


CASES = [(page, seed) for page in CODE_PAGES for seed in range(3)]


@pytest.mark.parametrize("code_page, seed", CASES)
def test_a_title_in_the_streams_code_page_is_read_in_it(code_page, seed):
    files = [(title, f"bytes of {at}".encode()) for at, title in enumerate(titles(code_page, seed))]
    data = corpus.tnef(files, codepage=code_page)
    _, members, problem = containers.tnef_read(data, ReadBudget(CAP))
    assert problem is None
    assert [(member.name, member.data) for member in members] == files
    raw = message("tnef", [b'Content-Type: application/ms-tnef; name="winmail.dat"\n'
                           b"Content-Transfer-Encoding: base64\n\n" + base64.encodebytes(data)])
    indexed = [entry.filename for entry in extract(raw, CAP).attachments
               if entry.container == "winmail.dat"]
    shown = [node.filename for node in message_tree.tree(forwarded.parse(raw), None).walk()
             if node.path.count(".") == 1 and node.path.startswith("2.")]
    assert indexed == shown == [title for title, _ in files]


def test_the_code_page_is_found_among_the_streams_attributes():
    for page in CODE_PAGES:
        assert tnef_stream.prepared(corpus.tnef([("a", b"x")], codepage=page)).codec \
            is not None
    assert tnef_stream.prepared(b"").codec is None
    assert tnef_stream.prepared(corpus.tnef([("a", b"x")])[:20]).codec is None


@pytest.mark.parametrize("title", ["Отчёт за март.txt", "résumé.doc", "報告書.pdf", "a\tb.txt"])
def test_a_utf8_title_is_read_as_utf8(title):
    """tnef writes a title it read from a MAPI Unicode name (PT_UNICODE) as UTF-8: that
    is read as UTF-8 whatever the stream's code page."""
    written = title.encode("utf-8")
    for page in (1251, 1252, 932):
        read = containers._tnef_title(b"\t|\t" + written, written)
        assert containers._title_text(read, f"cp{page}") == title
