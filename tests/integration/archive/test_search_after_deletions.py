"""Searching a sharded index after deletions (retention), by every path that queries it.

Model 450 indexes in 2 shards. Its messages are numbered in turn across them, so a
retention run that deletes every 10th message leaves gaps in both shards' document ids.
Xapian 1.4.22 then failed any query read with BoolWeight (as every search was) on a word
every message has ("report", "bob", to:..., subject:...) once the word's posting list in
a shard spans more than one chunk (a few thousand documents): DatabaseCorruptError
"Unexpected end of posting list"; and, whatever the weighting, a negation of a negation
of such a word ("bob -(report -from:x)": what an AND_NOT excludes is read unweighted)
(tests/unit/archive/test_search_unranked.py shows the trigger in Xapian alone). Each path must answer as an index that never had deletions:
the same messages, in the same order.
"""
from __future__ import annotations

import json
import time

import pytest
import xapian

from services.archive import search_snapshot, shards
from services.archive.archive import Archive
from services.archive.extract import ExtractionPool
from services.archive.indexer import Indexer
from services.archive.search import SORTS, search
from services.appliance.users import User
from services.policy import holds, retention, saved_searches
from services.policy.audit import Actor
from services.policy.replicated import Replicated
from services.web import actions

pytestmark = pytest.mark.integration

ADMIN = Actor("root", "admin")
NOW = 1_800_000_000.0
COUNT = 3000  # 1,500 a shard: the posting list of a word in every message spans chunks
OLD = range(0, COUNT, 7)  # every 7th (odd and even numbers): gaps all along both shards
QUERIES = ["report", "quarterly", "bob", "to:bob@example.com", "subject:number",
           "from:u1@example.com", "", "report OR u7", "report -from:u1@example.com",
           # what a negation excludes is read unweighted, whatever the weighting
           "bob -(report -from:u1@example.com)", "-(quarterly -from:u1@example.com)",
           "report -(bob -(quarterly -from:u1@example.com))",
           "subject:number -(to:bob@example.com from:u2@example.com)"]
U1 = {"bob -(report -from:u1@example.com)", "-(quarterly -from:u1@example.com)",
      "from:u1@example.com"}


def message(n: int) -> bytes:
    # Each its own second: every sort's order is the same on any index of the same mail.
    age = 400 * 86400 if n in OLD else 86400
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(NOW - age - n))
    return (f"From: u{n % 50}@example.com\nTo: bob@example.com\nSubject: report number {n}"
            f"\nDate: {date}\nMessage-ID: <mix{n}@example.com>\n\nquarterly report {n}"
            f"{' padding' * (n % 7)}\n").encode()


def built(data_dir, numbers) -> tuple[Archive, dict[str, int]]:
    archive = Archive(data_dir, 450)
    archive.replicated = Replicated(archive.store)
    futures = {n: archive.store.put_future(message(n)) for n in numbers}
    digests = {future.result().digest: n for n, future in futures.items()}
    index(archive)
    return archive, digests


def index(archive: Archive) -> None:
    """Indexes what is new; a new index in 2 shards, as model 450's on 2 cores or more."""
    with ExtractionPool(archive.profile.attachment_text_bytes, workers=2) as pool, \
            Indexer(archive.store, archive.index_dir(), pool, shard_count=2) as indexer:
        indexer.catch_up()


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    """(the archive after a retention run deleted OLD, an archive of what is left that
    never deleted anything, the digests left -> numbers)."""
    root = tmp_path_factory.mktemp("deletions")
    pruned, digests = built(root / "pruned", range(COUNT))
    pruned.replicated.put(retention.ENABLED, True)
    retention.set_global(pruned.replicated, 365)
    report = retention.run(pruned.store, pruned.index_dir(), pruned.replicated, ADMIN,
                           now=NOW)
    assert report.deleted == len(OLD)
    index(pruned)
    left = {digest: n for digest, n in digests.items() if n not in OLD}
    assert pruned.store.counters()["messages"] == len(left)
    control, control_digests = built(root / "control", [n for n in range(COUNT) if n not in OLD])
    assert control_digests == left
    yield pruned, control, left
    pruned.close()
    control.close()


def expected(left: dict[str, int], query: str) -> set[str]:
    """What `query` (one of QUERIES) matches among the messages left."""
    def matches(n: int) -> bool:
        if query in U1:
            return n % 50 == 1
        if query == "report -(bob -(quarterly -from:u1@example.com))":
            return n % 50 != 1
        if query == "subject:number -(to:bob@example.com from:u2@example.com)":
            return n % 50 != 2
        if query == "report OR u7":
            return True
        if query == "report -from:u1@example.com":
            return n % 50 != 1
        return True
    return {digest for digest, n in left.items() if matches(n)}


def test_the_index_has_two_shards_with_gaps(archives):
    pruned, _, left = archives
    shard_dirs = shards.shard_dirs(pruned.index_dir())
    assert len(shard_dirs) == 2
    for shard in shard_dirs:
        database = xapian.Database(str(shard))
        assert database.get_doccount() < database.get_lastdocid()  # deletions left gaps
        assert database.get_termfreq("XBreport") == database.get_doccount()


@pytest.mark.parametrize("query", QUERIES)
def test_search_finds_what_is_left_in_the_order_of_an_index_without_deletions(archives,
                                                                             query):
    pruned, control, left = archives
    wanted = expected(left, query)
    results = search(pruned.index_dir(), query, limit=COUNT, now=NOW)
    assert results.total == len(wanted) and not results.more
    assert {hit.digest for hit in results.hits} == wanted
    assert [hit.digest for hit in results.hits] == \
        [hit.digest for hit in search(control.index_dir(), query, limit=COUNT, now=NOW).hits]


@pytest.mark.parametrize("sort", sorted(SORTS))
@pytest.mark.parametrize("descending", [None, True, False])
@pytest.mark.parametrize("query", ["report", "bob", "to:bob@example.com", ""])
def test_every_sort_and_page_is_that_of_an_index_without_deletions(archives, sort,
                                                                   descending, query):
    pruned, control, left = archives
    for offset in (0, 1200, len(left) - 30):
        options = dict(limit=60, offset=offset, sort=sort, descending=descending, now=NOW)
        got = search(pruned.index_dir(), query, **options)
        assert got.total == len(left)
        assert [hit.digest for hit in got.hits] == \
            [hit.digest for hit in search(control.index_dir(), query, **options).hits]
    counted = search(pruned.index_dir(), query, limit=0, sort=sort, now=NOW)  # a count only
    assert counted.total == len(left) and counted.hits == []


@pytest.mark.parametrize("role,emails", [("admin", ()), ("auditor", ()),
                                         ("user", ("bob@example.com",)),
                                         ("user", ("u3@example.com",))])
def test_the_web_and_api_search_of_each_kind_of_account(archives, role, emails):
    pruned, control, left = archives
    user = User("someone", role, emails, {})
    mine = set(left) if role != "user" or emails == ("bob@example.com",) else \
        {digest for digest, n in left.items() if n % 50 == 3}
    for query, sort in [("report", "date"), ("bob", "subject"), ("quarterly", "size"),
                        ("", "from")]:
        got = actions.search(pruned, user, query, 200, 0, False, "UTC", sort)
        assert got.total == len(mine), (query, sort)
        assert {hit.digest for hit in got.hits} <= mine
        assert [hit.digest for hit in got.hits] == [hit.digest for hit in actions.search(
            control, user, query, 200, 0, False, "UTC", sort).hits]


@pytest.mark.parametrize("query", ["report", "to:bob@example.com",
                                   "report -from:u1@example.com",
                                   "report -(bob -(quarterly -from:u1@example.com))"])
def test_export_takes_what_is_left(archives, query):
    pruned, control, left = archives
    wanted = expected(left, query)
    snapshot = search_snapshot.take(pruned.live_index_link(), query, now=NOW)
    assert len(snapshot) == len(wanted)
    digests = list(snapshot.digests())  # the first walk closes the index it held
    assert set(digests) == wanted and len(digests) == len(wanted)
    assert digests == list(search_snapshot.take(control.live_index_link(), query,
                                                now=NOW).digests())


def test_a_hold_by_query_records_what_is_left_and_retention_keeps_it(archives):
    pruned, _, left = archives
    saved_searches.save(pruned.replicated, "everything", "bob", ADMIN)
    found = set()
    for digests in saved_searches.matching_spans(pruned.index_dir(), "bob", "UTC"):
        found |= set(digests)
    assert found == set(left)
    hold = holds.add(pruned.replicated, pruned.index_dir(), "everything", None, ADMIN)
    assert set(holds.recorded(pruned.replicated, hold)) == set(left)
    # retention's own reading of the index: everything is held now
    retention.set_global(pruned.replicated, 1)
    report = retention.run(pruned.store, pruned.index_dir(), pruned.replicated, ADMIN,
                           dry_run=True, now=NOW + 10 * 365 * 86400)
    assert report.expired == len(left) and report.held == len(left) and report.deleted == 0
    # and a saved search's policy is judged by its matches
    holds.remove(pruned.replicated, hold, ADMIN)
    retention.set_saved(pruned.replicated, "everything", 100 * 365)
    report = retention.run(pruned.store, pruned.index_dir(), pruned.replicated, ADMIN,
                           dry_run=True, now=NOW + 10 * 365 * 86400)
    assert report.deleted == 0 and report.unusable_policies == {}
    retention.set_saved(pruned.replicated, "everything", None)
    retention.set_global(pruned.replicated, 365)


def test_the_cli_search_and_export(archives, archiver, tmp_path):
    pruned, _, left = archives
    data = pruned.data_dir
    for query in ("report", "to:bob@example.com", "subject:number"):
        for order in ([], ["--oldest-first"]):
            done = archiver("search", "--data", data, "--json", "--limit", "5", *order, query,
                            check=0)
            summary = json.loads(done.stdout.splitlines()[-1])["summary"]
            assert summary["total"] == len(left), (query, order)
    done = archiver("export", "--data", data, "--format", "mbox", "-o", tmp_path / "all.zip",
                    "--json", "quarterly", check=0)
    assert json.loads(done.stdout)["exported"] == len(left)
