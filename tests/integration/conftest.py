"""Fixtures for host integration tests: a private Dovecot as journal mailbox server."""
from __future__ import annotations

import pytest

from tests.integration.dovecot import Dovecot


@pytest.fixture
def dovecot(tmp_path):
    """A running Dovecot of this test's own (IMAP/POP3 with TLS, STARTTLS and plain);
    stopped, with every process it started, and removed when the test ends."""
    server = Dovecot(tmp_path)
    try:
        yield server.start()
    finally:
        server.cleanup()
