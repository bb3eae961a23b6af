"""Hidden recipients through the real web API: a message's Bcc and Resent-Bcc fields and
the envelope recipients no To or Cc field shows are a user's to see, and to find mail by,
only in mail they sent, and where they are the user's own addresses; admins and auditors
see them all. Every kind of hidden recipient a message can carry (tests.integration.web.
test_hidden_recipients.KINDS) is tried against every way a user reads: search (fields, bare
words, phrases, wildcards), result rows, the message, the .eml download and exports."""
from __future__ import annotations

import io
import json
import urllib.parse
import zipfile

import pytest

from services.appliance import users
from services.archive.store import Envelope
from tests.integration.web.fixtures import PASSWORD, Client

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_throttle")]

DOMAIN = "hidden.example.net"
ALICE, CAROL, DORA, BOB, FRANK, RON, CORA = (
    f"{name}@{DOMAIN}" for name in ("alice", "carol", "dora", "bob", "frank", "ron", "cora"))
ACCOUNTS = {"h-alice": ALICE, "h-carol": CAROL, "h-dora": DORA, "h-bob": BOB, "h-ron": RON}


def _message(kind: str, hidden_field: str | None, newline: str = "\n") -> bytes:
    lines = [f"From: Alice Sender <{ALICE}>", f"To: Carol Shown <{CAROL}>",
             f"Cc: Dora Shown <{DORA}>", f"Subject: Hidden case {kind}",
             "Date: Mon, 04 Mar 2024 09:00:00 +0000", f"Message-ID: <{kind}@{DOMAIN}>"]
    if hidden_field:
        lines.insert(3, hidden_field)
    lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "",
              "The plan for the quarter.", ""]
    return newline.join(lines).encode()


HIDDEN = f"Bob Covert <{BOB}>, Frank Covert <{FRANK}>"
EVERYONE = [CAROL, DORA, BOB, FRANK]
# Every way a message carries hidden recipients (RFC 5322 3.6.3, 3.6.6, 4.5.3; journal
# envelopes): name -> (raw, envelope recipients).
KINDS = {
    "bcc-field": (_message("bcc-field", f"Bcc: {HIDDEN}"), EVERYONE),
    "bcc-lowercase": (_message("bcc-lowercase", f"bcc: {HIDDEN}"), EVERYONE),
    "bcc-obsolete-space": (_message("bcc-obsolete-space", f"Bcc : {HIDDEN}"), EVERYONE),
    "bcc-folded": (_message("bcc-folded", f"Bcc: Bob Covert <{BOB}>,\n Frank Covert <{FRANK}>"),
                   EVERYONE),
    "bcc-crlf": (_message("bcc-crlf", f"Bcc: {HIDDEN}", "\r\n"), EVERYONE),
    "resent-bcc": (_message("resent-bcc", f"Resent-Bcc: {HIDDEN}"), EVERYONE),
    "resent-bcc-no-envelope": (_message("resent-bcc-no-envelope", f"Resent-Bcc: {HIDDEN}"),
                               None),
    "envelope-only": (_message("envelope-only", None), EVERYONE),
    "bcc-field-no-envelope": (_message("bcc-field-no-envelope", f"Bcc: {HIDDEN}"), None),
}
# What finds these messages only through frank, a hidden recipient.
BY_FRANK = ["frank", "Frank", "bcc:frank", "to:frank", f"to:{FRANK}", f"bcc:{FRANK}",
            "fran*", "to:fran*", "bcc:fran*", '"frank covert"', "to:frank@", f"to:*{FRANK}",
            f'"{FRANK}"', FRANK, "covert", "to:covert", 'to:"frank covert"',
            'bcc:"frank covert"', "bcc:(frank OR nobody)", "to:(fra* OR nobody)"]


# A copy Alice resent (RFC 5322 3.6.6) to Ron and Cora, and to Bob and Frank unseen; no
# envelope, as imported: its Resent- fields alone say whose mail it is.
RESENT = (f"From: Alice Sender <{ALICE}>\nTo: Carol Shown <{CAROL}>\nSubject: Resent plan\n"
          f"Resent-From: {ALICE}\nResent-To: Ron Resent <{RON}>\nResent-Cc: {CORA}\n"
          f"Resent-Bcc: {HIDDEN}\n\nThe plan, once more.\n").encode()


@pytest.fixture(scope="module")
def extra_mails() -> dict:
    mails = {kind: (raw, Envelope(ALICE, recipients) if recipients else None)
             for kind, (raw, recipients) in KINDS.items()}
    return {**mails, "resent": (RESENT, None)}


@pytest.fixture(scope="module")
def clients(site) -> dict[str, Client]:
    for name, address in ACCOUNTS.items():
        users.add(site.archive, name, "user", [address], PASSWORD)
    found = {name: Client(site.url, basic=(name, PASSWORD)) for name in ACCOUNTS}
    found["h-carol-browser"], found["h-bob-browser"] = Client(site.url), Client(site.url)
    for name in ("h-carol", "h-bob"):
        assert found[f"{name}-browser"].log_in(name).status == 200
    found["auditor"] = Client(site.url, basic=("audrey", PASSWORD))
    return found


def _found(client: Client, site, query: str) -> set[str]:
    reply = client.get(f"/api/search?limit=500&q={urllib.parse.quote(query)}")
    assert reply.status == 200, (query, reply.body)
    return {site.names[hit["digest"]] for hit in reply.json()["hits"]} & set(KINDS)


@pytest.mark.parametrize("viewer", ["h-carol", "h-dora"])
def test_a_shown_recipient_finds_no_mail_by_its_hidden_recipients(site, clients, viewer):
    assert _found(clients[viewer], site, "") == set(KINDS)  # theirs to read
    for query in BY_FRANK:
        assert _found(clients[viewer], site, query) == set(), query


@pytest.mark.parametrize("viewer", ["h-alice", "auditor"])
def test_the_sender_and_the_auditor_find_mail_by_its_hidden_recipients(site, clients, viewer):
    for query in ("bcc:frank", f"to:{FRANK}", f"bcc:{FRANK}", "frank", "fran*", "to:fran*"):
        assert _found(clients[viewer], site, query) == set(KINDS), query


def test_a_hidden_recipient_finds_the_mail_by_their_own_address_only(site, clients):
    bob = clients["h-bob"]
    assert _found(bob, site, f"bcc:{BOB}") == set(KINDS)
    assert _found(bob, site, f"to:{BOB}") == set(KINDS)
    for query in BY_FRANK:
        assert _found(bob, site, query) == set(), query


@pytest.mark.parametrize("viewer", ["h-carol", "h-bob"])
def test_a_user_who_did_not_send_it_reads_no_hidden_recipient_but_their_own(
        site, clients, viewer):
    client = clients[viewer]
    rows = client.get("/api/search?limit=500&q=subject:hidden").json()["hits"]
    for row in rows:
        assert FRANK not in json.dumps(row) and "Frank" not in json.dumps(row), row
        assert row["recipients"] == 2, row  # To and Cc
    page = clients[f"{viewer}-browser"].get("/search?q=subject%3Ahidden")
    assert page.status == 200 and page.body.count(b"Hidden case") >= len(KINDS)
    assert b"covert" not in page.body.lower() and b"+1" not in page.body  # Bob, Frank
    for kind in KINDS:
        digest = site.digests[kind]
        shown = client.get(f"/api/messages/{digest}")
        assert shown.status == 200, kind
        assert "frank" not in shown.body.decode().lower(), (kind, shown.body)
        raw = client.get(f"/api/messages/{digest}/raw").body
        assert b"frank" not in raw.lower() and b"Subject: Hidden case" in raw, kind
        page = clients[f"{viewer}-browser"].get(f"/message/{digest}?headers=all")
        assert page.status == 200 and b"frank" not in page.body.lower(), kind
        if KINDS[kind][1]:  # bob's own address, from the envelope: his alone to see
            assert (BOB in shown.body.decode()) == (viewer == "h-bob"), kind


@pytest.mark.parametrize("fmt", ["zip", "mbox"])
def test_a_users_export_holds_no_hidden_recipient(site, clients, fmt):
    reply = clients["h-carol"].get(f"/api/export?format={fmt}&q=subject%3Ahidden")
    assert reply.status == 200
    with zipfile.ZipFile(io.BytesIO(reply.body)) as exported:
        contents = [exported.read(name) for name in exported.namelist()]
    assert sum(b"Subject: Hidden case" in content for content in contents) >= 1
    assert not any(b"frank" in content.lower() for content in contents)


@pytest.mark.parametrize("viewer", ["h-alice", "auditor"])
def test_the_sender_and_the_auditor_read_every_message_byte_exact(site, clients, viewer):
    for kind in KINDS:
        digest = site.digests[kind]
        assert clients[viewer].get(f"/api/messages/{digest}/raw").body == \
            site.archive.store.get(digest)
        assert "frank" in clients[viewer].get(f"/api/messages/{digest}").body.decode().lower()


def test_resent_to_and_cc_are_shown_recipients_and_resent_bcc_a_hidden_one(site, clients):
    """Resent-To and Resent-Cc work as To and Cc do, Resent-Bcc as Bcc does (RFC 5322
    3.6.6): Ron, named in Resent-To only, reads the copy and finds it by to:; Carol finds
    it by its resent recipients but not by Frank or Bob; Bob finds it by his own address."""
    def found(viewer: str, query: str) -> bool:
        reply = clients[viewer].get(f"/api/search?limit=500&q={urllib.parse.quote(query)}")
        assert reply.status == 200, (query, reply.body)
        return site.digests["resent"] in {hit["digest"] for hit in reply.json()["hits"]}

    for query in (f"to:{RON}", "to:ron", "cc:cora", f"to:{CORA}", "ron"):
        assert found("h-ron", query) and found("h-carol", query), query
    for query in ("frank", "to:frank", f"bcc:{BOB}", "covert"):
        assert not found("h-carol", query) and not found("h-ron", query), query
        assert found("h-alice", query) and found("auditor", query), query
    assert found("h-bob", f"bcc:{BOB}") and not found("h-bob", "frank")
    row = next(hit for hit in clients["h-ron"].get("/api/search?q=to:ron").json()["hits"]
               if hit["digest"] == site.digests["resent"])
    assert row["recipients"] == 3 and "frank" not in json.dumps(row).lower()  # Carol, Ron, Cora
    for viewer in ("h-ron", "h-bob"):
        raw = clients[viewer].get(f"/api/messages/{site.digests['resent']}/raw").body
        assert b"Resent-To: Ron Resent" in raw and b"frank" not in raw.lower(), viewer
