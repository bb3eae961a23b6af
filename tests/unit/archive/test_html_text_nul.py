"""A NUL (U+0000) anywhere in an HTML document loses no text (services.archive.html_text reads
it as a space): libxml2 2.9 took one in a tag, an attribute, a doctype, a processing
instruction, a character reference or first in a text for the end of the document, and
everything after it was neither searchable nor shown, without a word."""
from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from services.archive import html_text
from services.archive.extract import _html_to_text, body_text, extract
from services.web import mail_view
from tests.unit.archive import test_extract_html_as_before as html_messages

# {} is where the NUL goes; "before" and "after" must both be read
NUL_PLACES = [
    "<p>before {}</p>after", "<p{}>before</p>after", "<p {}>before</p>after",
    '<p class="{}">before</p>after', "<p class='{}'>before</p>after",
    "<p class={}>before</p>after", "<p a{}=1>before</p>after", "<{}p>before</p>after",
    "<p/{}>before</p>after", "before</p{}>after", "before</p {}>after", "before</{}>after",
    "<!-- {} -->before after", "<!{}>before after", "<!DOCTYPE {}>before after",
    "<?{}?>before after", "before &{} after", "before &am{}; after", "before &#{}; after",
    "before &#x{}; after", "<script>{}</script>before after", "<style>{}</style>before after",
    "<title>{}</title>before after", "<textarea>{}</textarea>before after",
    "<p>before</p>{}<p>after</p>", "before<{} after", "before <{}>after",
    "<![CDATA[{}]]>before after", "{}before after", "before after{}",
]


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


@pytest.mark.parametrize("place", NUL_PLACES)
def test_a_nul_loses_no_text_wherever_it_is(place):
    document = place.format("\x00")
    for data, charset in [(document.encode(), "utf-8"), (document.encode("utf-16"), "utf-16")]:
        assert {"before", "after"} <= set(words(_html_to_text(data, charset))), data
    shown = mail_view._html_text(document)
    assert "before" in shown and "after" in shown.partition("before")[2]


@pytest.mark.parametrize("control", [chr(code) for code in range(1, 32)] + ["\x7f", "&#0;"])
@pytest.mark.parametrize("place", NUL_PLACES)
def test_no_other_control_character_lost_text_before_either(place, control):
    """(what the fix leaves alone: libxml2 reads on past every other C0 control, and a
    reference to U+0000 is no NUL in the document)"""
    document = place.format(control).encode()
    assert {"before", "after"} <= set(words(_html_to_text(document, "utf-8")))


def test_a_message_whose_html_has_a_nul_in_a_tag_is_searchable_and_shown_whole():
    raw = html_messages.message(html_messages.text_part(
        "html", '<p class="x\x00">first</p><p>second</p>', "utf-8", "base64"))
    assert words(extract(raw, 64 * 1024).body) == ["first", "second"]
    assert words(body_text(raw)) == ["first", "second"]


def test_a_nul_is_a_space_at_every_one_of_libxml2s_reads():
    """In pieces of 2 characters NULs meet the ends of the pieces libxml2 reads."""
    document = "<p class='\x00'>a\x00b</p>\x00" * 3 + "<!--\x00-->end"
    default, html_text._Utf8Pieces.PIECE = html_text._Utf8Pieces.PIECE, 2
    try:
        assert words(html_text.layout(document, frozenset(), frozenset())) == \
            ["a", "b"] * 3 + ["end"]
    finally:
        html_text._Utf8Pieces.PIECE = default


# --- generated: NULs anywhere in markup of every kind, each charset ------------------------

# markup of every kind the parser tells apart; NULs go anywhere in it but inside a tag's name
# or what ends a comment or a raw-text element ("-->", "</script>"...): a browser reads the
# element as another one there too (the name goes on with U+FFFD: `<im\0g>` is no img; in
# a head libxml2 then holds the text after it in the head) or the comment or script as
# going on, and the words after it are then a comment's or a script's
MARKUP = [
    '<p class="v">', "<p class='v'>", "<p class=v>", "<p hidden>", '<p title="a" lang=en>',
    "</p>", '</p class="x">', "<br/>", "<o:p>", "</o:p>", "<span>", "</span>", "<b>bold</b>",
    '<a href="x?a=1&amp;b=2">link</a>', "<img src=x alt='y'>", "<!-- note -->", "<!---->",
    "<!DOCTYPE html>", '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN">', "<?pi x?>",
    "<![CDATA[c]]>", "&amp;", "&nbsp;", "&eacute;", "&#65;", "&#x41;", "&#0;", "&bogus;",
    "&", "<", "< b", ">", "plain text", "<script>if (a < b) {}</script>",
    "<style>p{}</style>", "<title>t</title>", "<textarea>t</textarea>", '<meta charset="utf-8">',
]
ENDS = ["-->", "</script>", "</style>", "</title>", "</textarea>"]
CHARSETS = [  # (Python codec, the part's label); utf-16 writes a byte-order mark
    ("utf-8", "utf-8"), ("iso-8859-1", "iso-8859-1"), ("windows-1252", "windows-1252"),
    ("utf-16", "utf-16"), ("windows-1252", None), ("utf-8", None)]  # None: see DECLARED
# the charset of a part of none, where the tree's reading (charset detection) guesses it
DECLARED = '<meta http-equiv="Content-Type" content="text/html; charset={}">'

# a word by its number: in a part of no charset NULs can change the one detection guesses,
# and so the é (mac-roman's È), but not the word's number
MARKER = re.compile(r"w\d+")


TAG_NAME = re.compile(r"</?([A-Za-z][A-Za-z0-9:]*)")


def with_nuls(markup: str, places: list[int]) -> str:
    """`markup` with a NUL at each of `places` (taken modulo its length + 1) not inside a
    tag's name nor inside one of ENDS."""
    names = [match.span(1) for match in TAG_NAME.finditer(markup)]
    ends = [(match.start(), match.end()) for end in ENDS
            for match in re.finditer(re.escape(end), markup)]
    for place in sorted({place % (len(markup) + 1) for place in places}, reverse=True):
        if not any(start < place < end for start, end in names + ends):
            markup = markup[:place] + "\x00" + markup[place:]
    return markup


markup_with_nuls = st.builds(with_nuls, st.sampled_from(MARKUP),
                             st.lists(st.integers(0, 200), min_size=1, max_size=3))
word_slot = st.tuples(st.sampled_from(["", "\x00"]), st.sampled_from(["", "\x00"]),
                      st.sampled_from(["<div>{}</div>", " {} ", "<td>{}"]))
bits = st.lists(st.one_of(markup_with_nuls, word_slot), min_size=1, max_size=12)


def document_of(drawn: list) -> tuple[str, set[str]]:
    """The document of the drawn bits (a word slot numbered w0é, w1é... with a NUL before
    or after it or neither) and the words in it."""
    parts, shown = [], set()
    for bit in drawn:
        if isinstance(bit, str):
            parts.append(bit)
        else:
            before, after, slot = bit
            word = f"w{len(shown)}é"
            shown.add(word)
            parts.append(slot.format(before + word + after))
    return "".join(parts), shown


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bits, st.sampled_from(CHARSETS), st.sampled_from([2, 3, 7, html_text._Utf8Pieces.PIECE]))
def test_no_word_is_lost_to_nuls_anywhere_in_any_charset(drawn, charset, piece):
    """Each word stands outside any markup (NULs go into the markup around it and beside
    it): every word the document shows without its NULs it shows with them. (Without them
    it shows all but where libxml2 reads otherwise than a browser: `<script>x</script><td>w`
    shows nothing at all.)"""
    document, words_in_it = document_of(drawn)
    codec, label = charset
    if label is None:
        document = DECLARED.format(codec) + document
    default, html_text._Utf8Pieces.PIECE = html_text._Utf8Pieces.PIECE, piece
    try:  # (not monkeypatch: a function's fixture is not reset between hypothesis examples)
        without_nuls = document.replace("\x00", "")
        shown = set(MARKER.findall(_html_to_text(without_nuls.encode(codec), label)))
        event(f"{label}: {'all' if shown == words_in_it else 'not all'} words shown without NULs")
        assert set(MARKER.findall(_html_to_text(document.encode(codec), label))) >= shown
        assert set(MARKER.findall(mail_view._html_text(document))) >= \
            set(MARKER.findall(mail_view._html_text(without_nuls)))
    finally:
        html_text._Utf8Pieces.PIECE = default
