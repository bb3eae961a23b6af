"""Bounds on the web service's connections, so that clients holding them open (slowloris:
a request head sent a byte at a time, or nothing at all) cannot take the service from
everyone else or run it out of file descriptors. aiohttp 3.8 has neither bound: its
keepalive_timeout only closes a connection idle between two requests.

- At most `per_address` connections from one client address and `total` in all; one
  beyond them is closed as soon as it is accepted (the client sees the connection reset
  and may retry), and counts nothing.
- A request head (request line and header fields) must arrive whole within `head_seconds`
  of the connection's opening or of the first byte of that head; else the connection is
  closed. A body, and the time a handler takes, are not bounded here (downloads and
  exports have their own idle limit: services.web.transfers).

GuardedRunner is web.AppRunner with these bounds; it relies on aiohttp's RequestHandler
(its parser state), so tests/integration/web/test_connection_limits.py checks it still
does after an aiohttp upgrade.
"""
from __future__ import annotations

import asyncio
from collections import Counter

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

PER_ADDRESS = 64     # a browser opens about 6; several people behind one NAT address
TOTAL = 1024         # far below the unit's LimitNOFILE (65536)
HEAD_SECONDS = 30.0


class GuardedRunner(web.AppRunner):
    """web.AppRunner whose connections are bounded (see the module docstring)."""

    def __init__(self, app: web.Application, per_address: int = PER_ADDRESS,
                 total: int = TOTAL, head_seconds: float = HEAD_SECONDS, **kwargs):
        super().__init__(app, **kwargs)
        self.guard = _Guard(per_address, total, head_seconds)
        self._guarded: _GuardedFactory | None = None

    @property
    def server(self):
        """The protocol factory sites listen with: aiohttp's, making guarded handlers."""
        inner = super().server
        if inner is None:
            return None
        if self._guarded is None or self._guarded.inner is not inner:
            self._guarded = _GuardedFactory(inner, self.guard)
        return self._guarded


class _Guard:
    """The connections open, per client address."""

    def __init__(self, per_address: int, total: int, head_seconds: float):
        self.per_address, self.total, self.head_seconds = per_address, total, head_seconds
        self.open: Counter[str] = Counter()

    def admit(self, address: str) -> bool:
        if self.open[address] >= self.per_address or sum(self.open.values()) >= self.total:
            return False
        self.open[address] += 1
        return True

    def release(self, address: str) -> None:
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]


class _GuardedFactory:
    """What aiohttp's web.Server does when called, with _GuardedHandler."""

    def __init__(self, inner: web.Server, guard: _Guard):
        self.inner, self.guard = inner, guard

    def __call__(self) -> RequestHandler:
        return _GuardedHandler(self.inner, self.guard, loop=self.inner._loop,
                               **self.inner._kwargs)

    def __getattr__(self, name: str):  # shutdown(), connections: the runner asks the server
        return getattr(self.inner, name)


class _GuardedHandler(RequestHandler):
    def __init__(self, manager: web.Server, guard: _Guard, **kwargs):
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._address: str | None = None  # counted in the guard while set
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if peer else ""
        if not self._guard.admit(address):
            self.force_close()
            return
        self._address = address
        self._await_head()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_waiting_for_head()
        if self._address is not None:
            self._guard.release(self._address)
            self._address = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        heads = self._request_count
        reading_head = self._payload_parser is None and not self._upgrade
        super().data_received(data)
        if self._request_count > heads:  # a head arrived whole
            self._stop_waiting_for_head()
        elif reading_head and data and self._head_timer is None:
            self._await_head()  # the first bytes of the next head

    def _await_head(self) -> None:
        self._stop_waiting_for_head()
        self._head_timer = self._loop.call_later(self._guard.head_seconds, self._head_late)

    def _stop_waiting_for_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        self.force_close()
