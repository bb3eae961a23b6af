"""A mirrored pair of appliances, virtual (QEMU) or real: units, ports, sandboxing, mail both
ways, a cut link, hard power-offs, the boot check on a running appliance, firmware of another
version (another model's image: tests/integration/image/test_image.py).

The pair is booted once for the session (tests/system/conftest.py); tests run in file order
and each leaves the pair healthy and mirrored. Each test tags its messages with a subject
word of its own, so the sets it compares are its own.
"""
from __future__ import annotations

import re
import threading

import pytest

from tests.bench.corpus import make_pdf
from tests.system.appliances import new_tag, wait_searchable, wait_until

pytestmark = [pytest.mark.system, pytest.mark.slow, pytest.mark.timeout(1200)]

SERVICES = ("archiver-smtp", "archiver-journal", "archiver-indexer", "archiver-mirror",
            "archiver-web")
UNITS = (*(f"{s}.service" for s in SERVICES), "archiver-verify.service",
         "archiver-data.service", "archiver-retention.timer")
# A file the firmware manifest does not list, in a payload folder: a .pth file in
# dist-packages, which every Python process would run.
PACKAGES = "usr/lib/python3/dist-packages"
UNLISTED = f"/{PACKAGES}/zz-unlisted-by-the-manifest.pth"
# A listed payload file changed (a line added), and where its signed bytes wait meanwhile.
CHANGED = f"/{PACKAGES}/services/intake/smtp.py"
CHANGED_SAVED = "/root/smtp.py.signed"


def _drained(sender, receiver) -> bool:
    """Connected, nothing queued (from /metrics: polled every second without loading the
    guests as an `archiver mirror status` over SSH every 5 s did)."""
    return sender.drained_to(receiver)


def test_every_archiver_unit_is_active(pair):
    for appliance in pair:
        states = {unit: appliance.host.run(f"systemctl is-active {unit}").stdout.strip()
                  for unit in UNITS}
        assert set(states.values()) == {"active"}, (appliance, states)
        # firstboot is active after the first boot (and a flash); on other boots its
        # conditions skip it, which is as good
        firstboot = dict(line.split("=", 1) for line in appliance.run(
            "systemctl show archiver-firstboot.service -p ActiveState -p ConditionResult "
            "-p Result").splitlines())
        assert firstboot["Result"] == "success" and (
            firstboot["ActiveState"] == "active" or firstboot["ConditionResult"] == "no"), \
            (appliance, firstboot)
        failed = appliance.run("systemctl list-units --failed --plain --no-legend 'archiver-*'")
        assert failed.strip() == "", (appliance, failed)
        if appliance.machine is not None:  # a fresh VM: no unit failed on the way and restarted
            restarts = {unit: appliance.run(f"systemctl show -p NRestarts --value {unit}").strip()
                        for unit in SERVICES}
            assert set(restarts.values()) == {"0"}, (appliance, restarts)
            console = appliance.machine.console()
            assert not re.search(r"Failed to start .*archiver-", console), console[-6000:]


def test_the_data_disk_root_login_and_service_priorities_are_as_the_image_sets_them(pair):
    """What the image sets up at boot (tests/integration/image builds and flashes it): the
    archive on a data disk of its own, root logging in by key only, and the indexer below
    the services that acknowledge mail."""
    for appliance in pair:
        data_source = appliance.run("findmnt -n -o SOURCE /var/lib/archiver").strip()
        data_disk = _disk_of(appliance, "/var/lib/archiver")
        root_disk = _disk_of(appliance, "/")
        assert data_disk and data_disk != root_disk, (appliance, data_disk, root_disk)
        if appliance.machine is not None:  # the lab's VMs: the second virtio disk
            assert data_source == "/dev/vdb", (appliance, data_source)
        assert "permitrootlogin without-password" in appliance.run("sshd -T").lower()
        policy = {unit: appliance.run("ps -o cls= -p $(systemctl show -p MainPID --value "
                                      f"{unit})").strip() for unit in SERVICES}
        assert policy == {**dict.fromkeys(SERVICES, "TS"), "archiver-indexer": "IDL"}, \
            (appliance, policy)


def _disk_of(appliance, path: str) -> str:
    """The whole disk (kernel name, e.g. "sda") under the file system of a path: another
    partition of the root's disk is not a data disk of its own."""
    source = appliance.run(f"findmnt -n -o SOURCE --target {path}").strip()
    disks = appliance.run(f"lsblk -n -s -o NAME,TYPE --raw {source}").split("\n")
    return next((name for name, kind in (line.split() for line in disks if line.strip())
                 if kind == "disk"), "")


def test_smtp_web_and_mirror_ports_listen(pair):
    for appliance in pair:
        for port in (25, 8000, 8443):
            assert appliance.host.socket(f"tcp://0.0.0.0:{port}").is_listening, (appliance, port)


def test_services_run_unprivileged_and_sandboxed(pair):
    for appliance in pair:
        for service in SERVICES:
            unit = appliance.host.service(service)
            assert unit.is_running, (appliance, service)
            props = dict(line.split("=", 1) for line in appliance.run(
                f"systemctl show {service} -p User -p MainPID -p NoNewPrivileges "
                "-p ProtectSystem -p PrivateTmp -p PrivateDevices -p ProtectHome "
                "-p CapabilityBoundingSet -p RestrictNamespaces").splitlines())
            assert props["User"] == "archiver", (appliance, service, props)
            assert props["NoNewPrivileges"] == "yes" and props["ProtectSystem"] == "strict"
            assert props["PrivateTmp"] == props["PrivateDevices"] == "yes"
            # SMTP binds port 25 as the service user: that one capability, no other.
            allowed = "cap_net_bind_service" if service == "archiver-smtp" else ""
            assert props["ProtectHome"] == "yes", (appliance, service, props)
            assert props["CapabilityBoundingSet"] == allowed, (appliance, service, props)
            pid = props["MainPID"]
            status = appliance.run(f"cat /proc/{pid}/status")
            uid = next(l.split()[1:] for l in status.splitlines() if l.startswith("Uid:"))
            assert uid[0] != "0" and uid[1] != "0", (appliance, service, uid)
            assert appliance.run(f"id -un {uid[0]}").strip() == "archiver"
            caps = next(l.split()[1] for l in status.splitlines() if l.startswith("CapEff:"))
            assert int(caps, 16) == (1 << 10 if allowed else 0), (appliance, service, caps)


def test_mail_sent_to_either_is_searchable_on_both(pair):
    a, b = pair
    tag = new_tag("both")
    sent = a.send(tag, 15) + b.send(tag, 10, start=100)
    assert len(sent) == 25
    for appliance in pair:
        assert wait_searchable(appliance, tag, 25) == sorted(sent)
    wait_until(lambda: _drained(a, b) and _drained(b, a), 120, "both queues to drain",
               interval=1)
    assert a.digests(tag) == b.digests(tag)
    assert len(a.digests(tag)) == 25


def test_a_pdf_attachments_words_are_searchable_on_both(pair):
    """The extraction workers read PDFs on the appliance (its pdf-text-server, under the
    services' sandbox) and the copy on the peer is read too."""
    a, b = pair
    tag, word = new_tag("pdf"), new_tag("pdfword")
    pdf = make_pdf([f"quarterly figures {word} attached", "second line of the report"])
    assert a.send(tag, 1, attachment=(pdf, "application", "pdf", "report.pdf")) == [f"{tag} 00000"]
    for appliance in pair:
        wait_searchable(appliance, tag, 1)
        hits = wait_until(lambda: appliance.hits(f"attachment:{word}") or None, 120,
                          f"the PDF's word searchable on {appliance.name}")
        assert [h["subject"] for h in hits] == [f"{tag} 00000"]


def test_a_cut_link_queues_mail_then_drains(vm_pair, lab):
    a, b = vm_pair
    tag = new_tag("link")
    wait_until(lambda: _drained(a, b), 120, "a to be connected and drained", interval=1)
    b.machine.set_link(False)
    try:
        sent = a.send(tag, 20)
        # `archiver mirror status` (seconds of a's CPU under TCG) only once /metrics, read
        # every second, shows the link is no longer connected
        status = wait_until(lambda: not a.connected_to(b)
                            and (s := a.peer_status(b))["state"] == "offline" and s,
                            180, "a to see b offline", interval=1)
        assert status["queued"] >= 20, status
        sent += a.send(tag, 10, start=20)
        status = a.peer_status(b)
        assert status["state"] == "offline" and status["queued"] >= 30, status
        assert b.subjects(tag) == []
    finally:
        b.machine.set_link(True)
    wait_until(lambda: _drained(a, b), 300, "the queue to drain once the link is back",
               interval=1)
    assert wait_searchable(b, tag, 30) == sorted(sent) == a.subjects(tag)
    assert a.digests(tag) == b.digests(tag)


def _boot_check_failed(machine) -> None:
    """The boot that just began stops at the boot check for UNLISTED: the console says why,
    and no archiver service starts."""
    machine.wait_for_console_text(r"FIRMWARE VERIFICATION FAILED", 900)
    machine.wait_for_console_text(r"Reached target .*multi-user", 900)
    console = machine.console()
    reasons = (f"{UNLISTED.lstrip('/')} is not in the manifest (an unlisted file in the "
               f"payload folder {PACKAGES})", f"payload file {CHANGED.lstrip('/')} was changed")
    for reason in reasons:
        assert reason in console.replace("\n", " ") or reason in console, console[-6000:]
    assert re.search(r"Dependency failed for .*archiver-smtp", console), console[-6000:]
    assert not re.search(r"Started .*archiver-(smtp|indexer|journal|mirror|web)", console), \
        console[-6000:]
    machine.wait_for_ssh(600)
    states = machine.execute("systemctl is-active " + " ".join(
        (*SERVICES, "archiver-firstboot")))[1].split()
    assert "active" not in states, states
    assert machine.execute("systemctl is-failed archiver-verify")[1].strip() == "failed"


def test_hard_power_off_of_b_while_copying_and_during_intake_then_the_boot_check(vm_pair, lab):
    """B loses power while A copies a backlog to it and while B itself takes in mail over
    SMTP (one power-off for both: each boot costs a minute or more under TCG). After B boots
    again every message either acknowledged is there exactly once, on both.

    The same boot is the boot check's (one boot fewer under TCG than a reboot of its own): a
    file the firmware manifest does not list, dropped into a payload folder of the running B,
    and a listed payload file with a line added, both before the power-off, keep every
    archiver service from starting at the next boot, and the console names both. With the
    file gone and the changed one as signed, starting the boot's target again runs the check
    again and then the services (what a reboot would check, without booting again), which
    then take up what the power-off left."""
    a, b = vm_pair
    copy_tag, intake_tag = new_tag("copy"), new_tag("intake")
    backlog = 400  # two batches: the power goes off once the first is acknowledged
    acknowledged: list[str] = []
    stop = threading.Event()

    def deliver():
        start = 0
        while not stop.is_set():
            got = b.send(intake_tag, 10, start=start, stop=stop.is_set)
            acknowledged.extend(got)
            start += 10
            if len(got) < 10:
                break

    sender = threading.Thread(target=deliver)
    machine = b.machine
    machine.succeed(f"printf 'import os\\n' > {UNLISTED} && cp -p {CHANGED} {CHANGED_SAVED} "
                    f"&& printf '\\n# changed\\n' >> {CHANGED} && sync")
    try:
        b.machine.set_link(False)  # A queues a backlog for B ...
        try:
            sent_to_a = a.send(copy_tag, backlog)
            wait_until(lambda: a.queued_for(b) >= backlog, 300, "a's backlog for b", interval=1)
            sender.start()  # ... B takes in mail of its own ...
            wait_until(lambda: len(acknowledged) >= 10, 120, "intake on b", interval=0.2)
        finally:
            b.machine.set_link(True)  # ... and the backlog starts to flow to B
        try:
            queued = wait_until(lambda: (q := a.queued_for(b)) < backlog and q + 1, 300,
                                "copying to b to start", interval=0.1) - 1
            b.machine.crash()
        finally:
            stop.set()
            sender.join(120)
        print(f"\nb powered off hard with {backlog - queued} of {backlog} copies acknowledged "
              f"to a and {len(acknowledged)} messages acknowledged over SMTP")
        assert queued > 0, "the copy had finished before the power-off"
        machine.start()
        _boot_check_failed(machine)
    finally:
        if not machine.is_up():
            machine.start()
        machine.wait_for_ssh(600)
        machine.succeed(f"rm -f {UNLISTED} && mv {CHANGED_SAVED} {CHANGED} && sync "
                        "&& systemctl start multi-user.target")
    lab.wait_ready(names=["b"])
    assert "manifest: verified" in b.run("archiver firmware show")
    wait_until(lambda: _drained(a, b) and _drained(b, a), 600, "both queues to drain",
               interval=1)
    on_b = wait_searchable(b, copy_tag, backlog, timeout=600)
    assert on_b == sorted(sent_to_a), "every copy on b exactly once"
    intake_on_b = b.subjects(intake_tag)
    assert sorted(set(intake_on_b)) == intake_on_b, "a message twice on b"
    assert set(acknowledged) <= set(intake_on_b), sorted(set(acknowledged) - set(intake_on_b))
    assert wait_searchable(a, intake_tag, len(intake_on_b)) == intake_on_b
    assert a.digests(copy_tag) == b.digests(copy_tag)
    assert a.digests(intake_tag) == b.digests(intake_tag)


def test_other_firmware_is_refused_and_copying_resumes_after_flashing_back(vm_pair, lab):
    from firmware.version import FirmwareVersion, current_version
    from image.flash import FlashRefused
    from qemu.lab import parallel
    a, b = vm_pair
    mine = current_version()
    other = str(FirmwareVersion(mine.major, mine.minor, mine.patch, mine.build + 1))
    tag = new_tag("fw")
    # The stand-in release's image (built when missing or older than the tree) is made
    # while b shuts down: the build and the shutdown each take seconds.
    parallel(lambda step: step(), [b.machine.shutdown, lambda: lab.image(version=other)])
    lab.flash("b", version=other)
    b.machine.start()
    lab.wait_ready(names=["b"])
    assert other in b.run("archiver firmware show")
    sent = a.send(tag, 12)
    status = wait_until(lambda: (s := a.peer_status(b))["state"] == "refused" and s, 300,
                        "a to refuse b")
    assert f"the peer runs firmware {other} but this system runs {mine}" in status["reason"], \
        status
    assert status["queued"] >= 12
    assert b.subjects(tag) == []

    # (Another model's image refused by the flash itself, the VM left as it was:
    # tests/integration/image/test_image.py::test_flash_refuses_another_models_image, with
    # the two models' images it builds anyway; here it cost a whole image build of a 650.)
    b.machine.shutdown()
    with pytest.raises(FlashRefused) as refused:    # back to older firmware: only when asked
        lab.flash("b")
    assert f"holds firmware {other}, newer than this image's {mine}" in str(refused.value)
    lab.flash("b", allow_downgrade=True)  # back to this tree's firmware
    b.machine.start()
    lab.wait_ready(names=["b"])
    wait_until(lambda: _drained(a, b), 300, "copying to resume", interval=1)
    assert wait_searchable(b, tag, 12) == sorted(sent)
    assert a.digests(tag) == b.digests(tag)
    assert str(mine) in b.run("archiver firmware show")
