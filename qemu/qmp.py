"""A small QMP client: JSON over the unix socket QEMU opens with `-qmp unix:PATH,server=on,wait=off`.

The harness package is named `qemu`, so it cannot import QEMU's own `qemu.qmp`; QMP is a line
of JSON per message, which is all this needs (as the NixOS test driver does it).
"""
from __future__ import annotations

import json
import socket
import time
from pathlib import Path


class QMPError(Exception):
    pass


class QMP:
    def __init__(self, path: Path, timeout: float = 30):
        self.path = Path(path)
        self.timeout = timeout
        self.events: list[dict] = []
        self.sock: socket.socket | None = None
        self.file = None

    def connect(self, wait: float = 30) -> "QMP":
        deadline = time.monotonic() + wait
        while True:
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout)
                sock.connect(str(self.path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                if time.monotonic() > deadline:
                    raise QMPError(f"no QMP socket at {self.path} after {wait} s") from None
                time.sleep(0.1)
        self.sock, self.file = sock, sock.makefile("rwb", buffering=0)
        greeting = self._read()
        if "QMP" not in greeting:
            raise QMPError(f"not a QMP greeting: {greeting}")
        self.command("qmp_capabilities")
        return self

    def _read(self) -> dict:
        try:
            line = self.file.readline()
        except ConnectionResetError:  # QEMU exited with our command unread
            line = b""
        if not line:
            raise QMPError("QEMU closed the QMP socket")
        return json.loads(line)

    def command(self, name: str, /, **arguments) -> object:
        """Run one QMP command; returns its "return" value, raises QMPError on "error"."""
        if self.file is None:
            self.connect()
        message = {"execute": name, **({"arguments": arguments} if arguments else {})}
        try:
            self.file.write(json.dumps(message).encode() + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            raise QMPError("QEMU closed the QMP socket") from None
        while True:
            reply = self._read()
            if "event" in reply:
                self.events.append(reply)
                continue
            if "error" in reply:
                raise QMPError(f"{name}: {reply['error'].get('desc', reply['error'])}")
            return reply.get("return")

    def close(self) -> None:
        for thing in (self.file, self.sock):
            try:
                if thing is not None:
                    thing.close()
            except OSError:
                pass
        self.file = self.sock = None
