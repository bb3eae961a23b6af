"""A hold whose saved search can no longer be used (its query does not parse in this
release: a peer's, or one saved before a syntax change) keeps every message, erring on the
safe side; the holds page, the API and `archiver hold list` now say so and why, where they
said nothing."""
import html
import json
import subprocess

from services.policy import holds, saved_searches
from services.policy.audit import Actor
from services.policy.replicated import Replicated
from tests.integration.web.test_ui import logged_in

ADMIN = Actor("root", "admin")


def test_a_hold_on_a_search_that_no_longer_parses_says_it_holds_everything(site):
    replicated = Replicated(site.archive.store)
    saved_searches.save(replicated, "relay", "from:carol", ADMIN)
    hold_id = holds.add(replicated, site.archive.index_dir(), "relay", None, ADMIN, "Relay")
    replicated.put(saved_searches.PREFIX + "relay", {"query": "source:smtp:relay"})  # a peer's
    try:
        page = html.unescape(logged_in(site, "admin").get("/holds").body.decode())
        row = page[page.index(f'id="hold-{hold_id}"'):]
        row = row[:row.index("</tr>")]
        assert "holds every message: its saved search 'relay' cannot be used" in row
        assert "source:" in row  # the reason names what the syntax refused
        shown = {h["id"]: h for h in logged_in(site, "admin").get("/api/holds").json()}
        assert "cannot be used" in shown[hold_id]["holds_everything"]
        from tests.conftest import ARCHIVER
        listed = subprocess.run([str(ARCHIVER), "hold", "list", "--data",
                                 str(site.archive.store.path.parent)], capture_output=True,
                                text=True, timeout=120)
        assert "holds every message: its saved search 'relay' cannot be used" in listed.stdout
        status = html.unescape(logged_in(site, "admin").get("/status").body.decode())
        assert "1 hold keeps every message</strong>: retention deletes nothing" in status
    finally:
        holds.remove(replicated, hold_id, ADMIN, holds.UNSTATED)
        replicated.delete(saved_searches.PREFIX + "relay")


def test_a_hold_on_a_search_that_parses_holds_what_it_matches(site):
    replicated = Replicated(site.archive.store)
    saved_searches.save(replicated, "carol", "from:carol", ADMIN)
    hold_id = holds.add(replicated, site.archive.index_dir(), "carol", None, ADMIN, "Carol")
    try:
        shown = {h["id"]: h for h in logged_in(site, "admin").get("/api/holds").json()}
        assert shown[hold_id]["holds_everything"] is None
    finally:
        holds.remove(replicated, hold_id, ADMIN, holds.UNSTATED)
