"""The services as systemd runs them, one process each: READY and WATCHDOG on the notify
socket, any start order, restarts, and a service that cannot start says why."""
import json
import os
import smtplib
import socket
import subprocess

import pytest
import yaml

from tests.conftest import ARCHIVER
from tests.integration.processes import ArchiverService, free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

SECRET = "tulip-gravel-mosaic-ninja-orbit-fjord"


def cli(*args, check=True) -> subprocess.CompletedProcess:
    done = subprocess.run([str(ARCHIVER), *map(str, args)], capture_output=True, text=True,
                          timeout=60)
    assert not check or done.returncode == 0, done.stderr
    return done


def status(config) -> dict:
    return json.loads(cli("status", "--json", "--config", config).stdout)


def service_state(config, name: str) -> str | None:
    """None until a service has made the archive (status never makes one)."""
    done = cli("status", "--json", "--config", config, check=False)
    if done.returncode == 2 and "no archive in" in done.stderr:
        return None
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["services"][name]["state"]


class Appliance:
    """One data folder and config; each service a process of its own (as under systemd)."""

    def __init__(self, root, name: str, peer: str | None = None):
        self.dir = root / name
        self.dir.mkdir()
        self.smtp_port, self.mirror_port = free_port(), free_port()
        self.config = {"data_dir": str(self.dir / "data"),
                       "smtp": {"listen": f"127.0.0.1:{self.smtp_port}",
                                "trusted_servers": ["127.0.0.1/32"]},
                       "mirror": {"listen": f"127.0.0.1:{self.mirror_port}", "secret": SECRET,
                                  "peers": [peer] if peer else []}}
        self.config_path = self.dir / "archiver.yaml"
        self.config_path.write_text(yaml.safe_dump(self.config))
        self.services: dict[str, ArchiverService] = {}

    def start(self, name: str, command=None) -> ArchiverService:
        service_dir = self.dir / name
        service_dir.mkdir(exist_ok=True)
        process = ArchiverService(service_dir, self.config, command=command or ("serve", name))
        process.smtp_port = self.smtp_port  # start() waits for the SMTP port of the config
        self.services[name] = process.start()
        if name != "run":
            wait_until(lambda: service_state(self.config_path, name) == "running", 30,
                       f"{name} to run")
        return process

    def stop_all(self):
        for process in self.services.values():
            process.stop()

    def send(self, count: int, start: int) -> None:
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=30) as client:
            for n in range(start, start + count):
                client.sendmail("alice@example.org", ["bob@example.com"],
                                f"Subject: flow {n}\r\nMessage-ID: <flow{n}@example.org>\r\n"
                                f"\r\nbody {n}\r\n")

    def counts(self) -> tuple[int, int]:
        queues = status(self.config_path)["queues"]["index"]
        return queues["stored"], queues["indexed"]


@pytest.fixture
def pair(tmp_path):
    """Appliance a, its services started one by one by the test; b runs all in one
    process and takes a's copies."""
    b = Appliance(tmp_path, "b")
    a = Appliance(tmp_path, "a", peer=f"127.0.0.1:{b.mirror_port}")
    b.start("run", command=("run",))
    wait_until(lambda: _listening(b.mirror_port), 30, "b's mirror server")
    yield a, b
    a.stop_all()
    b.stop_all()


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_mail_flows_whatever_the_start_order_and_restarts(pair):
    a, b = pair
    sent = 0
    started = ("mirror", "smtp", "journal", "indexer")        # the reverse of the data flow
    for name in started:
        a.start(name)
    for name in ("indexer", "smtp", "mirror"):
        a.send(5, sent)
        sent += 5
        wait_until(lambda: a.counts() == (sent, sent), 60, f"a to index {sent}")
        wait_until(lambda: b.counts() == (sent, sent), 60, f"b to have {sent}")
        a.services[name].kill()                              # as by the OOM killer
        assert service_state(a.config_path, name) == "stale"
        if name != "smtp":                                   # intake goes on meanwhile
            a.send(2, sent)
            sent += 2
        a.start(name)
    a.send(3, sent)
    sent += 3
    wait_until(lambda: a.counts() == (sent, sent) and b.counts() == (sent, sent), 60,
               f"all {sent} on both")
    report = status(a.config_path)
    assert {report["services"][name]["state"] for name in started} == {"running"}
    assert report["archived"]["by_source"] == {"smtp": sent}
    assert report["queues"]["peers"][0]["queued"] == 0


def test_a_service_that_cannot_start_exits_non_zero_and_status_says_why(tmp_path):
    a = Appliance(tmp_path, "a")
    with socket.socket() as squatter:                         # something else has the port
        squatter.bind(("127.0.0.1", a.smtp_port))
        squatter.listen()
        done = cli("serve", "smtp", "--config", a.config_path, check=False)
    reason = f"cannot listen on 127.0.0.1:{a.smtp_port}: address already in use"
    assert done.returncode == 1 and reason in done.stderr
    smtp = status(a.config_path)["services"]["smtp"]
    assert (smtp["state"], smtp["reason"]) == ("failed", reason)
    text = cli("status", "--config", a.config_path).stdout
    assert f"smtp     failed: {reason}" in text


def test_ready_then_watchdog_pings_on_the_notify_socket(tmp_path):
    a = Appliance(tmp_path, "a")
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(path)
        systemd.settimeout(30)
        env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"}  # ping 0.2 s
        process = subprocess.Popen([str(ARCHIVER), "serve", "indexer", "--config",
                                    str(a.config_path)], env=env, stderr=subprocess.DEVNULL)
        try:
            messages = [systemd.recv(4096).decode() for _ in range(4)]
            process.terminate()
            assert process.wait(timeout=30) == 0
            while "STOPPING=1" not in messages[-1]:
                messages.append(systemd.recv(4096).decode())
        finally:
            process.kill()
            process.wait()
    assert messages[0] == "READY=1\nSTATUS=indexer: running"
    assert messages.count("WATCHDOG=1") >= 2
    assert service_state(a.config_path, "indexer") == "stopped"
