"""System tests (the VM tier): a fresh mirrored pair of virtual appliances, booted once per
run of this folder by the QEMU harness (qemu/lab.py; package-scoped, so the VMs are off
again before any other tier runs), or two real appliances (hardware in the loop):

    make vmtest                                   # a fresh pair of VMs (MODEL=450)
    make hil HOSTS="ssh://root@box-a ssh://root@box-b"
    HOSTS="ssh://root@box-a ssh://root@box-b" .venv/bin/python -m pytest tests/system
    .venv/bin/python -m pytest tests/system --hosts=ssh://root@box-a,ssh://root@box-b

Real appliances must be mirrored with each other already, accept SSH as root with the build
host's key (build/ssh/id_ed25519, or --ssh-config / --ssh-identity-file), take mail for
example.com over SMTP from this host on port 25 and serve the web UI on 8000, or on the ports
a spec names (ssh://root@box-a?smtp_port=2525&web_port=8080). Tests that need QMP (link
cut, hard power-off, flashing) skip on real hardware and say why.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

from tests.system.appliances import Appliance

TREE = Path(__file__).resolve().parents[2]
# archiver.yaml mirror timers of the virtual pair: a request whose reply has not come in 10 s
# (not 30: the batches here are a few hundred small messages) shows a cut link, and a peer is
# retried at most 3 s apart (not 10), so a healed link is used within seconds. Real boxes
# (HOSTS) keep their own configuration.
LAB_MIRROR_TIMERS = {"read_timeout_seconds": 10, "retry_cap_seconds": 3}


def _host_specs(config) -> list[str]:
    specs = []
    option = config.getoption("hosts", default=None)
    if option:
        specs = [s for s in str(option).replace(",", " ").split() if s]
    elif os.environ.get("HOSTS"):
        specs = os.environ["HOSTS"].replace(",", " ").split()
    return specs


def service_address(spec: str, service: str, default_port: int) -> tuple[str, int]:
    """Where a real appliance serves SMTP or the web: its host, the usual port or the one
    the spec's ?smtp_port= / ?web_port= says (testinfra ignores query keys it does not know)."""
    url = urllib.parse.urlparse(spec)
    port = urllib.parse.parse_qs(url.query).get(f"{service}_port", [default_port])[0]
    return url.hostname, int(port)


@pytest.fixture(scope="package")
def lab(request):
    """The QEMU lab of the session (None for hardware in the loop)."""
    if _host_specs(request.config):
        yield None
        return
    if os.geteuid() != 0 or not shutil.which("qemu-system-x86_64"):
        pytest.skip("the VM tier needs root (image build) and qemu-system-x86 (make setup)")
    from qemu.lab import Lab
    model = int(os.environ.get("MODEL", "450"))
    began = time.monotonic()
    lab = Lab(["a", "b"], model=model, fresh=True, mirror=LAB_MIRROR_TIMERS)
    lab.prepare()
    lab.start()
    try:
        lab.wait_ready()
        lab.wait_mirrored()
    except BaseException:
        lab.crash_all()
        raise
    ready = time.monotonic() - began
    sys.stderr.write(f"\nsystem tests: pair ({lab['a'].accel}) ready and mirrored {ready:.0f} s "
                     f"after flashing; {lab.timings}\n")
    (TREE / "build" / "vms" / "pair-timings.json").write_text(
        __import__("json").dumps({"ready_and_mirrored_s": round(ready, 1),
                                  **{k: round(v, 1) for k, v in lab.timings.items()}}) + "\n")
    yield lab
    lab.shutdown()


@pytest.fixture(scope="package")
def appliances(request, lab) -> list[Appliance]:
    """[A, B]: the two appliances, virtual or real."""
    ssh_config = request.config.getoption("ssh_config", default=None)
    identity = request.config.getoption("ssh_identity_file", default=None)
    from qemu.machine import SSH_KEY, ssh_config as write_ssh_config
    if not ssh_config:
        ssh_config = str(write_ssh_config(key=Path(identity) if identity else SSH_KEY))
    if lab is None:
        specs = _host_specs(request.config)
        if len(specs) != 2:
            pytest.fail(f"hardware in the loop needs two mirrored appliances, got {specs}")
        return [Appliance(name, spec, ssh_config, service_address(spec, "smtp", 25),
                          service_address(spec, "web", 8000))
                for name, spec in zip("ab", specs)]
    return [Appliance(name, f"ssh://root@127.0.0.1:{m.ports['ssh']}", ssh_config,
                      ("127.0.0.1", m.ports["smtp"]), ("127.0.0.1", m.ports["web"]),
                      machine=m, lab=lab)
            for name, m in lab.machines.items()]


@pytest.fixture
def pair(appliances):
    return appliances[0], appliances[1]


@pytest.fixture
def vm_pair(pair, lab):
    """The pair, when it is virtual: these tests need QMP or flashing."""
    if lab is None:
        pytest.skip("needs the QEMU harness (QMP link cut, hard power-off or flashing); "
                    "real appliances cannot be driven that way")
    return pair
