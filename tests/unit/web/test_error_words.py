"""How an error's message is shown (a page's flash or error page, the API's JSON error)."""
from __future__ import annotations

from services.archive.store import NotFound
from services.web.ui import message_of


def test_a_message_keeps_its_quotes_and_a_keyerror_loses_its_own():
    assert message_of(ValueError("expected a day YYYY-MM-DD, got '2020-13-45'")) \
        == "expected a day YYYY-MM-DD, got '2020-13-45'"
    assert message_of(ValueError("'02938eab7e54' is not a message digest")) \
        == "'02938eab7e54' is not a message digest"
    assert message_of(KeyError("no such thing")) == "no such thing"  # str() is "'no such thing'"
    assert message_of(KeyError("'quoted' is missing")) == "'quoted' is missing"
    assert message_of(NotFound("no message 'abc'")) == "no message 'abc'"
