"""Commands that only read an archive (and `retention run`) never make an empty one where a
mistyped --data points: they say "no archive in ..." and exit 2 (review 126, 1)."""
from __future__ import annotations

import json

import pytest

READING = [
    ["audit", "show", "--json"],
    ["audit", "verify", "--json"],
    ["hold", "list", "--json"],
    ["hold", "remove", "H1"],
    ["retention", "show", "--json"],
    ["retention", "run", "--dry-run", "--json"],
    ["retention", "run", "--json"],
    ["mirror", "status", "--json"],
    ["mirror", "leave", "--peer", "peer.example:7000"],
    ["mirror", "backfill", "--peer", "peer.example:7000"],
    ["user", "list", "--json"],
    ["user", "remove", "alice"],
    ["journal", "status", "--json"],
    ["audit", "accept-peer", "0123456789abcdef"],
    ["user", "passwd", "alice"],
]


@pytest.mark.parametrize("command", READING, ids=[" ".join(c[:2]) for c in READING])
def test_no_archive_is_made_nor_called_intact(archiver, tmp_path, command):
    typo = tmp_path / "dtaa"
    done = archiver(*command, "--data", typo)
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert f"no archive in {typo}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (typo / "store").exists()
    if "--json" in command:
        assert json.loads(done.stdout.splitlines()[-1])["exit_code"] == 2
