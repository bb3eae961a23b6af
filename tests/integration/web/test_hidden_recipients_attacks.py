"""Attacks on hidden recipients (README, "Web UI and API": a message's Bcc and Resent-Bcc
fields and the envelope recipients no To or Cc field shows are a user's to see only in mail
they sent, and where they are the user's own addresses). Carol, a user, reads mail alice
sent to her; frank was a hidden recipient of it; carol must not learn that from anything
the web serves her. tests.integration.web.test_hidden_recipients covers the ordinary kinds
of hidden recipient; these are the ones found by attacking the documented behaviour.

Not fixed (README, a known limit): a user's copy of a message with a Bcc field is shorter
than the stored message, whose size and digest the user sees, so a guessed Bcc field can be
checked offline; closing that needs per-user names and sizes of such messages."""
from __future__ import annotations

import io
import json
import urllib.parse
import zipfile

import pytest

from tests.integration.web.fixtures import Client, user_clients

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_throttle")]

DOMAIN = "attack.example.net"
ALICE, CAROL, DORA = (f"{name}@{DOMAIN}" for name in ("alice", "carol", "dora"))
FRANK = "frank@covert.example.org"
HIDDEN = f"Franklin Zebedee <{FRANK}>"
ACCOUNTS = {"a-alice": ALICE, "a-carol": CAROL}
# Anything of frank's: his address, his domain, his name.
FRANKS = (b"frank", b"covert", b"zebedee")


def _message(name: str, headers: list[str], newline: str = "\n") -> bytes:
    lines = [*headers, f"Subject: Attack {name}", "Date: Mon, 04 Mar 2024 09:00:00 +0000",
             f"Message-ID: <{name}@{DOMAIN}>", "MIME-Version: 1.0",
             "Content-Type: text/plain; charset=utf-8", "", "The plan for the quarter.", ""]
    return newline.join(lines).encode()


# A bare CR ends a line for the parser that shows a message (the stdlib feedparser and
# services.archive.mimetree split lines at CR LF, LF and CR alone): the field after it is a
# header field of its own on the page and in the API, so it must be left out of carol's
# copy like any other Bcc field.
BARE_CR = {
    "bare-cr-bcc": _message("bare-cr-bcc", [f"From: Alice <{ALICE}>",
                                            f"To: Carol <{CAROL}>\rBcc: {HIDDEN}"]),
    "bare-cr-bcc-crlf": _message("bare-cr-bcc-crlf", [f"From: Alice <{ALICE}>",
                                                      f"To: Carol <{CAROL}>\rBcc: {HIDDEN}"],
                                 "\r\n"),
    "bare-cr-resent-bcc": _message("bare-cr-resent-bcc", [
        f"From: Alice <{ALICE}>", f"To: Carol <{CAROL}>", f"Resent-From: {DORA}\r"
        f"Resent-Bcc: {HIDDEN}"]),
    "bare-cr-folded": _message("bare-cr-folded", [f"From: Alice <{ALICE}>",
                                                  f"To: Carol <{CAROL}>",
                                                  f"Bcc: Dora <{DORA}>,\r {HIDDEN}"]),
}
# A From address that is not carol's but folds to hers (fullwidth c, an accent): search
# folds From addresses (services.archive.words.fold_whole) when it decides which mail a
# user sent, the copy she reads (services.web.access.as_read) does not.
LOOKALIKE = {
    "lookalike-fullwidth": _message("lookalike-fullwidth", [
        f"From: Carol Impostor <\uff43arol@{DOMAIN}>", f"To: Carol <{CAROL}>",
        f"Bcc: {HIDDEN}"]),
    "lookalike-accent": _message("lookalike-accent", [
        f"From: Carol Impostor <c\u00e4rol@{DOMAIN}>", f"To: Carol <{CAROL}>",
        f"Bcc: {HIDDEN}"]),
}


@pytest.fixture(scope="module")
def extra_mails() -> dict:
    mails = {name: (raw, None) for name, raw in {**BARE_CR, **LOOKALIKE}.items()}
    # Frank's lookalike of carol as a hidden recipient: carol's own address is hers to find
    # mail by, another's that folds to it is not.
    mails["lookalike-hidden"] = (_message("lookalike-hidden", [
        f"From: Alice <{ALICE}>", f"To: Dora <{DORA}>", f"Cc: Carol <{CAROL}>",
        f"Bcc: Frank <\uff43arol@{DOMAIN}>"]), None)
    return mails


@pytest.fixture(scope="module")
def clients(site) -> dict[str, Client]:
    return user_clients(site, ACCOUNTS, browser="a-carol")


def _found(client: Client, site, query: str) -> set[str]:
    reply = client.get(f"/api/search?limit=500&q={urllib.parse.quote(query)}")
    assert reply.status == 200, (query, reply.body)
    return {site.names[hit["digest"]] for hit in reply.json()["hits"]}


def _franks(data: bytes) -> list[bytes]:
    return [word for word in FRANKS if word in data.lower()]


@pytest.mark.parametrize("name", sorted(BARE_CR))
def test_a_bcc_field_after_a_bare_cr_is_not_in_a_users_copy(site, clients, name):
    digest = site.digests[name]
    carol, browser = clients["a-carol"], clients["a-carol-browser"]
    shown = carol.get(f"/api/messages/{digest}")
    assert shown.status == 200
    assert not _franks(shown.body), json.dumps(shown.json()["headers"])
    raw = carol.get(f"/api/messages/{digest}/raw")
    assert raw.status == 200 and b"Subject: Attack" in raw.body
    assert not _franks(raw.body), raw.body
    for path in (f"/message/{digest}?headers=all", f"/message/{digest}/raw"):
        page = browser.get(path)
        assert page.status == 200 and not _franks(page.body), path
    for fmt in ("zip", "mbox"):
        reply = carol.request("POST", "/api/exports", {"format": fmt, "digests": [digest]})
        assert reply.status == 200
        with zipfile.ZipFile(io.BytesIO(reply.body)) as exported:
            for member in exported.namelist():
                assert not _franks(exported.read(member)), (fmt, member)
    # what is stored stays byte-exact, and those who may see frank still do
    for viewer in ("a-alice", "auditor"):
        assert clients[viewer].get(f"/api/messages/{digest}/raw").body == \
            site.archive.store.get(digest)


def test_a_bare_cr_hides_nothing_from_search(site, clients):
    for query in ("bcc:frank", f"to:{FRANK}", "frank", "zebedee", "to:*@covert.example.org"):
        assert _found(clients["a-carol"], site, query) & set(BARE_CR) == set(), query
        assert _found(clients["auditor"], site, query) & set(BARE_CR) == set(BARE_CR), query


def test_a_lookalike_of_a_users_address_is_not_hers(site, clients):
    carol = clients["a-carol"]
    for query in ("bcc:frank", f"to:{FRANK}", "frank", "zebedee", "bcc:covert.example.org"):
        assert _found(carol, site, query) & set(LOOKALIKE) == set(), query
    # the copy she reads is right: the lookalike's message is not hers as sent
    for name in LOOKALIKE:
        assert not _franks(carol.get(f"/api/messages/{site.digests[name]}").body), name
    # a hidden recipient whose address folds to carol's is not carol
    assert "lookalike-hidden" not in _found(carol, site, f"bcc:{CAROL}")
