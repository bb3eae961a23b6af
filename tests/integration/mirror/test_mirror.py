"""Mirroring between appliances running as processes in their own network namespaces."""
import contextlib
import json
import socket
import ssl
import subprocess
import threading
import time

import pytest

from tests.integration.mirror_nodes import MIRROR_PORT, Node, wait_searchable, wait_until
from tests.integration.netns import Lab

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def pair(tmp_path, request):
    """a and b joined; a test's indirect parameter: archiver.yaml mirror keys of both."""
    with joined_pair(tmp_path, **getattr(request, "param", {})) as nodes:
        yield nodes


@contextlib.contextmanager
def joined_pair(tmp_path, **mirror):
    """a and b joined with each other; `mirror`: archiver.yaml mirror keys of both."""
    with Lab(["a", "b"]) as lab:
        a, b = Node(lab, "a", tmp_path, mirror=mirror), Node(lab, "b", tmp_path, mirror=mirror)
        a.join(b)
        b.join(a)
        try:
            yield a, b
        finally:
            a.stop(), b.stop()


def test_mail_sent_to_either_is_searchable_on_both(pair, tmp_path):
    a, b = pair
    a.start(), b.start()
    sent = a.receive(tmp_path / "in", 30) + b.receive(tmp_path / "in", 20)
    wait_searchable(a, 50), wait_searchable(b, 50)
    assert a.digests() == b.digests() == sorted(sent)
    assert a.stats()["stored"] == b.stats()["stored"] == 50
    status = a.peer_status(b)
    assert status["state"] == "connected" and status["queued"] == 0 and status["copied"] == 30
    # Each side learns the other copies back at its next hello (mirror.rehello_seconds).
    wait_until(lambda: "one-way" not in a.peer_status(b)["reason"], 30, "a two-way status")


# A reply that does not come in 8 s (not the appliance's 30) shows the cut link: these
# batches are a few KiB.
@pytest.mark.parametrize("pair", [{"read_timeout_seconds": 8}], indirect=True,
                         ids=["read_timeout_8s"])
def test_a_cut_link_queues_then_drains(pair, tmp_path):
    a, b = pair
    a.start(), b.start()
    wait_until(lambda: a.peer_status(b)["state"] == "connected", what="a connected")
    a.lab.cut("b")
    sent = a.receive(tmp_path / "in", 40)
    wait_until(lambda: a.peer_status(b)["state"] == "offline", 90, "a to see b offline")
    status = a.peer_status(b)
    assert status["queued"] >= 40 and "unreachable" in (status["last_error"] or "")
    more = a.receive(tmp_path / "in", 10, start=40)
    assert a.peer_status(b)["queued"] >= 50
    a.lab.restore("b")
    wait_until(lambda: a.peer_status(b)["queued"] == 0, 120, "the queue to drain")
    wait_searchable(b, 50)
    assert b.digests() == sorted(sent + more) == a.digests()


def test_a_peer_that_comes_back_is_copied_to_at_once_not_after_the_backoff(tmp_path):
    # a retries b 120 s apart from its first failure on: once b is back, copying would
    # resume up to 120 s later if b's hello did not cut that short.
    with Lab(["a", "b"]) as lab:
        a = Node(lab, "a", tmp_path, mirror={"retry_first_seconds": 120,
                                             "retry_cap_seconds": 120})
        b = Node(lab, "b", tmp_path)
        a.join(b), b.join(a)
        a.start()
        try:
            sent = a.receive(tmp_path / "in", 5)
            wait_until(lambda: a.peer_status(b)["state"] == "offline", 30, "a to see b offline")
            b.start()
            wait_until(lambda: b.peer_status(a)["state"] == "connected", 60,
                       "b's hello to reach a")
            wait_until(lambda: a.peer_status(b)["queued"] == 0, 10, "a to copy to b at once")
            wait_searchable(b, 5)
            assert b.digests() == sorted(sent)
        finally:
            a.stop(), b.stop()


def test_sigkill_of_the_receiver_mid_copy_loses_and_doubles_nothing(pair, tmp_path):
    a, b = pair
    a.start(), b.start()
    # a sends at 16 Mbit/s: the ~30 MB copy (8 batches of 200, services.mirror.client)
    # takes about 15 s and its first batch about 2 s, so the kill lands mid-copy. (Bodies of
    # 60 KB, 90 MB, took 45 s and 6 s, and the import and both indexers three times the work.)
    a.lab.throttle("a", "16mbit")
    sent = a.receive(tmp_path / "in", 1500, filler=20_000)
    wait_until(lambda: b.stats()["stored"] > 0, 60, "copying to start", interval=0.05)
    b.kill()
    assert b.stats()["stored"] < 1500  # killed mid-copy
    a.lab.unthrottle("a")
    b.start()
    wait_until(lambda: a.peer_status(b)["queued"] == 0, 300, "the queue to drain")
    wait_searchable(b, 1500, timeout=300)
    assert b.digests() == sorted(sent)
    assert b.stats()["stored"] == 1500


def test_a_wrong_secret_gets_no_mail_and_status_says_why(tmp_path):
    with Lab(["a", "b"]) as lab:
        a, b = Node(lab, "a", tmp_path), Node(lab, "b", tmp_path)
        a.join(b)
        b.join(a, secret="quartz-lantern-vivid-saddle-prism-otter")
        a.start(), b.start()
        try:
            a.receive(tmp_path / "in", 10)
            wait_until(lambda: "authentication failed" in (a.peer_status(b)["last_error"] or ""),
                       60, "a to fail authenticating b")  # not "unreachable" while b starts
            status = a.peer_status(b)
            assert status["state"] == "offline" and status["queued"] == 10
            assert "authentication failed" in status["reason"]
            assert "secret" in status["reason"]
            assert b.stats()["stored"] == 0
        finally:
            a.stop(), b.stop()


@pytest.mark.parametrize("difference", ["firmware", "model"])
def test_another_firmware_or_model_is_refused_then_resumes(tmp_path, difference):
    with Lab(["a", "b"]) as lab:
        a = Node(lab, "a", tmp_path)
        b = Node(lab, "b", tmp_path, model=650 if difference == "model" else 450)
        a.join(b), b.join(a)
        a.start()
        b.start(**({"ARCHIVER_FIRMWARE_VERSION": "1.0.0.002"} if difference == "firmware" else {}))
        try:
            sent = a.receive(tmp_path / "in", 15)
            wait_until(lambda: a.peer_status(b)["state"] == "refused", 60, "a refusal")
            status = a.peer_status(b)
            expected = ("the peer runs firmware 1.0.0.002 but this system runs" if difference ==
                        "firmware" else "the peer is a model 650 but this system is a model 450")
            assert expected in status["reason"] and status["queued"] == 15
            assert b.stats()["stored"] == 0
            b.stop()  # the fix: b runs a's firmware and model again
            b.config.write_text(b.config.read_text().replace("model: 650", "model: 450"))
            b.env.pop("ARCHIVER_FIRMWARE_VERSION", None)
            b.start()
            wait_until(lambda: a.peer_status(b)["queued"] == 0, 90, "copying to resume")
            wait_searchable(b, 15, timeout=120)
            assert b.digests() == sorted(sent)
        finally:
            a.stop(), b.stop()


def test_three_systems_each_copy_to_both_others_without_echo(tmp_path):
    with Lab(["a", "b", "c"]) as lab:
        nodes = [Node(lab, name, tmp_path) for name in "abc"]
        for node in nodes:
            node.join(*[other for other in nodes if other is not node])
        for node in nodes:
            node.start()
        try:
            sent = []
            for count, node in zip((12, 8, 5), nodes):
                sent += node.receive(tmp_path / "in", count)
            for node in nodes:
                wait_searchable(node, 25)
            for node in nodes:
                assert node.digests() == sorted(sent)
                stats = node.stats()
                assert stats["stored"] == 25 and stats["duplicates"] == 0
                assert node.imported == _outbox_end(node)  # copies are never queued on
        finally:
            for node in nodes:
                node.stop()


def _outbox_end(node) -> int:
    import lmdb
    import struct
    env = lmdb.open(str(node.data / "store"), max_dbs=16)
    with env.begin() as txn:
        cursor = txn.cursor(db=env.open_db(b"outbox", txn=txn))
        end = struct.unpack(">Q", cursor.key())[0] if cursor.last() else 0
    env.close()
    return end


def test_joined_on_one_side_only_copies_one_way_and_says_so(tmp_path):
    with Lab(["a", "b"]) as lab:
        a, b = Node(lab, "a", tmp_path), Node(lab, "b", tmp_path)
        a.join(b)
        b.join()  # the secret, but no peer
        a.start(), b.start()
        try:
            sent = a.receive(tmp_path / "in", 5)
            b.receive(tmp_path / "in", 3)
            wait_searchable(b, 8)
            assert set(sent) <= set(b.digests())
            status = a.peer_status(b)
            assert status["state"] == "connected" and "one-way" in status["reason"]
            assert a.stats()["stored"] == 5
        finally:
            a.stop(), b.stop()


def test_a_listener_with_a_self_signed_certificate_gets_nothing(tmp_path):
    with Lab(["a", "b"]) as lab:
        a, b = Node(lab, "a", tmp_path), Node(lab, "b", tmp_path)
        a.join(b)
        cert, key = tmp_path / "evil.crt", tmp_path / "evil.key"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ed25519", "-nodes", "-days", "2",
                        "-subj", "/CN=evil", "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True)
        received = tmp_path / "received.bin"
        listener = lab.popen("b", ["python3", "-c", EVIL_LISTENER, str(cert), str(key),
                                   str(MIRROR_PORT), str(received)])
        a.start()
        try:
            a.receive(tmp_path / "in", 5)
            wait_until(lambda: "authentication failed" in (a.peer_status(b)["last_error"] or ""),
                       60, "a to refuse the listener")
            assert "authentication failed" in a.peer_status(b)["reason"]
            assert a.peer_status(b)["queued"] == 5
        finally:
            a.stop()
            listener.kill()
        # It was offered a pairing (SPAKE2: nothing to test a guess against) and nothing
        # else: no hello, no batch, not a byte of mail.
        got = received.read_bytes() if received.exists() else b""
        requests = [line.split(b" ")[1] for line in got.split(b"\r\n")
                    if line.startswith((b"POST ", b"GET "))]
        assert set(requests) <= {b"/v1/pair"}, requests
        assert b"mirrored body" not in got and b"Subject:" not in got


EVIL_LISTENER = """
import socket, ssl, sys
cert, key, port, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server = socket.create_server(("0.0.0.0", port))
while True:
    connection, _ = server.accept()
    try:
        tls = context.wrap_socket(connection, server_side=True)
        data = tls.recv(65536)
        open(out, "ab").write(data)
        tls.close()  # no answer: the client learns at once, not after its read timeout
    except (ssl.SSLError, OSError):
        pass
"""


def test_policies_holds_and_saved_searches_replicate_both_ways(pair, tmp_path):
    a, b = pair
    a.start(), b.start()
    a.cli("search", "--save", "case", "from:lawyer")
    a.cli("retention", "set", "--global-days", "365")
    a.cli("retention", "enable")
    expected = {"enabled": True, "global_days": 365, "saved": {}, "unusable": {},
                "waiting_for_hold_records": False}  # merged, then the records exchanged
    wait_until(lambda: json.loads(b.cli("retention", "show", "--json").stdout) == expected,
               60, "the policy to reach b")
    hold_id = b.cli("hold", "add", "--saved", "case").stdout.strip()
    wait_until(lambda: hold_id in a.cli("hold", "list").stdout, 60, "the hold to reach a")
    b.cli("retention", "set", "--global-days", "730")  # the later change wins everywhere
    wait_until(lambda: json.loads(a.cli("retention", "show", "--json").stdout)["global_days"]
               == 730, 60, "the newer policy to reach a")
    assert not a.peer_status(b)["settings_differ"]
    for node in (a, b):  # the hold came before its records; their exchange ended the wait
        wait_until(lambda: not json.loads(node.cli("retention", "show", "--json").stdout)[
            "waiting_for_hold_records"], 60, "the hold records to be exchanged")


def test_status_warns_when_a_refused_peer_has_other_policies(tmp_path):
    with Lab(["a", "b"]) as lab:
        a, b = Node(lab, "a", tmp_path), Node(lab, "b", tmp_path)
        a.join(b), b.join(a)
        a.cli("retention", "set", "--global-days", "365")
        a.start(), b.start(ARCHIVER_FIRMWARE_VERSION="1.0.0.002")
        try:
            wait_until(lambda: a.peer_status(b)["state"] == "refused", 60, "a refusal")
            assert a.peer_status(b)["settings_differ"]
            shown = a.cli("mirror", "status", "--config", a.config).stdout
            assert "WARNING: retention policies, holds or saved searches differ" in shown
            # Refused peers back off (1 s doubling to 10 s): each refused hello is not an
            # invitation to say hello again at once (they did so every ~50 ms).
            before = refused_hellos(b)
            time.sleep(8)
            assert refused_hellos(b) - before <= 6, refused_hellos(b) - before
        finally:
            a.stop(), b.stop()


def refused_hellos(node: Node) -> int:
    return (node.dir / "service.log").read_text(errors="replace").count(
        "refused mirroring with")
