"""Attacks on the trace fields of hidden recipients (README, "Web UI and API": trace fields
that name a hidden recipient are left out of a user's copy, and in a hidden recipient's own
delivered copy every field its delivery added above the message as composed).

Carol, a To recipient and a user, reads frank's delivered copy of alice's mail (imported
from frank's mailbox, or journaled with its envelope): frank was a Bcc recipient. These are
the forms real MTAs write that tests.integration.web.test_hidden_recipient_traces does not
cover (Fastmail's, Gmail's, Yahoo's, Pigeonhole Sieve's, Exchange's recipient fields; FOR
clauses as Dovecot LMTP and fetchmail write them, quoted, commented, listed; Gmail's
X-Received), and header blocks a hostile sender may write (a display name or comment in a
trace field, no composed field at all, a first line that continues nothing). Nothing carol
is served may name frank (his address, local part, domain, his mail server's name, his
name), and what names only carol and shown recipients stays byte-exact; the sender and an
auditor read the stored message whole.

Not covered, a documented limit (README): a delivered copy no trace field names its
recipient in keeps its trace whole (tests below: test_an_unnamed_delivered_copy_keeps_its_trace).
"""
from __future__ import annotations

import io
import urllib.parse
import zipfile

import pytest

from services.archive.store import Envelope
from tests.integration.web.fixtures import Client, user_clients

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_throttle")]

DOMAIN = "tracks.example.net"
ALICE, CAROL, DORA = (f"{name}@{DOMAIN}" for name in ("alice", "carol", "dora"))
FRANK = "frank@covert.example.org"
ACCOUNTS = {"ta-alice": ALICE, "ta-carol": CAROL}
# Anything of frank's: his address, local part, domain, mail servers, his name.
FRANKS = (b"frank", b"covert", b"zebedee")
DATE = "Mon, 04 Mar 2024 09:00:02 +0000"
FRANKS_MX = f"Received: from mx.{DOMAIN} (mx.{DOMAIN} [192.0.2.7])\r\n\tby mx.covert.example.org"


def _message(name: str, trace: list[str], newline: str = "\r\n") -> bytes:
    """Frank's delivered copy: `trace` (his delivery's fields) above the message as alice's
    MTA sent it."""
    name = _label(name)
    lines = [*trace, "Authentication-Results: mx.covert.example.org; spf=pass",
             f"Received: from alice-pc by mx.{DOMAIN} (Postfix); Mon, 04 Mar 2024 09:00:01 +0000",
             f"From: Alice <{ALICE}>", f"To: Carol <{CAROL}>", f"Cc: {DORA}",
             f"Subject: Tracks {name}", "Date: Mon, 04 Mar 2024 09:00:00 +0000",
             f"Message-ID: <{name}@{DOMAIN}>", "MIME-Version: 1.0",
             "Content-Type: text/plain; charset=utf-8", "", "The plan for the quarter.", ""]
    return newline.join(lines).encode()


def _label(name: str) -> str:
    """A case's name as its Subject and Message-ID give it: none of frank's words."""
    return name.replace("frank", "hidden")


def _received(clause: str, name: str = "Received") -> str:
    return f"{name}: {FRANKS_MX.split(': ', 1)[1]} (Postfix) with ESMTPS id 4F2A1\r\n\t{clause}; {DATE}"


# Fields real MTAs and filters write naming the recipient of a delivered copy, beyond the
# six test_hidden_recipient_traces spells, with the values they write.
KIN = {
    "fastmail-x-delivered-to": f"X-Delivered-to: {FRANK}",
    "fastmail-x-resolved-to": f"X-Resolved-to: {FRANK}",
    "gmail-x-gm-original-to": f"X-Gm-Original-To: {FRANK}",
    "gmail-x-forwarded-to": f"X-Forwarded-To: {FRANK}",
    "gmail-x-forwarded-for": f"X-Forwarded-For: {FRANK} {CAROL}",
    "yahoo-x-apparently-to": f"X-Apparently-To: {FRANK} via 98.136.1.2; {DATE}",
    "sieve-redirected-from": f"X-Sieve-Redirected-From: {FRANK}",
    "exchange-original-envelope-recipients":
        f"X-MS-Exchange-Organization-OriginalEnvelopeRecipients: {FRANK}",
    "original-recipient": f"Original-Recipient: rfc822;{FRANK}",
    "x-original-recipient": f"X-Original-Recipient: <{FRANK}>",
    "x-envelope-recipient": f"X-Envelope-Recipient: {FRANK}",
    "procmail-x-loop": f"X-Loop: {FRANK}",
}
# FOR clauses as MTAs write them beyond "for <a@b>" and "for a@b".
FOR = {
    "for-dovecot-lmtp-local": _received("for <frank>"),
    "for-fetchmail-local": _received("for frank (single-drop)"),
    "for-quoted-local-part": _received('for <"frank zebedee"@covert.example.org>'),
    "for-obsolete-spaces": _received("for <frank @ covert.example.org>"),
    "for-comment-first": _received(f"for (via LMTP) <{FRANK}>"),
    "for-carol-then-frank": _received(f"for {CAROL}, {FRANK}"),
    "for-source-route": _received(f"for <@relay.example:{FRANK}>"),
    "for-in-x-received": _received(f"for <{FRANK}>", "X-Received"),
}
# What a hostile sender (or a broken filter) may write: a trace field naming carol, frank
# in its display name or comment; a first line continuing nothing (the page's parser drops
# it, the .eml kept it).
CRAFTED = {
    "delivered-to-comment": f"Delivered-To: {CAROL} (Franklin Zebedee {FRANK})",
    "delivered-to-display-name": f'Delivered-To: "Franklin Zebedee" <{CAROL}>',
    "delivered-to-encoded-name": f"Delivered-To: =?utf-8?q?Franklin_Zebedee?= <{CAROL}>",
    "leading-continuation": f" Delivered-To: {FRANK}",
}
MAILS = {name: _message(name, [field]) for name, field in {**KIN, **FOR, **CRAFTED}.items()}
# A header block with no field of a message as composed: carol is an envelope recipient
# (journaled), frank's delivery is all there is.
NO_COMPOSED = {
    "no-composed-field": ("\r\n".join([
        f"Delivered-To: {FRANK}", _received(f"for <{FRANK}>"),
        "X-Spam-Checker-Version: SpamAssassin 4.0.0 on mx.covert.example.org",
        "", "The plan for the quarter.", ""]).encode(), Envelope(ALICE, [CAROL, FRANK])),
    "no-composed-but-mime": ("\r\n".join([
        f"Delivered-To: {FRANK}", _received(f"for <{FRANK}>"),
        "Content-Type: text/plain; charset=utf-8", "", "The plan for the quarter.",
        ""]).encode(), Envelope(ALICE, [CAROL, FRANK])),
}
# Carol's own delivered copies, as Postfix, Dovecot LMTP and fetchmail write them: hers
# to read byte-exact, FOR clauses, TLS comments and all.
CAROLS_MX = f"Received: from mx.{DOMAIN} (mx.{DOMAIN} [192.0.2.7])\r\n\t"
CAROLS = {
    "carols-postfix": [f"Delivered-To: {CAROL}", f"X-Original-To: {CAROL}",
                       f"{CAROLS_MX}(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256"
                       " bits)\r\n\t key-exchange X25519 server-signature RSA-PSS (2048 bits))"
                       f"\r\n\t(No client certificate requested)\r\n\tby mx2.{DOMAIN} (Postfix)"
                       f" with ESMTPS id 4F2A1\r\n\tfor <{CAROL}>; {DATE}"],
    "carols-lmtp": [f"{CAROLS_MX}by imap.{DOMAIN} with LMTP id Xy (envelope-from <{ALICE}>)"
                    f"\r\n\tfor <{CAROL.upper()}>; {DATE}"],
    "carols-fetchmail": [f"Received: from pop.{DOMAIN} [192.0.2.9] by localhost with POP3"
                         f" (fetchmail-6.4.37) for {CAROL} (single-drop); {DATE}"],
    "carols-x-received": [f"X-Received: by 2002:a05:6402::1 with SMTP id x for <{CAROL}>, "
                          f"<{DORA}>; {DATE}"],
}


@pytest.fixture(scope="module")
def extra_mails() -> dict:
    mails = {name: (raw, None) for name, raw in MAILS.items()}
    mails.update(NO_COMPOSED)
    mails.update({name: (_message(name, trace), None) for name, trace in CAROLS.items()})
    appended = ("X-MS-Exchange-Organization-AuthSource: ex01.covert.example.org\r\n"
                f"X-MS-Exchange-Organization-OriginalEnvelopeRecipients: {FRANK}\r\n")
    mails["exchange-appended"] = (_message("exchange-appended", []).replace(
        b"charset=utf-8\r\n\r\n", b"charset=utf-8\r\n" + appended.encode() + b"\r\n"), None)
    mails["unnamed-delivered-copy"] = (_message("unnamed-delivered-copy", [
        _received("id 4F2A1")]), None)
    return mails


@pytest.fixture(scope="module")
def clients(site) -> dict[str, Client]:
    return user_clients(site, ACCOUNTS, browser="ta-carol")


def _franks(data: bytes) -> list[bytes]:
    return [word for word in FRANKS if word in data.lower()]


def _found(client: Client, site, query: str) -> set[str]:
    reply = client.get(f"/api/search?limit=500&q={urllib.parse.quote(query)}")
    assert reply.status == 200, (query, reply.body)
    return {site.names[hit["digest"]] for hit in reply.json()["hits"]}


def _everything_carol_is_served(site, clients, digest: str) -> dict[str, bytes]:
    carol, browser = clients["ta-carol"], clients["ta-carol-browser"]
    served = {}
    for path in (f"/api/messages/{digest}", f"/api/messages/{digest}/raw"):
        reply = carol.get(path)
        assert reply.status == 200, path
        served[path] = reply.body
    for path in (f"/message/{digest}?headers=all", f"/message/{digest}/raw"):
        reply = browser.get(path)
        assert reply.status == 200, path
        served[path] = reply.body
    for fmt in ("zip", "mbox"):
        reply = carol.request("POST", "/api/exports", {"format": fmt, "digests": [digest]})
        assert reply.status == 200, fmt
        with zipfile.ZipFile(io.BytesIO(reply.body)) as exported:
            for member in exported.namelist():
                served[f"{fmt}:{member}"] = exported.read(member)
    return served


@pytest.mark.parametrize("name", sorted([*MAILS, *NO_COMPOSED]))
def test_frank_is_in_nothing_carol_is_served(site, clients, name):
    digest = site.digests[name]
    served = _everything_carol_is_served(site, clients, digest)
    for where, data in served.items():
        assert not _franks(data), (where, data)
    raw = served[f"/api/messages/{digest}/raw"]
    assert b"The plan for the quarter." in raw
    # frank's delivered copy: his delivery's fields go (his MX, its Authentication-Results)
    assert b"Authentication-Results" not in raw and b"SpamAssassin" not in raw
    if name in MAILS:
        assert f"Subject: Tracks {_label(name)}".encode() in raw
        assert b"Content-Type: text/plain" in raw
    if name == "no-composed-but-mime":
        assert raw.startswith(b"Content-Type: text/plain; charset=utf-8\r\n\r\n")
    # the sender and an auditor read the stored message whole and byte-exact
    for viewer in ("ta-alice", "auditor"):
        if name in NO_COMPOSED and viewer == "ta-alice":
            continue  # alice is no header's address there: not hers to read as sent
        assert clients[viewer].get(f"/api/messages/{digest}/raw").body == \
            site.archive.store.get(digest)


@pytest.mark.parametrize("name", sorted(CAROLS))
def test_carols_own_delivered_copy_is_hers_whole(site, clients, name):
    digest = site.digests[name]
    assert clients["ta-carol"].get(f"/api/messages/{digest}/raw").body == \
        site.archive.store.get(digest)


def test_search_finds_nothing_by_frank_for_carol(site, clients):
    ours = {*MAILS, *NO_COMPOSED}
    for query in ("frank", "covert", "zebedee", f"to:{FRANK}", "bcc:frank", "covert.example.org",
                  "to:*@covert.example.org", "mx.covert.example.org", '"single-drop"'):
        assert _found(clients["ta-carol"], site, query) & ours == set(), query


def test_an_unnamed_delivered_copy_keeps_its_trace(site, clients):
    """README, a known limit: a delivered copy no trace field names its recipient in is
    shown with its trace whole (here: frank's MX in a Received field's "by")."""
    digest = site.digests["unnamed-delivered-copy"]
    assert clients["ta-carol"].get(f"/api/messages/{digest}/raw").body == \
        site.archive.store.get(digest)


def test_fields_a_delivery_appends_below_the_message_stay(site, clients):
    """Not fixed, outside what the README promises ("every field its delivery added above
    the message as composed"): Exchange appends its X-MS-Exchange-Organization-* fields
    below the composed ones, and a field there naming frank's server (AuthSource) stays in
    carol's copy of his delivered copy; the field naming frank himself goes."""
    raw = clients["ta-carol"].get(
        f"/api/messages/{site.digests['exchange-appended']}/raw").body
    assert b"OriginalEnvelopeRecipients" not in raw and b"frank@" not in raw
    assert b"AuthSource: ex01.covert.example.org" in raw
