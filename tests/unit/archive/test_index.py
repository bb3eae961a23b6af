"""services.archive.index: every term within Xapian's limit of 245 bytes, long ones exact."""
import hashlib

import xapian

from services.archive import index
from services.archive.index import MAX_TERM_BYTES


def test_terms_stay_within_the_limit_whatever_the_value():
    values = [c * n for c in ("a", "é", "漢", "𝄞", "\udcff", "\x00") for n in (1, 100, 244, 5000)]
    terms = [index.term("XADDR", v) for v in values]
    assert all(len(t.encode()) <= MAX_TERM_BYTES for t in terms)
    assert len(set(terms)) == len(set(index.clean(v) for v in values))
    assert index.term("XADDR", "bob@example.com") == "XADDRbob@example.com"  # short: unchanged
    long_one = "é" * 185 + "@example.com"
    assert index.term("XADDR", long_one) == index.term("XADDR", long_one)
    assert index.term("XADDR", long_one).endswith(
        hashlib.sha256(("XADDR" + long_one).encode()).hexdigest()[:32])


def test_words_stay_within_the_limit_under_any_prefix():
    """Words come from the TermGenerator, which skips those over MAX_WORD_BYTES."""
    prefixes = [*index.TEXT_PREFIXES.values(), *index.BOOLEAN_PREFIXES.values()]
    assert max(len(p.encode()) for p in prefixes) + index.MAX_WORD_BYTES <= MAX_TERM_BYTES
    document = xapian.Document()
    generator = index.term_generator()
    generator.set_document(document)
    generator.index_text("ж" * 32 + " " + "ж" * 33 + " short", 1, "XFN")  # 64 and 66 bytes
    assert sorted(t.term.decode() for t in document.termlist()) == ["XFNshort", "XFN" + "ж" * 32]
