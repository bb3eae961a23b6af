"""Edits of a saved search that a litigation hold is built on, against a real store and
index: an edit never lets retention delete what the hold covers, whether it lands while a
run is deleting (the run checks again) or while mail is stored but not yet indexed."""
import pytest

from services.policy import editing, holds, retention
from tests.integration.policy.test_retention import (  # noqa: F401 (fixtures)
    ADMIN, DAY, archive, arrivals, index, lawyers_case_past_retention, message,
    put_and_index, remaining, run)

pytestmark = pytest.mark.integration


def test_widening_a_held_search_while_a_run_deletes_stops_that_runs_deletion(archive):
    """The batch was checked against the hold's old query ("from:lawyer"); the edit to
    "from:bob" lands before it is deleted, recording nothing new (the lawyer's mail was
    recorded at placement). The deletion must be checked again and keep "other"."""
    digests = lawyers_case_past_retention(archive)
    holds.add(archive.replicated, archive.index_dir(), "case", None, ADMIN)
    delete = archive.store.delete
    calls = []

    def edit_lands_first(batch, still_valid=None, also=None):
        if not calls:
            editing.save_search(archive.store, archive.index_dir(), "case", "from:bob",
                                ADMIN)
        calls.append(list(batch))
        return delete(batch, still_valid, also)

    archive.store.delete = edit_lands_first
    report = run(archive)
    assert len(calls) == 2 and digests["other"] in calls[0] and calls[1] == []
    assert remaining(archive, digests) == ["case", "other"]
    assert (report.deleted, report.held) == (0, 2)


def held_case_with_mail_not_yet_indexed(archive) -> dict[str, str]:
    """A hold on "case" (from:lawyer), placed with the lawyer's "case" indexed; then the
    lawyer's "late" stored, not indexed yet. Both are past retention."""
    digests = lawyers_case_past_retention(archive)
    holds.add(archive.replicated, archive.index_dir(), "case", None, ADMIN)
    digests["late"] = archive.store.put(message(3, "lawyer@x.com", "memo", 400 * DAY))
    return digests


def test_narrowing_a_held_search_keeps_what_it_matched_before_indexed_or_not(archive):
    digests = held_case_with_mail_not_yet_indexed(archive)
    editing.save_search(archive.store, archive.index_dir(), "case", "from:nobody", ADMIN)
    index(archive)
    unrelated = archive.store.put(message(4, "eve@x.com", "news", 1 * DAY))
    assert [e["query"] for e in archive.replicated.superseded()] == ["from:lawyer"]
    # the index is behind ("unrelated"), but has taken in all stored before the edit:
    # what the old query matched is recorded, then it is let go
    report = run(archive)
    assert remaining(archive, digests) == ["case", "late"] and report.deleted == 1
    assert archive.replicated.superseded() == []
    index(archive)
    report = run(archive)
    assert remaining(archive, digests) == ["case", "late"] and report.deleted == 0
    [hold_id] = holds.all_holds(archive.replicated)
    assert holds.is_recorded(archive.replicated, hold_id, digests["late"])
    assert unrelated in archive.store


def test_a_peers_narrowing_of_a_held_search_keeps_what_it_matched_here(archive, tmp_path):
    """The peer records what the old query matched in its own index, which lacks "late";
    its edit merged here must not let "late" go."""
    from services.archive.archive import Archive
    from services.policy.replicated import Replicated
    from services.policy import saved_searches
    digests = held_case_with_mail_not_yet_indexed(archive)
    peer = Archive(tmp_path / "peer", 450)
    try:
        peer_settings = Replicated(peer.store)
        peer_settings.merge(archive.replicated.export())
        saved_searches.save(peer_settings, "case", "from:nobody", ADMIN)
        archive.replicated.merge(peer_settings.export())
    finally:
        peer.close()
    assert archive.replicated.records_settled(archive.replicated.records_pending())
    index(archive)
    report = run(archive)
    assert remaining(archive, digests) == ["case", "late"] and report.deleted == 1
    assert archive.replicated.superseded() == []
