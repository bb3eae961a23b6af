"""`archiver status` prints what a mirror peer answered (its state's reason, its last
error) as one line each, as `archiver mirror status` does: a line break or a terminal's
controls in them forged status lines ("holds: 0 in force") or erased the lines above."""
import pytest

from services.archive.archive import Archive
from services.mirror import state

pytestmark = pytest.mark.integration

PEER = "https://peer.example:8443"


def test_a_peers_words_stay_on_its_line(tmp_path, archiver):
    (tmp_path / "a.eml").write_bytes(b"From: a@example.com\nTo: b@example.com\n"
                                     b"Subject: s\n\nbody\n")
    data = tmp_path / "data"
    archiver("import", "--data", data, tmp_path / "a.eml", check=0)
    archive = Archive(data)
    try:
        archive.store.set_setting(state.PEERS_KEY, [PEER])
        state.save_status(archive.store, PEER, state.PeerStatus(
            state="refused", reason="ok\nholds: 0 in force\x1b[2K",
            last_error="x\r\u202eforged"))
    finally:
        archive.close()
    shown = archiver("status", "--data", data, check=0).stdout
    peer_lines = [line for line in shown.splitlines() if PEER in line]
    assert len(peer_lines) == 1 and "\\nholds: 0 in force\\x1b[2K" in peer_lines[0]
    assert "x\\r\\u202eforged" in peer_lines[0]
    assert [line for line in shown.splitlines() if line.startswith("holds:")] == \
        ["holds: 0 in force"]
    assert "\x1b" not in shown and "\r" not in shown and "\u202e" not in shown
