"""The systemd units: systemd-analyze verify passes on them, the long-running ones are
Type=notify with a watchdog and sandboxed, and the wheel carries them."""
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from services.appliance.service_state import SERVICES
from services.appliance.unit_files import INSTALLED_ARCHIVER, LONG_RUNNING, install, unit_paths
from services.supervisor.indexer_process import INDEXER_POLICY
from tests.conftest import ARCHIVER, TREE

pytestmark = pytest.mark.integration

# One unit per row of DESIGN.md's runtime table (the timer's service included).
EXPECTED = {"archiver-firstboot.service", "archiver-netconfig.service", "archiver-smtp.service",
            "archiver-journal.service", "archiver-indexer.service", "archiver-mirror.service",
            "archiver-web.service", "archiver-retention.service", "archiver-retention.timer"}


def parse(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file as {section: {key: [values in order]}} (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def units() -> dict[str, dict]:
    return {path.name: parse(path) for path in unit_paths()}


def service(name: str) -> dict[str, list[str]]:
    return units()[name]["Service"]


def test_there_is_a_unit_for_every_row_of_the_runtime_table():
    assert set(units()) == EXPECTED


def test_systemd_analyze_verify_passes(tmp_path):
    """Verified as installed, with ExecStart= pointing at this venv's archiver (verify
    checks that the program exists); warnings count as failures."""
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing (Debian package systemd)")
    copies = install(tmp_path / "units", archiver=str(ARCHIVER))
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", "--generators=no",
                           *map(str, copies)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), \
        done.stdout + done.stderr


def test_install_only_changes_the_program_path(tmp_path):
    for copy in install(tmp_path, archiver="/opt/archiver/bin/archiver"):
        original = (Path(unit_paths()[0].parent) / copy.name).read_text()
        assert copy.read_text() == original.replace(INSTALLED_ARCHIVER, "/opt/archiver/bin/archiver")


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_services_notify_restart_and_are_sandboxed(name):
    settings = service(f"archiver-{name}.service")
    expected = {"Type": "notify", "Restart": "on-failure", "User": "archiver",
                "DynamicUser": "no", "ProtectSystem": "strict", "NoNewPrivileges": "yes",
                "PrivateTmp": "yes", "ProtectHome": "yes", "PrivateDevices": "yes",
                "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
                "ProtectControlGroups": "yes", "ExecStart": f"{INSTALLED_ARCHIVER} serve {name}"}
    assert {key: settings.get(key, [None])[-1] for key in expected} == expected
    assert "/var/lib/archiver" in settings["ReadWritePaths"][-1].split()
    assert settings["WatchdogSec"][-1]
    capabilities = "CAP_NET_BIND_SERVICE" if name == "smtp" else ""  # port 25
    assert settings["CapabilityBoundingSet"] == [capabilities]
    assert settings["AmbientCapabilities"] == [capabilities]


def test_the_indexer_runs_below_the_services_that_acknowledge_mail():
    """As `archiver run`'s indexer child does: acknowledging mail comes first."""
    assert service("archiver-indexer.service")["CPUSchedulingPolicy"] == ["idle"]
    assert INDEXER_POLICY == os.SCHED_IDLE
    for name in LONG_RUNNING:
        if name != "indexer":
            settings = service(f"archiver-{name}.service")
            assert "CPUSchedulingPolicy" not in settings and "Nice" not in settings, name


def test_the_services_they_start_exist():
    assert set(LONG_RUNNING) - set(SERVICES) <= {"web"}  # `serve web`: the web UI's issue


def test_netconfig_runs_as_root_with_network_administration_only():
    settings = service("archiver-netconfig.service")
    assert "User" not in settings and settings["Type"] == ["oneshot"]
    assert "CAP_NET_ADMIN" in settings["CapabilityBoundingSet"][-1].split()
    assert "CAP_SYS_ADMIN" not in settings["CapabilityBoundingSet"][-1]


def test_firstboot_runs_once_and_takes_the_password_credential():
    unit = units()["archiver-firstboot.service"]
    assert unit["Unit"]["ConditionPathExists"] == ["|!/var/lib/archiver/firstboot.done",
                                                   "|!/etc/archiver/tls.key",
                                                   "|!/etc/archiver/tls.crt"]
    assert unit["Service"]["LoadCredential"] == ["admin-password"]
    assert unit["Service"]["ExecStart"] == [f"{INSTALLED_ARCHIVER} firstboot"]


def test_retention_runs_weekly():
    timer = units()["archiver-retention.timer"]
    assert timer["Timer"]["OnCalendar"] == ["weekly"]
    assert timer["Timer"]["Unit"] == ["archiver-retention.service"]
    assert service("archiver-retention.service")["ExecStart"] == [
        f"{INSTALLED_ARCHIVER} retention run --json"]


def test_the_wheel_carries_the_units(tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(TREE, tree, ignore=shutil.ignore_patterns(
        ".venv", ".git", "tests", "build", "*.egg-info", "__pycache__", ".pytest_cache",
        ".hypothesis", "keys"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", str(tree), "-w", str(tmp_path / "wheel")],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "wheel").glob("*.whl")
    names = {Path(name).name for name in zipfile.ZipFile(wheel).namelist()
             if name.startswith("services/units/")}
    assert names == EXPECTED
