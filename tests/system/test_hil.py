"""Hardware in the loop, proven on the virtual pair: the system tests run as `make hil` runs
them (HOSTS of ssh:// specs, no QEMU harness), against the lab's two VMs addressed as if they
were real boxes. What needs QMP must skip and say why; the rest must pass."""
from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

import pytest

from tests.system.conftest import TREE

pytestmark = [pytest.mark.system, pytest.mark.slow, pytest.mark.timeout(900)]

# A test that needs only SSH and SMTP, one that sends mail both ways, one that needs QMP.
SELECTED = "smtp_web_and_mirror_ports_listen or sent_to_either or cut_link"


def test_the_system_tests_run_against_hosts_and_skip_what_needs_qemu(lab, tmp_path):
    if lab is None:
        pytest.skip("this run is already against real hosts")
    specs = [f"ssh://root@127.0.0.1:{m.ports['ssh']}?smtp_port={m.ports['smtp']}"
             f"&web_port={m.ports['web']}" for m in lab.machines.values()]
    report = tmp_path / "hil.xml"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "system", "-k", SELECTED, "-p", "no:cacheprovider",
         f"--junitxml={report}", "tests/system/test_pair.py"],
        cwd=TREE, env={**os.environ, "HOSTS": " ".join(specs)}, capture_output=True,
        text=True, timeout=840)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    outcomes = {}
    for case in ElementTree.parse(report).iter("testcase"):
        skipped = case.find("skipped")
        outcomes[case.get("name")] = ("skipped: " + skipped.get("message", "")
                                      if skipped is not None else "passed")
    assert outcomes["test_smtp_web_and_mirror_ports_listen"] == "passed", outcomes
    assert outcomes["test_mail_sent_to_either_is_searchable_on_both"] == "passed", outcomes
    assert "needs the QEMU harness (QMP link cut" in outcomes["test_a_cut_link_queues_mail_then_drains"]
