"""The boot check on a running virtual appliance: a file the firmware manifest does not list,
dropped into a payload folder (a .pth file in dist-packages, which every Python process would
run), keeps every archiver service from starting at the next boot, and the console says why.
The test removes the file and leaves the pair healthy and mirrored, as every system test does
(the check, run again, then passes and the services start).
"""
from __future__ import annotations

import re

import pytest

pytestmark = [pytest.mark.system, pytest.mark.slow, pytest.mark.timeout(1800)]

PACKAGES = "usr/lib/python3/dist-packages"
UNLISTED = f"/{PACKAGES}/zz-unlisted-by-the-manifest.pth"
SERVICES = ("archiver-smtp", "archiver-journal", "archiver-indexer", "archiver-mirror",
            "archiver-web", "archiver-firstboot")


def test_an_unlisted_file_in_dist_packages_stops_the_archiver_services_at_boot(vm_pair, lab):
    _, b = vm_pair
    machine = b.machine
    machine.succeed(f"printf 'import os\\n' > {UNLISTED} && sync")
    try:
        machine.reboot()
        machine.wait_for_console_text(r"FIRMWARE VERIFICATION FAILED", 900)
        machine.wait_for_console_text(r"Reached target .*multi-user", 900)
        console = machine.console()
        reason = (f"{UNLISTED.lstrip('/')} is not in the manifest (an unlisted file in the "
                  f"payload folder {PACKAGES})")
        assert reason in console.replace("\n", " ") or reason in console, console[-6000:]
        assert re.search(r"Dependency failed for .*archiver-smtp", console), console[-6000:]
        assert not re.search(r"Started .*archiver-(smtp|indexer|journal|mirror|web)", console), \
            console[-6000:]
        machine.wait_for_ssh(600)
        states = machine.execute("systemctl is-active " + " ".join(SERVICES))[1].split()
        assert "active" not in states, states
        assert machine.execute("systemctl is-failed archiver-verify")[1].strip() == "failed"
    finally:
        machine.wait_for_ssh(600)
        # Without the file, starting the boot's target again runs the check again (it failed,
        # so it is no longer active) and then the services: what a reboot would check,
        # without booting again under TCG.
        machine.succeed(f"rm -f {UNLISTED} && sync && systemctl start multi-user.target")
        lab.wait_ready(names=["b"])
        lab.wait_mirrored()
    assert "manifest: verified" in b.run("archiver firmware show")
