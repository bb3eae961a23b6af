"""Retention policies and litigation holds against a real store and index."""
import json
import os
import signal
import subprocess
import time

import pytest

from services.policy import audit, holds, peer_copies, retention, saved_searches
from services.archive import store as store_module
from services.archive.archive import Archive
from services.policy.audit import Actor
from services.archive.extract import ExtractionPool
from services.archive.indexer import Indexer
from services.policy.replicated import Replicated
from tests.module_clock import ModuleClock

pytestmark = pytest.mark.integration

ADMIN, AUDITOR = Actor("root", "admin"), Actor("ann", "auditor")
DAY = 86400
NOW = 1_800_000_000.0  # a fixed "now" keeps the boundaries exact


def message(n: int, sender: str, subject: str, age_seconds: float | None) -> bytes:
    date = ""
    if age_seconds is not None:
        date = "Date: " + time.strftime("%a, %d %b %Y %H:%M:%S +0000",
                                        time.gmtime(NOW - age_seconds)) + "\n"
    return (f"From: {sender}\nTo: bob@example.com\nSubject: {subject}\n{date}"
            f"Message-ID: <ret{n}@example.com>\n\nbody {n}\n").encode()


@pytest.fixture(autouse=True)
def arrivals(monkeypatch) -> ModuleClock:
    """Mail stored in a test arrives at NOW, the "now" its dates are written from: live
    mail counts from its arrival and imported mail never from after it (retention_clock),
    so an arrival at the real time would decide instead of the dates under test."""
    clock = ModuleClock(NOW)
    monkeypatch.setattr(store_module, "time", clock)
    return clock


@pytest.fixture
def archive(tmp_path):
    opened = Archive(tmp_path / "data", 450)
    opened.replicated = Replicated(opened.store)
    yield opened
    opened.close()


def put_and_index(archive, raws: dict) -> dict:
    digests = {name: archive.store.put(raw) for name, raw in raws.items()}
    index(archive)
    return digests


def index(archive):
    with ExtractionPool(archive.profile.attachment_text_bytes) as pool, \
            Indexer(archive.store, archive.index_dir(), pool) as indexer:
        indexer.catch_up()


def run(archive, dry_run=False):
    return retention.run(archive.store, archive.index_dir(), archive.replicated, ADMIN,
                         dry_run=dry_run, now=NOW)


def remaining(archive, digests):
    return sorted(name for name, digest in digests.items() if digest in archive.store)


def test_retention_is_off_until_enabled_and_dry_run_deletes_nothing(archive):
    digests = put_and_index(archive, {"old": message(1, "a@x.com", "old", 400 * DAY)})
    retention.set_global(archive.replicated, 30)
    assert run(archive).deleted == 0
    report = run(archive, dry_run=True)
    assert report.deleted == 1 and report.deleted_digests == [digests["old"]]
    assert remaining(archive, digests) == ["old"]


def test_boundary_a_message_is_kept_exactly_n_days(archive):
    digests = put_and_index(archive, {
        "just-young": message(1, "a@x.com", "a", 30 * DAY - 1),
        "exactly": message(2, "a@x.com", "b", 30 * DAY),
        "just-old": message(3, "a@x.com", "c", 30 * DAY + 1)})
    archive.replicated.put(retention.ENABLED, True)
    retention.set_global(archive.replicated, 30)
    assert run(archive).deleted == 2
    assert remaining(archive, digests) == ["just-young"]


def test_no_date_header_counts_from_the_received_time(archive):
    digests = put_and_index(archive, {"undated": message(1, "a@x.com", "a", None)})
    received = archive.store.meta(digests["undated"])["received"]
    archive.replicated.put(retention.ENABLED, True)
    retention.set_global(archive.replicated, 1)
    for now, deleted in ((received + DAY - 1, 0), (received + DAY + 1, 1)):
        report = retention.run(archive.store, archive.index_dir(), archive.replicated, ADMIN,
                               now=now)
        assert report.deleted == deleted


SENDER_DATES = {"1971": "Sat, 02 Jan 1971 00:00:00 +0000",
                "2199": "Wed, 01 Jan 2199 00:00:00 +0000"}


def dated(n: int, date: str) -> bytes:
    return (f"From: insider@x.com\nTo: bob@example.com\nSubject: dated {n}\nDate: {date}\n"
            f"Message-ID: <dated{n}@example.com>\n\nbody {n}\n").encode()


def put_from(archive, source: str, raws: dict, origin_received=None) -> dict:
    digests = {name: archive.store.put(raw, None, source, None, None, origin_received)
               for name, raw in raws.items()}
    index(archive)
    return digests


def expiring(archive, now: float, days: int = 30) -> list[str]:
    """The digests a run at `now` under a global policy of `days` would delete."""
    archive.replicated.put(retention.ENABLED, True)
    retention.set_global(archive.replicated, days)
    return retention.run(archive.store, archive.index_dir(), archive.replicated, ADMIN,
                         dry_run=True, now=now).deleted_digests


@pytest.mark.parametrize("source", ["smtp", "journal:ops"])
def test_mail_received_live_counts_from_its_arrival_never_from_the_date_its_sender_wrote(
        archive, source):
    """A sender dating their mail 1971 must not have it deleted at the next run, nor one
    dating it 2199 have it kept forever: live mail arrived at NOW counts from NOW."""
    digests = put_from(archive, source, {year: dated(n, date)
                                         for n, (year, date) in enumerate(SENDER_DATES.items())})
    assert expiring(archive, NOW) == []
    assert expiring(archive, NOW + 30 * DAY - 1) == []
    assert sorted(expiring(archive, NOW + 30 * DAY)) == sorted(digests.values())
    assert run(archive).deleted == 0 and remaining(archive, digests) == ["1971", "2199"]


def test_imported_mail_counts_from_its_date_but_never_from_after_its_import(archive):
    """A migration's mail of long ago expires by its dates; a Date after the import (2199)
    counts from the import, so it cannot keep its message forever."""
    digests = put_from(archive, "import", {"old": message(1, "a@x.com", "old", 400 * DAY),
                                           "2199": dated(2, SENDER_DATES["2199"])})
    assert expiring(archive, NOW) == [digests["old"]]
    assert expiring(archive, NOW + 30 * DAY - 1) == [digests["old"]]
    assert sorted(expiring(archive, NOW + 30 * DAY)) == sorted(digests.values())
    assert run(archive).deleted == 1 and remaining(archive, digests) == ["2199"]


def test_a_mirror_copy_counts_from_its_origins_arrival_and_without_one_by_its_date(
        archive, arrivals):
    """A copy arrives here later than at its origin (a backlog drained after an outage):
    it expires with the origin's when the origin sent its live arrival; a copy stored by
    firmware that did not send one (nor had an origin that received it live) counts as
    imported mail does."""
    copied = put_from(archive, "mirror:node-b", {"live": dated(1, SENDER_DATES["2199"])},
                      origin_received=NOW - 31 * DAY)
    arrivals.now = NOW - 10 * DAY
    unsent = put_from(archive, "mirror:node-b", {
        "old-copy": message(2, "a@x.com", "o", 40 * DAY), "2199": dated(3, SENDER_DATES["2199"])})
    # node-b's holds recorded all they hold of its copies, and that reached here
    peer_copies.settled_through(archive.store, "node-b", archive.store.last_number())
    assert sorted(expiring(archive, NOW)) == sorted([copied["live"], unsent["old-copy"]])
    assert sorted(expiring(archive, NOW + 20 * DAY - 1)) == sorted(expiring(archive, NOW))
    assert sorted(expiring(archive, NOW + 20 * DAY)) == sorted([*copied.values(),
                                                                *unsent.values()])


def test_a_mirror_copy_is_kept_until_its_peers_holds_are_known_to_be_recorded_here(
        archive):
    """A copy of expired mail from a peer that may still hold it by a saved search's old
    query, not recorded yet (services.policy.peer_copies), is kept; once an exchange of
    hold records after it said the peer holds none, it expires as any copy does. Mail
    stored here otherwise does not wait for a peer."""
    digests = {**put_from(archive, "mirror:node-b", {"copy": message(1, "a@x.com", "o",
                                                                      40 * DAY)}),
               **put_from(archive, "import", {"imported": message(2, "a@x.com", "o",
                                                                  40 * DAY)})}
    assert expiring(archive, NOW) == [digests["imported"]]
    peer_copies.settled_through(archive.store, "node-c", archive.store.last_number())
    assert expiring(archive, NOW) == [digests["imported"]]  # another peer's settling
    peer_copies.settled_through(archive.store, "node-b", archive.store.last_number())
    assert sorted(expiring(archive, NOW)) == sorted(digests.values())


def test_a_peers_copy_of_mail_already_stored_here_is_kept_until_its_peers_holds_are_known(
        archive):
    """The same expired message imported here first, then copied by node-b (which may
    hold it by an old query it has not settled): the copy is kept as a copy new here is,
    until an exchange with node-b begun after it; so is one first copied from node-c."""
    digests = {**put_from(archive, "import", {"imported": message(1, "a@x.com", "o",
                                                                  40 * DAY)}),
               **put_from(archive, "mirror:node-c", {"from-c": message(2, "a@x.com", "o",
                                                                       40 * DAY)})}
    peer_copies.settled_through(archive.store, "node-c", archive.store.last_number())
    before = archive.store.last_number()
    assert sorted(expiring(archive, NOW)) == sorted(digests.values())
    put_from(archive, "mirror:node-b", {"imported": message(1, "a@x.com", "o", 40 * DAY),
                                        "from-c": message(2, "a@x.com", "o", 40 * DAY)})
    assert expiring(archive, NOW) == []
    peer_copies.settled_through(archive.store, "node-b", before)  # begun before the copies
    assert expiring(archive, NOW) == []
    peer_copies.settled_through(archive.store, "node-b", archive.store.last_number())
    assert sorted(expiring(archive, NOW)) == sorted(digests.values())


def test_the_report_says_which_peers_copies_are_kept_for_and_how_many(archive):
    """An admin reading a run's report must be told why expired mail no hold lists was
    kept: copies waiting for their mirror peer's holds to be known here, by peer. A copy a
    hold keeps anyway is the hold's, not the peer's."""
    retention.set_global(archive.replicated, 30)
    archive.replicated.put(retention.ENABLED, True)
    digests = put_from(archive, "mirror:node-b", {
        "copy": message(1, "a@x.com", "o", 40 * DAY),
        "held": message(2, "lawyer@x.com", "o", 40 * DAY)})
    saved_searches.save(archive.replicated, "case", "from:lawyer", ADMIN)
    holds.add(archive.replicated, archive.index_dir(), "case", None, ADMIN)
    for dry_run in (True, False):
        report = run(archive, dry_run=dry_run)
        assert (report.deleted, report.held) == (0, 2)
        assert report.kept_for_peers == {"node-b": 1}
    assert remaining(archive, digests) == ["copy", "held"]


def test_a_peers_copy_of_a_doomed_message_arriving_while_a_batch_is_checked_keeps_it(
        archive, monkeypatch):
    """node-b's copy of an expired message stored here arrives after the run checked its
    batch against the holds, before the deletion: the message is now node-b's copy too,
    which node-b may hold by an old query not settled there, and is kept."""
    digests = put_from(archive, "import", {"imported": message(1, "a@x.com", "o", 40 * DAY)})
    checked = peer_copies.awaiting_by_peer

    def copy_arrives_after_the_check(*args):
        found = checked(*args)
        archive.store.put(message(1, "a@x.com", "o", 40 * DAY), None, "mirror:node-b")
        return found
    monkeypatch.setattr(peer_copies, "awaiting_by_peer", copy_arrives_after_the_check)
    retention.set_global(archive.replicated, 30)
    archive.replicated.put(retention.ENABLED, True)
    run(archive)
    assert remaining(archive, digests) == ["imported"]


def test_saved_search_policies_override_the_global_one_and_the_longest_wins(archive):
    digests = put_and_index(archive, {
        "newsletter": message(1, "news@x.com", "weekly newsletter", 45 * DAY),
        "legal-newsletter": message(2, "news@x.com", "legal newsletter", 45 * DAY),
        "plain": message(3, "bob@x.com", "lunch", 45 * DAY),
        "ancient": message(4, "bob@x.com", "lunch", 4000 * DAY)})
    saved_searches.save(archive.replicated, "news", "subject:newsletter", ADMIN)
    saved_searches.save(archive.replicated, "legal", "subject:legal", ADMIN)
    archive.replicated.put(retention.ENABLED, True)
    retention.set_global(archive.replicated, 3650)
    retention.set_saved(archive.replicated, "news", 30)
    retention.set_saved(archive.replicated, "legal", 60)
    report = run(archive)
    assert report.deleted == 2
    assert remaining(archive, digests) == ["legal-newsletter", "plain"]


def lawyers_case_past_retention(archive) -> dict[str, str]:
    """Two messages 400 days old under a 30-day global retention: "case" (from the lawyer,
    found by the saved search "case") and "other". Returns name -> digest."""
    digests = put_and_index(archive, {
        "case": message(1, "lawyer@x.com", "contract", 400 * DAY),
        "other": message(2, "bob@x.com", "lunch", 400 * DAY)})
    saved_searches.save(archive.replicated, "case", "from:lawyer", ADMIN)
    archive.replicated.put(retention.ENABLED, True)
    retention.set_global(archive.replicated, 30)
    return digests


def test_holds_override_every_policy_until_they_expire(archive):
    digests = lawyers_case_past_retention(archive)
    today = time.strftime("%Y-%m-%d", time.gmtime(NOW))
    import datetime as dt
    holds.add(archive.replicated, archive.index_dir(), "case", dt.date.fromisoformat(today), ADMIN)
    report = run(archive)
    assert (report.deleted, report.held) == (1, 1) and remaining(archive, digests) == ["case"]
    later = retention.run(archive.store, archive.index_dir(), archive.replicated, ADMIN,
                          now=NOW + DAY)  # the hold ran through yesterday
    assert later.deleted == 1 and remaining(archive, digests) == []


def test_a_hold_on_dates_covers_the_days_of_the_appliance_time_zone(archive):
    """A hold's search is run as the search the user saw: days in the appliance's time
    zone. 00:30 on New Year's Day in Berlin is still the old year in UTC."""
    raw = (b"From: a@x.com\nTo: b@x.com\nSubject: new year\n"
           b"Date: Sun, 01 Jan 2023 00:30:00 +0100\nMessage-ID: <ny@x.com>\n\nbody\n")
    digests = put_and_index(archive, {"new-year": raw})
    saved_searches.save(archive.replicated, "year", "date:2023", ADMIN)
    archive.replicated.put(retention.ENABLED, True)
    retention.set_global(archive.replicated, 30)
    holds.add(archive.replicated, archive.index_dir(), "year", None, ADMIN)
    berlin = retention.run(archive.store, archive.index_dir(), archive.replicated, ADMIN,
                           dry_run=True, now=NOW, timezone="Europe/Berlin")
    assert (berlin.deleted, berlin.held) == (0, 1)
    utc = retention.run(archive.store, archive.index_dir(), archive.replicated, ADMIN,
                        dry_run=True, now=NOW)
    assert (utc.deleted, utc.held) == (1, 0)
    assert remaining(archive, digests) == ["new-year"]


def test_a_hold_added_while_a_run_is_going_still_protects_its_mail(archive):
    digests = lawyers_case_past_retention(archive)
    delete = archive.store.delete
    calls = []

    def hold_arrives_first(batch, still_valid=None, also=None):
        if not calls:  # the batch was chosen without a hold; one lands before it is deleted
            holds.add(archive.replicated, archive.index_dir(), "case", None, ADMIN)
        calls.append(list(batch))
        return delete(batch, still_valid, also)

    archive.store.delete = hold_arrives_first
    report = run(archive)
    assert len(calls) == 2 and digests["case"] in calls[0] and digests["case"] not in calls[1]
    assert remaining(archive, digests) == ["case"] and report.held == 1


def test_deleted_mail_leaves_store_index_and_counters_consistent(archive):
    digests = put_and_index(archive, {f"m{n}": message(n, "a@x.com", "x", 400 * DAY)
                                      for n in range(10)})
    archive.replicated.put(retention.ENABLED, True)
    retention.set_global(archive.replicated, 30)
    assert run(archive).deleted == 10
    index(archive)
    import xapian
    assert xapian.Database(str(archive.index_dir())).get_doccount() == 0
    assert archive.store.counters()["messages"] == 0 and archive.store.counters()["raw_bytes"] == 0
    assert archive.store.verify() == []


def test_sigkill_mid_deletion_leaves_a_consistent_archive(tmp_path):
    from tests.conftest import ARCHIVER
    data = tmp_path / "data"
    folder = tmp_path / "old"
    folder.mkdir()
    for n in range(3000):
        (folder / f"{n}.eml").write_bytes(message(n, "a@x.com", "old", 400 * DAY))
    cli = lambda *a: subprocess.run([str(ARCHIVER), *map(str, a), "--data", str(data)],
                                    capture_output=True, text=True, timeout=600)
    assert cli("import", "--json", folder).returncode == 0
    cli("retention", "enable"), cli("retention", "set", "--global-days", "30")
    for delay in (0.3, 0.6, 0.9):
        runner = subprocess.Popen([str(ARCHIVER), "retention", "run", "--data", str(data)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        time.sleep(delay)
        os.killpg(runner.pid, signal.SIGKILL)
        runner.wait()
        verify = cli("verify", "--json")
        assert verify.returncode == 0, verify.stdout
        stats = json.loads(cli("stats", "--json").stdout)
        assert 0 <= stats["stored"] <= 3000
    assert cli("retention", "run").returncode == 0
    stats = json.loads(cli("stats", "--json").stdout)
    assert (stats["stored"], stats["indexed"], stats["pending"]) == (0, 0, 0)
    assert json.loads(cli("audit", "verify", "--json").stdout)["intact"]


def test_archiver_run_schedules_retention_weekly(archive):
    digests = put_and_index(archive, {"old": message(1, "a@x.com", "old", 400 * DAY)})
    archive.replicated.put(retention.ENABLED, True)
    retention.set_global(archive.replicated, 30)
    first = retention.run_if_due(archive.store, archive.index_dir(), archive.replicated)
    assert first.deleted == 1 and remaining(archive, digests) == []
    assert retention.run_if_due(archive.store, archive.index_dir(), archive.replicated) is None
    later = time.time() + retention.WEEK + 1
    assert retention.run_if_due(archive.store, archive.index_dir(), archive.replicated,
                                now=later) is not None
    import threading
    stop = threading.Event()
    stop.set()  # one check, then stop
    retention.run_weekly(archive.store, archive.index_dir, archive.replicated, stop)


def test_editing_a_held_search_widens_the_hold_and_never_shrinks_it(archive):
    """What the hold's search matched at placement, and what it matched just before each
    edit (mail that arrived meanwhile), stays held; the edit's new matches are held too."""
    from services.policy import editing
    from services.policy.audit import PermissionDenied
    digests = put_and_index(archive, {
        "placed": message(1, "lawyer@x.com", "contract", 400 * DAY),
        "other": message(2, "bob@x.com", "lunch", 400 * DAY)})
    editing.save_search(archive.store, archive.index_dir(), "case", "from:lawyer", AUDITOR)
    holds.add(archive.replicated, archive.index_dir(), "case", None, AUDITOR)
    digests |= put_and_index(archive, {"later": message(3, "lawyer@x.com", "memo", 400 * DAY),
                                       "widened": message(4, "carol@x.com", "deal", 400 * DAY)})
    with pytest.raises(PermissionDenied, match="only an admin may change it"):
        editing.save_search(archive.store, archive.index_dir(), "case", "from:nobody", AUDITOR)
    editing.save_search(archive.store, archive.index_dir(), "case", "from:carol", ADMIN)
    archive.replicated.put(retention.ENABLED, True)
    retention.set_global(archive.replicated, 30)
    report = run(archive)
    assert remaining(archive, digests) == ["later", "placed", "widened"] and report.deleted == 1
    [hold] = holds.all_holds(archive.replicated).values()
    assert hold["held_at_placement"] == 2
    change = [e for e in audit.entries(archive.store) if e["action"] == "saved-search"][-1]
    assert change["details"]["old_query"] == "from:lawyer"
    assert change["details"]["query"] == "from:carol"
    assert change["details"]["newly_recorded_by_holds"] == 1


def test_holds_recorded_by_a_peer_before_records_existed_still_hold_by_query(archive):
    digests = put_and_index(archive, {"case": message(1, "lawyer@x.com", "contract", 400 * DAY)})
    saved_searches.save(archive.replicated, "case", "from:lawyer", ADMIN)
    archive.replicated.put("hold:0ld", {"saved": "case", "until": None, "by": "peer"})
    archive.replicated.put(retention.ENABLED, True)
    retention.set_global(archive.replicated, 30)
    assert run(archive).deleted == 0 and remaining(archive, digests) == ["case"]
    assert holds.all_holds(archive.replicated)["0ld"]["held_at_placement"] == 0



def between_walked(archive, every: int, between) -> None:
    """Call `between()` each `every` stored messages the run walks (Store.digests): the old
    run read the index all along that walk, the chunked one reads between its steps."""
    walk = archive.store.digests

    def digests():
        for walked, digest in enumerate(walk()):
            if walked and walked % every == 0:
                between()
            yield digest
    archive.store.digests = digests


class LiveIntake:
    """The live indexer: new mail (young: no policy deletes it) stored and indexed by a
    real Indexer, `commits` commits each time it is called."""

    def __init__(self, archive, indexer, commits: int):
        self.archive, self.indexer, self.commits = archive, indexer, commits
        self.committed = self.sent = 0

    def __call__(self) -> None:
        for _ in range(self.commits):
            for _ in range(40):
                self.sent += 1
                self.archive.store.put(message(100_000 + self.sent, "new@x.com", "fresh", DAY))
            self.committed += self.indexer.catch_up() > 0


def live_indexer(archive):
    return Indexer(archive.store, archive.index_dir(),
                   ExtractionPool(archive.profile.attachment_text_bytes))


def test_a_run_overtaken_by_the_live_indexer_between_chunks_completes(archive, monkeypatch):
    """The indexer commits twice (a revision is discarded two commits on) before each chunk
    of the run: each chunk reads one revision, so none is read again, and the decision is
    the one an undisturbed run makes. The old run read the whole walk on one revision, read
    it again on each discard, and gave up: xapian.DatabaseModifiedError."""
    monkeypatch.setattr(retention, "CHUNK", 60)
    legal = {f"legal{n}": message(n, "lawyer@x.com", "legal matter", 400 * DAY)
             for n in range(100)}
    plain = {f"plain{n}": message(1000 + n, "bob@x.com", "lunch", 400 * DAY) for n in range(200)}
    digests = put_and_index(archive, legal | plain)
    saved_searches.save(archive.replicated, "legal", "subject:legal", ADMIN)
    archive.replicated.put(retention.ENABLED, True)
    retention.set_global(archive.replicated, 30)
    retention.set_saved(archive.replicated, "legal", 3650)
    with live_indexer(archive) as indexer:
        intake = LiveIntake(archive, indexer, commits=2)
        between_walked(archive, 60, intake)
        report = run(archive)
    assert intake.committed == 2 * 4  # twice before each chunk after the first
    assert (report.examined, report.not_indexed, report.expired, report.deleted,
            report.held) == (300, 0, 200, 200, 0)
    assert remaining(archive, digests) == sorted(legal)
    assert archive.store.counters()["messages"] == 100 + intake.sent


def test_mail_indexed_between_chunks_is_judged_by_its_saved_search_never_early(
        archive, monkeypatch):
    """Mail stored before the run and indexed during it, with a saved search keeping it
    ten years where the global policy keeps 30 days: its chunk tells whether it is indexed
    and what matches it from one revision, so it is either not yet indexed (left alone)
    or kept by its search; never matched on an older revision and found indexed on a
    newer one, which would give it the global 30 days."""
    monkeypatch.setattr(retention, "CHUNK", 50)
    digests = put_and_index(archive, {f"plain{n}": message(n, "bob@x.com", "lunch", 400 * DAY)
                                      for n in range(200)})
    late = {f"late{n}": archive.store.put(message(500 + n, "lawyer@x.com", "legal matter",
                                                  400 * DAY)) for n in range(30)}
    saved_searches.save(archive.replicated, "legal", "subject:legal", ADMIN)
    archive.replicated.put(retention.ENABLED, True)
    retention.set_global(archive.replicated, 30)
    retention.set_saved(archive.replicated, "legal", 3650)
    walk = sorted([*digests.values(), *late.values()])  # the store's order: by digest
    read_before = [name for name, digest in late.items() if walk.index(digest) < 50]
    assert len(read_before) < len(late)  # some are read after they are indexed
    with live_indexer(archive) as indexer:
        caught_up = []
        between_walked(archive, 50, lambda: caught_up or caught_up.append(indexer.catch_up()))
        report = run(archive)
    assert caught_up == [len(late)]  # indexed after the first chunk was read
    assert (report.examined, report.not_indexed, report.deleted) == (230, len(read_before), 200)
    assert remaining(archive, digests | late) == sorted(late)


def test_a_hold_is_checked_among_each_deletion_batch(archive, monkeypatch):
    """Holds are asked only about the batch at hand (a read as short as the batch), by
    their searches and by what they recorded, each batch on the newest revision."""
    monkeypatch.setattr(retention, "BATCH", 7)
    digests = put_and_index(archive, {
        **{f"case{n}": message(n, "lawyer@x.com", "contract", 400 * DAY) for n in range(20)},
        **{f"other{n}": message(100 + n, "bob@x.com", "lunch", 400 * DAY) for n in range(30)}})
    saved_searches.save(archive.replicated, "case", "from:lawyer", ADMIN)
    saved_searches.save(archive.replicated, "one", "subject:lunch", ADMIN)
    archive.replicated.put(retention.ENABLED, True)
    retention.set_global(archive.replicated, 30)
    holds.add(archive.replicated, archive.index_dir(), "case", None, ADMIN)
    recorded = holds.add(archive.replicated, archive.index_dir(), "one", None, ADMIN)
    saved_searches.save(archive.replicated, "one", "subject:nothing-at-all", ADMIN)
    dry = run(archive, dry_run=True)
    assert (dry.expired, dry.held, dry.deleted) == (50, 50, 0)
    holds.remove(archive.replicated, recorded, ADMIN)
    report = run(archive)
    assert (report.expired, report.held, report.deleted) == (50, 20, 30)
    assert remaining(archive, digests) == sorted(f"case{n}" for n in range(20))


def test_a_peers_hold_merged_before_its_records_deletes_nothing_until_they_came(archive,
                                                                              tmp_path):
    """A mirror peer's hold (and the saved search it uses) reach this system at its hello;
    the mail the hold recorded there comes after, in pages (services.mirror.hold_sync).
    Meanwhile retention must not judge holds by their searches alone."""
    from services.archive.store import Store
    from services.policy import hold_records
    digests = lawyers_case_past_retention(archive)
    peer = Replicated(Store(tmp_path / "peer", map_size=1 << 26))
    saved_searches.save(peer, "case", "from:lawyer", ADMIN)
    peer.put("hold:h1", {"saved": "case", "until": None, "by": "root"})
    archive.replicated.merge(peer.export())
    pending = archive.replicated.records_pending()
    assert pending > 0

    report = run(archive)
    assert report.waiting_for_hold_records and report.deleted == 0
    assert remaining(archive, digests) == ["case", "other"]
    assert run(archive, dry_run=True).deleted == 1  # what it would delete, still said

    hold_records.add(archive.store, "h1", [digests["other"]])  # the peer had recorded it
    assert archive.replicated.records_settled(pending)
    report = run(archive)
    assert not report.waiting_for_hold_records and (report.deleted, report.held) == (0, 2)
    assert remaining(archive, digests) == ["case", "other"]


def test_a_merge_during_the_exchange_keeps_retention_waiting(archive, tmp_path):
    from services.archive.store import Store
    lawyers_case_past_retention(archive)
    peer = Replicated(Store(tmp_path / "peer", map_size=1 << 26))
    peer.put("hold:h1", {"saved": "case", "until": None, "by": "root"})
    archive.replicated.merge(peer.export())
    pending = archive.replicated.records_pending()
    saved_searches.save(peer, "case", "from:nobody", ADMIN)  # narrowed again meanwhile
    archive.replicated.merge(peer.export())
    assert not archive.replicated.records_settled(pending)
    assert run(archive).waiting_for_hold_records
    assert archive.replicated.records_settled(archive.replicated.records_pending())
    assert archive.replicated.records_pending() == 0


def test_a_run_holds_the_index_it_judged_by_until_it_ends(archive, monkeypatch):
    """A run may last past a switch of the index (a live compaction) and the 60 s its old
    folder stays: the deletion phase asks holds in the index it opened, so that folder
    must stay until the run ends (services.archive.index_hold), then go."""
    from services.archive import compaction, retired_index
    digests = put_and_index(archive, {f"old{n}": message(n, "a@x.com", "old", 400 * DAY)
                                      for n in range(5)})
    archive.replicated.put(retention.ENABLED, True)
    retention.set_global(archive.replicated, 30)
    switched_from = []
    judged = retention._expired

    def judged_then_switched(*args, **kwargs):
        expired = judged(*args, **kwargs)
        live = archive.index_dir()
        assert archive.swap_index(compaction.copy(archive, live)) == live
        later = time.time() + retired_index.RETIRED_SECONDS + 1
        assert compaction.remove_strays(archive, now=later) == []  # held by the run
        switched_from.append(live)
        return expired

    monkeypatch.setattr(retention, "_expired", judged_then_switched)
    assert retention.run(archive.store, archive.index_dir(), archive.replicated, ADMIN,
                         now=NOW).deleted == 5
    assert remaining(archive, digests) == []
    later = time.time() + retired_index.RETIRED_SECONDS + 1
    assert compaction.remove_strays(archive, now=later) == switched_from  # let go


def test_retention_set_saved_without_days_is_refused_and_keeps_the_policy(archiver, tmp_path):
    """`--days none` removes a saved search's policy; leaving --days out must not do the same."""
    data, folder = tmp_path / "data", tmp_path / "mail"
    folder.mkdir()
    (folder / "1.eml").write_bytes(message(1, "a@x.com", "old", 400 * DAY))
    archiver("import", "--data", data, folder, check=0)
    archiver("search", "--data", data, "--save", "old", "subject:old", check=0)
    archiver("retention", "set", "--data", data, "--saved", "old", "--days", "90", check=0)
    refused = archiver("retention", "set", "--data", data, "--saved", "old", check=2)
    assert "needs --days N" in refused.stderr and "--days none" in refused.stderr
    stray = archiver("retention", "set", "--data", data, "--global-days", "30", "--days", "5",
                     check=2)
    assert "--days goes with --saved" in stray.stderr
    shown = json.loads(archiver("retention", "show", "--data", data, "--json", check=0).stdout)
    assert shown["saved"] == {"old": 90} and shown["global_days"] is None
    archiver("retention", "set", "--data", data, "--saved", "old", "--days", "none", check=0)
    shown = json.loads(archiver("retention", "show", "--data", data, "--json", check=0).stdout)
    assert shown["saved"] == {}


def test_only_an_admin_changes_or_runs_retention_from_the_cli(archiver):
    """The CLI's user is an admin only as root or the service user (audit.cli_actor); any
    other owner of the files is an auditor, refused what the web API keeps for admins."""
    import pwd
    import shutil
    import tempfile
    from pathlib import Path
    from tests.conftest import ARCHIVER
    nobody = pwd.getpwnam("nobody")
    top = Path(tempfile.mkdtemp(dir="/tmp"))  # pytest's own tmp is closed to other users
    try:
        data, folder = top / "data", top / "mail"
        folder.mkdir()
        (folder / "1.eml").write_bytes(message(1, "a@x.com", "old", 400 * DAY))
        archiver("import", "--data", data, folder, check=0)
        archiver("retention", "set", "--data", data, "--global-days", "30", check=0)
        archiver("retention", "enable", "--data", data, check=0)
        subprocess.run(["chown", "-R", f"{nobody.pw_uid}:{nobody.pw_gid}", str(top)],
                       check=True)

        def as_nobody(*args):
            return subprocess.run([str(ARCHIVER), *map(str, args), "--data", str(data)],
                                  user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[],
                                  env={**os.environ, "HOME": str(top), "USER": "nobody",
                                       "SUDO_USER": ""},
                                  capture_output=True, text=True, timeout=120, cwd=top)

        for args in (("retention", "run"), ("retention", "disable"),
                     ("retention", "set", "--global-days", "1"),
                     ("user", "add", "eve", "--role", "admin", "--password-file", "/dev/null")):
            refused = as_nobody(*args)
            assert refused.returncode == 4 and "only an admin" in refused.stderr, (args, refused)
        dry = as_nobody("retention", "run", "--dry-run", "--json")
        assert dry.returncode == 0, dry.stderr
        report = json.loads(dry.stdout)
        assert (report["dry_run"], report["deleted"], report["would_delete"]) == (True, 0, 1)
        assert json.loads(archiver("stats", "--data", data, "--json", check=0).stdout
                          )["stored"] == 1
        assert json.loads(archiver("retention", "show", "--data", data, "--json", check=0
                                   ).stdout)["global_days"] == 30
        assert "eve" not in archiver("user", "list", "--data", data, check=0).stdout
    finally:
        shutil.rmtree(top)


def test_a_deletion_and_its_audit_entry_are_durable_together(archive):
    """They were two transactions: a crash between them left mail deleted with no entry."""
    digests = put_and_index(archive, {"old": message(1, "a@x.com", "old", 400 * DAY)})
    archive.replicated.put(retention.ENABLED, True)
    retention.set_global(archive.replicated, 30)

    def crash_after_the_entry(store, txn, *args, **details):
        audit_record_in(store, txn, *args, **details)
        raise OSError("power lost before the commit")

    audit_record_in = audit.record_in
    audit.record_in = crash_after_the_entry
    try:
        with pytest.raises(OSError, match="power lost"):
            run(archive)
    finally:
        audit.record_in = audit_record_in
    assert digests["old"] in archive.store  # neither the deletion nor its entry
    assert [e for e in audit.entries(archive.store) if e["action"] == "delete"] == []
    run(archive)
    assert digests["old"] not in archive.store
    entry = [e for e in audit.entries(archive.store) if e["action"] == "delete"][-1]
    assert entry["details"]["digests"] == [digests["old"]]
