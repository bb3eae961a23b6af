"""Permissions follow effects, through the real web API: the saved search a litigation hold
or a retention policy is built on is changed only by an admin (who may change the hold or
policy), each change is audited with the old and new query, and a hold keeps at least what
its search matched when it was placed, whatever its search is changed to later."""
from __future__ import annotations

import time

import pytest

from services.policy import audit, retention
from services.policy.audit import Actor
from services.policy.replicated import Replicated
from tests.integration.web.fixtures import MAILS, PASSWORD, Client

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_throttle")]

CAROLS = {"alice-cc", "alice-bcc-header", "alice-envelope", "lookalike"}  # from:carol


def as_(site, name: str) -> Client:
    return Client(site.url, basic=(name, PASSWORD))


def test_only_an_admin_changes_the_search_a_hold_or_retention_policy_is_built_on(site):
    auditor, admin = as_(site, "audrey"), as_(site, "admin")
    assert auditor.request("PUT", "/api/saved-searches/case", {"query": "from:carol"}).status == 200
    assert auditor.request("PUT", "/api/saved-searches/case", {"query": "from:carol OR from:dave"}
                           ).status == 200  # nothing is built on it yet
    assert auditor.request("PUT", "/api/saved-searches/case", {"query": "from:carol"}).status == 200
    hold = auditor.request("POST", "/api/holds", {"saved": "case"}).json()
    assert hold["held_at_placement"] == len(CAROLS)
    refused = auditor.request("PUT", "/api/saved-searches/case", {"query": "from:nobody"})
    assert refused.status == 403 and f"hold {hold['id']}" in refused.json()["error"]
    assert {"name": "case", "query": "from:carol"} in auditor.get("/api/saved-searches").json()

    assert auditor.request("PUT", "/api/saved-searches/old", {"query": "date:x"}).status == 400
    assert auditor.request("PUT", "/api/saved-searches/old", {"query": "from:dave"}).status == 200
    assert admin.request("PUT", "/api/retention/saved/old", {"days": 1}).status == 200
    refused = auditor.request("PUT", "/api/saved-searches/old", {"query": "from:*"})
    assert refused.status == 403 and "retention policy" in refused.json()["error"]
    assert admin.request("PUT", "/api/retention/saved/old", {"days": None}).status == 200


def test_an_admin_narrowing_a_held_search_never_shrinks_the_hold(site):
    admin = as_(site, "admin")
    assert admin.request("PUT", "/api/saved-searches/case", {"query": "from:nobody"}).status == 200
    change = [e for e in audit.entries(site.archive.store) if e["action"] == "saved-search"][-1]
    assert (change["who"], change["details"]["query"], change["details"]["old_query"]) \
        == ("admin", "from:nobody", "from:carol")
    assert change["details"]["built_on"] and change["details"]["built_on"][0].startswith("hold ")

    assert admin.request("PUT", "/api/retention", {"enabled": True, "global_days": 1}).status == 200
    report = retention.run(site.archive.store, site.archive.index_dir(),
                           Replicated(site.archive.store), Actor("admin", "admin"),
                           now=time.time() + 2 * 86400)  # the mail arrived by SMTP today
    stored = {name for name, digest in site.digests.items() if digest in site.archive.store}
    assert stored == CAROLS  # held since placement; everything else was past one day
    assert report.held == len(CAROLS) and report.deleted == len(MAILS) - len(CAROLS)


def test_a_hold_through_a_day_already_past_is_refused_as_holding_nothing(site):
    auditor = as_(site, "audrey")
    assert auditor.request("PUT", "/api/saved-searches/past", {"query": "from:carol"}).status == 200
    before = auditor.get("/api/holds").json()
    refused = auditor.request("POST", "/api/holds", {"saved": "past", "until": "2001-01-01"})
    assert refused.status == 400 and "the day is past" in refused.json()["error"]
    assert auditor.get("/api/holds").json() == before
    today = time.strftime("%Y-%m-%d", time.gmtime())  # the site's timezone is UTC
    placed = auditor.request("POST", "/api/holds", {"saved": "past", "until": today})
    assert placed.status == 200  # through today: in force until the day ends
    assert as_(site, "admin").request("DELETE", f"/api/holds/{placed.json()['id']}").status == 200
    assert auditor.request("DELETE", "/api/saved-searches/past").status == 200
