"""Whose mail it is, through the real web API as a role=user account: bob (bob@example.com)
reads, downloads and exports exactly the mail where bob@example.com is a real address
(From, To, Cc, Bcc or an envelope recipient), never mail where it is only a display name, a
comment, a group's name, part of a malformed entry or text, whatever the header's size."""
from __future__ import annotations

import io
import zipfile

import pytest

from services.appliance import users
from services.archive.mime import SUMMARY_HEADER_LIMIT
from services.archive.store import Envelope
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


KATE = "kate@example.com"
# Mail for dave in which kate appears only as a lookalike (U+212A KELVIN SIGN is no K): to
# the header's address or the envelope's.
NOT_KATES = {"kelvin-header": ("\u212aate@example.com", None),
             "kelvin-envelope": (DAVE, "\u212aATE@Example.com")}


def _mail(name: str, to: str, envelope_to: str | None = None) -> tuple[bytes, Envelope | None]:
    raw = mail("carol@example.com", "placeholder@example.org", f"Case {name}",
               f"For the eyes of dave only; bob ({BOB}) is mentioned here.",
               attachment=("case.bin", f"attachment of {name}".encode()))
    envelope = Envelope("carol@example.com", [envelope_to]) if envelope_to else None
    return raw.replace(b"To: placeholder@example.org", b"To: " + to.encode()), envelope


def _cut_at_the_limit() -> tuple[bytes, None]:
    """Mail to dave and bob@example.community whose header block passes
    SUMMARY_HEADER_LIMIT right after `bob@example.com` (the reviewer's example)."""
    raw, _ = _mail("cut-at-limit", "placeholder@example.org")
    head, _, rest = raw.partition(b"To: placeholder@example.org\n")
    field = b"To: dave@example.com, bob@example.com"
    filler = SUMMARY_HEADER_LIMIT - len(head) - len(field)
    pad = b"".join(b"X-Pad: " + b"a" * 990 + b"\n" for _ in range(filler // 998 - 1))
    pad += b"X-Pad: " + b"b" * (filler - len(pad) - 8) + b"\n"
    raw = head + pad + field + b"munity\n" + rest
    assert raw[:SUMMARY_HEADER_LIMIT].endswith(b"bob@example.com")
    return raw, None


@pytest.fixture(scope="module")
def extra_mails() -> dict:
    return {**{f"not-{name}": _mail(name, to) for name, to in NOT_BOBS.items()},
            **{f"bob-{name}": _mail(name, to) for name, to in BOBS.items()},
            **{f"not-kate-{name}": _mail(name, *to) for name, to in NOT_KATES.items()},
            "kate-ascii-case": _mail("kate-ascii-case", "KATE@Example.COM"),
            "not-bob-cut-at-limit": _cut_at_the_limit()}


@pytest.fixture(scope="module")
def bob(site) -> Client:
    return Client(site.url, basic=("bob", PASSWORD))


@pytest.fixture(scope="module")
def kate(site) -> Client:
    users.add(site.archive, "kate", "user", [KATE], PASSWORD)
    return Client(site.url, basic=("kate", PASSWORD))


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
    with zipfile.ZipFile(io.BytesIO(reply.body)) as exported:  # an evidence export
        members = {name: exported.read(name) for name in exported.namelist()}
    if fmt == "zip":
        found = {site.names[member[len("messages/"):-4]] for member in members
                 if member.startswith("messages/")}
    else:
        found = {name for raw, name in raws.items() if _mbox_holds(members["messages.mbox"], raw)}
    assert found == BOBS_MAIL
    for name in NOT_BOBS:  # not in the mail, nor in the manifest
        for content in members.values():
            assert f"Case {name}".encode() not in content


def test_the_auditor_still_reads_them_all(site):
    auditor = Client(site.url, basic=("audrey", PASSWORD))
    for name in NOT_BOBS:
        assert auditor.get(f"/api/messages/{site.digests[f'not-{name}']}").status == 200


def _mbox_holds(mbox: bytes, raw: bytes) -> bool:
    """Whether the message's subject line is in the mbox (mboxrd may quote its From_ lines)."""
    subject = next(line for line in raw.splitlines() if line.startswith(b"Subject: "))
    return subject in mbox


def test_a_lookalike_of_kates_address_is_not_hers(site, kate):
    """`\u212aate@example.com` lowercases to kate@example.com with str.lower(): in the To
    header or the envelope, it gave kate search hits and downloads of dave's mail."""
    hits = kate.get("/api/search?limit=500&q=").json()["hits"]
    found = {site.names[hit["digest"]] for hit in hits}
    assert found == {"kate-ascii-case"}
    for name in NOT_KATES:
        digest = site.digests[f"not-kate-{name}"]
        for path in (f"/api/messages/{digest}", f"/api/messages/{digest}/raw"):
            assert kate.get(path).status == 404, (name, path)
    assert kate.get(f"/api/messages/{site.digests['kate-ascii-case']}").status == 200


def test_a_header_cut_at_256_KiB_grants_bob_neither_search_nor_download(site, bob):
    """The access check read the first 256 KiB of the header, the index all of it: the cut
    made bob@example.community bob's for downloads by digest, though his search found none."""
    digest = site.digests["not-bob-cut-at-limit"]
    assert bob.get("/api/search?q=subject:cut-at-limit").json()["hits"] == []
    for path in (f"/api/messages/{digest}", f"/api/messages/{digest}/raw"):
        assert bob.get(path).status == 404, path
    auditor = Client(site.url, basic=("audrey", PASSWORD))
    assert auditor.get(f"/api/messages/{digest}/raw").body == site.archive.store.get(digest)
