"""Trace fields that name hidden recipients (README, "Web UI and API"): a hidden recipient's
own delivered copy (imported from frank's mailbox, or journaled as delivered) names frank in
Delivered-To, X-Original-To, Envelope-to and their kin, and in a Received field's FOR clause.
Carol, a To recipient and a user, reads that copy: nothing in it may name frank, while what
names carol or a shown recipient stays, and the stored copy stays byte-exact for those who
may see all of it."""
from __future__ import annotations

import io
import zipfile

import pytest

from services.web.access import RECIPIENT_TRACE_FIELDS
from tests.integration.web.fixtures import Client, user_clients

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_throttle")]

DOMAIN = "trace.example.net"
ALICE, CAROL, DORA = (f"{name}@{DOMAIN}" for name in ("alice", "carol", "dora"))
FRANK = "frank@covert.example.org"
FRANKS = (b"frank", b"covert")
ACCOUNTS = {"t-alice": ALICE, "t-carol": CAROL}


def _message(name: str, trace: list[str], newline: str = "\r\n") -> bytes:
    lines = [*trace, f"Authentication-Results: mx.covert.example.org; spf=pass",
             _received("from alice's MUA"), f"From: Alice <{ALICE}>", f"To: Carol <{CAROL}>", f"Cc: {DORA}",
             f"Subject: Trace {name}", "Date: Mon, 04 Mar 2024 09:00:00 +0000",
             f"Message-ID: <{name}@{DOMAIN}>", "", "The plan for the quarter.", ""]
    return newline.join(lines).encode()


def _received(clause: str) -> str:
    return (f"Received: from mx.{DOMAIN} (mx.{DOMAIN} [192.0.2.7])\r\n\tby mail.covert."
            f"example.org (Postfix) with ESMTPS id 4F2A1\r\n\t{clause}; "
            "Mon, 04 Mar 2024 09:00:02 +0000")


# Each field name in every spelling a header block may give it (case, white space before
# the colon, folded), and the Received FOR clause as Postfix, Exim and Sendmail write it.
FIELDS = {f"{name.decode()}-{form}": [spelling] for name in RECIPIENT_TRACE_FIELDS
          for form, spelling in (
              ("plain", f"{name.decode().title()}: {FRANK}"),
              ("upper", f"{name.decode().upper()}: <{FRANK}>"),
              ("space", f"{name.decode()} : {FRANK}"),
              ("folded", f"{name.decode()}:\r\n {FRANK}"),
              ("with-carol", f"{name.decode()}: {CAROL}, {FRANK}"))}
RECEIVED = {
    "received-postfix": [_received(f"for <{FRANK}>")],
    "received-exim": [_received(f"for {FRANK}")],
    "received-folded": [_received(f"for\r\n\t<{FRANK}>")],
    "received-upper": [_received(f"FOR <{FRANK.upper()}>")],
}
MAILS = {name: _message(name, trace) for name, trace in {**FIELDS, **RECEIVED}.items()}
MAILS["bare-cr"] = _message("bare-cr", [f"X-Spam: no\rDelivered-To: {FRANK}"])
# What names carol or a shown recipient is hers to read, and stays.
SHOWN = {
    "shown-delivered-to": (_message("shown-delivered-to", [f"Delivered-To: {CAROL}"]),
                           f"Delivered-To: {CAROL}".encode()),
    "shown-path": (_message("shown-path", [f"Delivered-To: {CAROL}"]),
                   b"Authentication-Results: mx.covert.example.org"),
    "shown-received": (_message("shown-received", [_received(f"for <{DORA}>")]),
                       f"for <{DORA}>".encode()),
}


@pytest.fixture(scope="module")
def extra_mails() -> dict:
    mails = {name: (raw, None) for name, raw in MAILS.items()}
    mails.update({name: (raw, None) for name, (raw, _) in SHOWN.items()})
    return mails


@pytest.fixture(scope="module")
def clients(site) -> dict[str, Client]:
    return user_clients(site, ACCOUNTS)


def _franks(data: bytes) -> list[bytes]:
    return [word for word in FRANKS if word in data.lower()]


@pytest.mark.parametrize("name", sorted(MAILS))
def test_a_trace_field_naming_a_hidden_recipient_is_not_in_a_users_copy(site, clients, name):
    digest = site.digests[name]
    carol = clients["t-carol"]
    for path in (f"/api/messages/{digest}", f"/api/messages/{digest}/raw"):
        reply = carol.get(path)
        assert reply.status == 200 and not _franks(reply.body), (path, reply.body)
    raw = carol.get(f"/api/messages/{digest}/raw").body
    assert f"Subject: Trace {name}".encode() in raw and b"The plan" in raw
    # frank's delivered copy: what his delivery added above the message goes, whatever
    # else it says (his MX's name in "by", its Authentication-Results)
    assert b"Authentication-Results" not in raw and b"Received:" not in raw
    export = carol.request("POST", "/api/exports", {"format": "zip", "digests": [digest]})
    with zipfile.ZipFile(io.BytesIO(export.body)) as exported:
        for member in exported.namelist():
            assert not _franks(exported.read(member)), member
    for viewer in ("t-alice", "auditor"):  # the sender and an auditor read it whole
        assert clients[viewer].get(f"/api/messages/{digest}/raw").body == \
            site.archive.store.get(digest)


@pytest.mark.parametrize("name", sorted(SHOWN))
def test_a_trace_field_naming_only_shown_addresses_stays(site, clients, name):
    raw = clients["t-carol"].get(f"/api/messages/{site.digests[name]}/raw").body
    assert SHOWN[name][1] in raw
