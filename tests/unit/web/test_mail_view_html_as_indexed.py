"""The web reader shows HTML-only mail as the index reads it (extract.html_document_text):
a line for each block, so that "<p>world</p><p>second</p>" reads as two words, where the
page ran the blocks together ("worldsecond": two words no search finds, which the index
has). Checked on the generated documents of every shape the HTML parser meets
(test_html_text_as_before, whose reference is the tree's text) sent as HTML-only messages:
the body the reader shows is extraction's body of the same message."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from services.archive.extract import extract
from services.web import mail_view
from tests.unit.archive.test_html_text_as_before import documents

HEAD = b"From: a@example.org\r\nTo: b@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\n"


def html_only(document: str, charset: str = "utf-8") -> bytes:
    return (HEAD + f"Content-Type: text/html; charset={charset}\r\n".encode()
            + b"Content-Transfer-Encoding: 8bit\r\n\r\n" + document.encode(charset, "replace"))


@settings(max_examples=700, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_an_html_only_message_shows_the_text_the_index_reads(document):
    raw = html_only(document)
    assert mail_view.view(raw).body == extract(raw, 1 << 20).body


def test_blocks_and_table_cells_are_lines_not_run_together():
    raw = html_only("<html><head><title>t</title><style>p{}</style></head><body><h1>Report"
                    "</h1><p>world</p><p>second</p><ul><li>one</li><li>two</li></ul>"
                    "<div>third<br>fourth</div><table><tr><td>a</td><td>b</td></tr></table>"
                    "</body></html>")
    assert mail_view.view(raw).body.splitlines() == [
        "Report", "world", "second", "one", "two", "third", "fourth", "a", "b"]


def test_what_a_tree_did_not_hold_is_shown():
    assert mail_view._html_text("<!DOCTYPE html><html><body>x</body></html>footer") == "xfooter"
    assert mail_view._html_text("<p>a\x00b</p>") == "a b"  # (a NUL is read as a space)
    assert mail_view._html_text("<div>" * 300 + "deep" + "</div>" * 300) == "deep"
