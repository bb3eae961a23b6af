"""Attacks on the audit-log anchors two mirror peers hold of each other
(services.policy.audit_anchor), over two real LMDB stores: an admin with root on one
appliance who rewrites its log on its disk, and a hostile (paired) peer."""
import asyncio
import json
import struct

import pytest

from services.archive.store import Store
from services.mirror import client as mirror_client
from services.mirror.protocol import Hello
from services.policy import audit, audit_anchor
from tests.unit.policy.test_audit_anchor import (ADMIN, PEER, anchor_at_peer, changed,
                                                 stores)  # noqa: F401 (a fixture)


def write_log_keyed(store: Store, entries: list[dict], key) -> None:
    """Replace `store`'s log with `entries`, every hash and the head recomputed, entry n
    stored under key(n) rather than the 8-byte big-endian n the firmware writes."""
    db, previous = store.db["audit"], audit.GENESIS
    with store.env.begin(write=True) as txn:
        txn.drop(db, delete=False)
        for seq, entry in enumerate(entries, 1):
            entry = {**entry, "seq": seq, "previous": previous}
            entry["hash"] = previous = audit.entry_hash(entry)
            txn.put(key(seq), json.dumps(entry).encode(), db=db)
        txn.put(audit.HEAD_KEY, json.dumps([len(entries), previous]).encode(), db=db)


def test_entries_stored_past_the_head_key_neither_pass_here_nor_stall_the_anchor(stores):
    """The head is kept in the same table as the entries, under b"\\x00head"; the entries
    after the anchor were read only up to it. Entries rewritten and stored under keys that
    sort after the head passed the chain check here, while the peer was sent no entries at
    all: its anchor neither moved nor broke, and both sides' verify said intact."""
    a, b = stores
    assert anchor_at_peer(a, b)["count"] == 10
    rewritten = changed(audit.entries(a), 5) + [
        {"time": 0, "who": "root", "role": "admin", "action": "search",
         "details": {"query": f"cover {n}"}} for n in range(3)]
    write_log_keyed(a, rewritten, lambda seq: (struct.pack(">Q", seq) if seq <= 10
                                               else b"\x01" + struct.pack(">Q", seq)))
    here = audit.verify(a)
    there = anchor_at_peer(a, b)
    assert here or there["broken"], "the rewrite is seen on neither side"
    assert there["broken"], "the peer's anchor should break: entries 11-13 follow another 10"


def test_no_entry_is_read_from_under_another_key_than_its_seq(stores):
    """An entry must be stored where the firmware puts it (its seq, 8 bytes big-endian):
    verify reports one stored elsewhere."""
    a, _ = stores
    write_log_keyed(a, audit.entries(a), lambda seq: struct.pack(">Q", seq) + b"\x00")
    assert audit.verify(a)


def test_a_page_taken_twice_does_not_break_the_anchor(stores):
    """Two clients to the same peer (it is named twice in mirror.peers, by name and by
    address) or one that timed out and said hello again both send the page after the
    anchor they were told; the second, identical, arrives after the first moved the
    anchor. That is no rewrite: the anchor must not break."""
    a, b = stores
    request = audit_anchor.request_json(a, 0)
    first = audit_anchor.take(b, PEER, request["head"], request["entries"])
    again = audit_anchor.take(b, PEER, request["head"], request["entries"])
    assert first["count"] == 10 and not first["broken"]
    assert not again["broken"] and again["count"] == 10
    # and a page that overlaps the anchor and goes on past it moves it
    audit.record(a, ADMIN, "search", query="eleven")
    overlapping = audit_anchor.request_json(a, 5)
    moved = audit_anchor.take(b, PEER, overlapping["head"], overlapping["entries"])
    assert (moved["count"], moved["hash"], moved["broken"]) == (11, audit.head(a)[1], None)


def test_a_stale_page_behind_the_anchor_is_a_no_op(stores):
    """A page sent when the peer's log had 10 entries (head [10, ...]) that arrives after a
    second client's page moved the anchor to 12: wholly before the anchor and matching what
    it took, it moves nothing and breaks nothing. So does a retried first page of a log
    anchored page after page past it (head at the anchor, entries all before it)."""
    a, b = stores
    stale = audit_anchor.request_json(a, 0)
    for n in range(2):
        audit.record(a, ADMIN, "search", query=f"more {n}")
    fresh = audit_anchor.request_json(a, 0)
    assert audit_anchor.take(b, PEER, fresh["head"], fresh["entries"])["count"] == 12
    found = audit_anchor.take(b, PEER, stale["head"], stale["entries"])
    assert (found["count"], found["broken"]) == (12, None)
    assert found == audit_anchor.anchor(b, PEER)
    for n in range(audit_anchor.PAGE):
        audit.record(a, ADMIN, "view", digest=f"{n:064x}")
    first = audit_anchor.request_json(a, 12)  # entries 13 ... 1012 of 1012 + 5
    for n in range(5):
        audit.record(a, ADMIN, "view", digest=f"{n:064x}")
    assert anchor_at_peer(a, b)["count"] == audit.head(a)[0] == 1017
    found = audit_anchor.take(b, PEER, first["head"], first["entries"])
    assert (found["count"], found["broken"]) == (1017, None)
    assert audit_anchor.take(b, PEER, list(audit.head(a)), first["entries"])["broken"] is None


def test_a_stale_page_that_differs_from_the_anchored_entries_breaks_the_anchor(stores):
    a, b = stores
    stale = audit_anchor.request_json(a, 0)
    audit.record(a, ADMIN, "search", query="eleven")
    assert anchor_at_peer(a, b)["count"] == 11
    entries = changed(stale["entries"], 5)  # entry 5 changed, and every hash after it
    for position in range(4, len(entries)):
        entries[position]["previous"] = entries[position - 1]["hash"]
        entries[position] = {**entries[position], "hash": audit.entry_hash(entries[position])}
    found = audit_anchor.take(b, PEER, [10, entries[-1]["hash"]], entries)
    assert found["broken"] and "entry 5" in found["broken"] and found["count"] == 11


def test_an_empty_page_whose_head_is_behind_the_anchor_still_breaks_it(stores):
    """What a log cut back sends (its entries past the anchor: none), even when the entries
    it kept are the anchored ones."""
    a, b = stores
    head = list(audit.head(a))
    audit.record(a, ADMIN, "search", query="eleven")
    assert anchor_at_peer(a, b)["count"] == 11
    assert audit_anchor.take(b, PEER, head, [])["broken"]


def test_an_overlapping_page_that_differs_at_the_anchor_still_breaks_it(stores):
    a, b = stores
    assert anchor_at_peer(a, b)["count"] == 10
    entries = changed(audit.entries(a), 10)  # entry 10, anchored, changed and rehashed
    entries[-1] = {**entries[-1], "hash": audit.entry_hash(entries[-1])}
    found = audit_anchor.take(b, PEER, [10, entries[-1]["hash"]], entries)
    assert found["broken"]
    found = audit_anchor.take(b, PEER, [11, "x"], entries)
    assert found["broken"]


class _FakeClient(mirror_client.MirrorClient):
    def __init__(self, store, answers):
        super().__init__(store, "b.example:8443", Hello("node-a", 450, "1.0.0"), trust=None)
        self.answers = list(answers)

    async def _post_json(self, session, path, document):
        return self.answers.pop(0) if self.answers else {"count": 10, "broken": None}


@pytest.mark.parametrize("theirs", [[-5, "x"], [2 ** 64, "x"], [-1, audit.GENESIS]])
def test_a_hostile_peers_anchor_in_its_hello_does_not_kill_the_mirror_client(stores, theirs):
    """A peer's hello reply is hostile until read: an anchor count struct cannot pack made
    the client's task end with struct.error, for good: nothing was copied to that peer
    again and its status stayed "connected"."""
    a, _ = stores
    client = _FakeClient(a, [])
    try:
        asyncio.run(client._anchor_audit_log(None, theirs))
    except mirror_client.PeerRefused:
        pass  # said in status, retried like an outage


@pytest.mark.parametrize("answer", [["not", "an", "object"], {"count": "ten"},
                                    {"count": -3}, "broken", None])
def test_a_hostile_peers_audit_answer_does_not_kill_the_mirror_client(stores, answer):
    a, _ = stores
    client = _FakeClient(a, [answer])
    try:
        asyncio.run(client._anchor_audit_log(None, [0, audit.GENESIS]))
    except mirror_client.PeerRefused:
        pass


WORST_PAGE = """
import json, resource, sys
from services.policy import audit_anchor
size = audit_anchor.MAX_BODY_BYTES
body = b'{"head":[0,"x"],"entries":[' + b'{},' * ((size - 40) // 3) + b'{}]}'
assert len(body) <= size
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
json.loads(body)  # what MirrorServer.handle_audit does with a body within the bound
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def test_a_hostile_peers_page_of_audit_entries_costs_its_server_little_memory():
    """A paired peer may send POST /v1/audit a body up to MAX_BODY_BYTES, parsed whole
    before the page's length is checked. Empty objects ("{},": 3 bytes, 64 in Python)
    made 32 MiB cost about 850 MB: one request is most of a model 450's 1 GiB, on which
    SMTP, the indexer and the web UI run too."""
    import subprocess
    import sys
    done = subprocess.run([sys.executable, "-c", WORST_PAGE], capture_output=True,
                          text=True, check=True)
    assert int(done.stdout) < 160, f"{done.stdout.strip()} MiB for one page"


def test_a_peers_node_id_cannot_rewrite_what_audit_verify_shows(tmp_path):
    """A node id is whatever a paired peer's certificate says (any string): one holding
    terminal controls (cursor up, erase line) printed raw could erase the BROKEN lines
    above it on the auditor's screen and print "intact" in their place."""
    import subprocess
    import sys
    from services.archive.archive import Archive
    archive = Archive(tmp_path / "data", 450)
    try:
        archive.store.set_setting(audit_anchor.SETTING + "good", {
            "count": 3, "hash": "h", "at": None, "broken": "its entry 3 was changed"})
        archive.store.set_setting(audit_anchor.SETTING + "zz\x1b[3A\x1b[2K\r5 entries, intact", {
            "count": 1, "hash": "h", "at": None, "broken": None})
    finally:
        archive.close()
    done = subprocess.run([sys.executable, "-m", "services.cli.main", "audit", "verify",
                           "--data", str(tmp_path / "data"), "--model", "450"], capture_output=True, text=True)
    assert done.returncode == 1 and "BROKEN: mirror peer good" in done.stdout
    assert "\x1b" not in done.stdout and "\r" not in done.stdout, done.stdout


def test_a_peer_that_stops_sending_its_log_is_named_by_verify(stores, monkeypatch):
    """An admin with root on a keeps a's client from reaching b (a firewall rule on a's
    way out, or a's mirror stopped while b's client still reaches a; or a back under a new
    node id b's client cannot reach): b's anchor of a stops, and b's verify said intact,
    "anchored here", with nothing to tell an auditor that a's entries since are anchored
    nowhere. A peer not heard from for an hour is named in verify's warnings."""
    a, b = stores
    assert anchor_at_peer(a, b)["count"] == 10
    assert audit_anchor.verified(b)["warnings"] == []
    now = audit_anchor.time.time()
    monkeypatch.setattr(audit_anchor.time, "time", lambda: now + 2 * 3600)
    found = audit_anchor.verified(b)
    assert found["intact"] and len(found["warnings"]) == 1 and PEER in found["warnings"][0]
    anchor_at_peer(a, b)  # a's hello two hours on, nothing new: heard again
    assert audit_anchor.verified(b)["warnings"] == []


def test_a_hostile_peers_entry_cannot_fill_the_reason_its_anchor_broke(stores):
    """The reason an anchor broke quoted the peer's "seq" as it came: a string of 3 MB
    was kept in the anchor and printed by every `audit verify`, shown on the audit page
    and sent back in every answer to that peer."""
    _, b = stores
    found = audit_anchor.take(b, PEER, [1, "x"], [{"seq": "9" * 3_000_000}])
    assert found["broken"] and len(found["broken"]) < 1000
    assert len(json.dumps(audit_anchor.verified(b))) < 10_000


def test_a_peer_renamed_to_a_node_id_too_long_for_a_key_still_breaks_its_anchor(stores):
    """The peer at an address b's client reaches now proves a node id too long for an
    LMDB key (a certificate's CN is any string): moving the old anchor under it raised
    lmdb.BadValsizeError in b's client, ending it like any unexpected exception."""
    a, b = stores
    assert anchor_at_peer(a, b)["count"] == 10
    found = audit_anchor.renamed(b, PEER, "n" * 600, "a.example:8443")
    assert found["broken"]
    assert audit_anchor.verified(b)["intact"] is False


def test_a_mirror_client_outlives_whatever_a_hostile_peers_answers_raise(stores):
    """Any exception MirrorClient.run does not list (a hello answered with a JSON list:
    AttributeError on reply.get; a field of the wrong type: TypeError ...) ended the
    client's task for good, silently: the service gathers its clients only when it
    stops. Nothing was copied to that peer again, and its status kept its last state."""
    import contextlib
    import types
    a, _ = stores
    client = _FakeClient(a, [])
    client.trust = types.SimpleNamespace(context=None)
    calls = []

    @contextlib.asynccontextmanager
    async def session(context):
        yield None

    async def handshake(session):
        calls.append(1)
        if len(calls) == 2:
            stop.set()
        raise AttributeError("'list' object has no attribute 'get'")

    client._session, client._handshake = session, handshake

    async def run():
        nonlocal stop
        stop = asyncio.Event()
        await asyncio.wait_for(client.run(stop), 20)
    stop = None
    asyncio.run(run())
    assert len(calls) == 2
    assert client.status.state == "offline" and "list" in client.status.reason
