"""A third node's edit of a held saved search merged into a mirror peer while this node
exchanges hold records with that peer (services.policy.peer_copies): the peer said, when
the exchange began, that it held no superseded query, but it holds one by the end. Its
copies stored here must stay waiting for it.

Real stores (LMDB), a real MirrorServer on a loopback port and a real MirrorClient's
handshake; only TLS is left out (the certificate's node id is given). The third node's
merge happens at a fixed point: right after the exchange's pages (the window between the
peer's hello reply and the end of the exchange), never by timing."""
import asyncio
import contextlib

import aiohttp
import pytest
from aiohttp import web

from firmware.system import this_version
from services.archive.store import Store
from services.mirror import client as mirror_client
from services.mirror import hold_sync
from services.mirror.protocol import Hello
from services.mirror.server import MirrorServer
from services.mirror.trust import PeerCertificateResponse
from services.policy import hold_records, peer_copies
from services.policy.replicated import Replicated

LAWYER = (b"From: lawyer@x.com\r\nTo: boss@example.com\r\nSubject: case\r\n"
          b"Message-ID: <lawyer@x.com>\r\n\r\nthe case\r\n")


class Node:
    """One appliance's store and replicated settings."""

    def __init__(self, path):
        self.store = Store(path, map_size=1 << 28)
        self.replicated = Replicated(self.store)
        self.id = self.store.node_id

    def hello(self) -> Hello:
        return Hello(self.id, 450, str(this_version()))


class _NoPairing:
    def add_routes(self, app) -> None:
        pass


@contextlib.asynccontextmanager
async def serving(node: Node, client: Node, monkeypatch):
    """`node`'s MirrorServer on a loopback port, taking every request as `client`'s
    (what its pinned certificate would prove). Yields the server's URL."""
    server = MirrorServer(node.store, node.hello(), lambda peer: True, 1 << 20, _NoPairing(),
                          pins=lambda: {})
    monkeypatch.setattr(MirrorServer, "_peer_node", lambda self, request: client.id)
    runner = web.AppRunner(server.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    finally:
        await runner.cleanup()


def handshake(client: Node, server: Node, monkeypatch) -> None:
    """One hello of `client`'s MirrorClient to `server`, with its exchange of hold records
    and settled word, as MirrorClient.run begins each session."""
    async def run():
        async with serving(server, client, monkeypatch) as url:
            mirror = mirror_client.MirrorClient(client.store, "peer", client.hello(),
                                                trust=None)
            mirror.url, mirror.trust = url, _Pins()
            monkeypatch.setattr(mirror_client, "presented_node_id", lambda der, pins: server.id)
            async with aiohttp.ClientSession(headers=client.hello().headers(),
                                             response_class=PeerCertificateResponse) as session:
                await mirror._handshake(session)
    asyncio.run(run())


class _Pins:
    def pins(self) -> dict:
        return {}


def during_exchange(monkeypatch, then) -> None:
    """Call `then()` once, after the next exchange's pages of hold records (before its
    end is told or acted on)."""
    exchange, done = hold_sync.exchange, []

    async def exchange_then(store, post, hold_ids):
        found = await exchange(store, post, hold_ids)
        if not done:
            done.append(then())
        return found
    monkeypatch.setattr(hold_sync, "exchange", exchange_then)


def held_copy(tmp_path, query: str, **hold):
    """Nodes a (here), b (the peer) and c (the third): c's hold h1 on saved search "case"
    (`query`; `hold`: more fields of the hold, e.g. created) merged and settled on a and b;
    b archived the lawyer's mail and copied it to a. Returns (a, b, c, the copy's digest)."""
    a, b, c = Node(tmp_path / "a"), Node(tmp_path / "b"), Node(tmp_path / "c")
    c.replicated.put("saved:case", {"query": query})
    c.replicated.put("hold:h1", {"saved": "case", "until": None, "by": "root", **hold})
    for node in (a, b):
        node.replicated.merge(c.replicated.export(), c.id)
        node.replicated.records_settled(node.replicated.records_pending(), c.id)
    b.store.put(LAWYER, source="smtp")
    return a, b, c, a.store.put(LAWYER, source=f"mirror:{b.id}", origin=b.id)


def mirrored_three(tmp_path):
    """Nodes a (here), b (the peer) and c (the third): a hold on saved search "case"
    (from:alice) everywhere; b archived the lawyer's mail and copied it to a. c then
    narrows "case" twice, through from:lawyer to from:nobody, recording what
    from:alice matched there (nothing). Returns (a, b, the copy's digest, c's two
    edits as exports)."""
    a, b, c, copy = held_copy(tmp_path, "from:alice")
    c.replicated.put("saved:case", {"query": "from:lawyer"})
    widened = c.replicated.export()
    c.replicated.put("saved:case", {"query": "from:nobody"})
    return a, b, copy, [widened, c.replicated.export()]


def merged_into(node: Node, exports: list[dict], source: str):
    def merge() -> None:
        for export in exports:
            node.replicated.merge(export, source)
    return merge


def test_the_harness_settles_a_quiet_exchange(tmp_path, monkeypatch):
    """No edit in the window: either side's exchange lets a go on to b's copy."""
    a, b, copy, _ = mirrored_three(tmp_path)
    handshake(a, b, monkeypatch)
    assert peer_copies.awaiting(a.store, [copy]) == set()
    a2, b2, copy2, _ = mirrored_three(tmp_path / "2")
    handshake(b2, a2, monkeypatch)
    assert peer_copies.awaiting(a2.store, [copy2]) == set()


def settled_on(node: Node, digest: str) -> None:
    """`node`'s retention settles its superseded queries, recording `digest` (what they
    match there) for hold h1."""
    hold_records.add(node.store, "h1", [digest])
    with node.store.writing() as txn:
        for entry in node.replicated.superseded(txn):
            node.replicated.settle_superseded(txn, entry)


@pytest.mark.parametrize("whose_client", ["here", "the peer's"])
def test_a_third_nodes_edit_merged_into_the_peer_during_the_exchange_keeps_its_copies(
        tmp_path, monkeypatch, whose_client):
    """b holds no superseded query when its hello reply (or its client's merge of a's
    reply) is read; before the exchange ends it merges c's two edits, so "from:lawyer",
    which a never held, holds the lawyer's mail on b until b's index has caught up and
    recorded it. a's retention must not take b's copy before b's record of it comes.
    (With one edit, from a query a held at the hello, a's own superseded copy of it would
    hold the mail here until recorded here; the marker must not move all the same.)"""
    a, b, copy, edits = mirrored_three(tmp_path)
    during_exchange(monkeypatch, merged_into(b, edits, "c"))
    if whose_client == "here":
        handshake(a, b, monkeypatch)
    else:
        handshake(b, a, monkeypatch)
    assert [entry["query"] for entry in b.replicated.superseded()] == \
        ["from:alice", "from:lawyer"]
    assert peer_copies.awaiting(a.store, [copy]) == {copy}


@pytest.mark.parametrize("whose_client", ["here", "the peer's"])
def test_a_query_superseded_and_settled_on_the_peer_during_the_exchange_keeps_its_copies(
        tmp_path, monkeypatch, whose_client):
    """As above, and b's retention settles both old queries before the exchange ends: b
    holds none at the end either, but its record of the lawyer's mail came after the
    exchange walked the hold's records, so it is not here yet."""
    a, b, copy, edits = mirrored_three(tmp_path)
    during_exchange(monkeypatch, lambda: (merged_into(b, edits, "c")(), settled_on(b, copy)))
    if whose_client == "here":
        handshake(a, b, monkeypatch)
    else:
        handshake(b, a, monkeypatch)
    assert b.replicated.superseded() == [] and "h1" not in hold_records.summaries(a.store)
    assert peer_copies.awaiting(a.store, [copy]) == {copy}


def test_the_copy_goes_once_the_peer_has_recorded_what_its_old_queries_held(
        tmp_path, monkeypatch):
    """The same race, then b's retention settles its old queries (recording the lawyer's
    mail): the next exchange brings b's record here and lets a go on to the copy."""
    a, b, copy, edits = mirrored_three(tmp_path)
    during_exchange(monkeypatch, merged_into(b, edits, "c"))
    handshake(a, b, monkeypatch)
    assert peer_copies.awaiting(a.store, [copy]) == {copy}
    settled_on(b, copy)  # "from:lawyer" matched it on b
    a.replicated.merge(edits[-1], "c")
    handshake(a, b, monkeypatch)
    assert peer_copies.awaiting(a.store, [copy]) == set()
    assert hold_records.summaries(a.store)["h1"].count == 1
