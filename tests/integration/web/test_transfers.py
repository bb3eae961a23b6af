"""Downloads and exports never stall the web app: a user who starts six exports and never
reads them holds only their own transfer slots, never the threads logins and searches run
on; a seventh transfer of theirs is refused (429, with the reason); and a stalled export is
cut after the idle write timeout, which frees its slot."""
from __future__ import annotations

import base64
import dataclasses
import fcntl
import io
import logging
import os
import socket
import struct
import threading
import zipfile

import pytest

from services.policy import audit, exports
from services.web import export as web_export
from tests.integration.processes import free_port
from tests.integration.web.fixtures import (PASSWORD, Client, ThreadedServer, mail,
                                            web_config)
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_throttle")]

BIG_MAILS = 8  # of 1 MiB each: bob's export is far more than loopback's socket buffers hold
STALLED = 6


@pytest.fixture(scope="module")
def extra_mails() -> dict:
    return {f"big-{n}": (mail("dave@example.com", "bob@example.com", f"Scan {n}", "see scan",
                              attachment=(f"scan{n}.bin", os.urandom(1 << 20))), None)
            for n in range(BIG_MAILS)}


def serve(site, idle_seconds: float) -> ThreadedServer:
    """Another web app on the site's archive, with the given idle write timeout."""
    config = web_config(site.archive.data_dir, free_port())
    config = dataclasses.replace(config, web=dataclasses.replace(
        config.web, transfers_per_user=STALLED, transfer_idle_seconds=idle_seconds))
    return ThreadedServer(config, site.archive).start()


def stalled_export(server: ThreadedServer, name: str) -> socket.socket:
    """An export request on a raw socket that reads its status line and then nothing."""
    sock = raw_request(server, "/api/export?format=zip&q=", name)
    sock.settimeout(120)
    status = b""
    while not status.endswith(b"\r\n"):
        status += sock.recv(1)
    assert status.startswith(b"HTTP/1.1 200"), status
    return sock


def test_stalled_exports_hold_neither_logins_nor_searches_nor_other_users(site):
    server = serve(site, idle_seconds=3600)
    stalled = []
    try:
        stalled = [stalled_export(server, "bob") for _ in range(STALLED)]
        for name in ("alice", "audrey", "admin"):
            person = Client(server.url)
            assert person.log_in(name).status == 200
            assert person.get("/api/search?q=scan").status == 200
        bob = Client(server.url, basic=("bob", PASSWORD))
        assert bob.get("/api/search?q=scan").json()["total"] == BIG_MAILS  # he may search
        for path in ("/api/export?format=zip&q=", "/api/export?format=mbox&q=salary",
                     f"/api/messages/{site.digests['big-0']}/raw"):
            refused = bob.get(path)
            assert refused.status == 429, (path, refused.status)
            assert "already has 6 downloads or exports running" in refused.json()["error"]
            assert int(refused.headers["Retry-After"]) > 0
        alice = Client(server.url, basic=("alice", PASSWORD)).get("/api/export?format=zip&q=")
        assert alice.status == 200 and zipfile.ZipFile(io.BytesIO(alice.body)).namelist()
    finally:
        for sock in stalled:
            sock.close()
        server.stop()


def test_a_stalled_export_is_cut_after_the_idle_write_timeout(site):
    server = serve(site, idle_seconds=2)
    try:
        sock = stalled_export(server, "bob")
        transfers = server.app["transfers"]
        wait_until(lambda: transfers.cut >= 1, 120, "the stalled export to be cut")
        received = b""
        try:
            while chunk := sock.recv(1 << 16):
                received += chunk
        except ConnectionResetError:
            pass  # the cut resets the connection: what was buffered may be lost with it
        assert not received.endswith(b"0\r\n\r\n")  # never a complete chunked body
        sock.close()
        wait_until(lambda: not transfers.running, 60, "bob's slot to be free")
        metrics = Client(server.url).get("/metrics").body.decode()
        assert "archiver_web_transfers_cut_total 1" in metrics
        assert "archiver_web_transfers_running 0" in metrics
        export = Client(server.url, basic=("bob", PASSWORD)).get("/api/export?format=zip&q=")
        assert export.status == 200
        names = [name for name in zipfile.ZipFile(io.BytesIO(export.body)).namelist()
                 if name.startswith("messages/")]  # the evidence export's mail
        assert len(names) == BIG_MAILS + 2  # his big mail and fixtures.BOB_MAIL
    finally:
        server.stop()


def index_folder_held(data_dir) -> bool:
    """Whether a reader holds the live index's folder (services.archive.index_hold)."""
    descriptor = os.open((data_dir / "index").resolve(), os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)


def test_a_cut_export_lets_go_of_the_index_it_read_at_once(site):
    """Not at the garbage collector's next run, which on a quiet appliance may be long:
    the folder of an index switched from stays on disk while a reader holds it."""
    server = serve(site, idle_seconds=2)
    try:
        sock = stalled_export(server, "bob")
        assert index_folder_held(site.archive.data_dir)  # it reads the index
        transfers = server.app["transfers"]
        wait_until(lambda: transfers.cut >= 1, 120, "the stalled export to be cut")
        sock.close()
        wait_until(lambda: not transfers.running, 60, "bob's slot to be free")
        wait_until(lambda: not index_folder_held(site.archive.data_dir), 10,
                   "the export to let go of the index")
    finally:
        server.stop()


@pytest.mark.parametrize("stalled", [1, STALLED])
def test_stopping_the_web_app_ends_the_threads_of_stalled_exports(site, stalled):
    """A writer thread waits on the event loop for each chunk; once the app stops, that
    loop never answers, and a thread left waiting keeps the whole process from exiting
    (the executor's threads are joined at exit): the web service could not be stopped.
    And the app is down only once they have ended, also when their clients went first: a
    cut export still writes its audit entry, and the archive, closed next, must not be
    used after (LMDB would crash the process). Each export whose response began is
    recorded, also one whose client went before a thread took it up."""
    recorded_before = len(audit.entries(site.archive.store))
    server = serve(site, idle_seconds=3600)
    socks = [stalled_export(server, "bob") for _ in range(stalled)]
    writers = server.app["transfers"].executor._threads  # pylint: disable=protected-access
    stopping = threading.Thread(target=server.stop)
    try:
        wait_until(lambda: len(writers) >= stalled, 30, "the exports' writer threads")
        with site.archive.store.writing():  # the cut exports' audit entries wait for this
            for sock in socks:  # the clients go: aiohttp cancels their handlers, not threads
                sock.close()
            stopping.start()
            stopping.join(timeout=3)
            stopped_while_writers_waited = not stopping.is_alive()
        stopping.join(timeout=60)
        alive = [thread.name for thread in writers if thread.is_alive()]
    finally:
        if not stopping.is_alive() and stopping.ident is None:
            server.stop()
        for sock in socks:
            sock.close()
    assert not stopped_while_writers_waited and not stopping.is_alive()
    assert not alive
    recorded = audit.entries(site.archive.store)[recorded_before:]
    assert [entry["action"] for entry in recorded] == ["export-failed"] * stalled


def raw_request(server: ThreadedServer, path: str, name: str = "bob") -> socket.socket:
    """A GET on a raw socket that takes little at a time (as stalled_export's)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(60)
    sock.connect(("127.0.0.1", server.port))
    token = base64.b64encode(f"{name}:{PASSWORD}".encode()).decode()
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: archiver\r\n"
                 f"Authorization: Basic {token}\r\n\r\n".encode())
    return sock


def test_a_small_export_whose_client_went_is_recorded_as_failed(site, monkeypatch, caplog):
    """A small export is written whole before its one chunk is sent: it is recorded as
    complete only once that chunk went, and as failed when its client had gone by then
    (once it was recorded as complete, and the send's error logged as a server error)."""
    written, client_gone = threading.Event(), threading.Event()

    def write_then_wait(*args):
        result = real_write_export(*args)
        written.set()
        client_gone.wait(30)
        return result
    real_write_export = exports.write_export
    monkeypatch.setattr(exports, "write_export", write_then_wait)
    recorded_before = len(audit.entries(site.archive.store))
    server = serve(site, idle_seconds=3600)
    try:
        sock = raw_request(server, "/api/export?format=zip&q=salary")
        status = sock.recv(12)
        assert status == b"HTTP/1.1 200", status
        assert written.wait(30)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # reset: the client is gone
        wait_until(lambda: not server.runner.guard.open, 30, "the server to see it gone")
        client_gone.set()
        transfers = server.app["transfers"]
        wait_until(lambda: not transfers.running, 30, "the slot to be free")
    finally:
        client_gone.set()
        server.stop()
    recorded = audit.entries(site.archive.store)[recorded_before:]
    assert [entry["action"] for entry in recorded] == ["export-failed"]
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


def test_an_export_the_app_stops_before_it_began_sends_nothing(site, monkeypatch, caplog):
    """The app stops while an export reads its first message: it is answered 503 and
    nothing of it is sent (once: a 200 whose download then broke off, recorded nowhere,
    the pool refusing the writer with a RuntimeError logged as a server error)."""
    reading, stopped = threading.Event(), threading.Event()

    def slow_as_read(*args):
        reading.set()
        stopped.wait(30)
        return real_as_read(*args)
    real_as_read = web_export.as_read
    monkeypatch.setattr(web_export, "as_read", slow_as_read)
    recorded_before = len(audit.entries(site.archive.store))
    server = serve(site, idle_seconds=3600)
    stopping = threading.Thread(target=server.stop)
    try:
        sock = raw_request(server, "/api/export?format=zip&q=")
        assert reading.wait(30)
        stopping.start()
        transfers = server.app["transfers"]
        wait_until(lambda: transfers._closed,  # pylint: disable=protected-access
                   30, "the pool to be closed")
        stopped.set()
        reply = b""
        while chunk := sock.recv(1 << 16):
            reply += chunk
        sock.close()
        stopping.join(timeout=60)
    finally:
        stopped.set()
        if stopping.ident is None:
            server.stop()
    assert not stopping.is_alive()
    assert reply.startswith(b"HTTP/1.1 503"), reply[:100]
    assert b"stopping" in reply
    assert audit.entries(site.archive.store)[recorded_before:] == []
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


@pytest.mark.parametrize("what", ["raw", "export"])
def test_a_download_whose_client_went_logs_no_server_error(site, caplog, what):
    """A client that goes mid-way is no error of the server's (it once logged one, with
    its traceback, for each); the export is recorded as failed, the raw message as viewed
    (what the audit log says of it, once it was read for the download)."""
    recorded_before = len(audit.entries(site.archive.store))
    server = serve(site, idle_seconds=3600)
    path = (f"/api/messages/{site.digests['big-0']}/raw" if what == "raw"
            else "/api/export?format=zip&q=")
    try:
        sock = raw_request(server, path)
        assert sock.recv(12) == b"HTTP/1.1 200"
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        transfers = server.app["transfers"]
        wait_until(lambda: not transfers.running, 30, "the slot to be free")
    finally:
        server.stop()
    recorded = audit.entries(site.archive.store)[recorded_before:]
    assert [entry["action"] for entry in recorded] == (
        ["view"] if what == "raw" else ["export-failed"])
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
