"""The message JSON of the API (GET /api/messages/D) and `show --json` (mail_view.
message_json): the store's metadata but its own document number (review item 5: a
top-level "number", the index's document id, read as a file's number beside the numbered
"attachments" and is in no OpenAPI schema of a message), the indexer's names, the files.
Over generated messages imported into one archive: none has "number", each keeps every
other field of its metadata."""
from __future__ import annotations

import hashlib
import json
import random

import pytest

from services.archive.archive import Archive
from services.cli.main import main
from services.web import mail_view, openapi
from tests.unit.web.test_file_listing_costs import message, named


def generated() -> list[bytes]:
    rng = random.Random(20261210)
    return [message(f"json {case}", [named(f"f{case}-{at}.bin", rng.randbytes(30))
                                     for at in range(rng.randrange(0, 4))])
            for case in range(8)]


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    folder, data = tmp_path_factory.mktemp("json"), str(tmp_path_factory.mktemp("data"))
    for at, raw in enumerate(generated()):
        (folder / f"{at}.eml").write_bytes(raw)
    assert main(["import", str(folder), "--data", data, "--json"]) == 0
    return data, [hashlib.sha256(raw).hexdigest() for raw in generated()]


def test_show_json_and_the_api_have_no_store_number(imported, capsys):
    data, digests = imported
    capsys.readouterr()
    archive = Archive(data, 450)
    try:
        metas = {digest: archive.store.meta(digest) for digest in digests}
        raws = {digest: archive.store.get(digest) for digest in digests}
    finally:
        archive.close()
    for digest in digests:
        assert "number" in metas[digest]  # (the store keeps it: the JSON leaves it out)
        assert main(["show", digest, "--data", data, "--json"]) == 0
        shown = json.loads(capsys.readouterr().out)
        api = mail_view.message_json(metas[digest], mail_view.view(raws[digest]).as_json())
        for answer in (shown, api):
            assert "number" not in answer
            assert set(metas[digest]) - {"number"} <= set(answer)
            assert [file["number"] for file in answer["attachments"]] == \
                list(range(1, len(answer["attachments"]) + 1))
    assert "number" not in openapi.SCHEMAS["Message"]["properties"]
