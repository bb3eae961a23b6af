"""`archiver hold remove` names the hold the admin means: by id alone while the id names one
hold; once holds placed apart on mirror peers share it (a clash merged), by --created too,
and a hold that changed since `hold list` showed it is never removed in its place."""
import json
import time

import pytest

from services.archive.archive import Archive
from services.policy import hold_identity
from services.policy.replicated import Replicated

pytestmark = pytest.mark.integration
HOLD = "1a2b3c4d"


def clash(data) -> str:
    """Our hold HOLD (created 1000) and a peer's merged over it (created 2000): ours moves;
    its new id."""
    opened = Archive(data, 450)
    try:
        replicated = Replicated(opened.store)
        replicated.put("hold:" + HOLD, {"saved": "case", "until": None, "by": "t",
                                        "created": 1000.0})
        replicated.merge({"hold:" + HOLD: {
            "value": {"saved": "case", "until": None, "by": "peer", "created": 2000.0},
            "deleted": False, "stamp": [int(time.time() * 1000) + 60_000, 0, "peer"]}})
    finally:
        opened.close()
    return hold_identity.moved_key("hold:" + HOLD, {"value": {"created": 1000.0}})[5:]


def listed(archiver, data) -> dict:
    out = archiver("hold", "list", "--json", "--data", data, check=0).stdout
    return {hold["id"]: hold["created"] for hold in map(json.loads, out.splitlines())}


def test_the_cli_removes_a_clashed_hold_only_when_told_which(archiver, tmp_path):
    data = tmp_path / "data"
    moved = clash(data)
    text = archiver("hold", "list", "--data", data, check=0).stdout
    assert f"{HOLD}  case" in text and "created 2000.0" in text and "created 1000.0" in text
    unstated = archiver("hold", "remove", HOLD, "--data", data, check=2)
    assert f"hold {HOLD} shares its id" in unstated.stderr and moved in unstated.stderr
    assert "(1000.0)" in unstated.stderr and "(2000.0)" in unstated.stderr
    stale = archiver("hold", "remove", HOLD, "--created", "1000.0", "--data", data, check=2)
    assert f"hold {HOLD} changed since it was shown" in stale.stderr
    assert f"now hold {moved}" in stale.stderr
    bad = archiver("hold", "remove", HOLD, "--created", "soon", "--data", data, check=2)
    assert "expected the hold's created time" in bad.stderr
    assert listed(archiver, data) == {HOLD: 2000.0, moved: 1000.0}
    done = archiver("hold", "remove", moved, "--created", "1000.0", "--data", data, check=0)
    assert done.stdout.strip() == f"removed hold {moved}"
    assert listed(archiver, data) == {HOLD: 2000.0}
    archiver("hold", "remove", HOLD, "--data", data, check=0)  # alone again: by id
    assert listed(archiver, data) == {}
