"""SMTP intake within its limits, with real clients (smtplib, raw sockets) against a real
`archiver serve smtp|journal`: sessions per address and reserved for trusted servers, the
first-command and idle timeouts, memory for concurrent DATA, back-pressure that keeps a
trusted share (issue 14)."""
import base64
import contextlib
import os
import select
import smtplib
import socket
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest

from firmware.models import load_models
from services.intake.smtp_data import SESSION_MEMORY_BYTES
from tests.integration.intake.test_smtp import (SMTP_CONFIG, TRUSTED, UNTRUSTED, digest,
                                                message, send)
from tests.integration.processes import ArchiverService, models_file
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
STRANGERS = [f"127.0.0.{n}" for n in range(10, 20)]  # ten more "hosts" on the loopback /8


def smtp_service(tmp_path, models=None, command=("serve", "smtp"), **smtp) -> ArchiverService:
    return ArchiverService(tmp_path, {"smtp": {**SMTP_CONFIG, **smtp}}, command=command,
                           models=models).start()


def open_session(service, source: str) -> tuple[socket.socket, bytes]:
    """A TCP connection from `source` and the first line the server says."""
    connection = socket.create_connection(("127.0.0.1", service.smtp_port), timeout=30,
                                          source_address=(source, 0))
    return connection, read_line(connection)


def read_line(connection: socket.socket) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        piece = connection.recv(1)
        if not piece:
            break
        line += piece
    return line


def open_sessions(service, sources: list[str]) -> tuple[list[socket.socket], list[bytes]]:
    """One session per source (in order, each held open); those refused are closed."""
    held, refusals = [], []
    for source in sources:
        connection, greeting = open_session(service, source)
        if greeting.startswith(b"220"):
            held.append(connection)
        else:
            refusals.append(greeting)
            connection.close()
    return held, refusals


def close_all(connections) -> None:
    for connection in connections:
        connection.close()


# -- sessions --------------------------------------------------------------------------

def test_forty_idle_connections_from_one_stranger_never_lock_out_a_trusted_server(tmp_path):
    limits = load_models().get(450).smtp  # the real profile: 40 sessions
    service = smtp_service(tmp_path)
    held = []
    try:
        held, refusals = open_sessions(service, [UNTRUSTED] * (limits.concurrency + 5))
        assert len(held) == limits.sessions_per_address
        assert all(r.startswith(b"421 4.3.2 too many connections from 127.0.0.2") for r in refusals)
        raw = message(1)
        assert send(service, raw, source=TRUSTED) == {}  # 250
        other, _ = open_sessions(service, [STRANGERS[0]])  # the limit is per address
        held += other
        assert len(other) == 1
        assert service.stats()["stored"] == 1
    finally:
        close_all(held)
        service.stop()


def test_strangers_from_many_addresses_leave_the_trusted_servers_their_reserved_sessions(tmp_path):
    limits = load_models().get(450).smtp
    service = smtp_service(tmp_path)
    held, trusted = [], []
    try:
        sources = [s for s in STRANGERS for _ in range(limits.sessions_per_address)]
        assert len(sources) >= limits.concurrency  # enough to take every session
        held, refusals = open_sessions(service, sources)
        assert len(held) == limits.concurrency - limits.reserved_for_trusted
        assert b"servers that are not trusted" in refusals[0]
        trusted = [smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=30,
                                source_address=(TRUSTED, 0))
                   for _ in range(limits.reserved_for_trusted)]
        raws = [message(100 + n) for n in range(len(trusted))]
        for client, raw in zip(trusted, raws):
            assert client.sendmail("alice@example.org", ["bob@example.com"], raw) == {}
        with pytest.raises(smtplib.SMTPConnectError) as full:  # now every session is taken
            smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=30, source_address=(TRUSTED, 0))
        assert full.value.smtp_code == 421
        assert service.stats()["stored"] == len(raws)
    finally:
        close_all(held)
        for client in trusted:
            client.close()
        service.stop()


# -- timeouts --------------------------------------------------------------------------

def test_a_session_silent_before_its_first_command_is_closed_and_its_slot_freed(tmp_path):
    limits = load_models().get(450).smtp
    service = smtp_service(tmp_path, first_command_seconds=1, idle_seconds=60)
    talking = None
    try:
        talking = smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=30,
                               source_address=(UNTRUSTED, 0))
        talking.ehlo()
        silent, _ = open_sessions(service, [UNTRUSTED] * (limits.sessions_per_address - 1))
        for connection in silent:
            assert read_line(connection).startswith(b"421 4.4.2")
            assert connection.recv(1) == b""  # closed by the server
        close_all(silent)
        assert talking.noop()[0] == 250  # it spoke first: its idle timeout is 60 s
        again, _ = open_sessions(service, [UNTRUSTED] * (limits.sessions_per_address - 1))
        assert len(again) == limits.sessions_per_address - 1  # the slots came back
        close_all(again)
    finally:
        if talking is not None:
            talking.close()
        service.stop()


def test_the_idle_timeout_closes_a_silent_session_but_not_a_slow_data_transfer(tmp_path):
    service = smtp_service(tmp_path, first_command_seconds=10, idle_seconds=3)
    try:
        connection, _ = open_session(service, UNTRUSTED)
        connection.sendall(b"EHLO stranger\r\n")
        while not read_line(connection).startswith(b"250 "):
            pass
        assert read_line(connection).startswith(b"421 4.4.2")  # 3 s of silence
        connection.close()

        raw = message(7, size=2000)
        with smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=30,
                          source_address=(TRUSTED, 0)) as client:
            client.ehlo(), client.mail("alice@example.org"), client.rcpt("bob@example.com")
            client.putcmd("data")
            assert client.getreply()[0] == 354
            for n in range(0, len(raw), len(raw) // 12):  # over 6 s, 0.5 s between pieces
                client.send(raw[n:n + len(raw) // 12])
                time.sleep(0.5)
            client.send(b".\r\n")
            assert client.getreply()[0] == 250
        assert digest(raw) in service.cli("show", digest(raw), "--json").stdout
    finally:
        service.stop()


# -- sessions that deliver nothing ---------------------------------------------------------

def command(connection: socket.socket, line: bytes) -> bytes:
    connection.sendall(line + b"\r\n")
    return read_line(connection)


def greeted(service, source: str = UNTRUSTED) -> socket.socket:
    connection, greeting = open_session(service, source)
    assert greeting.startswith(b"220")
    connection.sendall(b"HELO stranger\r\n")
    assert read_line(connection).startswith(b"250")
    return connection


def test_a_session_that_only_sends_junk_commands_or_errors_is_closed(tmp_path):
    """NOOP, RSET, VRFY, EXPN and HELP deliver nothing; nor do commands in error: a client
    that sends only those held its session (and its slot) for as long as it liked."""
    service = smtp_service(tmp_path)
    try:
        junk = [b"NOOP", b"RSET", b"VRFY bob@example.com", b"EXPN staff", b"HELP"]
        connection = greeted(service)
        for n in range(100):
            assert not command(connection, junk[n % 5]).startswith(b"421")
        assert command(connection, b"NOOP").startswith(b"421 4.7.0 too many commands")
        assert connection.recv(1) == b""
        connection = greeted(service)
        for _ in range(20):  # (aiosmtpd itself closes after 5 unknown commands)
            assert command(connection, b"RCPT TO:<bob@example.com>").startswith(b"503")
        assert command(connection, b"RCPT TO:<bob@example.com>").startswith(b"503")
        assert read_line(connection).startswith(b"421 4.7.0 too many errors")
        assert connection.recv(1) == b""
    finally:
        service.stop()


def test_a_message_delivered_starts_the_count_of_junk_commands_again(tmp_path):
    service = smtp_service(tmp_path)
    try:
        with smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=30,
                          source_address=(UNTRUSTED, 0)) as client:
            client.ehlo()
            for n in range(3):
                for _ in range(90):
                    assert client.noop()[0] == 250
                assert client.sendmail("alice@example.org", ["bob@example.com"],
                                       message(200 + n)) == {}
            assert client.noop()[0] == 250
    finally:
        service.stop()


def test_under_stress_strangers_sessions_are_held_to_the_short_timeout(tmp_path):
    """Slow clients from many addresses holding the strangers' sessions: past 3/4 of them, a
    stranger's session gets stress_idle_seconds (before its first command, after a NOOP) and
    in DATA needs 1 KiB in it (a byte a second does not keep it); a trusted server keeps
    idle_seconds. Five strangers greeted before the stress hold it (their timers were set at
    60 s, before it), so it lasts while each session under test is open, however slow this
    machine is: the sessions under test send their commands at once (RFC 2920 pipelining)."""
    smtp = {"concurrency": 10, "sessions_per_address": 2, "reserved_for_trusted": 2}
    service = smtp_service(tmp_path, models=models_file(tmp_path, smtp=smtp),
                           first_command_seconds=60, idle_seconds=60, stress_idle_seconds=3)
    held = []
    try:
        held = [greeted(service, source) for source in STRANGERS[:5]]  # 5 of 8 strangers' slots
        trusted = greeted(service, TRUSTED)
        silent = pipelined(service, STRANGERS[5], [])  # 6 of 8: stressed from here
        nooping = pipelined(service, STRANGERS[6], [b"HELO stranger", b"NOOP"])
        dripping = pipelined(service, STRANGERS[7], [b"HELO stranger", b"MAIL FROM:<a@example.org>",
                                                     b"RCPT TO:<b@example.com>", b"DATA"])
        trusted.sendall(b"NOOP\r\n")  # under stress: a trusted server's timer stays 60 s
        assert read_line(trusted).startswith(b"250")
        trusted_heard = time.monotonic()
        assert [read_line(nooping)[:3] for _ in range(2)] == [b"250", b"250"]
        assert [read_line(dripping)[:3] for _ in range(4)] == [b"250", b"250", b"250", b"354"]
        assert read_line(silent).startswith(b"421 4.4.2"), "no first command in time"
        assert read_line(nooping).startswith(b"421 4.4.2"), "idle after a NOOP"
        assert drip_until_answered(dripping).startswith(b"421 4.4.2"), "a byte a second"
        time.sleep(max(0.0, trusted_heard + 4 - time.monotonic()))  # past the short timeout
        assert command(trusted, b"NOOP").startswith(b"250")
        assert all(command(connection, b"NOOP").startswith(b"250") for connection in held)
        trusted.close()
    finally:
        close_all(held)
        service.stop()


def pipelined(service, source: str, lines: list[bytes]) -> socket.socket:
    """A session from `source` whose command lines are sent at once, its greeting read:
    under stress the server's timer is seconds short, so no round trip between them."""
    connection = socket.create_connection(("127.0.0.1", service.smtp_port), timeout=30,
                                          source_address=(source, 0))
    if lines:  # before the greeting is read: in the server's socket as its timer starts
        connection.sendall(b"".join(line + b"\r\n" for line in lines))
    assert read_line(connection).startswith(b"220")
    return connection


def drip_until_answered(connection: socket.socket, most_bytes: int = 60) -> bytes:
    """Send DATA a byte a second until the server says something; what it says."""
    for _ in range(most_bytes):
        if select.select([connection], [], [], 1.0)[0]:
            return read_line(connection)
        with contextlib.suppress(OSError):  # closed: its reply is still to be read
            connection.sendall(b"x")
    return b""


def test_without_stress_a_strangers_session_keeps_its_idle_timeout(tmp_path):
    service = smtp_service(tmp_path, first_command_seconds=60, idle_seconds=60,
                           stress_idle_seconds=1)
    try:
        connection = greeted(service)
        time.sleep(3)
        assert command(connection, b"NOOP").startswith(b"250")
        connection.close()
    finally:
        service.stop()


# -- memory ----------------------------------------------------------------------------

def attachment_message(n: int, size: int) -> bytes:
    """A message of about `size` bytes: a random attachment, base64 as mail carries it."""
    body = base64.encodebytes(os.urandom(size * 3 // 4)).replace(b"\n", b"\r\n")
    return (f"From: alice@example.org\r\nTo: bob@example.com\r\nSubject: big {n}\r\n"
            f"Message-ID: <big{n}.{time.monotonic_ns()}@example.org>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
            "\r\n").encode() + body


def peak_rss(pid: int) -> int:
    """The process's resident set high-water mark (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_concurrent_large_messages_stay_within_the_memory_bound_of_the_profile(tmp_path):
    # Model 450 scaled down ~6x: four messages of 15 MiB at once stand for four of 92 MB.
    smtp = {"concurrency": 8, "max_message_mb": 16, "sessions_per_address": 4,
            "reserved_for_trusted": 4, "data_memory_mb": 4 * 16 + 16}
    service = smtp_service(tmp_path, models=models_file(tmp_path, smtp=smtp))
    try:
        assert send(service, message(0)) == {}  # everything SMTP imports is loaded
        server = psutil.Process(service.process.pid)
        baseline = server.memory_info().rss
        Path(f"/proc/{server.pid}/clear_refs").write_text("5")  # VmHWM := RSS now
        raws = [attachment_message(n, 15 * MiB) for n in range(4)]
        replies, threads = [], [threading.Thread(target=lambda raw=raw: replies.append(
            send(service, raw))) for raw in raws]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert replies == [{}] * 4
        grown = peak_rss(server.pid) - baseline
        # models.yaml: SMTP's memory is at most concurrency x 1.5 MiB + data_memory_mb.
        bound = smtp["concurrency"] * SESSION_MEMORY_BYTES + smtp["data_memory_mb"] * MiB
        assert grown <= bound, f"grew {grown / MiB:.0f} MiB, bound {bound / MiB:.0f} MiB"
        assert all(digest(raw) in service.cli("show", digest(raw), "--json").stdout
                   for raw in raws)
        assert not any((service.data / "spool").iterdir())  # spooled files never have names
    finally:
        service.stop()


def awkward_messages() -> list[bytes]:
    """Shapes the spool must keep byte-exact: dot lines (stuffed by the client) cut by the
    read limit, a 2 MiB line, 8-bit bytes, bare CRs, around the 1 MiB in-memory mark."""
    head = b"From: alice@example.org\r\nTo: bob@example.com\r\nSubject: awkward\r\n\r\n"
    dots = b"." * (200 * 1024) + b"\r\n"
    return [head + b"\r\n".join([b".x", b"..", dots * 3, b"\xe4\xf6\xfc\xff 8-bit", b"a\rb"]) + b"\r\n",
            head + b"z" * (2 * MiB) + b"\r\n.\r\n..\r\n",
            head + b"q" * (MiB - len(head) - 2) + b"\r\n",
            head + (b".\r" * 1000 + b"\r\n") * 600]


def test_data_of_any_line_length_is_stored_byte_exact_in_memory_or_spooled(tmp_path):
    service = smtp_service(tmp_path)
    try:
        raws = awkward_messages()
        for raw in raws:
            assert send(service, raw, source=UNTRUSTED) == {}
        for raw in raws:
            shown = subprocess.run([service.process.args[0], "show", digest(raw), "--raw",
                                    "--data", str(service.data)], capture_output=True)
            assert shown.returncode == 0 and shown.stdout == raw
    finally:
        service.stop()


def test_a_spool_that_cannot_be_written_answers_451_and_smtp_goes_on(tmp_path):
    service = smtp_service(tmp_path)
    try:
        spool = service.data / "spool"
        spool.rmdir()
        spool.write_bytes(b"")  # no directory to spool to
        with pytest.raises(smtplib.SMTPDataError) as failed:
            send(service, attachment_message(1, 2 * MiB), source=TRUSTED)
        assert failed.value.smtp_code == 451
        assert b"could not be spooled (Not a directory)" in failed.value.smtp_error
        assert send(service, message(2), source=TRUSTED) == {}  # small ones stay in memory
        assert service.stats()["stored"] == 1
    finally:
        service.stop()


# -- back-pressure ---------------------------------------------------------------------

def test_past_the_index_backlog_strangers_get_451_and_trusted_servers_keep_a_share(tmp_path):
    models = models_file(tmp_path, intake={"index_backlog": 3})
    service = smtp_service(tmp_path, models=models)  # no indexer runs: the backlog grows
    try:
        for n in range(4):
            assert send(service, message(200 + n), source=TRUSTED) == {}
        time.sleep(1.2)  # the gate looks again once a second
        with pytest.raises(smtplib.SMTPDataError) as behind:
            send(service, message(210), source=UNTRUSTED)
        assert behind.value.smtp_code == 451
        assert b"the index is 4 messages behind (limit 3)" in behind.value.smtp_error
        for n in range(3):  # 250 up to a backlog of 7: the trusted share is 2 x 3
            assert send(service, message(211 + n), source=TRUSTED) == {}
        time.sleep(1.2)
        with pytest.raises(smtplib.SMTPDataError) as far_behind:  # past the trusted share
            send(service, message(220), source=TRUSTED)
        assert far_behind.value.smtp_code == 451
        assert b"the index is 7 messages behind (limit 6)" in far_behind.value.smtp_error
        assert service.stats()["stored"] == 7
    finally:
        service.stop()


def test_past_the_index_backlog_the_journal_mailbox_keeps_the_trusted_share(tmp_path, dovecot):
    models = models_file(tmp_path, intake={"index_backlog": 2})
    account = dovecot.account_settings("imap", "tls", name="exchange", poll_seconds=1)
    service = ArchiverService(tmp_path, {"journal_accounts": [account]},
                              command=("serve", "journal"), models=models)
    for n in range(3):
        (tmp_path / f"{n}.eml").write_bytes(message(300 + n))
    imported = service.cli("import", "--no-index", *(tmp_path / f"{n}.eml" for n in range(3)))
    assert imported.returncode == 0, imported.stderr
    raw = message(310)
    dovecot.deliver(raw)
    service.start()
    try:  # a backlog of 3 is past index_backlog (2) but within the trusted share (4)
        wait_until(lambda: service.stats()["stored"] == 4, timeout=60,
                   what="the journal message past index_backlog")
        assert dovecot.count() == 0
        assert digest(raw) in service.cli("show", digest(raw), "--json").stdout
    finally:
        service.stop()
