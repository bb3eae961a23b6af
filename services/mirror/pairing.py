"""Pairing: two mirror nodes prove to each other that they know the shared secret, with
SPAKE2 (Abdalla and Pointcheval 2005; Debian's python3-spake2, Ed25519 group), and pin each
other's self-signed certificate (services.mirror.trust). A client pairs with a peer the
first time it meets it, and again whenever a handshake fails because a certificate is not
pinned (a peer whose key was made anew).

    client                                          server
    POST /v1/pair {node, certificate, spake2: X*}
                          <- {session, node, certificate, spake2: Y*, confirm: MAC_server}
    checks MAC_server (the server knows the secret), pins the server's certificate
    POST /v1/pair/confirm {session, confirm: MAC_client}
                          <- 200 {node}          (the server checks MAC_client, pins the client's)

MAC_role = HMAC-SHA256(SPAKE2 key, role || transcript), where the transcript is SHA-256 over
both node ids, both certificates (DER) and both SPAKE2 messages: a certificate swapped in
by a machine in the middle breaks both MACs, and each side pins only what the other one
vouched for. Someone who does not know the secret learns from a run whether the one guess
it put into its SPAKE2 message was right, and nothing that tests any other guess offline:
SPAKE2's messages are blinded by fresh random scalars. The server confirms first, so a
client never tells a stranger anything before the stranger proved the secret.

This is the design in use. It replaced the one ../shared/DESIGN.md's Mirroring section
still describes (a CA derived from the secret with scrypt, whose certificate any connecting
stranger got and could test guesses of the secret against offline; issue 15).

Online guessing is bounded too: offers are rate-limited per client address and overall
(OfferLimits; 429 with Retry-After, which pair() waits out), and the offers waiting for
their confirmation are capped per address and in all: a full table refuses new offers, it
never evicts another client's, so strangers cannot break a peer's pairing.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import hashlib
import hmac
import logging
import math
import secrets
import struct
import time
import unicodedata
from dataclasses import dataclass
from typing import Callable

import aiohttp
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from spake2 import SPAKE2_A, SPAKE2_B

from firmware.errors import ArchiverError

from services.mirror.trust import NodeIdentity, certificate_node_id, fingerprint

log = logging.getLogger(__name__)

OFFER_PATH, CONFIRM_PATH = "/v1/pair", "/v1/pair/confirm"
CLIENT_ID, SERVER_ID = b"archiver mirror client", b"archiver mirror server"
TRANSCRIPT_LABEL = b"archiver mirror pairing v1"
PENDING_SECONDS = 30        # a client confirms within moments of the offer
PENDING_MAX = 64            # strangers cannot make the server keep more than this
PENDING_PER_ADDRESS = 4     # nor one client address more than this
# Offers (each some 6 ms of SPAKE2 in the one process) per client address and overall: a
# burst, then one per interval. A peer pairs once, and again only when a key was made anew.
ADDRESS_BURST, ADDRESS_INTERVAL = 8, 5.0
OVERALL_BURST, OVERALL_INTERVAL = 32, 0.25
PAIR_ATTEMPTS = 4           # pair() waits out this many 429 answers before it gives up
PAIR_WAIT_CAP = 30.0        # and waits at most this long for each
_LENGTH = struct.Struct(">I")


class PairingFailed(ArchiverError):
    """Pairing did not happen; the message says why in words for status."""


class PairingBusy(PairingFailed):
    """The peer answered 429 to every try: too many pairing offers now; retry later."""


class OfferLimits:
    """Token buckets of pairing offers: one per client address (ADDRESS_BURST offers, then
    one every ADDRESS_INTERVAL seconds) and one overall (OVERALL_BURST, OVERALL_INTERVAL).
    take() answers how many seconds to wait, 0 when the offer may go ahead (it is then
    counted). Addresses are forgotten once their bucket is full again."""

    def __init__(self, clock=time.monotonic, max_addresses: int = 10_000):
        self.clock, self.max_addresses = clock, max_addresses
        self._overall = (float(OVERALL_BURST), clock())
        self._by_address: dict[str, tuple[float, float]] = {}

    def take(self, address: str) -> float:
        now = self.clock()
        if len(self._by_address) >= self.max_addresses:
            self._forget_full(now)
        mine = self._refilled(self._by_address.get(address), now, ADDRESS_BURST,
                              ADDRESS_INTERVAL)
        overall = self._refilled(self._overall, now, OVERALL_BURST, OVERALL_INTERVAL)
        if mine < 1 or overall < 1:
            return max((1 - mine) * ADDRESS_INTERVAL, (1 - overall) * OVERALL_INTERVAL, 0.0)
        self._by_address[address] = (mine - 1, now)
        self._overall = (overall - 1, now)
        return 0.0

    @staticmethod
    def _refilled(bucket: tuple[float, float] | None, now: float, burst: int,
                  interval: float) -> float:
        if bucket is None:
            return float(burst)
        tokens, then = bucket
        return min(float(burst), tokens + (now - then) / interval)

    def _forget_full(self, now: float) -> None:
        for address, bucket in list(self._by_address.items()):
            if self._refilled(bucket, now, ADDRESS_BURST, ADDRESS_INTERVAL) >= ADDRESS_BURST:
                del self._by_address[address]


def password(secret: str) -> bytes:
    # NFC: the same secret typed on two systems may arrive composed or decomposed.
    return unicodedata.normalize("NFC", secret).encode()


def transcript(client_node: str, client_der: bytes, server_node: str, server_der: bytes,
               client_message: bytes, server_message: bytes) -> bytes:
    """SHA-256 over everything a pairing agrees on, each part length-prefixed."""
    digest = hashlib.sha256(TRANSCRIPT_LABEL)
    for part in (client_node.encode(), client_der, server_node.encode(), server_der,
                 client_message, server_message):
        digest.update(_LENGTH.pack(len(part)) + part)
    return digest.digest()


def confirmation(key: bytes, role: bytes, agreed: bytes) -> bytes:
    """HMAC-SHA256 by which `role` (CLIENT_ID or SERVER_ID) proves it holds `key`."""
    return hmac.new(key, role + agreed, hashlib.sha256).digest()


@dataclass(frozen=True)
class PeerCertificate:
    node: str
    pem: str
    der: bytes


def read_peer_certificate(node: object, pem: object) -> PeerCertificate:
    """A peer's node id and self-signed Ed25519 certificate as it sent them; raises
    PairingFailed when they are malformed or do not belong together."""
    if not isinstance(node, str) or not node or not isinstance(pem, str):
        raise PairingFailed("the pairing message lacks a node id or a certificate")
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode())
        public_key = certificate.public_key()
        if not isinstance(public_key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 key")
        public_key.verify(certificate.signature, certificate.tbs_certificate_bytes)
    except Exception as exc:  # cryptography raises several kinds for damaged input
        raise PairingFailed(f"the peer's certificate is no self-signed Ed25519 certificate "
                            f"({exc or type(exc).__name__})") from None
    if certificate_node_id(certificate) != node:
        raise PairingFailed(f"the peer's certificate names another node than {node!r}")
    der = certificate.public_bytes(serialization.Encoding.DER)
    return PeerCertificate(node, certificate.public_bytes(serialization.Encoding.PEM).decode(),
                           der)


def _bytes(doc: dict, name: str) -> bytes:
    try:
        return base64.b64decode(doc[name], validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise PairingFailed(f"the pairing message lacks a valid {name!r}") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _finish(side, message: bytes) -> bytes:
    try:
        return side.finish(message)
    except Exception:  # spake2 raises its own errors, ValueError or AssertionError on junk
        raise PairingFailed("the peer's SPAKE2 message is malformed") from None


# -- the server side --------------------------------------------------------------------

@dataclass
class _Pending:
    key: bytes
    agreed: bytes
    client: PeerCertificate
    expires: float
    address: str = ""  # the client address that offered it


class PairingServer:
    """The two pairing endpoints of the mirror server. `on_paired(node, pem)` pins a client
    that proved the secret."""

    def __init__(self, identity: NodeIdentity, secret: str,
                 on_paired: Callable[[str, str], None]):
        self.identity, self.on_paired = identity, on_paired
        self._password = password(secret)
        self._pending: collections.OrderedDict[str, _Pending] = collections.OrderedDict()
        self.limits = OfferLimits()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(OFFER_PATH, self.handle_offer)
        app.router.add_post(CONFIRM_PATH, self.handle_confirm)

    async def handle_offer(self, request: web.Request) -> web.Response:
        address = request.remote or "unknown"
        try:
            doc = await request.json()
            client = read_peer_certificate(doc.get("node"), doc.get("certificate"))
            client_message = _bytes(doc, "spake2")
        except PairingFailed as exc:
            return web.json_response({"reason": str(exc)}, status=400)
        except (ValueError, RecursionError, AttributeError):  # nested too deep: RecursionError
            return web.json_response({"reason": "the pairing offer is not a JSON object"},
                                     status=400)
        busy = self._refusal(address)
        if busy is not None:
            return busy
        try:
            reply, pending = await asyncio.to_thread(self._answer, client, client_message)
        except PairingFailed as exc:
            return web.json_response({"reason": str(exc)}, status=400)
        pending.address = address
        busy = self._refusal(address, counted=True)  # the table may have filled meanwhile
        if busy is not None:
            return busy
        self._pending[reply["session"]] = pending
        return web.json_response(reply)

    def _refusal(self, address: str, counted: bool = False) -> web.Response | None:
        """429 with Retry-After when `address` must wait, or may hold no more open
        pairings, or the table of open pairings is full; None when the offer may go on
        (then, unless `counted`, it is counted against the limits)."""
        now = time.monotonic()
        for old in [s for s, p in self._pending.items() if p.expires < now]:
            del self._pending[old]
        if len(self._pending) >= PENDING_MAX:
            wait = next(iter(self._pending.values())).expires - now
            reason = "too many pairings are open"
        elif sum(p.address == address for p in self._pending.values()) >= PENDING_PER_ADDRESS:
            wait = min(p.expires for p in self._pending.values() if p.address == address) - now
            reason = "this address has too many pairings open"
        else:
            wait = 0.0 if counted else self.limits.take(address)
            reason = "too many pairing offers"
        if wait <= 0:
            return None
        seconds = max(1, math.ceil(wait))
        return web.json_response({"reason": f"{reason}: try again in {seconds} s"},
                                 status=429, headers={"Retry-After": str(seconds)})

    def _answer(self, client: PeerCertificate, client_message: bytes) -> tuple[dict, _Pending]:
        side = SPAKE2_B(self._password, idA=CLIENT_ID, idB=SERVER_ID)
        server_message = side.start()
        key = _finish(side, client_message)
        server_der = self.identity.certificate.public_bytes(serialization.Encoding.DER)
        agreed = transcript(client.node, client.der, self.identity.node_id, server_der,
                            client_message, server_message)
        session = secrets.token_urlsafe(18)
        reply = {"session": session, "node": self.identity.node_id,
                 "certificate": self.identity.certificate_pem, "spake2": _b64(server_message),
                 "confirm": _b64(confirmation(key, SERVER_ID, agreed))}
        return reply, _Pending(key, agreed, client, time.monotonic() + PENDING_SECONDS)

    async def handle_confirm(self, request: web.Request) -> web.Response:
        try:
            doc = await request.json()
            pending = self._pending.pop(str(doc.get("session")), None)
            confirm = _bytes(doc, "confirm")
        except PairingFailed as exc:
            return web.json_response({"reason": str(exc)}, status=400)
        except (ValueError, RecursionError, AttributeError):
            return web.json_response({"reason": "the confirmation is not a JSON object"},
                                     status=400)
        if pending is None or pending.expires < time.monotonic():
            return web.json_response({"reason": "no such pairing (it took too long, or the "
                                      "server restarted): pair again"}, status=409)
        if not hmac.compare_digest(confirm, confirmation(pending.key, CLIENT_ID,
                                                         pending.agreed)):
            log.warning("pairing refused: %s does not know this system's mirror secret",
                        pending.client.node)
            return web.json_response({"reason": "the secrets differ: this system could not "
                                      "confirm the pairing with its secret"}, status=403)
        self.on_paired(pending.client.node, pending.client.pem)
        log.info("paired with %s (certificate %s)", pending.client.node,
                 fingerprint(pending.client.der)[:16])
        return web.json_response({"node": self.identity.node_id})


# -- the client side --------------------------------------------------------------------

async def pair(session: aiohttp.ClientSession, url: str, identity: NodeIdentity,
               secret: str) -> PeerCertificate:
    """Pair with the mirror server at `url` over `session` (trust.pairing_context: no
    certificate of ours; trust.PeerCertificateResponse as its response class); returns the server's node id and certificate, to be pinned.
    Raises PairingFailed (the secrets differ, or the peer is no mirror peer; PairingBusy
    when it answered 429 to PAIR_ATTEMPTS offers, each wait of its Retry-After waited
    out), or aiohttp's and ssl's errors when the peer cannot be reached."""
    side = SPAKE2_A(password(secret), idA=CLIENT_ID, idB=SERVER_ID)
    client_message = side.start()
    offer = {"node": identity.node_id, "certificate": identity.certificate_pem,
             "spake2": _b64(client_message)}
    for attempt in range(PAIR_ATTEMPTS):
        async with session.post(f"{url}{OFFER_PATH}", json=offer) as response:
            presented = getattr(response, "peer_certificate", None)
            wait = _retry_after(response) if response.status == 429 else None
            if wait is None:
                reply = await _json(response)
                break
        if attempt + 1 == PAIR_ATTEMPTS:
            raise PairingBusy(f"the peer is busy with pairing offers (429 {PAIR_ATTEMPTS} "
                              "times): pairing again later")
        log.info("pairing: the peer is busy, trying again in %.0f s", wait)
        await asyncio.sleep(wait)
    server = read_peer_certificate(reply.get("node"), reply.get("certificate"))
    if presented != server.der:
        raise PairingFailed("the peer pairs with another certificate than the one it presents")
    server_message = _bytes(reply, "spake2")
    key = await asyncio.to_thread(_finish, side, server_message)
    client_der = identity.certificate.public_bytes(serialization.Encoding.DER)
    agreed = transcript(identity.node_id, client_der, server.node, server.der, client_message,
                        server_message)
    if not hmac.compare_digest(_bytes(reply, "confirm"),
                               confirmation(key, SERVER_ID, agreed)):
        raise PairingFailed("the secrets differ: the peer could not prove it knows this "
                            "system's mirror secret")
    answer = {"session": reply.get("session"),
              "confirm": _b64(confirmation(key, CLIENT_ID, agreed))}
    async with session.post(f"{url}{CONFIRM_PATH}", json=answer) as response:
        await _json(response)
    return server


def _retry_after(response: aiohttp.ClientResponse) -> float:
    """Seconds a 429 answer asks to wait (its Retry-After, RFC 9110 10.2.3, in seconds),
    at most PAIR_WAIT_CAP; 1 when it names none."""
    try:
        seconds = float(response.headers.get("Retry-After", "1"))
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 0.0), PAIR_WAIT_CAP)


async def _json(response: aiohttp.ClientResponse) -> dict:
    """The reply of a pairing request, or PairingFailed with the peer's reason."""
    if response.status == 404:
        raise PairingFailed("the peer does not offer pairing: it is no mirror peer, or runs "
                            "older firmware")
    try:
        doc = await response.json(content_type=None)
    except (ValueError, RecursionError, aiohttp.ContentTypeError):
        doc = None
    if not isinstance(doc, dict):
        raise PairingFailed(f"the peer answered pairing with {response.status} and no JSON "
                            "object: it is no mirror peer")
    if response.status != 200:
        raise PairingFailed(str(doc.get("reason") or f"the peer answered {response.status}"))
    return doc
