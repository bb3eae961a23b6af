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
    """Words are cut at services.archive.words.MAX_WORD_BYTES, far below Xapian's limit
    under any prefix; a long word keeps its start."""
    from services.archive import words
    from services.archive.terms import DocumentTerms
    prefixes = [*index.TEXT_PREFIXES.values(), *index.BOOLEAN_PREFIXES.values()]
    assert max(len(p.encode()) for p in prefixes) + words.MAX_WORD_BYTES <= MAX_TERM_BYTES
    document = xapian.Document()
    terms = DocumentTerms(document)
    terms.add_text("XFN", "ж" * 200 + " short")
    terms.finish()
    found = [t.term.decode() for t in document.termlist()]
    assert all(len(t.encode()) <= MAX_TERM_BYTES for t in found)
    assert "XFNshort" in found and any(t.startswith("XFNжжж") for t in found)


def test_long_addresses_and_file_names_give_exact_bounded_terms():
    """E/L/D address terms and F/X file name terms go through term(): bounded, exact."""
    from services.archive.terms import address_terms, filename_terms
    one, other = "é" * 185 + "a@example.com", "é" * 185 + "b@example.com"
    for make in (lambda v: address_terms("XTO", v), lambda v: filename_terms("XFN", v + ".pdf")):
        first, second = make(one), make(other)
        assert all(len(t.encode()) <= MAX_TERM_BYTES for t in first + second)
        assert first[0] != second[0] and make(one) == first



def test_the_word_caches_can_be_counted_and_emptied():
    from services.archive import words
    words.forget_words()
    assert words.cached_words() == 0
    words.pieces("Grüße aus Zürich, e-mail-migration")
    assert words.cached_words() >= 4
    words.forget_words()
    assert words.cached_words() == 0
    assert words.terms_of("Grüße") == ["grusse"]  # and they still work


def test_long_text_is_indexed_once_and_short_fields_twice():
    """Schema 4: body and attachment words only under their prefix, with positions; the
    subject (a short field) also without prefix. A bare word looks in all three places."""
    from email.message import EmailMessage

    from services.archive.extract import extract
    message = EmailMessage()
    message["From"], message["Subject"] = "ann@example.com", "Quarterly figures"
    message.set_content("the merger closes friday")
    message.add_attachment(b"confidential appendix", maintype="text", subtype="plain",
                           filename="notes.txt")
    document = index.build_document("0" * 64, {"size": 1, "received": 0.0},
                                    extract(message.as_bytes(), 1 << 20))
    positions = {t.term.decode(): list(t.positer) for t in document.termlist()}
    assert positions["XBmerger"] == [2] and "merger" not in positions
    assert positions["XAappendix"] == [2] and "appendix" not in positions
    assert positions["Squarterly"] == [1] and "quarterly" in positions
    assert index.BARE_WORD_PREFIXES == ("", "XB", "XA")


def test_resent_recipients_are_indexed_as_to_cc_and_bcc_are():
    """Schema 6 (RFC 5322 3.6.6): Resent-To and Resent-Cc are shown recipients (to:, cc:),
    Resent-Bcc a hidden one (bcc: and the hidden exact terms only); each is whose mail it
    is (the exact address terms), and an envelope recipient Resent-To shows is not hidden."""
    import json

    from services.archive.extract import extract
    raw = (b"From: ann@example.com\nTo: carl@example.com\nSubject: budget\n"
           b"Resent-From: rita@example.com\nResent-To: Ron Shown <ron@example.com>\n"
           b"Resent-Cc: cora@example.com\nResent-Bcc: Hugo Covert <hugo@example.com>\n\nplans\n")
    meta = {"size": 1, "received": 0.0, "recipients": ["ron@example.com", "eve@example.com"]}
    document = index.build_document("0" * 64, meta, extract(raw, 1 << 20))
    terms = {t.term.decode() for t in document.termlist()}
    assert {"XTOron", "XTOshown", "XTOcora", "XCCcora", "XBCChugo", "XBCCcovert",
            "XBCCeve"} <= terms
    assert not {"XTOhugo", "XTOcovert", "XCCron", "XBCCron"} & terms
    addresses = {"ron@example.com", "cora@example.com", "hugo@example.com"}
    assert {index.address_term(a) for a in addresses} <= terms
    hidden = {t[len(index.HIDDEN_PREFIX):] for t in terms if t.startswith(index.HIDDEN_PREFIX)}
    assert hidden == {"hugo@example.com", "eve@example.com"}
    summary = json.loads(document.get_data())
    assert summary["recipients"] == 5 and summary["shown"] == 3  # carl, ron, cora shown
    assert summary["to"] == ["carl@example.com", "Ron Shown <ron@example.com>",
                             "cora@example.com"]
