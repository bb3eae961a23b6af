"""SMTP intake with real clients (smtplib and swaks) against `archiver serve smtp`/`run`."""
import hashlib
import os
import smtplib
import socket
import ssl
import subprocess
import threading
import time
from email.message import EmailMessage

import pytest

from tests.integration.processes import ArchiverService, models_file

pytestmark = pytest.mark.integration

TRUSTED, UNTRUSTED = "127.0.0.1", "127.0.0.2"  # the loopback /8 gives us two "servers"
SMTP_CONFIG = {"trusted_servers": ["127.0.0.1/32"], "local_domains": ["example.com"],
               "journal_recipient": "journal@archive.example.com"}


def message(n: int, to: str = "bob@example.com", size: int = 0) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "alice@example.org", to, f"smtp test {n}"
    msg["Message-ID"] = f"<smtp{n}.{time.monotonic_ns()}@example.org>"
    msg.set_content(f"message body {n}\n" + "x" * size)
    return msg.as_bytes().replace(b"\n", b"\r\n")


def digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def send(service, raw: bytes, to=("bob@example.com",), source=TRUSTED, sender="alice@example.org"):
    with smtplib.SMTP("127.0.0.1", service.smtp_port, source_address=(source, 0), timeout=30) as c:
        return c.sendmail(sender, list(to), raw)


@pytest.fixture
def smtp_service(tmp_path):
    service = ArchiverService(tmp_path, {"smtp": dict(SMTP_CONFIG)}, command=("serve", "smtp"))
    yield service.start()
    service.stop()


def test_a_trusted_server_hands_in_mail_for_any_domain_stored_byte_exact(smtp_service):
    raw = message(1, to="someone@elsewhere.net")
    assert send(smtp_service, raw, to=["someone@elsewhere.net"]) == {}
    shown = smtp_service.cli("show", digest(raw), "--json")
    assert shown.returncode == 0, shown.stderr
    assert '"recipients": ["someone@elsewhere.net"]' in shown.stdout
    raw_back = subprocess.run([*map(str, (smtp_service.process.args[0], "show", digest(raw),
                                          "--raw", "--data", smtp_service.data))],
                              capture_output=True, check=True).stdout
    assert raw_back == raw


def test_each_message_logs_one_line_not_one_per_command(smtp_service):
    raw = message(11)
    assert send(smtp_service, raw) == {}
    logged = smtp_service.log.read_text()
    assert logged.count(f"archived {digest(raw)} from {TRUSTED}") == 1
    # aiosmtpd's per-command INFO trace (MAIL, RCPT, DATA, QUIT) costs the event loop a
    # fifth of its time at 8 clients; it is not written.
    assert "sender: alice@example.org" not in logged and ">> b'MAIL" not in logged


def test_other_senders_only_for_local_domains_and_the_journal_recipient(smtp_service):
    assert send(smtp_service, message(2), to=["bob@example.com"], source=UNTRUSTED) == {}
    assert send(smtp_service, message(3), to=["journal@archive.example.com"], source=UNTRUSTED) == {}
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(smtp_service, message(4), to=["carol@elsewhere.net"], source=UNTRUSTED)
    code, reason = refused.value.recipients["carol@elsewhere.net"]
    assert code == 550 and b"elsewhere.net is not a local domain" in reason
    assert smtp_service.stats()["stored"] == 2


def test_journal_recipient_is_not_an_envelope_recipient(smtp_service):
    raw = message(5)
    send(smtp_service, raw, to=["journal@archive.example.com", "dave@example.com"])
    shown = smtp_service.cli("show", digest(raw), "--json").stdout
    assert '"recipients": ["dave@example.com"]' in shown


def test_forwarding_mode_takes_mail_from_trusted_servers_only(tmp_path):
    config = {"smtp": {**SMTP_CONFIG, "forwarding": True}}
    service = ArchiverService(tmp_path, config, command=("serve", "smtp")).start()
    try:
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            send(service, message(6), source=UNTRUSTED)
        assert refused.value.smtp_code == 550
        assert b"127.0.0.2 is not a trusted server" in refused.value.smtp_error
        assert send(service, message(7), to=["x@anywhere.net"], source=TRUSTED) == {}
    finally:
        service.stop()


def test_starttls_when_a_certificate_is_configured(tmp_path):
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    config = {"smtp": {**SMTP_CONFIG, "tls": {"cert": str(cert), "key": str(key)}}}
    service = ArchiverService(tmp_path, config, command=("serve", "smtp")).start()
    try:
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        raw = message(8)
        with smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=30) as client:
            client.ehlo()
            assert client.has_extn("starttls")
            client.starttls(context=context)
            client.ehlo()
            assert client.sock.version().startswith("TLS")
            client.sendmail("alice@example.org", ["bob@example.com"], raw)
        assert digest(raw) in service.cli("show", digest(raw), "--json").stdout
    finally:
        service.stop()


def test_swaks_with_pipelining(smtp_service, tmp_path):
    raw = message(9)
    (tmp_path / "m.eml").write_bytes(raw)
    done = subprocess.run(["swaks", "--server", f"127.0.0.1:{smtp_service.smtp_port}",
                           "--from", "alice@example.org", "--to", "bob@example.com",
                           "--pipeline", "--data", str(tmp_path / "m.eml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PIPELINING" in done.stdout and "250 2.0.0 archived" in done.stdout
    assert smtp_service.stats()["stored"] == 1


def test_many_concurrent_clients_all_get_250_and_everything_is_stored(smtp_service):
    sent, failures = [], []

    def client(k):
        try:
            with smtplib.SMTP("127.0.0.1", smtp_service.smtp_port, timeout=60) as c:
                for n in range(15):
                    raw = message(1000 * k + n)
                    c.sendmail("alice@example.org", ["bob@example.com"], raw)
                    sent.append(digest(raw))
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(repr(exc))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [] and len(sent) == 300
    assert smtp_service.stats()["stored"] == 300


def test_a_client_that_disconnects_mid_data_stores_nothing(smtp_service):
    with socket.create_connection(("127.0.0.1", smtp_service.smtp_port)) as raw_socket:
        stream = raw_socket.makefile("rwb")
        stream.readline()
        for command in (b"EHLO test", b"MAIL FROM:<a@example.org>", b"RCPT TO:<b@example.com>",
                        b"DATA"):
            stream.write(command + b"\r\n")
            stream.flush()
            while (line := stream.readline())[3:4] == b"-":
                pass
        stream.write(b"Subject: cut short\r\n\r\nhalf a mess")
        stream.flush()
    time.sleep(0.5)
    assert smtp_service.stats()["stored"] == 0


def test_limits_of_the_model_size_concurrency_backlog_and_disk(tmp_path):
    models = models_file(tmp_path, smtp={"concurrency": 2, "max_message_mb": 1,
                                         "reserved_for_trusted": 1, "sessions_per_address": 1},
                         intake={"index_backlog": 3, "min_free_disk_mb": 1})
    service = ArchiverService(tmp_path, {"smtp": dict(SMTP_CONFIG)}, command=("serve", "smtp"),
                              models=models).start()
    try:
        with pytest.raises(smtplib.SMTPSenderRefused) as too_big:  # smtplib declares SIZE=
            send(service, message(10, size=2 * 1024 * 1024))
        assert too_big.value.smtp_code == 552
        with smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=30) as quiet:  # no SIZE=
            quiet.ehlo(), quiet.mail("alice@example.org"), quiet.rcpt("bob@example.com")
            assert quiet.data(message(11, size=2 * 1024 * 1024))[0] == 552
        first = smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=30)
        second = smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=30)
        with pytest.raises(smtplib.SMTPConnectError) as busy:
            smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=30)
        assert busy.value.smtp_code == 421
        first.quit(), second.quit()
        for n in range(4):  # no indexer runs: the backlog grows past 3
            send(service, message(20 + n), source=UNTRUSTED)
        time.sleep(1.2)  # the gate looks again once a second
        with pytest.raises(smtplib.SMTPDataError) as behind:
            send(service, message(30), source=UNTRUSTED)
        assert behind.value.smtp_code == 451 and b"the index is 4 messages behind" in behind.value.smtp_error
        assert service.stats()["stored"] == 4
    finally:
        service.stop()


def test_low_disk_answers_4xx(tmp_path):
    models = models_file(tmp_path, intake={"min_free_disk_mb": 10**9})
    service = ArchiverService(tmp_path, {"smtp": dict(SMTP_CONFIG)}, command=("serve", "smtp"),
                              models=models).start()
    try:
        with pytest.raises(smtplib.SMTPSenderRefused) as low:  # before the message is sent
            send(service, message(40))
        assert low.value.smtp_code == 451 and b"low on space" in low.value.smtp_error
    finally:
        service.stop()


def test_sigkill_under_load_keeps_every_acknowledged_message(tmp_path):
    service = ArchiverService(tmp_path, {"smtp": dict(SMTP_CONFIG)}, command=("serve", "smtp")).start()
    acknowledged, stop = [], threading.Event()

    def client(k):
        n = 0
        while not stop.is_set():
            raw = message(100000 * k + n)
            n += 1
            try:
                with smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=10) as c:
                    c.sendmail("alice@example.org", ["bob@example.com"], raw)
                acknowledged.append(digest(raw))
            except (OSError, smtplib.SMTPException):
                return  # the server died under us: this one was never acknowledged

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    service.kill()
    stop.set()
    for thread in threads:
        thread.join()
    assert len(acknowledged) > 20
    stored = set(service.cli("verify", "--json").stdout and _all_digests(service))
    assert set(acknowledged) <= stored


def _all_digests(service) -> set[str]:
    import lmdb
    env = lmdb.open(str(service.data / "store"), max_dbs=16, readonly=False)
    with env.begin() as txn:
        meta = env.open_db(b"meta", txn=txn)
        found = {key.hex() for key in txn.cursor(db=meta).iternext(values=False)}
    env.close()
    return found


def test_lines_longer_than_rfc_5321_allows_are_archived_not_bounced(smtp_service):
    raw = message(50) + b"X-Long: " + b"y" * 20000 + b"\r\n"
    raw = raw.replace(b"\r\n\r\n", b"\r\nX-Wide: " + b"z" * 5000 + b"\r\n\r\n", 1)
    assert send(smtp_service, raw) == {}
    assert smtp_service.stats()["stored"] == 1
