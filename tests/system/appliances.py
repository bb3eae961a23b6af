"""The appliances the system tests run against: a fresh pair of virtual appliances booted by
the QEMU harness, or real boxes (hardware in the loop, HOSTS / --hosts). Tests talk to both
the same way: testinfra over SSH for commands, SMTP for mail; `machine` is the QEMU Machine
of a virtual appliance (None on real hardware: tests that need QMP skip there)."""
from __future__ import annotations

import http.client
import json
import re
import shlex
import smtplib
import time
import urllib.parse
import uuid
from email.message import EmailMessage
from email.utils import make_msgid

import testinfra

from qemu.lab import web_metrics
from tests import search_output
from tests import waiting

DOMAIN = "example.com"
# Commands that read the archive run as the service user, so nothing in /var/lib/archiver
# is ever created as root.
AS_SERVICE_USER = "runuser -u archiver -- "


class Appliance:
    def __init__(self, name: str, spec: str, ssh_config: str, smtp: tuple[str, int],
                 web: tuple[str, int], machine=None, lab=None):
        self.name, self.spec, self.smtp, self.web = name, spec, smtp, web
        self.host = testinfra.get_host(spec, ssh_config=ssh_config)
        self.machine, self.lab = machine, lab

    def __repr__(self) -> str:
        return f"<Appliance {self.name} {self.spec}>"

    def run(self, command: str) -> str:
        return self.host.check_output(command)

    def archiver(self, *args: str) -> str:
        return self.run(AS_SERVICE_USER + "archiver " + " ".join(map(shlex.quote, args)))

    def stats(self) -> dict:
        return json.loads(self.archiver("stats", "--json"))

    def hits(self, query: str) -> list[dict]:
        out = self.archiver("search", query, "--json", "--limit", "1000000")
        return search_output.hits(out)

    def subjects(self, tag: str) -> list[str]:
        return sorted(h["subject"] for h in self.hits(f"subject:{tag}"))

    def digests(self, tag: str | None = None) -> list[str]:
        return sorted(h["digest"] for h in self.hits(f"subject:{tag}" if tag else ""))

    def peer_reports(self) -> list[dict]:
        out = self.archiver("mirror", "status", "--json")
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    def _names(self, peer: "Appliance", address: str) -> bool:
        """Is `address` (HOST:PORT in this appliance's mirror settings) the peer's?"""
        if self.lab is not None:
            return address == self.lab.mirror_address(peer.name)
        return address.rpartition(":")[0] == urllib.parse.urlparse(peer.spec).hostname

    def peer_status(self, peer: "Appliance") -> dict:
        reports = self.peer_reports()
        return ([r for r in reports if self._names(peer, r["peer"])] or reports)[0]

    def _peer_gauge(self, metric: str, peer: "Appliance", exposition: str | None = None) -> int:
        sample = re.compile(rf'^{metric}\{{peer="([^"]+)"\}} (\S+)$', re.M)
        values = {name: float(value) for name, value in
                  sample.findall(self.metrics() if exposition is None else exposition)}
        return int(([v for name, v in values.items() if self._names(peer, name)]
                    or list(values.values()))[0])

    def queued_for(self, peer: "Appliance") -> int:
        """Messages queued for the peer, from /metrics: a fast poll (every `archiver` command
        over SSH costs a small appliance seconds)."""
        return self._peer_gauge("archiver_mirror_queued_messages", peer)

    def connected_to(self, peer: "Appliance") -> bool:
        """Whether the mirror is connected to the peer, from /metrics (a fast poll)."""
        return self._peer_gauge("archiver_mirror_peer_connected", peer) == 1

    def drained_to(self, peer: "Appliance") -> bool:
        """Connected to the peer with nothing queued for it, from one /metrics read (the
        same mirror report `archiver mirror status` shows): a fast poll, as queued_for."""
        exposition = self.metrics()
        return (self._peer_gauge("archiver_mirror_peer_connected", peer, exposition) == 1
                and self._peer_gauge("archiver_mirror_queued_messages", peer, exposition) == 0)

    def index_backlog(self) -> int | None:
        """Messages stored but not indexed yet, from /metrics (None when it cannot be read)."""
        try:
            exposition = self.metrics()
        except (OSError, http.client.HTTPException):  # a reply cut short too
            return None
        found = re.search(r"^archiver_index_backlog (\S+)$", exposition, re.M)
        return int(float(found.group(1))) if found else None

    def metrics(self) -> str:
        return web_metrics(*self.web)

    def send(self, tag: str, count: int, start: int = 0, stop=None,
             attachment: tuple[bytes, str, str, str] | None = None) -> list[str]:
        """Send `count` messages over SMTP, one session; returns the subjects the appliance
        acknowledged (250). `stop()` true ends early; a dropped connection ends it too.
        `attachment` (data, maintype, subtype, filename) is attached to each."""
        acknowledged = []
        try:
            with smtplib.SMTP(*self.smtp, timeout=60) as smtp:
                for n in range(start, start + count):
                    if stop is not None and stop():
                        break
                    message = EmailMessage()
                    subject = f"{tag} {n:05d}"
                    message["From"] = f"sender{n % 7}@{DOMAIN}"
                    message["To"] = f"archive@{DOMAIN}"
                    message["Subject"] = subject
                    message["Message-ID"] = make_msgid(domain=DOMAIN)
                    message.set_content(f"system test message {n} of {tag}\n{uuid.uuid4()}\n")
                    if attachment is not None:
                        data, maintype, subtype, filename = attachment
                        message.add_attachment(data, maintype=maintype, subtype=subtype,
                                               filename=filename)
                    smtp.send_message(message)
                    acknowledged.append(subject)
        except (smtplib.SMTPException, OSError):
            if stop is None:
                raise
        return acknowledged


def wait_until(condition, timeout: float = 300, what: str = "condition", interval: float = 5):
    """tests.waiting.wait_until with the VM tier's defaults (a command on a TCG guest takes
    seconds, so polling faster only loads the guests)."""
    return waiting.wait_until(condition, timeout, what, interval)


SEARCH_INTERVAL = 5  # seconds between searches that found too few ...
BACKLOG_PATIENCE = 20  # ... and at most between two searches while the index is behind


def wait_searchable(appliance: Appliance, tag: str, count: int, timeout: float = 300) -> list[str]:
    """Wait until `count` messages of tag are searchable there (stored and indexed). While
    /metrics (read every second) shows an index backlog, no search runs for up to
    BACKLOG_PATIENCE s: each `archiver search` over SSH costs a TCG guest seconds of the
    CPU its indexer needs, and searching every 5 s found the messages up to 9 s after
    they were indexed. In the last BACKLOG_PATIENCE s before `timeout` it searches every
    SEARCH_INTERVAL s whatever /metrics says, so a wait ends as late as it did before."""
    searched = [time.monotonic() - SEARCH_INTERVAL]  # when the last search ended
    last_chance = time.monotonic() + timeout - BACKLOG_PATIENCE  # then every 5 s, backlog or not

    def found():
        now = time.monotonic()
        since = now - searched[0]
        if since < SEARCH_INTERVAL or (since < BACKLOG_PATIENCE and now < last_chance
                                       and appliance.index_backlog()):
            return None
        subjects = appliance.subjects(tag)
        searched[0] = time.monotonic()
        return subjects if len(subjects) >= count else None
    return wait_until(found, timeout, f"{count} messages '{tag}' searchable on {appliance.name}",
                      interval=1)


def new_tag(what: str) -> str:
    return f"st{what}{uuid.uuid4().hex[:8]}"
