"""Appliances as processes, each in its own network namespace of a netns.Lab, for the
mirroring tests: start, stop, SIGKILL, inject mail (local import), read stats/status."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import weakref
from pathlib import Path

import yaml

from tests import search_output
from tests.conftest import ARCHIVER
from tests.integration.stats_reader import StatsReader
from tests.waiting import wait_until

MIRROR_PORT = 8443
SECRET = "tulip-gravel-mosaic-ninja-orbit-fjord"
# archiver.yaml's mirror timers, shorter than the appliance's (retries 1 s doubling up to
# 10 s, a hello every 10 s), so that a test waiting for a retry or the next hello waits
# about 2 s, not 10. A test that needs another wait passes its own (Node(mirror=...)).
TEST_TIMERS = {"retry_cap_seconds": 2, "rehello_seconds": 2}


class Node:
    def __init__(self, lab, name: str, root: Path, model: int = 450, env: dict | None = None,
                 mirror: dict | None = None):
        """`mirror`: archiver.yaml mirror keys over TEST_TIMERS (seconds)."""
        self.lab, self.name = lab, name
        self.dir = root / name
        self.data = self.dir / "data"
        self.dir.mkdir(parents=True)
        self.config = self.dir / "archiver.yaml"
        self.config.write_text(yaml.safe_dump({
            "data_dir": str(self.data), "model": model,
            "smtp": {"listen": "127.0.0.1:2525"},
            "mirror": {"listen": f"0.0.0.0:{MIRROR_PORT}", **TEST_TIMERS, **(mirror or {})}}))
        self.env = dict(env or {})
        self.process = None
        self.imported = 0
        self._stats_reader = StatsReader()
        weakref.finalize(self, self._stats_reader.close)

    @property
    def address(self) -> str:
        return f"{self.lab.address(self.name)}:{MIRROR_PORT}"

    def cli(self, *args, check=True) -> subprocess.CompletedProcess:
        done = subprocess.run([str(ARCHIVER), *map(str, args), "--data", str(self.data)],
                              capture_output=True, text=True, timeout=300,
                              env={**os.environ, **self.env})
        if check:
            assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done

    def join(self, *peers: "Node", secret: str = SECRET) -> None:
        self.cli("mirror", "join", "--secret", secret, "--config", self.config,
                 *[option for peer in peers for option in ("--peer", peer.address)])

    def start(self, **env) -> "Node":
        self.env.update(env)
        log = open(self.dir / "service.log", "ab")
        self.process = self.lab.popen(self.name, [str(ARCHIVER), "run", "--config", str(self.config)],
                                      stdout=subprocess.DEVNULL, stderr=log,
                                      env={**os.environ, **self.env})
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=60)

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def receive(self, directory: Path, count: int, start: int = 0, filler: int = 0) -> list[str]:
        """`count` new messages archived here (local intake), each with `filler` more bytes
        of body; returns their digests."""
        import hashlib
        directory.mkdir(parents=True, exist_ok=True)
        digests = []
        for n in range(start, start + count):
            raw = (f"From: user{n % 9}@{self.name}.example.com\r\nTo: boss@example.com\r\n"
                   f"Subject: from {self.name} number {n}\r\nMessage-ID: <{self.name}{n}@example.com>"
                   f"\r\n\r\nmirrored body {self.name} {n}\r\n" + f"filler {n} " * (filler // 12)
                   ).encode()
            (directory / f"{self.name}-{n}.eml").write_bytes(raw)
            digests.append(hashlib.sha256(raw).hexdigest())
        self.cli("import", "--no-index", "--json", directory)
        for path in directory.iterdir():
            path.unlink()
        self.imported += count
        return digests

    def stats(self) -> dict:
        """`archiver stats --json` of its data folder (tests/integration/stats_reader)."""
        return self._stats_reader.stats(self.data, {**os.environ, **self.env})

    def digests(self) -> list[str]:
        done = self.cli("search", "", "--json", "--limit", "1000000")
        return sorted(search_output.digests(done.stdout))

    def peer_status(self, peer: "Node") -> dict:
        done = self.cli("mirror", "status", "--json", "--config", self.config)
        reports = [json.loads(line) for line in done.stdout.splitlines()]
        return next(r for r in reports if r["peer"] == peer.address)


def wait_searchable(node: Node, count: int, timeout: float = 180) -> None:
    wait_until(lambda: (s := node.stats())["stored"] >= count and s["indexed"] >= count
               and s["pending"] == 0, timeout, f"{count} messages searchable on {node.name}")
