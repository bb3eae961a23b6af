"""Text after an element that belongs in a head (<meta>, <link>, <base>, <title>, <style>,
<script>) where the document has no <head> of its own: libxml2 2.9 opens a head for them
and keeps an element it does not know that follows (Word's <o:p>, <st1:place>, <x>) inside
that head, where a browser ends the head and shows it in the body (HTML's "in head"
insertion mode). Every such word is indexed and shown in the web's reader, with NULs
around it too (found by test_html_text_nul's hypothesis search: a windows-1252 document
declaring its charset in a <meta>, then `<o:p>`, lost every word)."""
from __future__ import annotations

import itertools

import pytest

from services.archive.extract import _html_to_text, extract
from services.web import mail_view
from tests.unit.archive.test_extract import CAP, mail

HEAD_ELEMENTS = ['<meta http-equiv="Content-Type" content="text/html; charset=windows-1252">',
                 '<meta charset="utf-8">', '<link rel="stylesheet" href="a.css">',
                 '<base href="http://example.org/">', "<title>hidden title</title>",
                 "<style>p {color: red}</style>", "<script>var hidden = 1;</script>"]
UNKNOWN = ["<o:p>{}</o:p>", "<o:p></o:p>{}", "<st1:place>{}</st1:place>", "<x>{}</x>",
           "<v:shape><v:textbox>{}</v:textbox></v:shape>", "<custom-tag>{}</custom-tag>"]
AFTER = ["", "<div>after</div>", "<p>after</p>", "<table><tr><td>after</td></tr></table>"]
NULS = ["", "\x00"]

CASES = [(head, unknown, after, nul) for head, unknown, after, nul
         in itertools.product(HEAD_ELEMENTS, UNKNOWN, AFTER, NULS)]


@pytest.mark.parametrize("head, unknown, after, nul", CASES)
def test_a_word_in_an_element_libxml2_leaves_in_the_head_is_read(head, unknown, after, nul):
    document = head + nul + unknown.format(f"visibleword{nul and 'n'}") + after
    word = f"visibleword{nul and 'n'}"
    assert word in _html_to_text(document.encode("utf-8"), "utf-8")
    assert word in mail_view._html_text(document)
    if after:
        assert "after" in _html_to_text(document.encode("utf-8"), "utf-8")
    hidden = ("hidden title", "color: red", "var hidden")
    assert not any(text in _html_to_text(document.encode("utf-8"), "utf-8") for text in hidden)


@pytest.mark.parametrize("head", HEAD_ELEMENTS)
def test_a_message_of_such_html_is_found_by_its_words(head):
    html = head + "<o:p>officeword</o:p><p>plainword</p>"
    result = extract(mail(body="", html=html).as_bytes(), CAP)
    assert "officeword" in result.body and "plainword" in result.body


def test_a_head_of_its_own_still_hides_its_title_style_and_script():
    document = ("<html><head><title>hidden title</title><style>p {color: red}</style>"
                "<script>var hidden = 1;</script><meta charset='utf-8'></head>"
                "<body><o:p>shownword</o:p></body></html>")
    text = _html_to_text(document.encode(), "utf-8")
    assert "shownword" in text and not any(
        hidden in text for hidden in ("hidden title", "color: red", "var hidden"))
