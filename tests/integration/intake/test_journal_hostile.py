"""The journal puller against hostile or broken IMAP and POP3 servers (fakes, in-process).

The standard: nothing leaves the server before exactly that message is stored byte-exact;
a bad answer leaves its message on the server, says why, and the others go on; no answer,
however large or slow, grows memory without limit or holds a poll (or a stopping service)."""
import hashlib
import threading
import time

import pytest

from services.common.config import JournalAccount
from services.archive.store import Store
from services.intake import journal_mailbox as journal
from services.intake.journal_mailbox import JournalPuller
from services.intake.journal_wire import Limits, Watchdog
from tests.integration.fake_mail_servers import (
    FakeImap, FakePop3, fetch_response, message, multiline)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

MiB = 1024 * 1024


@pytest.fixture
def store(tmp_path):
    opened = Store(tmp_path / "store", map_size=256 * MiB)
    yield opened
    opened.close()


def account(fake, protocol: str, **changes) -> JournalAccount:
    settings = dict(name="fake", protocol=protocol, host="127.0.0.1", port=fake.port,
                    tls="none", user="journal", password="pw")
    return JournalAccount(**{**settings, **changes})


def digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def stored(store) -> set[str]:
    return set(store.digests())


MESSAGES = {uid: message(uid) for uid in (1, 2, 3)}


# -- IMAP: answers to UID FETCH that are not the message asked for -----------------------------

def _body(n: int) -> bytes:
    return MESSAGES[n]


WRONG_FETCH_ANSWERS = {
    "another UID": lambda: fetch_response(1, 2, _body(2)),
    "no UID": lambda: b"* 1 FETCH (BODY[] {%d}\r\n%s)\r\n" % (len(_body(1)), _body(1)),
    "a partial section": lambda: b"* 1 FETCH (UID 1 BODY[]<0> {40}\r\n%s)\r\n" % _body(1)[:40],
    "a partial section, whole": lambda: b"* 1 FETCH (UID 1 BODY[]<0> {%d}\r\n%s)\r\n" % (
        len(_body(1)), _body(1)),
    "BODY[TEXT]": lambda: b"* 1 FETCH (UID 1 BODY[TEXT] {4}\r\nbody)\r\n",
    "RFC822 and BODY[]": lambda: b"* 1 FETCH (UID 1 RFC822 {%d}\r\n%s BODY[] {%d}\r\n%s)\r\n" % (
        len(_body(1)), _body(1), len(_body(1)), _body(1)),
    "a short literal": lambda: b"* 1 FETCH (UID 1 BODY[] {%d}\r\n%sLAST LINE)\r\n" % (
        len(_body(1)), _body(1)),
    "junk after the literal": lambda: fetch_response(1, 1, _body(1))[:-3] + b" junk)\r\n",
    "two bodies": lambda: fetch_response(1, 1, _body(1)) + fetch_response(1, 1, _body(3)),
    "BODY[] NIL": lambda: b"* 1 FETCH (UID 1 BODY[] NIL)\r\n",
    "unclosed": lambda: b"* 1 FETCH (UID 1 BODY[] {%d}\r\n%s\r\n" % (len(_body(1)), _body(1)),
}


@pytest.mark.parametrize("shape", WRONG_FETCH_ANSWERS)
def test_a_fetch_answer_that_is_not_exactly_body_of_the_uid_leaves_the_message(store, shape):
    with FakeImap(MESSAGES) as fake:
        def answer(session, tag, args):
            if args[0] == "1":
                session.send(WRONG_FETCH_ANSWERS[shape]())
                session.ok(tag)
            else:
                session.do_UID_FETCH(tag, args)
        fake.handlers["UID FETCH"] = answer
        result = JournalPuller(account(fake, "imap"), store).poll_once()
        assert result.error is None
        assert 1 in fake.messages and sorted(fake.expunged) == [2, 3]
        assert stored(store) == {digest(MESSAGES[2]), digest(MESSAGES[3])}
        assert len(result.problems) == 1 and result.problems[0].startswith("777:1 left on")
        assert store.journal_state("fake")["state"].startswith("ok, with 1 problem(s): 777:1")


def break_fetches_of_uid_1(fake) -> None:
    """UID 1's FETCH answer is a literal short by a line: its rest reads as junk responses
    and imaplib gives up the session; the others are answered as they should be."""
    def answer(session, tag, args):
        if args[0] == "1":
            session.send(b"* 1 FETCH (UID 1 BODY[] {%d}\r\n%s)\r\n" % (
                len(_body(1)) - 10, _body(1)))
            session.ok(tag)
        else:
            session.do_UID_FETCH(tag, args)
    fake.handlers["UID FETCH"] = answer


def test_a_fetch_answer_that_breaks_the_session_stops_holding_up_the_others_after_3_polls(store):
    """A literal short by a line: its rest reads as junk responses and imaplib gives up."""
    with FakeImap(MESSAGES) as fake:
        break_fetches_of_uid_1(fake)
        puller = JournalPuller(account(fake, "imap"), store)
        for _ in range(journal.FETCH_ATTEMPTS):
            assert puller.poll_once().error and fake.expunged == [] and stored(store) == set()
        result = puller.poll_once()
        assert result.error is None and sorted(fake.expunged) == [2, 3]
        assert result.problems[0].startswith("777:1 left on the server: the session broke")
        assert 1 in fake.messages


def test_a_fetch_answer_with_other_attributes_in_any_order_is_taken(store):
    with FakeImap(MESSAGES) as fake:
        def answer(session, tag, args):
            uid = int(args[0])
            body = fake.messages[uid]
            session.send(b"* %d FETCH (FLAGS (\\Seen))\r\n" % uid)  # unsolicited, harmless
            session.send(b'* %d FETCH (BODY[] {%d}\r\n%s FLAGS (\\Seen "a)") UID %d)\r\n'
                         % (uid, len(body), body, uid))
            session.ok(tag)
        fake.handlers["UID FETCH"] = answer
        result = JournalPuller(account(fake, "imap"), store).poll_once()
        assert (result.imported, result.error, result.problems) == (3, None, [])
        assert stored(store) == set(map(digest, MESSAGES.values()))


def test_an_unsolicited_fetch_from_an_earlier_command_is_never_taken_for_the_answer(store):
    decoy = message(99)
    with FakeImap(MESSAGES) as fake:
        def search(session, tag, args):
            session.send(fetch_response(1, 1, decoy))  # nobody asked for it
            session.do_UID_SEARCH(tag, args)
        def fetch(session, tag, args):  # answers nothing for UID 1: it is gone
            if args[0] != "1":
                session.do_UID_FETCH(tag, args)
            else:
                session.ok(tag)
        fake.handlers.update({"UID SEARCH": search, "UID FETCH": fetch})
        result = JournalPuller(account(fake, "imap"), store).poll_once()
        assert digest(decoy) not in stored(store)
        assert 1 in fake.messages and sorted(fake.expunged) == [2, 3]
        assert result.imported == 2


@pytest.mark.parametrize("answer", [b"1,2,3", b"1:3", b"1:*", b"*", b"0", b"01", b"1.0",
                                    b"99999999999"])
def test_only_plain_uids_from_search_are_used(store, answer):
    with FakeImap(MESSAGES) as fake:
        def search(session, tag, args):
            session.send(b"* SEARCH %s\r\n" % answer)
            session.ok(tag)
        fake.handlers["UID SEARCH"] = search
        result = JournalPuller(account(fake, "imap"), store).poll_once()
        assert fake.expunged == [] and stored(store) == set()
        assert "not a UID" in result.problems[0]
        assert not any(name in fake.commands for name in ("UID STORE", "UID EXPUNGE", "EXPUNGE"))


# -- IMAP without UIDPLUS --------------------------------------------------------------------

def test_without_uidplus_another_clients_deleted_message_is_archived_before_any_expunge(store):
    with FakeImap(MESSAGES, uidplus=False, flagged={2}) as fake:
        result = JournalPuller(account(fake, "imap"), store).poll_once()
        assert result.imported == 3
        assert stored(store) == set(map(digest, MESSAGES.values()))
        assert sorted(fake.expunged) == [1, 2, 3]


def test_without_uidplus_nothing_is_expunged_while_a_deleted_message_is_not_archived(store):
    with FakeImap(MESSAGES, uidplus=False, flagged={2}) as fake:
        def fetch(session, tag, args):
            if args[0] == "2":
                session.send(fetch_response(2, 3, MESSAGES[3]))  # refused: not UID 2
                session.ok(tag)
            else:
                session.do_UID_FETCH(tag, args)
        fake.handlers["UID FETCH"] = fetch
        result = JournalPuller(account(fake, "imap"), store).poll_once()
        assert fake.expunged == [] and "EXPUNGE" not in fake.commands
        assert any(problem.startswith("not expunged") for problem in result.problems)
        assert stored(store) == {digest(MESSAGES[1]), digest(MESSAGES[3])}


# -- IMAP: size and volume ---------------------------------------------------------------------

def announce_10_gb_for_uid_1(fake, fetched: list | None = None) -> None:
    """UID 1's FETCH answer announces a 10 GB literal (and sends 1 MiB of it), then the
    server hangs up; the others are answered as they should be. `fetched` gets each UID
    asked for."""
    def fetch(session, tag, args):
        if fetched is not None:
            fetched.append(args[0])
        if args[0] == "1":
            session.send(b"* 1 FETCH (UID 1 BODY[] {10000000000}\r\n" + b"X" * MiB)
            return "bye"
        session.do_UID_FETCH(tag, args)
    fake.handlers["UID FETCH"] = fetch


def test_a_literal_over_the_largest_message_is_not_read_and_the_rest_goes_on(store):
    with FakeImap(MESSAGES) as fake:
        announce_10_gb_for_uid_1(fake)
        puller = JournalPuller(account(fake, "imap"), store, max_message_bytes=MiB)
        result = puller.poll_once()
        assert "10000000000-byte message" in result.error and fake.expunged == []
        assert store.journal_state("fake")["state"] == "error"

        again = puller.poll_once()  # left on the server; the others are taken
        assert again.error is None and sorted(fake.expunged) == [2, 3]
        assert "777:1 left on the server" in again.problems[0]


@pytest.mark.parametrize("lines, length, cap", [
    (5000, 900, {"untagged_responses": 1000}),         # many short lines: the count's cap
    (200, 100_000, {"untagged_text_bytes": MiB}),      # long lines: the text's cap
])
def test_a_flood_of_untagged_responses_ends_the_session_at_its_cap(store, lines, length, cap):
    with FakeImap(MESSAGES) as fake:
        def search(session, tag, args):
            try:
                for _ in range(lines):
                    session.send(b"* OK [ALERT] flood " + b"x" * length + b"\r\n")
                session.do_UID_SEARCH(tag, args)
            except OSError:
                return "bye"
        fake.handlers["UID SEARCH"] = search
        puller = JournalPuller(account(fake, "imap"), store)
        puller.limits = Limits(message_bytes=MiB, **cap)
        result = puller.poll_once()
        assert "untagged responses" in result.error and fake.expunged == []


def test_a_mailbox_of_200k_messages_can_be_listed(store):
    many = {uid: b"x" for uid in range(1, 200_001)}
    with FakeImap(many) as fake:
        with Watchdog(threading.Event()) as watchdog:
            mailbox = journal.open_mailbox(account(fake, "imap"), 30,
                                           Limits.for_largest_message(MiB), watchdog)
            keys = mailbox.keys()
            mailbox.close(clean=True)
        assert len(keys) == 200_000 and keys[0] == "777:1" and keys[-1] == "777:200000"


# -- stalls ----------------------------------------------------------------------------------

def _trickle(session, tag, args):
    try:
        for byte in b"* SEARCH 1 2 3\r\n":
            session.send(bytes([byte]))
            time.sleep(0.5)
    except OSError:
        pass
    return "bye"


def test_a_server_trickling_bytes_ends_the_poll_at_the_command_deadline(store):
    with FakeImap(MESSAGES) as fake:
        fake.handlers["UID SEARCH"] = _trickle
        puller = JournalPuller(account(fake, "imap"), store, command_seconds=2)
        seen = []
        threading.Timer(1, lambda: seen.append(store.journal_state("fake")["state"])).start()
        started = time.monotonic()
        result = puller.poll_once()
        assert time.monotonic() - started < 6
        assert "did not complete a command in 2 s" in result.error and fake.expunged == []
        assert seen[0].startswith("polling since ")


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_stopping_the_service_ends_a_stalled_poll_promptly(store, protocol):
    fake = FakeImap(MESSAGES) if protocol == "imap" else FakePop3([("u1", message(1))])
    with fake:
        fake.handlers["UID SEARCH" if protocol == "imap" else "UIDL"] = \
            (_trickle if protocol == "imap" else lambda s, a: _trickle(s, b"", a))
        puller = JournalPuller(account(fake, protocol, poll_seconds=3600), store)
        stop = threading.Event()
        thread = threading.Thread(target=puller.run, args=(stop,), daemon=True)
        thread.start()
        time.sleep(1.5)
        stop.set()
        thread.join(timeout=5)
        assert not thread.is_alive()
        assert "shutting down" in store.journal_state("fake")["last_error"]


# -- POP3 ------------------------------------------------------------------------------------

AWKWARD = [
    ("bare CR", b"line1\r\n\rstarts with CR\r\n\r\n\r.dot after CR\r\nx\r\r\nend\r\n"),
    ("dots", b".leading dot\r\n..two dots\r\n.\r\n. \r\nend\r\n"),
    ("a 5 MiB line", b"A" * (5 * MiB) + b"\r\n"),
    ("no final line end", b"last line\r\nno end"),
]


@pytest.mark.parametrize("name,body", AWKWARD, ids=[name for name, _ in AWKWARD])
def test_pop3_messages_are_archived_byte_exact(store, name, body):
    raw = message(1, body)
    with FakePop3([("u1", raw), ("u2", message(2))]) as fake:
        result = JournalPuller(account(fake, "pop3"), store).poll_once()
        assert (result.error, result.imported) == (None, 2)
        expected = raw if raw.endswith(b"\r\n") else raw + b"\r\n"  # the protocol adds it
        assert store.get(digest(expected)) == expected
        assert fake.deleted == ["u1", "u2"]


def test_pop3_a_message_listed_over_the_cap_is_left_and_the_others_are_taken(store):
    with FakePop3([("u1", message(1, b"B" * (3 * MiB))), ("u2", message(2))]) as fake:
        result = JournalPuller(account(fake, "pop3"), store, max_message_bytes=MiB).poll_once()
        assert result.error is None and fake.deleted == ["u2"] and fake.commands.count("RETR") == 1
        assert result.problems[0].startswith("u1 left on the server: 3145")


def test_pop3_a_message_over_the_cap_but_listed_small_is_left_and_the_others_taken(store):
    with FakePop3([("u1", message(1, b"B" * (3 * MiB))), ("u2", message(2))]) as fake:
        fake.handlers["LIST"] = lambda session, args: session.send(b"-ERR no LIST\r\n")
        puller = JournalPuller(account(fake, "pop3"), store, max_message_bytes=MiB)
        result = puller.poll_once()
        assert "over" in result.error and fake.deleted == []
        again = puller.poll_once()
        assert again.error is None and fake.deleted == ["u2"]
        assert again.problems[0].startswith("u1 left on the server")


def test_pop3_an_endless_retr_ends_the_session_and_deletes_nothing(store):
    with FakePop3([("u1", message(1)), ("u2", message(2))]) as fake:
        def endless(session, args):
            if args[0] == "1":
                session.do_RETR(args)
                return
            session.send(b"+OK\r\n")
            try:
                while True:
                    session.send(b"Y" * 1000 + b"\r\n")
            except OSError:
                return "bye"
        fake.handlers["RETR"] = endless
        result = JournalPuller(account(fake, "pop3"), store, max_message_bytes=MiB).poll_once()
        assert "over" in result.error and fake.deleted == []


def test_pop3_keep_on_server_takes_every_message_of_a_duplicated_uidl(store):
    raws = [message(1), message(2), message(3)]
    with FakePop3([("u1", raws[0]), ("u1", raws[1]), ("u3", raws[2])]) as fake:
        result = JournalPuller(account(fake, "pop3", keep_on_server=True), store).poll_once()
        assert result.imported == 3 and stored(store) == set(map(digest, raws))
        assert "UIDL 'u1' names 2 messages" in result.problems[0]
        assert store.journal_state("fake")["problems"] == result.problems


def test_pop3_multiline_helper_round_trips():
    assert multiline(b".a\r\nb") == b"..a\r\nb\r\n.\r\n"


def test_pop3_an_endless_answer_to_poplibs_own_commands_is_capped():
    with FakePop3([("u1", message(1))]) as fake:
        def capa(session, args):
            session.send(b"+OK\r\n")
            try:
                while True:
                    session.send(b"CAPABILITY " + b"Z" * 1000 + b"\r\n")
            except OSError:
                return "bye"
        fake.handlers["CAPA"] = capa
        with Watchdog(threading.Event()) as watchdog:
            client = journal.BoundedPOP3("127.0.0.1", fake.port, timeout=10, watchdog=watchdog,
                                         limits=Limits(message_bytes=MiB, line_bytes=MiB))
            with pytest.raises(journal.MessageTooLarge):
                client.capa()
            client.close()


# -- after a review of the fixes -----------------------------------------------------------

def test_pop3_a_dot_line_the_server_did_not_stuff_deletes_nothing(store):
    """The answer ended at the inner '.', the cut copy was stored, DELE sent, the rest of
    the message read as DELE's reply, and QUIT still committed the deletion."""
    cut = message(1, b"before\r\n.\r\nafter the dot line\r\n")
    with FakePop3([("u2", message(2)), ("u1", cut), ("u3", message(3))]) as fake:
        def unstuffed(session, args):
            n = int(args[0])
            raw = session.fake.messages[n][1]
            session.send(b"+OK\r\n" + (raw + b".\r\n" if n == 2 else multiline(raw)))
        fake.handlers["RETR"] = unstuffed
        result = JournalPuller(account(fake, "pop3"), store).poll_once()
        assert "where LIST said" in result.error
        assert fake.deleted == []  # not even message 1's, taken before it: no QUIT
        assert digest(cut[:cut.index(b".\r\n")]) not in stored(store)


def test_pop3_a_malformed_uidl_line_is_skipped_and_the_others_taken(store):
    with FakePop3([("u1", message(1)), ("u2", message(2))]) as fake:
        def uidl(session, args):
            session.send(b"+OK\r\n\r\n1\r\nx u9\r\n1 u1\r\n2 u2\r\n.\r\n")
        fake.handlers["UIDL"] = uidl
        result = JournalPuller(account(fake, "pop3"), store).poll_once()
        assert result.error is None and sorted(fake.deleted) == ["u1", "u2"]
        assert sum("malformed UIDL line" in problem for problem in result.problems) == 3


def test_imap_a_folder_said_to_hold_a_trillion_messages_is_an_error_at_once(store):
    with FakeImap(MESSAGES) as fake:
        def select(session, tag, args):
            session.send(b"* 999999999999 EXISTS\r\n* OK [UIDVALIDITY 777] ok\r\n")
            session.send(tag + b" OK [READ-WRITE] SELECT completed\r\n")
        fake.handlers["SELECT"] = select
        started = time.monotonic()
        result = JournalPuller(account(fake, "imap"), store).poll_once()
        assert "999999999999 messages" in result.error and time.monotonic() - started < 30
        assert fake.expunged == []


def test_a_command_that_keeps_bringing_bytes_is_not_cut_and_a_trickle_is():
    """A fixed deadline cut a large message on a slow link (50 MB needs 83 KB/s in 600 s):
    past the deadline, only a command bringing under MIN_BYTES_PER_SECOND is ended."""
    from services.intake import journal_wire
    stop = threading.Event()
    with Watchdog(stop, command_seconds=0.3) as flowing, \
            Watchdog(stop, command_seconds=0.3) as trickling:
        flowing.arm(), trickling.arm()
        for _ in range(10):
            time.sleep(0.1)
            flowing.brought(journal_wire.MIN_BYTES_PER_SECOND)  # ten times the pace needed
            trickling.brought(1)
        assert flowing.why is None
        assert "at under" in (trickling.why or "")


# -- what was left on the server stays left across restarts -----------------------------------

def test_a_message_left_on_the_server_is_passed_by_after_a_restart_until_retried(store):
    """The puller remembered what it left (too large here) in memory only: each restart of
    the service fetched it again (a transfer of up to the largest message, then an error
    poll). The account's status keeps it now, and `journal poll --retry-left` forgets it."""
    fetched = []
    with FakeImap(MESSAGES) as fake:
        announce_10_gb_for_uid_1(fake, fetched)

        def restarted():
            return JournalPuller(account(fake, "imap"), store, max_message_bytes=MiB)
        assert "10000000000-byte message" in restarted().poll_once().error
        again = restarted().poll_once()
        assert again.error is None and fetched.count("1") == 1
        assert again.problems[0].startswith("777:1 left on the server")
        assert list(store.journal_state("fake")["left_on_server"]) == ["777:1"]
        assert restarted().retry_left() == 1
        assert "10000000000-byte message" in restarted().poll_once().error
        assert fetched.count("1") == 2


def test_fetches_that_break_the_session_are_counted_across_restarts(store):
    """A poisonous answer that also ended the service (a restart per poll) was fetched
    forever: the count of polls in a row it broke lived in the process."""
    with FakeImap(MESSAGES) as fake:
        break_fetches_of_uid_1(fake)
        for _ in range(journal.FETCH_ATTEMPTS):
            assert JournalPuller(account(fake, "imap"), store).poll_once().error
        result = JournalPuller(account(fake, "imap"), store).poll_once()
        assert result.error is None and sorted(fake.expunged) == [2, 3]
        assert result.problems[0].startswith("777:1 left on the server: the session broke")


def test_a_message_left_on_the_server_is_forgotten_once_it_is_gone(store):
    with FakeImap(MESSAGES) as fake:
        announce_10_gb_for_uid_1(fake)
        JournalPuller(account(fake, "imap"), store, max_message_bytes=MiB).poll_once()
        assert list(store.journal_state("fake")["left_on_server"]) == ["777:1"]
    with FakeImap({3: message(3)}) as fake:  # someone removed it meanwhile
        result = JournalPuller(account(fake, "imap"), store, max_message_bytes=MiB).poll_once()
        assert result.problems == [] and store.journal_state("fake")["left_on_server"] == {}
