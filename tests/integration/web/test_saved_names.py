"""A saved search's name may hold any character but ":" (saved_searches.check): "/", "%",
"?", "#", spaces (at its ends too: a name from the API or a mirror peer) and non-ASCII.
Such a name is used and deleted through the API's paths, "/" sent as it is or as %2F, and
through the web pages' forms, which send it back as the page showed it."""
from __future__ import annotations

import html
import re
from urllib.parse import quote

import pytest

from services.policy import audit
from tests.integration.web.fixtures import PASSWORD, Client
from tests.integration.web.test_ui import csrf_token, logged_in

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_throttle")]


def odd_name(topic: str) -> str:
    """Such a name, told apart by `topic`."""
    return f" {topic}/2024 50%?#é "


def api(site, name: str = "admin") -> Client:
    return Client(site.url, basic=(name, PASSWORD))


def in_path(name: str, slash: str = "/") -> str:
    """`name` percent-encoded as UTF-8 for a URL path, its "/" as `slash`."""
    return quote(name, safe="").replace("%2F", slash)


def saved_by_api(site, name: str) -> None:
    """Save a search under `name` through the API, for a form to use: its "/" as %2F,
    which this aiohttp routed before names took the rest of the path too."""
    reply = api(site).request("PUT", f"/api/saved-searches/{in_path(name, '%2F')}",
                              {"query": "from:carol"})
    assert reply.status == 200


def saved_names(site) -> list[str]:
    return [saved["name"] for saved in api(site).get("/api/saved-searches").json()]


def audited(site, action: str) -> dict:
    """The details of the audit log's newest `action` entry."""
    return [e for e in audit.entries(site.archive.store) if e["action"] == action][-1]["details"]


def test_the_api_saves_sets_retention_of_and_deletes_them(site):
    auditor, admin = api(site, "audrey"), api(site)
    for name, slash in ((odd_name("api"), "/"), (odd_name("api") + "/2", "%2F")):
        path = in_path(name, slash)
        assert auditor.request("PUT", f"/api/saved-searches/{path}", {
            "query": "from:carol"}).json() == {"name": name, "query": "from:carol"}
        assert name in saved_names(site)
        policy = admin.request("PUT", f"/api/retention/saved/{path}", {"days": 7000}).json()
        assert policy["saved"] == {name: 7000}
        admin.request("PUT", f"/api/retention/saved/{path}", {"days": None})
        assert auditor.request("DELETE", f"/api/saved-searches/{path}").json() == {
            "deleted": name}
        assert name not in saved_names(site)
        assert audited(site, "saved-search-delete") == {"name": name}


def option_value(page: str, select: str, shown: str) -> str:
    """The value the option showing `shown` in select `select` of `page` sends."""
    options = re.search(rf'<select name="{select}">(.*?)</select>', page, re.S).group(1)
    return html.unescape(re.search(rf'<option value="([^"]*)">{re.escape(html.escape(shown))}'
                                   r'</option>', options).group(1))


def post(browser: Client, path: str, page: str, **form):
    """Post `form` to `path` with the CSRF token of `page`."""
    return browser.request("POST", path, form={"csrf_token": csrf_token(browser.get(page).body),
                                               **form})


def test_the_holds_and_retention_forms_send_the_name_as_it_is(site):
    name = odd_name("forms")
    saved_by_api(site, name)
    admin = logged_in(site, "admin")
    chosen = option_value(admin.get("/holds").body.decode(), "saved", name)
    assert post(admin, "/holds", "/holds", saved=chosen, matter="odd").status == 303
    [hold] = [hold for hold in api(site).get("/api/holds").json() if hold["saved"] == name]
    chosen = option_value(admin.get("/retention").body.decode(), "name", name)
    preview = post(admin, "/retention/preview", "/retention", kind="saved", name=chosen,
                   days="7000").body.decode()
    confirmed = html.unescape(re.search(r'name="name" value="([^"]*)"', preview).group(1))
    assert post(admin, "/retention/saved", "/retention", confirmed="yes", name=confirmed,
                days="7000").status == 303
    assert api(site).get("/api/retention").json()["saved"] == {name: 7000}
    assert audited(site, "retention") == {"saved": name, "days": "7000"}
    api(site).request("PUT", f"/api/retention/saved/{in_path(name)}", {"days": None})
    api(site).request("DELETE", f"/api/holds/{in_path(hold['id'])}")


def test_the_saved_searches_page_deletes_one(site):
    name = odd_name("page")
    saved_by_api(site, name)
    browser = logged_in(site, "audrey")
    page = html.unescape(browser.get("/saved").body.decode())
    row = re.search(rf"<td>{re.escape(name)}</td>.*?</tr>", page, re.S).group(0)
    shown = re.search(r'<input type="hidden" name="name" value="([^"]*)">', row).group(1)
    assert post(browser, "/saved/delete", "/saved", name=shown).status == 303
    assert name not in saved_names(site)
    assert audited(site, "saved-search-delete") == {"name": name}


@pytest.mark.parametrize("name", ["cafe\u0301", "audit\u200bs", "\u202eevil", "tab\there"])
def test_a_name_that_looks_like_another_is_refused(site, name):
    """Decomposed accents (NFD "café"), invisible characters (a zero-width space, a
    right-to-left override) and control characters would make a look-alike of a saved
    search a hold or a retention policy is built on."""
    reply = api(site).request("PUT", f"/api/saved-searches/{in_path(name, '%2F')}",
                              {"query": "from:carol"})
    assert reply.status == 400 and "invisible" in reply.json()["error"]
    assert name not in saved_names(site)


@pytest.mark.parametrize("name", ["x/../../holds/abc", "..", ".", "a/./b", "a/.."])
def test_a_name_with_dot_segments_is_refused(site, name):
    """HTTP clients resolve "." and ".." between slashes before sending (RFC 3986 5.2.4):
    an admin's DELETE of such a name, "/" sent as it is, went to another endpoint
    (`x/../../holds/ID` released hold ID). No such name can be saved."""
    reply = api(site).request("PUT", f"/api/saved-searches/{in_path(name, '%2F')}",
                              {"query": "from:carol"})
    assert reply.status == 400
    assert "expected no '.' or '..' between slashes" in reply.json()["error"]
    assert name not in saved_names(site)
    for fine in ("..x", "a.b/c.", "x/...") if name == "." else ():
        assert api(site).request("PUT", f"/api/saved-searches/{in_path(fine, '%2F')}",
                                 {"query": "from:carol"}).status == 200


@pytest.mark.parametrize("method, path, body", [
    ("DELETE", "/api/saved-searches/{name}", None),
    ("PUT", "/api/retention/saved/{name}", {"days": 30}),
    ("DELETE", "/api/holds/{id}", None),
])
def test_a_path_naming_no_saved_search_or_hold_is_404_as_the_openapi_document_says(
        site, method, path, body):
    """Not 400: the request is well formed, what it names is not there. Nothing changes,
    and a body naming an unknown saved search (POST /api/holds) stays a 400."""
    before = api(site).get("/api/retention").json(), api(site).get("/api/holds").json()
    name = odd_name("nowhere")
    reply = api(site).request(method, path.replace(path[path.index("{"):],
                                                   in_path(name, "%2F")), body)
    assert reply.status == 404
    assert repr(name) in reply.json()["error"] and reply.json()["error"].startswith("no ")
    operation = api(site).get("/api/openapi.json").json()["paths"][path][method.lower()]
    assert "404" in operation["responses"]
    assert (api(site).get("/api/retention").json(), api(site).get("/api/holds").json()) == before
    assert api(site).request("POST", "/api/holds", {"saved": name}).status == 400


def test_a_look_alike_name_saved_before_the_rule_keeps_working_and_joiners_are_names(site):
    """A name stored before the rule (or by older firmware) keeps its name and its query
    may still be changed and deleted; the joiners Persian words and emoji need are
    allowed."""
    from services.policy import saved_searches
    from services.policy.replicated import Replicated
    old = "audit\u200bs"
    Replicated(site.archive.store).put(saved_searches.PREFIX + old, {"query": "from:carol"})
    path = f"/api/saved-searches/{in_path(old, '%2F')}"
    assert api(site).request("PUT", path, {"query": "from:dave"}).status == 200
    assert {"name": old, "query": "from:dave"} in api(site).get("/api/saved-searches").json()
    assert api(site).request("DELETE", path).status == 200
    for name in ("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", "\U0001f469\u200d\U0001f4bb team"):
        assert api(site).request("PUT", f"/api/saved-searches/{in_path(name, '%2F')}",
                                 {"query": "from:carol"}).status == 200, name
        assert api(site).request("DELETE", f"/api/saved-searches/{in_path(name, '%2F')}"
                                 ).status == 200
