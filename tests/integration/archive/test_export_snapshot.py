"""`archiver export` of a search lists what the search matched when the export began, each
message once and newest first, however the archive changes while it is written: mail
indexed meanwhile is not in it, mail deleted meanwhile (retention) is left out, and no
other message moves in or out (as one would when paging by offset)."""
import csv
import io
import json
import zipfile
from pathlib import Path

import pytest

from services.archive.archive import Archive
from services.cli.main import main
from tests.integration.archive.export_changes import (BULK, READS_BEFORE_CHANGE,
                                                      AddMailMeanwhile, bulk,
                                                      change_after_reads,
                                                      delete_mail_meanwhile, in_order,
                                                      index_now)

pytestmark = pytest.mark.integration
QUERY = "subject:bulk"


@pytest.fixture
def data(tmp_path) -> Path:
    data = tmp_path / "data"
    archive = Archive(data, 450)
    archive.store.put_many((raw, None, "import") for raw in bulk(BULK))
    index_now(archive.store, archive.index_dir())
    archive.close()
    return data


def exported(data: Path, out: Path, capsys) -> tuple[list[str], dict]:
    """`archiver export QUERY` run in this process (so the store can change while it
    reads): the manifest's digests in order, and export.json."""
    assert main(["export", QUERY, "--format", "zip", "-o", str(out), "--data", str(data), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    with zipfile.ZipFile(out) as export:
        rows = list(csv.DictReader(io.StringIO(export.read("manifest.csv").decode())))
        info = json.loads(export.read("export.json"))
    assert summary["exported"] == info["messages"] == len(rows)
    return [row["digest"] for row in rows], info


def test_mail_indexed_during_an_export_is_not_in_it_and_moves_nothing(data, tmp_path,
                                                                      monkeypatch, capsys):
    index_dir = Archive(data, 450).index_dir()
    at_start = in_order(index_dir, QUERY)
    adding = AddMailMeanwhile(index_dir, "bulk")
    ran = change_after_reads(monkeypatch, READS_BEFORE_CHANGE, adding)
    digests, info = exported(data, tmp_path / "export.zip", capsys)
    assert ran and set(adding.added) <= set(in_order(index_dir, QUERY))  # they match now
    assert digests == at_start  # each once, newest first, nothing added
    assert info["as_of"]["last_document"] == BULK  # ids 1..BULK were indexed at the start
    assert isinstance(info["as_of"]["index_revision"], int)


def test_mail_deleted_during_an_export_is_left_out_and_nothing_else(data, tmp_path,
                                                                    monkeypatch, capsys):
    index_dir = Archive(data, 450).index_dir()
    at_start = in_order(index_dir, QUERY)
    # Retention deletes mail already written into the export, and one message not yet.
    ran = change_after_reads(monkeypatch, READS_BEFORE_CHANGE, delete_mail_meanwhile(
        index_dir, at_start[:40] + at_start[-1:]))
    digests, _ = exported(data, tmp_path / "export.zip", capsys)
    assert ran and len(in_order(index_dir, QUERY)) == len(at_start) - 41
    assert digests == at_start[:-1]
