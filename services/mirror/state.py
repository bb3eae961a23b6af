"""Mirroring settings and per-peer status, kept in the store's node-local settings.

The secret and the peers come from `archiver mirror join` (kept here) and from the
`mirror:` section of archiver.yaml; they are never replicated. A secret written in
archiver.yaml is the one in use: an admin who changes it there (a leaked secret) must not
find the old one still pairing, so join refuses another while the file names one. The pins (node id -> the
certificate that node proved by pairing, services.mirror.pairing) are kept here too, and
dropped when the secret changes. Status is written by the mirror service and read by
`archiver mirror status` in another process.
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import time
from dataclasses import dataclass

from firmware.errors import ArchiverError

from services.common.config import Config
from services.archive.store import Store

SECRET_KEY, PEERS_KEY, PINS_KEY = "mirror.secret", "mirror.peers", "mirror.pins"
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
    connected_since: float | None = None  # while connected: since when
    last_success: float | None = None
    last_error: str | None = None
    last_error_time: float | None = None
    handshake_bytes: int = 0       # the last hello: what was sent and what came back
    hold_records_taken: int = 0    # what holds recorded, taken from the peer (in total)
    hold_records_given: int = 0    # and taken by the peer from here
    audit_anchored: int | None = None  # this node's audit entries the peer anchored
    audit_broken: str | None = None    # why the peer says this node's audit log broke


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
    secret = (section.secret if section else None) or store.setting(SECRET_KEY)
    return MirrorSettings(section.listen if section else DEFAULT_LISTEN, secret, peers)


def joined_peers(store: Store) -> list[str]:
    return list(store.setting(PEERS_KEY) or [])


def joined_secret_unused(config: Config, store: Store) -> bool:
    """Whether `mirror join` stored a secret that archiver.yaml's mirror.secret overrides:
    a secret rotated by join before this rule, now set back to the file's."""
    configured = config.mirror.secret if config.mirror else None
    joined = store.setting(SECRET_KEY)
    return bool(configured and joined and joined != configured)


SECRET_OVERRIDDEN = ("the secret `archiver mirror join` stored is not in use: mirror.secret "
                     "in archiver.yaml is, and it differs; put the secret the peers share "
                     "there (or remove it there to use the joined one)")


class SecretInConfig(ArchiverError):
    """A join with another secret than the one archiver.yaml names (mirror.secret)."""


def join(store: Store, secret: str, peer: str | None, configured: str | None = None) -> None:
    """Remember the secret and the peer; only mail archived from now on is copied to it.
    Peers paired under another secret pair again with this one (see load_pins).
    `configured`: the secret archiver.yaml names, if any, which is the one in use: another
    `secret` raises SecretInConfig (nothing is changed)."""
    if configured and secret != configured:
        raise SecretInConfig("archiver.yaml sets mirror.secret, and that is the secret in "
                             "use: change it there (then restart the mirror service), or "
                             "remove it there to join with another")
    store.set_setting(SECRET_KEY, secret)
    if peer and peer not in joined_peers(store):
        store.set_setting(PEERS_KEY, joined_peers(store) + [peer])
        store.set_cursor(cursor_name(peer), store.log_end("outbox"))


def load_pins(store: Store, secret: str) -> dict[str, str]:
    """node id -> PEM certificate of every node this one paired with under `secret`; none
    when the secret has changed since (whether by `mirror join` or in archiver.yaml)."""
    saved = store.setting(PINS_KEY) or {}
    if saved.get("secret_tag") != _secret_tag(secret):
        return {}
    return dict(saved.get("nodes") or {})


def pin(store: Store, secret: str, node_id: str, certificate_pem: str) -> bool:
    """Trust `certificate_pem` as `node_id` from now on, under `secret` (replacing that
    node's old certificate); returns whether anything changed."""
    pins = load_pins(store, secret)
    if pins.get(node_id) == certificate_pem:
        return False
    store.set_setting(PINS_KEY, {"secret_tag": _secret_tag(secret),
                                 "nodes": {**pins, node_id: certificate_pem}})
    return True


def _secret_tag(secret: str) -> str:
    # Tells which secret the pins were made under. The store holds the secret itself
    # anyway (mirror.secret), so this tells nobody with the data disk anything new.
    return hmac.new(b"archiver mirror pins", secret.encode(), hashlib.sha256).hexdigest()


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
            "connected_since": _iso(status.connected_since),
            "last_error_time": _iso(status.last_error_time)}


def _iso(epoch: float | None) -> str | None:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)) if epoch else None
