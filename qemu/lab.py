"""A lab of virtual appliances on one rootless L2 link, each mirroring to all the others.

    with Lab(["a", "b"]) as lab:          # flashes (if needed), boots in parallel, joins
        lab.wait_ready(); lab.wait_mirrored()
        a, b = lab["a"], lab["b"]

The link: every VM's eth0 is a QEMU socket netdev on one UDP multicast group pinned to
127.0.0.1 (`-netdev socket,mcast=230.0.0.1:PORT,localaddr=127.0.0.1`): no root, no bridge,
no tap, and a VM that is killed and booted again is back on the link at once. Each VM has
192.168.100.(10+i)/24 there and its own MAC. A user-mode NIC (eth1, 10.0.2.15) carries the
host forwards (SSH, SMTP, web, mirror; Machine.ports).

What each VM is (name, lab address, peers, secret, admin password, archiver.yaml) reaches it
as systemd credentials over SMBIOS, read by the image's archiver-vmsettings.service and
archiver-vmjoin.service (image/rootfs/usr/lib/archiver/vmsettings); firstboot reads
admin-password itself.
"""
from __future__ import annotations

import collections
import http.client
import json
import secrets
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import yaml

from firmware.version import current_version
from image import artifacts
from image import flash as flashing

from .machine import BUILD, MGMT_ADDRESS, VMS, Machine, MachineError

SUBNET = "192.168.100"
MCAST_GROUP = "230.0.0.1"
MIRROR_PORT = 8443
DEFAULT_SECRET = "lab: quartz lantern vivid saddle prism otter fjord"
# The user-mode NIC's host side: SMTP from the build host arrives from there.
SLIRP_HOST = "10.0.2.2"
MAIL_DOMAIN = "example.com"
# Units that must be active once a VM is up (archiver-firstboot.service runs on the first
# boot and after a flash only; on other boots its conditions skip it and it is inactive).
UNITS = ("archiver-verify.service", "archiver-data.service", "archiver-vmsettings.service", "archiver-netconfig.service", "archiver-vmjoin.service",
         "archiver-smtp.service", "archiver-journal.service", "archiver-indexer.service",
         "archiver-mirror.service", "archiver-web.service", "archiver-retention.timer")
PORTS = (25, 8000, 8443)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def image_dir(model: int, version: str | None = None, images_dir: Path = BUILD / "images") -> Path:
    return images_dir / artifacts.image_dir_name(model, version or current_version())


def sources_mtime() -> float:
    """When what goes into an image last changed (packages, image overlay, models, VERSION)."""
    newest = 0.0
    for top in ("firmware", "services", "image", "qemu", "models.yaml", "pyproject.toml"):
        path = BUILD.parent / top
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()
                                                and "__pycache__" not in p.parts]
        newest = max([newest, *(f.stat().st_mtime for f in files)])
    return newest


def ensure_image(model: int, version: str | None = None, newer_than: Path | None = None) -> Path:
    """The image of model (and version), built when there is none, when it is older than the
    sources, or older than the image folder newer_than (a stand-in release must be built from
    the same sources as the release it stands beside)."""
    folder = image_dir(model, version)
    manifest = folder / artifacts.IMAGE_MANIFEST
    reference = sources_mtime()
    if newer_than is not None and (newer_than / artifacts.IMAGE_MANIFEST).exists():
        reference = max(reference, (newer_than / artifacts.IMAGE_MANIFEST).stat().st_mtime)
    stale = manifest.exists() and manifest.stat().st_mtime < reference
    if not manifest.exists() or stale:
        command = [sys.executable, "-m", "image.build", "--model", str(model)]
        if version and str(version) != str(current_version()):
            command += ["--version", str(version)]
        print(f"lab: building the image {folder.name} ...", file=sys.stderr, flush=True)
        run_build(command, folder.name)
    return folder


class ImageBuildFailed(Exception):
    """An image the lab needs did not build. The message ends with the build's last lines
    of output, so that a test's one-line failure summary says why."""

    def __init__(self, name: str, tail: list[str]):
        last = tail[-1] if tail else "(no output)"
        super().__init__(f"the image {name} did not build: {last}\nits output ended:\n"
                         + "\n".join(tail))


def run_build(command: list[str], name: str, kept_lines: int = 15) -> None:
    """Run an image build, its progress (stderr) passed through to ours as it comes.
    Raises ImageBuildFailed with the last kept_lines of that output when it fails."""
    process = subprocess.Popen(command, cwd=BUILD.parent, stderr=subprocess.PIPE, text=True,
                               errors="replace")
    tail: collections.deque[str] = collections.deque(maxlen=kept_lines)
    for line in process.stderr:
        sys.stderr.write(line)
        tail.append(line.rstrip("\n"))
    if process.wait() != 0:
        raise ImageBuildFailed(name, list(tail))


def web_metrics(host: str, port: int) -> str:
    """An appliance's /metrics (Prometheus text) from its web UI at host:port, whose
    certificate is its own (self-signed: not checked). Raises OSError (URLError, a
    timeout after 30 s) or http.client.HTTPException when it cannot be read."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with urllib.request.urlopen(f"https://{host}:{port}/metrics", context=context,
                                timeout=30) as response:
        return response.read().decode()


def appliance_config(mirror: dict | None = None) -> str:
    """archiver.yaml of a lab VM: SMTP takes mail for example.com from anyone and anything
    from the build host (which the user-mode NIC shows as 10.0.2.2); web and mirror on
    their usual ports; `mirror`: more keys of the mirror section (timers, in seconds)."""
    return yaml.safe_dump({
        "data_dir": "/var/lib/archiver",
        "smtp": {"listen": "0.0.0.0:25", "trusted_servers": [f"{SLIRP_HOST}/32"],
                 "local_domains": [MAIL_DOMAIN]},
        "web": {"listen": "0.0.0.0:8000"},
        "mirror": {"listen": f"0.0.0.0:{MIRROR_PORT}", **(mirror or {})},
    }, sort_keys=False)


def parallel(function, items) -> list:
    """function(item) for every item in threads; re-raises the first failure."""
    results, errors = [None] * len(items), []

    def run(i, item):
        try:
            results[i] = function(item)
        except BaseException as exc:  # noqa: BLE001 (re-raised below)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, item)) for i, item in enumerate(items)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


class Lab:
    def __init__(self, names=("a", "b"), *, model: int = 450, secret: str = DEFAULT_SECRET,
                 admin_password: str | None = None, fresh: bool = True, vms_dir: Path = VMS,
                 accel: str | None = None, mirror: dict | None = None):
        """`mirror`: archiver.yaml mirror keys of every VM beyond the listen address (the
        appliance's timers when None)."""
        self.names, self.model, self.secret = list(names), model, secret
        self.mirror = dict(mirror or {})
        self.vms_dir, self.fresh = Path(vms_dir), fresh
        self.admin_password = admin_password or f"admin-{secrets.token_urlsafe(9)}"
        self.mcast_port = free_udp_port()
        self.accel = accel
        self.machines: dict[str, Machine] = {}
        self.timings: dict[str, float] = {}

    # -- addresses ------------------------------------------------------------------------

    def address(self, name: str) -> str:
        return f"{SUBNET}.{10 + self.names.index(name)}"

    def mirror_address(self, name: str) -> str:
        return f"{self.address(name)}:{MIRROR_PORT}"

    def credentials(self, name: str) -> dict[str, str]:
        peers = [self.mirror_address(n) for n in self.names if n != name]
        return {"archiver.name": name, "archiver.address": f"{self.address(name)}/24",
                "archiver.mgmt": f"eth1 {MGMT_ADDRESS}",
                "archiver.config": appliance_config(self.mirror),
                "archiver.secret": self.secret, "archiver.peers": " ".join(peers),
                "admin-password": self.admin_password}

    def __getitem__(self, name: str) -> Machine:
        return self.machines[name]

    # -- flashing -------------------------------------------------------------------------

    def image(self, version: str | None = None, model: int | None = None) -> Path:
        """The image folder flash() takes for model/version, built when it is missing or
        stale (see ensure_image); a VM may run meanwhile."""
        reference = image_dir(self.model) if version and model in (None, self.model) else None
        return ensure_image(model or self.model, version, newer_than=reference)

    def flash(self, name: str, version: str | None = None, model: int | None = None,
              reset_data: bool = False, allow_downgrade: bool = False) -> dict:
        """Flash an image of model/version onto VM name (it must be off). Raises
        image.flash.FlashRefused with the reasons when the flash is refused (older firmware
        than the VM holds too, unless allow_downgrade)."""
        folder = self.image(version, model)
        vm = flashing.flash(folder, name, vms_dir=self.vms_dir, model=model or self.model,
                            reset_data=reset_data, allow_downgrade=allow_downgrade)
        return vm

    def prepare(self) -> None:
        """Every VM flashed with this tree's image of the model; fresh: data disks and
        overlays made anew."""
        image = json.loads((ensure_image(self.model) / artifacts.IMAGE_MANIFEST).read_text())

        def outdated(name: str) -> bool:
            vm = flashing.load_vm(self.vms_dir / name)
            return (self.fresh or vm is None or
                    vm["firmware"]["disk_sha256"] != image["files"][artifacts.DISK])

        # A fresh lab makes its appliances anew: whatever firmware a VM held before (a newer
        # stand-in release, say) does not count.
        parallel(lambda name: self.flash(name, reset_data=self.fresh,
                                         allow_downgrade=self.fresh),
                 [name for name in self.names if outdated(name)])
        for i, name in enumerate(self.names):
            netdev = f"socket,mcast={MCAST_GROUP}:{self.mcast_port},localaddr=127.0.0.1"
            machine = Machine(name, vms_dir=self.vms_dir, credentials=self.credentials(name),
                              lab_netdev=netdev, lab_mac=f"52:54:00:ab:00:{10 + i:02x}",
                              accel=self.accel)
            if self.fresh:
                machine.reset_overlay()
                machine.serial.unlink(missing_ok=True)
            self.machines[name] = machine

    # -- running --------------------------------------------------------------------------

    def start(self) -> "Lab":
        if not self.machines:
            self.prepare()
        self.started = time.monotonic()
        for machine in self.machines.values():
            machine.start()
        return self

    def wait_ready(self, timeout: float = 900, names=None) -> dict[str, float]:
        """Wait until every archiver unit is active and ports 25, 8000 and 8443 listen on
        each VM (in parallel); returns seconds since power-on per VM."""
        machines = [self.machines[n] for n in (names or self.names)]

        def ready(machine: Machine) -> float:
            # The console says when the boot is through without costing the guest anything
            # (under TCG every SSH session and `archiver` command takes it seconds of CPU).
            machine.wait_for_console_text(r"Reached target .*multi-user", timeout)
            machine.wait_for_ssh(timeout)
            machine.wait_for_units(UNITS, timeout)
            machine.wait_until_succeeds(" && ".join(
                f"ss -Htln 'sport = :{p}' | grep -q ." for p in PORTS), timeout, interval=3)
            return time.monotonic() - machine.started_at

        seconds = dict(zip([m.name for m in machines], parallel(ready, machines)))
        self.timings.update({f"ready_{n}": s for n, s in seconds.items()})
        return seconds

    def mirror_status(self, name: str) -> dict[str, dict]:
        out = self.machines[name].succeed("archiver mirror status --json")
        return {r["peer"]: r for r in map(json.loads, out.splitlines()) if r}

    def peer_status(self, name: str, peer: str) -> dict:
        return self.mirror_status(name)[self.mirror_address(peer)]

    def metrics(self, name: str) -> str:
        """VM name's /metrics, through the host forward of its web UI."""
        return web_metrics("127.0.0.1", self.machines[name].ports["web"])

    def peer_connected(self, name: str, peer: str) -> bool:
        """Whether VM name's mirror is connected to peer (its mirror status says
        "connected"), from its /metrics; False while that cannot be read."""
        try:
            exposition = self.metrics(name)
        except (OSError, http.client.HTTPException):  # a reply cut short too
            return False
        gauge = (f'archiver_mirror_peer_connected{{peer="{self.mirror_address(peer)}"}} 1')
        return gauge in exposition.splitlines()

    def wait_mirrored(self, timeout: float = 300, names=None) -> None:
        """Wait until each VM is connected to every other one (both ways). Read from /metrics
        every second: an `archiver mirror status` over SSH per VM and round cost a guest
        under TCG seconds each, while its services were still settling."""
        names = names or self.names
        deadline = time.monotonic() + timeout
        while True:
            states = {(n, p): self.peer_connected(n, p)
                      for n in names for p in names if p != n}
            if all(states.values()):
                self.timings["mirrored"] = time.monotonic() - self.started
                return
            if time.monotonic() > deadline:
                details = {pair: self._peer_state(*pair) for pair in states}
                raise MachineError(f"not mirrored after {timeout} s: {details}")
            time.sleep(1)

    def _peer_state(self, name: str, peer: str) -> str:
        """VM name's mirror state for peer, as its `mirror status` says, for a failure's
        message: what went wrong reading it, where it cannot be read (a guest that does not
        answer SSH), so that the message is still raised."""
        try:
            return self.peer_status(name, peer)["state"]
        except Exception as exc:  # noqa: BLE001 - any error is part of the message
            return f"unknown ({type(exc).__name__}: {exc})"[:300]

    def shutdown(self) -> None:
        parallel(lambda m: m.shutdown(), list(self.machines.values()))

    def crash_all(self) -> None:
        for machine in self.machines.values():
            machine.crash()

    def __enter__(self) -> "Lab":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.shutdown()
