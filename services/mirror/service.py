"""The mirror service of one appliance: the server that takes peers' copies and one client
per peer, restarted when `archiver mirror join|leave` changes the settings."""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from aiohttp import web

from firmware.system import this_version

from services.archive.archive import Archive
from services.common.config import Config
from services.mirror import state as mirror_state
from services.mirror.client import MirrorClient, Timers, Trust
from services.mirror.pairing import PairingServer
from services.mirror.protocol import Hello
from services.mirror.server import MirrorServer
from services.mirror.state import MirrorSettings, load_status, settings
from services.mirror.trust import (add_pins, client_context, load_or_create_identity,
                                   server_context)

log = logging.getLogger(__name__)
SETTINGS_POLL_SECONDS = 2.0


class IntakeActivity:
    """Local intake is busy when the outbox grew moments ago (SMTP, journal or import
    appending to it); mirror copying then slows down so intake keeps the disk and CPU."""

    QUIET_SECONDS = 0.2

    def __init__(self, store):
        self.store, self._end, self._changed = store, store.log_end("outbox"), 0.0

    def busy(self) -> bool:
        end = self.store.log_end("outbox")
        if end != self._end:
            self._end, self._changed = end, time.monotonic()
        return time.monotonic() - self._changed < self.QUIET_SECONDS


class MirrorService:
    def __init__(self, config: Config, archive: Archive, intake_waits=lambda: None):
        """`intake_waits`: why intake must wait now (IntakeGate.reason), or None."""
        self.config, self.archive, self.store = config, archive, archive.store
        self.intake_waits = intake_waits
        self.hello = Hello(self.store.node_id, archive.profile.model, str(this_version()))
        self.activity = IntakeActivity(self.store)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            current = settings(self.config, self.store)
            if not current.secret:
                await self._wait_for_change(stop, current)
                continue
            runner, clients, stop_clients = await self._start(current)
            try:
                await self._wait_for_change(stop, current)
            finally:
                stop_clients.set()
                await asyncio.gather(*clients, return_exceptions=True)
                await runner.cleanup()

    async def _start(self, current: MirrorSettings):
        if mirror_state.joined_secret_unused(self.config, self.store):
            log.warning(mirror_state.SECRET_OVERRIDDEN)
        identity = await asyncio.to_thread(load_or_create_identity, self._identity_dir(),
                                           self.store.node_id)
        secret = current.secret

        def pins() -> dict:
            return mirror_state.load_pins(self.store, secret)
        client_tls, server_tls = client_context(identity, pins()), server_context(identity, pins())

        def pin(node: str, certificate_pem: str) -> None:
            # New handshakes of the running server and clients trust it at once; a pin that
            # replaced another is checked against pins() on every request anyway.
            if mirror_state.pin(self.store, secret, node, certificate_pem):
                for context in (client_tls, server_tls):
                    add_pins(context, [certificate_pem])
        trust = Trust(client_tls, identity, secret, pins, pin)
        timers = Timers.of(self.config.mirror)
        clients = [MirrorClient(self.store, peer, self.hello, trust, self.activity.busy, timers)
                   for peer in current.peers]

        def retry_every_peer_now():
            for client in clients:
                client.retry_now()
        server = MirrorServer(self.store, self.hello, self._copies_back_to(current),
                              self.archive.profile.smtp.max_message_mb * 1024 * 1024,
                              PairingServer(identity, secret, pin), pins,
                              peer_greeted=retry_every_peer_now,
                              intake_waits=self.intake_waits)
        runner = web.AppRunner(server.app(), access_log=None)
        await runner.setup()
        host, _, port = current.listen.rpartition(":")
        await web.TCPSite(runner, host.strip("[]") or None, int(port),
                          ssl_context=server_tls).start()
        log.info("mirror listening on %s, certificate %s, peers %s", current.listen,
                 identity.fingerprint[:16], ", ".join(current.peers) or "none")
        stop_clients = asyncio.Event()
        tasks = [asyncio.create_task(client.run(stop_clients)) for client in clients]
        return runner, tasks, stop_clients

    def _copies_back_to(self, current: MirrorSettings):
        def copies_back(node_id: str) -> bool:
            return any(load_status(self.store, peer).node == node_id for peer in current.peers)
        return copies_back

    def _identity_dir(self) -> Path:
        return self.archive.data_dir / "mirror"

    async def _wait_for_change(self, stop: asyncio.Event, current: MirrorSettings) -> None:
        while not stop.is_set() and settings(self.config, self.store) == current:
            try:
                await asyncio.wait_for(stop.wait(), timeout=SETTINGS_POLL_SECONDS)
            except asyncio.TimeoutError:
                pass
