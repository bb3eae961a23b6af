"""SMTP intake on a data disk that is low or full refuses mail before it is sent (MAIL
FROM, RCPT; a declared SIZE= that would not fit), so refused mail never takes the room left;
a spool that runs out of room answers 452 4.3.1. The disks are real and small
(tests/integration/small_disk.py)."""
import smtplib
import threading

import pytest

from tests.integration.intake.test_smtp import SMTP_CONFIG, message, send
from tests.integration.intake.test_smtp_limits import attachment_message
from tests.integration.processes import ArchiverService, models_file
from tests.integration.small_disk import SmallDisk
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def smtp_on(tmp_path, disk: SmallDisk) -> ArchiverService:
    models = models_file(tmp_path, intake={"min_free_disk_mb": 8})
    service = ArchiverService(tmp_path, {"data_dir": str(disk.mount_point / "data"),
                                         "smtp": dict(SMTP_CONFIG)},
                              command=("serve", "smtp"), models=models)
    service.data = disk.mount_point / "data"
    return service.start()


def refused_at_mail_from(service: ArchiverService, raw: bytes | None = None) -> bool:
    """Whether intake refused `raw` (a small message if None) at MAIL FROM; False: taken."""
    try:
        send(service, message(0) if raw is None else raw)
    except smtplib.SMTPSenderRefused:
        return True
    return False


def test_a_low_disk_refuses_at_mail_from_and_refused_mail_takes_no_room(tmp_path):
    with SmallDisk(tmp_path / "disk", 40) as disk:
        service = smtp_on(tmp_path, disk)
        try:
            send(service, message(1))
            disk.fill(leave_bytes=5 * MiB)  # low: below 8 MiB
            wait_until(lambda: refused_at_mail_from(service), 30, "intake to see the disk low")
            free, stored = disk.free_bytes(), service.stats()["stored"]
            refusals = []

            def sender(k: int) -> None:
                for n in range(10):
                    try:
                        send(service, attachment_message(k * 100 + n, 3 * MiB // 2))
                    except smtplib.SMTPSenderRefused as refused:
                        refusals.append((refused.smtp_code, refused.smtp_error))
            senders = [threading.Thread(target=sender, args=(k,)) for k in range(4)]
            for thread in senders:
                thread.start()
            for thread in senders:
                thread.join()
            assert len(refusals) == 40  # every one at MAIL FROM, with DATA's code and words
            assert all(code == 451 and text.startswith(b"4.3.1 the data disk is low on space")
                       for code, text in refusals), refusals[:3]
            assert disk.free_bytes() >= free - MiB // 4  # nothing was spooled
            assert service.stats()["stored"] == stored
        finally:
            service.stop()


def test_a_declared_size_that_would_not_fit_is_refused_at_mail_from(tmp_path):
    with SmallDisk(tmp_path / "disk", 40) as disk:
        service = smtp_on(tmp_path, disk)
        try:
            disk.fill(leave_bytes=11 * MiB)  # 3 MiB above the low threshold
            big = attachment_message(1, 6 * MiB)
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                send(service, big)  # smtplib declares SIZE= as the server offers it
            assert refused.value.smtp_code == 452
            assert refused.value.smtp_error.startswith(b"4.3.1 the message (")
            assert b"is larger than the room left" in refused.value.smtp_error
            assert send(service, message(2)) == {}  # what fits is taken
            disk.release()
            wait_until(lambda: not refused_at_mail_from(service, big), 30,
                       "intake to see the room")
            assert service.stats()["stored"] == 2
        finally:
            service.stop()


def test_a_spool_that_runs_out_of_room_answers_452_4_3_1(tmp_path):
    service = ArchiverService(tmp_path, {"smtp": dict(SMTP_CONFIG)}, command=("serve", "smtp"))
    spool = service.data / "spool"
    spool.mkdir(parents=True)
    with SmallDisk(spool, 1, kind="tmpfs"):  # the data disk has room, its spool does not
        service.start()
        try:
            with pytest.raises(smtplib.SMTPDataError) as refused:
                send(service, attachment_message(1, 3 * MiB))
            assert refused.value.smtp_code == 452
            assert refused.value.smtp_error.startswith(
                b"4.3.1 there is no room to spool the message (No space left on device)")
            assert send(service, message(2)) == {}  # small ones stay in memory
            assert service.stats()["stored"] == 1
        finally:
            service.stop()
