"""The HTTP API, endpoint by endpoint and role by role, against a real store and index,
served on loopback by the web app in this process."""
from __future__ import annotations

import io
import re
import zipfile

import pytest

from services.policy import audit
from services.archive.mailfiles import iter_mail
from services.web.api import ENDPOINTS
from services.web.auth import LoginThrottle
from tests.integration.processes import free_port
from tests.integration.web.fixtures import (ALICE_MAIL, BOB_MAIL, MAILS, PASSWORD, Client,
                                            ThreadedServer, web_config)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_throttle")]

ROLE_OF = {"admin": "admin", "audrey": "auditor", "alice": "user"}
SAMPLE_PATH_VALUES = {"digest": "0" * 64, "number": "1", "peer": "10.0.0.9:8443",
                      "name": "nothing-here", "id": "nohold"}


def client(site, name: str | None = None, basic: bool = True) -> Client:
    if name is None:
        return Client(site.url)
    if basic:
        return Client(site.url, basic=(name, PASSWORD))
    logged_in = Client(site.url)
    assert logged_in.log_in(name).status == 200
    return logged_in


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE_PATH_VALUES[m.group(1)], path)


def found_names(site, reply) -> set[str]:
    assert reply.status == 200, reply.body
    return {site.names[hit["digest"]] for hit in reply.json()["hits"]}


# -- the document, and who may call what -----------------------------------------------

def test_openapi_document_describes_every_api_route(site):
    document = client(site).get("/api/openapi.json").json()
    assert document["openapi"].startswith("3.")
    described = {(method.upper(), path) for path, item in document["paths"].items()
                 for method in item}
    routed = {(route.method, route.resource.canonical) for route in site.app.router.routes()
              if route.resource is not None and route.resource.canonical.startswith("/api/")}
    assert described == routed
    search = document["paths"]["/api/search"]["get"]
    assert {p["name"] for p in search["parameters"]} == {"q", "limit", "offset", "oldest_first",
                                                         "sort", "order", "explain"}
    assert "401" in search["responses"]


@pytest.mark.parametrize("declared", [e for e in ENDPOINTS if not e.public],
                         ids=lambda e: f"{e.method} {e.path}")
def test_every_endpoint_wants_a_login(site, declared):
    reply = client(site).request(declared.method, concrete(declared.path),
                                 json_body={} if declared.method != "GET" else None)
    assert reply.status == 401
    assert "error" in reply.json()


ROLE_CASES = [(e, name) for e in ENDPOINTS if not e.public for name in ROLE_OF]


@pytest.mark.parametrize("declared, name", ROLE_CASES,
                         ids=[f"{e.method} {e.path} as {n}" for e, n in ROLE_CASES])
def test_every_endpoint_answers_each_role_as_declared(site, declared, name):
    """A role the endpoint is not for gets 403; one it is for gets past the guard (the
    sample arguments may still be refused as not found or malformed, never forbidden)."""
    reply = client(site, name).request(declared.method, concrete(declared.path),
                                       json_body={} if declared.method != "GET" else None)
    if ROLE_OF[name] in declared.roles:
        assert reply.status not in (401, 403), (reply.status, reply.body)
    else:
        assert reply.status == 403, (reply.status, reply.body)



DEEP = [b"[" * 100_000 + b"]" * 100_000,  # under the 1 MiB limit, too deep to parse
        b'{"query": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"]


@pytest.mark.parametrize("body", DEEP, ids=["array", "in an object"])
@pytest.mark.parametrize("who, method, path", [
    ("audrey", "PUT", "/api/saved-searches/deep"), ("admin", "PUT", "/api/retention"),
    ("audrey", "POST", "/api/holds")])
def test_a_json_body_nested_too_deeply_is_400_and_logs_no_traceback(site, caplog, who,
                                                                      method, path, body):
    before = client(site, who).get("/api/saved-searches").json()
    reply = client(site, who).request(method, path, raw=body)
    assert reply.status == 400, reply.body
    assert reply.json()["error"].startswith("the body must be a JSON object")
    assert [r for r in caplog.records if r.exc_info or r.levelname in ("ERROR", "CRITICAL")] \
        == []
    assert client(site, who).get("/api/saved-searches").json() == before

# -- sessions ----------------------------------------------------------------------------

def test_session_login_sets_a_strict_httponly_cookie_and_needs_the_csrf_token(site):
    browser = Client(site.url)
    reply = browser.log_in("audrey")
    assert reply.status == 200 and reply.json()["role"] == "auditor"
    cookie = next(c for c in reply.cookies() if c.startswith("archiver_session="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # plain HTTP on loopback: a Secure cookie would be lost
    assert browser.get("/api/session").json()["name"] == "audrey"
    token, browser.csrf = browser.csrf, None
    forged = browser.request("PUT", "/api/saved-searches/forged", {"query": "x"})
    assert forged.status == 403
    browser.csrf = token
    assert browser.request("PUT", "/api/saved-searches/real", {"query": "x"}).status == 200
    assert browser.request("DELETE", "/api/saved-searches/real").status == 200
    assert browser.request("DELETE", "/api/session").status == 200
    assert browser.get("/api/session").status == 401


def test_cookies_are_secure_when_the_server_speaks_tls(site):
    config = web_config(site.archive.data_dir, free_port())
    server = ThreadedServer(config, site.archive, tls=True).start()
    try:
        reply = Client(server.url).log_in("audrey")
        cookie = next(c for c in reply.cookies() if c.startswith("archiver_session="))
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert "max-age" in reply.headers["Strict-Transport-Security"]
    finally:
        server.stop()


def test_login_refuses_a_form_post_and_wrong_passwords(site):
    anonymous = Client(site.url)
    form = anonymous.request("POST", "/api/session", form={"name": "admin", "password": PASSWORD})
    assert form.status == 403  # a cross-site form cannot log a browser in
    assert anonymous.log_in("admin", "wrong password").status == 401
    assert anonymous.log_in("nobody", PASSWORD).status == 401
    assert Client(site.url, basic=("admin", "wrong")).get("/api/status").status == 401


def test_basic_credentials_change_nothing_without_a_json_body(site):
    admin = client(site, "admin")
    reply = admin.request("DELETE", "/api/saved-searches/anything",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status == 403
    # With it, the request reaches the handler: there is no such saved search.
    assert admin.request("DELETE", "/api/saved-searches/anything",
                         headers={"Content-Type": "application/json"}).status == 404


def test_failed_logins_are_throttled_per_user_then_answered_429(site):
    guesser = Client(site.url)
    for _ in range(5):
        assert guesser.log_in("bob", "guess").status == 401
    throttled = guesser.log_in("bob", "guess")
    assert throttled.status == 429 and int(throttled.headers["Retry-After"]) >= 1
    assert guesser.log_in("bob").status == 429  # even the right password must wait
    assert guesser.log_in("alice").status == 200  # another user is not locked out
    failed = [e for e in audit.entries(site.archive.store) if e["action"] == "login-failed"]
    assert len([e for e in failed if e["who"] == "bob"]) >= 5


def test_failed_logins_are_throttled_per_client_address(site):
    guesser = Client(site.url)
    for number in range(20):
        assert guesser.log_in(f"guess{number}", "guess").status == 401
    assert guesser.log_in("alice").status == 429


@pytest.fixture
def stopped_clock(site):
    """The app's login throttle on a clock that stands still: waits never run out."""
    site.app["auth"].throttle = LoginThrottle(clock=lambda: 1000.0)
    yield site.app["auth"]
    site.app["auth"].throttle = LoginThrottle()


@pytest.mark.parametrize("guesses", [5, 500])
def test_guessing_the_admin_password_from_one_address_never_locks_admin_out(
        site, stopped_clock, guesses):
    guesser = Client(site.url, source="127.0.0.2")
    answers = [guesser.log_in("admin", "guess").status for _ in range(guesses)]
    assert set(answers) <= {401, 429} and answers[:5] == [401] * 5
    assert guesser.log_in("admin").status == 429  # the guessing address waits
    admin = Client(site.url, source="127.0.0.1")
    assert admin.log_in("admin").status == 200
    assert Client(site.url, basic=("admin", PASSWORD), source="127.0.0.1"
                  ).get("/api/status").status == 200


def test_guessing_spread_over_addresses_slows_them_but_not_the_others(site, stopped_clock):
    """Past free_overall failures, an address that is guessing (3 failures) waits; one
    typo, from a guesser's NAT neighbour, does not make an address wait."""
    stopped_clock.throttle.free_overall = 12
    for number in range(2, 15):
        assert Client(site.url, source=f"127.0.0.{number}").log_in("admin", "guess").status == 401
    guesser = Client(site.url, source="127.0.0.3")
    assert [guesser.log_in("admin", "guess").status for _ in range(2)] == [401, 401]
    assert guesser.log_in("alice").status == 429
    assert Client(site.url, source="127.0.0.4").log_in("alice").status == 200  # one failure
    assert Client(site.url, source="127.0.0.1").log_in("admin").status == 200
    assert Client(site.url, source="127.0.0.99").log_in("alice").status == 200


def test_basic_api_requests_with_the_right_password_pass_during_distributed_guessing(
        site, stopped_clock):
    """The reviewer's case: guessing from more addresses than free_overall, and an API
    client's one typo; its HTTP Basic requests with the right password (each one a login)
    all pass while the guessing goes on (590 of 600 were answered 429)."""
    stopped_clock.throttle.free_overall = 12
    for number in range(2, 15):
        assert Client(site.url, source=f"127.0.0.{number}").log_in("admin", "guess").status == 401
    typo = Client(site.url, basic=("alice", "a typo"), source="127.0.0.50")
    assert typo.get("/api/status").status == 401
    script = Client(site.url, basic=("alice", PASSWORD), source="127.0.0.50")
    for number in range(40):
        assert script.get("/api/session").status == 200, number
        if number % 10 == 0:
            guess = Client(site.url, source=f"127.0.1.{number}").log_in("admin", "guess")
            assert guess.status == 401


def test_the_current_password_of_a_change_is_throttled_like_a_login(site, stopped_clock):
    """PUT /api/session/password checked current_password without a throttle: 30 wrong
    guesses from a stolen session were all 400, never 429."""
    thief = Client(site.url, source="127.0.0.60")
    assert thief.log_in("alice").status == 200
    answers = [thief.request("PUT", "/api/session/password",
                             {"current_password": f"guess {n}", "new_password": "stolen!!"}
                             ).status for n in range(30)]
    assert answers[:5] == [400] * 5 and set(answers[5:]) == {429}
    assert thief.request("PUT", "/api/session/password", {
        "current_password": PASSWORD, "new_password": "stolen!!"}).status == 429
    alice = Client(site.url, source="127.0.0.61")
    assert alice.log_in("alice").status == 200  # another address was not guessing
    assert alice.request("PUT", "/api/session/password", {
        "current_password": PASSWORD, "new_password": PASSWORD}).status == 200


def test_password_change_ends_the_sessions_opened_before(site):
    alice = client(site, "alice", basic=False)
    other_session = client(site, "alice", basic=False)
    reply = alice.request("PUT", "/api/session/password",
                          {"current_password": PASSWORD, "new_password": "a new password"})
    assert reply.status == 200
    assert other_session.get("/api/session").status == 401
    assert Client(site.url).log_in("alice", "a new password").status == 200
    from services.appliance import users
    users.set_password(site.archive, "alice", PASSWORD)


def test_the_session_that_changes_the_password_stays_logged_in(site):
    """The endpoint says it ends the *other* sessions, but the caller's own answered 401
    from then on (the account page opens a new session; the API did not)."""
    alice = client(site, "alice", basic=False)
    old_token = next(cookie.value for cookie in alice.jar)
    old_csrf = alice.csrf
    reply = alice.request("PUT", "/api/session/password",
                          {"current_password": PASSWORD, "new_password": "a new password"})
    assert reply.status == 200 and reply.json()["changed"]
    assert alice.get("/api/session").status == 200
    assert reply.json()["csrf_token"] == alice.get("/api/session").json()["csrf_token"]
    assert reply.json()["csrf_token"] != old_csrf
    assert next(cookie.value for cookie in alice.jar) != old_token  # a new session
    refused = alice.request("PUT", "/api/session/password",  # the old CSRF token ended too
                            {"current_password": "a new password", "new_password": PASSWORD})
    assert refused.status == 403
    alice.csrf = reply.json()["csrf_token"]
    again = alice.request("PUT", "/api/session/password",
                          {"current_password": "a new password", "new_password": PASSWORD})
    assert again.status == 200 and alice.get("/api/session").status == 200
    # HTTP Basic credentials have no session to keep: the next request gives the new one.
    basic = client(site, "alice")
    reply = basic.request("PUT", "/api/session/password",
                          {"current_password": PASSWORD, "new_password": "a new password"})
    assert reply.status == 200 and reply.json() == {"changed": True, "csrf_token": None}
    assert basic.get("/api/session").status == 401
    assert Client(site.url, basic=("alice", "a new password")).get("/api/session").status == 200
    from services.appliance import users
    users.set_password(site.archive, "alice", PASSWORD)


# -- mail, and whose it is ---------------------------------------------------------------

def test_a_user_finds_exactly_their_own_mail(site):
    assert found_names(site, client(site, "alice").get("/api/search?q=")) == ALICE_MAIL
    assert found_names(site, client(site, "bob").get("/api/search?q=")) == BOB_MAIL
    assert found_names(site, client(site, "audrey").get("/api/search?q=")) == set(MAILS)


@pytest.mark.parametrize("query", ["merger", "secret OR salary OR merger", "NOT report",
                                   "from:carol", "to:bob.alice", "*", "alice",
                                   ") OR (", "digest:*", "salary) OR (merger"])
def test_no_query_reaches_another_users_mail(site, query):
    reply = client(site, "alice").get("/api/search?q=" + _quoted(query))
    if reply.status == 400:
        return  # a query that does not parse finds nothing at all
    assert found_names(site, reply) <= ALICE_MAIL


def test_a_user_cannot_fetch_another_users_message_by_digest(site):
    alice = client(site, "alice")
    for name in set(MAILS) - ALICE_MAIL:
        digest = site.digests[name]
        for path in (f"/api/messages/{digest}", f"/api/messages/{digest}/raw",
                     f"/api/messages/{digest}/attachments/1"):
            assert alice.get(path).status == 404, path
    assert alice.get(f"/api/messages/{site.digests['alice-envelope']}").status == 200


def test_a_users_export_holds_only_their_mail(site):
    reply = client(site, "alice").get("/api/export?format=zip&q=")
    assert reply.status == 200 and reply.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(reply.body)) as archive:
        digests = {name[len("messages/"):-4] for name in archive.namelist()
                   if name.startswith("messages/")}
        manifest = archive.read("manifest.csv").decode()
    assert {site.names[digest] for digest in digests} == ALICE_MAIL
    assert len(manifest.splitlines()) == len(ALICE_MAIL) + 1  # the manifest lists only hers


def test_search_pages_and_reports_bad_queries(site):
    auditor = client(site, "audrey")
    first = auditor.get("/api/search?q=&limit=3").json()
    second = auditor.get("/api/search?q=&limit=3&offset=3").json()
    assert first["total"] == len(MAILS) and len(first["hits"]) == 3
    assert not {h["digest"] for h in first["hits"]} & {h["digest"] for h in second["hits"]}
    assert first["hits"][0]["date"] > first["hits"][-1]["date"]  # newest first
    oldest = auditor.get("/api/search?q=&limit=1&oldest_first=true").json()["hits"][0]
    assert site.names[oldest["digest"]] == "alice-sent"
    assert auditor.get("/api/search?q=date:2024-13-45").status == 400
    assert auditor.get("/api/search?q=&limit=0").status == 400
    assert auditor.get("/api/search?q=&limit=ten").status == 400


def test_message_metadata_raw_download_and_attachment(site):
    digest = site.digests["alice-sent"]
    alice = client(site, "alice")
    meta = alice.get(f"/api/messages/{digest}").json()
    assert meta["subject"] == "Quarterly report"
    assert ("To", "bob@example.com") in {(h["name"], h["value"]) for h in meta["headers"]}
    assert meta["attachments"] == [{"number": 1, "filename": "report.bin", "named": True,
                                    "content_type": "application/octet-stream", "size": 17,
                                    "files": []}]
    raw = alice.get(f"/api/messages/{digest}/raw")
    assert raw.body == MAILS["alice-sent"][0]
    assert raw.headers["Content-Disposition"].startswith("attachment")
    part = alice.get(f"/api/messages/{digest}/attachments/1")
    assert part.body == b"\x00\x01secret numbers\xff"
    assert part.headers["Content-Type"] == "application/octet-stream"
    assert 'filename="report.bin"' in part.headers["Content-Disposition"]
    assert alice.get(f"/api/messages/{digest}/attachments/2").status == 404
    envelope = alice.get(f"/api/messages/{site.digests['alice-envelope']}").json()
    assert envelope["recipients"] == ["alice@example.com"]


@pytest.mark.parametrize("fmt", ["zip", "mbox"])
def test_export_streams_everything_a_search_finds(site, fmt, tmp_path):
    reply = client(site, "audrey").get(f"/api/export?format={fmt}&q=from:carol")
    assert reply.status == 200 and reply.headers["Content-Type"] == "application/zip"
    assert reply.headers["Content-Disposition"].endswith('-mbox.zip"' if fmt == "mbox"
                                                         else '.zip"')
    exported = tmp_path / "export.zip"  # the messages, the manifest files skipped
    exported.write_bytes(reply.body)
    items = list(iter_mail([exported]))
    raws = {item.raw for item in items if not item.skipped}
    assert {item.label.rpartition("#")[2] for item in items if item.skipped} == {
        "manifest.csv", "export.json", "SHA256SUMS"}  # listed as the export's manifest
    expected = {MAILS[name][0] for name in ("alice-cc", "alice-bcc-header", "alice-envelope",
                                            "lookalike")}
    assert raws == expected
    assert client(site, "audrey").get("/api/export?format=pdf&q=").status == 400
    assert client(site, "audrey").get("/api/export?format=zip&q=date:x").status == 400
    empty = client(site, "audrey").get("/api/export?format=zip&q=subject:nosuchthing")
    assert empty.status == 400 and "matches no message" in empty.json()["error"]


def test_searches_views_exports_and_logins_are_audited(site):
    alice = client(site, "alice", basic=False)
    alice.get("/api/search?q=lunch")
    alice.get(f"/api/messages/{site.digests['alice-cc']}")
    alice.get("/api/export?format=mbox&q=lunch")
    entries = [e for e in audit.entries(site.archive.store, 20) if e["who"] == "alice"]
    actions = [(e["action"], e["role"]) for e in entries]
    assert ("login", "user") in actions and ("search", "user") in actions
    assert ("view", "user") in actions and ("export", "user") in actions
    auditor = client(site, "audrey")
    log = auditor.get("/api/audit?limit=3").json()["entries"]  # of alice's 4 at least
    assert len(log) == 3 and log[-1]["seq"] > log[0]["seq"]
    assert auditor.get("/api/audit/verify").json()["intact"] is True


# -- settings ----------------------------------------------------------------------------

def test_saved_searches_retention_and_holds(site):
    auditor, admin = client(site, "audrey"), client(site, "admin")
    assert auditor.request("PUT", "/api/saved-searches/carol", {"query": "from:carol"}).status == 200
    assert auditor.request("PUT", "/api/saved-searches/bad", {"query": "date:x"}).status == 400
    assert {"name": "carol", "query": "from:carol"} in auditor.get("/api/saved-searches").json()
    hold = auditor.request("POST", "/api/holds", {"saved": "carol", "until": "2030-01-01"}).json()
    assert hold["saved"] == "carol" and hold["until"] == "2030-01-01" and hold["by"] == "audrey"
    assert hold in auditor.get("/api/holds").json()
    assert auditor.request("DELETE", f"/api/holds/{hold['id']}").status == 403
    assert auditor.request("DELETE", "/api/saved-searches/carol").status == 400  # held
    assert admin.request("PUT", "/api/retention", {"enabled": True, "global_days": 3650}).json() \
        == {"enabled": True, "global_days": 3650, "saved": {}, "unusable": {}}
    policies = admin.request("PUT", "/api/retention/saved/carol", {"days": 7000}).json()
    assert policies["saved"] == {"carol": 7000}
    assert auditor.get("/api/retention").json()["saved"] == {"carol": 7000}
    assert admin.request("PUT", "/api/retention", {"global_days": 0}).status == 400
    assert admin.request("PUT", "/api/retention", {"sideways": 1}).status == 400
    admin.request("PUT", "/api/retention/saved/carol", {"days": None})
    admin.request("PUT", "/api/retention", {"enabled": False, "global_days": None})
    assert admin.request("DELETE", f"/api/holds/{hold['id']}").status == 200
    assert auditor.request("DELETE", "/api/saved-searches/carol").status == 200
    assert auditor.request("POST", "/api/holds", {"saved": "gone"}).status == 400




@pytest.mark.parametrize("body, error", [({}, "query: required"),
                                         ({"query": None}, "query: required"),
                                         ({"query": 5}, "query: expected a string")])
def test_a_saved_search_without_a_query_is_refused_not_saved_matching_all_mail(site, body,
                                                                              error):
    """A missing query is not "" (all mail): a retention policy built on the search would
    then delete everything older than its days. Nothing is saved or changed."""
    auditor, admin = client(site, "audrey"), client(site, "admin")
    assert admin.request("PUT", "/api/saved-searches/kept", {"query": "from:carol"}).status \
        == 200
    for name in ("kept", "new-one"):
        reply = admin.request("PUT", f"/api/saved-searches/{name}", body)
        assert reply.status == 400 and reply.json()["error"].startswith(error), reply.body
    saved = {s["name"]: s["query"] for s in auditor.get("/api/saved-searches").json()}
    assert saved["kept"] == "from:carol" and "new-one" not in saved
    everything = auditor.request("PUT", "/api/saved-searches/everything", {"query": ""})
    assert everything.status == 200 and everything.json() == {"name": "everything",
                                                               "query": ""}
    assert auditor.request("DELETE", "/api/saved-searches/everything").status == 200
    assert admin.request("DELETE", "/api/saved-searches/kept").status == 200

@pytest.mark.parametrize("refused", [{"global_days": 1, "enabled": "yes"},
                                     {"enabled": True, "global_days": 0},
                                     {"global_days": 1, "enabled": None}])
def test_a_refused_retention_change_changes_nothing_and_writes_no_audit_entry(site, refused):
    """Every value is checked before any is written: a request refused for one value
    does not keep the others (global_days=1 would expire all but a day's mail)."""
    admin = client(site, "admin")
    before = admin.request("PUT", "/api/retention", {"enabled": False, "global_days": 3650})
    before = before.json()
    seq = audit.entries(site.archive.store, 1)[-1]["seq"]
    reply = admin.request("PUT", "/api/retention", refused)
    assert reply.status == 400, reply.body
    assert admin.get("/api/retention").json() == before
    assert [e["action"] for e in audit.entries(site.archive.store, 50) if e["seq"] > seq
            and e["action"] == "retention"] == []

def test_status_and_metrics(site):
    status = client(site, "audrey").get("/api/status").json()
    assert status["storage"]["messages"] == len(MAILS)
    assert status["queues"]["index"]["indexed"] == len(MAILS)
    assert "web" in status["services"]
    metrics = client(site).get("/metrics")
    assert metrics.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = metrics.body.decode()
    assert f"archiver_messages_stored {len(MAILS)}" in text
    assert 'archiver_archived_total{source="smtp"} 7' in text
    assert "# TYPE archiver_archived_total counter" in text
    for line in text.splitlines():  # every sample: NAME{LABELS} VALUE
        assert line.startswith("#") or re.fullmatch(r"[a-z_]+(\{.*\})? -?[0-9.e+]+", line), line
    assert client(site).get("/healthz").body == b"ok\n"


def test_mirror_status_and_configuration(site):
    admin = client(site, "admin")
    overview = admin.get("/api/mirror").json()
    assert overview["supported"] and not overview["secret_set"] and overview["peers"] == []
    assert admin.request("POST", "/api/mirror/peers", {"peer": "10.0.0.2:8443"}).status == 400
    assert admin.request("POST", "/api/mirror/peers",
                         {"peer": "10.0.0.2:8443", "secret": "short"}).status == 400
    weak = admin.request("POST", "/api/mirror/peers",
                         {"peer": "10.0.0.2:8443", "secret": "a shared secret of 16+"})
    assert weak.status == 400 and "too easy to guess" in weak.body.decode()
    joined = admin.request("POST", "/api/mirror/peers",
                           {"peer": "10.0.0.2:8443",
                            "secret": "tulip-gravel-mosaic-ninja-orbit-fjord"})
    assert joined.status == 200
    overview = admin.get("/api/mirror").json()
    assert overview["secret_set"] and overview["joined_peers"] == ["10.0.0.2:8443"]
    assert overview["peers"][0]["state"] == "offline"
    assert "lantern-quartz" not in admin.get("/api/mirror").body.decode()
    backfill = admin.request("POST", "/api/mirror/peers/10.0.0.2:8443/backfill", {})
    assert backfill.json() == {"queued": len(MAILS)}
    assert admin.request("DELETE", "/api/mirror/peers/10.0.0.2:8443").status == 200
    assert admin.get("/api/mirror").json()["peers"] == []


def test_mail_sources_show_no_passwords(site):
    admin = client(site, "admin")
    accounts = admin.get("/api/journal/accounts").json()["accounts"]
    assert [a["name"] for a in accounts] == ["exchange"]
    assert accounts[0]["status"]["state"] == "not polled yet"
    assert "password" not in accounts[0]
    sources = admin.get("/api/sources")
    assert b"hunter2" not in sources.body and sources.json()["smtp"]["listen"] == "0.0.0.0:25"


def _quoted(text: str) -> str:
    from urllib.parse import quote
    return quote(text)


def test_error_messages_keep_their_quotes(site):
    """Every error message was stripped of quote marks at its ends (for KeyError's quoting),
    so one that ends with a quoted value lost its closing quote: "got '2020-13-45"."""
    auditor = client(site, "audrey")
    assert auditor.request("PUT", "/api/saved-searches/quoted", {"query": "x"}).status == 200
    bad_day = auditor.request("POST", "/api/holds", {"saved": "quoted", "until": "2020-13-45"})
    assert bad_day.status == 400
    assert bad_day.json()["error"].endswith("got '2020-13-45'")
    bad_sort = auditor.get("/api/search?q=x&sort=bogus")
    assert bad_sort.status == 400 and bad_sort.json()["error"].endswith("got 'bogus'")
    assert auditor.request("DELETE", "/api/saved-searches/quoted").status == 200
    # A NotFound (a KeyError) says its words without KeyError's quotes.
    missing = auditor.get(f"/api/messages/{'0' * 64}")
    assert missing.status == 404 and not missing.json()["error"].startswith(("'", '"'))
