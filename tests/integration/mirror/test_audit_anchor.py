"""Two mirrored appliances (processes in network namespaces) anchor each other's audit log
(services.policy.audit_anchor): searches on a reach b's anchor within a hello; a's whole
log rewritten on its disk while it is stopped, every hash recomputed so that a's own
`audit verify` passes, is reported by b's `audit verify` (exit 1) and in a's mirror status
once a is back, until an admin on b accepts a's log afresh."""
import json

import pytest

from services.archive.archive import Archive
from services.policy import audit
from tests.integration.mirror.test_mirror import pair  # noqa: F401 (a fixture)
from tests.integration.mirror_nodes import wait_until
from tests.unit.policy.test_audit_anchor import write_log

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def anchored(verifier, node) -> dict:
    """The anchor `verifier` holds of `node`'s log, from `audit verify --json`."""
    done = verifier.cli("audit", "verify", "--json", check=False)
    peers = json.loads(done.stdout)["peers"]
    return next(iter(peers.values()), {"count": 0, "broken": None}) | {"exit": done.returncode}


def test_a_log_rewritten_on_a_stopped_appliance_is_reported_by_its_peer(pair):  # noqa: F811
    a, b = pair
    for n in range(3):
        a.cli("search", f"q{n}")
    a.start(), b.start()
    wait_until(lambda: anchored(b, a)["count"] >= 3, 60, "b to anchor a's log")
    assert anchored(b, a)["exit"] == 0
    a.stop()
    archive = Archive(a.data, 450)
    try:  # the searches a made never happened, as far as a's own disk says
        write_log(archive.store, [e for e in audit.entries(archive.store)
                                  if not e["details"].get("query", "").startswith("q")])
    finally:
        archive.close()
    assert a.cli("audit", "verify").returncode == 0  # a's own check sees nothing
    a.start()
    wait_until(lambda: anchored(b, a)["broken"], 60, "b to see a's log rewritten")
    assert anchored(b, a)["exit"] == 1
    wait_until(lambda: a.peer_status(b)["audit_broken"], 60, "a's status to say so")
    b.cli("audit", "accept-peer", next(iter(json.loads(
        b.cli("audit", "verify", "--json", check=False).stdout)["peers"])))
    a.cli("search", "after the acceptance")
    wait_until(lambda: anchored(b, a)["exit"] == 0 and anchored(b, a)["count"] >= 1, 60,
               "b to anchor a's log afresh")
