"""The following indexer of an idle archive looks at the arrival log less and less often,
up to once every FOLLOW_IDLE_MOST_SECONDS, and as often as at first again once mail
arrives (Indexer.follow's `sleep` is given a recorder here, so no test waits on a clock)."""
from email.message import EmailMessage

import pytest

from services.archive.archive import Archive
from services.archive.indexer import FOLLOW_IDLE_MOST_SECONDS, FOLLOW_IDLE_SECONDS, Indexer
from services.archive.search import search
from services.archive.store import Envelope

pytestmark = pytest.mark.integration


def mail(subject: str) -> bytes:
    message = EmailMessage()
    message["From"], message["To"] = "intake@example.org", "audit@example.net"
    message["Subject"], message["Message-ID"] = subject, f"<{subject}@example.org>"
    message.set_content(f"body of {subject}")
    return message.as_bytes()


def test_an_idle_follower_backs_off_to_its_longest_wait_and_starts_over_on_new_mail(tmp_path):
    archive = Archive(tmp_path)
    slept: list[float] = []
    arrive_after, stop_after = 6, 9  # sleeps: mail is stored during the 6th, stop at the 9th

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == arrive_after:
            archive.store.put(mail("wakeful"), Envelope("intake@example.org",
                                                        ["audit@example.net"]), "smtp")

    with archive.extraction_pool() as pool:
        indexer = Indexer(archive.store, archive.index_dir(), pool)
        indexer.follow(stop=lambda: len(slept) >= stop_after, sleep=sleep)
        indexer.close()

    backoff = [FOLLOW_IDLE_SECONDS, 2 * FOLLOW_IDLE_SECONDS]
    assert 2 * FOLLOW_IDLE_SECONDS < FOLLOW_IDLE_MOST_SECONDS < 4 * FOLLOW_IDLE_SECONDS
    assert slept == [*backoff, *[FOLLOW_IDLE_MOST_SECONDS] * 4, *backoff,
                     FOLLOW_IDLE_MOST_SECONDS]
    assert search(archive.index_dir(), "wakeful").total == 1
    archive.close()


def test_a_given_idle_wait_is_the_shortest_and_may_exceed_the_usual_longest(tmp_path):
    archive = Archive(tmp_path)
    slept: list[float] = []
    with archive.extraction_pool() as pool:
        indexer = Indexer(archive.store, archive.index_dir(), pool)
        indexer.follow(stop=lambda: len(slept) >= 3, idle_sleep=0.01, sleep=slept.append)
        assert slept == [0.01, 0.02, 0.04]
        slept.clear()
        indexer.follow(stop=lambda: len(slept) >= 2, idle_sleep=3.0, sleep=slept.append)
        assert slept == [3.0, 3.0]
        indexer.close()
    archive.close()
