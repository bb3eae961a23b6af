"""The Machine API (qemu/machine.py) on a running virtual appliance: commands, files in and
out, ports, units, the console, pause and resume over QMP. Link cuts, hard power-offs,
shutdowns and starts are exercised by test_pair.py."""
from __future__ import annotations

import os
import subprocess

import pytest

from qemu.machine import MachineError

pytestmark = [pytest.mark.system, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture
def machine(lab):
    if lab is None:
        pytest.skip("needs the QEMU harness: real appliances are not driven through the "
                    "Machine API")
    return lab["a"]


def test_commands_succeed_or_fail_with_their_output(machine):
    assert machine.succeed("hostname").strip() == "a"
    assert "no such file" in machine.fail("ls /nonexistent").lower()
    with pytest.raises(MachineError, match=r"exited 3:\nsaid so"):
        machine.succeed("echo said so; exit 3")
    with pytest.raises(MachineError, match="succeeded but should fail"):
        machine.fail("true")


def test_files_go_in_and_out_byte_exact(machine, tmp_path):
    payload = os.urandom(200_000) + b"\0\r\n\xff"
    (tmp_path / "in").write_bytes(payload)
    machine.copy_to(tmp_path / "in", "/tmp/harness-copy")
    assert machine.succeed("sha256sum /tmp/harness-copy").split()[0] == \
        subprocess.run(["sha256sum", tmp_path / "in"], capture_output=True, text=True,
                       check=True).stdout.split()[0]
    assert machine.copy_from("/tmp/harness-copy", tmp_path / "out").read_bytes() == payload
    machine.succeed("rm /tmp/harness-copy")


def test_units_ports_and_console(machine):
    machine.wait_for_unit("archiver-smtp.service", timeout=30)
    machine.wait_for_open_port(25, timeout=30)
    assert machine.wait_for_console_text(r"Reached target .*multi-user", timeout=5)
    with pytest.raises(MachineError, match="no 'no such line' on the console after 1 s"):
        machine.wait_for_console_text("no such line", timeout=1)


def test_paused_machine_answers_nothing_until_resumed(machine):
    machine.pause()
    try:
        assert machine.qmp.command("query-status")["status"] == "paused"
        with pytest.raises(subprocess.TimeoutExpired):
            machine.ssh("true", timeout=8)
    finally:
        machine.resume()
    assert machine.qmp.command("query-status")["status"] == "running"
    machine.wait_until_succeeds("true", timeout=60)
