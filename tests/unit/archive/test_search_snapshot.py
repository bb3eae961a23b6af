"""services.archive.search_snapshot's list of matches: runs of (date, document id) merged
newest first, ties in id order, kept in 12 bytes a match."""
import random

from services.archive.search_snapshot import AsOf, Snapshot


def test_runs_merge_into_newest_first_with_ties_in_document_id_order(tmp_path):
    rng = random.Random(5)
    snapshot, every, docid = Snapshot(tmp_path, AsOf(1, 0)), [], 0
    for _ in range(40):  # spans of ascending ids, each with its own matches
        span = []
        for _ in range(rng.choice([0, 1, 3, 50])):
            docid += rng.randrange(1, 4)
            span.append((float(rng.choice([-86400.5, 0.0, 1e9, 1.7e9, 1.7e9 + 0.25])),
                         docid))
        rng.shuffle(span)  # a span's matches come in any order
        snapshot.add_run(span)
        every += span
    assert len(snapshot) == len(every) > 100
    assert list(snapshot.document_ids()) == [
        docid for date, docid in sorted(every, key=lambda match: (-match[0], match[1]))]
    assert snapshot.nbytes() == 12 * len(every) + 8 * len(snapshot.runs)
    assert len(snapshot.runs) < 40  # a span without matches makes no run


def test_nothing_matched_lists_nothing(tmp_path):
    snapshot = Snapshot(tmp_path, AsOf(0, 0))
    snapshot.add_run([])
    assert len(snapshot) == 0 and list(snapshot.document_ids()) == []
