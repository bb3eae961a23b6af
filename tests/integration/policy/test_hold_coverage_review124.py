"""What hold_coverage shows held is what retention keeps (review 124, E): only mail still
stored is counted, and a query a held search had before an edit, not yet recorded here,
covers as it holds."""
import pytest

from services.policy import editing, hold_coverage, holds, saved_searches
from tests.integration.policy.test_retention import (  # noqa: F401
    ADMIN, DAY, archive, index, message, put_and_index, run)

pytestmark = pytest.mark.integration


def test_covers_counts_only_stored_mail_while_the_index_is_behind_on_deletions(archive):
    digests = put_and_index(archive, {f"m{i}": message(200 + i, "lawyer@x.com", "s", 400 * DAY)
                                      for i in range(5)})
    saved_searches.save(archive.replicated, "case", "from:lawyer", ADMIN)
    archive.store.delete([digests["m0"], digests["m1"], digests["m2"]])  # not indexed yet
    hold_id = holds.add(archive.replicated, archive.index_dir(), "case", None, ADMIN)
    hold = holds.all_holds(archive.replicated)[hold_id]
    assert hold["held_at_placement"] == 2
    assert hold_coverage.covered(archive.replicated, archive.index_dir(), hold_id, hold) == 2


def test_a_superseded_query_covers_what_it_holds(archive):
    put_and_index(archive, {"m": message(1, "bob@x.com", "s", 400 * DAY)})
    saved_searches.save(archive.replicated, "case", "from:lawyer", ADMIN)
    hold_id = holds.add(archive.replicated, archive.index_dir(), "case", None, ADMIN)
    late = archive.store.put(message(300, "lawyer@x.com", "late", 400 * DAY))
    editing.save_search(archive.store, archive.index_dir(), "case", "from:nobody", ADMIN)
    index(archive)  # not settled yet: held by the old query
    assert [entry["query"] for entry in archive.replicated.superseded()] == ["from:lawyer"]
    covering = hold_coverage.covering(archive.replicated, archive.index_dir(), late)
    assert [hold["id"] for hold in covering] == [hold_id]
    hold = holds.all_holds(archive.replicated)[hold_id]
    assert hold_coverage.covered(archive.replicated, archive.index_dir(), hold_id, hold) == 1
    assert late not in run(archive, dry_run=True).deleted_digests
