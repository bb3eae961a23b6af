"""The journal-mailbox puller against a real Dovecot: IMAP and POP3 with TLS, STARTTLS and
none; outages, crashes, a peer polling the same account, back-pressure, the CLI."""
import base64
import hashlib
import json
import random
import threading
import time

import pytest
import yaml

from services.common.config import JournalAccount
from services.intake import journal_mailbox as journal
from services.intake.journal_mailbox import JournalPuller
from services.archive.store import Store

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
MATRIX = [(protocol, tls) for protocol in ("imap", "pop3") for tls in ("tls", "starttls", "none")]
BOTH = [("imap", "tls"), ("pop3", "tls")]


def message(n: int, body: bytes = b"") -> bytes:
    """A message as a journaling server delivers it: CRLF line ends, ending in CRLF."""
    return (f"From: alice@example.com\r\nTo: bob{n}@example.com\r\nSubject: journal {n}\r\n"
            f"Message-ID: <j{n}.{time.monotonic_ns()}@example.com>\r\n"
            f"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n\r\nbody {n}\r\n").encode() + body


# Bytes the protocols must carry through: dot-stuffing, long lines, 8-bit.
AWKWARD = b".leading dot\r\n..two dots\r\n.\r\n" + b"x" * 5000 + b"\r\n8-bit \xe4\xf6\xfc\xff\r\n"


def digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


@pytest.fixture
def store(tmp_path):
    opened = Store(tmp_path / "store", map_size=1024 * MiB)
    yield opened
    opened.close()


def account(dovecot, protocol, tls, **changes) -> JournalAccount:
    return JournalAccount(**dovecot.account_settings(protocol, tls, **changes))


def deliver(dovecot, numbers) -> list[bytes]:
    raws = [message(n, AWKWARD if n % 2 else b"") for n in numbers]
    for raw in raws:
        dovecot.deliver(raw)
    return raws


def stored(store) -> int:
    return store.counters()["messages"]


# -- each protocol with each kind of TLS -------------------------------------------------------

@pytest.mark.parametrize("protocol,tls", MATRIX)
def test_delivered_mail_is_archived_byte_exact_and_leaves_the_mailbox(dovecot, store, protocol, tls):
    puller = JournalPuller(account(dovecot, protocol, tls), store)
    first = deliver(dovecot, range(3))
    result = puller.poll_once()
    assert (result.fetched, result.imported, result.duplicates, result.error) == (3, 3, 0, None)
    assert dovecot.count() == 0
    for raw in first:
        assert store.get(digest(raw)) == raw
        assert store.meta(digest(raw))["source"] == f"journal:{protocol}-{tls}"

    more = deliver(dovecot, range(3, 5))
    assert puller.poll_once().imported == 2 and dovecot.count() == 0
    assert all(store.get(digest(raw)) == raw for raw in more)
    status = store.journal_state(f"{protocol}-{tls}")
    assert status["state"] == "ok" and status["imported_total"] == 5
    assert status["last_error"] is None and status["last_poll"] == status["last_success"]


@pytest.mark.parametrize("protocol,tls", MATRIX)
def test_keep_on_server_leaves_mail_and_takes_each_message_once(dovecot, store, protocol, tls):
    puller = JournalPuller(account(dovecot, protocol, tls, keep_on_server=True), store)
    first = deliver(dovecot, range(2))
    assert puller.poll_once().imported == 2
    assert dovecot.count() == 2
    assert (puller.poll_once().fetched, dovecot.count()) == (0, 2)

    more = deliver(dovecot, [2])
    result = puller.poll_once()
    assert (result.fetched, result.imported, dovecot.count()) == (1, 1, 3)
    assert all(store.get(digest(raw)) == raw for raw in first + more)
    assert len(store.journal_taken(f"{protocol}-{tls}")) == 3


# -- failures ------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol,tls", BOTH)
def test_a_server_outage_mid_poll_loses_and_duplicates_nothing(dovecot, store, protocol, tls):
    raws = deliver(dovecot, range(5))
    calls = []

    def stop_the_server_at_the_third_message():
        calls.append(1)
        if len(calls) == 3:
            dovecot.stop()

    puller = JournalPuller(account(dovecot, protocol, tls), store,
                           gate=stop_the_server_at_the_third_message)
    result = puller.poll_once()
    assert result.error.startswith("the server closed the connection")
    assert result.imported == 2 and stored(store) == 2
    status = store.journal_state(f"{protocol}-{tls}")
    assert status["state"] == "error" and status["last_error"] == result.error

    down = puller.poll_once()  # the server is still down: refused before any message
    assert "Connection refused" in down.error and down.fetched == 0

    dovecot.start()
    puller.poll_once()
    assert sorted(store.digests()) == sorted(map(digest, raws))
    assert dovecot.count() == 0
    status = store.journal_state(f"{protocol}-{tls}")
    assert status["state"] == "ok" and status["imported_total"] == 5
    assert status["last_error"] == down.error  # kept, with its time, after recovery


def test_pop3_commits_deletions_every_few_messages_so_an_outage_repeats_few(
        dovecot, store, monkeypatch):
    monkeypatch.setattr(journal, "POP3_DELETES_PER_SESSION", 2)
    raws = deliver(dovecot, range(5))
    calls = []

    def stop_the_server_at_the_fourth_message():
        calls.append(1)
        if len(calls) == 4:
            dovecot.stop()

    result = JournalPuller(account(dovecot, "pop3", "none"), store,
                           gate=stop_the_server_at_the_fourth_message).poll_once()
    assert result.error and result.imported == 3
    assert dovecot.count() == 3  # the first session's two deletions were committed
    dovecot.start()
    result = JournalPuller(account(dovecot, "pop3", "none"), store).poll_once()
    assert (result.fetched, result.imported, result.duplicates) == (3, 2, 1)
    assert dovecot.count() == 0 and sorted(store.digests()) == sorted(map(digest, raws))


class Killed(BaseException):
    """Stands in for the process dying: nothing of the puller runs after it."""


@pytest.mark.parametrize("protocol,tls", BOTH)
def test_a_puller_killed_between_store_and_delete_takes_the_message_again(
        dovecot, store, protocol, tls):
    raws = deliver(dovecot, range(2))
    doomed = JournalPuller(account(dovecot, protocol, tls), store)
    archive = doomed._archive

    def archive_then_die(raw):
        archive(raw)
        raise Killed

    doomed._archive = archive_then_die
    with pytest.raises(Killed):
        doomed.poll_once()
    assert digest(raws[0]) in store and dovecot.count() == 2

    restarted = JournalPuller(account(dovecot, protocol, tls), store)
    result = restarted.poll_once()
    assert (result.fetched, result.imported, result.duplicates) == (2, 1, 1)
    assert dovecot.count() == 0 and stored(store) == 2


@pytest.mark.parametrize("protocol,tls", BOTH)
def test_two_systems_polling_one_account_archive_every_message_once(
        dovecot, store, protocol, tls):
    raws = deliver(dovecot, range(30))
    pullers = [JournalPuller(account(dovecot, protocol, tls), store) for _ in range(2)]
    results = [None, None]

    def poll(i):
        results[i] = pullers[i].poll_once()

    threads = [threading.Thread(target=poll, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # A session may lose a race for a message the other took: the next poll settles it.
    settled = [puller.poll_once() for puller in pullers]
    assert sorted(store.digests()) == sorted(map(digest, raws))
    assert dovecot.count() == 0
    assert sum(r.imported for r in results + settled) == 30
    assert not any(r.error for r in settled), settled


@pytest.mark.parametrize("protocol,tls", [("imap", "tls"), ("pop3", "starttls")])
def test_an_untrusted_certificate_is_refused_and_nothing_is_taken(dovecot, store, protocol, tls):
    deliver(dovecot, [1])
    result = JournalPuller(account(dovecot, protocol, tls, ca_file=None), store).poll_once()
    assert "certificate is not trusted" in result.error
    assert dovecot.count() == 1 and stored(store) == 0


# -- back-pressure -------------------------------------------------------------------------

def test_the_intake_gate_pauses_a_poll_leaving_the_rest_on_the_server(dovecot, store):
    raws = deliver(dovecot, range(3))
    reasons = iter([None, None, "the index is 9000 messages behind"])
    puller = JournalPuller(account(dovecot, "imap", "starttls"), store,
                           gate=lambda: next(reasons, None))
    result = puller.poll_once()
    assert (result.imported, result.error, result.paused) == (
        2, None, "the index is 9000 messages behind")
    assert dovecot.count() == 1
    assert store.journal_state("imap-starttls")["state"] == "paused: the index is 9000 messages behind"

    assert puller.poll_once().imported == 1
    assert dovecot.count() == 0 and stored(store) == 3 and digest(raws[2]) in store
    assert store.journal_state("imap-starttls")["state"] == "ok"


def test_a_full_store_pauses_the_poll_and_keeps_the_message_on_the_server(dovecot, tmp_path):
    small = Store(tmp_path / "small", map_size=6 * MiB)  # 4 MiB of it are reserve
    try:
        dovecot.deliver(message(1))
        incompressible = base64.encodebytes(random.randbytes(3 * MiB)).replace(b"\n", b"\r\n")
        dovecot.deliver(message(2, incompressible))
        result = JournalPuller(account(dovecot, "pop3", "tls"), small).poll_once()
        assert (result.imported, result.error, result.paused) == (
            1, None, "the archive store is full")
        assert dovecot.count() == 1
        assert small.journal_state("pop3-tls")["state"] == "paused: the archive store is full"
    finally:
        small.close()


# -- the service loop ----------------------------------------------------------------------

def test_retries_back_off_to_a_ceiling():
    settings = dict(name="x", protocol="imap", host="h", port=993, tls="tls", user="u",
                    password="p")
    hourly = JournalPuller(JournalAccount(**settings, poll_seconds=3600), store=None)
    assert [hourly.delay_after(n) for n in range(11)] == [
        3600, 5, 10, 20, 40, 80, 160, 300, 300, 300, 300]
    minutely = JournalPuller(JournalAccount(**settings, poll_seconds=60), store=None)
    assert [minutely.delay_after(n) for n in (0, 4, 5, 1000)] == [60, 40, 60, 60]


def test_run_keeps_polling_through_an_outage_and_stops_promptly(dovecot, store):
    dovecot.stop()
    puller = JournalPuller(account(dovecot, "imap", "tls", poll_seconds=1), store)
    puller.first_retry = 0.1
    stop = threading.Event()
    runner = threading.Thread(target=puller.run, args=(stop,))
    runner.start()
    try:
        wait_for(lambda: store.journal_state("imap-tls").get("state") == "error")
        raws = deliver(dovecot, range(2))
        dovecot.start()
        wait_for(lambda: stored(store) == 2 and dovecot.count() == 0)
        assert all(digest(raw) in store for raw in raws)
    finally:
        stop.set()
        runner.join(timeout=3)
    assert not runner.is_alive()
    assert store.journal_state("imap-tls")["state"] == "ok"


def wait_for(condition, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# -- the CLI -------------------------------------------------------------------------------

def test_cli_polls_and_reports_status(dovecot, archiver, tmp_path):
    config = tmp_path / "archiver.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"), "journal_accounts": [
        dovecot.account_settings("imap", "tls", name="exchange"),
        dovecot.account_settings("pop3", "none", name="wrong", password="not-it"),
    ]}))
    raws = deliver(dovecot, range(2))

    done = archiver("journal", "poll", "--config", config, "--json", check=1)
    polled = {line["account"]: line for line in map(json.loads, done.stdout.splitlines())}
    assert polled["exchange"] == {"account": "exchange", "fetched": 2, "imported": 2,
                                  "duplicates": 0, "error": None, "paused": None,
                                  "problems": []}
    assert "Authentication failed" in polled["wrong"]["error"]
    assert dovecot.count() == 0

    dovecot.deliver(message(7))
    done = archiver("journal", "poll", "--config", config, "--account", "exchange", check=0)
    assert done.stdout.strip() == "exchange: fetched 1, imported 1, duplicates 0"
    assert archiver("journal", "poll", "--config", config, "--account", "nope",
                    check=2).stderr.startswith("archiver: ")

    done = archiver("journal", "status", "--config", config, "--json", check=0)
    status = {line["account"]: line for line in map(json.loads, done.stdout.splitlines())}
    assert status["exchange"]["state"] == "ok" and status["exchange"]["imported_total"] == 3
    assert status["exchange"]["protocol"] == "imap" and "password" not in status["exchange"]
    assert status["wrong"]["state"] == "error" and status["wrong"]["imported_total"] == 0
    shown = archiver("show", digest(raws[0]), "--data", tmp_path / "data", "--json", check=0)
    assert json.loads(shown.stdout)["source"] == "journal:exchange"
    lines = archiver("journal", "status", "--config", config, check=0).stdout.splitlines()
    assert lines[0].startswith("exchange: ok; imap 127.0.0.1:") and "imported 3" in lines[0]
