"""A search answered while the indexer is behind the store says so: a zero then is not
"nothing matches" (mail stored and not indexed yet), and a hit may be of mail deleted
since. The API gives the count (not_indexed) and a notice; the page and the CLI show the
notice. Once the indexer has caught up, both are gone and the answer is whole."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from services.archive.search import search
from tests.integration.web.fixtures import PASSWORD, Client, mail
from tests.integration.web.test_ui import logged_in

pytestmark = [pytest.mark.integration]


def catch_up(archive) -> None:
    with archive.extraction_pool() as pool, archive.indexer(pool) as indexer:
        indexer.catch_up()


def searched(site, query: str) -> dict:
    return Client(site.url, basic=("audrey", PASSWORD)).get(
        f"/api/search?q={query}").json()


def cli_search(site, query: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.cli.main", "search", "--data",
                           str(site.archive.data_dir), query], capture_output=True,
                          text=True, timeout=120)


def test_a_search_while_mail_is_not_indexed_yet_says_so_until_it_is(site):
    store = site.archive.store
    zebra = store.put(mail("eve@example.com", "alice@example.com", "Unindexed zebra memo",
                           "zebra body"), None, "smtp")
    answer = searched(site, "zebra")
    assert answer["total"] == 0 and answer["not_indexed"] == 1
    assert answer["notice"].startswith("1 change to the archive (mail stored or deleted) "
                                       "not indexed yet")
    page = logged_in(site, "audrey").get("/search?q=zebra").body.decode()
    assert "1 change to the archive (mail stored or deleted) not indexed yet" in page
    shown = cli_search(site, "zebra")
    assert shown.returncode == 0 and "not indexed yet" in shown.stderr, shown.stderr

    catch_up(site.archive)
    answer = searched(site, "zebra")
    assert answer["total"] == 1 and answer["not_indexed"] == 0 and answer["notice"] is None
    assert [hit["digest"] for hit in answer["hits"]] == [zebra]
    assert "not indexed yet" not in cli_search(site, "zebra").stderr

    store.delete([zebra])  # and, until the indexer drops it, still found
    answer = searched(site, "zebra")
    assert answer["total"] == 1 and answer["not_indexed"] == 1 and "not indexed" in answer["notice"]
    catch_up(site.archive)
    assert searched(site, "zebra")["total"] == 0 == searched(site, "zebra")["not_indexed"]


def test_the_count_is_of_the_index_read_and_an_empty_index_counts_everything(tmp_path):
    from services.archive.archive import Archive
    archive = Archive(tmp_path / "data", model=450)
    for number in range(3):
        archive.store.put(mail("a@example.org", "b@example.org", f"n{number}", "quokka"))
    end = archive.store.log_end("arrival")
    assert search(archive.index_dir(), "quokka", log_end=end).not_indexed == 3  # no index yet
    catch_up(archive)
    found = search(archive.index_dir(), "quokka", log_end=end)
    assert (found.total, found.not_indexed, found.notice) == (3, 0, None)
    assert search(archive.index_dir(), "quokka").not_indexed == 0  # not asked: not counted
    archive.close()


def test_a_user_is_told_mail_is_not_indexed_yet_but_not_how_much_the_archive_takes(site):
    store = site.archive.store
    digests = [store.put(mail("eve@example.com", "someone@example.org", f"Busy {n}", "x"))
               for n in range(3)]
    alice = Client(site.url, basic=("alice", PASSWORD)).get("/api/search?q=lunch").json()
    assert alice["not_indexed"] == 1 and "not indexed yet" in alice["notice"]
    assert "3" not in alice["notice"]
    assert searched(site, "busy")["not_indexed"] == 3  # staff see the count
    store.delete(digests)
    catch_up(site.archive)
