"""Pairing (SPAKE2 over the secret, then pinned certificates) against a real mirror server
(aiohttp, TLS 1.3 on 127.0.0.1, a real store): who gets paired, what a stranger learns, and
that a paired peer is the node id its certificate proves, whatever it says about itself."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import unicodedata

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from spake2 import SPAKE2_A

from firmware.system import this_version
from services.archive.store import Store
from services.mirror import state as mirror_state
from services.mirror import pairing
from services.mirror.pairing import (CLIENT_ID, CONFIRM_PATH, PENDING_MAX, PENDING_PER_ADDRESS,
                                     SERVER_ID, PairingBusy, PairingFailed, PairingServer,
                                     confirmation, pair, transcript)
from services.mirror.protocol import Hello, MirroredMessage, encode_batch
from services.mirror.server import MirrorServer
from services.mirror.trust import (PeerCertificateResponse, add_pins, client_context,
                                   load_or_create_identity, pairing_context, server_context)

pytestmark = pytest.mark.timeout(60)

SECRET = "tulip-gravel-mosaic-ninja-orbit-fjord"


class Node:
    """A mirror server of node `name` on 127.0.0.1 with its store, identity and pins."""

    def __init__(self, root, name: str, secret: str = SECRET):
        self.name, self.secret = name, secret
        self.store = Store(root / name / "store", map_size=1 << 28)
        self.identity = load_or_create_identity(root / name / "mirror", name)
        self.hello = Hello(name, 450, str(this_version()))
        self.copies_back_asked: list[str] = []

    def pins(self) -> dict:
        return mirror_state.load_pins(self.store, self.secret)

    def pin(self, node: str, pem: str) -> None:
        if mirror_state.pin(self.store, self.secret, node, pem):
            add_pins(self.server_tls, [pem])

    def copies_back(self, node: str) -> bool:
        self.copies_back_asked.append(node)
        return False

    async def __aenter__(self) -> "Node":
        self.server_tls = server_context(self.identity, self.pins())
        self.pairing = PairingServer(self.identity, self.secret, self.pin)
        server = MirrorServer(self.store, self.hello, self.copies_back, 1 << 20, self.pairing,
                              self.pins)
        self.runner = web.AppRunner(server.app(), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=self.server_tls)
        await site.start()
        self.url = f"https://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc) -> None:
        await self.runner.cleanup()


def session(context) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context),
                                 response_class=PeerCertificateResponse)


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 30))


# -- peers that know the secret ---------------------------------------------------------

def test_the_same_secret_pairs_and_then_the_pinned_peers_mirror(tmp_path):
    b_identity = load_or_create_identity(tmp_path / "b" / "mirror", "node-b")

    async def main():
        async with Node(tmp_path, "node-a") as a:
            async with session(pairing_context()) as s:
                server = await pair(s, a.url, b_identity, SECRET)
            assert server.node == "node-a" and server.pem == a.identity.certificate_pem
            assert a.pins() == {"node-b": b_identity.certificate_pem}
            pinned = client_context(b_identity, {"node-a": server.pem})
            hello = Hello("node-b", 450, str(this_version()))
            async with session(pinned) as s:
                async with s.post(f"{a.url}/v1/hello", json=hello.to_json()) as response:
                    return response.status, await response.json()

    status, reply = run(main())
    assert status == 200 and reply["node"] == "node-a"


@pytest.mark.parametrize("form", ["NFC", "NFD"])
def test_the_secret_pairs_however_its_accents_are_encoded(tmp_path, form):
    secret = "crème-brûlée-façade-naïve-élan-öre"
    b_identity = load_or_create_identity(tmp_path / "b", "node-b")

    async def main():
        async with Node(tmp_path, "node-a", unicodedata.normalize("NFC", secret)) as a:
            async with session(pairing_context()) as s:
                await pair(s, a.url, b_identity, unicodedata.normalize(form, secret))
            return a.pins()

    assert list(run(main())) == ["node-b"]


# -- wrong secrets and strangers --------------------------------------------------------

WRONG_SECRETS = [SECRET[:-1], SECRET + " ", SECRET.upper(), SECRET.replace("-", " "),
                 "quartz-lantern-vivid-saddle-prism-otter", ""]


@pytest.mark.parametrize("wrong", WRONG_SECRETS)
def test_a_wrong_secret_pairs_with_nobody_and_says_the_secrets_differ(tmp_path, wrong):
    b_identity = load_or_create_identity(tmp_path / "b", "node-b")

    async def main():
        async with Node(tmp_path, "node-a") as a:
            async with session(pairing_context()) as s:
                with pytest.raises(PairingFailed) as failed:
                    await pair(s, a.url, b_identity, wrong)
            return str(failed.value), a.pins()

    reason, pins = run(main())
    assert reason.startswith("the secrets differ")
    assert pins == {}


def spake2_offer(guess: str, seed: bytes, node: str, certificate_pem: str) -> tuple:
    """A stranger's pairing offer for one guess, with its randomness fixed by `seed`."""
    side = SPAKE2_A(guess.encode(), idA=CLIENT_ID, idB=SERVER_ID,
                    entropy_f=lambda n: hashlib.shake_256(seed).digest(n))
    message = side.start()
    return message, {"node": node, "certificate": certificate_pem,
                     "spake2": base64.b64encode(message).decode()}


def confirms(candidate: str, seed: bytes, offer_message: bytes, reply: dict,
             own_der: bytes, server_der: bytes, node: str) -> bool:
    """The offline test a stranger would run on a candidate secret: redo its side of SPAKE2
    with the same randomness and check the server's confirmation."""
    side = SPAKE2_A(candidate.encode(), idA=CLIENT_ID, idB=SERVER_ID,
                    entropy_f=lambda n: hashlib.shake_256(seed).digest(n))
    side.start()
    server_message = base64.b64decode(reply["spake2"])
    key = side.finish(server_message)
    agreed = transcript(node, own_der, reply["node"], server_der, offer_message,
                        server_message)
    return hmac.compare_digest(base64.b64decode(reply["confirm"]),
                               confirmation(key, SERVER_ID, agreed))


def test_a_stranger_learns_nothing_that_confirms_the_secret_offline(tmp_path):
    """One wrong guess per connection, and what the server answers confirms no other guess,
    the right secret included; only a right guess made online confirms."""
    stranger = load_or_create_identity(tmp_path / "stranger", "stranger")
    own_der = stranger.certificate.public_bytes(serialization.Encoding.DER)
    seed = b"the stranger's randomness"

    async def offer(guess: str):
        async with Node(tmp_path, "node-a") as a, session(pairing_context()) as s:
            message, body = spake2_offer(guess, seed, "stranger", stranger.certificate_pem)
            async with s.post(f"{a.url}/v1/pair", json=body) as response:
                reply = await response.json()
                presented = response.peer_certificate
            return message, reply, presented, a.pins()

    message, reply, server_der, pins = run(offer("a wrong guess of the stranger"))
    assert pins == {}
    candidates = [SECRET, "a wrong guess of the stranger", *WRONG_SECRETS[:4]]
    assert not any(confirms(c, seed, message, reply, own_der, server_der, "stranger")
                   for c in candidates)
    # The control: the same check does confirm a guess that was right when it was sent.
    (tmp_path / "node-a").rename(tmp_path / "earlier")
    message, reply, server_der, pins = run(offer(SECRET))
    assert confirms(SECRET, seed, message, reply, own_der, server_der, "stranger")
    assert pins == {}, "nothing is pinned before the client confirms"


def test_a_client_that_has_not_paired_may_only_pair(tmp_path):
    hello = Hello("node-b", 450, str(this_version()))
    batch = encode_batch([MirroredMessage(hashlib.sha256(b"m").hexdigest(), b"m", None,
                                          ["x@example.com"], "node-b")])

    async def main():
        async with Node(tmp_path, "node-a") as a, session(pairing_context()) as s:
            replies = []
            for path, kwargs in (("/v1/hello", {"json": hello.to_json()}),
                                 ("/v1/messages", {"data": batch, "headers": hello.headers()})):
                async with s.post(f"{a.url}{path}", **kwargs) as response:
                    replies.append((response.status, await response.json()))
            return replies, a

    replies, a = run(main())
    for status, reply in replies:
        assert status == 403 and reply["pair"] is True and "not paired" in reply["reason"]
    assert a.store.log_end("arrival") == 0


BAD_OFFERS = [
    b"not json", b"[]", b"{}", json.dumps({"node": "x"}).encode(),
    json.dumps({"node": "x", "certificate": "not a certificate", "spake2": "AA=="}).encode(),
    b"[" * 100_000 + b"]" * 100_000,  # nested too deep for json: RecursionError, not 500
]


def test_malformed_pairing_messages_are_refused_and_pin_nothing(tmp_path):
    other = load_or_create_identity(tmp_path / "other", "node-other")
    b_identity = load_or_create_identity(tmp_path / "b", "node-b")
    good = base64.b64encode(SPAKE2_A(b"x", idA=CLIENT_ID, idB=SERVER_ID).start()).decode()
    offers = BAD_OFFERS + [json.dumps(doc).encode() for doc in (
        {"node": "node-b", "certificate": other.certificate_pem, "spake2": good},  # not its CN
        {"node": "node-b", "certificate": b_identity.certificate_pem, "spake2": "%%%"},
        {"node": "node-b", "certificate": b_identity.certificate_pem, "spake2": "QUJD"},
        {"node": "node-b", "certificate": b_identity.certificate_pem,
         "spake2": base64.b64encode(b"B" + bytes(32)).decode()},           # the wrong side
        {"node": 7, "certificate": b_identity.certificate_pem, "spake2": good},
    )]

    async def main():
        async with Node(tmp_path, "node-a") as a, session(pairing_context()) as s:
            statuses = []
            for body in offers:
                async with s.post(f"{a.url}/v1/pair", data=body,
                                  headers={"Content-Type": "application/json"}) as response:
                    statuses.append((response.status, (await response.json())["reason"]))
            for confirm in ({}, {"session": "nope", "confirm": "AAAA"}, []):
                async with s.post(f"{a.url}/v1/pair/confirm", json=confirm) as response:
                    statuses.append((response.status, (await response.json())["reason"]))
            async with s.post(f"{a.url}/v1/pair/confirm", data=BAD_OFFERS[-1],
                              headers={"Content-Type": "application/json"}) as response:
                statuses.append((response.status, (await response.json())["reason"]))
            pins_before = a.pins()
            await pair(s, a.url, b_identity, SECRET)          # the server still pairs
            return statuses, pins_before, a.pins()

    statuses, before, after = run(main())
    assert [code for code, _ in statuses] == [400] * len(offers) + [400, 409, 400, 400], \
        statuses
    assert all(reason for _, reason in statuses)
    assert before == {} and list(after) == ["node-b"]


def test_a_wrong_confirmation_pins_nothing(tmp_path):
    stranger = load_or_create_identity(tmp_path / "s", "stranger")

    async def main():
        async with Node(tmp_path, "node-a") as a, session(pairing_context()) as s:
            _, body = spake2_offer("a wrong guess", b"seed", "stranger",
                                   stranger.certificate_pem)
            async with s.post(f"{a.url}/v1/pair", json=body) as response:
                reply = await response.json()
            forged = {"session": reply["session"], "confirm": base64.b64encode(
                hmac.new(b"guessed key", b"x", hashlib.sha256).digest()).decode()}
            async with s.post(f"{a.url}/v1/pair/confirm", json=forged) as response:
                answer = response.status, await response.json()
            async with s.post(f"{a.url}/v1/pair/confirm", json=forged) as response:
                again = response.status   # a session is good for one confirmation only
            return answer, again, a.pins()

    (status, reply), again, pins = run(main())
    assert status == 403 and reply["reason"].startswith("the secrets differ")
    assert again == 409 and pins == {}


def from_address(address: str) -> aiohttp.ClientSession:
    """A pairing session whose connections come from `address` (127.0.0.0/8 is all ours)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=pairing_context(), local_addr=(address, 0)),
        response_class=PeerCertificateResponse)


async def stranger_offer(url: str, address: str, stranger, n: int) -> tuple[int, dict]:
    _, body = spake2_offer("guess", n.to_bytes(4, "big"), "stranger", stranger.certificate_pem)
    async with from_address(address) as s, s.post(f"{url}/v1/pair", json=body) as response:
        return response.status, dict(response.headers)


class FloodBeforeConfirming:
    """A session for pair() that lets `flood` run between its offer and its confirmation:
    a real peer's pairing open while strangers send offers."""

    def __init__(self, session: aiohttp.ClientSession, flood):
        self.session, self.flood = session, flood

    def post(self, url: str, **options):
        inner = self.session.post(url, **options)
        if not url.endswith(CONFIRM_PATH):
            return inner
        flood = self.flood

        class Then:
            async def __aenter__(self):
                await flood()
                return await inner.__aenter__()

            async def __aexit__(self, *exc):
                return await inner.__aexit__(*exc)
        return Then()


def test_offers_from_one_address_are_limited_and_answered_429_with_retry_after(tmp_path):
    """One client sent ~62 offers a second, all 200: now PENDING_PER_ADDRESS open pairings,
    then 429 with Retry-After, and the offers a second address makes are not held up."""
    stranger = load_or_create_identity(tmp_path / "s", "stranger")

    async def main():
        async with Node(tmp_path, "node-a") as a:
            answers = [await stranger_offer(a.url, "127.0.0.1", stranger, n) for n in range(12)]
            other = await stranger_offer(a.url, "127.0.0.2", stranger, 99)
            return answers, other, len(a.pairing._pending)

    answers, other, pending = run(main())
    statuses = [status for status, _ in answers]
    assert statuses == [200] * PENDING_PER_ADDRESS + [429] * (12 - PENDING_PER_ADDRESS)
    assert all(int(headers["Retry-After"]) >= 1 for status, headers in answers if status == 429)
    assert other[0] == 200 and pending == PENDING_PER_ADDRESS + 1


def test_offers_overall_and_per_address_are_rate_limited(tmp_path, monkeypatch):
    """Offers that never stay open (no table limit reached) are still bounded: ADDRESS_BURST
    from one address, OVERALL_BURST from all, then 429."""
    monkeypatch.setattr(pairing, "PENDING_PER_ADDRESS", 1000)
    monkeypatch.setattr(pairing, "PENDING_MAX", 1000)
    stranger = load_or_create_identity(tmp_path / "s", "stranger")

    async def main():
        async with Node(tmp_path, "node-a") as a:
            a.pairing.limits = pairing.OfferLimits(clock=lambda: 1000.0)  # no refill
            one = [(await stranger_offer(a.url, "127.0.0.1", stranger, n))[0]
                   for n in range(pairing.ADDRESS_BURST + 3)]
            spread = [(await stranger_offer(a.url, f"127.0.1.{n}", stranger, n))[0]
                      for n in range(pairing.OVERALL_BURST)]
            return one, spread

    one, spread = run(main())
    assert one == [200] * pairing.ADDRESS_BURST + [429] * 3
    assert spread.count(200) == pairing.OVERALL_BURST - pairing.ADDRESS_BURST
    assert 429 in spread


def test_strangers_offers_never_evict_a_peers_open_pairing(tmp_path, monkeypatch):
    """70 offers from strangers while a peer is between its offer and its confirmation used
    to evict its pairing ("no such pairing"): a full table now refuses them instead."""
    monkeypatch.setattr(pairing, "OVERALL_BURST", 1000)
    stranger = load_or_create_identity(tmp_path / "s", "stranger")
    b_identity = load_or_create_identity(tmp_path / "b", "node-b")

    async def main():
        async with Node(tmp_path, "node-a") as a:
            refused = []

            async def flood():
                for n in range(PENDING_MAX + 6):
                    address = f"127.0.2.{n // PENDING_PER_ADDRESS + 1}"
                    refused.append((await stranger_offer(a.url, address, stranger, n))[0])

            async with session(pairing_context()) as s:
                server = await pair(FloodBeforeConfirming(s, flood), a.url, b_identity, SECRET)
            return server.node, a.pins(), refused, len(a.pairing._pending)

    node, pins, statuses, pending = run(main())
    assert node == "node-a" and list(pins) == ["node-b"]
    assert statuses.count(200) == PENDING_MAX - 1 and statuses.count(429) == 7
    assert pending == PENDING_MAX - 1  # the peer's confirmed and left; the strangers' stay


def test_a_peer_answered_429_waits_and_pairs(tmp_path, monkeypatch):
    """The client backs off as Retry-After says instead of failing: its address used up its
    offers (a stranger behind the same address), and it pairs once the wait is over."""
    monkeypatch.setattr(pairing, "ADDRESS_BURST", 1)
    monkeypatch.setattr(pairing, "ADDRESS_INTERVAL", 1.0)
    stranger = load_or_create_identity(tmp_path / "s", "stranger")
    b_identity = load_or_create_identity(tmp_path / "b", "node-b")

    async def main():
        async with Node(tmp_path, "node-a") as a:
            assert (await stranger_offer(a.url, "127.0.0.1", stranger, 1))[0] == 200
            assert (await stranger_offer(a.url, "127.0.0.1", stranger, 2))[0] == 429
            async with from_address("127.0.0.1") as s:
                server = await pair(s, a.url, b_identity, SECRET)
            return server.node, a.pins()

    node, pins = run(main())
    assert node == "node-a" and list(pins) == ["node-b"]


def test_a_peer_still_busy_after_its_tries_is_pairing_busy(tmp_path, monkeypatch):
    monkeypatch.setattr(pairing, "ADDRESS_BURST", 1)
    monkeypatch.setattr(pairing, "ADDRESS_INTERVAL", 600.0)
    monkeypatch.setattr(pairing, "PAIR_WAIT_CAP", 0.05)
    stranger = load_or_create_identity(tmp_path / "s", "stranger")
    b_identity = load_or_create_identity(tmp_path / "b", "node-b")

    async def main():
        async with Node(tmp_path, "node-a") as a:
            await stranger_offer(a.url, "127.0.0.1", stranger, 1)
            async with from_address("127.0.0.1") as s:
                with pytest.raises(PairingBusy) as busy:
                    await pair(s, a.url, b_identity, SECRET)
            return str(busy.value), a.pins()

    reason, pins = run(main())
    assert "busy" in reason and pins == {}


# -- a paired peer is its certificate's node id -----------------------------------------

@pytest.mark.parametrize("claimed", ["node-c", "node-a", "", "node-b "])
def test_a_peer_claiming_another_node_id_is_taken_as_its_certificates(tmp_path, claimed):
    b_identity = load_or_create_identity(tmp_path / "b", "node-b")
    raw = b"From: x@example.com\r\nSubject: claimed\r\n\r\nbody\r\n"
    digest = hashlib.sha256(raw).hexdigest()

    async def main():
        async with Node(tmp_path, "node-a") as a:
            async with session(pairing_context()) as s:
                server = await pair(s, a.url, b_identity, SECRET)
            impostor = Hello(claimed, 450, str(this_version()))
            async with session(client_context(b_identity, {"node-a": server.pem})) as s:
                async with s.post(f"{a.url}/v1/hello", json=impostor.to_json()) as response:
                    assert response.status == 200, await response.text()
                batch = encode_batch([MirroredMessage(digest, raw, None, ["x@example.com"],
                                                      claimed or "node-b")])
                async with s.post(f"{a.url}/v1/messages", data=batch,
                                  headers=impostor.headers()) as response:
                    assert response.status == 200, await response.text()
            return a.store.meta(digest)["source"], a.copies_back_asked

    source, asked = run(main())
    assert source == "mirror:node-b"
    assert asked == ["node-b"]
