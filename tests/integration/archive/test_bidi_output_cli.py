"""What a sender writes in a Subject or a display name reaches an auditor's terminal
through `archiver search` and `archiver show`: the bidirectional controls (UAX #9), the
controls and the line and paragraph separators are printed as escapes ("\\u202e"), so a
Subject cannot turn the rest of its line around ("invoice \\u202efdp.exe" shown as
"invoice exe.pdf") nor forge a line; other characters (no-break space, joiners) print as
they are, and --json is JSON as always."""
import base64
import json

import pytest

from services.common.terminal import BIDI_CONTROLS
from tests import search_output

pytestmark = pytest.mark.integration

SHOWN_AS_IS = "caf\u00e9\u00a0\U0001F468\u200d\U0001F469"  # é, no-break space, joiner
ESCAPED = sorted(BIDI_CONTROLS) + ["\u0085", "\u2028", "\u2029", "\x9b"]


def encoded(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


def test_search_and_show_print_bidi_controls_and_separators_as_escapes(archiver, tmp_path):
    subject = "invoice " + "".join(f"{c}x{n}" for n, c in enumerate(ESCAPED)) + SHOWN_AS_IS
    raw = (f"From: {encoded('Eve ' + chr(0x202E) + 'live')} <eve@example.org>\r\n"
           f"To: bob@example.com\r\nSubject: {encoded(subject)}\r\n\r\nbidiword\r\n").encode()
    (tmp_path / "m.eml").write_bytes(raw)
    data = tmp_path / "data"
    archiver("import", "--data", data, tmp_path / "m.eml", check=0)
    listed = archiver("search", "bidiword", "--data", data, check=0).stdout
    digest = search_output.digests(archiver("search", "bidiword", "--data", data, "--json",
                                            check=0).stdout)[0]
    shown = archiver("show", digest, "--data", data, check=0).stdout
    for output in (listed, shown):
        assert not [c for c in ESCAPED if c in output], output
        assert "Eve \\u202elive" in output and SHOWN_AS_IS in output
        assert all(f"\\u{ord(c):04x}x" in output or f"\\x{ord(c):02x}x" in output
                   for c in ESCAPED), output
    assert len(listed.splitlines()) == 1
    meta = json.loads(archiver("show", digest, "--data", data, "--json", check=0).stdout)
    assert "\u202e" in meta["subject"]  # the JSON holds the text itself, escaped by JSON
