"""Attacks on the audit-log anchors of two mirrored appliances (processes in network
namespaces), by an admin with root on one of them and its data disk (not its firmware)."""
import json

import pytest

from services.archive.archive import Archive
from services.policy import audit
from tests.integration.mirror.test_mirror import pair  # noqa: F401 (a fixture)
from tests.integration.mirror_nodes import wait_until
from tests.unit.policy.test_audit_anchor import write_log

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def verified(node) -> dict:
    done = node.cli("audit", "verify", "--json", check=False)
    return json.loads(done.stdout) | {"exit": done.returncode}


def test_a_log_rewritten_under_a_new_node_id_is_reported_by_its_peer(pair):  # noqa: F811
    """The anchor is kept per node id, and a node id is whatever the store on the data
    disk says (setting node_id): a rewritten log under a new node id was paired with
    again and anchored afresh, from nothing, while the old node's anchor stayed, intact,
    never to move again. Both sides' verify said intact."""
    a, b = pair
    for n in range(3):
        a.cli("search", f"q{n}")
    a.start(), b.start()
    wait_until(lambda: any(p["count"] >= 3 for p in verified(b)["peers"].values()), 60,
               "b to anchor a's log")
    wait_until(lambda: b.peer_status(a)["node"], 60, "b to know a's node id")
    old_node = b.peer_status(a)["node"]
    a.stop()
    archive = Archive(a.data, 450)
    try:  # the searches never happened, and a is someone else
        write_log(archive.store, [e for e in audit.entries(archive.store)
                                  if not e["details"].get("query", "").startswith("q")])
        with archive.store.writing() as txn:
            txn.put(b"node_id", b"0123456789abcdef0123456789abcdef",
                    db=archive.store.db["settings"])
    finally:
        archive.close()
    assert a.cli("audit", "verify").returncode == 0  # a's own check sees nothing
    a.start()
    wait_until(lambda: b.peer_status(a)["node"] != old_node, 90, "b to meet a's new node id")
    a.cli("search", "after")  # a's log grows on: anchored at b under the new node id
    wait_until(lambda: verified(b)["exit"] == 1, 60, "b's verify to report a's log")
    assert any(p["broken"] for p in verified(b)["peers"].values())
    wait_until(lambda: a.peer_status(b)["audit_broken"], 60, "a's status to say so")


def test_plain_mirror_status_says_the_peer_found_the_log_rewritten(pair):  # noqa: F811
    """The README says the rewritten node's mirror status shows audit_broken: only its
    --json did; the plain status an admin reads said nothing of the audit log."""
    a, b = pair
    a.cli("search", "q0")
    a.start(), b.start()
    wait_until(lambda: a.peer_status(b)["audit_anchored"], 60, "b to anchor a's log")
    assert "audit log anchored there up to entry" in a.cli("mirror", "status", "--config",
                                                           a.config).stdout
    a.stop()
    archive = Archive(a.data, 450)
    try:
        write_log(archive.store, [])
    finally:
        archive.close()
    a.start()
    wait_until(lambda: a.peer_status(b)["audit_broken"], 60, "a's status to say so")
    shown = a.cli("mirror", "status", "--config", a.config).stdout
    assert "WARNING" in shown and "audit log was rewritten or cut" in shown, shown
