"""Mirroring to a peer whose data disk fills up: the peer tells the sender to retry later
(503, Retry-After) and stays up in the same process; the sender keeps the queue and says
why in its status; once the peer has room again the queue drains by itself and every
message is on both, indexed and sound. The peer's disk is a small ext4 of the test's own
(tests/integration/small_disk.py)."""
import hashlib
import random
import re
from email.message import EmailMessage

import pytest

from tests.integration.mirror_nodes import Node, wait_searchable
from tests.integration.netns import Lab
from tests.integration.processes import models_file
from tests.integration.small_disk import SmallDisk
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MiB = 1024 * 1024
COUNT = 1000


def incompressible(n: int) -> bytes:
    """About 20 KB that compress to 15 KB: a binary attachment (no text to index)."""
    msg = EmailMessage()
    msg["From"], msg["To"] = f"user{n % 9}@a.example.com", "boss@example.com"
    msg["Subject"], msg["Message-ID"] = f"mirrored {n}", f"<mirrored{n}@example.com>"
    msg.set_content(f"marker{n}\n")
    msg.add_attachment(random.Random(n).randbytes(15_000), maintype="application",
                       subtype="octet-stream", filename=f"blob{n}.bin")
    return msg.as_bytes().replace(b"\n", b"\r\n")


def test_a_peer_whose_disk_fills_asks_to_retry_later_and_the_queue_drains_after(tmp_path):
    models = models_file(tmp_path, intake={"min_free_disk_mb": 4})
    env = {"ARCHIVER_MODELS": str(models)}
    with Lab(["a", "b"]) as lab:
        a, b = Node(lab, "a", tmp_path, env=env), Node(lab, "b", tmp_path, env=env)
        with SmallDisk(b.data, 48) as disk:
            try:
                a.join(b), b.join(a)
                a.start(), b.start()
                wait_until(lambda: a.peer_status(b)["state"] == "connected", 60, "a connected")
                b_pid = b.process.pid
                disk.fill(leave_bytes=12 * MiB)  # room for about half of what comes
                incoming = tmp_path / "in"
                incoming.mkdir()
                raws = [incompressible(n) for n in range(COUNT)]
                for n, raw in enumerate(raws):
                    (incoming / f"{n}.eml").write_bytes(raw)
                a.cli("import", "--no-index", incoming)

                def b_runs_and_a_waits():
                    assert b.process.poll() is None, "b's archiver run ended"
                    return (status := a.peer_status(b))["state"] == "waiting" and status
                status = wait_until(b_runs_and_a_waits, 180, "a to see b waiting for room")
                # The peer's intake waits (the disk is low, or full), or a batch could not
                # be written (the disk filled under it): either way it is to come again.
                assert re.match(r"the peer cannot store now: the (data disk is (low on space|"
                                r"full)|store's disk is full) \(", status["reason"])
                assert status["queued"] > 0
                assert b.process.poll() is None and b.process.pid == b_pid
                space = b.cli("status", "--json", "--config", b.config)
                assert '"state": "low"' in space.stdout or '"state": "full"' in space.stdout
                assert b.stats()["stored"] < COUNT

                disk.release()
                wait_until(lambda: a.peer_status(b)["queued"] == 0, 180, "the queue to drain")
                wait_searchable(b, COUNT)
                assert b.digests() == sorted(hashlib.sha256(raw).hexdigest() for raw in raws)
                assert b.stats()["stored"] == COUNT
                assert '"corrupt": []' in b.cli("verify", "--json").stdout
                assert a.peer_status(b)["state"] == "connected"
                assert b.process.poll() is None and b.process.pid == b_pid
            finally:
                a.stop(), b.stop()
