"""Talking to systemd: notify messages, watchdog interval, journal or stderr logging."""
import logging
import os
import socket

import pytest

from services.appliance import systemd_integration as sd


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    """A stand-in for systemd's notification socket."""
    path = str(tmp_path / "notify")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(path)
    receiver.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield receiver
    receiver.close()


def test_notify_sends_the_assignments_in_one_datagram(notify_socket):
    sd.notify("READY=1", "STATUS=smtp: running")
    assert notify_socket.recv(4096) == b"READY=1\nSTATUS=smtp: running"


def test_notify_without_systemd_does_nothing(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    sd.notify("WATCHDOG=1")  # no error, nowhere to send


@pytest.mark.parametrize("usec, pid, expected", [
    ("30000000", None, 15.0),                 # half of WatchdogSec=30s
    ("30000000", "self", 15.0),
    ("30000000", "1", None),                  # another process is the watched one
    (None, None, None), ("junk", None, None),
])
def test_the_watchdog_interval_is_half_of_watchdog_usec(monkeypatch, usec, pid, expected):
    for name, value in (("WATCHDOG_USEC", usec),
                        ("WATCHDOG_PID", str(os.getpid()) if pid == "self" else pid)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert sd.watchdog_interval() == expected


def test_systemd_is_recognised_by_any_of_its_variables(monkeypatch):
    for name in sd.SYSTEMD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert not sd.under_systemd()
    monkeypatch.setenv("INVOCATION_ID", "0123456789abcdef0123456789abcdef")
    assert sd.under_systemd()


def test_logging_goes_to_the_journal_with_structured_fields_under_systemd(monkeypatch, tmp_path):
    from systemd.journal import JournalHandler
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    monkeypatch.setattr(sd, "JOURNAL_SOCKET", str(tmp_path))  # journald is there
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        sd.log_to_journal_or_stderr("archiver-smtp")
        (handler,) = root.handlers
        assert isinstance(handler, JournalHandler)
        sent = []
        handler.send = lambda MESSAGE, **fields: sent.append((MESSAGE, fields))
        logging.getLogger("services.intake.smtp").info("archived %s", "abc",
                                                extra={"MESSAGE_DIGEST": "abc"})
        message, fields = sent[0]
        assert message == "archived abc"
        assert fields["MESSAGE_DIGEST"] == "abc" and fields["SYSLOG_IDENTIFIER"] == "archiver-smtp"
    finally:
        root.handlers[:], root.level = saved[0], saved[1]


def test_logging_goes_to_stderr_without_systemd(monkeypatch):
    for name in sd.SYSTEMD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        sd.log_to_journal_or_stderr("archiver")
        (handler,) = root.handlers
        assert type(handler) is logging.StreamHandler
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
