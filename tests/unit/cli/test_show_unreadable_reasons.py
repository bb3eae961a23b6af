"""`show` writes an unreadable member's reason (review item 7) by the names' rule
(name_safe), as it writes the name itself and as the page writes both (|named): the
indexer's reason names the member ("Bad CRC-32 for file 'a\\tb.txt'"), and a tab, a
no-break space or a line separator in it is escaped, never a column or a line of its own.
Generated: member names of white space and unseen characters, corrupt members."""
from __future__ import annotations

import random

import pytest

from services.archive.extract import extract
from services.cli.archive import _file_lines
from services.common.terminal import name_safe
from services.web import mail_view
from tests.unit.web.test_file_listing_costs import message
from tests.unit.web.test_unreadable_members import zip_of, zip_part

ODD = ["\t", "\u00a0", "\u2028", "\u3000", "  ", "\u200b", "\u202e", "\\t", "\r\n"]


def names(seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"m{seed}-{at}" + "".join(rng.choice(ODD) + rng.choice("abc") for _ in range(3))
            + ".txt" for at in range(rng.randrange(1, 5))]


@pytest.mark.parametrize("seed", range(12))
def test_an_unreadable_reason_is_written_as_names_are(seed):
    members = [(name, b"content %d" % at, "crc") for at, name in enumerate(names(seed))]
    raw = message(f"u{seed}", [zip_part(f"u{seed}.zip", zip_of(members))])
    reasons = {entry.filename: entry.error for entry in extract(raw, 1 << 20).attachments
               if entry.container}
    assert all(reasons.values()) and len(reasons) == len(members)
    lines = _file_lines(mail_view.view(raw).as_json()["attachments"])
    for name, reason in reasons.items():
        [line] = [line for line in lines if line.endswith(f"unreadable: {name_safe(reason)}")]
        assert line.isprintable() and "\u00a0" not in line and "\u3000" not in line
