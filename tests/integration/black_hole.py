"""A TCP listener on loopback that plays a broken server: it accepts every connection and
then either never answers ("silent": a hung directory, a firewall that drops replies) or
closes it at once ("close": a port that is no server of that kind). Real sockets, a free
port; `release()` closes what it holds, so whoever waits gets EOF and the test ends by
itself."""
from __future__ import annotations

import socket
import threading

from tests.integration.processes import free_port

HOST = "127.0.0.1"


class BlackHole:
    def __init__(self, mode: str = "silent"):
        assert mode in ("silent", "close")
        self.mode, self.port = mode, free_port()
        self.listener = socket.create_server((HOST, self.port), backlog=128)
        self.held: list[socket.socket] = []
        self.accepted = 0
        self.listener.settimeout(0.2)  # to notice the end
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> "BlackHole":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.listener.close()
        self.release()

    def release(self) -> None:
        """Close every connection held so far (their clients see EOF)."""
        with self._lock:
            held, self.held = self.held, []
        for connection in held:
            connection.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            with self._lock:
                self.accepted += 1
                if self.mode == "close":
                    connection.close()
                else:
                    self.held.append(connection)
