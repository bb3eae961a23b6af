"""Releasing a litigation hold through the web app names the hold the admin saw, by id and
created time (services.policy.holds.remove): the holds page's form and the API. A mirror
merge that, between the page and the click, moved the hold shown to another id and put a
peer's hold under its id is refused, with the reason shown; the peer's hold stays (found by
a reviewer: the form sent only the id, and the peer's hold was released)."""
from __future__ import annotations

import html
import re
import time
from urllib.parse import quote

import pytest

from services.policy import audit, hold_identity, holds
from services.policy.replicated import Replicated
from tests.integration.web.fixtures import PASSWORD, Client
from tests.integration.web.test_ui import logged_in

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_throttle")]


def api(site, name: str = "admin") -> Client:
    return Client(site.url, basic=(name, PASSWORD))


def place(site, saved: str) -> dict:
    """A hold placed through the API on a new saved search `saved`: as GET /api/holds
    gives it."""
    admin = api(site)
    assert admin.request("PUT", f"/api/saved-searches/{saved}",
                         {"query": "from:carol"}).status == 200
    return admin.request("POST", "/api/holds", {"saved": saved}).json()


def peer_takes_the_id(site, hold: dict) -> str:
    """A mirror peer's hold under `hold`'s id, created later, merged as a hello would: ours
    moves to its moved key, which is returned (its id)."""
    Replicated(site.archive.store).merge({"hold:" + hold["id"]: {
        "value": {"saved": hold["saved"], "until": None, "by": "peer",
                  "created": hold["created"] + 1000.0},
        "deleted": False, "stamp": [int(time.time() * 1000) + 60_000, 0, "peer"]}})
    return hold_identity.moved_key("hold:" + hold["id"], {"value": hold})[5:]


def remove_form(page: str, hold_id: str) -> dict:
    """The fields of the holds page's form that removes hold `hold_id`."""
    row = re.search(rf'<tr id="hold-{re.escape(hold_id)}" class="hold">(.*?)</tr>', page,
                    re.S).group(1)
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', row))


def listed(site) -> dict[str, float | None]:
    return {hold["id"]: hold["created"] for hold in api(site).get("/api/holds").json()}


def test_the_holds_page_refuses_to_release_a_hold_a_merge_replaced(site):
    admin = logged_in(site, "admin")
    hold = place(site, "page-case")
    form = remove_form(admin.get("/holds").body.decode(), hold["id"])  # the admin sees it
    assert form["id"] == hold["id"] and float(form["created"]) == hold["created"]
    moved = peer_takes_the_id(site, hold)  # a hello, between the page and the click
    reply = admin.request("POST", "/holds/remove", form=form)
    assert reply.status == 303 and reply.headers["Location"] == "/holds"
    page = html.unescape(admin.get("/holds").body.decode())
    flash = re.search(r'<p class="flash error" role="status">(.*?)</p>', page, re.S).group(1)
    assert f"hold {hold['id']} changed" in flash and f"now hold {moved}" in flash
    assert listed(site) == {hold["id"]: hold["created"] + 1000.0, moved: hold["created"]}
    reply = admin.request("POST", "/holds/remove", form=remove_form(page, moved))
    assert reply.status == 303
    assert f"Hold {moved} removed." in html.unescape(admin.get("/holds").body.decode())
    assert listed(site) == {hold["id"]: hold["created"] + 1000.0}  # the peer's: not released
    entry = [e for e in audit.entries(site.archive.store) if e["action"] == "hold-remove"][-1]
    assert entry["details"] == {"hold": moved, "created": hold["created"]}
    api(site).request("DELETE", f"/api/holds/{hold['id']}?created={hold['created'] + 1000.0}")


def test_a_form_without_the_created_time_releases_nothing(site):
    """A form from a page of an earlier release (the id alone), or an odd created time."""
    admin = logged_in(site, "admin")
    hold = place(site, "old-form")
    form = remove_form(admin.get("/holds").body.decode(), hold["id"])
    for created in (None, "", "yesterday", "nan"):
        fields = {k: v for k, v in form.items() if k != "created"}
        admin.request("POST", "/holds/remove",
                      form=fields if created is None else {**fields, "created": created})
        page = html.unescape(admin.get("/holds").body.decode())
        assert "expected the hold's created time" in page and hold["id"] in listed(site)
    admin.request("POST", "/holds/remove", form=form)
    assert hold["id"] not in listed(site)


def test_the_api_releases_the_hold_named_by_its_created_time(site):
    admin = api(site)
    hold = place(site, "api-case")
    moved = peer_takes_the_id(site, hold)
    stale = admin.request("DELETE", f"/api/holds/{hold['id']}?created={hold['created']!r}")
    assert stale.status == 409 and f"hold {hold['id']} changed" in stale.json()["error"]
    unstated = admin.request("DELETE", f"/api/holds/{hold['id']}")
    assert unstated.status == 409 and moved in unstated.json()["error"]
    assert admin.request("DELETE", f"/api/holds/{hold['id']}?created=x").status == 400
    assert listed(site) == {hold["id"]: hold["created"] + 1000.0, moved: hold["created"]}
    peer = admin.request("DELETE", f"/api/holds/{hold['id']}?created="
                         + quote(repr(hold["created"] + 1000.0)))
    assert peer.status == 200 and peer.json() == {"removed": hold["id"]}
    assert admin.request("DELETE", f"/api/holds/{moved}").status == 200  # alone now
    assert listed(site) == {}


def test_an_unreadable_hold_is_listed_and_can_be_released(site):
    """A hold whose stored value is no hold's (a peer's, from before merges checked them):
    the page and the API list it as unreadable instead of failing, and it is released by
    its form."""
    Replicated(site.archive.store).put("hold:0dd0dd0d", "not a hold")
    admin = logged_in(site, "admin")
    page = html.unescape(admin.get("/holds").body.decode())
    row = re.search(r'<tr id="hold-0dd0dd0d" class="hold">(.*?)</tr>', page, re.S).group(1)
    assert "unreadable: expected an object" in row and "holds everything" in row
    [shown] = [hold for hold in api(site).get("/api/holds").json() if hold["id"] == "0dd0dd0d"]
    assert shown["unreadable"].startswith("expected an object") and shown["created"] is None
    admin.request("POST", "/holds/remove", form=remove_form(page, "0dd0dd0d"))
    assert "0dd0dd0d" not in listed(site)
    assert holds.all_holds(Replicated(site.archive.store)) == {}


# -- ids and names with characters a URL gives a meaning to ------------------------------
# Ids drawn here are hex, but a mirror peer's hold may have any id without NUL: one with
# "/", "%", "?", "#", spaces (at its ends too) and non-ASCII must be released like any.


def odd_id(matter: str) -> str:
    """Such an id, told apart by `matter`."""
    return f" {matter}/2024 50%?#é "


def peer_places(site, hold_id: str, saved: str) -> float:
    """A mirror peer's hold under `hold_id` on saved search `saved`, merged as a hello
    would; returns its created time."""
    created = time.time()
    assert Replicated(site.archive.store).merge({"hold:" + hold_id: {
        "value": {"saved": saved, "until": None, "by": "peer", "created": created},
        "deleted": False, "stamp": [int(time.time() * 1000), 0, "peer"]}}) == 1
    return created


def last_release(site) -> dict:
    """The details of the audit log's newest hold-remove entry."""
    return [e for e in audit.entries(site.archive.store)
            if e["action"] == "hold-remove"][-1]["details"]


def test_the_api_releases_holds_whose_ids_have_url_characters(site):
    """Each id percent-encoded as UTF-8, its "/" sent as it is or as %2F."""
    admin = api(site)
    assert admin.request("PUT", "/api/saved-searches/odd-ids",
                         {"query": "from:carol"}).status == 200
    for hold_id, slash in ((odd_id("api"), "/"), (odd_id("api") + "/2", "%2F")):
        created = peer_places(site, hold_id, "odd-ids")
        path = "/api/holds/" + quote(hold_id, safe="").replace("%2F", slash)
        reply = admin.request("DELETE", f"{path}?created={quote(repr(created))}")
        assert reply.status == 200 and reply.json() == {"removed": hold_id}
        assert hold_id not in listed(site)
        assert last_release(site) == {"hold": hold_id, "created": created}


def test_the_holds_page_releases_a_hold_whose_id_has_url_characters(site):
    hold_id = odd_id("page")
    api(site).request("PUT", "/api/saved-searches/odd-page", {"query": "from:carol"})
    created = peer_places(site, hold_id, "odd-page")
    admin = logged_in(site, "admin")
    form = remove_form(html.unescape(admin.get("/holds").body.decode()), hold_id)
    assert form["id"] == hold_id
    assert admin.request("POST", "/holds/remove", form=form).status == 303
    assert f"Hold {hold_id} removed." in html.unescape(admin.get("/holds").body.decode())
    assert hold_id not in listed(site)
    assert last_release(site) == {"hold": hold_id, "created": created}
