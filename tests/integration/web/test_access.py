"""Whose mail it is, through the real web API as a role=user account: bob (bob@example.com)
reads, downloads and exports exactly the mail where bob@example.com is a real address
(From, To, Cc, Bcc or an envelope recipient), never mail where it is only a display name, a
comment, a group's name, part of a malformed entry or text, whatever the header's size."""
from __future__ import annotations

import io
import zipfile

import pytest

from tests.integration.web.fixtures import BOB_MAIL, PASSWORD, Client, mail

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_throttle")]

BOB, DAVE = "bob@example.com", "dave@example.com"
PAD = ", ".join(f"colleague{n}@example.org" for n in range(64 * 1024 // 22))  # > 64 KiB

# To headers of mail for dave in which bob appears only where no address is.
NOT_BOBS = {
    "unquoted-name": f"{BOB} <{DAVE}>",
    "quoted-name-then-malformed": f'"{BOB}" <{DAVE}>, @@',
    "quoted-name-then-stray-angle": f'"{BOB}" <{DAVE}>, x@example.org>',
    "quoted-name-then-unclosed-comment": f'"{BOB}" <{DAVE}>, (unclosed',
    "quoted-name-then-two-in-one": f'"{BOB}" <{DAVE}>, a@example.org b@example.org',
    "quoted-name-then-unclosed-angle": f'"{BOB}" <{DAVE}>, <broken',
    "quoted-name-then-64k": f'"{BOB}" <{DAVE}>, {PAD}',
    "unquoted-name-then-64k": f"{BOB} <{DAVE}>, {PAD}",
    "64k-then-unquoted-name": f"{PAD}, {BOB} <{DAVE}>",
    "comment": f"{DAVE} ({BOB})",
    "comment-then-malformed": f"({BOB}) {DAVE}, @@",
    "group-name": f"{BOB}: {DAVE};",
    "two-addresses-one-entry": f"{DAVE} {BOB}",
    "unclosed-angle": f"{DAVE}, <{BOB}",
    "junk-after-angle": f"<{DAVE}> {BOB}",
    "unclosed-quote": f'{DAVE}, "{BOB} <x@example.org>',
    "unclosed-comment": f"{DAVE}, ({BOB}",
    "encoded-name": f"=?utf-8?q?bob=40example.com?= <{DAVE}>",
    "doubled-at": f"{DAVE}, {BOB}@example.org",
    "semicolons-and-name": f"Team; {BOB} <{DAVE}>",
}
# To headers in which bob is a real address among damage: bob's mail.
BOBS = {
    "after-malformed": f"<broken, {BOB}",
    "after-64k": f"{PAD}, {BOB}",
    "in-group-after-64k": f"team: {PAD}, Bob <{BOB}>;",
    "with-decoy-comment": f"(dave@example.com) {BOB}",
    "quoted-local-part": '"bob"@Example.COM',
}


def _mail(name: str, to: str) -> tuple[bytes, None]:
    raw = mail("carol@example.com", "placeholder@example.org", f"Case {name}",
               f"For the eyes of dave only; bob ({BOB}) is mentioned here.",
               attachment=("case.bin", f"attachment of {name}".encode()))
    return raw.replace(b"To: placeholder@example.org", b"To: " + to.encode()), None


@pytest.fixture(scope="module")
def extra_mails() -> dict:
    return {**{f"not-{name}": _mail(name, to) for name, to in NOT_BOBS.items()},
            **{f"bob-{name}": _mail(name, to) for name, to in BOBS.items()}}


@pytest.fixture(scope="module")
def bob(site) -> Client:
    return Client(site.url, basic=("bob", PASSWORD))


BOBS_MAIL = BOB_MAIL | {f"bob-{name}" for name in BOBS}


def test_bob_finds_exactly_his_mail(site, bob):
    for query in ("", "case", "dave", "bob", "attachment", f'to:"{BOB}"', "to:bob"):
        reply = bob.get(f"/api/search?limit=500&q={query}")
        assert reply.status == 200, reply.body
        found = {site.names[hit["digest"]] for hit in reply.json()["hits"]}
        assert found <= BOBS_MAIL, (query, found - BOBS_MAIL)
    everything = bob.get("/api/search?limit=500&q=").json()["hits"]
    assert {site.names[hit["digest"]] for hit in everything} == BOBS_MAIL


@pytest.mark.parametrize("name", sorted(NOT_BOBS))
def test_bob_cannot_read_or_download_mail_naming_him_only_as_text(site, bob, name):
    digest = site.digests[f"not-{name}"]
    for path in (f"/api/messages/{digest}", f"/api/messages/{digest}/raw",
                 f"/api/messages/{digest}/attachments/1"):
        assert bob.get(path).status == 404, path


@pytest.mark.parametrize("name", sorted(BOBS))
def test_bob_reads_and_downloads_mail_where_he_is_a_real_address(site, bob, name):
    digest = site.digests[f"bob-{name}"]
    assert bob.get(f"/api/messages/{digest}").json()["subject"] == f"Case {name}"
    assert bob.get(f"/api/messages/{digest}/raw").body == site.archive.store.get(digest)
    assert bob.get(f"/api/messages/{digest}/attachments/1").body == f"attachment of {name}".encode()


@pytest.mark.parametrize("fmt", ["zip", "mbox"])
def test_bobs_export_holds_exactly_his_mail(site, bob, fmt):
    reply = bob.get(f"/api/export?format={fmt}&q=")
    assert reply.status == 200
    raws = {site.archive.store.get(digest): name for name, digest in site.digests.items()}
    if fmt == "zip":
        with zipfile.ZipFile(io.BytesIO(reply.body)) as exported:
            found = {site.names[member[:-4]] for member in exported.namelist()}
    else:
        found = {name for raw, name in raws.items() if _mbox_holds(reply.body, raw)}
    assert found == BOBS_MAIL
    for name in NOT_BOBS:
        assert f"Case {name}\n".encode() not in reply.body.replace(b"\r\n", b"\n")


def test_the_auditor_still_reads_them_all(site):
    auditor = Client(site.url, basic=("audrey", PASSWORD))
    for name in NOT_BOBS:
        assert auditor.get(f"/api/messages/{site.digests[f'not-{name}']}").status == 200


def _mbox_holds(mbox: bytes, raw: bytes) -> bool:
    """Whether the message's subject line is in the mbox (mboxrd may quote its From_ lines)."""
    subject = next(line for line in raw.splitlines() if line.startswith(b"Subject: "))
    return subject in mbox
