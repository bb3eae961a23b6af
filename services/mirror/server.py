"""Receives copies from peers: checks each request's identity against the compatibility
rule, stores every message of a batch durably, and only then answers 200.

Copies are stored with source "mirror:<peer node>" and their original origin, so they are
indexed here but never copied on (no echo, nothing twice with three or more peers).
"""
from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from firmware.compat import may_mirror
from firmware.models import load_models

from services.mirror.protocol import Hello, ProtocolError, decode_batch
from services.mirror.trust import peer_node_id
from services.policy.replicated import Replicated
from services.archive.store import Envelope, OutOfSpace, Store

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 30  # what a peer is told to wait while intake here must wait


class MirrorServer:
    def __init__(self, store: Store, hello: Hello, copies_back_to, max_message_bytes: int,
                 peer_greeted=lambda: None, intake_waits=lambda: None):
        self.store, self.hello = store, hello
        self.intake_waits = intake_waits  # why intake must wait now (IntakeGate.reason), or None
        self.peer_greeted = peer_greeted  # a peer is up: our clients may retry at once
        self.replicated = Replicated(store)  # saved searches, policies and holds
        self.copies_back_to = copies_back_to  # node id -> bool: do we copy to that node?
        self.max_batch_bytes = max_message_bytes + 32 * 1024 * 1024

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_batch_bytes)
        app.router.add_post("/v1/hello", self.handle_hello)
        app.router.add_post("/v1/messages", self.handle_messages)
        return app

    def _refusal(self, peer: Hello) -> web.Response | None:
        # The rule is symmetric; it is asked from the peer's side, so the reason reads right
        # in the peer's status ("this system" is the peer there).
        verdict = may_mirror(peer.identity(), self.hello.identity(), load_models())
        if verdict.allowed:
            return None
        return web.json_response({**self.hello.to_json(), "refused": True,
                                  "reason": verdict.reason,
                                  "settings_digest": self.replicated.digest()}, status=409)

    async def handle_hello(self, request: web.Request) -> web.Response:
        try:
            document = await request.json()
            peer = Hello.from_json(document)
            request_settings = dict(document.get("settings") or {})
        except (ProtocolError, ValueError, TypeError) as exc:
            return web.json_response({"reason": str(exc)}, status=400)
        self.peer_greeted()
        refusal = self._refusal(peer)
        if refusal is not None:
            log.info("refused mirroring with %s: %s", peer.node, refusal.text)
            return refusal
        try:
            taken = await asyncio.to_thread(self.replicated.merge, request_settings)
        except OutOfSpace as full:  # taken at a later hello, once there is room
            log.warning("replicated settings from %s not taken now: %s", peer.node, full)
            taken = 0
        if taken:
            log.info("took %d replicated settings from %s", taken, peer.node)
        return web.json_response({**self.hello.to_json(),
                                  "copies_back": self.copies_back_to(peer.node),
                                  "settings": self.replicated.export(),
                                  "settings_digest": self.replicated.digest()})

    async def handle_messages(self, request: web.Request) -> web.Response:
        try:
            peer = Hello.from_headers(request.headers)
        except ProtocolError as exc:
            return web.json_response({"reason": str(exc)}, status=400)
        refusal = self._refusal(peer)
        if refusal is not None:
            return refusal
        sender_node = peer_node_id(request.transport.get_extra_info("ssl_object")) or peer.node
        body = await request.read()  # read even when refused: the peer is still sending it
        waits = self.intake_waits()
        if waits:
            return _retry_later(waits)
        try:
            stored = await asyncio.to_thread(self._store_batch, body, sender_node)
        except ProtocolError as exc:
            return web.json_response({"reason": str(exc)}, status=400)
        except OutOfSpace as full:
            return _retry_later(full.brief)
        return web.json_response({"stored": stored})

    def _store_batch(self, body: bytes, sender_node: str) -> int:
        messages = list(decode_batch(body))  # all checked before anything is stored
        items = [(m.raw, Envelope(m.sender, m.recipients), f"mirror:{sender_node}", m.origin)
                 for m in messages]
        self.store.put_many(items)
        return len(items)


def _retry_later(reason: str) -> web.Response:
    """503 with Retry-After: nothing of the batch was stored; the peer keeps it queued."""
    return web.json_response({"reason": reason, "retry_after": RETRY_AFTER_SECONDS},
                             status=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
