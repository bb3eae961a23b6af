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
