"""A view of one message (`archiver show`, the API's JSON, the message page) needs memory
of a small multiple of the message, however deep its forwards nest (review r11: a chain of
22 forwards of a 27 MB file took 785 MB, 28 times the message, as each level's node held
a copy of all below it while the levels below were read). Counted as the peak resident
set (VmHWM, reset when the message has been read) of a process that makes the view:
never timed."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.archive.extract import MAX_NESTED_MESSAGES
from tests.unit.web.test_review_r10 import attached, forward, message

ROOT = Path(__file__).resolve().parents[3]
BOTTOM_FILE = 6_000_000  # bytes of the file the innermost message carries (base64: 8 MB)
# What parsing a message takes (services.archive.mime: 3 times a message of one large
# file) and a file decoded beside it; 11.6x at 8 forwards, 25x at 22 before.
PEAK_PER_MESSAGE_BYTE = 5

VIEW = """
import sys
from pathlib import Path
from services.web import forwarded, mail_view, message_tree


def field(name):  # (of /proc/self/status, in bytes)
    lines = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) * 1024 for line in lines if line.startswith(name))


raw = Path(sys.argv[1]).read_bytes()
how, path = sys.argv[2], sys.argv[3]
Path("/proc/self/clear_refs").write_text("5")  # VmHWM := the resident set now
held = field("VmRSS:")
if how == "show":
    mail_view.files(raw)
elif how == "api":
    mail_view.view(raw).as_json()
else:  # (as message_page.message_model builds the page of the message at `path`)
    message = forwarded.parse(raw)
    message_tree.body(message, path)
    mail_view.numbered_parts(message, message_tree.tree(message, [], path))
print(field("VmHWM:") - held)
"""


def chain(depth: int) -> bytes:
    """A message forwarding one that forwards one ... (`depth` forwards, each attached as
    mailers attach them: message/rfc822, not encoded) of one carrying a large file."""
    raw = message("bottom", [attached("big.bin", os.urandom(BOTTOM_FILE))])
    for level in range(depth):
        raw = message(f"c{level}", [forward(raw, f"c{level}.eml")])
    return raw


def peak_bytes(raw: bytes, how: str, path: str, tmp_path: Path) -> int:
    """How far the resident set of a process making the view rose over what it was
    holding the message."""
    stored = tmp_path / "message.eml"
    stored.write_bytes(raw)
    done = subprocess.run([sys.executable, "-c", VIEW, str(stored), how, path],
                          capture_output=True, text=True, check=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    return int(done.stdout)


@pytest.mark.parametrize("depth", [1, 8, 22])
@pytest.mark.parametrize("how", ["show", "api", "page", "page of the innermost"])
def test_a_view_needs_a_small_multiple_of_the_message(depth, how, tmp_path):
    raw = chain(depth)
    # (the innermost message a view opens: forwards nest as deep as the indexer reads them)
    path = ".".join(["2.1"] * min(depth, MAX_NESTED_MESSAGES)) \
        if how == "page of the innermost" else ""
    assert peak_bytes(raw, how.split()[0], path, tmp_path) <= PEAK_PER_MESSAGE_BYTE * len(raw)
