"""A litigation hold across a mirrored pair, while its saved search's old query is still
held by one peer (superseded, not yet settled: services.policy.replicated._supersede) and
already settled on the other: the peer's copy of mail the old query holds there must not
be deleted here by retention. Appliances are processes in network namespaces; each node's
retention runs when the test says (`archiver retention run`), none by itself: the service
ran its weekly run at its first start, before anything was stored."""
import contextlib
import json
import time

import pytest

from tests.integration.mirror.test_hold_records import recorded_counts
from tests.integration.mirror.test_mirror import pair  # noqa: F401 (a fixture)
from tests.integration.mirror_nodes import TEST_TIMERS, Node, wait_searchable, wait_until
from tests.integration.netns import Lab

pytestmark = [pytest.mark.integration, pytest.mark.slow]
OLD_DATE = "Mon, 06 Jan 2020 10:00:00 +0000"  # past the 365 days of retention set below


def import_old_mail(node, directory, senders: dict[str, str]) -> dict[str, str]:
    """Mail dated OLD_DATE from each of `senders` (name -> address), imported on `node`
    without indexing (as mail its indexer has not reached yet); name -> digest."""
    import hashlib
    directory.mkdir(parents=True, exist_ok=True)
    digests = {}
    for name, sender in senders.items():
        raw = (f"From: {sender}\r\nTo: boss@example.com\r\nSubject: {name}\r\n"
               f"Date: {OLD_DATE}\r\nMessage-ID: <{name}@example.com>\r\n\r\n{name}\r\n"
               ).encode()
        (directory / f"{name}.eml").write_bytes(raw)
        digests[name] = hashlib.sha256(raw).hexdigest()
    node.cli("import", "--no-index", "--json", directory)
    return digests


def retention_run(node, *options) -> dict:
    return json.loads(node.cli("retention", "run", "--json", *options).stdout)


def held_search_narrowed_while_the_peer_is_away(a, b, tmp_path) -> tuple[str, dict]:
    """A hold on "case" (from:lawyer) on both, retention on (365 days); b stops and
    archives two old messages meanwhile (the lawyer's, which the hold's query matches, and
    eve's), not copied to a yet; a narrows "case" to from:nobody (recording what it
    matched on a: nothing) and runs retention, which settles the old query on a. Returns
    the hold's id and the digests."""
    a.start(), b.start()
    a.cli("search", "--save", "case", "from:lawyer")
    hold_id = a.cli("hold", "add", "--saved", "case").stdout.strip()
    a.cli("retention", "set", "--global-days", "365")
    a.cli("retention", "enable")
    wait_until(lambda: hold_id in recorded_counts(b)
               and json.loads(b.cli("retention", "show", "--json").stdout)["enabled"],
               60, "the hold and retention to reach b")
    b.stop()
    digests = import_old_mail(b, tmp_path / "in", {"lawyer": "lawyer@x.com",
                                                   "eve": "eve@x.com"})
    a.cli("search", "--save", "case", "from:nobody")
    settled = retention_run(a)
    assert settled["deleted"] == 0 and settled["enabled"]
    return hold_id, digests


def test_a_peers_copy_its_unsettled_old_query_holds_is_kept(pair, tmp_path):  # noqa: F811
    """b merges a's edit when it comes back: the old query still holds the lawyer's mail
    there until b's own retention run records what it matches. a gets b's copy of it after
    a settled the old query, and exchanges hold records with b several times (b has
    recorded nothing yet): a run on a then, across restarts of both, must keep the copy.
    Once b has recorded it and the records reached a, the copy is held by record, and
    eve's copy, held by nothing, is deleted on a."""
    a, b = pair
    hold_id, digests = held_search_narrowed_while_the_peer_is_away(a, b, tmp_path)
    b.start()
    wait_searchable(a, 2)  # b's copies, stored and indexed on a
    time.sleep(3 * TEST_TIMERS["rehello_seconds"])  # exchanges of hold records after them
    a.stop(), b.stop()  # b's retention does not run; a restart does not open the window
    first = retention_run(a)
    assert digests["lawyer"] not in first["digests"]
    assert digests["lawyer"] in a.digests()
    a.start(), b.start()
    wait_searchable(b, 2)
    assert digests["lawyer"] not in retention_run(b)["digests"]  # settles "from:lawyer" on b
    wait_until(lambda: recorded_counts(a)[hold_id] == 1, 60, "b's record to reach a")
    wait_until(lambda: retention_run(a, "--dry-run")["digests"] == [digests["eve"]], 60,
               "a to let eve's copy go once b has settled")
    assert retention_run(a)["digests"] == [digests["eve"]]
    # the deletion reaches search once a's indexer has read it (eventually, not at once)
    wait_until(lambda: a.stats()["pending"] == 0, 60, "a's index to take in the deletion")
    assert digests["lawyer"] in a.digests() and digests["eve"] not in a.digests()


@contextlib.contextmanager
def one_way_pair(tmp_path):
    """a copies to b, which joined with the secret but no peer (a one-way mirror, as
    test_mirror has it): b never says hello to a. a holds eve's old mail; both run until
    the block ends. Yields (a, b, digests)."""
    with Lab(["a", "b"]) as lab:
        a, b = Node(lab, "a", tmp_path), Node(lab, "b", tmp_path)
        a.join(b)
        b.join()
        digests = import_old_mail(a, tmp_path / "in", {"eve": "eve@x.com"})
        a.start(), b.start()
        try:
            yield a, b, digests
        finally:
            a.stop(), b.stop()


def test_a_one_way_peers_expired_copies_are_deleted_once_nothing_holds_them(tmp_path):
    """b takes a's copies but does not copy back (joined with no peer: a supported one-way
    mirror, test_mirror), so b never says hello to a. Nothing holds a's mail and a holds
    no superseded query: b's retention must delete a's expired copies, not keep them
    forever waiting for an exchange only b's own client would have begun."""
    with one_way_pair(tmp_path) as (a, b, digests):
        a.cli("retention", "set", "--global-days", "365")
        a.cli("retention", "enable")
        wait_searchable(b, 1)
        wait_until(lambda: json.loads(b.cli("retention", "show", "--json").stdout)
                   ["enabled"], 60, "retention to reach b")
        wait_until(lambda: retention_run(b, "--dry-run")["digests"] == [digests["eve"]],
                   60, "b to let a's unheld, expired copy go")
        assert retention_run(b)["digests"] == [digests["eve"]]


def test_a_one_way_peers_hold_does_not_stop_retention_here_for_good(tmp_path):
    """As above, with a hold placed on a (on mail b never gets): b merges the hold from
    a's hello and must wait for its records, which a's client gives b right after; then
    b's retention goes on, and deletes a's unheld, expired copy. It did not: only b's own
    client, which a one-way b has not, ended the wait."""
    with one_way_pair(tmp_path) as (a, b, digests):
        a.cli("search", "--save", "case", "from:lawyer")
        hold_id = a.cli("hold", "add", "--saved", "case").stdout.strip()
        a.cli("retention", "set", "--global-days", "365")
        a.cli("retention", "enable")
        wait_searchable(b, 1)
        wait_until(lambda: hold_id in b.cli("hold", "list").stdout, 60,
                   "the hold to reach b")
        wait_until(lambda: retention_run(b)["digests"] == [digests["eve"]], 60,
                   "b's retention to delete a's unheld, expired copy")
