"""Mirroring settings and per-peer status, kept in the store's node-local settings.

The secret and the peers come from `archiver mirror join` (kept here) and from the
`mirror:` section of archiver.yaml; they are never replicated. Status is written by the
mirror service and read by `archiver mirror status` in another process.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from services.common.config import Config
from services.archive.store import Store

SECRET_KEY, PEERS_KEY = "mirror.secret", "mirror.peers"
DEFAULT_LISTEN = "0.0.0.0:8443"


@dataclass
class PeerStatus:
    state: str = "offline"        # connected, offline, refused or waiting (no room to store)
    reason: str = "not contacted yet"
    node: str | None = None
    model: int | None = None
    version: str | None = None
    one_way: bool = False
    settings_differ: bool = False  # saved searches, retention policies or holds differ
    copied: int = 0
    last_success: float | None = None
    last_error: str | None = None
    last_error_time: float | None = None


@dataclass(frozen=True)
class MirrorSettings:
    listen: str
    secret: str | None
    peers: list[str]


def cursor_name(peer: str) -> str:
    return f"peer:{peer}"


def settings(config: Config, store: Store) -> MirrorSettings:
    section = config.mirror
    peers = list(dict.fromkeys((section.peers if section else []) + joined_peers(store)))
    secret = store.setting(SECRET_KEY) or (section.secret if section else None)
    return MirrorSettings(section.listen if section else DEFAULT_LISTEN, secret, peers)


def joined_peers(store: Store) -> list[str]:
    return list(store.setting(PEERS_KEY) or [])


def join(store: Store, secret: str, peer: str | None) -> None:
    """Remember the secret and the peer; only mail archived from now on is copied to it."""
    store.set_setting(SECRET_KEY, secret)
    if peer and peer not in joined_peers(store):
        store.set_setting(PEERS_KEY, joined_peers(store) + [peer])
        store.set_cursor(cursor_name(peer), store.log_end("outbox"))


def leave(store: Store, peer: str) -> bool:
    peers = joined_peers(store)
    if peer not in peers:
        return False
    store.set_setting(PEERS_KEY, [p for p in peers if p != peer])
    store.set_setting(f"mirror.status.{peer}", None)
    return True


def backfill(store: Store, peer: str) -> int:
    """Queue everything this system archived itself for `peer`; returns how many."""
    store.set_cursor(cursor_name(peer), 0)
    return store.log_end("outbox")


def load_status(store: Store, peer: str) -> PeerStatus:
    saved = store.setting(f"mirror.status.{peer}") or {}
    known = {f.name for f in dataclasses.fields(PeerStatus)}
    return PeerStatus(**{k: v for k, v in saved.items() if k in known})


def save_status(store: Store, peer: str, status: PeerStatus) -> None:
    store.set_setting(f"mirror.status.{peer}", dataclasses.asdict(status))


def report(store: Store, peer: str) -> dict:
    """Status of one peer as `archiver mirror status` shows it."""
    status = load_status(store, peer)
    queued = store.log_end("outbox") - store.cursor(cursor_name(peer))
    return {"peer": peer, **dataclasses.asdict(status), "queued": queued,
            "last_success": _iso(status.last_success),
            "last_error_time": _iso(status.last_error_time)}


def _iso(epoch: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)) if epoch else None
