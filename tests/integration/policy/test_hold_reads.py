"""Litigation holds read the whole archive (placement, an edit of the held search, how many
messages a hold covers) in spans of document ids, each span on one revision, against a
real store and index while the live indexer commits between the spans."""
import time

import pytest
import xapian

from services.archive import compaction, index_walk, retired_index
from services.archive.store import Envelope
from services.policy import editing, hold_coverage, hold_records, holds, retention, saved_searches
from tests.integration.policy.test_retention import (  # noqa: F401 (archive: a fixture)
    ADMIN, DAY, LiveIntake, archive, index, live_indexer, message, put_and_index, remaining,
    run)

pytestmark = pytest.mark.integration
SPAN = 50


def case_mail(count: int) -> dict[str, bytes]:
    """`count` messages, old enough for any retention policy to delete: every other one
    from the lawyer about "legal" matters (named legalN), the others lunch (plainN), so
    that each span of SPAN document ids holds SPAN // 2 legal ones. Name -> raw."""
    return {(f"legal{n}" if n % 2 else f"plain{n}"):
            message(n, "lawyer@x.com" if n % 2 else "bob@x.com",
                    "legal matter" if n % 2 else "lunch", 400 * DAY) for n in range(count)}


def case_files(archive, count: int) -> dict[str, str]:
    """case_mail(count) stored and indexed: name -> digest."""
    return put_and_index(archive, case_mail(count))


class Redelivery:
    """The journal delivers messages already archived again, each to one more recipient,
    40 a commit: the live indexer rewrites their documents (under the same ids), `commits`
    commits each time it is called; `committed` counts them."""

    def __init__(self, archive, indexer, raws: list[bytes], commits: int):
        self.archive, self.indexer, self.raws, self.commits = archive, indexer, raws, commits
        self.committed = self.sent = 0

    def __call__(self) -> None:
        for _ in range(self.commits):
            for _ in range(40):
                self.sent += 1
                self.archive.store.put(self.raws[self.sent % len(self.raws)], Envelope(
                    recipients=[f"copy{self.sent}@example.com"]))
            self.committed += self.indexer.catch_up() > 0


def after_matches_read(monkeypatch, every: int, between) -> None:
    """Call between() each time the code has read `every` more matches of a search (each
    match's document read). The old reads read every match of a search on one revision;
    the chunked ones read a span's matches (SPAN // 2 here) on one, then the next span's
    on a newer one."""
    iterate, read = xapian.MSet.__iter__, [0]

    def matches(mset):
        for match in iterate(mset):
            yield match
            read[0] += 1
            if read[0] % every == 0:
                between()
    monkeypatch.setattr(xapian.MSet, "__iter__", matches)


def after_each_search(monkeypatch, between) -> None:
    """Call between() each time the code has run a search (Enquire.get_mset): the old count
    read its matches' documents after it, on the revision the indexer then discards; the
    chunked one reads nothing more of a span once its search has run."""
    get_mset_of = xapian.Enquire.get_mset

    def get_mset(enquire, *args):
        found = get_mset_of(enquire, *args)
        between()
        return found
    monkeypatch.setattr(xapian.Enquire, "get_mset", get_mset)


def test_placing_a_hold_records_every_match_while_the_indexer_commits_between_spans(
        archive, monkeypatch):
    """The indexer commits twice (a revision is discarded two commits on), rewriting
    documents being read, after each span's matches are read: each span reads one
    revision, so the hold records every match of its search, each read once. The old
    placement read all 150 on one revision, read them again on each discard, and gave
    up: xapian.DatabaseModifiedError."""
    monkeypatch.setattr(index_walk, "SPAN", SPAN)
    raws = case_mail(300)
    digests = put_and_index(archive, raws)
    saved_searches.save(archive.replicated, "case", "subject:legal", ADMIN)
    with live_indexer(archive) as indexer:
        journal = Redelivery(archive, indexer, list(raws.values()), commits=2)
        after_matches_read(monkeypatch, SPAN // 2, journal)
        hold_id = holds.add(archive.replicated, archive.index_dir(), "case", None, ADMIN)
    assert journal.committed == 2 * 6  # twice after each span's matches
    assert set(holds.recorded(archive.replicated, hold_id)) == {
        digest for name, digest in digests.items() if name.startswith("legal")}


def test_editing_a_held_search_records_its_matches_while_the_indexer_commits(
        archive, monkeypatch):
    """Before a held search changes, its holds record what it matches, read in spans while
    the indexer commits between them (the old record was one read, overtaken each time
    until it gave up). The edited search matches nothing, and retention still keeps
    every recorded message."""
    monkeypatch.setattr(index_walk, "SPAN", SPAN)
    raws = case_mail(200)
    digests = put_and_index(archive, raws)
    saved_searches.save(archive.replicated, "case", "subject:legal", ADMIN)
    hold_id = holds.add(archive.replicated, archive.index_dir(), "case", None, ADMIN)
    with archive.store.writing() as txn:  # as a hold placed before records
        hold_records.drop_in(archive.store, txn, hold_id)
    with live_indexer(archive) as indexer, monkeypatch.context() as patch:
        journal = Redelivery(archive, indexer, list(raws.values()), commits=2)
        after_matches_read(patch, SPAN // 2, journal)
        editing.save_search(archive.store, archive.index_dir(), "case", "subject:gone",
                            ADMIN)
    assert journal.committed == 2 * 4  # twice after each span's matches
    assert len(list(holds.recorded(archive.replicated, hold_id))) == 100
    archive.replicated.put(retention.ENABLED, True)
    retention.set_global(archive.replicated, 30)
    report = run(archive)
    assert (report.held, report.deleted) == (100, 100)
    assert remaining(archive, digests) == sorted(name for name in digests
                                                 if name.startswith("legal"))


def test_mail_indexed_while_a_hold_is_placed_is_recorded(archive, monkeypatch):
    """Mail stored and indexed after the placement's first span was read gets document ids
    above every one read so far: the walk goes on to the newest document, so it is
    recorded too (the old placement read one revision, before that mail was indexed)."""
    monkeypatch.setattr(index_walk, "SPAN", SPAN)
    digests = case_files(archive, 100)
    saved_searches.save(archive.replicated, "case", "subject:legal", ADMIN)
    late = {}

    def mail_arrives():
        if not late:
            late.update({f"late{n}": archive.store.put(message(
                500 + n, "lawyer@x.com", "legal matter", 400 * DAY)) for n in range(30)})
            index(archive)
    after_matches_read(monkeypatch, SPAN // 2, mail_arrives)
    hold_id = holds.add(archive.replicated, archive.index_dir(), "case", None, ADMIN)
    assert set(holds.recorded(archive.replicated, hold_id)) == {
        digest for name, digest in (digests | late).items() if not name.startswith("plain")}


def test_a_hold_counts_its_matches_and_records_once_while_the_indexer_commits(
        archive, monkeypatch):
    """How many messages a hold covers: what its search matches now and what it recorded,
    each message once, counted span by span while the indexer commits after each span's
    search. "case" recorded the lawyer's mail (170), its search now matches 150 of those;
    "wider" recorded the lunches (150), its search now matches the lawyer's mail; carol's
    30 neither. The old count read every match on one revision and was overtaken each
    time."""
    monkeypatch.setattr(index_walk, "SPAN", SPAN)
    case_files(archive, 300)
    put_and_index(archive, {
        **{f"memo{n}": message(900 + n, "lawyer@x.com", "memo", 400 * DAY) for n in range(20)},
        **{f"carol{n}": message(950 + n, "carol@x.com", "deal", 400 * DAY) for n in range(30)}})
    placed = {}
    for name, query, edited in (("case", "from:lawyer", "subject:legal"),
                                ("wider", "subject:lunch", "from:lawyer")):
        saved_searches.save(archive.replicated, name, query, ADMIN)
        hold_id = holds.add(archive.replicated, archive.index_dir(), name, None, ADMIN)
        editing.save_search(archive.store, archive.index_dir(), name, edited, ADMIN)
        placed[hold_id] = holds.all_holds(archive.replicated)[hold_id]
    assert [hold["held_at_placement"] for hold in placed.values()] == [170, 150]
    with live_indexer(archive) as indexer:
        intake = LiveIntake(archive, indexer, commits=2)
        after_each_search(monkeypatch, intake)
        counts = [hold_coverage.covered(archive.replicated, archive.index_dir(), hold_id, hold)
                  for hold_id, hold in placed.items()]
    assert counts == [170, 320]
    # the first count: 350 documents, 7 spans; the second begins after the first's intake
    # (7 * 80 messages no hold covers): 910, 19 spans
    assert intake.committed == 2 * (7 + 19)


def test_a_message_deleted_and_stored_again_during_a_count_is_counted_once(
        archive, monkeypatch):
    """A count ends at the highest document id it began with: a message counted, then
    deleted and stored again (a new document id) before the count ends, is not counted
    again under its new id; the next count finds it there."""
    monkeypatch.setattr(index_walk, "SPAN", SPAN)
    digests = case_files(archive, 200)
    saved_searches.save(archive.replicated, "case", "subject:legal", ADMIN)
    hold_id = holds.add(archive.replicated, archive.index_dir(), "case", None, ADMIN)
    hold = holds.all_holds(archive.replicated)[hold_id]
    searches = []

    def restored_after_its_span():
        searches.append(1)
        if len(searches) == 3:  # the third span, which holds legal149, was just counted
            raw = archive.store.get(digests["legal149"])
            archive.store.delete([digests["legal149"]])
            index(archive)
            archive.store.put(raw)
            index(archive)
    after_each_search(monkeypatch, restored_after_its_span)
    assert hold_coverage.covered(archive.replicated, archive.index_dir(), hold_id, hold) == 100
    assert archive.store.meta(digests["legal149"])["number"] == 201
    assert hold_coverage.covered(archive.replicated, archive.index_dir(), hold_id, hold) == 100


def test_a_count_across_a_switch_of_the_index_reads_the_index_it_began_in(
        archive, monkeypatch):
    """The index is switched to a compacted copy, and the clean-up comes past
    RETIRED_SECONDS, while a count reads the hold's recorded digests: the count holds the
    index it opened (services.archive.index_hold) and reads on in it; the index goes at
    the first clean-up after the count. An older count opened the old one again by its
    path for the search, found no index there, and counted 0."""
    monkeypatch.setattr(index_walk, "SPAN", SPAN)
    case_files(archive, 200)
    saved_searches.save(archive.replicated, "case", "subject:legal", ADMIN)
    hold_id = holds.add(archive.replicated, archive.index_dir(), "case", None, ADMIN)
    hold, index_dir = holds.all_holds(archive.replicated)[hold_id], archive.index_dir()
    recorded = holds.recorded

    def recorded_then_switched(replicated, hold_id):
        yield from recorded(replicated, hold_id)
        archive.swap_index(compaction.copy(archive, index_dir))
        assert clean_up() == []

    def clean_up():
        return compaction.remove_strays(
            archive, now=time.time() + retired_index.RETIRED_SECONDS)

    monkeypatch.setattr(holds, "recorded", recorded_then_switched)
    assert hold_coverage.covered(archive.replicated, index_dir, hold_id, hold) == 100
    assert clean_up() == [index_dir] and not index_dir.exists()
