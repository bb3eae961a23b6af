"""A hold placed while the index is behind: it records only mail still in the store (an
index behind keeps documents of mail deleted since), and the CLI says the index is behind,
as a search does."""
import json
import time

import pytest

from services.archive.archive import Archive
from services.policy import holds

pytestmark = pytest.mark.integration


def lawyers_mail(count: int) -> dict[str, bytes]:
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(time.time() - 86400))
    return {f"m{n}": (f"From: lawyer@x.com\nTo: bob@example.com\nSubject: memo {n}\n"
                      f"Date: {date}\nMessage-ID: <stale{n}@example.com>\n\nbody {n}\n"
                      ).encode() for n in range(count)}


def test_a_hold_placed_on_an_index_behind_counts_only_stored_mail_and_says_so(
        archiver, tmp_path):
    folder, data = tmp_path / "mail", tmp_path / "data"
    folder.mkdir()
    for name, raw in lawyers_mail(3).items():
        (folder / f"{name}.eml").write_bytes(raw)
    archiver("import", "--data", data, "--json", folder, check=0)
    archiver("search", "--save", "case", "from:lawyer", "--data", data, check=0)
    opened = Archive(data, 450)
    try:  # deleted from the store; the index has not taken the deletion in yet
        gone = sorted(opened.store.digests())[0]
        opened.store.delete([gone])
        assert holds.index_notice(opened.store, opened.index_dir()) is not None
    finally:
        opened.close()
    placed = archiver("hold", "add", "--saved", "case", "--data", data, check=0)
    assert "archiver: note: 1 change to the archive" in placed.stderr
    assert "not indexed yet" in placed.stderr
    hold_id = placed.stdout.strip()
    listed = [json.loads(line) for line in archiver("hold", "list", "--json", "--data", data,
                                                    check=0).stdout.splitlines()]
    assert [(hold["id"], hold["held_at_placement"]) for hold in listed] == [(hold_id, 2)]
    opened = Archive(data, 450)
    try:
        from services.policy.replicated import Replicated
        assert gone not in set(holds.recorded(Replicated(opened.store), hold_id))
    finally:
        opened.close()
