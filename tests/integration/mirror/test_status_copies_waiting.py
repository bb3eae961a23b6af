"""`archiver mirror status` (and --json) shows, per peer, how many of its copies retention
keeps here until an exchange of hold records with it settles them
(services.policy.peer_copies)."""
import json

import pytest

from services.archive.archive import Archive
from services.mirror import state
from services.policy import peer_copies

pytestmark = pytest.mark.integration

GREETED, SILENT = "10.0.0.2:8443", "10.0.0.3:8443"


def mail(n: int) -> bytes:
    return f"From: a@x.com\r\nSubject: {n}\r\nMessage-ID: <{n}@x.com>\r\n\r\n{n}\r\n".encode()


def test_status_shows_each_peers_copies_kept_for_it(tmp_path, archiver):
    (tmp_path / "a.eml").write_bytes(mail(0))
    data = tmp_path / "data"
    archiver("import", "--data", data, tmp_path / "a.eml", check=0)
    archive = Archive(data)
    try:
        store = archive.store
        store.set_setting(state.PEERS_KEY, [GREETED, SILENT])
        state.save_status(store, GREETED, state.PeerStatus(state="connected", reason="",
                                                            node="node-b"))
        for n in (1, 2, 3):
            store.put(mail(n), source="mirror:node-b", origin="node-b")
        peer_copies.settled_through(store, "node-b", store.last_number() - 2)
        store.put(mail(0), source="mirror:node-b", origin="node-b")  # b's copy of ours
    finally:
        archive.close()
    reports = {report["peer"]: report for report in map(json.loads, archiver(
        "mirror", "status", "--json", "--data", data, check=0).stdout.splitlines())}
    assert reports[GREETED]["copies_waiting"] == 3
    assert reports[SILENT]["copies_waiting"] is None  # its node id is not known yet
    shown = archiver("mirror", "status", "--data", data, check=0).stdout
    assert "its copies kept here for its holds: 3 (until an exchange" in shown
    assert "its copies kept here for its holds: not known" in shown
