"""`archiver status` says how many litigation holds are in force and which keep every
message, and why: a hold whose saved search no longer parses (a peer's query, one saved
before a syntax change) and one whose search was edited away from such a query. While
one lives retention deletes nothing; before, only `hold list` and the web's holds page
said so."""
import datetime as dt
import json
import time

import pytest

from services.appliance.health import holds_state
from services.policy import editing, holds, saved_searches
from tests.integration.policy.test_retention import ADMIN, archive, index  # noqa: F401

pytestmark = pytest.mark.integration

PEERS_QUERY = {"query": "source:smtp:relay"}  # what this release's syntax refuses


def test_status_names_the_holds_that_keep_every_message(archive, archiver):
    def status(*extra) -> str:
        return archiver("status", "--data", archive.data_dir, *extra, check=0).stdout

    index(archive)
    replicated = archive.replicated
    for name in ("plain", "peers", "edited"):
        saved_searches.save(replicated, name, "from:carol", ADMIN)
    placed = {name: holds.add(replicated, archive.index_dir(), name, None, ADMIN, name)
              for name in ("plain", "peers", "edited")}
    assert json.loads(status("--json"))["holds"] == {
        "in_force": 3, "holding_everything": []}
    replicated.put(saved_searches.PREFIX + "peers", PEERS_QUERY)
    replicated.put(saved_searches.PREFIX + "edited", PEERS_QUERY)
    editing.save_search(archive.store, archive.index_dir(), "edited", "from:dave", ADMIN)
    report = json.loads(status("--json"))["holds"]
    assert report["in_force"] == 3
    keeping = {hold["id"]: hold["why"] for hold in report["holding_everything"]}
    assert set(keeping) == {placed["peers"], placed["edited"]}
    assert "its saved search 'peers' cannot be used" in keeping[placed["peers"]]
    assert "the query 'source:smtp:relay' its saved search 'edited' had before it changed" \
        in keeping[placed["edited"]]
    text = status()
    assert "holds: 3 in force; 2 keep every message: retention deletes nothing" in text
    assert f"  hold {placed['peers']} keeps every message: its saved search 'peers'" in text


def test_a_hold_past_its_last_day_is_not_in_force(archive):
    saved_searches.save(archive.replicated, "old", "from:carol", ADMIN)
    archive.replicated.put(saved_searches.PREFIX + "old", PEERS_QUERY)
    holds.add(archive.replicated, archive.index_dir(), "old", dt.date.today(), ADMIN, "old")
    assert holds_state(archive.store, "UTC", time.time())["in_force"] == 1
    assert holds_state(archive.store, "UTC", time.time() + 3 * 86400) == {
        "in_force": 0, "holding_everything": []}
