"""Messages padded with 3 million header lines (some 40 MB each), in the message's header,
a MIME part's and a forwarded message's, through `archiver import` and its real extraction
workers under the model's memory limit: each is stored and found by what it hides after
its padding, and none is flagged. Before services.archive.header_blocks the worker ran out
of memory on such a message and the fallback read nothing but header: a sender could
hide a body from every search this way."""
import hashlib
import json

import pytest

from tests import search_output
from tests.padded_headers import corpus

pytestmark = pytest.mark.integration

SHAPES = ("top-crlf-fields-mime-last", "part-lf", "forwarded-crlf", "top-cr-folded-mime-first")


def test_what_3_million_header_lines_hide_is_found(archiver, tmp_path):
    cases = corpus(3_000_000, SHAPES)
    assert len(cases) == len(SHAPES)
    folder = tmp_path / "padded"
    folder.mkdir()
    for case in cases:
        (folder / f"{case.name}.eml").write_bytes(case.raw)
    data = tmp_path / "data"
    done = archiver("import", "--data", data, "--json", folder, check=0)
    summary = json.loads(done.stdout.splitlines()[-1])
    assert (summary["imported"], summary["indexed"], summary["failed"]) == (len(cases),) * 2 + (0,)
    for case in cases:
        digest = hashlib.sha256(case.raw).hexdigest()
        for word in case.words:
            found = search_output.hits(archiver("search", word, "--data", data, "--json",
                                                check=0).stdout)
            assert digest in [hit["digest"] for hit in found], (case.name, word)
            assert not [hit for hit in found if hit.get("extraction_failed")], (case.name, word)
