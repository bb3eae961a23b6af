"""Clients that hold connections open cannot take the web service from everyone else
(services.web.connections): connections beyond one address's share, or beyond the total,
are closed at once; a request head that does not arrive whole in time is cut off; everyone
else is served meanwhile. The bounds are set small here; the service's own are the module's.

Loopback answers from any 127.x.y.z address, so a second client address needs nothing set
up."""
from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest
from aiohttp import web

from services.web.connections import GuardedRunner
from tests.integration.processes import free_port

pytestmark = [pytest.mark.integration]

PER_ADDRESS, TOTAL, HEAD_SECONDS = 3, 5, 1.0
CLOSED_WITHIN = 30.0  # seconds: how long a test waits for the service to close a connection


@pytest.fixture
def service():
    """A web app (GET /healthz) behind GuardedRunner with small bounds, on loopback."""
    app = web.Application()
    app.router.add_get("/healthz", lambda request: web.Response(text="ok"))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner = GuardedRunner(app, per_address=PER_ADDRESS, total=TOTAL, head_seconds=HEAD_SECONDS)
    port = free_port()

    def call(coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=30)
    call(runner.setup())
    call(web.TCPSite(runner, "0.0.0.0", port).start())
    yield port, runner.guard
    call(runner.cleanup())
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=CLOSED_WITHIN,
                                          source_address=(source, 0))
    return connection


def healthz(port: int, source: str) -> bytes:
    with connect(port, source) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return b"".join(iter(lambda: connection.recv(4096), b""))


def closed_by_service(connection: socket.socket) -> bool:
    """Whether the service closes `connection` (EOF or reset) within CLOSED_WITHIN."""
    try:
        return connection.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def wait_for_open(guard, count: int) -> None:
    deadline = time.monotonic() + CLOSED_WITHIN
    while sum(guard.open.values()) != count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sum(guard.open.values()) == count, guard.open


def test_one_address_gets_its_share_and_others_are_served_meanwhile(service):
    port, guard = service
    held = [connect(port) for _ in range(PER_ADDRESS)]  # silent: a slowloris's
    wait_for_open(guard, PER_ADDRESS)
    extra = connect(port)
    assert closed_by_service(extra)
    assert healthz(port, "127.0.0.2").endswith(b"ok")  # another client is served
    for connection in held:
        connection.close()
    wait_for_open(guard, 0)
    assert healthz(port, "127.0.0.1").endswith(b"ok")  # its share is back once they end


def test_beyond_the_total_a_connection_is_closed_whatever_its_address(service):
    port, guard = service
    held = [connect(port, f"127.0.0.{2 + n}") for n in range(TOTAL)]
    wait_for_open(guard, TOTAL)
    assert closed_by_service(connect(port, "127.0.1.1"))
    for connection in held:
        connection.close()
    wait_for_open(guard, 0)
    assert healthz(port, "127.0.1.1").endswith(b"ok")


def test_a_request_head_sent_a_byte_at_a_time_is_cut_off_and_a_silent_one_too(service):
    port, guard = service
    silent, dribbling = connect(port, "127.0.0.2"), connect(port, "127.0.0.3")
    dribbling.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()

    def dribble():  # a header byte every 0.2 s: never a whole head
        try:
            while time.monotonic() - started < CLOSED_WITHIN:
                dribbling.sendall(b"X")
                time.sleep(0.2)
        except OSError:
            pass
    sender = threading.Thread(target=dribble, daemon=True)
    sender.start()
    assert closed_by_service(silent)
    assert closed_by_service(dribbling)
    sender.join()
    wait_for_open(guard, 0)


def test_whole_requests_on_one_connection_are_served_past_the_head_deadline(service):
    """The deadline is per head: a keep-alive client sending whole requests, slower than
    the deadline between them, is served each time."""
    port, _ = service
    with connect(port) as connection:
        for _ in range(3):
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while not answer.endswith(b"\r\n\r\nok"):
                answer += connection.recv(4096) or pytest.fail(f"closed after {answer!r}")
            assert answer.startswith(b"HTTP/1.1 200")
            time.sleep(HEAD_SECONDS * 1.5)
