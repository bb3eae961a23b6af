"""One virtual appliance under QEMU, driven the way the NixOS test driver drives its machines.

    m = Machine("a", credentials={"archiver.name": "a"}, lab_netdev=[...])
    m.start(); m.wait_for_unit("archiver-smtp.service"); m.succeed("archiver stats --json")
    m.set_link(False); m.pause(); m.resume(); m.crash(); m.start(); m.shutdown()

A machine is a flashed VM folder build/vms/<name>/ (`make flash`): it boots the kernel and
initrd flashed there, from a qcow2 overlay over the flashed system disk (overlay.qcow2, made
anew when the flashed firmware changes, so disk.qcow2 stays as `make flash` wrote it) and from
the VM's data disk data.qcow2 itself (the archive survives boots and flashes, as on a real
box). Its serial console goes to build/vms/<name>/serial.log (appended across boots; each
boot starts with a "=== harness: boot N" line), QEMU's own messages to qemu.log, and QMP
listens on build/vms/<name>/qmp.sock.

NICs: eth0 is the lab link (the appliance's network; the Lab gives it a socket netdev),
eth1 a user-mode NIC whose host forwards reach the guest's SSH, SMTP, web and mirror ports
from 127.0.0.1 (ports in Machine.ports).

Command channel: SSH over the user-mode NIC's forward, as root with the build host's key
(build/ssh/id_ed25519, which the image's /root/.ssh/authorized_keys accepts). DESIGN.md names
a root shell on a virtio console; SSH is used instead because the image already ships sshd
with exactly this key, it needs no guest-side agent in the signed firmware, and the same
channel is what the system tests (testinfra) and hardware in the loop use: one code path.
"""
from __future__ import annotations

import base64
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from .qmp import QMP, QMPError

TREE = Path(__file__).resolve().parent.parent
BUILD = TREE / "build"
VMS = BUILD / "vms"
SSH_KEY = BUILD / "ssh" / "id_ed25519"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# Guest ports forwarded from the host: name -> guest port.
GUEST_PORTS = {"ssh": 22, "smtp": 25, "web": 8000, "mirror": 8443}
MGMT_ADDRESS = "10.0.2.15/24"   # the user-mode NIC's guest address (QEMU's slirp default)


class MachineError(AssertionError):
    """A command with the wrong exit status, a timeout, a QEMU that died: says what and why."""


# Host ports for the guests' forwards are drawn below the kernel's ephemeral range
# (net.ipv4.ip_local_port_range, 32768 and up by default): a port the kernel hands out (to
# bind(0) or to an outgoing connection) may be taken again before QEMU binds it, and QEMU
# then exits ("Could not set up host forwarding rule"): a whole VM tier errored so once.
HOST_PORTS = range(20000, 32000)
PORT_ATTEMPTS = 3  # boots tried with fresh ports when one was taken meanwhile anyway
PORT_TAKEN = "Could not set up host forwarding rule"
QMP_WAIT_SECONDS = 30  # for a starting QEMU's QMP socket


_handed_out: set[int] = set()  # by free_port() in this process: never handed out twice


def free_port(ports: range = HOST_PORTS) -> int:
    """A loopback TCP port from `ports` that nothing is bound to now and that no earlier call
    handed out (a server or VM that has not bound its port yet still owns it: two probes
    may find the same port free). RuntimeError when none is left."""
    start = random.randrange(len(ports))  # runs at once (other checkouts) start apart
    for step in range(len(ports)):
        port = ports[(start + step) % len(ports)]
        if port in _handed_out:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free loopback port left in {ports}")


def ssh_config(path: Path = BUILD / "ssh" / "ssh_config", key: Path = SSH_KEY) -> Path:
    """An ssh_config for the appliances on loopback: the build host's key, no host key
    checks (every flash makes a new host key), connection sharing. testinfra uses it too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = ("# Written by qemu/machine.py: SSH to virtual appliances on 127.0.0.1 (and to\n"
            "# real ones in hardware-in-the-loop runs) as root with the build host's key.\n"
            "Host *\n"
            f"  IdentityFile {key}\n"
            "  IdentitiesOnly yes\n"
            "  User root\n"
            "  StrictHostKeyChecking no\n"
            "  UserKnownHostsFile /dev/null\n"
            "  LogLevel ERROR\n"
            "  BatchMode yes\n"
            "  ConnectTimeout 20\n"
            "  ServerAliveInterval 5\n"
            "  ServerAliveCountMax 6\n"
            "  ControlMaster auto\n"
            "  ControlPath /tmp/archiver-ssh-%C\n"
            "  ControlPersist 120\n")
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


# --- acceleration --------------------------------------------------------------------------

def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def accelerator(kernel: Path, cache: Path = VMS / ".accel.json", timeout: float = 20) -> str:
    """"kvm" when a short canary boot under KVM gets the kernel going, else "tcg".

    ARCHIVER_QEMU_ACCEL=kvm|tcg decides without a canary. The answer is kept in
    build/vms/.accel.json for this boot of the build host (KVM does not start working or
    hanging in between)."""
    forced = os.environ.get("ARCHIVER_QEMU_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    try:
        known = json.loads(cache.read_text())
        if known.get("boot_id") == _boot_id() and known.get("accel") in ("kvm", "tcg"):
            return known["accel"]
    except (OSError, ValueError):
        pass
    started = time.monotonic()
    works = _canary(kernel, timeout)
    accel = "kvm" if works else "tcg"
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"boot_id": _boot_id(), "accel": accel,
                                 "canary_seconds": round(time.monotonic() - started, 1)}) + "\n")
    return accel


# A kernel that runs under KVM has written its first console lines within a second or two
# (the boot messages come out as soon as ttyS0 registers), even on a busy host; a hanging
# KVM writes nothing at all, so waiting the whole timeout for it only delays every first
# boot of a host where KVM hangs (TCG is used then; CI pays it on every fresh clone).
FIRST_OUTPUT_SECONDS = 6


def _canary(kernel: Path, timeout: float, first_output: float = FIRST_OUTPUT_SECONDS) -> bool:
    """Boot the kernel alone under KVM; it works if the kernel gets to running init (or to
    the panic for the missing root) within `timeout` seconds. A hanging KVM shows nothing:
    no output at all within `first_output` seconds ends the canary there."""
    command = ["qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-m", "256",
               "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
               "-nodefaults", "-kernel", str(kernel),
               "-append", "console=ttyS0 panic=-1 root=/dev/nonexistent"]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL)
    output = b""
    started = time.monotonic()
    deadline = started + timeout
    os.set_blocking(process.stdout.fileno(), False)
    try:
        while time.monotonic() < deadline:
            chunk = process.stdout.read()
            if chunk:
                output += chunk
            elif not output and time.monotonic() - started > first_output:
                return False
            if re.search(rb"Run /init|Kernel panic|VFS: Cannot open root|Freeing unused", output):
                return True
            if process.poll() is not None and not chunk:
                return bool(re.search(rb"Linux version", output))
            time.sleep(0.2)
        return False
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


# --- the machine ---------------------------------------------------------------------------

class Machine:
    def __init__(self, name: str, *, vms_dir: Path = VMS, credentials: dict[str, str] | None = None,
                 lab_netdev: str | None = None, lab_mac: str | None = None,
                 accel: str | None = None, ssh_key: Path = SSH_KEY):
        self.name = name
        self.dir = Path(vms_dir) / name
        if not (self.dir / "vm.json").exists():
            raise MachineError(f"there is no VM {name} in {vms_dir} (make flash VM={name})")
        self.credentials = dict(credentials or {})
        self.lab_netdev, self.lab_mac = lab_netdev, lab_mac
        self.accel = accel
        self.ssh_key = ssh_key
        self.ssh_config = ssh_config(key=ssh_key)
        self.ports = {name: free_port() for name in GUEST_PORTS}
        self.serial = self.dir / "serial.log"
        self.qmp_path = self.dir / "qmp.sock"
        self.process: subprocess.Popen | None = None
        self.qmp: QMP | None = None
        self.boots = 0
        self.boot_offset = 0
        self.log_offset = 0
        self.started_at = 0.0

    # -- description ----------------------------------------------------------------------

    @property
    def vm(self) -> dict:
        return json.loads((self.dir / "vm.json").read_text())

    @property
    def firmware(self) -> dict:
        return self.vm["firmware"]

    def __repr__(self) -> str:
        return f"<Machine {self.name} ssh 127.0.0.1:{self.ports['ssh']}>"

    # -- disks and command line -----------------------------------------------------------

    def overlay(self) -> Path:
        """The qcow2 overlay the machine boots from; made anew when the flashed firmware
        (disk.qcow2) changed since it was made."""
        vm = self.vm
        overlay = self.dir / "overlay.qcow2"
        stamp = self.dir / "overlay.json"
        want = {"disk_sha256": vm["firmware"]["disk_sha256"], "flashed": vm["firmware"]["flashed"]}
        try:
            have = json.loads(stamp.read_text())
        except (OSError, ValueError):
            have = None
        if have != want or not overlay.exists():
            overlay.unlink(missing_ok=True)
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                            str(self.dir / vm["system_disk"]), str(overlay)], check=True,
                           capture_output=True)
            stamp.write_text(json.dumps(want) + "\n")
        return overlay

    def reset_overlay(self) -> None:
        """Forget what the system disk's overlay holds (the next start boots the flashed
        firmware as flashed); the data disk is kept."""
        (self.dir / "overlay.json").unlink(missing_ok=True)

    def command(self) -> list[str]:
        vm = self.vm
        accel = self.accel or accelerator(self.dir / vm["kernel"])
        self.accel = accel
        cpu = ["-accel", "kvm", "-cpu", "host"] if accel == "kvm" else \
            ["-accel", "tcg,thread=multi", "-cpu", "qemu64"]
        forwards = ",".join(f"hostfwd=tcp:127.0.0.1:{self.ports[n]}-:{p}"
                            for n, p in GUEST_PORTS.items())
        command = ["qemu-system-x86_64", "-name", f"archiver-{self.name}", *cpu,
                   "-m", str(vm["memory_mb"]), "-smp", str(vm["vcpus"]),
                   "-nodefaults", "-display", "none", "-vga", "none",
                   "-chardev", f"file,id=serial0,path={self.serial},append=on",
                   "-serial", "chardev:serial0",
                   "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
                   "-kernel", str(self.dir / vm["kernel"]),
                   "-initrd", str(self.dir / vm["initrd"]),
                   "-append", vm["cmdline"],
                   "-drive", f"file={self.overlay()},if=virtio,format=qcow2,cache=writeback",
                   "-drive", f"file={self.dir / vm['data_disk']},if=virtio,format=qcow2,"
                             "cache=writeback",
                   "-device", "virtio-rng-pci"]
        if self.lab_netdev:
            command += ["-netdev", f"{self.lab_netdev},id=lab",
                        "-device", f"virtio-net-pci,netdev=lab,id=labnic"
                                   + (f",mac={self.lab_mac}" if self.lab_mac else "")]
        command += ["-netdev", f"user,id=mgmt,{forwards}",
                    "-device", "virtio-net-pci,netdev=mgmt,id=mgmtnic"]
        for path in self.credential_files():
            command += ["-smbios", f"type=11,path={path}"]
        return command

    def credential_files(self) -> list[Path]:
        """The credentials as SMBIOS OEM strings, one file each under credentials/ (mode
        0600): on the command line they would be readable by every user of the build host."""
        folder = self.dir / "credentials"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(mode=0o700)
        files = []
        for name, value in self.credentials.items():
            path = folder / name
            encoded = base64.b64encode(value.encode()).decode()
            path.touch(mode=0o600)
            path.write_text(f"io.systemd.credential.binary:{name}={encoded}")
            files.append(path)
        return files

    # -- power ----------------------------------------------------------------------------

    def is_up(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> "Machine":
        """Boot the VM (QEMU up and its QMP answering); a host port taken between drawing
        it and QEMU binding it is drawn again, PORT_ATTEMPTS times. Raises MachineError
        when QEMU exits, QMPError when its QMP never answers."""
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                return self._start_once()
            except MachineError as exc:
                if PORT_TAKEN not in str(exc) or attempt == PORT_ATTEMPTS:
                    raise
                self.ports = {name: free_port() for name in GUEST_PORTS}
        raise AssertionError("unreachable")

    def _start_once(self) -> "Machine":
        if self.is_up():
            return self
        command = self.command()
        self.qmp_path.unlink(missing_ok=True)
        self.boots += 1
        with open(self.serial, "ab") as log:
            log.write(f"\n=== harness: boot {self.boots} of {self.name} ({self.accel}, "
                      f"firmware {self.firmware['version']}) at {time.strftime('%H:%M:%S')}"
                      " ===\n".encode())
        self.boot_offset = self.serial.stat().st_size
        self.started_at = time.monotonic()
        qemu_log = open(self.dir / "qemu.log", "ab")
        self.log_offset = qemu_log.tell()  # this boot's output starts here
        qemu_log.write((" ".join(map(shlex.quote, command)) + "\n").encode())
        qemu_log.flush()
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=qemu_log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        qemu_log.close()
        self.qmp = QMP(self.qmp_path)
        deadline = time.monotonic() + QMP_WAIT_SECONDS
        while True:  # a QEMU that exits (a bad disk, a port taken) is said at once
            try:
                self.qmp.connect(wait=0.5)
                return self
            except QMPError:
                self._check_alive()
                if time.monotonic() > deadline:
                    raise

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            with open(self.dir / "qemu.log", "rb") as log:  # this boot's output only
                log.seek(self.log_offset)
                tail = log.read().decode(errors="replace")[-2000:]
            raise MachineError(f"QEMU of {self.name} exited ({self.process.returncode}):\n{tail}")

    def _stopped(self) -> None:
        if self.qmp is not None:
            self.qmp.close()
            self.qmp = None
        self._close_ssh_master()

    def _close_ssh_master(self) -> None:
        subprocess.run(["ssh", "-F", str(self.ssh_config), "-p", str(self.ports["ssh"]),
                        "-O", "exit", "127.0.0.1"], capture_output=True, timeout=30)

    def crash(self) -> None:
        """Hard power-off: QEMU is killed (SIGKILL), as if the power cord were pulled; what
        the guest had not written to its disks is gone."""
        if self.is_up():
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._stopped()

    def shutdown(self, timeout: float = 180) -> None:
        """A clean power-off (systemctl poweroff, else ACPI power button); waits for QEMU."""
        if not self.is_up():
            self._stopped()
            return
        try:
            self.ssh("systemctl poweroff --no-block", timeout=60)
        except (MachineError, subprocess.TimeoutExpired):
            try:
                self.qmp.command("system_powerdown")
            except (QMPError, OSError, AttributeError):
                pass
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._stopped()

    def reboot(self, timeout: float = 180) -> None:
        """A clean reboot: shut down, then power on again (the flashed firmware and overlay
        as they are)."""
        self.shutdown(timeout)
        self.start()

    def pause(self) -> None:
        self.qmp.command("stop")

    def resume(self) -> None:
        self.qmp.command("cont")

    def set_link(self, up: bool, nic: str = "labnic") -> None:
        """Cable in or out: QMP set_link on the lab NIC (eth0; "mgmtnic" is the harness's)."""
        self.qmp.command("set_link", name=nic, up=up)

    # -- console --------------------------------------------------------------------------

    def console(self, whole: bool = False) -> str:
        """The serial console of this boot (whole=True: of every boot)."""
        if not self.serial.exists():
            return ""
        with open(self.serial, "rb") as f:
            if not whole:
                f.seek(self.boot_offset)
            return ANSI.sub("", f.read().decode(errors="replace")).replace("\r", "")

    def wait_for_console_text(self, pattern: str, timeout: float = 600) -> re.Match:
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.console())
            if found:
                return found
            self._check_alive()
            if time.monotonic() > deadline:
                raise MachineError(f"{self.name}: no {pattern!r} on the console after {timeout} s;"
                                   f" its end:\n{self.console()[-3000:]}")
            time.sleep(0.5)

    # -- commands -------------------------------------------------------------------------

    def ssh_command(self, command: str) -> list[str]:
        return ["ssh", "-F", str(self.ssh_config), "-p", str(self.ports["ssh"]),
                "root@127.0.0.1", command]

    def ssh(self, command: str, timeout: float = 300, input: bytes | None = None
            ) -> subprocess.CompletedProcess:
        """Run a shell command as root; returns the CompletedProcess (bytes)."""
        self._check_alive()
        return subprocess.run(self.ssh_command(command), input=input, capture_output=True,
                              timeout=timeout, stdin=None if input is not None else
                              subprocess.DEVNULL)

    def execute(self, command: str, timeout: float = 300) -> tuple[int, str]:
        done = self.ssh(command, timeout)
        if done.returncode == 255:
            raise MachineError(f"{self.name}: ssh failed for {command!r}: "
                               f"{done.stderr.decode(errors='replace').strip()}")
        return done.returncode, done.stdout.decode(errors="replace") + \
            done.stderr.decode(errors="replace")

    def succeed(self, command: str, timeout: float = 300) -> str:
        """Run a command; returns its stdout; raises with its output when it exits non-zero."""
        done = self.ssh(command, timeout)
        if done.returncode != 0:
            raise MachineError(f"{self.name}: {command!r} exited {done.returncode}:\n"
                               f"{done.stdout.decode(errors='replace')}"
                               f"{done.stderr.decode(errors='replace')}")
        return done.stdout.decode(errors="replace")

    def fail(self, command: str, timeout: float = 300) -> str:
        """Run a command that must fail; returns its output; raises when it exits 0."""
        status, output = self.execute(command, timeout)
        if status == 0:
            raise MachineError(f"{self.name}: {command!r} succeeded but should fail:\n{output}")
        return output

    def wait_until_succeeds(self, command: str, timeout: float = 300, interval: float = 2) -> str:
        deadline = time.monotonic() + timeout
        while True:
            done = self.ssh(command, timeout=max(30, timeout))
            if done.returncode == 0:
                return done.stdout.decode(errors="replace")
            if time.monotonic() > deadline:
                raise MachineError(f"{self.name}: {command!r} did not succeed in {timeout} s; "
                                   f"last exit {done.returncode}:\n"
                                   f"{(done.stdout + done.stderr).decode(errors='replace')}")
            time.sleep(interval)

    def wait_for_ssh(self, timeout: float = 600) -> float:
        """Wait until the guest answers on SSH; returns seconds since power-on."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            done = self.ssh("true", timeout=60)
            if done.returncode == 0:
                return time.monotonic() - self.started_at
            if time.monotonic() > deadline:
                raise MachineError(f"{self.name}: no SSH after {timeout} s "
                                   f"({done.stderr.decode(errors='replace').strip()}); console:\n"
                                   f"{self.console()[-3000:]}")
            time.sleep(2)

    def wait_for_unit(self, unit: str, timeout: float = 600) -> None:
        """Wait until the unit is active; raise at once, with its status, when it failed."""
        self.wait_for_ssh(timeout)
        deadline = time.monotonic() + timeout
        while True:
            status, output = self.execute(f"systemctl is-active {shlex.quote(unit)}")
            state = output.strip()
            if state == "active":
                return
            if state == "failed":
                _, detail = self.execute(f"systemctl status --no-pager -l {shlex.quote(unit)}")
                raise MachineError(f"{self.name}: {unit} failed:\n{detail}")
            if time.monotonic() > deadline:
                raise MachineError(f"{self.name}: {unit} is {state} after {timeout} s")
            time.sleep(3)

    def wait_for_units(self, units, timeout: float = 600, interval: float = 3) -> None:
        """wait_for_unit for several units with one command per round."""
        deadline = time.monotonic() + timeout
        names = " ".join(map(shlex.quote, units))
        while True:
            _, output = self.execute(f"systemctl is-active {names}")
            states = dict(zip(units, output.split()))
            failed = [u for u, s in states.items() if s == "failed"]
            if failed:
                _, detail = self.execute("systemctl status --no-pager -l "
                                         + " ".join(map(shlex.quote, failed)))
                raise MachineError(f"{self.name}: {', '.join(failed)} failed:\n{detail}")
            if len(states) == len(units) and set(states.values()) == {"active"}:
                return
            if time.monotonic() > deadline:
                raise MachineError(f"{self.name}: not all active after {timeout} s: {states}")
            time.sleep(interval)

    def wait_for_open_port(self, port: int, timeout: float = 300) -> None:
        self.wait_until_succeeds(f"ss -Htln 'sport = :{int(port)}' | grep -q .", timeout)

    def copy_to(self, local: Path, remote: str) -> None:
        """Copy a host file into the guest (cat over the SSH channel)."""
        data = Path(local).read_bytes()
        done = self.ssh(f"cat > {shlex.quote(remote)}", input=data)
        if done.returncode != 0:
            raise MachineError(f"{self.name}: copying {local} to {remote} failed: "
                               f"{done.stderr.decode(errors='replace')}")

    def copy_from(self, remote: str, local: Path) -> Path:
        done = self.ssh(f"cat {shlex.quote(remote)}")
        if done.returncode != 0:
            raise MachineError(f"{self.name}: copying {remote} out failed: "
                               f"{done.stderr.decode(errors='replace')}")
        Path(local).write_bytes(done.stdout)
        return Path(local)
