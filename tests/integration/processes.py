"""Appliance services as real processes for host integration tests."""
from __future__ import annotations

import contextlib
import copy
import os
import signal
import socket
import subprocess
import time
import weakref
from pathlib import Path
from typing import Iterator

import yaml

from firmware.models import TREE_MODELS_FILE
from qemu import machine
from tests import search_output
from tests.conftest import ARCHIVER
from tests.integration.stats_reader import StatsReader


# Ports the tests' servers listen on: below the kernel's ephemeral range (32768-60999 by
# default), so no outgoing connection is given one between free_port() and the server's bind,
# and apart from qemu.machine.HOST_PORTS (20000-31999), the VMs' forwarded ports.
TEST_PORTS = range(10000, 20000)


def free_port() -> int:
    """A loopback port for a test's server from TEST_PORTS, never the same twice in a run
    (qemu.machine.free_port)."""
    return machine.free_port(TEST_PORTS)


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """Yield a loopback port that refuses connections while the context lasts.

    A port nothing listens on is not enough: one in the ephemeral range may be given to a
    connect() to it as its own source port and, by TCP simultaneous open, connect to itself
    (a client then reads its own TLS hello: "unexpected message"). Holding the port bound but
    not listening keeps the kernel from choosing it as a source port, and a SYN to it is
    answered with RST: connection refused.
    """
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float = 30) -> None:
    """Until something listens on host:port; TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1) as connection:
                # A socket connected to itself (refusing_port() says how) met no listener.
                if connection.getsockname() != connection.getpeername():
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s")


def stop_process_group(process: subprocess.Popen | None, timeout: float) -> None:
    """SIGTERM the process group `process` leads, SIGKILL it after `timeout` seconds."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def models_file(tmp_path: Path, **changes) -> Path:
    """A copy of models.yaml whose model 450 has other limits, e.g. smtp={"concurrency": 2}."""
    doc = yaml.safe_load(TREE_MODELS_FILE.read_text())
    profile = next(p for p in doc["models"] if p["model"] == 450)
    for section, values in changes.items():
        profile[section] = {**profile[section], **values} if isinstance(values, dict) else values
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


class ArchiverService:
    """`archiver serve|run` with a config file of its own, in a process of its own."""

    def __init__(self, tmp_path: Path, config: dict, command=("run",), models: Path | None = None):
        self.dir = tmp_path
        self.data = tmp_path / "data"
        self.smtp_port = free_port()
        self.config = copy.deepcopy(config)
        self.config.setdefault("data_dir", str(self.data))
        self.config.setdefault("smtp", {}).setdefault("listen", f"127.0.0.1:{self.smtp_port}")
        self.web_port = free_port()  # `archiver run` serves the web UI too: not on 0.0.0.0
        self.config.setdefault("web", {}).setdefault("listen", f"127.0.0.1:{self.web_port}")
        self.config_path = tmp_path / "archiver.yaml"
        self.config_path.write_text(yaml.safe_dump(self.config))
        self.command = list(command)
        self.env = {**os.environ, **({"ARCHIVER_MODELS": str(models)} if models else {})}
        self.process: subprocess.Popen | None = None
        self.log = tmp_path / "service.log"
        self._stats_reader = StatsReader()
        weakref.finalize(self, self._stats_reader.close)

    def start(self) -> "ArchiverService":
        self.process = subprocess.Popen(
            [str(ARCHIVER), *self.command, "--config", str(self.config_path)],
            stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"), env=self.env,
            start_new_session=True)
        if "smtp" in self.command or "run" in self.command:
            wait_for_port("127.0.0.1", self.smtp_port)
        return self

    def stop(self) -> int:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            return self.process.wait(timeout=60)
        return self.process.returncode if self.process else 0

    def kill(self) -> None:
        """SIGKILL the service and everything it started."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def cli(self, *args) -> subprocess.CompletedProcess:
        return subprocess.run([str(ARCHIVER), *map(str, args), "--data", str(self.data)],
                              capture_output=True, text=True, env=self.env, timeout=120)

    def stats(self) -> dict:
        """`archiver stats --json` of its data folder (tests/integration/stats_reader)."""
        return self._stats_reader.stats(self.data, self.env)

    def search(self, query: str) -> list[str]:
        done = self.cli("search", query, "--json", "--limit", "100000")
        assert done.returncode == 0, done.stderr
        return search_output.digests(done.stdout)

    def wait_until_indexed(self, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while (stats := self.stats())["indexed"] < count or stats["pending"]:
            assert time.monotonic() < deadline, f"not indexed in time: {stats}"
            time.sleep(0.2)
