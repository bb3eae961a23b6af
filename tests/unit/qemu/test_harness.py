"""The QEMU harness without booting anything: the QMP client against a fake QEMU, the QEMU
command line of a lab machine (disks, NICs, forwards, credentials) and the overlay rule."""
from __future__ import annotations

import base64
import json
import select
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from qemu.lab import Lab
from qemu.machine import HOST_PORTS, PORT_TAKEN, Machine, MachineError, free_port
from qemu.qmp import QMP, QMPError


def fake_qemu(path, replies):
    """A QMP server that greets, accepts qmp_capabilities and answers from `replies`."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    seen = []

    def serve():
        connection, _ = server.accept()
        stream = connection.makefile("rwb", buffering=0)
        stream.write(b'{"QMP": {"version": {}, "capabilities": []}}\n')
        for line in stream:
            request = json.loads(line)
            seen.append(request)
            if request["execute"] == "qmp_capabilities":
                stream.write(b'{"return": {}}\n')
                continue
            stream.write(b'{"event": "NIC_RX_FILTER_CHANGED", "data": {}}\n')
            stream.write(json.dumps(replies.pop(0)).encode() + b"\n")
        connection.close()
        server.close()

    threading.Thread(target=serve, daemon=True).start()
    return seen


def test_qmp_commands_events_and_errors(tmp_path):
    path = tmp_path / "qmp.sock"
    seen = fake_qemu(path, [{"return": {}}, {"error": {"class": "GenericError",
                                                      "desc": "Device 'x' not found"}}])
    qmp = QMP(path).connect(wait=5)
    assert qmp.command("set_link", name="labnic", up=False) == {}
    with pytest.raises(QMPError, match="Device 'x' not found"):
        qmp.command("set_link", name="x", up=True)
    qmp.close()
    assert seen[1] == {"execute": "set_link", "arguments": {"name": "labnic", "up": False}}
    assert [e["event"] for e in qmp.events] == ["NIC_RX_FILTER_CHANGED"] * 2


def test_a_qemu_that_exits_with_a_command_unread_is_a_qmp_error(tmp_path):
    """QEMU that exits while qmp_capabilities is still in its socket (it failed to set up a
    host forward) resets the connection: that is a QMPError, which Machine.start answers by
    looking at the process (and drawing the port again), not a ConnectionResetError that
    ended a VM tier once."""
    path = tmp_path / "qmp.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def exit_with_the_command_unread():
        connection, _ = server.accept()
        connection.sendall(b'{"QMP": {"version": {}, "capabilities": []}}\n')
        select.select([connection], [], [], 5)  # the command has come, and is not read
        connection.close()
        server.close()

    threading.Thread(target=exit_with_the_command_unread, daemon=True).start()
    with pytest.raises(QMPError, match="QEMU closed the QMP socket"):
        QMP(path).connect(wait=5)


def test_qmp_says_when_there_is_no_qemu(tmp_path):
    with pytest.raises(QMPError, match="no QMP socket"):
        QMP(tmp_path / "none.sock").connect(wait=0.3)


@pytest.fixture
def vms(tmp_path):
    if not shutil.which("qemu-img"):
        pytest.skip("needs qemu-img")
    for name in ("a", "b"):
        vm = tmp_path / name
        vm.mkdir()
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(vm / "disk.qcow2"), "1M"],
                       check=True)
        (vm / "vm.json").write_text(json.dumps({
            "name": name, "model": 450, "vcpus": 1, "memory_mb": 1024, "disk_gb": 8,
            "system_disk": "disk.qcow2", "data_disk": "data.qcow2", "kernel": "vmlinuz",
            "initrd": "initrd.img", "cmdline": "root=/dev/vda rw console=ttyS0 net.ifnames=0",
            "firmware": {"version": "1.0.0.001", "disk_sha256": "1" * 64, "flashed": "t1"}}))
    return tmp_path


def test_lab_machine_command_line(vms):
    lab = Lab(["a", "b"], vms_dir=vms, accel="tcg", admin_password="pass-word-123",
              secret="a secret of enough length")
    a = Machine("a", vms_dir=vms, credentials=lab.credentials("a"), accel="tcg",
                lab_netdev=f"socket,mcast=230.0.0.1:{lab.mcast_port},localaddr=127.0.0.1",
                lab_mac="52:54:00:ab:00:0a")
    command = a.command()
    text = " ".join(command)
    assert "-accel tcg,thread=multi -cpu qemu64" in text
    assert f"mcast=230.0.0.1:{lab.mcast_port},localaddr=127.0.0.1,id=lab" in text
    assert "virtio-net-pci,netdev=lab,id=labnic,mac=52:54:00:ab:00:0a" in text
    for name, guest in (("ssh", 22), ("smtp", 25), ("web", 8000), ("mirror", 8443)):
        assert f"hostfwd=tcp:127.0.0.1:{a.ports[name]}-:{guest}" in text
    assert f"file={vms / 'a' / 'overlay.qcow2'},if=virtio" in text
    assert f"file={vms / 'a' / 'data.qcow2'},if=virtio" in text
    credentials = {}
    for i, arg in enumerate(command):
        if arg == "-smbios":
            path = Path(command[i + 1].removeprefix("type=11,path="))
            assert path.parent == vms / "a" / "credentials" and path.stat().st_mode & 0o077 == 0
            name, _, value = path.read_text().partition("io.systemd.credential.binary:")[2] \
                .partition("=")
            credentials[name] = base64.b64decode(value).decode()
    # nothing secret on the command line, where every user of the host could read it
    assert "a secret of enough length" not in text and "pass-word-123" not in text
    assert base64.b64encode(b"pass-word-123").decode() not in text
    assert credentials["archiver.peers"] == "192.168.100.11:8443"
    assert credentials["archiver.address"] == "192.168.100.10/24"
    assert credentials["archiver.secret"] == "a secret of enough length"
    assert credentials["admin-password"] == "pass-word-123"
    assert credentials["archiver.mgmt"] == "eth1 10.0.2.15/24"
    assert "trusted_servers" in credentials["archiver.config"]


def test_overlay_is_made_anew_only_when_the_firmware_changes(vms):
    a = Machine("a", vms_dir=vms, accel="tcg")
    overlay = a.overlay()
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(overlay)],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["backing-filename"] == str(vms / "a" / "disk.qcow2")
    inode = overlay.stat().st_ino
    assert a.overlay().stat().st_ino == inode
    vm = json.loads((vms / "a" / "vm.json").read_text())
    vm["firmware"]["flashed"] = "t2"
    (vms / "a" / "vm.json").write_text(json.dumps(vm))
    overlay.write_bytes(b"stale")
    a.overlay()
    assert json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(overlay)],
                                     capture_output=True, text=True, check=True).stdout)[
        "format"] == "qcow2"


def test_a_failed_image_build_says_why_in_the_exception(capsys):
    """The lab's image build failure carries the build's own last words, so that a test's
    failure summary (all CI shows) names the cause, not just an exit status."""
    from qemu.lab import ImageBuildFailed, ensure_image
    with pytest.raises(ImageBuildFailed) as failed:
        ensure_image(999)
    first_line = str(failed.value).splitlines()[0]
    assert first_line.startswith("the image 999-")
    assert "image build failed: unknown model 999" in first_line
    assert "unknown model 999" in capsys.readouterr().err  # passed through as it came


def test_host_ports_are_drawn_below_the_kernels_ephemeral_ports():
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {free_port() for _ in range(20)}
    assert all(port in HOST_PORTS and port < low for port in ports)


def test_a_host_port_taken_before_qemu_binds_it_is_drawn_again(vms):
    """A whole VM tier errored once: a forwarded port was free when drawn and taken when
    QEMU bound it ("Could not set up host forwarding rule"). Real QEMU: the SMTP port is
    held here; the boot after the new draw gets past the forwards and fails only on this
    fixture's missing kernel."""
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(vms / "a" / "data.qcow2"),
                    "1M"], check=True)  # QEMU opens the disks before the forwards
    a = Machine("a", vms_dir=vms, accel="tcg")
    with socket.socket() as held:
        held.bind(("127.0.0.1", a.ports["smtp"]))
        held.listen()
        taken = a.ports["smtp"]
        with pytest.raises(MachineError) as failed:
            a.start()
    assert "kernel" in str(failed.value) and PORT_TAKEN not in str(failed.value)
    assert a.ports["smtp"] != taken and a.boots == 2



def test_a_labs_mirror_keys_reach_each_vms_archiver_yaml(tmp_path):
    """What the system tests' pair is given: valid archiver.yaml keys, and only there."""
    from services.common.config import load_config
    from services.mirror.client import Timers

    def timers(lab: Lab, name: str) -> Timers:
        path = tmp_path / f"{name}.yaml"
        path.write_text(lab.credentials(name)["archiver.config"])
        return Timers.of(load_config(path).mirror)
    assert timers(Lab(["a", "b"]), "a") == Timers()  # the appliance's own
    lab = Lab(["a", "b"], mirror={"read_timeout_seconds": 10, "retry_cap_seconds": 3})
    assert timers(lab, "b") == Timers(retry_cap=3, read_timeout=10)


def test_not_mirrored_is_raised_with_its_message_when_a_guest_does_not_answer(vms):
    """wait_mirrored's failure names each pair's state from `mirror status` over SSH; a
    guest that does not answer must not replace that failure with an SSH error."""
    lab = Lab(["a", "b"], vms_dir=vms, accel="tcg")
    for name in ("a", "b"):  # never started: neither /metrics nor SSH answers
        lab.machines[name] = Machine(name, vms_dir=vms, credentials=lab.credentials(name),
                                     accel="tcg")
    with pytest.raises(MachineError) as raised:
        lab.wait_mirrored(timeout=0)
    message = str(raised.value)
    assert message.startswith("not mirrored after 0 s:")
    assert message.count("unknown (") == 2  # a -> b and b -> a, each with why
