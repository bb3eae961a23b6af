"""The web export of a search (GET /api/export, as the search page's "export all" sends)
lists what the search matched among the user's mail when the export began, each message
once and newest first, however the archive changes while it streams: mail indexed
meanwhile is not in it, mail deleted meanwhile is left out, nothing else moves."""
from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest

from services.appliance import users
from services.web.access import mail_filter
from tests.integration.archive.export_changes import (BULK, READS_BEFORE_CHANGE,
                                                      AddMailMeanwhile, bulk,
                                                      change_after_reads,
                                                      delete_mail_meanwhile, in_order)
from tests.integration.web.test_api import client

pytestmark = pytest.mark.integration
QUERY = "subject:bulk"
USERS = ("audrey", "alice")  # an auditor reads all mail; alice hers (a filtered search)


@pytest.fixture(scope="module")
def extra_mails() -> dict:
    """BULK messages to alice, every sixth to dave instead."""
    return {f"bulk-{n}": (raw, None) for n, raw in enumerate(bulk(BULK, to_others_every=6))}


def at_start(site, name: str) -> list[str]:
    """What the search matches now among `name`'s mail, newest first."""
    user = users.get(site.archive, name)
    return in_order(site.archive.index_dir(), QUERY, within=mail_filter(user))


def exported(site, name: str) -> tuple[list[str], dict]:
    reply = client(site, name).get(f"/api/export?format=zip&q={QUERY}")
    assert reply.status == 200, reply.body[:300]
    with zipfile.ZipFile(io.BytesIO(reply.body)) as export:
        rows = list(csv.DictReader(io.StringIO(export.read("manifest.csv").decode())))
        return [row["digest"] for row in rows], json.loads(export.read("export.json"))


@pytest.mark.parametrize("name", USERS)
def test_mail_indexed_during_an_export_is_not_in_it_and_moves_nothing(site, monkeypatch,
                                                                      name):
    before = at_start(site, name)
    assert len(before) > 500  # more than a page of the offset paging exports used
    adding = AddMailMeanwhile(site.archive.index_dir(), "bulk")
    ran = change_after_reads(monkeypatch, READS_BEFORE_CHANGE, adding)
    digests, info = exported(site, name)
    assert ran and set(adding.added) <= set(at_start(site, name))  # they match now
    assert digests == before  # each once, newest first, nothing added
    if name == "audrey":
        assert info["as_of"]["last_document"] < site.archive.store.meta(
            adding.added[0])["number"]
    else:  # how much mail the archive holds is not hers to know
        assert info["as_of"] is None


@pytest.mark.parametrize("name", USERS)
def test_mail_deleted_during_an_export_is_left_out_and_nothing_else(site, monkeypatch, name):
    before = at_start(site, name)
    assert len(before) > 500
    doomed = before[:40] + before[-1:]  # written into the export already, and not yet
    ran = change_after_reads(monkeypatch, READS_BEFORE_CHANGE,
                             delete_mail_meanwhile(site.archive.index_dir(), doomed))
    digests, _ = exported(site, name)
    assert ran and len(at_start(site, name)) == len(before) - len(doomed)
    assert digests == before[:-1]
