"""Honest answers on the web: a query the syntax does not know is a 400 with the reason
(API) or the reason next to the query (page), never a silent zero; counts are exact up to
10,000 and say "more than 10,000" above, in the API, the page and the CLI."""
from __future__ import annotations

import html
import re
import urllib.parse

import pytest

from services.appliance import users
from services.archive.archive import Archive
from tests.integration.archive import crowded
from tests.integration.processes import free_port
from tests.integration.web.fixtures import (MAILS, PASSWORD, Client, ThreadedServer,
                                            web_config)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_throttle")]
BAD = [
    ("foo:bar", 1, 'unknown field "foo:"'),
    ("report after:2024-02-30", 14, "is not a date"),
    ("date:2024-02-01..2024-01-01", 6, "the range is reversed"),
    ('subject:"quarterly report', 9, "unbalanced quote"),
    ("(lunch OR report", 1, "this ( is never closed"),
]


def quoted(query: str) -> str:
    return urllib.parse.quote(query, safe="")


def page_of(site, query: str) -> str:
    browser = Client(site.url)
    token = re.search(r'name="login_token" value="([^"]+)"',
                      browser.get("/login").body.decode()).group(1)
    browser.request("POST", "/login", form={"login_token": token, "name": "audrey",
                                            "password": PASSWORD, "next": "/search"})
    reply = browser.get("/search?q=" + quoted(query))
    assert reply.status == 200
    return reply.body.decode()


@pytest.mark.parametrize("query, column, problem", BAD)
def test_the_api_answers_400_with_the_reason(site, query, column, problem):
    auditor = Client(site.url, basic=("audrey", PASSWORD))
    reply = auditor.get("/api/search?q=" + quoted(query))
    assert reply.status == 400
    assert problem in reply.json()["error"] and f"(column {column})" in reply.json()["error"]
    export = auditor.get(f"/api/export?format=zip&q={quoted(query)}")
    assert export.status == 400 and problem in export.json()["error"]


@pytest.mark.parametrize("query, column, problem", BAD)
def test_the_page_shows_the_reason_next_to_the_query(site, query, column, problem):
    page = page_of(site, query)
    form_end = page.index("</form>")
    shown = page[form_end:page.index("</div>", form_end)]  # right after the query's form
    assert 'id="query-error" role="alert"' in shown
    assert problem in html.unescape(shown)
    pointer = html.unescape(re.search(r'<pre class="query-pointer">(.*?)</pre>', shown,
                                      re.S).group(1))
    assert pointer == f"{query}\n{' ' * (column - 1)}^"
    assert 'aria-invalid="true"' in page and "No messages found" not in page


def test_exact_counts_and_the_explanation_on_the_page_and_in_the_api(site):
    page = page_of(site, "from:carol@example.com")
    assert '<p class="summary">1–4 of 4</p>' in page
    assert "a sender&#39;s whole address is carol@example.com" in page
    auditor = Client(site.url, basic=("audrey", PASSWORD))
    found = auditor.get("/api/search?q=").json()
    assert (found["total"], found["total_exact"], found["total_text"]) == \
        (len(MAILS), True, str(len(MAILS)))
    assert found["notice"] is None
    understood = auditor.get("/api/search?explain=true&q=" + quoted("muller OR date:2024")).json()
    assert understood["explanation"][0] == "any of:" and understood["timezone"] == "UTC"
    assert understood["xapian"].startswith("Query(")


def test_a_user_explaining_a_pattern_sees_no_address_of_mail_not_theirs(site):
    query = "/api/search?explain=true&q=" + quoted("to:*a*@example.com")
    staff = Client(site.url, basic=("audrey", PASSWORD)).get(query).json()["xapian"]
    assert "XTOEdave@example.com" in staff  # the pattern, expanded over the whole index
    user = Client(site.url, basic=("alice", PASSWORD)).get(query).json()
    assert "dave@example.com" not in user["xapian"] and "XTOE*a*@example.com" in user["xapian"]
    assert user["explanation"] == ["a recipient's whole address matches the pattern "
                                   '"*a*@example.com"']


@pytest.fixture(scope="module")
def crowded_site(tmp_path_factory):
    data = tmp_path_factory.mktemp("crowded") / "data"
    archive = Archive(data, 450)
    crowded.fill(archive.index_dir())
    users.add(archive, "audrey", "auditor", [], PASSWORD)
    server = ThreadedServer(web_config(data, free_port()), archive).start()
    server.archive = archive
    yield server
    server.stop()
    archive.close()


def test_more_than_ten_thousand_is_said_so_everywhere(crowded_site, archiver):
    auditor = Client(crowded_site.url, basic=("audrey", PASSWORD))
    more = auditor.get("/api/search?q=alpha&limit=5").json()
    assert (more["total"], more["total_exact"], more["total_text"]) == \
        (10000, False, "more than 10,000")
    exact = auditor.get("/api/search?q=beta").json()
    assert (exact["total"], exact["total_exact"]) == (10000, True)
    assert auditor.get("/api/search?q=gamma").json()["total"] == crowded.GAMMA
    page = page_of(crowded_site, "alpha")
    assert '<p class="summary">1–50 of more than 10,000</p>' in page
    assert "all more than 10,000 results" in page
    data = crowded_site.archive.data_dir
    assert archiver("search", "alpha", "--data", data, check=0).stderr.strip() == \
        "(1-50 of more than 10,000)"
    assert archiver("search", "gamma", "--data", data, "--limit", "3", check=0
                    ).stderr.strip() == "(1-3 of 1,234)"
