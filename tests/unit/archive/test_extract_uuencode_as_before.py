"""Extraction reads uuencoded files through mime's rule of a message's files
(mime.body_text_split, mime.uuencoded_name: the rule the web's views read too, review 199
F1) and gives what 364d79c's own copy of it gave: the same Extracted (body, attachments,
their names, types, text, cut) and the same body_text, for the generated messages of the
web's test (every text type and none, each name of x-uuencode, inline blocks under every
transfer encoding, several, cut and undecodable blocks, multiparts, attached messages),
extraction's own uuencode variants, and the project's mail cases."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from services.archive import extract as extract_module
from services.archive.extract import body_text, extract
from tests.unit.archive.history import module_at
from tests.unit.archive.test_uuencode import VARIANTS
from tests.unit.web.test_uuencoded_views import CORPUS

BEFORE = "364d79c"
CAP = 64 * 1024
CASES = Path(__file__).parents[2] / "data" / "cases"
REFERENCE = module_at(BEFORE, "extract")
REFERENCE._guard = extract_module._guard  # extract() sets the guard its attachments ask
REFERENCE.HTML_BLOCKS = extract_module.HTML_BLOCKS  # (the same blocks: not what is compared)


def readings(raw: bytes) -> tuple[dict, str]:
    """What extract() and body_text() make of a message: (the Extracted as a dict, body)."""
    return dataclasses.asdict(extract(raw, CAP)), body_text(raw)


def reference_readings(raw: bytes) -> tuple[dict, str]:
    """readings() as 364d79c gave them (its walk of the parts, and all it calls)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(extract_module, "_body_and_attachments", REFERENCE._body_and_attachments)
        return readings(raw)


MESSAGES = {**{case.id: case.raw for case in CORPUS},
            **{f"variant-{variant[0]}": variant[1] for variant in VARIANTS},
            **{str(path.relative_to(CASES)): path.read_bytes()
               for path in sorted(CASES.rglob("*")) if path.is_file()
               and (path.suffix in (".eml", ".mbox") or path.parent.name in ("cur", "new"))}}


def test_the_reference_is_364d79c_s_own_code():
    assert REFERENCE._text_part is not extract_module._text_part


@pytest.mark.parametrize("raw", MESSAGES.values(), ids=MESSAGES.keys())
def test_extraction_reads_as_before(raw):
    assert readings(raw) == reference_readings(raw)
